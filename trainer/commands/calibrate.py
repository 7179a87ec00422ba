"""``edge-monitor-train calibrate``: re-fit a bundle's threshold from freshly recorded normal sound."""

from __future__ import annotations

import argparse
import sys

HELP = "re-fit a bundle's threshold on normal recordings from the site (no retraining)"
DESCRIPTION = """\
A new microphone, a new position or a new room shifts every score. Record a few
minutes of the machine running normally where it will be monitored, then:

  edge-monitor-train calibrate MODEL_DIR normal1.wav normal2.wav recordings/
  edge-monitor-train calibrate MODEL_DIR --false-alarms-per-day 0.2 [recordings/]

Every WAV (folders are searched recursively for *.wav) is scored window by
window with the bundle's detectors, exactly as the daemon does, and the
threshold is re-fitted from those window scores with the same rule as in
training (default: gamma fit, 0.99 quantile). model.json is rewritten in place
(the previous threshold is kept under threshold_history); the per-band error
statistics used to explain alerts are re-fitted too. The detectors themselves
(detectors.npz, model.tflite) are untouched, so the bundle's checksums stay valid.

--false-alarms-per-day X sets the threshold to what X false alerts per day of
normal running allow, at the alert rule --k of --n windows every --hop seconds
(the bundle's, by default 2 of 3 every 10 s: the daemon's defaults): fitted on
the recordings when given, else moved along the tail model the bundle's
threshold was fitted with (bundles whose threshold rule is "budget").
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from trainer.threshold import RULES

    parser.add_argument("model_dir", metavar="MODEL_DIR", help="model bundle to calibrate (rewritten in place)")
    parser.add_argument("inputs", nargs="*", metavar="NORMAL_WAV_OR_DIR",
                        help="WAV files or folders of normal sound (optional with --false-alarms-per-day)")
    parser.add_argument("--false-alarms-per-day", type=float, default=None, metavar="X",
                        help="set the threshold to what X false alerts per day of normal running allow")
    parser.add_argument("--k", type=int, default=None, help="alert rule: k of n windows (default: the bundle's, 2)")
    parser.add_argument("--n", type=int, default=None, help="alert rule: of n windows (default: the bundle's, 3)")
    parser.add_argument("--hop", type=float, default=None, metavar="SECONDS",
                        help="alert rule: seconds between scored windows (default: the bundle's, 10)")
    parser.add_argument("--rule", choices=RULES, default=None,
                        help="threshold rule (default: the one the bundle was trained with)")
    parser.add_argument("--quantile", type=float, default=None,
                        help="quantile of the normal-score distribution (default: the bundle's, usually 0.99)")
    parser.add_argument("--threads", type=int, default=1,
                        help="TFLite interpreter threads of an autoencoder (default 1)")
    parser.add_argument("--dry-run", action="store_true", help="print the new threshold without writing model.json")


def run(args: argparse.Namespace) -> int:
    from edge_monitor.audio.audio_io import AudioFileError
    from edge_monitor.commands.common import fail
    from edge_monitor.model.bundle import BundleError
    from trainer.threshold import CalibrationError, calibrate_bundle, move_to_budget

    if not args.inputs and args.false_alarms_per_day is None:
        print("edge-monitor-train calibrate: give normal recordings of the site, --false-alarms-per-day, or both",
              file=sys.stderr)
        return 2
    try:
        alert_rule = _alert_rule(args)
        if args.inputs:
            result = calibrate_bundle(args.model_dir, args.inputs, rule=args.rule, quantile=args.quantile,
                                      num_threads=args.threads, write=not args.dry_run, progress=_stderr,
                                      false_alarms_per_day=args.false_alarms_per_day, alert_rule=alert_rule)
        else:
            result = move_to_budget(args.model_dir, args.false_alarms_per_day, alert_rule, write=not args.dry_run)
    except (BundleError, CalibrationError, AudioFileError) as exc:
        return fail("calibrate", f"{exc}", 1, program="edge-monitor-train")
    old, new = result.old_threshold, result.new.value
    change = 100.0 * (new - old) / old
    print(f"old threshold {old:.6g}")
    print(f"new threshold {new:.6g} ({change:+.1f} %; {result.new.describe()}"
          + (f" from {result.n_files} file(s))" if result.n_files else ")"))
    if result.n_windows:
        print(f"windows of the calibration set above the old threshold: {result.above_old}/{result.n_windows}")
    if args.dry_run:
        print("dry run: model.json not changed")
    else:
        print(f"updated {result.model_json}")
    return 0


def _alert_rule(args: argparse.Namespace) -> tuple[int, int, float] | None:
    """``(k, n, hop)`` when any of --k, --n, --hop is given (the others: 2, 3, 10), else None (the bundle's)."""
    from trainer.threshold import CalibrationError

    if args.k is None and args.n is None and args.hop is None:
        return None
    k, n, hop = args.k or 2, args.n or 3, args.hop or 10.0
    if not 1 <= k <= n or hop <= 0:
        raise CalibrationError(f"the alert rule needs 1 <= k <= n and a positive hop, got k={k}, n={n}, hop {hop}")
    return k, n, hop


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
