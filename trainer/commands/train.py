"""``edge-monitor-train train``: normal clips -> the machine's chosen detectors -> model bundle."""

from __future__ import annotations

import argparse
import sys

HELP = ("choose and fit the detectors (level profile, frame Gaussian, 5-frame subspace; optionally the autoencoder) "
        "on normal clips and write a model bundle")
DESCRIPTION = """\
Fit a bundle's detectors on the normal training clips of one machine type and
write a model bundle that `edge-monitor run` loads:

  autoencoder  a Keras autoencoder (default: the dense 5-frame model; --arch conv
               for the convolutional one) run as model.tflite
  profile      the window's level profile per band (median and loudest frames),
               a Gaussian model in NumPy (detectors.npz)
  frames       each frame's spectrum, a Gaussian model in NumPy, pooled over the
               worst frames: short events
  frames_mean  the same frame Gaussian pooled over the whole window: steady changes
  subspace     runs of 5 frames outside the principal subspace of normal runs (a
               linear autoencoder in NumPy), over the window: changed time patterns

The machine decides (--fusion weighted, the default): every candidate scores the
normal clips it was not fitted on and pseudo-anomalies made from them (a new
tone, clicks, band noise, a level step, an event removed, a speed change,
another machine mixed in); the weights that best tell those apart win, and a
candidate that cannot tell them apart gets weight 0 and leaves the bundle. The
figures of every candidate are printed and stored in model.json. --fusion max or
mean keep every detector asked for, as bundles before did. The candidates are
the profile, both frame detectors and the subspace; add the autoencoder
(TensorFlow) with --detectors autoencoder profile frames frames_mean subspace.

The threshold is what a false-alarm budget allows (--false-alarms-per-day, at
the daemon's default alert rule: 2 of 3 windows, one every 10 s); move it on
site with edge-monitor-train calibrate.

DATA_DIR is a machine folder: DCASE 2020 (train/normal_id_XX_*.wav, test/...),
DCASE 2021-2025 (train/ and test/ with section_XX_{source,target}_..._NNNN[_attr]*.wav;
the folder decides the split), the split source_test/ target_test/ folders of
2021, or MIMII (id_XX/{normal,abnormal}/*.wav). Only normal clips train. When
held-out test clips of both labels exist, their AUC is printed and stored.

Examples:
  edge-monitor-train train data/slider --out models/slider --machine-id id_00
  edge-monitor-train train dev/valve --out models/valve --machine-id section_00
  edge-monitor-train train dev/valve --out models/valve-np --detectors profile frames
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # No TensorFlow here: `--help` must stay quick (trainer.model imports Keras).
    from trainer.convert import QUANTIZE_MODES
    from trainer.defaults import (
        ARCHITECTURES,
        DEFAULT_ARCH,
        DEFAULT_CHANNELS,
        DEFAULT_CLIP_HI,
        DEFAULT_CLIP_LO,
        DEFAULT_DETECTORS,
        DEFAULT_FALSE_ALARMS_PER_DAY,
        DEFAULT_FUSION,
        DEFAULT_THRESHOLD_QUANTILE,
        DEFAULT_THRESHOLD_RULE,
        DETECTOR_KINDS,
        FUSION_RULES,
        THRESHOLD_RULES,
    )

    parser.add_argument("data_dir", metavar="DATA_DIR", help="machine folder (DCASE or MIMII layout)")
    parser.add_argument("--out", required=True, metavar="MODEL_DIR", help="bundle directory to write (created)")
    parser.add_argument("--machine-id", action="append", dest="machine_ids", metavar="ID",
                        help="train on this machine id only (repeatable; default: all ids found)")
    parser.add_argument("--epochs", type=int, default=15,
                        help="maximum epochs (early stopping, patience 5; default 15)")
    parser.add_argument("--seed", type=int, default=0,
                        help="random seed: split, initial weights, shuffling (default 0)")
    parser.add_argument("--arch", choices=ARCHITECTURES, default=DEFAULT_ARCH,
                        help="dense: DCASE-style dense autoencoder on 5 stacked frames (~61 MMAC per window); "
                             "conv: the paper's convolutional autoencoder (default %(default)s; docs/model.md)")
    parser.add_argument("--channels", default=",".join(map(str, DEFAULT_CHANNELS)), metavar="C1,C2,C3",
                        help="conv only: filters of the three encoder blocks (default %(default)s, ~144 MMAC)")
    parser.add_argument("--clip", default=f"{_fmt_bound(DEFAULT_CLIP_LO)},{_fmt_bound(DEFAULT_CLIP_HI)}",
                        metavar="LO,HI",
                        help="clip the normalised input (training range = 0..1) to [LO, HI]; 'none' for no bound "
                             "on that side; stored in model.json (default %(default)s)")
    parser.add_argument("--quantize", choices=QUANTIZE_MODES, default="none",
                        help="none: float32 TFLite (default); dynamic: int8 weights, ~4x smaller")
    parser.add_argument("--val-split", type=float, default=0.1,
                        help="share of training clips for validation (default 0.1)")
    parser.add_argument("--batch-size", type=int, default=16, help="windows per step (default 16)")
    parser.add_argument("--threshold-rule", choices=THRESHOLD_RULES, default=DEFAULT_THRESHOLD_RULE,
                        help="budget: what --false-alarms-per-day allows (weighted fusion); gamma: gamma-fit "
                             "quantile of validation scores; percentile: empirical (default %(default)s)")
    parser.add_argument("--false-alarms-per-day", type=float, default=DEFAULT_FALSE_ALARMS_PER_DAY, metavar="X",
                        help="false alerts per day of normal running the threshold allows, at 2 of 3 windows "
                             "every 10 s (rule budget; default %(default)g)")
    parser.add_argument("--threshold-quantile", type=float, default=DEFAULT_THRESHOLD_QUANTILE,
                        help="quantile for the threshold (default %(default)s)")
    parser.add_argument("--detectors", nargs="+", choices=DETECTOR_KINDS, metavar="KIND",
                        help=f"candidate detectors, from {', '.join(DETECTOR_KINDS)} "
                             f"(default: {' '.join(DEFAULT_DETECTORS)})")
    parser.add_argument("--fusion", choices=FUSION_RULES, default=DEFAULT_FUSION,
                        help="weighted: detectors and weights chosen from pseudo-anomalies; max / mean: every "
                             "detector asked for, standardised scores combined (default %(default)s)")
    parser.add_argument("--ae-pooling", default="mean", metavar="mean|top:F",
                        help="autoencoder frame pooling: mean (default) or top:F, the mean of the worst share F "
                             "of frames, e.g. top:0.05")
    parser.add_argument("--no-test-auc", action="store_true", help="do not score the held-out test clips")
    parser.add_argument("--quiet", action="store_true", help="print only the bundle path")


def run(args: argparse.Namespace) -> int:
    import os

    from edge_monitor.commands.common import fail

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # hide TensorFlow's start-up chatter (errors raise anyway)

    from edge_monitor.audio.audio_io import AudioFileError
    from trainer.datasets import DatasetError
    from trainer.defaults import parse_channels
    from trainer.train import TrainConfig, TrainingError, train_bundle

    try:
        channels = parse_channels(args.channels)
        clip_lo, clip_hi = parse_clip(args.clip)
        ae_pooling = parse_pooling(args.ae_pooling)
    except ValueError as exc:
        return fail("train", f"{exc}", 2, program="edge-monitor-train")
    if args.epochs < 1 or args.batch_size < 1:
        return fail("train", "--epochs and --batch-size must be at least 1", 2, program="edge-monitor-train")
    if not args.false_alarms_per_day > 0:
        return fail("train", "--false-alarms-per-day must be above 0", 2, program="edge-monitor-train")
    if not 0.0 < args.threshold_quantile < 1.0:
        return fail("train", "--threshold-quantile must be between 0 and 1", 2, program="edge-monitor-train")
    import importlib.util

    # The default detectors are NumPy; `make demo` installs no TensorFlow and a Pi has no scikit-learn.
    needs = [("tensorflow", "autoencoder")] if "autoencoder" in (args.detectors or ()) else []
    needs += [] if args.no_test_auc else [("sklearn", "report")]
    for module, extra in needs:
        if importlib.util.find_spec(module) is None:
            what = "the autoencoder" if module == "tensorflow" else "the held-out test AUC (or --no-test-auc)"
            return fail("train", f"{what} needs {module}: pip install -e '.[{extra}]'", 1,
                        program="edge-monitor-train")
    config = TrainConfig(
        epochs=args.epochs, seed=args.seed, arch=args.arch, channels=channels, clip_lo=clip_lo, clip_hi=clip_hi,
        quantize=args.quantize,
        val_split=args.val_split, batch_size=args.batch_size, threshold_rule=args.threshold_rule,
        threshold_quantile=args.threshold_quantile,
        machine_ids=tuple(args.machine_ids) if args.machine_ids else None, score_test=not args.no_test_auc,
        detectors=tuple(args.detectors) if args.detectors else None, fusion=args.fusion, ae_pooling=ae_pooling,
        false_alarms_per_day=args.false_alarms_per_day,
    )
    try:
        result = train_bundle(args.data_dir, args.out, config, progress=None if args.quiet else _stderr)
    except (DatasetError, TrainingError, AudioFileError) as exc:
        return fail("train", f"{exc}", 1, program="edge-monitor-train")
    meta = result.meta
    if not args.quiet:
        thr = meta["threshold"]
        print(f"threshold {thr['value']:.6g} ({thr['description']})")
        if "test" in meta:
            print(f"held-out test AUC {meta['test']['auc']:.4f}")
    print(f"model bundle: {result.bundle_dir}")
    return 0


def parse_pooling(text: str):  # noqa: ANN201 - edge_monitor.model.detectors.Pooling
    """``"mean"`` or ``"top:0.05"`` -> :class:`edge_monitor.model.detectors.Pooling`."""
    from edge_monitor.model.detectors import Pooling

    kind, _, frac = text.partition(":")
    try:
        return Pooling(kind.strip(), float(frac) if frac else 0.01)
    except ValueError as exc:
        raise ValueError(f"--ae-pooling: {exc} (use mean or top:F, e.g. top:0.05)") from None


def _fmt_bound(v: float | None) -> str:
    return "none" if v is None else f"{v:g}"


def parse_clip(text: str) -> tuple[float | None, float | None]:
    """``"-1,2"`` -> ``(-1.0, 2.0)``; ``"none"`` on a side means no bound there."""
    parts = [p.strip().lower() for p in text.split(",")]
    if len(parts) != 2:
        raise ValueError(f"--clip must be LO,HI (e.g. 0,1 or -1,2 or 0,none), got {text!r}")
    try:
        lo, hi = (None if p in ("none", "") else float(p) for p in parts)
    except ValueError:
        raise ValueError(f"--clip must be two numbers or 'none', got {text!r}") from None
    if lo is not None and hi is not None and hi <= lo:
        raise ValueError(f"--clip: HI must be above LO, got {text!r}")
    return lo, hi


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
