"""Threshold rules: from scores of normal windows to the score above which a window is anomalous.

Shared by the trainer and ``edge-monitor learn`` (SciPy's ``stats`` is imported
only for the gamma fit, never by the daemon).

The default rule (``gamma``): fit a gamma distribution to the normal window
scores by maximum likelihood (``scipy.stats.gamma.fit``) and take its
``quantile`` (0.99 by default) — the DCASE 2020 baseline does the same with
0.9. Reconstruction MSEs are positive and right-skewed, which a gamma fits
well, and a fitted quantile is steadier than an empirical 99th percentile of a
few dozen scores. When the fit fails or gives something implausible (not
finite, or below the median of the scores) or there are fewer than
:data:`MIN_GAMMA_SCORES` scores, the rule falls back to the
empirical ``quantile`` percentile and says so (``rule: "percentile"``).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

__all__ = ["RULES", "MIN_GAMMA_SCORES", "ThresholdFit", "fit_threshold"]

RULES = ("gamma", "percentile")

#: Fewer scores than this make a three-parameter fit meaningless: use the percentile.
MIN_GAMMA_SCORES = 10



@dataclass(frozen=True)
class ThresholdFit:
    """A threshold and how it was chosen (stored as ``threshold`` in model.json).

    Attributes:
        value: the threshold on the window score (reconstruction MSE).
        rule: ``"gamma"`` or ``"percentile"`` (what was actually used).
        quantile: the quantile of the normal-score distribution, e.g. 0.99.
        n_scores: how many normal window scores it was fitted on.
        source: ``"validation"`` (training) or ``"calibration"`` (on-site normals).
        requested_rule: the rule asked for (differs from ``rule`` after a fallback).
        gamma: ``{"a", "loc", "scale"}`` when the gamma fit was used.
        note: why a fallback happened, if it did.
    """

    value: float
    rule: str
    quantile: float
    n_scores: int
    source: str = "validation"
    requested_rule: str = "gamma"
    gamma: dict[str, float] = field(default_factory=dict)
    note: str = ""

    def describe(self) -> str:
        """One line, e.g. ``gamma fit 0.99 quantile of 40 validation scores``."""
        what = "gamma fit" if self.rule == "gamma" else "empirical"
        return f"{what} {self.quantile:g} quantile of {self.n_scores} {self.source} window scores"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if not d["gamma"]:
            d.pop("gamma")
        if not d["note"]:
            d.pop("note")
        d["description"] = self.describe()
        return d


def _gamma_quantile(scores: np.ndarray, quantile: float) -> tuple[float, dict[str, float]]:
    from scipy import stats

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        candidates = []
        try:
            candidates.append(stats.gamma.fit(scores))  # free location, as the DCASE baseline
        except Exception:  # noqa: BLE001 - scipy raises several kinds on degenerate data
            pass
        try:
            candidates.append(stats.gamma.fit(scores, floc=0.0))
        except Exception:  # noqa: BLE001
            pass
    median = float(np.median(scores))
    for a, loc, scale in candidates:
        value = float(stats.gamma.ppf(quantile, a, loc=loc, scale=scale))
        # A plausible fit puts the threshold above the bulk of the normals and not
        # absurdly far beyond the largest one.
        if math.isfinite(value) and median < value < 10 * float(scores.max()) + 1e-12:
            return value, {"a": float(a), "loc": float(loc), "scale": float(scale)}
    raise ValueError("gamma fit failed or was implausible")


def fit_threshold(scores: np.ndarray, quantile: float = 0.99, rule: str = "gamma",
                  source: str = "validation") -> ThresholdFit:
    """Choose a threshold from normal window scores.

    Args:
        scores: reconstruction MSEs of normal windows (at least 2).
        quantile: in (0, 1); the share of normal windows expected below the threshold.
        rule: ``"gamma"`` (default, with percentile fallback) or ``"percentile"``.
        source: recorded with the result (``"validation"`` or ``"calibration"``).
    """
    if rule not in RULES:
        raise ValueError(f"rule must be one of {', '.join(RULES)}, got {rule!r}")
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"quantile must be in (0, 1), got {quantile}")
    arr = np.asarray(scores, dtype=np.float64).ravel()
    arr = arr[np.isfinite(arr)]
    if arr.size < 2:
        raise ValueError(f"need at least 2 finite normal scores to fit a threshold, got {arr.size}")
    note = ""
    if rule == "gamma":
        if arr.size < MIN_GAMMA_SCORES:
            note = f"{arr.size} scores are too few for a gamma fit (need {MIN_GAMMA_SCORES})"
        elif np.ptp(arr) <= 0:
            note = "all scores equal; gamma fit impossible"
        else:
            try:
                value, params = _gamma_quantile(arr, quantile)
                return ThresholdFit(value=value, rule="gamma", quantile=quantile, n_scores=int(arr.size),
                                    source=source, requested_rule=rule, gamma=params)
            except ValueError as exc:
                note = str(exc)
    value = float(np.percentile(arr, 100.0 * quantile))
    if value <= 0:
        value = float(arr.max()) * 1.01 + 1e-9  # a zero threshold would flag every window
    return ThresholdFit(value=value, rule="percentile", quantile=quantile, n_scores=int(arr.size),
                        source=source, requested_rule=rule, note=note)
