"""A Gaussian model of normal feature vectors, scored by Mahalanobis distance. Pure NumPy.

The covariance is the Ledoit-Wolf shrinkage estimate (Ledoit & Wolf, "A
well-conditioned estimator for large-dimensional covariance matrices", 2004):
a blend of the sample covariance and a scaled identity whose weight is chosen
from the data. With few samples per dimension (ten 10 s clips of a new
machine: ten window profiles of 32 values) the sample covariance is singular
and its inverse useless; the shrunk one stays invertible and its
Mahalanobis distances keep their order. It equals scikit-learn's
``LedoitWolf().fit(X)`` (``tests/test_gaussian.py``), without scikit-learn on
the Pi.

    >>> g = GaussianModel.fit(np.random.default_rng(0).normal(size=(500, 4)))
    >>> g.sq_distance(np.zeros((1, 4))).shape
    (1,)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["GaussianModel", "ledoit_wolf", "finite_arrays"]


def finite_arrays(arrays: dict[str, np.ndarray], prefix: str, names: tuple[str, ...]) -> list[np.ndarray]:
    """``arrays[prefix + name]`` for each name, as float64; a detector's parameters read from ``detectors.npz``.

    Raises:
        KeyError: one is missing.
        ValueError: one holds NaN or infinity.
    """
    out = [np.asarray(arrays[f"{prefix}{name}"], dtype=np.float64) for name in names]
    if not all(np.all(np.isfinite(a)) for a in out):
        raise ValueError(f"{prefix}: not finite")
    return out


def ledoit_wolf(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """``(mean (d,), covariance (d, d), shrinkage in [0, 1])`` of samples ``x`` ``(n, d)``.

    The Ledoit-Wolf estimate ``(1 - s) * S + s * mu * I`` with ``S`` the
    maximum-likelihood covariance (divided by ``n``) and ``mu = trace(S) / d``.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"need at least 2 samples of shape (n, d), got {x.shape}")
    n, d = x.shape
    mean = x.mean(axis=0)
    xc = x - mean
    emp = xc.T @ xc / n
    mu = float(np.trace(emp)) / d
    x2 = xc**2
    beta_ = float(np.sum(x2.T @ x2)) / n
    delta_ = float(np.sum(emp**2))
    beta = (beta_ / n - delta_ / n) / d
    delta = (delta_ - 2.0 * mu * float(np.trace(emp)) + d * mu**2) / d
    beta = min(beta, delta)
    shrinkage = 0.0 if delta == 0 else beta / delta
    cov = (1.0 - shrinkage) * emp
    cov[np.diag_indices(d)] += shrinkage * mu
    return mean, cov, float(shrinkage)


@dataclass(frozen=True)
class GaussianModel:
    """Mean and precision (inverse covariance) of normal feature vectors.

    Attributes:
        mean: ``(d,)``.
        precision: ``(d, d)`` symmetric positive definite.
        std: ``(d,)`` the per-dimension standard deviation (the covariance's
            diagonal, square-rooted): explanations say which dimension moved
            by how many of these.
    """

    mean: np.ndarray
    precision: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray, floor: float = 1e-6) -> GaussianModel:
        """Fit to samples ``x`` ``(n, d)``, ``n >= 2``.

        ``floor`` (relative to the mean variance) keeps a model of constant
        dimensions (digital silence in a band) invertible.
        """
        mean, cov, _ = ledoit_wolf(x)
        d = cov.shape[0]
        scale = float(np.trace(cov)) / d
        cov[np.diag_indices(d)] += floor * (scale if scale > 0 else 1.0)
        precision = np.linalg.inv(cov)
        precision = (precision + precision.T) / 2.0
        return cls(mean=mean, precision=precision, std=np.sqrt(np.diag(cov)))

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])

    def sq_distance(self, x: np.ndarray) -> np.ndarray:
        """Squared Mahalanobis distance of each row of ``x`` ``(..., d)`` -> ``(...)``."""
        diff = np.asarray(x, dtype=np.float64) - self.mean
        d2: np.ndarray = np.einsum("...i,...i->...", diff @ self.precision, diff)
        return d2

    def contributions(self, x: np.ndarray) -> np.ndarray:
        """Each dimension's share of the squared distance, ``(..., d)`` (sums to ``sq_distance``).

        ``diff * (P @ diff)``: a dimension whose deviation the covariance does
        not explain carries a large positive share.
        """
        diff = np.asarray(x, dtype=np.float64) - self.mean
        share: np.ndarray = diff * (diff @ self.precision)
        return share

    def to_arrays(self, prefix: str) -> dict[str, np.ndarray]:
        return {f"{prefix}mean": self.mean, f"{prefix}precision": self.precision, f"{prefix}std": self.std}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str) -> GaussianModel:
        mean, precision, std = finite_arrays(arrays, prefix, ("mean", "precision", "std"))
        d = mean.shape[0]
        if mean.ndim != 1 or precision.shape != (d, d) or std.shape != (d,):
            raise ValueError(f"{prefix}: mean {mean.shape}, precision {precision.shape}, std {std.shape} disagree")
        return cls(mean=mean, precision=precision, std=std)
