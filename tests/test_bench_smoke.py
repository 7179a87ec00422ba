"""The benchmark plumbing: the naive baseline computes what the runtime computes, the child-process
measurements are real, the audio stream is the length asked for, and RESULTS.md says what was met.

No timing assertions: speed targets live in bench/ (bench/run.sh writes bench/RESULTS.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import common  # noqa: E402
import render_results  # noqa: E402


def _naive_scores(bundle: Path, clips: list[Path], *extra: str) -> list[float]:
    res = subprocess.run([sys.executable, str(REPO / "bench" / "naive_tf_monitor.py"), str(bundle), *map(str, clips),
                          *extra], capture_output=True, text=True, cwd=REPO, timeout=300,
                         env={**__import__("os").environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert res.returncode == 0, res.stderr[-2000:]
    lines = [ln.split() for ln in res.stdout.splitlines() if ln.startswith("window ")]
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["windows"] == len(lines)
    return [float(parts[3]) for parts in lines]


def test_naive_baseline_scores_the_same_windows_as_the_runtime(tiny_bundle: Path, synth_dataset: Path) -> None:
    """The baseline must do the same work as the daemon, or the ratios in RESULTS.md mean nothing."""
    from edge_monitor.model.bundle import load_bundle
    from edge_monitor.model.scorer import Scorer

    clips = sorted((synth_dataset / "test").glob("*.wav"))[:3]
    scorer = Scorer(load_bundle(tiny_bundle))
    runtime = [scorer.score_file(c).score for c in clips]
    # Same front end, Keras instead of TFLite: the same scores up to float rounding.
    same_features = _naive_scores(tiny_bundle, clips, "--features", "edge_monitor", "--call")
    assert same_features == pytest.approx(runtime, rel=1e-3)
    # librosa's log-mel agrees with ours to ~1e-4 dB, so the default (librosa + predict) scores agree closely too.
    with_librosa = _naive_scores(tiny_bundle, clips)
    assert with_librosa == pytest.approx(runtime, rel=1e-2)


def test_run_measured_reports_the_child_s_own_peak_memory_and_cpu() -> None:
    big = common.run_measured([sys.executable, "-c", "import time; b = bytearray(120 * 2**20); b[::4096] = b'x' * len(b[::4096]); time.sleep(0.3)"])
    small = common.run_measured([sys.executable, "-c", "pass"])
    assert big["rc"] == small["rc"] == 0
    assert big["peak_rss_mb"] >= 120 > small["peak_rss_mb"]
    assert big["cpu_s"] > 0 and big["wall_s"] > 0
    failing = common.run_measured([sys.executable, "-c", "import sys; print('boom', file=sys.stderr); sys.exit(3)"])
    assert failing["rc"] == 3 and "boom" in failing["stderr_tail"]


def test_hour_of_audio_repeats_the_normal_test_clips_to_the_length_asked(synth_dataset: Path, tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "slider").symlink_to(synth_dataset, target_is_directory=True)
    normals = common.normal_test_clips(tmp_path)
    assert normals and all(p.name.startswith("normal_") for p in normals)
    paths = common.hour_of_audio(tmp_path, seconds=10 * (2 * len(normals) + 1))
    assert len(paths) == 2 * len(normals) + 1
    assert paths[:len(normals)] == normals and paths[len(normals):2 * len(normals)] == normals


def _write(out: Path, name: str, data: dict) -> None:
    (out / f"{name}.json").write_text(json.dumps(data))


def test_results_md_reports_misses_and_absent_benchmarks(tmp_path: Path) -> None:
    row = {"p10_ms": 1.0, "p90_ms": 3.0, "min_ms": 1.0, "runs": 10}
    _write(tmp_path, "features", {
        "window_samples": 160000, "frames": 313, "parity_max_abs_db": 1e-4,
        "results": {"edge_monitor.features.frontend.logmel": {**row, "median_ms": 6.0, "ours_speedup": 1.0},
                    "librosa, float32 input (usual case)": {**row, "median_ms": 15.0, "ours_speedup": 2.5}},
        "targets_met": {"median under 5 ms": False}})
    runs = {"python + numpy": {"peak_rss_mb": 35.0, "wall_s": 0.2, "cpu_s": 0.1},
            "daemon": {"peak_rss_mb": 100.0, "wall_s": 36.0, "cpu_s": 30.0, "windows": 360, "windows_per_s": 10.0,
                       "realtime_factor": 100.0, "cpu_s_per_audio_hour": 30.0},
            "naive TensorFlow script": {"peak_rss_mb": 800.0, "wall_s": 120.0, "cpu_s": 150.0, "windows": 360,
                                        "windows_per_s": 3.0, "realtime_factor": 30.0, "cpu_s_per_audio_hour": 150.0}}
    _write(tmp_path, "rss", {"audio_files": 360, "audio_seconds": 3600.0, "runs": runs,
                             "ratios": {"peak_rss_naive_over_daemon": 8.0, "cpu_naive_over_daemon": 5.0,
                                        "wall_naive_over_daemon": 3.3}})
    text = render_results.render(tmp_path)
    summary = text.split("## Summary", 1)[1].split("\n## ", 1)[0]
    assert "**2.50x** faster | >= 3x: **missed**" in summary
    assert "< 5 ms: **missed**" in summary
    assert "| peak RSS of the process | 100.0 MiB | 800.0 MiB | **8.0x** less | < 150 MB: **met** |" in summary
    for absent in ("model inference | not run", "start-up | not run", "float32 vs int8 | not run"):
        assert absent in summary
    assert "Not available" in text.split("Raspberry Pi 4: counted cost", 1)[1]


def test_disk_writes_section_is_rendered_in_place_and_says_what_was_measured(tmp_path: Path) -> None:
    run = {"audio_s": 120.0, "windows": 12, "outbox_rows_ever": 0}
    data = {"broker": "mosquitto", "hours_long": 1.0, "minutes_short": 2.0, "filesystem": "ext2/ext3",
            "runs": {f"{c}_{n}": dict(run, audio_s=3600.0 if n == "long" else 120.0)
                     for c in ("broker_up", "broker_down") for n in ("short", "long")},
            "per_hour": {"broker_up": {"write_bytes": -4096, "wchar": 85000},
                         "broker_down": {"write_bytes": 6_266_880, "wchar": 4_879_053}},
            "startup": {"broker_up": {"write_bytes": 110_733}, "broker_down": {"write_bytes": 106_496}}}
    (tmp_path / "disk_writes.json").write_text(json.dumps(data))
    results = tmp_path / "RESULTS.md"
    results.write_text("# Results\n\n## Reproduce\n\nmake bench\n")
    for _ in range(2):  # inserted once, then replaced in place
        assert render_results.main(["--section", "disk_writes", "--out-dir", str(tmp_path),
                                    "--results", str(results)]) == 0
    text = results.read_text()
    assert text.count(render_results.DISK_BEGIN) == 1 and text.index("## 6. Disk writes") < text.index("## Reproduce")
    assert "| this | up | **0** (< 4.2 kB) | 110.7 kB | 0 |" in text  # a page of noise is not a rate
    assert "| this | down | **6,266.9 kB** | 106.5 kB | 0 |" in text
