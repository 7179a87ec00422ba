"""``edge-monitor-train evaluate MODEL_DIR DATA_DIR --out REPORT_DIR``."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "score labelled test clips with a bundle's detectors; write metrics, plots and index.html"
DESCRIPTION = """\
Score every test clip of DATA_DIR through the runtime scorer (the same
detectors and front end the daemon runs) and write a report to REPORT_DIR:

  metrics.json              AUC, pAUC (DCASE 2020, McClish), pAUC raw, precision,
                            recall, F1 at the bundle's threshold; per machine id
                            and the mean over ids; with domains (DCASE 2021-2025
                            names) also AUC source, AUC target and the official
                            score (harmonic mean of those and pAUC)
  scores.csv                one row per clip: path, machine id, label, score,
                            decision, machine, windows, domain, attributes
  roc.png, score_distributions.png, recon_*.png, training_curve.png
  index.html                one self-contained page with the table and every plot

DATA_DIR: a DCASE folder whose test split is used: 2020
(<machine>/test/{normal,anomaly}_id_XX_*.wav), 2022-2025
(<machine>/test/section_XX_{source,target}_test_{normal,anomaly}_NNNN_*.wav) or
2021 (the same names in <machine>/source_test/ and target_test/); a MIMII folder
(<machine>/id_XX/{normal,abnormal}/*.wav); a flat folder of such names; or a
folder of such machine folders. Unlabelled evaluation-set clips
(section_00_0000.wav) are refused: their labels are not in the names.
Anomaly is the positive class; a clip is flagged when its score > threshold.

examples:
  edge-monitor-train evaluate models/slider data/slider --out reports/slider
  edge-monitor-train evaluate models/valve dev_data/valve --ids section_00 --out reports/valve
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model_dir", metavar="MODEL_DIR", type=Path, help="model bundle directory")
    parser.add_argument("data_dir", metavar="DATA_DIR", type=Path, help="labelled clips (DCASE, MIMII or flat layout)")
    parser.add_argument("--out", "-o", metavar="REPORT_DIR", type=Path, required=True,
                        help="folder for metrics.json, scores.csv, plots and index.html (created if needed)")
    parser.add_argument("--ids", metavar="ID", nargs="+", default=None,
                        help="evaluate only these machine ids or sections (e.g. id_00 02, section_00; a bare "
                             "number means the one kind the data has)")
    parser.add_argument("--threads", type=int, default=1, metavar="N",
                        help="TFLite interpreter threads of an autoencoder (default 1)")
    parser.add_argument("--link-images", action="store_true",
                        help="reference the PNGs from index.html instead of embedding them (smaller page, "
                             "but it must stay next to the PNGs)")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress indication")


def run(args: argparse.Namespace) -> int:
    import importlib.util

    from edge_monitor.commands.common import fail

    # A runtime-only install (the Pi's) lacks the report's libraries: say which extra brings them.
    missing = [m for m in ("sklearn", "matplotlib") if importlib.util.find_spec(m) is None]
    if missing:
        return fail("evaluate", f"needs {' and '.join(missing)}: pip install -e '.[report]'", 1,
                    program="edge-monitor-train")
    from edge_monitor.model.bundle import BundleError
    from trainer.datasets import DatasetError
    from trainer.evaluate import evaluate
    from trainer.report import format_metrics_table

    try:
        ev = evaluate(args.model_dir, args.data_dir, args.out, machine_ids=args.ids, num_threads=args.threads,
                      embed_images=not args.link_images, progress=not args.quiet)
    except (BundleError, DatasetError) as exc:
        return fail("evaluate", f"{exc}", 1, program="edge-monitor-train")
    except OSError as exc:
        return fail("evaluate", f"{exc.filename or args.out}: {exc.strerror or exc}", 1, program="edge-monitor-train")
    print(format_metrics_table(ev.metrics))
    m, f = ev.metrics["n_misses"], ev.metrics["n_false_alarms"]
    print(f"at the threshold: {m} missed anomal{'y' if m == 1 else 'ies'}, {f} false alarm{'' if f == 1 else 's'} "
          "(by fault kind and each one explained in the report)")
    from trainer.operating import operating_lines

    print("\n".join(operating_lines(ev.metrics)))
    if ev.failures:
        print(f"{len(ev.failures)} clip(s) could not be scored (listed above and in metrics.json)")
    print(f"report: {ev.index_html.resolve()}")
    return 1 if ev.failures else 0
