"""Helpers for the report's figures (:mod:`trainer.report`): the score axis with an overflow bar, the 1-D level
panel, the explanation marked on an error map.

Matplotlib is imported by the caller (:mod:`trainer.report` selects the Agg backend first).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Rectangle

from edge_monitor.features.frontend import FeatureParams, mel_band_edges_hz

__all__ = ["ScoreScale", "score_scale", "mark_overflow", "draw_level_profile", "mark_explanation", "hz_label",
           "hz_to_band"]

#: The visible range reaches this many times the span from the lowest score to the
#: threshold (or the normals' 99th percentile, when higher); scores above it share one bar.
SPAN_FACTOR = 2.0


@dataclass(frozen=True)
class ScoreScale:
    """Histogram bin edges for clip scores, with an overflow bin for the far tail.

    Attributes:
        bins: bin edges; when ``cap`` is set the last bin is the overflow bin.
        cap: scores above it are drawn in the overflow bin; ``None`` when every score fits.
        top: the highest score (shown on the overflow bin).
    """

    bins: list[float]
    cap: float | None
    top: float

    def fold(self, values: np.ndarray) -> np.ndarray:
        """``values`` with every score above ``cap`` moved to the overflow bin's centre."""
        values = np.asarray(values, float)
        if self.cap is None:
            return values
        return np.where(values > self.cap, 0.5 * (self.bins[-2] + self.bins[-1]), values)


def score_scale(normal: np.ndarray, anomaly: np.ndarray, threshold: float, n_bins: int) -> ScoreScale:
    """Linear bins on which the normal scores and the threshold keep most of the axis.

    The visible range runs from the lowest score to ``lowest + SPAN_FACTOR x
    (reference - lowest)``, reference being the threshold or the normals' 99th
    percentile, whichever is higher; scores beyond it (an anomaly at 20x the
    threshold) go into one extra bin at the right.
    """
    every = np.concatenate([np.asarray(normal, float), np.asarray(anomaly, float), [threshold]])
    every = every[np.isfinite(every)]
    lo, hi = float(every.min()), float(every.max())
    normal = np.asarray(normal, float)
    ref = max(threshold, float(np.percentile(normal, 99)) if len(normal) else threshold)
    cap = lo + SPAN_FACTOR * (ref - lo) if ref > lo else None
    if cap is None or hi <= cap:
        pad = 0.05 * (hi - lo) if hi > lo else max(abs(hi) * 0.05, 1e-6)
        return ScoreScale(np.linspace(lo - pad, hi + pad, n_bins + 1).tolist(), None, hi)
    pad = 0.02 * (cap - lo)
    edges = np.linspace(lo - pad, cap, n_bins + 1)
    width = edges[1] - edges[0]
    return ScoreScale([*edges.tolist(), cap + 3 * width], cap, hi)


def mark_overflow(ax: plt.Axes, scale: ScoreScale) -> None:
    """Shade the overflow bin and label it ``> cap`` (and the highest score) on the x axis.

    Call after the axis limits are final: the ticks right of ``cap`` are replaced.
    """
    if scale.cap is None:
        return
    left, right = scale.bins[-2], scale.bins[-1]
    ax.axvspan(left, right, color="#f0f0f0", zorder=0, lw=0)
    ax.axvline(left, color="#999999", lw=0.8, ls=(0, (2, 2)))
    ticks = [float(t) for t in ax.get_xticks() if scale.bins[0] <= t <= scale.cap - 0.4 * (right - left)]
    ax.set_xticks([*ticks, 0.5 * (left + right)],
                  [f"{t:g}" for t in ticks] + [f"> {scale.cap:.3g}\n(to {scale.top:.3g})"])


def draw_level_profile(ax: plt.Axes, normal_db: np.ndarray, window_db: np.ndarray,
                       yticks: list[float], ylabels: list[str]) -> None:
    """Each band's normal level and this window's median level, level (dB) across, band up.

    Args:
        normal_db: ``(n_mels,)`` the NumPy detectors' reference level per band (dB re full scale).
        window_db: ``(n_mels, frames)`` the window's log-mel (dB); its median over frames is drawn.
        yticks, ylabels: the frequency ticks of the neighbouring spectrogram panels.
    """
    bands = np.arange(len(normal_db))
    ax.plot(normal_db, bands, color="#1f77b4", lw=2.0, label="normal level (the detectors' reference)")
    ax.plot(np.median(window_db, axis=1), bands, color="#d62728", lw=1.2, alpha=0.85,
            label="this window, median over time")
    ax.set_ylim(-0.5, len(normal_db) - 0.5)
    ax.set_yticks(yticks, ylabels)
    ax.set_ylabel("frequency (Hz, mel scale)")
    ax.set_xlabel("level (dB re full scale)")
    ax.set_title("normal level per band", fontsize=10.5)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left", framealpha=0.9)


def hz_label(hz: float) -> str:
    """``2418`` -> ``"2.4k"``, ``250`` -> ``"250"``."""
    return (f"{hz / 1000:.1f}".rstrip("0").rstrip(".") + "k") if hz >= 1000 else f"{hz:.0f}"


def hz_to_band(hz: float, params: FeatureParams) -> float:
    centres = mel_band_edges_hz(params)[1:-1]
    return float(np.interp(hz, centres, np.arange(len(centres))))


def mark_explanation(ax: plt.Axes, explanation: dict[str, Any], params: FeatureParams, seconds: float) -> None:
    """Outline the explained frequency range and mark impact times on an error map.

    ``explanation``: an ``edge_monitor.decide.explain`` result as a dict: ``kind``,
    ``freq_lo_hz``, ``freq_hi_hz``, optional ``period_s``, ``bands`` (first and
    last mel band index) and ``event_times_s`` (s from the window start).
    """
    f_lo, f_hi = explanation.get("freq_lo_hz"), explanation.get("freq_hi_hz")
    bands = explanation.get("bands")
    if bands:
        b_lo, b_hi = float(bands[0]) - 0.5, float(bands[1]) + 0.5
    elif f_lo is not None and f_hi is not None:
        b_lo, b_hi = hz_to_band(float(f_lo), params) - 0.5, hz_to_band(float(f_hi), params) + 0.5
    else:
        return
    ax.add_patch(Rectangle((0, b_lo), seconds, b_hi - b_lo, fill=False, ec="#00e5ff", lw=1.8, ls="--"))
    top = ax.get_ylim()[1]
    for t in explanation.get("event_times_s") or []:
        if 0 <= float(t) <= seconds:
            ax.plot([float(t)], [top], marker="v", color="#00e5ff", mec="black", mew=0.6, ms=8,
                    clip_on=False, zorder=6)
    text = str(explanation.get("kind", ""))
    if f_lo is not None and f_hi is not None:
        text += f": {hz_label(float(f_lo))}–{hz_label(float(f_hi))} Hz"
    if explanation.get("period_s"):
        text += f", every {float(explanation['period_s']):.2g} s"
    if explanation.get("level_change_db") is not None:
        text += f", {float(explanation['level_change_db']):+.0f} dB"
    ax.text(0.02, 0.97, text, transform=ax.transAxes, va="top", ha="left", fontsize=8.5, color="black",
            bbox=dict(boxstyle="round,pad=0.25", fc="#e8fdff", ec="#00a0b0", alpha=0.9))
