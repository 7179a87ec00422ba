#!/usr/bin/env python3
"""Which detectors a bundle holds by default: a table on real and synthetic data.

    .venv/bin/python bench/bench_model_choice.py [--out bench/out/model_choice] [--epochs 15]
        [--only valve-60,synth] [--json FILE]

Every candidate is trained with ``trainer.train.train_bundle`` (the code of
``edge-monitor-train train``) and its held-out clips are scored through the
runtime :class:`edge_monitor.model.scorer.Scorer` and measured with
``trainer.evaluate.compute_metrics`` (the numbers ``edge-monitor-train
evaluate`` reports), so every figure is what the daemon would see. Datasets:

- ``valve-60``: the real DCASE 2023 valve of ``../shared/data/real-dev/valve``
  (60 normal training clips over two domains; 40 normal + 100 anomalous test
  clips), AUC source / target, pAUC and the DCASE official score;
- ``valve-10``: the same with the README's few-shot protocol (the first 5
  source and the first 5 target training clips by name);
- ``synth``: the synthetic slide rail at default severity (3 ids x 40
  training clips, 15 + 15 test clips per id, SNR 6 dB);
- ``synth-hard``: the same machines at SNR -6 dB with severity 0.5;
- ``samples-<type>``: each machine type of ``../shared/data/real-samples/``
  (2-8 clips per id: a sanity check, far too few for a meaningful AUC).

Candidates: the autoencoder alone (the default before detectors), the level
profile, the frame Gaussian, both NumPy detectors fused, and all three fused.
Cost per window is the median ``Scorer.score_window`` time (log-mel + every
detector + fusion) on one thread, and the explanation of an alerting window
(``edge_monitor.decide.explain``) is timed apart. Real datasets are skipped when
``../shared/data`` is absent. About 6 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

SHARED = REPO.parent / "shared" / "data"

#: (label, detectors)
CANDIDATES: list[tuple[str, tuple[str, ...]]] = [
    ("autoencoder (previous default)", ("autoencoder",)),
    ("profile", ("profile",)),
    ("frames", ("frames",)),
    ("profile + frames", ("profile", "frames")),
    ("autoencoder + profile + frames", ("autoencoder", "profile", "frames")),
]


def log(line: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


def _link_all(src: Path, dst: Path, names: list[str] | None = None) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for p in sorted(src.glob("*.wav")):
        if names is None or p.name in names:
            link = dst / p.name
            if not link.exists():
                link.symlink_to(p.resolve())


def datasets(out: Path, only: set[str] | None) -> dict[str, Path]:
    """name -> machine folder; synthetic ones are generated (cached under ``out``)."""
    from trainer.synth import generate_dataset

    found: dict[str, Path] = {}
    valve = SHARED / "real-dev" / "valve"
    if valve.is_dir():
        found["valve-60"] = valve
        few = out / "valve-10" / "valve"
        names = sorted(p.name for p in (valve / "train").glob("*.wav"))
        pick = [n for n in names if "_source_" in n][:5] + [n for n in names if "_target_" in n][:5]
        _link_all(valve / "train", few / "train", pick)
        _link_all(valve / "test", few / "test")
        found["valve-10"] = few
    else:
        log(f"{valve} is absent: real valve rows skipped")
    for name, kw in (("synth", {}), ("synth-hard", {"snr_db": -6.0, "severity": 0.5})):
        root = out / name
        if (only is None or name in only) and not (root / "slider" / "metadata.csv").exists():
            generate_dataset(root, 7, machine_ids=("id_00", "id_02", "id_04"), n_train=40, n_test_normal=15,
                             n_test_anomaly=15, **kw)
        found[name] = root / "slider"
    samples = SHARED / "real-samples"
    for d in sorted(samples.glob("*")) if samples.is_dir() else []:
        found[f"samples-{d.name}"] = d
    return {k: v for k, v in found.items() if only is None or k in only}


def window_ms(scorer, samples: np.ndarray, n: int = 30) -> float:
    scorer.score_window(samples)
    t = []
    for _ in range(n):
        t0 = time.perf_counter()
        scorer.score_window(samples)
        t.append(time.perf_counter() - t0)
    return 1000 * float(np.median(t))


def explain_ms(bundle, scorer, samples: np.ndarray, n: int = 10) -> float | None:
    from edge_monitor.decide.explain import explainers_for

    ex = explainers_for(bundle)
    if not ex:
        return None
    ws = scorer.score_window(samples)
    t = []
    for _ in range(n):
        t0 = time.perf_counter()
        ex[ws.reference](ws, db=ws.db)
        t.append(time.perf_counter() - t0)
    return 1000 * float(np.median(t))


def measure(name: str, root: Path, label: str, kinds: tuple[str, ...], out: Path, epochs: int) -> dict:
    from edge_monitor.audio import audio_io
    from edge_monitor.model.bundle import load_bundle
    from edge_monitor.model.scorer import Scorer
    from trainer.evaluate import compute_metrics, evaluation_clips, score_clips
    from trainer.train import TrainConfig, train_bundle

    slug = label.split(" (")[0].replace(" + ", "+")
    t0 = time.monotonic()
    res = train_bundle(root, out / "bundles" / name / slug, TrainConfig(epochs=epochs, detectors=kinds,
                                                                       score_test=False), progress=None)
    train_s = time.monotonic() - t0
    bundle = load_bundle(res.bundle_dir)
    scorer = Scorer(bundle)
    clips, _ = evaluation_clips(root, None, bundle.doc.training if bundle.doc else None)
    results, failures = score_clips(scorer, clips)
    m = compute_metrics(results, scorer.threshold, failures)
    samples = audio_io.clip_windows(audio_io.read_wav(clips[0].path, sample_rate=16000),
                                    bundle.features.window_samples)[0]
    row = {
        "dataset": name, "model": label, "detectors": list(kinds), "train_s": round(train_s, 1),
        "n_train_clips": res.meta["training"].get("train_clips", 0) + res.meta["training"].get("val_clips", 0),
        "auc": m.get("auc"), "pauc": m.get("pauc"), "auc_source": m.get("auc_source"),
        "auc_target": m.get("auc_target"), "official": m.get("official_score"),
        "tpr": m.get("recall"), "fpr": m["fp"] / max(1, m["fp"] + m["tn"]),
        "ms": window_ms(scorer, samples), "explain_ms": explain_ms(bundle, scorer, samples),
        "macs": res.meta["model"]["macs_per_window"],
    }
    log(f"{name} {label}: AUC {row['auc']:.3f} pAUC {row['pauc']:.3f} official "
        f"{row['official'] if row['official'] is None else round(row['official'], 3)} "
        f"{row['ms']:.2f} ms/window, trained in {train_s:.0f} s")
    return row


def _f(v: float | None, nd: int = 3) -> str:
    return "" if v is None else f"{v:.{nd}f}"


def table(rows: list[dict]) -> str:
    lines = ["| data | detectors | AUC | pAUC | AUC source / target | official | TPR / FPR at threshold "
             "| ms per window | MMAC |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        st = f"{_f(r['auc_source'])} / {_f(r['auc_target'])}" if r["auc_source"] is not None else ""
        rates = f"{_f(r['tpr'], 2)} / {_f(r['fpr'], 2)}" if r["tpr"] is not None else ""
        lines.append(f"| {r['dataset']} | {r['model']} | {_f(r['auc'])} | {_f(r['pauc'])} | {st} | "
                     f"{_f(r['official'])} | {rates} | {r['ms']:.2f} | {r['macs'] / 1e6:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "model_choice")
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--only", help="comma-separated dataset names (valve-60, valve-10, synth, synth-hard, "
                                   "samples-slider, ...)")
    ap.add_argument("--models", help="comma-separated substrings of candidate labels to run")
    ap.add_argument("--json", type=Path, help="also write the rows here")
    args = ap.parse_args(argv)
    only = {s.strip() for s in args.only.split(",")} if args.only else None
    cands = CANDIDATES
    if args.models:
        keys = [k.strip() for k in args.models.split(",")]
        cands = [c for c in CANDIDATES if any(k == c[0] or k == c[0].split(" (")[0] for k in keys)]
    t_start = time.monotonic()
    rows = []
    for name, root in datasets(args.out, only).items():
        for label, kinds in cands:
            try:
                rows.append(measure(name, root, label, kinds, args.out, args.epochs))
            except Exception as exc:  # noqa: BLE001 - one failing row must not lose the table
                log(f"{name} {label}: failed: {exc}")
    print(f"\nDetectors by dataset ({(time.monotonic() - t_start) / 60:.1f} min; cost on one thread of this "
          f"machine; TPR / FPR of clips at the bundle's own threshold)\n")
    print(table(rows))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
