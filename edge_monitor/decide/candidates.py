"""The last ``n`` scored windows, kept in memory so that an alert can show its strongest one.

An alert opens on the window that completes ``k`` of ``n`` (see
:mod:`edge_monitor.decide.decision`), which is often not the window that
scored highest: a fault's loudest moment may come first. The
:class:`~edge_monitor.decide.decision.Decider` names the strongest window by
its times (``AlertEvent.peak_window_start``); this keeps what is needed to
save that window's evidence and explain it (its samples and its score) for
the last ``n`` windows, so nothing is written per window (the Pi's SD card)
and memory stays bounded (``n`` windows of 10 s at 16 kHz: 640 kB of float32
samples and 485 kB of ``WindowScore`` arrays each, 3.4 MB for ``n = 3``).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["Candidate", "CandidateWindows"]

T = TypeVar("T")


@dataclass(frozen=True)
class Candidate(Generic[T]):
    """One scored window: its score, its times (Unix s, the audio clock) and the caller's ``data``."""

    score: float
    window_start: float
    window_end: float
    data: T


class CandidateWindows(Generic[T]):
    """The last ``n`` scored windows (oldest dropped first).

    ``data`` is whatever the caller needs to describe a window later (the
    daemon keeps its model-rate samples and its ``WindowScore``); it is held
    by reference, never copied.
    """

    def __init__(self, n: int) -> None:
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        self._windows: deque[Candidate[T]] = deque(maxlen=n)

    def __len__(self) -> int:
        return len(self._windows)

    def push(self, score: float, window_start: float, window_end: float, data: T) -> Candidate[T]:
        """Remember one scored window (the oldest of ``n`` is forgotten); returns it."""
        c = Candidate(float(score), float(window_start), float(window_end), data)
        self._windows.append(c)
        return c

    def find(self, window_start: float) -> Candidate[T] | None:
        """The kept window that started at ``window_start`` (``None``: not among the last ``n``)."""
        for c in reversed(self._windows):
            if c.window_start == window_start:
                return c
        return None
