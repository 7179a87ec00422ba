"""The progress count every long command prints: ``37/120 (31 %) ~42 s left``.

One helper for ``learn``'s recording, ``edge-monitor-train evaluate``'s scoring,
``synth`` and ``train``'s feature extraction, so that they all say the time left the same way.
"""

from __future__ import annotations

__all__ = ["time_left", "progress_text"]


def time_left(done: int, total: int, elapsed_s: float) -> float | None:
    """Seconds left at the average pace so far; ``None`` before the first item or when done."""
    if done <= 0 or done >= total or elapsed_s <= 0:
        return None
    return elapsed_s / done * (total - done)


def _words(seconds: float) -> str:
    """``42`` -> ``"~42 s"``, ``200`` -> ``"~3 min"``, ``7200`` -> ``"~2.0 h"``."""
    if seconds < 90:
        return f"~{max(seconds, 1):.0f} s"
    if seconds < 90 * 60:
        return f"~{seconds / 60:.0f} min"
    return f"~{seconds / 3600:.1f} h"


def progress_text(done: int, total: int, elapsed_s: float, unit: str = "") -> str:
    """``"37/120 clips (31 %) ~42 s left"``; no time left before the first item and at the end.

    Args:
        done, total: items finished and expected (``total`` >= 1).
        elapsed_s: seconds since the first item started (monotonic clock).
        unit: the items' name after the count (``"clips"``, ``"windows"``), or empty.
    """
    total = max(total, 1)
    text = f"{done}/{total}{' ' + unit if unit else ''} ({100 * done // total} %)"
    left = time_left(done, total, elapsed_s)
    return text + (f" {_words(left)} left" if left is not None else "")
