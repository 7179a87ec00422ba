"""Recogniser of ``broadband``: a wide range, sustained (louder, quieter or rougher running).

The last rule: a window that is anomalous and neither a tone nor impacts is
explained by the narrowest run of bands holding most of its excess error.
"""

from __future__ import annotations

import numpy as np

from edge_monitor.decide.explain.bands import Bands
from edge_monitor.decide.explain.explanation import ExplainSettings, Explanation
from edge_monitor.decide.explain.observation import Observation
from edge_monitor.decide.explain.wording import running_text

__all__ = ["broadband"]


def broadband(obs: Observation, bands: Bands, s: ExplainSettings) -> Explanation:
    """The ``broadband`` explanation: the band range carrying the excess, its level change."""
    n_mels = bands.n_mels
    sig, z, err = obs.sig, obs.z, obs.err
    weights = sig if float(sig.sum()) > 0 else np.maximum(z, 0.0)
    if float(weights.sum()) <= 0:
        weights = np.ones(n_mels)
    a, b = _narrowest_run(weights, s.range_share)
    # Extend over neighbours that carry a fair part of the run's excess (a
    # plateau is reported whole, not cut at 70 % of its width).
    level = 0.25 * float(weights[a : b + 1].mean())
    while a > 0 and float(weights[max(0, a - 2) : a].max()) >= level:
        a -= 1
    while b < n_mels - 1 and float(weights[b + 1 : b + 3].max()) >= level:
        b += 1
    prof = np.maximum(err[a : b + 1] - bands.err_mean[a : b + 1, None], 0.0).sum(axis=0)
    worse = np.flatnonzero(prof >= np.percentile(prof, 50))  # the frames that differ most
    lvl, at_least = bands.level(obs.in_db, obs.ref_db, obs.capped, a, b, worse)
    lo_hz, hi_hz = bands.hz(a, b)
    return Explanation(
        "broadband",
        lo_hz,
        hi_hz,
        None,
        lvl,
        running_text(lo_hz, hi_hz, lvl, at_least),
        peak_hz=float(bands.centres[int(np.argmax(weights))]),
        bands=(a, b),
    )


def _narrowest_run(weights: np.ndarray, share: float) -> tuple[int, int]:
    """Narrowest contiguous index run ``[a, b]`` whose weights sum to >= ``share`` of the total."""
    total = float(weights.sum())
    c = np.concatenate(([0.0], np.cumsum(weights)))
    need = share * total
    best = (0, len(weights) - 1)
    best_w = len(weights)
    # For each start a, the first end b with c[b+1] - c[a] >= need (c is monotone).
    ends = np.searchsorted(c, c[:-1] + need - 1e-12 * total, side="left") - 1
    for a, b in enumerate(ends):
        if b < len(weights) and b - a + 1 < best_w:
            best, best_w = (a, int(b)), int(b) - a + 1
    return best
