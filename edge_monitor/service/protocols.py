"""The collaborators of :class:`edge_monitor.service.daemon.Daemon`, as structural types.

Each Protocol names what the daemon's scoring loop uses and nothing more, so
that a real part, a test's recording sink or a stand-in for ``simulate`` can
be passed without inheriting from anything (the approach of structlog's
``typing.py``). They are checked by mypy, not at run time.

- :class:`AudioSource`: yields windows from a device or files through its own ring
  (:class:`edge_monitor.audio.capture.MicrophoneSource`, :class:`edge_monitor.audio.replay.ReplaySource`).
- :class:`ScorerLike`: scores one raw window (:class:`edge_monitor.model.scorer.Scorer`).
- :class:`PublisherLike`: takes alerts, sensor events, scores and health out
  (:class:`edge_monitor.publish.publisher.Publisher`, :class:`edge_monitor.service.publishers.NullPublisher`).
- :class:`NotifierLike`: tells the service manager how the daemon is doing
  (the module :mod:`edge_monitor.service.notify`).
- :class:`Observer`: sees the loop's events through the daemon's read-only view
  (:class:`edge_monitor.web.view.DaemonView`; the status page).
- ``Logger``: structlog's ``FilteringBoundLogger`` (what ``service.logs.get_logger`` returns).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, TypeAlias

from structlog.typing import FilteringBoundLogger

if TYPE_CHECKING:
    from edge_monitor.audio.ring_buffer import Window
    from edge_monitor.model.bundle import ModelBundle
    from edge_monitor.model.scorer import WindowScore
    from edge_monitor.publish.messages import Payload
    from edge_monitor.web.view import DaemonView

Logger: TypeAlias = FilteringBoundLogger

__all__ = ["AudioSource", "Logger", "NotifierLike", "Observer", "PublisherLike", "ScorerLike"]


class AudioSource(Protocol):
    """Windows of audio from a device or files, filled into the source's own ring on its own thread.

    :meth:`read` is the one way windows come out; ``poll()`` runs on the
    scoring loop (about every 0.5 s) to notice a lost device and reopen it.
    """

    kind: str  # "microphone", "replay": shown in logs and the health message
    last_error: str | None

    def start(self) -> bool:
        """Open the device or the files; ``False`` when it failed (``last_error`` says why)."""
        ...

    def read(self, timeout: float) -> Window | None:
        """The next window (raw samples, rate, sample mask), waiting at most ``timeout`` s; ``None`` if none came."""
        ...

    @property
    def finished(self) -> bool:
        """No window will come any more (the end of the replayed files, or stopped)."""
        ...

    @property
    def xruns(self) -> int:
        """Input overflows of the current stream."""
        ...

    @property
    def overruns(self) -> int:
        """Windows lost because the reader fell behind (current stream)."""
        ...

    def poll(self) -> None: ...

    def stop(self) -> None: ...

    def stats(self) -> Payload:
        """Counters for the health message (JSON-serialisable)."""
        ...


class ScorerLike(Protocol):
    """One window as captured in, its anomaly score out (the model side does all conditioning)."""

    @property
    def bundle(self) -> ModelBundle: ...

    def predict(self, window: Window, channel: int | None = None, max_invalid: float = 1.0) -> WindowScore:
        """Condition (downmix, resample, sample mask -> valid frames) and score; see ``Scorer.predict``."""
        ...


class PublisherLike(Protocol):
    """Where alerts, sensor events, scores, state and health go (MQTT, nowhere, or a test's list).

    ``publish_alert`` and ``publish_sensor`` must not lose a message once they
    return (the MQTT publisher queues them on disk first); ``stop`` flushes
    for at most ``timeout`` seconds.
    """

    def start(self) -> None: ...
    def publish_alert(self, payload: Payload) -> object: ...
    def publish_sensor(self, payload: Payload) -> object: ...
    def set_state(self, state: str) -> None: ...
    def set_microphone(self, state: str) -> None: ...
    def publish_score(self, payload: Payload) -> None: ...
    def publish_status(self, payload: Payload) -> None: ...
    def stats(self) -> Payload: ...
    def stop(self, timeout: float = 5.0) -> None: ...


class NotifierLike(Protocol):
    """systemd's sd_notify messages; each returns whether a message was sent."""

    def ready(self, status_text: str | None = None) -> bool: ...
    def status(self, text: str) -> bool: ...
    def watchdog(self) -> bool: ...
    def stopping(self, status_text: str | None = None) -> bool: ...


class Observer(Protocol):
    """Sees the scoring loop's events on the loop's thread (see ``Daemon._observe``); quick, never blocking."""

    def observe(self, daemon: DaemonView, event: str, payload: Window | Payload | None) -> None: ...
