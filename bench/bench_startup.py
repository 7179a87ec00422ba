#!/usr/bin/env python3
"""Start-up: time from process start to the first window scored, daemon vs naive TensorFlow script.

    .venv/bin/python bench/bench_startup.py --out bench/out/startup.json

One 10 s clip, replayed with ``--fast``, so the 10 s of listening is left
out: what is measured is interpreter start, imports, loading and checking the
bundle, building the interpreter and the filterbank, and scoring one window.

* ``daemon``: ``python -m edge_monitor simulate --fast --no-mqtt
  --log-level debug --log-format json``; the clock stops when its ``window``
  log line (written after the window is scored and decided) reaches the
  parent; the ``model loaded`` line is timed too.
* ``naive``: ``bench/naive_tf_monitor.py``; the clock stops at its first
  ``window`` line.

The two alternate, ``--repeats`` times each (default 5); median and min of
the wall time from ``Popen`` to the line, in seconds.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, bundle_dir, finish, log, normal_test_clips, simulate_config  # noqa: E402


def time_to_lines(cmd: list[str], marks: dict[str, str], stream: str, env: dict[str, str],
                  timeout: float = 180.0) -> dict[str, float | None]:
    """Seconds from ``Popen`` until the first line containing each mark's text appears on ``stream``."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE if stream == "stdout" else subprocess.DEVNULL,
                            stderr=subprocess.PIPE if stream == "stderr" else subprocess.DEVNULL)
    seen: dict[str, float | None] = {name: None for name in marks}
    pipe = proc.stdout if stream == "stdout" else proc.stderr
    assert pipe is not None

    def read() -> None:
        for line in pipe:
            now = time.perf_counter() - t0
            for name, text in marks.items():
                if seen[name] is None and text in line:
                    seen[name] = now

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    reader.join(timeout=5)
    seen["exit"] = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} ... failed with status {proc.returncode}")
    return seen


def main(argv: list[str] | None = None) -> int:
    import numpy as np

    parser = argparse.ArgumentParser(description="Time from process start to the first scored window.")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--data-out", type=Path, default=REPO / "bench" / "out",
                        help="the prepared bench folder (dataset + bundle), default bench/out")
    parser.add_argument("--repeats", type=int, default=5, help="runs of each (default 5)")
    parser.add_argument("--quick", action="store_true", help="one run each (smoke test)")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats = 1
    bundle = bundle_dir(args.data_out)
    clip = normal_test_clips(args.data_out)[0]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    runs: dict[str, list[dict]] = {"daemon": [], "naive TensorFlow script": []}
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        cfg = simulate_config(Path(tmp) / "config.yaml", bundle, Path(tmp) / "state")
        daemon_cmd = [sys.executable, "-m", "edge_monitor", "simulate", "--config", str(cfg), "--fast", "--no-mqtt",
                      "--log-level", "debug", "--log-format", "json", str(clip)]
        naive_cmd = [sys.executable, str(REPO / "bench" / "naive_tf_monitor.py"), str(bundle), str(clip)]
        for i in range(args.repeats):
            log(f"start-up run {i + 1}/{args.repeats} ...")
            runs["daemon"].append(time_to_lines(
                daemon_cmd, {"model_loaded": '"model loaded"', "first_window": '"event": "window"'}, "stderr", env))
            runs["naive TensorFlow script"].append(time_to_lines(
                naive_cmd, {"first_window": "window 1 "}, "stdout", env))

    summary: dict[str, dict] = {}
    for name, rs in runs.items():
        for r in rs:
            if r.get("first_window") is None:
                raise SystemExit(f"{name}: no first-window line seen (runs: {rs})")
        summary[name] = {key: {"median_s": float(np.median([r[key] for r in rs])),
                               "min_s": float(np.min([r[key] for r in rs]))}
                         for key in rs[0] if all(r.get(key) is not None for r in rs)}
    ratio = summary["naive TensorFlow script"]["first_window"]["median_s"] / summary["daemon"]["first_window"]["median_s"]
    result = {"clip": str(clip), "repeats": args.repeats, "runs": runs, "summary": summary,
              "ratio_naive_over_daemon": ratio}
    print("| process | first window scored, median s | min s | model loaded, median s |")
    print("|---|---:|---:|---:|")
    for name, s in summary.items():
        loaded = s.get("model_loaded", {}).get("median_s")
        print(f"| {name} | {s['first_window']['median_s']:.2f} | {s['first_window']['min_s']:.2f} | "
              f"{'' if loaded is None else f'{loaded:.2f}'} |")
    print(f"\nnaive / daemon: {ratio:.1f}x")
    return finish(result, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
