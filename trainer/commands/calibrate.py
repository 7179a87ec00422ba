"""``edge-monitor-train calibrate``: re-fit a bundle's threshold from freshly recorded normal sound."""

from __future__ import annotations

import argparse
import sys

HELP = "re-fit a bundle's threshold on normal recordings from the site (no retraining)"
DESCRIPTION = """\
A new microphone, a new position or a new room shifts every score. Record a few
minutes of the machine running normally where it will be monitored, then:

  edge-monitor-train calibrate MODEL_DIR normal1.wav normal2.wav recordings/

Every WAV (folders are searched recursively for *.wav) is scored window by
window with the bundle's TFLite model, exactly as the daemon does, and the
threshold is re-fitted from those window scores with the same rule as in
training (default: gamma fit, 0.99 quantile). model.json is rewritten in place
(the previous threshold is kept under threshold_history); the per-band error
statistics used to explain alerts are re-fitted too. model.tflite is untouched,
so the bundle's checksum stays valid.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from trainer.threshold import RULES

    parser.add_argument("model_dir", metavar="MODEL_DIR", help="model bundle to calibrate (rewritten in place)")
    parser.add_argument("inputs", nargs="+", metavar="NORMAL_WAV_OR_DIR", help="WAV files or folders of normal sound")
    parser.add_argument("--rule", choices=RULES, default=None,
                        help="threshold rule (default: the one the bundle was trained with)")
    parser.add_argument("--quantile", type=float, default=None,
                        help="quantile of the normal-score distribution (default: the bundle's, usually 0.99)")
    parser.add_argument("--threads", type=int, default=1, help="TFLite interpreter threads (default 1)")
    parser.add_argument("--dry-run", action="store_true", help="print the new threshold without writing model.json")


def run(args: argparse.Namespace) -> int:
    from edge_monitor.audio.audio_io import AudioFileError
    from edge_monitor.commands.common import fail
    from edge_monitor.model.bundle import BundleError
    from trainer.threshold import CalibrationError, calibrate_bundle

    try:
        result = calibrate_bundle(args.model_dir, args.inputs, rule=args.rule, quantile=args.quantile,
                                  num_threads=args.threads, write=not args.dry_run, progress=_stderr)
    except (BundleError, CalibrationError, AudioFileError) as exc:
        return fail("calibrate", f"{exc}", 1, program="edge-monitor-train")
    old, new = result.old_threshold, result.new.value
    change = 100.0 * (new - old) / old
    print(f"old threshold {old:.6g}")
    print(f"new threshold {new:.6g} ({change:+.1f} %; {result.new.describe()} from {result.n_files} file(s))")
    print(f"windows of the calibration set above the old threshold: {result.above_old}/{result.n_windows}")
    if args.dry_run:
        print("dry run: model.json not changed")
    else:
        print(f"updated {result.model_json}")
    return 0


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
