"""Threshold rules: from scores of normal windows to the score above which a window is anomalous.

Shared by the trainer and ``edge-monitor learn`` (SciPy's ``stats`` is imported
only for the gamma fit, never by the daemon).

The default rule (``gamma``): fit a gamma distribution to the normal window
scores by maximum likelihood (``scipy.stats.gamma.fit``) and take its
``quantile`` (0.99 by default) — the DCASE 2020 baseline does the same with
0.9. Window scores are right-skewed (reconstruction MSEs, and fused detector
scores, which may go below zero: the fit's location is free), which a gamma fits
well, and a fitted quantile is steadier than an empirical 99th percentile of a
few dozen scores. When the fit fails or gives something implausible (not
finite, or below the median of the scores) or there are fewer than
:data:`MIN_GAMMA_SCORES` scores, the rule falls back to the
empirical ``quantile`` percentile and says so (``rule: "percentile"``).

Rule ``budget`` (the default for bundles with ``weighted`` fusion): the
threshold that a stated number of **false alerts per day** of normal running
allows, given the alert rule (an alert opens when ``k`` of the last ``n``
windows exceed it, one window every ``hop_seconds``). Windows of normal sound
taken as independent, a window rate ``p`` opens about
``windows_per_day * C(n-1, k-1) * p**k`` alerts a day (the window that
completes ``k`` exceedances among the last ``n``; the cooldown and the clear
rule only lower it), so ``p = (F / (windows_per_day * C(n-1, k-1)))**(1/k)``
(:func:`window_rate`): 1 a day at 2 of 3 and 10 s gives p = 0.0076. The
fused score is >= 0 and, on normal sound, its positive part behaves like the
positive half of a normal distribution (the largest member's z); its scale is
fitted from the *median* of the positive normal scores (``sigma =
median / 0.6745``), and the threshold is where that tail holds ``p``:
``sigma * isf(p / (2 q))`` with ``q`` the share of positive scores. The
median, unlike a high quantile or a maximum-likelihood fit, is not moved by
the few unusual training clips whose out-of-fold scores ran far above the
final model's scores on new normal audio (docs/model.md, "Threshold").
"""

from __future__ import annotations

import math
import statistics
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np

__all__ = ["RULES", "MIN_GAMMA_SCORES", "DEFAULT_FALSE_ALARMS_PER_DAY", "AlertBudget", "ThresholdFit",
           "fit_threshold", "fit_budget_threshold", "window_rate"]

RULES = ("gamma", "percentile")

#: The default budget: false alerts per day of normal running (docs/model.md, "Threshold").
DEFAULT_FALSE_ALARMS_PER_DAY = 1.0

#: The 0.75 quantile of a standard normal: the median of its positive half.
_HALF_NORMAL_MEDIAN = 0.6744897501960817


def window_rate(false_alarms_per_day: float, k: int = 2, n: int = 3, hop_seconds: float = 10.0) -> float:
    """The share of normal windows allowed above the threshold for ``false_alarms_per_day`` (see the module docstring).

    Raises:
        ValueError: a budget <= 0, ``k`` outside ``1..n`` or a hop <= 0.
    """
    if not (false_alarms_per_day > 0 and math.isfinite(false_alarms_per_day)):
        raise ValueError(f"false alarms per day must be a positive number, got {false_alarms_per_day}")
    if not 1 <= k <= n or hop_seconds <= 0:
        raise ValueError(f"need 1 <= k <= n and a positive hop, got k={k}, n={n}, hop {hop_seconds}")
    per_day = 86400.0 / hop_seconds
    return min(0.5, float((false_alarms_per_day / (per_day * math.comb(n - 1, k - 1))) ** (1.0 / k)))


@dataclass(frozen=True)
class AlertBudget:
    """A false-alarm budget and the tail model that turns it into a threshold (model.json ``threshold.budget``).

    Attributes:
        false_alarms_per_day: the budget (alerts a day of normal running).
        k, n, hop_seconds: the alert rule it assumes (``decision.k``, ``decision.n``, ``audio.hop_seconds``).
        window_rate: the share of normal windows allowed above the threshold (:func:`window_rate`).
        sigma: the scale of the positive half-normal fitted to the normal fused scores.
        share_positive: the share of normal fused scores above 0.
    """

    false_alarms_per_day: float
    k: int
    n: int
    hop_seconds: float
    window_rate: float
    sigma: float
    share_positive: float

    def threshold_for(self, false_alarms_per_day: float) -> float:
        """The threshold this tail model gives for another budget (same rule)."""
        return _tail_value(self.sigma, self.share_positive,
                           window_rate(false_alarms_per_day, self.k, self.n, self.hop_seconds))

    def alarms_per_day(self, threshold: float) -> float:
        """The false alerts a day this tail model expects at ``threshold`` (the inverse of :meth:`threshold_for`)."""
        tail = 2 * self.share_positive * (1.0 - statistics.NormalDist().cdf(max(threshold, 0.0) / self.sigma))
        p = min(1.0, tail)
        return 86400.0 / self.hop_seconds * math.comb(self.n - 1, self.k - 1) * p**self.k

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: object) -> AlertBudget:
        if not isinstance(data, dict):
            raise ValueError(f"'threshold.budget' must be an object, got {data!r}")
        return cls(false_alarms_per_day=float(data["false_alarms_per_day"]), k=int(data["k"]), n=int(data["n"]),
                   hop_seconds=float(data["hop_seconds"]), window_rate=float(data["window_rate"]),
                   sigma=float(data["sigma"]), share_positive=float(data["share_positive"]))


def _tail_value(sigma: float, share_positive: float, rate: float) -> float:
    """``sigma * isf(rate / (2 q))``: where the positive half-normal tail holds ``rate``; > 0."""
    tail = rate / (2.0 * share_positive)
    if tail >= 0.5:  # fewer positive normal scores than the budget allows: any positive score may alert
        return 1e-6
    return max(1e-6, sigma * statistics.NormalDist().inv_cdf(1.0 - tail))

#: Fewer scores than this make a three-parameter fit meaningless: use the percentile.
MIN_GAMMA_SCORES = 10



@dataclass(frozen=True)
class ThresholdFit:
    """A threshold and how it was chosen (stored as ``threshold`` in model.json).

    Attributes:
        value: the threshold on the window score (the fused detector score; a
            reconstruction MSE for an autoencoder-only bundle).
        rule: ``"gamma"`` or ``"percentile"`` (what was actually used).
        quantile: the quantile of the normal-score distribution, e.g. 0.99.
        n_scores: how many normal window scores it was fitted on.
        source: ``"validation"`` (training) or ``"calibration"`` (on-site normals).
        requested_rule: the rule asked for (differs from ``rule`` after a fallback).
        gamma: ``{"a", "loc", "scale"}`` when the gamma fit was used.
        note: why a fallback happened, if it did.
        budget: the false-alarm budget and its tail model (rule ``budget``).
    """

    value: float
    rule: str
    quantile: float
    n_scores: int
    source: str = "validation"
    requested_rule: str = "gamma"
    gamma: dict[str, float] = field(default_factory=dict)
    note: str = ""
    budget: AlertBudget | None = None

    def describe(self) -> str:
        """One line, e.g. ``gamma fit 0.99 quantile of 40 validation scores``."""
        b = self.budget
        if self.rule == "budget" and b is not None:
            return (f"{b.false_alarms_per_day:g} false alert(s) per day at {b.k} of {b.n} windows every "
                    f"{b.hop_seconds:g} s (window rate {b.window_rate:.2g}; half-normal tail of {self.n_scores} "
                    f"{self.source} scores)")
        what = "gamma fit" if self.rule == "gamma" else "empirical"
        return f"{what} {self.quantile:g} quantile of {self.n_scores} {self.source} window scores"

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        if not d["gamma"]:
            d.pop("gamma")
        if not d["note"]:
            d.pop("note")
        if d["budget"] is None:
            d.pop("budget")
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
        scores: window scores of normal windows (at least 2).
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


def fit_budget_threshold(scores: np.ndarray, false_alarms_per_day: float = DEFAULT_FALSE_ALARMS_PER_DAY,
                         k: int = 2, n: int = 3, hop_seconds: float = 10.0,
                         source: str = "out-of-fold") -> ThresholdFit:
    """The threshold on fused scores (>= 0) that ``false_alarms_per_day`` allows (see the module docstring).

    Args:
        scores: normal window scores of the bundle's fused rule (``weighted``), at least 2 above 0.
        false_alarms_per_day: the budget.
        k, n, hop_seconds: the alert rule (the daemon's defaults: 2 of 3, 10 s).
        source: recorded with the result (``"out-of-fold"``, ``"calibration"``).

    Raises:
        ValueError: a bad budget or rule, fewer than :data:`MIN_GAMMA_SCORES` scores or fewer than 2 above 0.
    """
    arr = np.asarray(scores, dtype=np.float64).ravel()
    arr = arr[np.isfinite(arr)]
    pos = arr[arr > 0]
    if arr.size < MIN_GAMMA_SCORES:
        raise ValueError(f"{arr.size} normal scores are too few for a tail fit (need {MIN_GAMMA_SCORES})")
    if pos.size < 2:
        raise ValueError(f"need at least 2 normal scores above 0 to fit the tail, got {pos.size} of {arr.size}")
    rate = window_rate(false_alarms_per_day, k, n, hop_seconds)
    budget = AlertBudget(false_alarms_per_day=float(false_alarms_per_day), k=int(k), n=int(n),
                         hop_seconds=float(hop_seconds), window_rate=rate,
                         sigma=float(np.median(pos)) / _HALF_NORMAL_MEDIAN, share_positive=pos.size / arr.size)
    value = _tail_value(budget.sigma, budget.share_positive, rate)
    return ThresholdFit(value=value, rule="budget", quantile=1.0 - rate, n_scores=int(arr.size), source=source,
                        requested_rule="budget", budget=budget)
