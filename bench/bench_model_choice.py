#!/usr/bin/env python3
"""Which autoencoder and which input clipping: held-out numbers that pick the defaults.

    .venv/bin/python bench/bench_model_choice.py [--out bench/out/model_choice] [--epochs 15]
        [--ids id_00,id_02,id_04] [--n-train 40] [--n-test 15] [--seed 0] [--json FILE]

Generates a synthetic DCASE-layout dataset with the *current* generator
(``trainer.synth.generate_dataset``: per id ``--n-train`` normal training clips,
``--n-test`` normal and ``--n-test`` anomalous test clips, the anomalies cycling
through the three kinds) plus the same test clips at severity 4 ("loud":
the same events, louder), trains every candidate with
``trainer.train.train_bundle`` (the same code as ``edge-monitor-train train``)
and scores the held-out clips through the runtime path
(``MinMaxNorm.apply`` of the bundle + :class:`edge_monitor.scorer.Scorer`), so
every number is what the daemon would see. Prints a markdown table:

- AUC pooled over the ids and the mean of per-id AUCs (the DCASE convention),
  pAUC (``roc_auc_score(max_fpr=0.1)``, McClish-standardised), AUC per kind;
- recall (TPR) at the bundle's own threshold at severity 1 and 4, and the
  false-alarm rate (FPR) on the held-out normals;
- MMAC per window (``trainer.model.count_macs``) and TFLite ms per window
  (1 thread, median of 40 runs; the log-mel adds ~1-2 ms).

About 8-10 minutes on 2 cores with the defaults. One seed: with 45 + 45 test
clips, AUC differences of a few hundredths are noise.
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
]


def log(line: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


def make_data(out: Path, seed: int, ids: tuple[str, ...], n_train: int, n_test: int) -> tuple[Path, Path]:
    """``(machine folder at severity 1, test-only machine folder at severity 4)``; reused when present."""
    from trainer.synth import generate_dataset

    main, loud = out / "data", out / "data_loud"
    if not (main / "slider" / "metadata.csv").exists():
        generate_dataset(main, seed, machine_ids=ids, n_train=n_train, n_test_normal=n_test, n_test_anomaly=n_test)
    if not (loud / "slider" / "metadata.csv").exists():
        generate_dataset(loud, seed, machine_ids=ids, n_train=0, n_test_normal=n_test, n_test_anomaly=n_test,
                         severity=4.0)
    return main / "slider", loud / "slider"


def test_logmels(root: Path, frames: int) -> tuple[list, np.ndarray, np.ndarray, list[str]]:
    """Log-mel (dB, cropped) of every window of every test clip: ``(per-clip list of (w, n_mels, frames), labels, ids, kinds)``."""
    from edge_monitor import audio_io
    from edge_monitor.datasets import find_clips
    from edge_monitor.features import FeatureParams, logmel
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
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "model_choice")
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--seed", type=int, default=0, help="data and training seed")
    ap.add_argument("--ids", default="id_00,id_02,id_04")
    ap.add_argument("--n-train", type=int, default=40)
    ap.add_argument("--n-test", type=int, default=15, help="normal and anomalous test clips per id")
    ap.add_argument("--only", help="comma-separated substrings: run only matching candidates")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)

    from edge_monitor.bundle import load_bundle
    from edge_monitor.features import FeatureParams, model_frames
    from edge_monitor.scorer import Scorer
    from trainer.train import TrainConfig, train_bundle

    t_start = time.monotonic()
    ids = tuple(s.strip() for s in args.ids.split(",") if s.strip())
    root, loud_root = make_data(args.out, args.seed, ids, args.n_train, args.n_test)
    frames = model_frames(FeatureParams().window_frames)
    test = test_logmels(root, frames)
    loud = test_logmels(loud_root, frames)
    log(f"data ready: {root} ({time.monotonic() - t_start:.0f} s)")

    candidates = CANDIDATES
    if args.only:
        keys = [k.strip() for k in args.only.split(",")]
        candidates = [c for c in CANDIDATES if any(k in c[0] for k in keys)]
    rows = []
    for label, overrides in candidates:
        cfg = TrainConfig(epochs=args.epochs, seed=args.seed, score_test=False, **overrides)
        slug = label.replace(" ", "_").replace("/", "-").replace(",", "").replace("[", "").replace("]", "")
        t0 = time.monotonic()
        res = train_bundle(root, args.out / "bundles" / slug, cfg, progress=None)
        train_s = time.monotonic() - t0
        scorer = Scorer(load_bundle(res.bundle_dir), num_threads=1)
        thr = scorer.threshold
        m = metrics(clip_scores(scorer, test[0]), *test[1:], thr)
        ml = metrics(clip_scores(scorer, loud[0]), *loud[1:], thr)
        ms = tflite_ms(scorer, scorer.norm.apply(test[0][0][0]))
        row = {"model": label, **overrides, "channels": list(overrides.get("channels", [])),
               "macs": res.meta["model"]["macs_per_window"], "ms": ms, "train_s": train_s,
               "epochs_run": res.meta["training"]["epochs_run"], "threshold": thr, "sev1": m, "sev4": ml}
        rows.append(row)
        log(f"{label}: AUC {m['auc']:.3f} (per id {m['auc_per_id']:.3f}), pAUC {m['pauc']:.3f}, "
            f"TPR/FPR {m['tpr']:.2f}/{m['fpr']:.2f}, loud TPR {ml['tpr']:.2f}, {train_s:.0f} s")

    kinds = list(rows[0]["sev1"]["auc_by_kind"]) if rows else []
    print(f"\nHeld-out results: {len(ids)} ids x {args.n_train} training clips, {args.n_test} normal + "
          f"{args.n_test} anomalous test clips per id, {args.epochs} epochs, seed {args.seed}\n")
    print("| model | MMAC | ms | train s | AUC pooled | AUC per id | pAUC 0.1 | AUC " + " / ".join(kinds)
          + " | TPR / FPR at threshold | TPR sev 4 / FPR | AUC sev 4 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        m, ml = r["sev1"], r["sev4"]
        print(f"| {r['model']} | {r['macs'] / 1e6:.1f} | {r['ms']:.1f} | {r['train_s']:.0f} | {m['auc']:.3f} | "
              f"{m['auc_per_id']:.3f} | {m['pauc']:.3f} | "
              + " / ".join(f"{m['auc_by_kind'][k]:.2f}" for k in kinds)
              + f" | {m['tpr']:.2f} / {m['fpr']:.2f} | {ml['tpr']:.2f} / {ml['fpr']:.2f} | {ml['auc']:.3f} |")
    print(f"\n({time.monotonic() - t_start:.0f} s in all)")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
