"""The collaborators of :class:`edge_monitor.service.daemon.Daemon`, as structural types.

Each Protocol names what the daemon's scoring loop uses and nothing more, so
that a real part, a test's recording sink or a stand-in for ``simulate`` can
be passed without inheriting from anything (the approach of structlog's
``typing.py``). They are checked by mypy, not at run time.

- :class:`AudioSource`: fills a ring buffer from a device or files
  (:class:`edge_monitor.audio.capture.MicrophoneSource`, :class:`edge_monitor.audio.replay.ReplaySource`).
- :class:`ScorerLike`: scores one window (:class:`edge_monitor.model.scorer.Scorer`).
- :class:`PublisherLike`: takes alerts, sensor events, scores and health out
  (:class:`edge_monitor.publish.publisher.Publisher`, :class:`edge_monitor.service.daemon.NullPublisher`).
- :class:`NotifierLike`: tells the service manager how the daemon is doing
  (the module :mod:`edge_monitor.service.notify`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import numpy as np

    from edge_monitor.audio.ring_buffer import RingBuffer
    from edge_monitor.model.bundle import ModelBundle
    from edge_monitor.model.scorer import WindowScore

__all__ = ["AudioSource", "NotifierLike", "PublisherLike", "ScorerLike"]


class AudioSource(Protocol):
    """Audio into the daemon's ring buffer, on its own thread.

    ``ring`` is ``None`` until the source knows its rate and channel count;
    the daemon reads windows from it. ``poll()`` runs on the scoring loop
    (about every 0.5 s) to notice a lost device and reopen it.
    """

    kind: str  # "microphone", "replay": shown in logs and the health message
    ring: RingBuffer | None
    last_error: str | None

    def start(self) -> bool:
        """Open the device or the files; ``False`` when it failed (``last_error`` says why)."""
        ...

    def poll(self) -> None: ...

    def stop(self) -> None: ...

    def stats(self) -> dict[str, Any]:
        """Counters for the health message (JSON-serialisable)."""
        ...


class ScorerLike(Protocol):
    """One window of mono audio at the model's rate in, its anomaly score out."""

    @property
    def bundle(self) -> ModelBundle: ...

    @property
    def window_samples(self) -> int:
        """Samples in one scored window (the model's window length times its rate)."""
        ...

    def score_window(self, samples: np.ndarray, valid: np.ndarray | None = None) -> WindowScore: ...


class PublisherLike(Protocol):
    """Where alerts, sensor events, scores, state and health go (MQTT, nowhere, or a test's list).

    ``publish_alert`` and ``publish_sensor`` must not lose a message once they
    return (the MQTT publisher queues them on disk first); ``stop`` flushes
    for at most ``timeout`` seconds.
    """

    def start(self) -> None: ...
    def publish_alert(self, payload: dict[str, Any]) -> None: ...
    def publish_sensor(self, payload: dict[str, Any]) -> None: ...
    def set_state(self, state: str) -> None: ...
    def set_microphone(self, state: str) -> None: ...
    def publish_score(self, payload: dict[str, Any]) -> None: ...
    def publish_status(self, payload: dict[str, Any]) -> None: ...
    def stats(self) -> dict[str, Any]: ...
    def stop(self, timeout: float = 5.0) -> None: ...


class NotifierLike(Protocol):
    """systemd's sd_notify messages; each returns whether a message was sent."""

    def ready(self, status_text: str | None = None) -> bool: ...
    def status(self, text: str) -> bool: ...
    def watchdog(self) -> bool: ...
    def stopping(self, status_text: str | None = None) -> bool: ...
