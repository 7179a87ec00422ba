"""Explanations of a fixed set of windows stay what they were (``tests/data/explain_golden.json``).

The rules in ``tests/test_explain.py`` check each kind on its own; this file pins every field of the
explanation (kind, range, period, level, text, peak, bands, impact times, share, detector) for ~50
constructed windows that reach every branch: tones with and without harmonics, impact trains, single
bursts, broadband rises, level shifts, clipped inputs, unclipped ``db``, raw samples, frames masked
by a sensor fault, the training level per band, and both references of a bundle. Any change to the
explanation's arithmetic or wording shows here as a diff against the stored file.

To record a deliberate change: ``python -m tests.test_explain_golden > tests/data/explain_golden.json``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from edge_monitor.decide.explain import BundleExplainer, Explainer, Explanation
from edge_monitor.features.frontend import FeatureParams
from edge_monitor.features.model_input import MinMaxNorm
from edge_monitor.model.scorer import WindowScore

GOLDEN = Path(__file__).parent / "data" / "explain_golden.json"
PARAMS = FeatureParams()
N_MELS, FRAMES = PARAMS.n_mels, 312
NORM = MinMaxNorm(lo=(-80.0,) * N_MELS, hi=(-40.0,) * N_MELS)
RECON = np.full((N_MELS, FRAMES), 0.5)


def _normal(rng: np.random.Generator) -> np.ndarray:
    return np.clip(0.5 + 0.05 * rng.standard_normal((N_MELS, FRAMES)), 0.0, 1.0)


def _ws(x: np.ndarray, recon: np.ndarray = RECON, **kw: object) -> WindowScore:
    err = (x - recon) ** 2
    return WindowScore(float(err.mean()), err.mean(axis=1), err.mean(axis=0), x, recon, **kw)  # type: ignore[arg-type]


def _explainers() -> dict[str, Explainer]:
    rng = np.random.default_rng(0)
    val = np.array([_ws(_normal(rng)).band_error for _ in range(30)])
    stats = {"mean": val.mean(axis=0), "p99": np.percentile(val, 99, axis=0)}
    threshold = float(np.max([((_normal(rng) - RECON) ** 2).mean() for _ in range(10)]) * 1.02)
    levels = -60.0 + 0.5 * rng.standard_normal(N_MELS)
    headroom = MinMaxNorm(lo=NORM.lo, hi=NORM.hi, clip_lo=-1.0, clip_hi=2.0)
    return {
        "plain": Explainer(PARAMS, NORM, stats, threshold=threshold),
        "no_threshold": Explainer(PARAMS, NORM, stats),
        "levels": Explainer(PARAMS, NORM, stats, threshold=threshold, band_level_db=levels),
        "headroom": Explainer(PARAMS, headroom, stats, threshold=threshold),
        "unbounded": Explainer(PARAMS, MinMaxNorm(lo=NORM.lo, hi=NORM.hi, clip_lo=None, clip_hi=None), stats,
                               threshold=threshold),
    }


def _cases(ex: dict[str, Explainer]) -> Iterator[tuple[str, Explanation]]:
    """(name, explanation) for every window of the fixed set."""
    plain = ex["plain"]
    bundle = BundleExplainer({"recon": plain, "mean": ex["levels"]})
    # Hand-made windows, one per rule.
    rng = np.random.default_rng(1)
    x = _normal(rng)
    on = (np.arange(FRAMES) // 20) % 3 != 0
    x[70, on] += 0.3
    x[71, on] += 0.15
    yield "tone", plain(_ws(np.clip(x, 0, 1)))
    x = _normal(np.random.default_rng(2))
    x[37] += 0.15
    x[52] += 0.3
    yield "harmonics", plain(_ws(np.clip(x, 0, 1)))
    x = _normal(np.random.default_rng(3))
    x[60:, np.arange(7, FRAMES, 25)] += 0.4
    yield "impact_train", plain(_ws(np.clip(x, 0, 1)))
    x = _normal(np.random.default_rng(4))
    x[40:, 150] += 0.5
    yield "single_impact", plain(_ws(np.clip(x, 0, 1)))
    x = _normal(np.random.default_rng(4))
    x[40:, [60, 200]] += 0.5
    yield "two_impacts", plain(_ws(np.clip(x, 0, 1)))
    x = _normal(np.random.default_rng(4))
    x[20:110] += 0.12 * np.random.default_rng(44).standard_normal((90, FRAMES))
    yield "rough", plain(_ws(np.clip(x, 0, 1)))
    x = _normal(np.random.default_rng(5))
    x[50:100] += 0.15 + 0.03 * np.random.default_rng(55).standard_normal((50, FRAMES))
    yield "broadband", plain(_ws(np.clip(x, 0, 1)))
    x = _normal(np.random.default_rng(6))
    x[30:90] -= 0.2
    yield "quieter", plain(_ws(np.clip(x, 0, 1)))
    x = _normal(np.random.default_rng(6))
    x[30:90] += 0.04 * np.random.default_rng(66).standard_normal((60, FRAMES)) * 3
    yield "rougher", plain(_ws(np.clip(x, 0, 1)))
    yield "shift_up", plain(_ws(np.clip(_normal(np.random.default_rng(6)) + 0.2, 0, 1)))
    yield "shift_down", plain(_ws(np.clip(_normal(np.random.default_rng(6)) - 0.15, 0, 1)))
    yield "normal", plain(_ws(_normal(np.random.default_rng(11))))
    yield "normal_no_threshold", ex["no_threshold"](_ws(_normal(np.random.default_rng(11))))
    # Unclipped levels: db, clip bounds, and the training level per band.
    db = -80.0 + 40.0 * _normal(np.random.default_rng(7))
    db[70] += 30.0
    xc = np.clip((db + 80.0) / 40.0, 0, 1)
    yield "tone_clipped", plain(_ws(xc))
    yield "tone_db", plain(_ws(xc), db=db)
    yield "tone_db_on_score", plain(_ws(xc, db=db))
    yield "tone_levels", ex["levels"](_ws(xc), db=db)
    yield "tone_levels_clipped", ex["levels"](_ws(xc))
    for name in ("headroom", "unbounded"):
        e = ex[name]
        for rise in (30.0, 70.0):
            d = -80.0 + 40.0 * _normal(np.random.default_rng(7))
            d[70] += rise
            yield f"{name}_{rise:.0f}", e(_ws(e.norm.apply(d).astype(np.float64)))
    d = -80.0 + 40.0 * _normal(np.random.default_rng(6)) + 20.0
    yield "shift_headroom", ex["headroom"](_ws(ex["headroom"].norm.apply(d).astype(np.float64)))
    yield "shift_clipped", plain(_ws(NORM.apply(d).astype(np.float64)))
    yield "shift_db", plain(_ws(NORM.apply(d).astype(np.float64)), db=d)
    yield "shift_levels_db", ex["levels"](_ws(NORM.apply(d).astype(np.float64)), db=d)
    # Raw samples: the log-mel is computed by the explanation.
    t = np.arange(int(PARAMS.sample_rate * 10.0)) / PARAMS.sample_rate
    srng = np.random.default_rng(9)
    tone = 0.05 * srng.standard_normal(t.size) + 0.2 * np.sin(2 * np.pi * 3100.0 * t)
    clicks = 0.05 * srng.standard_normal(t.size)
    for k in range(0, t.size - 200, int(0.7 * PARAMS.sample_rate)):
        clicks[k : k + 40] += 0.8 * srng.standard_normal(40)
    x = _normal(np.random.default_rng(12))
    x[95:100] += 0.3
    yield "samples_tone", plain(_ws(np.clip(x, 0, 1)), samples=tone.astype(np.float32))
    x = _normal(np.random.default_rng(13))
    x[50:, ::22] += 0.4
    yield "samples_clicks", plain(_ws(np.clip(x, 0, 1)), samples=clicks.astype(np.float32))
    # Frames lost to a sensor fault are left out (impact times stay on the window's clock).
    x = _normal(np.random.default_rng(3))
    x[60:, np.arange(7, FRAMES, 25)] += 0.4
    valid = np.ones(FRAMES, dtype=bool)
    valid[100:140] = False
    yield "impact_masked", plain(_ws(np.clip(x, 0, 1), valid=valid))
    yield "impact_masked_db", plain(_ws(np.clip(x, 0, 1), valid=valid), db=-80.0 + 40.0 * np.clip(x, 0, 1))
    # Both references of a bundle, named by the detector that fired.
    yield "bundle_recon", bundle(_ws(np.clip(x, 0, 1), detector="autoencoder"))
    yield "bundle_mean", bundle(_ws(np.clip(x, 0, 1), detector="profile", reference="mean"), db=-80 + 40 * x)
    # Random mixtures: tones, bursts, rises and shifts of random size and place.
    for seed in range(24):
        r = np.random.default_rng(100 + seed)
        x = _normal(r)
        if r.random() < 0.5:
            b = int(r.integers(5, N_MELS - 5))
            x[b : b + int(r.integers(1, 3))] += r.uniform(0.05, 0.5)
            if r.random() < 0.5 and 2 * b < N_MELS:
                x[min(N_MELS - 1, int(b * 1.4))] += r.uniform(0.05, 0.4)
        if r.random() < 0.5:
            lo = int(r.integers(0, 80))
            x[lo:, np.arange(int(r.integers(0, 20)), FRAMES, int(r.integers(8, 60)))] += r.uniform(0.1, 0.6)
        if r.random() < 0.4:
            lo = int(r.integers(0, 90))
            x[lo : lo + int(r.integers(10, 38))] += r.uniform(-0.2, 0.25)
        if r.random() < 0.2:
            x += r.uniform(-0.2, 0.2)
        yield f"mix_{seed:02d}", plain(_ws(np.clip(x, 0, 1)))


def _plain(v: object) -> object:
    """Floats at 10 significant digits (the last bits may differ between NumPy builds)."""
    if isinstance(v, float):
        return v if not math.isfinite(v) or v == 0 else float(f"{v:.10g}")
    if isinstance(v, list | tuple):
        return [_plain(i) for i in v]
    return v


def _record(e: Explanation) -> dict[str, object]:
    return {k: _plain(v) for k, v in vars(e).items()}


def explanations() -> dict[str, dict[str, object]]:
    return {name: _record(e) for name, e in _cases(_explainers())}


def test_explanations_of_the_fixed_windows_are_unchanged() -> None:
    stored = json.loads(GOLDEN.read_text(encoding="utf-8"))
    now = explanations()
    assert list(now) == list(stored)
    kinds = {rec["kind"] for rec in now.values()}
    assert kinds == {"tonal", "impact", "broadband", "level_shift", "none"}  # every rule is reached
    for name, rec in now.items():
        assert rec == stored[name], name


if __name__ == "__main__":
    print(json.dumps(explanations(), indent=1, ensure_ascii=False))
