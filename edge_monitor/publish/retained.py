"""What the broker should hold *now*: retained values, Home Assistant discovery, the latest scores.

None of this is durable and none of it touches the disk: after a restart the
daemon sets its state again, and a stale value is worth less than the current
one. Each piece is memory only and latest-value-wins:

* :class:`RetainedValues`: ``<base>/state``, ``<base>/microphone``,
  ``<base>/status`` (retained, QoS 1). A value is (re)sent when it changes
  and on every new connection;
* :class:`ScoreBacklog`: the per-window scores (QoS 0, not retained), at most
  the latest ``SCORE_BACKLOG`` while nothing can be sent. An outage of days
  must neither wear the SD card (one synced write per window) nor flood Home
  Assistant's score sensor with stale values on reconnect;
* :func:`announcements`: the discovery configs (:mod:`edge_monitor.publish.discovery`)
  and ``online``, sent on every new connection and when Home Assistant
  announces itself (``<prefix>/status`` = ``online``).
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from edge_monitor.publish.discovery import Topics, discovery_messages

__all__ = [
    "MICROPHONE_STATES",
    "SCORE_BACKLOG",
    "STATES",
    "Message",
    "RetainedValues",
    "ScoreBacklog",
    "announcements",
]

STATES = ("normal", "anomaly")
MICROPHONE_STATES = ("ok", "problem")
#: Unsent scores kept in memory (the oldest falls out). Scores are best effort: a few recent
#: values show the trend after a reconnect; more would be stale.
SCORE_BACKLOG = 5


@dataclass(frozen=True)
class Message:
    """One MQTT message to send (QoS 0-2, ``retain``)."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


class RetainedValues:
    """Latest-value slots for the retained topics; thread-safe (set from the daemon, sent by the connection)."""

    NAMES = ("state", "microphone", "status")

    def __init__(self, topics: Topics) -> None:
        self.topics = topics
        self._topic = {"state": topics.state, "microphone": topics.microphone, "status": topics.status}
        self._lock = threading.Lock()
        self._values: dict[str, bytes] = {}
        self._dirty: set[str] = set()

    def set(self, name: str, value: bytes) -> bool:
        """Store ``value`` for ``name``; ``True`` when it changed (it will be sent)."""
        if name not in self.NAMES:
            raise ValueError(f"no retained topic {name!r} (one of {self.NAMES})")
        with self._lock:
            if self._values.get(name) == value:
                return False
            self._values[name] = value
            self._dirty.add(name)
            return True

    def get(self, name: str) -> bytes | None:
        with self._lock:
            return self._values.get(name)

    def resend(self, *names: str) -> None:
        """Send these again (all when none are named) on the next :meth:`take_due`: a new connection."""
        with self._lock:
            self._dirty.update(names or self.NAMES)

    def take_due(self) -> list[Message]:
        """The changed (or re-sent) values that are set, in a fixed order; clears them."""
        with self._lock:
            due, self._dirty = self._dirty, set()
            values = dict(self._values)
        return [Message(self._topic[name], values[name]) for name in self.NAMES
                if name in due and name in values]

    def put_back(self, messages: list[Message]) -> None:
        """Messages that could not be sent (connection gone): due again on the next connection."""
        names = {name for name in self.NAMES for m in messages if m.topic == self._topic[name]}
        with self._lock:
            self._dirty.update(names)


@dataclass
class ScoreBacklog:
    """The latest ``size`` unsent scores (encoded), oldest first. ``append``/``pop`` are thread-safe (deque)."""

    size: int = SCORE_BACKLOG
    dropped: int = 0  # scores that fell out unsent (an outage, or a burst faster than the network)
    _queue: deque[bytes] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._queue = deque(maxlen=self.size)

    def append(self, payload: bytes) -> None:
        if len(self._queue) == self.size:
            self.dropped += 1  # approximate under a race with pop(); it is a counter, not bookkeeping
        self._queue.append(payload)

    def pop(self) -> bytes | None:
        """The oldest unsent score, or ``None``."""
        try:
            return self._queue.popleft()
        except IndexError:
            return None

    def push_front(self, payload: bytes) -> None:
        """A score that could not be sent goes back (unless newer ones filled the backlog meanwhile)."""
        if len(self._queue) < self.size:
            self._queue.appendleft(payload)

    def __len__(self) -> int:
        return len(self._queue)


def announcements(topics: Topics, device_id: str, model_info: Mapping[str, object], *, discovery: bool, prefix: str,
                  publish_scores: bool, area: str | None = None) -> list[Message]:
    """Discovery configs (retained, QoS 1) then ``online``: what a new connection sends first.

    With ``publish_scores`` off the score entity's config is an empty retained
    message, which makes Home Assistant remove the entity.
    """
    out: list[Message] = []
    if discovery:
        for topic, payload in discovery_messages(prefix, device_id, topics, model_info, area):
            removed = topic.startswith(f"{prefix}/sensor/") and not publish_scores
            out.append(Message(topic, b"" if removed else json.dumps(payload, separators=(",", ":")).encode()))
    out.append(Message(topics.availability, b"online"))
    return out
