#!/usr/bin/env python3
"""How steady is the budget threshold? The same budget, other sets of members, two tail estimates.

    .venv/bin/python bench/bench_threshold.py [--only valve-60,synth-hard] [--budget 1]

For each set (``bench_model_choice.datasets``) and each candidate set (the default
four, the three before the subspace), a bundle is trained with
``train``'s recipe restricted to those candidates; its threshold (rule ``budget``:
the half-normal tail from the median of the positive fused out-of-fold scores,
``edge_monitor.model.threshold.fit_budget_threshold``) is set beside a second
estimate of the same budget: a Gaussian copula of the members' out-of-fold z
scores (their correlation kept), 200,000 draws fused with the bundle's weights,
the quantile the budget allows. Both are scored on the test clips: recall and the
share of normals above. Not a test of the recipe (the recipe never sees a test
label): a measure of how much the threshold of one budget moves with what the
tail is estimated from. About 2 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parents[1]
for p in (REPO, REPO / "bench"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

import numpy as np  # noqa: E402

COMPOSITIONS = {
    "default (4)": ("profile", "frames", "frames_mean", "subspace"),
    "before subspace (3)": ("profile", "frames", "frames_mean"),
}


def fused(z: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The ``weighted`` fusion of ``(n, m)`` z scores (``edge_monitor.model.fusion``, p = 3)."""
    return (np.maximum(z, 0.0) ** 3 @ (w / w.sum())) ** (1.0 / 3.0)


def measure(name: str, root: Path, kinds: tuple[str, ...], out: Path, budget: float) -> dict:
    from bench_model_choice import log

    from edge_monitor.features.frontend import FeatureParams, model_frames
    from edge_monitor.model.bundle import load_bundle
    from edge_monitor.model.fit import NUMPY_CANDIDATES, fit_numpy_detectors
    from edge_monitor.model.fusion import NormalStats
    from edge_monitor.model.scorer import Scorer
    from edge_monitor.model.threshold import window_rate
    from trainer.evaluate import evaluation_clips, score_clips
    from trainer.train import TrainConfig, load_windows, select_clips, train_bundle

    res = train_bundle(root, out / name / "-".join(kinds),
                       TrainConfig(detectors=kinds, score_test=False, false_alarms_per_day=budget), progress=None)
    bundle = load_bundle(res.bundle_dir)
    weights = dict(bundle.fusion.weights)  # rule weighted (one candidate alone would be rule none, raw scores)
    names = list(weights)
    # The members' out-of-fold scores, as train computed them, standardised as the fusion does.
    params = FeatureParams()
    train, _ = select_clips(root)
    db, groups = load_windows(train, params, model_frames(params.window_frames))
    fit = fit_numpy_detectors([s for s in NUMPY_CANDIDATES if s.name in weights], db, groups)
    stats = {n: NormalStats.robust_log(fit.oof_scores[n]) for n in names}
    z = np.stack([(np.log(np.maximum(fit.oof_scores[n], 1e-12)) - stats[n].mean) / stats[n].std for n in names],
                 axis=1)
    corr = np.atleast_2d(np.corrcoef(z.T)) if len(names) > 1 else np.ones((1, 1))
    draws = np.random.default_rng(0).multivariate_normal(np.zeros(len(names)), corr, size=200_000)
    w = np.array([weights[n] for n in names])
    copula = float(np.quantile(fused(draws, w), 1.0 - window_rate(budget)))
    scorer = Scorer(bundle)
    clips, _ = evaluation_clips(root, None, bundle.doc.training)
    results, _ = score_clips(scorer, clips)
    s = np.array([r.score for r in results])
    anomalous = np.array([r.clip.label == "anomaly" for r in results])
    row = {"dataset": name, "members": " + ".join(f"{n} {weights[n]:.2f}" for n in names),
           "normal_max": float(s[~anomalous].max())}
    for label, thr in (("budget", scorer.threshold), ("copula", copula)):
        row[label] = (thr, float(np.mean(s[anomalous] > thr)), float(np.mean(s[~anomalous] > thr)))
    log(f"{name} {'+'.join(kinds)}: budget {row['budget'][0]:.3f}, copula {copula:.3f}")
    return row


def main(argv: list[str] | None = None) -> int:
    from bench_model_choice import datasets

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "threshold")
    ap.add_argument("--only", default="valve-60,valve-10,synth,synth-hard",
                    help="comma-separated dataset names (bench_model_choice.py's)")
    ap.add_argument("--budget", type=float, default=1.0, help="false alerts per day (default 1)")
    args = ap.parse_args(argv)
    sets = datasets(REPO / "bench" / "out" / "model_choice", {s.strip() for s in args.only.split(",")})
    rows = [measure(name, root, kinds, args.out, args.budget)
            for name, root in sets.items() for kinds in COMPOSITIONS.values()]
    print(f"\nThreshold of {args.budget:g} false alert(s) a day (2 of 3 windows, 10 s), two tail estimates; "
          "recall / FPR of the test clips\n")
    print("| data | members (weight) | highest test normal | budget rule: threshold, recall / FPR "
          "| copula: threshold, recall / FPR |")
    print("|---|---|---:|---:|---:|")
    for r in rows:
        cells = [f"{t:.3f}, {rec:.2f} / {fpr:.2f}" for t, rec, fpr in (r["budget"], r["copula"])]
        print(f"| {r['dataset']} | {r['members']} | {r['normal_max']:.2f} | {cells[0]} | {cells[1]} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
