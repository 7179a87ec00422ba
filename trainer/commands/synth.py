"""``edge-monitor-train synth``: write a synthetic slide-rail dataset (DCASE 2020 layout)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "write a synthetic slide-rail dataset (DCASE 2020 layout) with labelled anomalies"
DESCRIPTION = """\
Synthesise slide-rail recordings: a carriage driven back and forth (trapezoidal
speed, cycle 1-3 s per machine id), motor/gear orders that follow the speed,
running friction, end-stop impacts and factory background noise at --snr-db.
Test anomalies cycle through --kinds:

  rail_damage     a click at one rail position on every pass of the carriage
  loose_belt      timing jitter, speed flutter, belt slap and rattle
  missing_grease  stick-slip squeal (a narrow-band tone with harmonics) while moving

--severity scales every anomaly: 0 = sounds normal, 1 = default, >1 = easier.

Output (16 kHz mono 16-bit WAV):
  OUT_DIR/<machine>/train/normal_id_XX_NNNNNNNN.wav
  OUT_DIR/<machine>/test/{normal,anomaly}_id_XX_NNNNNNNN.wav
  OUT_DIR/<machine>/metadata.csv    every clip's generation parameters
  OUT_DIR/<machine>/profiles.json   each machine id's fixed character

The same --seed writes bit-identical files. See docs/synth.md.

example:
  edge-monitor-train synth data --seed 0 --machine-ids id_00 id_02 --train 60
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from trainer.synth import ANOMALY_KINDS  # light: numpy only

    parser.add_argument("out_dir", metavar="OUT_DIR", type=Path, help="output folder (created if needed)")
    parser.add_argument("--seed", type=int, required=True, help="dataset seed: same seed, identical files")
    parser.add_argument("--machine-ids", nargs="+", default=["id_00", "id_02", "id_04"], metavar="ID",
                        help="machine ids, e.g. id_00 id_02 (default: id_00 id_02 id_04)")
    parser.add_argument("--machine", default="slider",
                        help="machine folder name under OUT_DIR (default: slider)")
    parser.add_argument("--train", type=int, default=50, metavar="N",
                        help="normal training clips per id (default: 50)")
    parser.add_argument("--test-normal", type=int, default=20, metavar="N",
                        help="normal test clips per id (default: 20)")
    parser.add_argument("--test-anomaly", type=int, default=30, metavar="N",
                        help="anomalous test clips per id, cycling through --kinds (default: 30)")
    parser.add_argument("--snr-db", type=float, default=6.0,
                        help="machine-to-background power ratio in dB (MIMII: 6, 0, -6; default: 6)")
    parser.add_argument("--severity", type=float, default=1.0,
                        help="anomaly strength: 0 = normal-like, 1 = default, higher = easier")
    parser.add_argument("--kinds", nargs="+", default=list(ANOMALY_KINDS), choices=ANOMALY_KINDS, metavar="KIND",
                        help=f"anomaly kinds for the test set (default: all: {' '.join(ANOMALY_KINDS)})")
    parser.add_argument("--seconds", type=float, default=10.0, help="clip length in seconds (default: 10)")


def _progress_printer():
    """A one-line progress bar on a terminal (stderr), a line every 10 % otherwise."""
    import time

    from edge_monitor.util.progress import progress_text

    stream = sys.stderr
    tty = stream.isatty()
    last = [-1]
    start = time.monotonic()

    def progress(done: int, total: int) -> None:
        pct = 100 * done // max(total, 1)
        text = progress_text(done, total, time.monotonic() - start, "clips")
        if tty:
            bar = "#" * (pct // 4)
            stream.write(f"\rsynthesising [{bar:<25s}] {text}\x1b[K")
            if done == total:
                stream.write("\n")
            stream.flush()
        elif pct // 10 != last[0] // 10 or done == total:
            stream.write(f"synthesising: {text}\n")
            stream.flush()
        last[0] = pct

    return progress


def run(args: argparse.Namespace) -> int:
    from functools import partial

    from edge_monitor.commands.common import fail as _fail
    from trainer.synth import generate_dataset

    fail = partial(_fail, "synth", program="edge-monitor-train")
    if args.seconds <= 0 or args.seconds > 600:
        return fail(f"--seconds must be in (0, 600], got {args.seconds}", 2)
    if min(args.train, args.test_normal, args.test_anomaly) < 0:
        return fail("clip counts must be >= 0", 2)
    if args.severity < 0:
        return fail(f"--severity must be >= 0, got {args.severity}", 2)
    try:
        summary = generate_dataset(
            args.out_dir, args.seed, machine_ids=args.machine_ids, n_train=args.train,
            n_test_normal=args.test_normal, n_test_anomaly=args.test_anomaly, snr_db=args.snr_db,
            severity=args.severity, kinds=args.kinds, seconds=args.seconds, machine=args.machine,
            progress=_progress_printer(),
        )
    except ValueError as exc:
        return fail(f"{exc}", 2)
    except OSError as exc:
        return fail(f"cannot write the dataset under {args.out_dir}: {exc}", 1)
    print(f"wrote {summary.total} clips to {summary.root} in {summary.seconds_taken:.1f} s "
          f"(seed {summary.seed}, SNR {args.snr_db:g} dB, severity {args.severity:g})")
    print(summary.table())
    print(f"metadata: {summary.metadata_csv}")
    return 0
