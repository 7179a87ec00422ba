"""The alert rule: k of n windows to open, m clear windows to close, a cooldown.

A pure state machine fed one window score at a time (no I/O, no clock: times
are the windows' own timestamps, so replays decide exactly as live capture).

Rule, for threshold ``T``:

* **open**: while no alert is open and not in cooldown, an alert opens on the
  window that makes ``k`` of the last ``n`` windows score ``> T``. It gets a
  new event id (UUID4) that its ``end`` event repeats. Its *peak* is the
  strongest of the windows above ``T`` among those ``n`` (the ones that raised
  it, often not the last: a fault's loudest window may come first); each later
  window that beats the peak becomes the new peak, so ``end`` carries the
  event's true peak.
* **close**: an open alert closes on the ``clear_windows``-th consecutive
  window scoring below the clear level ``B + clear_ratio * (T - B)``, ``B`` being
  the typical normal score (the bundle's median validation score; 0 when
  unknown) (hysteresis: a score between the clear
  level and ``T`` neither counts towards closing nor resets the peak).
  A window at or above the clear level restarts the count.
* **cooldown**: after a close, no alert opens until a window *ends* at least
  ``cooldown_seconds`` after the closing window ended. The k-of-n history
  restarts empty after a close, so the windows of the old alert never count
  towards a new one.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

__all__ = ["DecisionRule", "AlertEvent", "Decider", "typical_normal_score"]


def typical_normal_score(median: float | None, threshold: float) -> float:
    """The clear level's baseline: a bundle's median normal window score, when it is usable.

    ``median``: ``ModelJson.typical_normal_score()`` (the on-site calibration's
    median when ``calibrate`` ran, else the validation or out-of-fold one).
    Returns 0 (a clear level relative to zero) when there is none or it is not
    in ``[0, threshold)`` (e.g. a threshold overridden below it).
    """
    if median is None or not 0 <= median < threshold:
        return 0.0
    return float(median)


@dataclass(frozen=True)
class DecisionRule:
    """Parameters of the rule (see the module docstring); ``threshold`` > 0."""

    threshold: float
    k: int = 2
    n: int = 3
    clear_windows: int = 3
    clear_ratio: float = 0.5
    cooldown_seconds: float = 0.0
    baseline: float = 0.0

    def __post_init__(self) -> None:
        if not self.threshold > 0:
            raise ValueError(f"threshold must be positive, got {self.threshold}")
        if not 1 <= self.k <= self.n:
            raise ValueError(f"need 1 <= k <= n, got k={self.k}, n={self.n}")
        if self.clear_windows < 1:
            raise ValueError("clear_windows must be at least 1")
        if not 0 < self.clear_ratio <= 1:
            raise ValueError("clear_ratio must be in (0, 1]")
        if self.cooldown_seconds < 0:
            raise ValueError("cooldown_seconds must not be negative")
        if not 0 <= self.baseline < self.threshold:
            raise ValueError(f"baseline must be in [0, threshold), got {self.baseline}")

    @property
    def clear_level(self) -> float:
        """``baseline + clear_ratio * (threshold - baseline)``.

        Reconstruction errors of normal sound sit on a floor far above zero
        (typically within 10 % of the threshold), so a level that is a
        fraction of the threshold alone can lie below every normal window and
        an alert would never close. Measured from the typical normal score
        (``baseline``), the gap scales with the spread of normal scores.
        """
        return self.baseline + self.clear_ratio * (self.threshold - self.baseline)


@dataclass(frozen=True)
class AlertEvent:
    """An alert opening (``start``) or closing (``end``).

    Attributes:
        event: ``"start"`` or ``"end"``.
        event_id: stable id shared by an alert's start and end.
        score: the score of the window that caused this event (for ``start``:
            the one that completed ``k`` of ``n``).
        peak_score: highest score of the event: at ``start`` the strongest of
            the windows that raised it, at ``end`` the highest since then too.
        window_start, window_end: that window's wall-clock times (Unix s).
        opened_at: window end time of the window that opened the alert.
        windows: windows in the alert so far (1 at start).
        peak_window_start, peak_window_end: the times of the window that
            scored ``peak_score`` (Unix s).
    """

    event: Literal["start", "end"]
    event_id: str
    score: float
    peak_score: float
    threshold: float
    window_start: float
    window_end: float
    opened_at: float
    windows: int
    peak_window_start: float
    peak_window_end: float


class Decider:
    """Feeds window scores through a :class:`DecisionRule`.

    ``id_factory`` makes event ids (UUID4 strings by default; tests pass a
    counter).
    """

    def __init__(self, rule: DecisionRule, id_factory: Callable[[], str] | None = None):
        self.rule = rule
        self._new_id = id_factory or (lambda: str(uuid.uuid4()))
        # (score, window_start, window_end) of the last n windows since the last close.
        self._history: deque[tuple[float, float, float]] = deque(maxlen=rule.n)
        self._open: AlertEvent | None = None
        self._clear_run = 0
        self._peak = (0.0, 0.0, 0.0)  # (score, window_start, window_end) of the open alert's peak
        self._windows = 0
        self._cooldown_until: float | None = None

    @property
    def state(self) -> Literal["normal", "anomaly"]:
        return "anomaly" if self._open is not None else "normal"

    @property
    def peak_score(self) -> float | None:
        """The open alert's peak so far (``None`` when no alert is open)."""
        return self._peak[0] if self._open is not None else None

    def in_cooldown(self, window_end: float) -> bool:
        return self._cooldown_until is not None and window_end < self._cooldown_until

    def update(self, score: float, window_start: float, window_end: float) -> AlertEvent | None:
        """Apply one window's score; return the event it causes, if any."""
        r = self.rule
        if self._open is not None:
            self._windows += 1
            if score > self._peak[0]:
                self._peak = (score, window_start, window_end)
            self._clear_run = self._clear_run + 1 if score < r.clear_level else 0
            if self._clear_run >= r.clear_windows:
                peak, peak_start, peak_end = self._peak
                ended = AlertEvent("end", self._open.event_id, score, peak, r.threshold,
                                   window_start, window_end, self._open.opened_at, self._windows,
                                   peak_start, peak_end)
                self._open = None
                self._history.clear()
                self._cooldown_until = window_end + r.cooldown_seconds
                return ended
            return None
        self._history.append((score, window_start, window_end))
        if self.in_cooldown(window_end):
            return None
        above = [h for h in self._history if h[0] > r.threshold]
        if len(above) >= r.k:
            # max() keeps the earliest of equal scores: ties name the window that came first.
            self._peak = max(above, key=lambda h: h[0])
            self._windows, self._clear_run = 1, 0
            peak, peak_start, peak_end = self._peak
            self._open = AlertEvent("start", self._new_id(), score, peak, r.threshold,
                                    window_start, window_end, window_end, 1, peak_start, peak_end)
            return self._open
        return None
