"""What the detector saw in one window, in the terms the recognisers use.

:func:`observe` takes a scored window (the model input ``x``, the detector's
reference ``y``, optionally the unclipped log-mel or the raw samples) and
returns an :class:`Observation`: the squared error per cell, each band's error
in units of its validation spread (``z``) and its excess above the validation
p99, the levels in dB now and as normal, and the cells whose level is only a
bound because the model input hit its clip. Frames touched by a sensor fault
are left out here, so no recogniser sees them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from edge_monitor.decide.explain.bands import Bands
from edge_monitor.features.frontend import logmel

if TYPE_CHECKING:
    from edge_monitor.model.scorer import WindowScore

__all__ = ["Observation", "observe"]


@dataclass(frozen=True)
class Observation:
    """One window as the recognisers see it (``F`` = valid frames).

    Attributes:
        x: ``(n_mels, F)`` the model input (scaled, clipped).
        y: ``(n_mels, F)`` the detector's reference (reconstruction or normal level).
        kept: indices of the valid frames in the window, ``None`` when all are valid.
        err: ``(n_mels, F)`` squared error ``(x - y) ** 2``.
        z: ``(n_mels,)`` each band's mean error in units of its validation spread.
        sig: ``(n_mels,)`` excess above the band's validation p99 (``max(z - 1, 0)``).
        evidence: spectral evidence: ``sum(max(z - 2, 0))``.
        db: ``(n_mels, F)`` the unclipped log-mel in dB, ``None`` when not given.
        in_db: ``(n_mels, F)`` the level now (dB): ``db``, else the model input's.
        ref_db: ``(n_mels, F)`` the level the detector expected (dB).
        capped: cells of ``x`` at the upper and lower clip bound (all False with ``db``).
        above: the window's score is above the bundle's threshold.
    """

    x: np.ndarray
    y: np.ndarray
    kept: np.ndarray | None
    err: np.ndarray
    z: np.ndarray
    sig: np.ndarray
    evidence: float
    db: np.ndarray | None
    in_db: np.ndarray
    ref_db: np.ndarray
    capped: tuple[np.ndarray, np.ndarray]
    above: bool


def observe(ws: WindowScore, bands: Bands, threshold: float | None, db: np.ndarray | None = None,
            samples: np.ndarray | None = None) -> Observation:
    """The :class:`Observation` of one scored window; see :meth:`Explainer.__call__` for the arguments.

    Raises:
        ValueError: ``input``/``recon`` or ``db`` of the wrong shape.
    """
    n = bands.n_mels
    if db is None:
        db = ws.db
    if db is None and samples is not None:
        db = logmel(np.asarray(samples, dtype=np.float32), bands.params)
    x = np.asarray(ws.input, dtype=np.float64)
    y = np.asarray(ws.recon, dtype=np.float64)
    if x.ndim != 2 or x.shape != y.shape or x.shape[0] != n:
        raise ValueError(f"input/recon must be ({n}, frames), got {x.shape} and {y.shape}")
    # Frames touched by a sensor fault (a dropout's zeros) say nothing about the
    # machine: explain the window from its valid frames only.
    valid = ws.valid
    kept = None
    if valid is not None and not np.all(valid[: x.shape[1]]):
        kept = np.flatnonzero(np.asarray(valid, dtype=bool)[: x.shape[1]])
        if db is not None and np.ndim(db) == 2 and np.shape(db)[1] >= x.shape[1]:
            db = np.asarray(db)[:, kept]
        x, y = x[:, kept], y[:, kept]
    n_mels, frames = x.shape
    err = (x - y) ** 2
    z = (err.mean(axis=1) - bands.err_mean) / bands.err_spread
    sig = np.maximum(z - 1.0, 0.0)  # excess above the band's validation p99, in p99 units
    evidence = float(np.maximum(z - 2.0, 0.0).sum())
    if db is not None:
        db = np.asarray(db, dtype=np.float64)
        if db.ndim != 2 or db.shape[0] != n_mels or db.shape[1] < frames:
            raise ValueError(f"db must be ({n_mels}, >= {frames}) dB, got {db.shape}")
    in_db = bands.to_db(x) if db is None else db[:, :frames]
    ref_db = bands.to_db(y)
    # Cells pinned at a clip bound of the model input: their level is a bound,
    # not a value. Only the clipped input has them (``db`` is exact).
    capped = bands.pinned(x) if db is None else (np.zeros_like(x, dtype=bool),) * 2
    above = threshold is not None and float(ws.score) > threshold
    return Observation(x, y, kept, err, z, sig, evidence, db, in_db, ref_db, (capped[0], capped[1]), above)
