"""Recogniser of ``impact``: short bursts in some band range (clicks, knocks), and their period."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edge_monitor.decide.explain.bands import Bands
from edge_monitor.decide.explain.explanation import ExplainSettings, Explanation
from edge_monitor.decide.explain.observation import Observation
from edge_monitor.decide.explain.wording import impact_text

__all__ = ["Impacts", "find_impacts", "impact"]


@dataclass(frozen=True)
class Impacts:
    """The bursts of one window.

    Attributes:
        prominence: mean robust z of the strongest frames in the chosen range.
        bands: first and last band of that range.
        hits: frames (of the observed frames) of the impacts found.
        period_s: their repetition period (s), ``None`` when they do not repeat.
    """

    prominence: float
    bands: tuple[int, int]
    hits: np.ndarray
    period_s: float | None


def find_impacts(resid: np.ndarray, bands: Bands, s: ExplainSettings) -> Impacts | None:
    """Short bursts in the residual ``(n_mels, frames)`` (dB): best band range, impact frames, period.

    The residual is high-passed in time (minus a running median over
    ``2 * hp_frames + 1`` frames) so slow changes do not count, averaged
    over each candidate range (1 and 2 octaves wide, half-octave steps),
    and robustly z-scored over time; the range whose strongest frames
    stand out most wins.
    """
    n_mels, frames = resid.shape
    h = s.hp_frames
    if frames < 4 * h + 4:
        return None
    padded = np.pad(resid, ((0, 0), (h, h)), mode="edge")
    hp = resid - np.median(np.lib.stride_tricks.sliding_window_view(padded, 2 * h + 1, axis=1), axis=2)
    csum = np.concatenate((np.zeros((1, frames)), np.cumsum(hp, axis=0)), axis=0)
    k = max(2, int(round(s.impact_top_frames * frames)))
    best: tuple[float, tuple[int, int], np.ndarray] | None = None
    for a, b in bands.impact_ranges:
        g = (csum[b + 1] - csum[a]) / (b - a + 1)
        med = float(np.median(g))
        mad = 1.4826 * float(np.median(np.abs(g - med))) + 1e-12
        gz = (g - med) / mad
        prom = float(np.sort(gz)[-k:].mean())
        if best is None or prom > best[0]:
            best = (prom, (a, b), gz)
    if best is None:
        return None
    prominence, rng, gz = best
    min_gap = max(2, int(round(s.min_period_s / bands.frame_s)))
    hits = _impact_frames(np.maximum(gz, 0.0), min_gap=min_gap, level=s.impact_z)
    period = _period(np.maximum(gz, 0.0), hits, min_gap, bands.frame_s)
    return Impacts(prominence, rng, hits, period)


def impact(obs: Observation, imp: Impacts, bands: Bands) -> Explanation:
    """The ``impact`` explanation of bursts found by :func:`find_impacts`."""
    a, b = imp.bands
    hits = imp.hits
    lvl, at_least = bands.level(obs.in_db, obs.ref_db, obs.capped, a, b, hits)
    lo_hz, hi_hz = bands.hz(a, b)
    broad = bands.octaves(a, b) >= 1.0
    kept = obs.kept
    return Explanation(
        "impact",
        lo_hz,
        hi_hz,
        imp.period_s,
        lvl,
        impact_text(imp.period_s, int(hits.size), broad, lo_hz, hi_hz, lvl, at_least),
        peak_hz=float(bands.centres[(a + b) // 2]),
        bands=(a, b),
        # Times on the window's clock: frames left out for a sensor fault still count.
        event_times_s=tuple(float(t if kept is None else kept[t]) * bands.frame_s for t in hits),
    )


def _period(g: np.ndarray, hits: np.ndarray, min_gap: int, frame_s: float) -> float | None:
    """Repetition period (s) of impacts: the median interval when regular, checked by autocorrelation."""
    if hits.size < 3:
        return None
    gaps = np.diff(hits).astype(np.float64)
    med = float(np.median(gaps))
    # Missed hits make some gaps multiples of the period: fold them back.
    mult = np.maximum(np.round(gaps / med), 1.0)
    folded = gaps / mult
    if float(np.std(folded)) > 0.15 * float(np.mean(folded)):
        lag = _periodicity(g, min_gap, g.size // 2)
        return None if lag is None else lag * frame_s
    return float(np.sum(gaps) / np.sum(mult)) * frame_s


def _periodicity(x: np.ndarray, min_lag: int, max_lag: int) -> float | None:
    """Repetition period (frames, sub-frame) of ``x`` from its autocorrelation, ``None`` when weak.

    Picks the shortest lag whose autocorrelation peak reaches 0.6 of the
    strongest peak, so a multiple of the period is not reported instead.
    """
    x = np.asarray(x, dtype=np.float64) - float(np.mean(x))
    n = x.size
    if n < 2 * min_lag + 2 or not np.any(x):
        return None
    nfft = 1 << int(math.ceil(math.log2(2 * n)))
    spec = np.fft.rfft(x, nfft)
    acf = np.fft.irfft(spec * np.conj(spec), nfft)[:n]
    if acf[0] <= 0:
        return None
    # Unbiased: a lag of L frames overlaps only n - L frames.
    acf = acf / acf[0] * n / np.maximum(n - np.arange(n), 1)
    max_lag = min(max_lag, n // 2)
    if max_lag <= min_lag + 1:
        return None
    seg = acf[min_lag : max_lag + 1]
    peaks = np.flatnonzero((seg[1:-1] > seg[:-2]) & (seg[1:-1] >= seg[2:])) + 1
    if peaks.size == 0:
        return None
    best = float(seg[peaks].max())
    if best < 0.25:
        return None
    first = int(peaks[np.flatnonzero(seg[peaks] >= 0.6 * best)[0]])
    # Parabolic interpolation around the chosen peak.
    y0, y1, y2 = seg[first - 1], seg[first], seg[first + 1]
    denom = y0 - 2 * y1 + y2
    frac = 0.5 * (y0 - y2) / denom if denom != 0 else 0.0
    return min_lag + first + float(np.clip(frac, -0.5, 0.5))


def _impact_frames(f: np.ndarray, min_gap: int, level: float) -> np.ndarray:
    """Frames of the impacts in a robust-z curve: local maxima >= ``level`` and >= 1/3 of the largest,
    at least ``min_gap`` frames apart (the stronger one wins)."""
    if f.size < 3 or float(f.max()) <= 0:
        return np.zeros(0, dtype=int)
    level = max(level, float(f.max()) / 3.0)
    cand = np.flatnonzero((f[1:-1] >= f[:-2]) & (f[1:-1] > f[2:]) & (f[1:-1] >= level)) + 1
    # Greedy non-maximum suppression: keep the strongest within each min_gap.
    keep: list[int] = []
    for i in cand[np.argsort(-f[cand])]:
        if all(abs(int(i) - k) >= min_gap for k in keep):
            keep.append(int(i))
    return np.array(sorted(keep), dtype=int)
