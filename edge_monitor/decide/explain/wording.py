"""The sentence of each kind of explanation: frequencies, ranges and levels as people read them."""

from __future__ import annotations

import math

__all__ = ["NOTHING_STANDS_OUT", "tone_text", "impact_text", "running_text", "shift_text"]

NOTHING_STANDS_OUT = "Nothing stands out: the sound is within what the model learned as normal."


def _fmt_hz(hz: float) -> str:
    if hz >= 1000.0:
        return f"{hz / 1000.0:.1f} kHz"
    return f"{hz:.0f} Hz"


def _fmt_range(lo: float, hi: float) -> str:
    if lo >= 1000.0 and hi >= 1000.0:
        return f"{lo / 1000.0:.1f}–{hi / 1000.0:.1f} kHz"
    if hi >= 1000.0:
        return f"{lo:.0f} Hz–{hi / 1000.0:.1f} kHz"
    return f"{lo:.0f}–{hi:.0f} Hz"


def _fmt_level(db: float | None, at_least: bool = False) -> str:
    if db is None or not math.isfinite(db):
        return ""
    if abs(db) < 1.0:
        return ", at about the normal level"
    return f", {'at least ' if at_least else ''}{abs(db):.0f} dB {'above' if db > 0 else 'below'} normal"


def tone_text(peak_hz: float, lo_hz: float, hi_hz: float, harmonics: bool, level_db: float, at_least: bool) -> str:
    """``tonal``: "A new tone near 3.1 kHz (2.9–3.3 kHz) with harmonics, 12 dB above normal."."""
    harm = " with harmonics" if harmonics else ""
    return f"A new tone near {_fmt_hz(peak_hz)} ({_fmt_range(lo_hz, hi_hz)}){harm}{_fmt_level(level_db, at_least)}."


def impact_text(period_s: float | None, n_hits: int, broad: bool, lo_hz: float, hi_hz: float, level_db: float,
                at_least: bool) -> str:
    """``impact``: "An impact about every 0.8 s, broadband 2.1–8.0 kHz, 16 dB above normal."."""
    where = f"{'broadband ' if broad else ''}{_fmt_range(lo_hz, hi_hz)}"
    if period_s is not None:
        head = f"An impact about every {period_s:.1f} s"
    elif n_hits > 1:
        head = f"{n_hits} impacts"
    else:
        head = "An impact"
    return f"{head}, {where}{_fmt_level(level_db, at_least)}."


def running_text(lo_hz: float, hi_hz: float, level_db: float, at_least: bool) -> str:
    """``broadband``: "Louder running across 1.2–4.1 kHz, 7 dB above normal." (or quieter, or rougher)."""
    if level_db >= 1.0:
        what = "Louder running"
    elif level_db <= -1.0:
        what = "Quieter running"
    else:
        what = "Rougher running"
    return f"{what} across {_fmt_range(lo_hz, hi_hz)}{_fmt_level(level_db, at_least)}."


def shift_text(shift_db: float, at_least: bool) -> str:
    """``level_shift``: the whole spectrum moved alike, most likely the microphone."""
    direction = "louder" if shift_db > 0 else "quieter"
    return (
        f"Everything is {'at least ' if at_least else ''}{abs(shift_db):.0f} dB {direction} across the whole "
        f"spectrum: "
        f"the microphone was probably moved or its gain changed; if so, run `edge-monitor-train calibrate`."
    )
