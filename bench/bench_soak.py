"""Soak benchmark: one hour of audio through ``edge-monitor simulate --fast``; flat memory?

Runs the real CLI in a subprocess (MQTT off, evidence on, sensor checks and
explanations as configured by default) over synthetic slide-rail clips and
samples its resident set size (``/proc/<pid>/status`` VmRSS) every 50 ms.

Reports (stdout and ``--out`` JSON):

* ``rss_warm_mb``: RSS once ``--warmup-minutes`` of audio have been replayed
  (model loaded, buffers allocated, first alerts and evidence written);
* ``rss_end_mb``: RSS just before the run ends; ``rss_growth_mb`` = end - warm
  (target < 5 MB), ``rss_peak_mb``;
* ``windows_per_s`` and ``realtime_factor`` (audio seconds per wall second).

Usage::

    .venv/bin/python bench/bench_soak.py [--model BUNDLE] [--hours 1] [--out bench/out/soak.json]

Without ``--model`` a tiny bundle is trained first (TensorFlow needed, ~1 min).
The audio is 30 distinct 10 s clips (normal, with an anomalous stretch every
few minutes so alerts open and close) repeated to the requested length.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def make_clips(folder: Path, seed: int = 0, machine_id: str = "id_00") -> list[Path]:
    from edge_monitor.audio import audio_io
    from trainer.synth import FactoryProfile, MachineProfile, synthesize_clip

    prof, fac = MachineProfile.from_seed(seed, machine_id), FactoryProfile.from_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(30):
        kind = "loose_belt" if i in (20, 21, 22) else None  # 30 s of fault per 5 minutes of audio
        x, _ = synthesize_clip(prof, np.random.default_rng([777, i]), kind, severity=4.0, factory=fac)
        paths.append(audio_io.write_wav(folder / f"clip_{i:02d}.wav", x))
    return paths


def train_tiny(folder: Path) -> tuple[Path, int, str]:
    from trainer.synth import generate_dataset
    from trainer.train import TrainConfig, train_bundle

    generate_dataset(folder / "data", 0, machine_ids=("id_00",), n_train=24, n_test_normal=0, n_test_anomaly=0)
    train_bundle(folder / "data" / "slider", folder / "bundle", TrainConfig(epochs=8, seed=0, score_test=False,
                                                                               detectors=("autoencoder", "profile", "frames")),
                 progress=None)
    return folder / "bundle", 0, "id_00"


def separating_threshold(model: Path, clips: list[Path]) -> float:
    """A threshold between the clips' normal and anomalous scores, so alerts open and close."""
    from edge_monitor.model.bundle import load_bundle
    from edge_monitor.model.scorer import Scorer

    scorer = Scorer(load_bundle(model))
    scores = [scorer.score_file(p).score for p in clips]
    normal = [s for i, s in enumerate(scores) if i not in (20, 21, 22)]
    return float(max(normal) + 0.5 * (min(scores[20:23]) - max(normal))) if min(scores[20:23]) > max(normal) \
        else float(max(normal) * 1.1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, help="model bundle (default: train a tiny one)")
    ap.add_argument("--hours", type=float, default=1.0, help="hours of audio to replay (default 1)")
    ap.add_argument("--hop", type=float, default=10.0, help="audio.hop_seconds (default 10)")
    ap.add_argument("--seed", type=int, default=0, help="synth seed of the machine the --model was trained on")
    ap.add_argument("--warmup-share", type=float, default=0.1,
                    help="share of the audio replayed before the warm RSS sample (default 0.1 = 6 min of 1 h)")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "soak.json")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="soak-") as tmp_s:
        tmp = Path(tmp_s)
        if args.model is None:
            print("training a tiny bundle ...", file=sys.stderr, flush=True)
            model, seed, mid = train_tiny(tmp)
        else:
            from edge_monitor.model.bundle import load_bundle

            model, seed, mid = args.model, args.seed, (load_bundle(args.model).machine_ids or ("id_00",))[0]
        clips = make_clips(tmp / "clips", seed, mid)
        n_files = int(round(args.hours * 3600 / 10))
        files = [str(clips[i % len(clips)]) for i in range(n_files)]
        threshold = separating_threshold(model, clips)
        cfg = tmp / "soak.yaml"
        cfg.write_text(f"device_id: soak\nmodel: {model}\nstate_dir: {tmp / 'state'}\n"
                       f"audio: {{hop_seconds: {args.hop}}}\nmqtt: {{enabled: false}}\n"
                       f"decision: {{threshold: {threshold!r}}}\n"
                       "evidence: {enabled: true, max_mb: 5}\n")
        # Long argument lists are fine (360 paths); the daemon sees one continuous stream.
        cmd = [sys.executable, "-m", "edge_monitor", "simulate", "-c", str(cfg), "--fast", "--no-mqtt",
               "--log-format", "json", *files]
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        samples: list[tuple[float, float, int]] = []  # (wall s, RSS MB, files started)
        files_started = [0]
        alerts = [0]
        tail: list[str] = []
        stopped: dict = {}

        def read_stderr() -> None:
            for line in proc.stderr:  # type: ignore[union-attr]
                if '"replaying file"' in line:
                    files_started[0] += 1
                elif '"stopped"' in line:
                    stopped.update(json.loads(line))
                tail.append(line)
                del tail[:-50]

        def read_stdout() -> None:
            for line in proc.stdout:  # type: ignore[union-attr]
                if '"topic": "alert"' in line:
                    alerts[0] += 1

        threads = [threading.Thread(target=read_stderr, daemon=True), threading.Thread(target=read_stdout, daemon=True)]
        for t in threads:
            t.start()
        last_report = 0.0
        while proc.poll() is None:
            r = rss_mb(proc.pid)
            if r is not None:
                samples.append((time.monotonic() - t0, r, files_started[0]))
            if time.monotonic() - last_report > 30:
                last_report = time.monotonic()
                print(f"  {files_started[0]}/{n_files} files, RSS {r} MB", file=sys.stderr, flush=True)
            time.sleep(0.05)
        wall = time.monotonic() - t0
        for t in threads:
            t.join(timeout=5)
        if proc.returncode != 0:
            print("".join(tail), file=sys.stderr)
            return 1
    # Warm: the median RSS while the files from warmup_share to 2 * warmup_share of the run play;
    # end: the median over the last 5 % of the samples (single samples jitter by ~1 MB).
    lo, hi = args.warmup_share * n_files, 2 * args.warmup_share * n_files
    warm_rss = [s[1] for s in samples if lo < s[2] <= hi] or [samples[len(samples) // 10][1]]
    end_rss = [s[1] for s in samples[-max(1, len(samples) // 20):]]
    warm = (next(s[0] for s in samples if s[2] > lo), float(np.median(warm_rss)))
    end = (samples[-1][0], float(np.median(end_rss)))
    windows = int(stopped.get("windows", 0))
    if windows != int((n_files * 10 - 10) / args.hop) + 1 or stopped.get("scored") != windows:
        print("unexpected window counts:", stopped, "".join(tail[-10:]), file=sys.stderr)
        return 1
    result = {
        "audio_hours": args.hours,
        "hop_seconds": args.hop,
        "windows": windows,
        "windows_scored": stopped.get("scored"),
        "alerts": stopped.get("alerts"),
        "alert_events_on_stdout": alerts[0],
        "wall_s": round(wall, 1),
        "windows_per_s": round(windows / wall, 2),
        "realtime_factor": round(n_files * 10 / wall, 1),
        "rss_warm_mb": round(warm[1], 2),
        "rss_warm_at_s": round(warm[0], 1),
        "rss_end_mb": round(end[1], 2),
        "rss_growth_mb": round(end[1] - warm[1], 2),
        "rss_peak_mb": round(max(s[1] for s in samples), 2),
        "rss_max_after_warm_mb": round(max(s[1] for s in samples if s[0] >= warm[0]), 2),
        "rss_samples": len(samples),
        "threshold": threshold,
        "target_growth_mb": 5.0,
        "python": sys.version.split()[0],
        "cpu": os.cpu_count(),
    }
    print(json.dumps(result, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if result["rss_growth_mb"] < 5.0 else 2


if __name__ == "__main__":
    sys.exit(main())
