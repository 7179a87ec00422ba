#!/usr/bin/env python3
"""Cost per 10 s window of each detector set, one thread, taking turns call by call.

    .venv/bin/python bench/bench_detector_cost.py [--bundle bench/out/bundle] [--out bench/out/detector_cost.json]

From the bench bundle (autoencoder + level profile + frame Gaussian) three
bundles are derived that differ only in their ``detectors`` (and fusion): the
autoencoder alone (every bundle before detectors), the profile + frame
detectors (the default), and all three. Each ``Scorer.score_window`` call is
the whole per-window path: log-mel, every detector, fusion, the explanation's
per-band errors. They are timed in turn on the same window, so a busy machine
slows them alike. The explanation (``edge_monitor.decide.explain``) runs only on the
window that opens an alert; it is timed apart.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from bench.common import finish, log  # noqa: E402

SETS = {"autoencoder only (before detectors)": ("autoencoder",),
        "profile + frames (default)": ("profile", "frames"),
        "all three (every detector on)": ("autoencoder", "profile", "frames")}


def derive(src: Path, dst: Path, kinds: tuple[str, ...]) -> Path:
    """A copy of ``src`` whose model.json keeps only ``kinds`` (fusion ``none`` for one detector)."""
    shutil.copytree(src, dst)
    meta = json.loads((dst / "model.json").read_text())
    meta["detectors"] = [d for d in meta["detectors"] if d["kind"] in kinds]
    if len(kinds) == 1:
        meta["fusion"] = {"rule": "none", "normal": {}}
        meta["threshold"]["value"] = 1.0  # a raw score's threshold must be positive; not used here
    else:
        meta["fusion"]["normal"] = {k: v for k, v in meta["fusion"]["normal"].items() if k in kinds}
    (dst / "model.json").write_text(json.dumps(meta))
    return dst


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", type=Path, default=REPO / "bench" / "out" / "bundle")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "detector_cost.json")
    ap.add_argument("--runs", type=int, default=300)
    args = ap.parse_args(argv)

    from edge_monitor.decide.explain import BundleExplainer
    from edge_monitor.model.bundle import load_bundle
    from edge_monitor.model.scorer import Scorer

    src = load_bundle(args.bundle)
    if set(src.detector_names) != {"autoencoder", "profile", "frames"}:
        raise SystemExit(f"{args.bundle}: needs a bundle of all three detectors (bench/common.py prepare)")
    rng = np.random.default_rng(0)
    t = np.arange(src.features.window_samples) / src.features.sample_rate
    x = (0.05 * rng.standard_normal(t.size) + 0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        scorers = {name: Scorer(load_bundle(derive(args.bundle, Path(tmp) / str(i), kinds)))
                   for i, (name, kinds) in enumerate(SETS.items())}
        times: dict[str, list[float]] = {n: [] for n in scorers}
        for s in scorers.values():
            s.score_window(x)
        for _ in range(args.runs):
            for name, s in scorers.items():
                t0 = time.perf_counter()
                s.score_window(x)
                times[name].append(time.perf_counter() - t0)
    full = Scorer(src)
    explain = BundleExplainer.from_bundle(src)
    ex_t = []
    ws = full.score_window(x)
    for _ in range(30):
        t0 = time.perf_counter()
        explain(ws)
        ex_t.append(time.perf_counter() - t0)
    rows = {n: {"median_ms": 1000 * float(np.median(v)), "p10_ms": 1000 * float(np.percentile(v, 10)),
                "p90_ms": 1000 * float(np.percentile(v, 90)), "detectors": list(SETS[n])} for n, v in times.items()}
    result = {"bench": "detector_cost", "runs": args.runs, "sets": rows,
              "explanation_ms": 1000 * float(np.median(ex_t)), "explanation_view": ws.reference,
              "target_ms": 5.0}
    for n, r in rows.items():
        log(f"{n}: {r['median_ms']:.2f} ms median (p10 {r['p10_ms']:.2f})")
    log(f"explanation of an alerting window ({ws.reference} view): {result['explanation_ms']:.1f} ms")
    finish(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
