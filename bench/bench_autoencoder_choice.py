#!/usr/bin/env python3
"""Which autoencoder and which input clipping: held-out numbers that pick the defaults.

    .venv/bin/python bench/bench_autoencoder_choice.py [--out bench/out/autoencoder_choice] [--epochs 15]
        [--ids id_00,id_02,id_04] [--n-train 40] [--n-test 15] [--seed 0] [--json FILE]

Generates a synthetic DCASE-layout dataset with the *current* generator
(``trainer.synth.generate_dataset``: per id ``--n-train`` normal training clips,
``--n-test`` normal and ``--n-test`` anomalous test clips, the anomalies cycling
through the three kinds) plus the same test clips at severity 0.5 ("subtle":
the same events at half strength), trains every candidate with
``trainer.train.train_bundle`` (the same code as ``edge-monitor-train train``)
and scores the held-out clips through the runtime path
(``MinMaxNorm.apply`` of the bundle + :class:`edge_monitor.model.scorer.Scorer`), so
every number is what the daemon would see. Prints a markdown table:

- AUC pooled over the ids and the mean of per-id AUCs (the DCASE convention),
  pAUC (``roc_auc_score(max_fpr=0.1)``, McClish-standardised), AUC per kind;
- recall (TPR) at the bundle's own threshold at severity 1 and 0.5, and the
  false-alarm rate (FPR) on the held-out normals;
- MMAC per window (``trainer.model.count_macs``) and TFLite ms per window
  (1 thread, median of 40 runs; the log-mel adds ~1-2 ms).

About 6 minutes on 2 cores with the defaults (two seeds, 8 candidates). With 45 + 45 test
clips per seed, AUC differences of a few hundredths are noise.
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

#: (label, TrainConfig overrides). "[0, 1]" is the old clipping; "[-1, 2]" keeps
#: one training range of headroom on either side.
CANDIDATES: list[tuple[str, dict]] = [
    ("conv 8/16/32, clip [0, 1]", dict(arch="conv", channels=(8, 16, 32), clip_lo=0.0, clip_hi=1.0)),
    ("conv 8/16/32, clip [-1, 2]", dict(arch="conv", channels=(8, 16, 32), clip_lo=-1.0, clip_hi=2.0)),
    ("conv 4/8/16, clip [0, 1]", dict(arch="conv", channels=(4, 8, 16), clip_lo=0.0, clip_hi=1.0)),
    ("conv 4/8/16, clip [-1, 2]", dict(arch="conv", channels=(4, 8, 16), clip_lo=-1.0, clip_hi=2.0)),
    ("dense 5 frames, clip [0, 1]", dict(arch="dense", clip_lo=0.0, clip_hi=1.0)),
    ("dense 5 frames, clip [-1, 2]", dict(arch="dense", clip_lo=-1.0, clip_hi=2.0)),
    ("dense 5 frames, clip [0, 2]", dict(arch="dense", clip_lo=0.0, clip_hi=2.0)),
    ("dense 5 frames, no clip", dict(arch="dense", clip_lo=None, clip_hi=None)),
]


def log(line: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


def make_data(out: Path, seed: int, ids: tuple[str, ...], n_train: int, n_test: int) -> tuple[Path, Path]:
    """``(machine folder at severity 1, test-only machine folder at severity 0.5)``; reused when present."""
    from trainer.synth import generate_dataset

    main, subtle = out / "data", out / "data_subtle"
    if not (main / "slider" / "metadata.csv").exists():
        generate_dataset(main, seed, machine_ids=ids, n_train=n_train, n_test_normal=n_test, n_test_anomaly=n_test)
    if not (subtle / "slider" / "metadata.csv").exists():
        generate_dataset(subtle, seed, machine_ids=ids, n_train=0, n_test_normal=n_test, n_test_anomaly=n_test,
                         severity=0.5)
    return main / "slider", subtle / "slider"


def test_logmels(root: Path, frames: int) -> tuple[list, np.ndarray, np.ndarray, list[str]]:
    """Log-mel (dB, cropped) of every window of every test clip: ``(per-clip list of (w, n_mels, frames), labels, ids, kinds)``."""
    from edge_monitor.audio import audio_io
    from edge_monitor.features.frontend import FeatureParams, logmel
    from trainer.datasets import find_clips
    from trainer.synth import read_metadata

    params = FeatureParams()
    kind_of = {Path(r["file"]).name: r["anomaly_kind"] for r in read_metadata(root)}
    clips = sorted(find_clips(root, split="test"))
    dbs, labels, ids, kinds = [], [], [], []
    for c in clips:
        samples = audio_io.read_wav(c.path, sample_rate=params.sample_rate)
        windows = audio_io.clip_windows(samples, params.window_samples)
        dbs.append(np.stack([logmel(w, params)[:, :frames] for w in windows]))
        labels.append(int(c.label == "anomaly"))
        ids.append(c.machine_id)
        kinds.append(kind_of.get(c.path.name, "") if c.label == "anomaly" else "normal")
    return dbs, np.array(labels), np.array(ids), kinds


def clip_scores(scorer, dbs: list) -> np.ndarray:
    """Clip score = mean window score, each window through ``norm.apply`` + TFLite (the daemon's path)."""
    return np.array([np.mean([scorer.score_input(scorer.norm.apply(w)).score for w in db]) for db in dbs])


def metrics(scores: np.ndarray, labels: np.ndarray, ids: np.ndarray, kinds: list[str], thr: float) -> dict:
    from sklearn.metrics import roc_auc_score

    per_id = [roc_auc_score(labels[ids == m], scores[ids == m]) for m in sorted(set(ids))]
    normal = labels == 0
    by_kind = {}
    for k in sorted({k for k in kinds if k != "normal"}):
        sel = normal | np.array([x == k for x in kinds])
        by_kind[k] = float(roc_auc_score(labels[sel], scores[sel]))
    flagged = scores > thr
    return {
        "auc": float(roc_auc_score(labels, scores)),
        "auc_per_id": float(np.mean(per_id)),
        "pauc": float(roc_auc_score(labels, scores, max_fpr=0.1)),
        "auc_by_kind": by_kind,
        "tpr": float(flagged[labels == 1].mean()),
        "fpr": float(flagged[normal].mean()),
    }


def tflite_ms(scorer, x: np.ndarray, n: int = 40) -> float:
    scorer.model.run(x)
    t = []
    for _ in range(n):
        t0 = time.perf_counter()
        scorer.model.run(x)
        t.append(time.perf_counter() - t0)
    return 1000 * float(np.median(t))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "autoencoder_choice")
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--seeds", default="0,1", help="comma-separated seeds; each seed generates its own data "
                    "and trains every candidate (default %(default)s)")
    ap.add_argument("--ids", default="id_00,id_02,id_04")
    ap.add_argument("--n-train", type=int, default=40)
    ap.add_argument("--n-test", type=int, default=15, help="normal and anomalous test clips per id")
    ap.add_argument("--only", help="';'-separated substrings of candidate names: run only those")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)

    from edge_monitor.features.frontend import FeatureParams, model_frames
    from edge_monitor.model.bundle import load_bundle
    from edge_monitor.model.scorer import Scorer
    from trainer.train import TrainConfig, train_bundle

    t_start = time.monotonic()
    ids = tuple(s.strip() for s in args.ids.split(",") if s.strip())
    seeds = [int(v) for v in args.seeds.split(",") if v.strip()]
    frames = model_frames(FeatureParams().window_frames)
    candidates = CANDIDATES
    if args.only:
        keys = [k.strip() for k in args.only.split(";") if k.strip()]
        candidates = [c for c in CANDIDATES if any(k in c[0] for k in keys)]

    rows = []
    for seed in seeds:
        root, subtle_root = make_data(args.out / f"seed{seed}", seed, ids, args.n_train, args.n_test)
        test = test_logmels(root, frames)
        subtle = test_logmels(subtle_root, frames)
        log(f"seed {seed}: data ready: {root} ({time.monotonic() - t_start:.0f} s)")
        for label, overrides in candidates:
            cfg = TrainConfig(epochs=args.epochs, seed=seed, score_test=False, detectors=("autoencoder",), **overrides)
            slug = label.replace(" ", "_").replace("/", "-").replace(",", "").replace("[", "").replace("]", "")
            t0 = time.monotonic()
            res = train_bundle(root, args.out / f"seed{seed}" / "bundles" / slug, cfg, progress=None)
            train_s = time.monotonic() - t0
            scorer = Scorer(load_bundle(res.bundle_dir), num_threads=1)
            thr = scorer.threshold
            m = metrics(clip_scores(scorer, test[0]), *test[1:], thr)
            ml = metrics(clip_scores(scorer, subtle[0]), *subtle[1:], thr)
            ms = tflite_ms(scorer, scorer.norm.apply(test[0][0][0]))
            rows.append({"model": label, "seed": seed, **overrides, "channels": list(overrides.get("channels", [])),
                         "macs": res.meta["model"]["macs_per_window"], "ms": ms, "train_s": train_s,
                         "epochs_run": res.meta["training"]["epochs_run"], "threshold": thr, "sev1": m, "sev05": ml})
            log(f"seed {seed} {label}: AUC {m['auc']:.3f} (per id {m['auc_per_id']:.3f}), pAUC {m['pauc']:.3f}, "
                f"TPR/FPR {m['tpr']:.2f}/{m['fpr']:.2f}, AUC sev 0.5 {ml['auc']:.3f}, {train_s:.0f} s")

    kinds = list(rows[0]["sev1"]["auc_by_kind"]) if rows else []
    print(f"\nHeld-out results, mean over seeds {', '.join(map(str, seeds))} (each seed: its own data and "
          f"weights): {len(ids)} ids x {args.n_train} training clips, {args.n_test} normal + {args.n_test} "
          f"anomalous test clips per id, {args.epochs} epochs; TPR/FPR at the bundle's own threshold "
          f"(gamma 0.99 of the validation scores)\n")
    print("| model | MMAC | ms | train s | AUC pooled | AUC per id | pAUC 0.1 | AUC " + " / ".join(kinds)
          + " | TPR / FPR | AUC sev 0.5 | TPR sev 0.5 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")

    def mean(sel, f):
        return float(np.mean([f(r) for r in sel]))

    for label, _ in candidates:
        sel = [r for r in rows if r["model"] == label]
        print(f"| {label} | {sel[0]['macs'] / 1e6:.1f} | {mean(sel, lambda r: r['ms']):.1f} | "
              f"{mean(sel, lambda r: r['train_s']):.0f} | {mean(sel, lambda r: r['sev1']['auc']):.3f} | "
              f"{mean(sel, lambda r: r['sev1']['auc_per_id']):.3f} | {mean(sel, lambda r: r['sev1']['pauc']):.3f} | "
              + " / ".join(f"{mean(sel, lambda r: r['sev1']['auc_by_kind'][k]):.2f}" for k in kinds)
              + f" | {mean(sel, lambda r: r['sev1']['tpr']):.2f} / {mean(sel, lambda r: r['sev1']['fpr']):.2f} | "
              f"{mean(sel, lambda r: r['sev05']['auc']):.3f} | {mean(sel, lambda r: r['sev05']['tpr']):.2f} |")
    print("\nPer seed: AUC pooled / pAUC / TPR / FPR\n")
    print("| model | " + " | ".join(f"seed {s}" for s in seeds) + " |")
    print("|---|" + "---|" * len(seeds))
    for label, _ in candidates:
        cells = []
        for seed in seeds:
            r = next(r for r in rows if r["model"] == label and r["seed"] == seed)["sev1"]
            cells.append(f"{r['auc']:.3f} / {r['pauc']:.3f} / {r['tpr']:.2f} / {r['fpr']:.2f}")
        print(f"| {label} | " + " | ".join(cells) + " |")
    print(f"\n({time.monotonic() - t_start:.0f} s in all)")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
