#!/usr/bin/env python3
"""End to end over one hour of audio: the daemon's pipeline vs the naive TensorFlow script.

    .venv/bin/python bench/bench_rss.py --out bench/out/rss.json

Both score the same 360 ten-second windows (the bench dataset's normal test
clips, repeated in order up to one hour):

* ``daemon``: ``python -m edge_monitor simulate --fast --no-mqtt`` -- ring
  buffer, sensor checks, log-mel, TFLite, decision, evidence: the whole
  pipeline of ``edge-monitor run``, fed from WAV files as fast as it scores;
* ``naive``: ``bench/naive_tf_monitor.py`` -- TensorFlow + librosa + Keras
  ``model.predict`` per window (what a user would write instead);
* ``python + numpy``: ``python -c "import numpy"``, the floor any Python
  process pays.

Each runs as a child process; its wall time, CPU time (user + system) and
peak RSS (its own ``VmHWM``, polled every 5 ms) are measured by the parent. Reports
windows per second, the real-time factor (audio seconds per wall second),
CPU seconds per hour of audio and the RSS ratio naive / daemon. Target
(issue 8): daemon peak RSS under 150 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, bundle_dir, finish, hour_of_audio, log, run_measured, simulate_config  # noqa: E402

TARGET_RSS_MB = 150.0
HOUR = 3600.0


def _stopped_line(stderr_tail: str) -> dict:
    """The daemon's final ``stopped`` log record (JSON logs), or {}."""
    for line in reversed(stderr_tail.splitlines()):
        if '"stopped"' in line:
            try:
                return json.loads(line)
            except ValueError:
                continue
    return {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Peak RSS, CPU and throughput: daemon (simulate --fast) "
                                                 "vs a naive TensorFlow script, on the same hour of audio.")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--data-out", type=Path, default=REPO / "bench" / "out",
                        help="the prepared bench folder (dataset + bundle), default bench/out")
    parser.add_argument("--seconds", type=float, default=HOUR, help="audio to score (default 3600 s)")
    parser.add_argument("--quick", action="store_true", help="60 s of audio (smoke test)")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds = 60.0
    bundle = bundle_dir(args.data_out)
    paths = hour_of_audio(args.data_out, args.seconds)
    audio_s = len(paths) * 10.0  # every bench clip is 10 s; checked against the daemon's own count below
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    result: dict = {"audio_files": len(paths), "audio_seconds": audio_s, "bundle": str(bundle), "runs": {}}

    with tempfile.TemporaryDirectory(prefix="bench-rss-") as tmp:
        cfg = simulate_config(Path(tmp) / "config.yaml", bundle, Path(tmp) / "state")
        list_file = Path(tmp) / "files.txt"
        list_file.write_text("\n".join(map(str, paths)))

        log("python -c 'import numpy' (the floor) ...")
        result["runs"]["python + numpy"] = run_measured([sys.executable, "-c", "import numpy"], env=env)

        log(f"daemon: edge-monitor simulate --fast over {audio_s:.0f} s of audio ({len(paths)} files) ...")
        d = run_measured([sys.executable, "-m", "edge_monitor", "simulate", "--config", str(cfg), "--fast",
                          "--no-mqtt", "--log-format", "json", "--log-level", "info", *map(str, paths)], env=env)
        stopped = _stopped_line(d["stderr_tail"])
        d["windows"] = stopped.get("scored", stopped.get("windows"))
        if d["rc"] != 0 or not d["windows"]:
            raise SystemExit(f"simulate failed (rc {d['rc']}):\n{d['stderr_tail']}")
        if d["windows"] != round(audio_s / 10):
            log(f"warning: the daemon scored {d['windows']} windows, expected {round(audio_s / 10)}")
        result["runs"]["daemon"] = d

        log(f"naive: TensorFlow + librosa + model.predict over the same {len(paths)} files ...")
        n = run_measured([sys.executable, str(REPO / "bench" / "naive_tf_monitor.py"), str(bundle), "--quiet",
                          *map(str, paths)], env=env)
        result["runs"]["naive TensorFlow script"] = n
        if n["rc"] != 0:
            raise SystemExit(f"naive script failed (rc {n['rc']}):\n{n['stderr_tail']}")
        n["windows"] = len(paths)

    for name, r in result["runs"].items():
        r.pop("stderr_tail", None)
        if r.get("windows"):
            r["windows_per_s"] = r["windows"] / r["wall_s"]
            r["realtime_factor"] = audio_s / r["wall_s"]
            r["cpu_s_per_audio_hour"] = r["cpu_s"] * HOUR / audio_s
    d, n = result["runs"]["daemon"], result["runs"]["naive TensorFlow script"]
    result["ratios"] = {
        "peak_rss_naive_over_daemon": n["peak_rss_mb"] / d["peak_rss_mb"],
        "cpu_naive_over_daemon": n["cpu_s"] / d["cpu_s"],
        "wall_naive_over_daemon": n["wall_s"] / d["wall_s"],
    }
    result["targets_met"] = {f"daemon peak RSS under {TARGET_RSS_MB:g} MB": d["peak_rss_mb"] < TARGET_RSS_MB}

    print(f"{audio_s:.0f} s of audio, {len(paths)} windows of 10 s")
    print("| process | peak RSS MiB | wall s | CPU s | windows/s | real-time factor | CPU s per audio hour |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, r in result["runs"].items():
        extra = (f"{r['windows_per_s']:.1f} | {r['realtime_factor']:.0f}x | {r['cpu_s_per_audio_hour']:.1f}"
                 if r.get("windows") else " | | ")
        print(f"| {name} | {r['peak_rss_mb']:.1f} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | {extra} |")
    print(f"\nnaive / daemon: RSS {result['ratios']['peak_rss_naive_over_daemon']:.1f}x, "
          f"CPU {result['ratios']['cpu_naive_over_daemon']:.1f}x, wall {result['ratios']['wall_naive_over_daemon']:.1f}x")
    return finish(result, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
