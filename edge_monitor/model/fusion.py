"""Fusing several detectors' window scores into one, with a rule fitted on normal data only.

Each detector's score is standardised by its own distribution on held-out
*normal* windows (``z = (score - mean) / std``: "how many normal standard
deviations above a typical normal window"), so scores of different units
(a reconstruction MSE, a Mahalanobis distance) become comparable; the fused
score is the largest z (``max``: any detector that sees something is heard) or
their mean (``mean``). The detector with the largest z is the one that
*fired*: its band, time and kind explain the alert. Rule ``none`` keeps a
single detector's raw score, which is how bundles before detectors scored.

Rule ``weighted`` (bundles from ``train`` and ``learn`` since the selection of
:mod:`edge_monitor.model.select`): each detector's score is mapped through its
own normal distribution on a log scale, robustly (``z = (log(score) -
median) / (1.4826 * MAD)`` of the log out-of-fold scores, so a few unusual
training clips do not widen it), and the positive parts are combined as a
weighted power mean, ``(sum w z+^3 / sum w)^(1/3)``: between a mean (a weak
member cannot dilute a strong one away) and a max (a member with a small
weight cannot raise an alarm alone; one with weight 0 is not in the bundle).
The fused score is >= 0; the detector with the largest ``w z+^3`` fired.

    >>> f = Fusion("max", {"a": NormalStats(1.0, 0.5), "b": NormalStats(10.0, 2.0)})
    >>> f.fuse({"a": 2.0, "b": 12.0})
    FusedScore(score=2.0, fired='a', z={'a': 2.0, 'b': 1.0})
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

__all__ = ["RULES", "POWER", "NormalStats", "FusedScore", "Fusion", "weighted_power_mean"]

#: Scores at or below this are taken as this before the log (a distance of exactly 0).
_TINY = 1e-12

RULES = ("none", "max", "mean", "weighted")

#: The power of the ``weighted`` rule's mean (1: weighted mean, large: weighted max).
POWER = 3.0


@dataclass(frozen=True)
class NormalStats:
    """Mean and standard deviation of one detector's scores on held-out normal windows."""

    mean: float
    std: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.mean) and math.isfinite(self.std) and self.std > 0):
            raise ValueError(f"normal statistics need a finite mean and a positive std, got {self.mean}, {self.std}")

    @classmethod
    def robust_log(cls, scores: np.ndarray) -> NormalStats:
        """Median and scaled MAD (1.4826 x, the std of a normal) of ``log(scores)``: the ``weighted`` rule's."""
        s = np.log(np.maximum(np.asarray(scores, dtype=np.float64), _TINY))
        if s.size < 2:
            raise ValueError(f"need at least 2 normal scores to standardise, got {s.size}")
        median = float(np.median(s))
        mad = 1.4826 * float(np.median(np.abs(s - median)))
        # A floor: ten windows of a very steady machine can give a MAD near zero.
        return cls(median, max(mad, 0.05 * float(s.std()), 1e-3))

    @classmethod
    def of(cls, scores: np.ndarray) -> NormalStats:
        """From normal window scores; a floor keeps a constant detector from dividing by zero."""
        s = np.asarray(scores, dtype=np.float64)
        if s.size < 2:
            raise ValueError(f"need at least 2 normal scores to standardise, got {s.size}")
        mean = float(s.mean())
        std = float(s.std(ddof=1))
        return cls(mean, max(std, 1e-9 + 1e-6 * abs(mean)))


@dataclass(frozen=True)
class FusedScore:
    """The fused window score, the detector that fired and every detector's z."""

    score: float
    fired: str
    z: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Fusion:
    """A fusion rule and the normal statistics it standardises with.

    Attributes:
        rule: ``"none"`` (one detector, raw score), ``"max"`` or ``"mean"`` of
            the z-scores, or ``"weighted"`` (see the module docstring).
        stats: detector name -> :class:`NormalStats` (every detector for
            ``max``/``mean``; of the log scores for ``weighted``).
        weights: detector name -> weight > 0 (``weighted`` only).
    """

    rule: str = "none"
    stats: Mapping[str, NormalStats] = field(default_factory=dict)
    weights: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(f"fusion rule must be one of {', '.join(RULES)}, got {self.rule!r}")
        if self.rule == "weighted":
            bad = [n for n, w in self.weights.items() if not (math.isfinite(w) and w > 0)]
            if bad or not self.weights:
                raise ValueError(f"weighted fusion needs a positive weight per detector, got {dict(self.weights)}")

    def z(self, name: str, score: float | np.ndarray) -> np.ndarray:
        """The standardised score(s) of one detector (on the log scale for ``weighted``)."""
        st = self.stats[name]
        x = np.asarray(score, dtype=np.float64)
        if self.rule == "weighted":
            x = np.log(np.maximum(x, _TINY))
        return (x - st.mean) / st.std

    def fuse(self, scores: Mapping[str, float]) -> FusedScore:
        """Fuse ``{detector name: raw window score}``."""
        if not scores:
            raise ValueError("no detector scores to fuse")
        if self.rule == "none":
            if len(scores) != 1:
                raise ValueError(f"fusion 'none' takes one detector, got {len(scores)}")
            (name, value), = scores.items()
            return FusedScore(float(value), name, {})
        z = {name: float(self.z(name, v)) for name, v in scores.items()}
        if self.rule == "weighted":
            names = list(scores)
            parts = np.array([self.weights[n] * max(z[n], 0.0) ** POWER for n in names])
            fused = weighted_power_mean(np.array([[z[n]] for n in names]), np.array([self.weights[n] for n in names]))
            return FusedScore(float(fused[0]), names[int(np.argmax(parts))], z)
        fired = max(z, key=lambda n: z[n])
        value = z[fired] if self.rule == "max" else float(np.mean(list(z.values())))
        return FusedScore(value, fired, z)

    def fuse_many(self, scores: Mapping[str, np.ndarray]) -> np.ndarray:
        """Vectorised :meth:`fuse` over windows: ``{name: (n,)}`` -> ``(n,)`` fused scores."""
        if self.rule == "none":
            (only,) = scores.values()
            return np.asarray(only, dtype=np.float64)
        z = np.stack([self.z(n, v) for n, v in scores.items()])
        if self.rule == "weighted":
            return weighted_power_mean(z, np.array([self.weights[n] for n in scores]))
        fused: np.ndarray = z.max(axis=0) if self.rule == "max" else z.mean(axis=0)
        return fused

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"rule": self.rule,
                               "normal": {n: {"mean": s.mean, "std": s.std} for n, s in self.stats.items()}}
        if self.rule == "weighted":
            out.update(scale="log", power=POWER, weights=dict(self.weights))
        return out

    @classmethod
    def from_dict(cls, data: object, names: tuple[str, ...]) -> Fusion:
        """Parse model.json's ``fusion``; every detector in ``names`` needs its normal statistics."""
        if not isinstance(data, dict):
            raise ValueError(f"'fusion' must be an object, got {data!r}")
        rule = str(data.get("rule", "none"))
        raw = data.get("normal") or {}
        if not isinstance(raw, dict):
            raise ValueError("'fusion.normal' must map detector names to {mean, std}")
        stats = {str(n): NormalStats(float(v["mean"]), float(v["std"])) for n, v in raw.items()}
        weights: dict[str, float] = {}
        if rule == "weighted":
            raw_w = data.get("weights")
            if not isinstance(raw_w, dict):
                raise ValueError("'fusion.weights' must map detector names to weights")
            weights = {str(n): float(w) for n, w in raw_w.items()}
            if data.get("scale", "log") != "log" or float(data.get("power", POWER)) != POWER:
                raise ValueError(f"weighted fusion: this edge_monitor knows scale 'log' and power {POWER:g}")
            missing_w = [n for n in names if n not in weights]
            if missing_w:
                raise ValueError(f"no fusion weight for detector(s) {', '.join(missing_w)}")
        fusion = cls(rule, stats, weights)
        if rule == "none" and len(names) != 1:
            raise ValueError(f"rule 'none' takes one detector, the bundle has {len(names)}")
        missing = [n for n in names if rule != "none" and n not in stats]
        if missing:
            raise ValueError(f"no normal statistics for detector(s) {', '.join(missing)}")
        return fusion


def weighted_power_mean(z: np.ndarray, weights: np.ndarray, power: float = POWER) -> np.ndarray:
    """``(sum_m w_m max(z_m, 0)^p / sum_m w_m)^(1/p)`` over the first axis: ``(m, n)`` z, ``(m,)`` w -> ``(n,)``.

    Only positive evidence counts (a window quieter than normal in one
    detector's view is not made "more normal" by it), and the power ``p``
    sits between a mean (1) and a max (infinity).
    """
    w = np.asarray(weights, dtype=np.float64)[:, None]
    pos = np.maximum(np.asarray(z, dtype=np.float64), 0.0)
    return np.asarray(((w * pos**power).sum(axis=0) / w.sum()) ** (1.0 / power))
