"""The principal subspace of normal spectro-temporal patches: a linear autoencoder. Pure NumPy.

A *patch* is ``context`` consecutive frames of coarse-band levels, flattened to
``d = context * n_bands`` values (the DCASE 2020 baseline's input is the same
idea: 5 frames of 128 mels). Normal patches are standardised per value and
their covariance's leading eigenvectors kept: the ``k`` that carry
``variance`` of the normal variance, at most ``max_components``. A patch's
score is the mean squared part of its standardised values *outside* that
subspace, what the normal patterns cannot rebuild. That is the reconstruction
error of a linear autoencoder with ``k`` hidden units, fitted exactly rather
than by gradient descent, so a Pi fits it in a second with NumPy alone. It
sees what the frame Gaussian misses: a change of the *time pattern* of a
sound (a rattle, a stick-slip, a rhythm gone irregular) whose per-frame
spectrum stays within normal.

The covariance is accumulated window by window (``d x d``: 320 x 320 for the
defaults), so fitting never holds every patch in memory. Fitting is in float64;
scoring projects in float32 (a quarter of the time on x86, within 1e-4 of the
float64 result; the same code scores at training and at run time).

    >>> rng = np.random.default_rng(0)
    >>> m = SubspaceModel.fit_patches([rng.normal(size=(300, 8))], variance=0.5)
    >>> m.residual(np.zeros((2, 8))).shape
    (2,)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from edge_monitor.model.gaussian import finite_arrays

__all__ = ["SubspaceModel", "patches"]


def patches(bands: np.ndarray, context: int) -> np.ndarray:
    """``(n_bands, frames)`` -> ``(frames - context + 1, context * n_bands)``: each run of ``context`` frames.

    Row ``t`` is frames ``t .. t + context - 1``, frame-major (``[frame t's
    bands..., frame t+1's bands...]``). Fewer frames than ``context`` give no row.
    """
    b = np.asarray(bands, dtype=np.float64)
    n = b.shape[1] - context + 1
    if n < 1:
        return np.empty((0, context * b.shape[0]))
    return np.concatenate([b[:, i:i + n] for i in range(context)], axis=0).T


@dataclass(frozen=True)
class SubspaceModel:
    """Standardisation and principal subspace of normal patches.

    Attributes:
        mean: ``(d,)`` the normal patches' mean (dB).
        scale: ``(d,)`` their standard deviation (dB, floored).
        basis: ``(k, d)`` orthonormal rows spanning the normal subspace of the
            standardised patches (``k >= 1``, ``k < d``).
    """

    mean: np.ndarray
    scale: np.ndarray
    basis: np.ndarray

    @classmethod
    def fit_patches(cls, chunks: Iterable[np.ndarray], variance: float = 0.9,
                    max_components: int = 128) -> SubspaceModel:
        """Fit from normal patches given in chunks (each ``(n_i, d)``; at least 2 patches in all).

        Raises:
            ValueError: fewer than 2 patches, or chunks of different widths.
        """
        if not 0.0 < variance < 1.0:
            raise ValueError(f"variance must be in (0, 1), got {variance}")
        n, s1, s2 = 0, None, None
        for x in chunks:
            x = np.asarray(x, dtype=np.float64)
            if x.shape[0] == 0:
                continue
            if s1 is None:
                s1, s2 = np.zeros(x.shape[1]), np.zeros((x.shape[1], x.shape[1]))
            elif x.shape[1] != s1.shape[0]:
                raise ValueError(f"patches of width {x.shape[1]} and {s1.shape[0]}")
            n += x.shape[0]
            s1 += x.sum(axis=0)
            s2 += x.T @ x
        if s1 is None or s2 is None or n < 2:
            raise ValueError(f"need at least 2 patches to fit a subspace, got {n}")
        mean = s1 / n
        cov = s2 / n - np.outer(mean, mean)
        var = np.maximum(np.diag(cov), 0.0)
        # A constant value (digital silence in a band) must not divide by zero.
        scale = np.sqrt(var + 1e-6 * max(float(var.mean()), 1e-12))
        corr = cov / np.outer(scale, scale)
        eigval, eigvec = np.linalg.eigh((corr + corr.T) / 2.0)
        eigval, eigvec = np.maximum(eigval[::-1], 0.0), eigvec[:, ::-1]
        d = mean.shape[0]
        total = float(eigval.sum())
        k = int(np.searchsorted(np.cumsum(eigval), variance * total) + 1) if total > 0 else 1
        k = max(1, min(k, max_components, d - 1))
        return cls(mean=mean, scale=scale, basis=np.ascontiguousarray(eigvec[:, :k].T))

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])

    @property
    def components(self) -> int:
        return int(self.basis.shape[0])

    @cached_property
    def _float32(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(mean, 1 / scale, basis)`` in float32, for scoring."""
        return (self.mean.astype(np.float32), (1.0 / self.scale).astype(np.float32),
                np.ascontiguousarray(self.basis, dtype=np.float32))

    def _standardised(self, x: np.ndarray) -> np.ndarray:
        mean, inv_scale, _ = self._float32
        z: np.ndarray = (np.asarray(x, dtype=np.float32) - mean) * inv_scale
        return z

    def residual_values(self, x: np.ndarray) -> np.ndarray:
        """``(n, d)`` float32: the standardised patches' parts outside the normal subspace."""
        z = self._standardised(x)
        basis = self._float32[2]
        out: np.ndarray = z - (z @ basis.T) @ basis
        return out

    def residual(self, x: np.ndarray) -> np.ndarray:
        """``(n,)`` mean squared residual of each patch of ``x`` ``(n, d)`` (1.0 ~ one normal std per value)."""
        z = self._standardised(x)
        proj = z @ self._float32[2].T
        # ||z||^2 - ||V z||^2 (V orthonormal): k*d multiplies, not 2*k*d.
        r = np.einsum("ij,ij->i", z, z, dtype=np.float64) - np.einsum("ij,ij->i", proj, proj, dtype=np.float64)
        out: np.ndarray = np.maximum(r, 0.0) / self.dim
        return out

    def to_arrays(self, prefix: str) -> dict[str, np.ndarray]:
        return {f"{prefix}mean": self.mean, f"{prefix}scale": self.scale, f"{prefix}basis": self.basis}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str) -> SubspaceModel:
        mean, scale, basis = finite_arrays(arrays, prefix, ("mean", "scale", "basis"))
        d = mean.shape[0]
        if mean.ndim != 1 or scale.shape != (d,) or basis.ndim != 2 or basis.shape[1] != d:
            raise ValueError(f"{prefix}: mean {mean.shape}, scale {scale.shape}, basis {basis.shape} disagree")
        if np.any(scale <= 0):
            raise ValueError(f"{prefix}: scale must be positive")
        return cls(mean=mean, scale=scale, basis=basis)
