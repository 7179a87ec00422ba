"""Recogniser of ``level_shift``: the whole spectrum moved by about the same number of dB.

Checked first, on every window: a microphone that was moved or re-gained
changes the level of every band alike, which no machine fault does.
"""

from __future__ import annotations

import numpy as np

from edge_monitor.decide.explain.bands import Bands
from edge_monitor.decide.explain.explanation import ExplainSettings, Explanation
from edge_monitor.decide.explain.observation import Observation
from edge_monitor.decide.explain.wording import shift_text

__all__ = ["level_shift"]


def _uniform_change(bands: Bands, in_db: np.ndarray, s: ExplainSettings) -> float | None:
    """The uniform level change in dB when the whole spectrum moved alike, else ``None``."""
    now = in_db.mean(axis=1)
    if bands.band_level_db is not None:
        ref = bands.band_level_db
    else:
        ref = bands.lo + 0.5 * bands.span  # the middle of the training range
    d = now - ref
    # Bands at the floor of the front end (silence) cannot move: leave them out.
    live = bands.span > 1.5
    if live.sum() < max(8, 0.5 * len(d)):
        return None
    d = d[live]
    med = float(np.median(d))
    p10, p90 = np.percentile(d, [10, 90])
    agree = float(np.mean(np.sign(d) == np.sign(med)))
    if abs(med) >= s.shift_db and float(p90 - p10) <= s.shift_spread_db and agree >= 0.9:
        return med
    return None


def level_shift(obs: Observation, bands: Bands, s: ExplainSettings) -> Explanation | None:
    """``level_shift`` when every band moved alike, else ``None``."""
    # With the bundle's training level per band, compare exact levels; without
    # it, the middle of each band's training range is the reference, and the
    # test runs on the clipped model input, where the reference's per-band
    # bias is smaller than the spread of unclipped levels.
    exact = bands.band_level_db is not None and obs.db is not None
    shift = _uniform_change(bands, obs.in_db if exact else bands.to_db(obs.x), s)
    if shift is None:
        return None
    pinned = obs.capped[0] if shift > 0 else obs.capped[1]
    if obs.db is not None and not exact:
        # Size it from the unclipped levels: the median change over the bands.
        ref = bands.lo + 0.5 * bands.span
        shift = float(np.median((obs.in_db.mean(axis=1) - ref)[bands.span > 1.5]))
    at_least = float(pinned.mean()) >= 0.1
    lo_hz, hi_hz = float(bands.edges[0]), float(bands.edges[-1])
    return Explanation(
        "level_shift",
        lo_hz,
        hi_hz,
        None,
        shift,
        shift_text(shift, at_least),
        peak_hz=None,
        bands=(0, bands.n_mels - 1),
    )
