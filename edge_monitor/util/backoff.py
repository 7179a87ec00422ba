"""Exponential back-off between retries, shared by the MQTT connection and microphone capture.

Delays are in seconds: ``min_s``, ``2 * min_s``, ``4 * min_s`` ... capped at
``max_s``. With ``jitter`` each delay is drawn uniformly from [cap/2, cap]
("equal jitter"), so a fleet restarted together does not hammer its broker in
step; without it the delay is the cap itself (a local microphone needs no
spreading, and its log lines stay predictable).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

__all__ = ["Backoff", "backoff_delay"]

_MAX_DOUBLINGS = 30  # 2**30 * min_s exceeds any sensible cap; keeps the float finite


def backoff_delay(attempt: int, min_s: float, max_s: float, rng: random.Random | None = None,
                  jitter: bool = True) -> float:
    """Seconds to wait before retry ``attempt + 1`` (``attempt`` counts from 0)."""
    cap = min(max_s, min_s * float(2 ** min(attempt, _MAX_DOUBLINGS)))
    if not jitter:
        return cap
    return cap / 2 + float((rng or random).uniform(0, cap / 2))


@dataclass
class Backoff:
    """The retry schedule of one thing that fails and recovers (not thread-safe: one owner).

    ``next_delay()`` returns the delay before the next attempt and counts the
    attempt; ``reset()`` starts again from ``min_s`` after a success.
    """

    min_s: float
    max_s: float
    jitter: bool = True
    rng: random.Random = field(default_factory=random.Random, repr=False)
    attempt: int = 0

    def next_delay(self) -> float:
        """Seconds to wait before the next attempt; counts it."""
        delay = backoff_delay(self.attempt, self.min_s, self.max_s, self.rng, self.jitter)
        self.attempt += 1
        return delay

    def upcoming_cap(self) -> float:
        """The cap of the next delay without counting an attempt (the exact delay when ``jitter`` is off)."""
        return backoff_delay(self.attempt, self.min_s, self.max_s, jitter=False)

    def reset(self) -> None:
        """The thing works again: the next failure waits ``min_s`` (about, with jitter)."""
        self.attempt = 0
