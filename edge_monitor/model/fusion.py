"""Fusing several detectors' window scores into one, with a rule fitted on normal data only.

Each detector's score is standardised by its own distribution on held-out
*normal* windows (``z = (score - mean) / std``: "how many normal standard
deviations above a typical normal window"), so scores of different units
(a reconstruction MSE, a Mahalanobis distance) become comparable; the fused
score is the largest z (``max``: any detector that sees something is heard) or
their mean (``mean``). The detector with the largest z is the one that
*fired*: its band, time and kind explain the alert. Rule ``none`` keeps a
single detector's raw score, which is how bundles before detectors scored.

    >>> f = Fusion("max", {"a": NormalStats(1.0, 0.5), "b": NormalStats(10.0, 2.0)})
    >>> f.fuse({"a": 2.0, "b": 12.0})
    FusedScore(score=2.0, fired='a', z={'a': 2.0, 'b': 1.0})
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["RULES", "NormalStats", "FusedScore", "Fusion"]

RULES = ("none", "max", "mean")


@dataclass(frozen=True)
class NormalStats:
    """Mean and standard deviation of one detector's scores on held-out normal windows."""

    mean: float
    std: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.mean) and math.isfinite(self.std) and self.std > 0):
            raise ValueError(f"normal statistics need a finite mean and a positive std, got {self.mean}, {self.std}")

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
        rule: ``"none"`` (one detector, raw score), ``"max"`` or ``"mean"`` of the z-scores.
        stats: detector name -> :class:`NormalStats` (every detector for ``max``/``mean``).
    """

    rule: str = "none"
    stats: Mapping[str, NormalStats] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(f"fusion rule must be one of {', '.join(RULES)}, got {self.rule!r}")

    def fuse(self, scores: Mapping[str, float]) -> FusedScore:
        """Fuse ``{detector name: raw window score}``."""
        if not scores:
            raise ValueError("no detector scores to fuse")
        if self.rule == "none":
            if len(scores) != 1:
                raise ValueError(f"fusion 'none' takes one detector, got {len(scores)}")
            (name, value), = scores.items()
            return FusedScore(float(value), name, {})
        z = {name: (float(v) - self.stats[name].mean) / self.stats[name].std for name, v in scores.items()}
        fired = max(z, key=lambda n: z[n])
        value = z[fired] if self.rule == "max" else float(np.mean(list(z.values())))
        return FusedScore(value, fired, z)

    def fuse_many(self, scores: Mapping[str, np.ndarray]) -> np.ndarray:
        """Vectorised :meth:`fuse` over windows: ``{name: (n,)}`` -> ``(n,)`` fused scores."""
        if self.rule == "none":
            (only,) = scores.values()
            return np.asarray(only, dtype=np.float64)
        z = np.stack([(np.asarray(v, dtype=np.float64) - self.stats[n].mean) / self.stats[n].std
                      for n, v in scores.items()])
        return z.max(axis=0) if self.rule == "max" else z.mean(axis=0)

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule,
                "normal": {n: {"mean": s.mean, "std": s.std} for n, s in self.stats.items()}}

    @classmethod
    def from_dict(cls, data: Any, names: tuple[str, ...]) -> Fusion:
        """Parse model.json's ``fusion``; every detector in ``names`` needs its normal statistics."""
        if not isinstance(data, dict):
            raise ValueError(f"'fusion' must be an object, got {data!r}")
        rule = str(data.get("rule", "none"))
        raw = data.get("normal") or {}
        if not isinstance(raw, dict):
            raise ValueError("'fusion.normal' must map detector names to {mean, std}")
        stats = {str(n): NormalStats(float(v["mean"]), float(v["std"])) for n, v in raw.items()}
        fusion = cls(rule, stats)
        if rule == "none" and len(names) != 1:
            raise ValueError(f"rule 'none' takes one detector, the bundle has {len(names)}")
        missing = [n for n in names if rule != "none" and n not in stats]
        if missing:
            raise ValueError(f"no normal statistics for detector(s) {', '.join(missing)}")
        return fusion
