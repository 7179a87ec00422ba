#!/usr/bin/env python3
"""Bytes written to disk per hour of monitoring, with the MQTT broker up and with it down.

SD cards wear out by writes, and a broker outage can last days. This replays
normal audio through the real CLI (``edge-monitor simulate --fast``, MQTT on,
a real ``mosquitto`` on 127.0.0.1, evidence on) and reads the daemon
process's own ``/proc/self/io`` just before it exits:

* ``write_bytes``: bytes the process caused to be sent to the storage layer
  (the kernel's block I/O accounting; what wears the card);
* ``wchar`` / ``syscw``: bytes and calls of every ``write()``-like syscall,
  sockets and pipes included (so the MQTT traffic and log lines count here,
  not in ``write_bytes``).

Each case runs twice, with a short stream (``--short-minutes`` of audio) and
with ``--hours`` of audio; the per-hour rate is the difference divided by the
difference in audio hours, so the fixed start-up writes (creating the SQLite
outbox and its WAL) are reported apart and do not inflate the rate. The audio
is normal and the threshold is set out of reach, so no alert opens: the
figures are the steady state of a healthy machine (each alert adds one
evidence WAV of ~320 kB and two outbox rows). ``--code-dir`` runs another
checkout's ``edge_monitor`` (e.g. the code before scores left the outbox).

Usage::

    .venv/bin/python bench/bench_disk_writes.py [--model BUNDLE --seed N] [--hours 1] \\
        [--out bench/out/disk_writes.json]

Without ``--model`` a tiny bundle is trained first (TensorFlow needed, ~1 min; cached in ``--work-dir``).
The state directory lives under ``--work-dir`` (default ``bench/out/disk-writes-tmp``,
on the repository's disk, not a tmpfs where ``write_bytes`` would read 0).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

# Runs the CLI in this process, then copies /proc/self/io (after stop(): the publisher thread and
# the outbox are closed by then, so everything the daemon wrote is counted) to $EDGE_MONITOR_IO_OUT.
CHILD = (
    "import os, sys\n"
    "from edge_monitor.cli import main\n"
    "rc = main(sys.argv[1:])\n"
    "io = open('/proc/self/io').read()\n"
    "with open(os.environ['EDGE_MONITOR_IO_OUT'], 'w') as f:\n"
    "    f.write(io)\n"
    "sys.exit(rc)\n"
)
COUNTERS = ("write_bytes", "wchar", "syscw", "cancelled_write_bytes")


def normal_clips(folder: Path, seed: int, machine_id: str, count: int = 12) -> list[Path]:
    """``count`` distinct normal 10 s clips of the machine the bundle was trained on."""
    import numpy as np

    from edge_monitor.audio import audio_io
    from trainer.synth import FactoryProfile, MachineProfile, synthesize_clip

    prof, fac = MachineProfile.from_seed(seed, machine_id), FactoryProfile.from_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    return [audio_io.write_wav(folder / f"normal_{i:02d}.wav",
                               synthesize_clip(prof, np.random.default_rng([515, i]), None, factory=fac)[0])
            for i in range(count)]


def fs_type(path: Path) -> str:
    res = subprocess.run(["stat", "-f", "-c", "%T", str(path)], capture_output=True, text=True, check=False)
    return res.stdout.strip() or "unknown"


def run_case(work: Path, model: Path, clips: list[Path], windows: int, port: int, code_dir: Path) -> dict[str, Any]:
    """One ``simulate --fast`` run of ``windows`` 10 s windows; the child's ``/proc/self/io`` at exit."""
    state = work / "state"
    shutil.rmtree(state, ignore_errors=True)
    cfg = work / "config.yaml"
    cfg.write_text(json.dumps({  # JSON is YAML
        "device_id": "disk-bench", "model": str(model), "state_dir": str(state),
        "audio": {"hop_seconds": 10},
        "decision": {"threshold": 1e9},  # steady state: no alert, so no evidence WAV and no alert row
        "evidence": {"enabled": True},
        "mqtt": {"host": "127.0.0.1", "port": port, "reconnect_min_s": 0.5, "reconnect_max_s": 2},
    }))
    io_out = work / "io.txt"
    io_out.unlink(missing_ok=True)
    files = [str(clips[i % len(clips)]) for i in range(windows)]
    # The daemon's outbox in state_dir, as under `run` (a replay otherwise keeps one of its own in a
    # temporary folder); older checkouts without --outbox always used state_dir.
    simulate_py = code_dir / "edge_monitor" / "commands" / "simulate.py"
    own_outbox = simulate_py.is_file() and "--outbox" in simulate_py.read_text()
    outbox_args = ["--outbox", str(state / "outbox.sqlite")] if own_outbox else []
    env = {**os.environ, "EDGE_MONITOR_IO_OUT": str(io_out), "PYTHONPATH": str(code_dir),
           "PYTHONDONTWRITEBYTECODE": "1"}  # no .pyc written into the measured figures (or into code_dir)
    t0 = time.monotonic()
    res = subprocess.run([sys.executable, "-c", CHILD, "simulate", "-c", str(cfg), "--fast", "--log-format", "json",
                          *outbox_args, *files], cwd=work, env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True, timeout=1800, check=False)
    wall = time.monotonic() - t0
    if res.returncode != 0 or not io_out.is_file():
        raise RuntimeError(f"simulate exited {res.returncode}: {res.stderr[-2000:]}")
    stopped: dict[str, Any] = next((json.loads(line) for line in res.stderr.splitlines() if '"stopped"' in line), {})
    if stopped.get("scored") != windows:
        raise RuntimeError(f"expected {windows} windows scored, got {stopped}")
    counters = {k: int(v) for k, v in (line.split(": ") for line in io_out.read_text().splitlines())}
    outbox = state / "outbox.sqlite"
    rows_ever = None
    if outbox.is_file():
        import sqlite3

        with sqlite3.connect(outbox) as db:
            row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
        rows_ever = int(row[0]) if row else 0
    return {"windows": windows, "audio_s": windows * 10.0, "wall_s": round(wall, 2),
            **{k: counters.get(k) for k in COUNTERS}, "outbox_rows_ever": rows_ever,
            "state_files": sorted(str(p.relative_to(state)) for p in state.rglob("*") if p.is_file())}


def per_hour(short: dict[str, Any], long: dict[str, Any], key: str) -> float:
    """Slope between the short and the long run, per hour of audio."""
    hours = (long["audio_s"] - short["audio_s"]) / 3600.0
    return (long[key] - short[key]) / hours


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, help="model bundle (default: train a tiny one)")
    ap.add_argument("--seed", type=int, default=0, help="synth seed of the machine the --model was trained on")
    ap.add_argument("--hours", type=float, default=1.0, help="hours of audio in the long run (default 1)")
    ap.add_argument("--short-minutes", type=float, default=2.0, help="minutes of audio in the short run (default 2)")
    ap.add_argument("--code-dir", type=Path, default=REPO, help="checkout whose edge_monitor runs (default this one)")
    ap.add_argument("--work-dir", type=Path, default=REPO / "bench" / "out" / "disk-writes-tmp")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "disk_writes.json")
    args = ap.parse_args(argv)

    import common  # bench/ is not a package: found through sys.path above

    from devtools.broker import free_port, start_broker

    args.work_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="disk-writes-", dir=args.work_dir) as tmp_s:
        tmp = Path(tmp_s)
        if args.model is None:
            cached = args.work_dir / "tiny"
            if (cached / "bundle" / "model.json").is_file():
                model, seed, mid = cached / "bundle", 0, "id_00"  # what train_tiny made last time
            else:
                common.log("training a tiny bundle ...")
                from bench_soak import train_tiny

                model, seed, mid = train_tiny(cached)
        else:
            from edge_monitor.model.bundle import load_bundle

            model, seed, mid = args.model, args.seed, (load_bundle(args.model).machine_ids or ("id_00",))[0]
        clips = normal_clips(tmp / "clips", seed, mid)
        short_w = max(1, round(args.short_minutes * 6))
        long_w = round(args.hours * 360)
        runs: dict[str, dict[str, Any]] = {}
        with start_broker(prefer="mosquitto", install=False) as broker:
            for name, windows in (("short", short_w), ("long", long_w)):
                common.log(f"broker up, {windows} windows ...")
                runs[f"broker_up_{name}"] = run_case(tmp, model, clips, windows, broker.port, args.code_dir)
            down_port = free_port()  # nothing listens there: the broker is down for the whole run
        for name, windows in (("short", short_w), ("long", long_w)):
            common.log(f"broker down, {windows} windows ...")
            runs[f"broker_down_{name}"] = run_case(tmp, model, clips, windows, down_port, args.code_dir)
        filesystem = fs_type(tmp)

    result: dict[str, Any] = {"hours_long": args.hours, "minutes_short": args.short_minutes,
                              "code_dir": str(args.code_dir), "filesystem": filesystem,
                              "broker": broker.kind, "runs": runs, "per_hour": {}, "startup": {}}
    for case in ("broker_up", "broker_down"):
        short, long = runs[f"{case}_short"], runs[f"{case}_long"]
        result["per_hour"][case] = {k: round(per_hour(short, long, k)) for k in ("write_bytes", "wchar", "syscw")}
        # What a run of no audio would write: the intercept of the same line.
        result["startup"][case] = {"write_bytes": round(short["write_bytes"] - per_hour(short, long, "write_bytes")
                                                        * short["audio_s"] / 3600.0)}
    print(json.dumps({"per_hour": result["per_hour"], "startup": result["startup"]}, indent=2))
    return common.finish(result, args.out)


if __name__ == "__main__":
    sys.exit(main())
