"""What the explainer knows of one model, fixed at start-up: its bands, their normal error and level.

:class:`Bands` holds the mel band edges in Hz, the per-band error statistics of
the validation normals, the dB scaling of the model input and, when the bundle
has it, the training level per band; and it answers the questions every
recogniser asks: how wide a band range is in octaves, which cells of the model
input sit at its clip, and how far a band range's level is from normal.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike

from edge_monitor.features.frontend import FeatureParams, mel_band_edges_hz
from edge_monitor.features.model_input import MinMaxNorm

__all__ = ["Bands", "power_db_sum"]


def _stat(stats: Mapping[str, ArrayLike | None], names: Sequence[str], n_mels: int) -> np.ndarray | None:
    for name in names:
        value = stats.get(name)
        if value is not None:
            arr = np.asarray(value, dtype=np.float64).reshape(-1)
            if arr.shape != (n_mels,):
                raise ValueError(f"band_error_stats[{name!r}] has {arr.size} values, expected {n_mels}")
            return arr
    return None


def power_db_sum(db: np.ndarray, axis: int) -> np.ndarray:
    """Level of the power sum along ``axis`` (dB)."""
    m = np.max(db, axis=axis, keepdims=True)
    out: np.ndarray = np.squeeze(m, axis=axis) + 10.0 * np.log10(np.sum(10.0 ** ((db - m) / 10.0), axis=axis))
    return out


class Bands:
    """The bands of one model as the explanation sees them.

    Args:
        params: the bundle's front-end parameters.
        norm: the bundle's normalisation (per-band ``lo``/``hi`` in dB).
        band_error_stats: per-band error of the validation normals:
            ``{"mean": [n_mels], "p99": [n_mels]}`` (another high percentile
            key such as ``"p95"`` is accepted).
        band_level_db: per-band mean training level in dB (``n_mels``),
            optional; without it the detector's reference is the normal level.

    Attributes:
        err_mean, err_spread: ``(n_mels,)`` the validation mean error and its
            spread up to the high percentile (a band's ``z`` unit).
        edges: ``(n_mels + 2,)`` the mel filter edges (Hz); band ``b`` spans
            ``edges[b] .. edges[b + 2]`` and is centred on ``centres[b]``.
        lo, span: ``(n_mels,)`` the dB scaling: ``db = lo + x * span``.
        frame_s: seconds between frames.
        impact_ranges: the band ranges ``(a, b)`` an impact is looked for in:
            1 and 2 octaves wide, in half-octave steps.
    """

    def __init__(
        self,
        params: FeatureParams,
        norm: MinMaxNorm,
        band_error_stats: Mapping[str, ArrayLike | None],
        band_level_db: Sequence[float] | np.ndarray | None = None,
    ) -> None:
        self.params = params
        self.norm = norm
        n = params.n_mels
        if len(norm.lo) != n:
            raise ValueError(f"normalisation has {len(norm.lo)} bands, features have {n}")
        mean = _stat(band_error_stats, ("mean",), n)
        high = _stat(band_error_stats, ("p99", "p995", "p999", "p95", "p90"), n)
        if mean is None or high is None:
            raise ValueError("band_error_stats needs per-band 'mean' and 'p99' lists")
        self.err_mean = mean
        # A band with no spread in validation would make every error infinite z.
        self.err_spread = np.maximum(high - mean, 1e-6 + 0.05 * np.abs(mean))
        self.band_level_db = None if band_level_db is None else np.asarray(band_level_db, dtype=np.float64).reshape(n)
        self.edges = mel_band_edges_hz(params)
        self.centres = self.edges[1:-1]
        self.lo = np.asarray(norm.lo, dtype=np.float64)
        self.span = np.asarray(norm.hi, dtype=np.float64) - self.lo
        self.frame_s = params.hop_length / params.sample_rate
        self.log2c = np.log2(np.maximum(self.centres, 1.0))
        ranges: set[tuple[int, int]] = set()
        top = float(self.log2c[-1])
        for width in (1.0, 2.0):
            start = float(self.log2c[0])
            while start + width <= top + 0.5:
                idx = np.flatnonzero((self.log2c >= start) & (self.log2c < start + width))
                if idx.size >= 4:
                    ranges.add((int(idx[0]), int(idx[-1])))
                start += 0.5
        self.impact_ranges = sorted(ranges) or [(0, n - 1)]

    @property
    def n_mels(self) -> int:
        return self.params.n_mels

    def hz(self, a: int, b: int) -> tuple[float, float]:
        """The frequency range of bands ``a..b`` (Hz, filter edges)."""
        return float(self.edges[a]), float(self.edges[b + 2])

    def octaves(self, a: int, b: int) -> float:
        """Width of bands ``a..b`` in octaves (filter edges)."""
        return float(np.log2(max(self.edges[b + 2], 1.0) / max(self.edges[a], 1.0)))

    def to_db(self, x: np.ndarray) -> np.ndarray:
        """Model input ``(n_mels, frames)`` -> level in dB (the scaling undone)."""
        return self.lo[:, None] + x * self.span[:, None]

    def pinned(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cells of the model input ``x`` at its upper / lower clip bound (all False for a ``None`` bound)."""
        # The clip sets values to the bound exactly; the margin covers float32 rounding.
        hi, lo = self.norm.clip_hi, self.norm.clip_lo
        at_hi = x >= hi - 1e-3 if hi is not None else np.zeros_like(x, dtype=bool)
        at_lo = x <= lo + 1e-3 if lo is not None else np.zeros_like(x, dtype=bool)
        return at_hi, at_lo

    def level(self, in_db: np.ndarray, ref_db: np.ndarray, capped: tuple[np.ndarray, np.ndarray], a: int, b: int,
              frames_idx: np.ndarray | None) -> tuple[float, bool]:
        """Level change in bands ``a..b`` against normal (dB), and whether it is a lower bound.

        Per frame the bands' powers are summed; the mean power over the frames
        ``frames_idx`` (all when ``None``) is compared. The normal level is the
        bundle's training level when known, else the reference of the same
        frames. ``capped`` are the cells pinned at the upper and lower clip
        bound: when a quarter of the cells used sit at the bound on the side of
        the change, the change is a lower bound.
        """
        sl = slice(a, b + 1)
        cols = np.arange(in_db.shape[1]) if frames_idx is None or len(frames_idx) == 0 else np.asarray(frames_idx)
        now = power_db_sum(in_db[sl][:, cols], axis=0)
        if self.band_level_db is not None:
            ref = np.full(now.shape, float(power_db_sum(self.band_level_db[sl][:, None], axis=0)[0]))
        else:
            ref = power_db_sum(ref_db[sl][:, cols], axis=0)
        change = 10.0 * math.log10(float(np.mean(10.0 ** (now / 10.0)))) - 10.0 * math.log10(
            float(np.mean(10.0 ** (ref / 10.0)))
        )
        pinned = capped[0] if change > 0 else capped[1]
        at_least = bool(change != 0 and float(np.mean(pinned[sl][:, cols])) >= 0.25)
        return change, at_least
