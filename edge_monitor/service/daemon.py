"""The pipeline: audio source -> sensor check -> model -> decision -> publisher.

One :class:`Daemon` serves ``edge-monitor run`` (microphone) and
``edge-monitor simulate`` (WAV replay) alike; only the source differs. The
audio thread (PortAudio's callback or the replay thread) only fills the
source's own ring; everything here runs on the main thread, the *scoring loop*:

1. take the next window from the source (``source.read``: every
   ``audio.hop_seconds``), waiting at most 0.5 s so that signals, the systemd
   watchdog and the device supervisor are served even while no audio arrives;
2. check the raw channels for sensor faults (:mod:`edge_monitor.audio.sensor_health`):
   a faulty window raises/keeps a ``<base>/sensor`` event and is **not**
   scored, so a pulled cable never pages anyone about the rail; except that
   a window whose only fault is short dropouts (at most
   ``audio.max_dropout_fraction`` of its frames) is scored on its other
   frames, so a glitching USB microphone does not blind the monitor;
3. score it with one call to the model side
   (:meth:`edge_monitor.model.scorer.Scorer.predict`: downmix, resample, mask
   -> valid frames, log-mel, detectors, fusion);
4. feed the score to the :class:`~edge_monitor.decide.decision.Decider`; an alert
   (:mod:`edge_monitor.service.alerting`) start saves the strongest of the windows that raised it as evidence (the
   last ``n`` windows stay in memory, :mod:`edge_monitor.decide.candidates`),
   explains that window (:mod:`edge_monitor.decide.explain`) and is published
   (durably, outbox first);
5. ``WATCHDOG=1`` and ``STATUS=`` to systemd, the per-window score and the
   periodic health message to MQTT (:mod:`edge_monitor.service.health`; typed messages:
   :mod:`edge_monitor.publish.messages`).

Observers (``Daemon.observers``, :mod:`edge_monitor.service.observers`) see each
window, alert and sensor event on the loop's thread, through the daemon's
read-only view (:class:`edge_monitor.web.view.DaemonView`); ``run`` and
``simulate`` attach the ``http:`` status page and ``/metrics``
(:mod:`edge_monitor.web.server`) as one when the config has that section.

The collaborators are the Protocols of :mod:`edge_monitor.service.protocols`:
the source, the scorer, the publisher (the MQTT
:class:`edge_monitor.publish.publisher.Publisher`, :class:`NullPublisher`, or a
test's recording sink) and the systemd notifier.

Shutdown (SIGTERM/SIGINT, :meth:`Daemon.request_stop`): the loop finishes the
window in flight, stops capture, sends ``STOPPING=1``, flushes the publisher
(``stop(timeout=3)``) and returns 0, within 5 s.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edge_monitor.audio.ring_buffer import Window, Windowing
from edge_monitor.audio.sensor_health import SensorStatus
from edge_monitor.config.loader import check_hop_fits
from edge_monitor.config.schema import Config
from edge_monitor.decide.decision import Decider, DecisionRule, typical_normal_score
from edge_monitor.model.conditioning import TooFewValidFrames
from edge_monitor.model.model_info import model_info
from edge_monitor.publish.messages import (
    Payload,
    ScoreMessage,
    SensorMessage,
    iso_utc,
)
from edge_monitor.publish.open_alerts import OpenAlerts
from edge_monitor.publish.open_sensor_events import OpenSensorEvents
from edge_monitor.service import health
from edge_monitor.service.alerting import Alerting
from edge_monitor.service.observers import Observers
from edge_monitor.service.protocols import (
    AudioSource,
    Logger,
    NotifierLike,
    PublisherLike,
    ScorerLike,
)
from edge_monitor.service.publishers import EchoPublisher, NullPublisher, make_publisher
from edge_monitor.service.sensor_gate import SensorGate

__all__ = ["Daemon", "NullPublisher", "EchoPublisher", "PublisherLike", "iso_utc", "make_publisher"]

READ_TIMEOUT_S = 0.5  # longest the loop waits for audio before serving signals/watchdog
STOP_FLUSH_S = 3.0  # publisher flush budget on shutdown (the whole stop must stay under 5 s)


@dataclass
class Counters:
    """Windows and alerts since start-up (the health message and the status page read them)."""

    windows: int = 0
    scored: int = 0
    sensor_faulty: int = 0  # windows with a sensor fault (scored partly or not at all)
    scored_partial: int = 0  # of those, scored on their valid frames (short dropouts)
    alerts: int = 0
    errors: int = 0
    evidence_errors: int = 0  # evidence WAVs that could not be saved (a full disk)


class Daemon:
    """The scoring loop. Build it, build a source with :attr:`windowing`, call :meth:`run`.

    Args:
        cfg: the validated configuration.
        scorer: a :class:`edge_monitor.model.scorer.Scorer` for the bundle.
        publisher: see the module docstring.
        log: structlog logger.
        notifier: the sd_notify module (``ready``, ``status``, ``watchdog``,
            ``stopping``); default :mod:`edge_monitor.service.notify`.
        id_factory: event ids (default UUID4).
    """

    def __init__(self, cfg: Config, scorer: ScorerLike, publisher: PublisherLike, log: Logger,
                 notifier: NotifierLike | None = None, id_factory: Callable[[], str] | None = None) -> None:
        self.cfg = cfg
        self.scorer = scorer
        self.bundle = scorer.bundle
        self.publisher = publisher
        self.log = log
        if notifier is None:
            from edge_monitor.service import notify as default_notifier  # noqa: PLC0415

            notifier = default_notifier
        self.notify: NotifierLike = notifier
        self.model_rate = int(self.bundle.features.sample_rate)
        self.window_seconds = float(self.bundle.features.window_seconds)
        check_hop_fits(cfg, self.window_seconds)
        #: How sources cut their stream: the model's window, every ``audio.hop_seconds``.
        self.windowing = Windowing(self.window_seconds, cfg.audio.hop_seconds)
        self.threshold = float(cfg.decision.threshold if cfg.decision.threshold is not None else self.bundle.threshold)
        d = cfg.decision
        self.rule = DecisionRule(self.threshold, d.k, d.n, d.clear_windows, d.clear_ratio, d.cooldown_seconds,
                                 baseline=typical_normal_score(self.bundle.doc.typical_normal_score(),
                                                               self.threshold))
        self.decider = Decider(self.rule, id_factory)
        self.sensors = SensorGate(cfg.device_id, cfg.audio.max_dropout_fraction, self._publish_sensor, log)
        self.open_sensor_events = OpenSensorEvents(cfg.outbox_path.parent)  # ends what a crash left open
        self.model_info = model_info(self.bundle, self.threshold)
        self.counters = Counters()
        # The alert path: candidate windows, evidence, explanation, the open-alert note.
        self.alerting = Alerting(cfg, self.bundle, publisher, log, self.counters, self._safe, self._note_error)
        self.source: AudioSource | None = None
        self.last_score: float | None = None
        self.last_error: str | None = None
        self.started_at = time.time()
        self._stop_requested = False
        self._next_status = 0.0
        # Observers see the loop's events on the loop's thread (see _observe); `run` and `simulate`
        # attach the HTTP status page and /metrics (edge_monitor.web.server) when `http:` is set.
        self.observers = Observers(log)

    # --- the read-only view observers get (edge_monitor.web.view.DaemonView, documented there) ---

    @property
    def device_id(self) -> str:
        return self.cfg.device_id

    @property
    def state(self) -> str:
        return self.decider.state

    @property
    def clear_level(self) -> float:
        return self.rule.clear_level

    @property
    def peak_score(self) -> float | None:
        return self.decider.peak_score

    @property
    def sensor_active(self) -> tuple[str, ...]:
        return tuple(self.sensors.monitor.active)

    @property
    def last_sensor_status(self) -> SensorStatus | None:
        return self.sensors.last_status

    @property
    def evidence_dir(self) -> Path | None:
        return self.cfg.evidence_dir if self.alerting.evidence is not None else None

    @property
    def xruns(self) -> int:
        return self.source.xruns if self.source is not None else 0

    @property
    def overruns(self) -> int:
        return self.source.overruns if self.source is not None else 0

    def publisher_stats(self) -> Payload:
        return self.publisher.stats()

    # --- wiring ----------------------------------------------------------------------------

    def request_stop(self, *_args: object) -> None:
        """Ask the loop to stop after the window in flight (safe from a signal handler)."""
        self._stop_requested = True

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)

    # --- the loop -----------------------------------------------------------------------------

    def run(self, source: AudioSource) -> int:
        """Start publisher and source, score until the stream ends or a stop is requested; 0."""
        self.source = source
        self.publisher.start()
        self.alerting.close_interrupted()  # the previous run died with an alert open
        self._close_interrupted_sensor_events()  # ... or with a microphone fault open
        capturing = source.start()
        self.notify.ready(self.status_line() if capturing else f"waiting for audio device: {source.last_error}")
        self.log.info("monitoring", device_id=self.cfg.device_id, source=source.kind,
                      model=self.bundle.path.name, sha256=self.bundle.sha256[:12], threshold=self.threshold,
                      clear_level=self.rule.clear_level, hop_s=self.cfg.audio.hop_seconds,
                      window_s=self.window_seconds, k=self.rule.k, n=self.rule.n,
                      explanations=self.alerting.explainer is not None, sensor_health=True)
        self._observe("start", None)
        try:
            while not self._stop_requested:
                win = source.read(READ_TIMEOUT_S)
                self.notify.watchdog()
                if win is not None:
                    self.process(win)
                    self._observe("window", win)
                elif source.finished:
                    break  # end of a replayed stream
                source.poll()
                self._publish_status(time.monotonic())
                self._observe("tick", None)
        finally:
            self.shutdown()
        return 0

    def shutdown(self) -> None:
        why = "stop requested" if self._stop_requested else "end of stream"
        self.notify.stopping(f"stopping ({why}): flushing the outbox")
        if self.source is not None:
            self.source.stop()
        self._publish_status()
        self._observe("stop", None)
        try:
            self.publisher.stop(timeout=STOP_FLUSH_S)
        except Exception as exc:  # noqa: BLE001
            self.log.error("publisher did not stop cleanly", error=str(exc))
        self.log.info("stopped", reason=why, windows=self.counters.windows, scored=self.counters.scored,
                      alerts=self.counters.alerts, sensor_faulty=self.counters.sensor_faulty,
                      xruns=self.xruns, overruns=self.overruns)

    # --- one window -----------------------------------------------------------------------------

    def process(self, win: Window) -> None:
        """Check, score and decide one window (errors are logged, never fatal)."""
        self.counters.windows += 1
        if win.xruns:
            # Samples were lost inside this window: never silent, the sensor checks judge bursts.
            self.log.warning("input overflow (xrun)", index=win.index, xruns=win.xruns, total_xruns=self.xruns)
        try:
            scorable = self._check_sensor(win)
            if scorable is None:
                return
            audio = self.cfg.audio
            ws = self.scorer.predict(scorable, audio.channel, audio.max_dropout_fraction)
        except TooFewValidFrames:
            self._not_scored(win)  # dropouts on too many frames
            return
        except Exception as exc:  # noqa: BLE001 - one bad window must not stop months of monitoring
            self.counters.errors += 1
            self.last_error = f"window {win.index}: {type(exc).__name__}: {exc}"
            self.log.error("window failed", index=win.index, error=self.last_error)
            return
        if ws.valid is not None:
            self.counters.scored_partial += 1
            self.log.debug("window scored on its valid frames", index=win.index,
                           valid_frames=int(ws.valid.sum()), frames=int(ws.valid.size))
        self.counters.scored += 1
        self.last_score = ws.score
        self.alerting.push(ws, win.start_time, win.end_time)
        event = self.decider.update(ws.score, win.start_time, win.end_time)
        self.log.debug("window", index=win.index, start=iso_utc(win.start_time), score=round(ws.score, 6),
                       threshold=self.threshold, above=ws.score > self.threshold, state=self.decider.state,
                       xruns=win.xruns)
        if self.cfg.mqtt.publish_scores:
            self._safe(self.publisher.publish_score, ScoreMessage(
                self.cfg.device_id, time.time(), win.start_time, win.end_time, ws.score, self.threshold,
                self.decider.state, self._source_kind()).to_payload())
        if event is not None:
            self._observe("alert", self.alerting.alert(event, ws, self._source_kind()))
        self.notify.status(self.status_line())

    def _check_sensor(self, win: Window) -> Window | None:
        """The sensor checks (:class:`SensorGate`): the window to score, or ``None`` to skip it."""
        scorable = self.sensors.check(win, self._source_kind())
        # The monitor knows whether a fault episode is open; the publisher only carries
        # it (and sends it only when it changes).
        self._safe(self.publisher.set_microphone, "ok" if self.sensors.monitor.ok else "problem")
        if self.sensors.last_status is not None and not self.sensors.last_status.ok:
            self.counters.sensor_faulty += 1
        if scorable is None:
            self._not_scored(win)
        return scorable

    def _not_scored(self, win: Window) -> None:
        status = self.sensors.last_status
        self.log.debug("window not scored: sensor fault", index=win.index,
                       faults=[f.kind for f in status.faults] if status is not None else [],
                       rms_dbfs=status.to_dict()["rms_dbfs"] if status is not None else None)
        self.notify.status(self.status_line())

    def _publish_sensor(self, msg: SensorMessage) -> None:
        payload = msg.to_payload()
        self._safe(self.publisher.publish_sensor, payload)
        self._note_open_sensor_event(payload)
        self._observe("sensor", payload)

    def keep_notes_in(self, folder: Path) -> None:
        """Keep the open-alert and open-fault notes in ``folder`` instead of ``state_dir`` (a replay's own)."""
        self.alerting.open_alerts = OpenAlerts(folder)
        self.open_sensor_events = OpenSensorEvents(folder)

    def _close_interrupted_sensor_events(self) -> None:
        """Publish the end of each microphone fault episode the previous run left open."""
        for end in self.open_sensor_events.interrupted(iso_utc(time.time())):
            self.log.warning("sensor end (interrupted): the previous run stopped while it was open",
                             kind=end["kind"], event_id=end["event_id"], since=end["since"])
            self._safe(self.publisher.publish_sensor, end)
        try:
            self.open_sensor_events.clear()
        except OSError as exc:
            self._note_error(f"{self.open_sensor_events.path}: {exc.strerror or exc}")

    def _note_open_sensor_event(self, payload: Payload) -> None:
        """Keep (start) or forget (end) an open fault episode on disk, for the next start after a crash."""
        error = self.open_sensor_events.record(payload)
        if error is not None:
            self._note_error(error)
            self.log.error("open sensor event not noted on disk", error=error)

    def _source_kind(self) -> str | None:
        """``"microphone"`` or ``"replay"``: the payloads say where their audio came from."""
        return self.source.kind if self.source is not None else None

    def _observe(self, event: str, payload: Window | Payload | None) -> None:
        """Tell the observers (:meth:`edge_monitor.service.observers.Observers.tell`)."""
        self.observers.tell(self, event, payload)

    def _note_error(self, error: str) -> None:
        """The latest error line (the health message's ``last_error``)."""
        self.last_error = error

    def _safe(self, fn: Callable[..., object], *args: object) -> None:
        try:
            fn(*args)
        except Exception as exc:  # noqa: BLE001 - the publisher reports its own problems
            self.counters.errors += 1
            self.last_error = f"{fn.__name__}: {type(exc).__name__}: {exc}"
            self.log.error("publish failed", error=self.last_error)

    # --- health ---------------------------------------------------------------------------------

    def status_line(self) -> str:
        """The one-line summary for systemd's ``STATUS=`` (:func:`edge_monitor.service.health.status_line`)."""
        return health.status_line(self)

    def health(self) -> Payload:
        """The ``<base>/status`` health JSON (:func:`edge_monitor.service.health.health_message`)."""
        return health.health_message(self).to_payload()

    def _publish_status(self, now: float | None = None) -> None:
        """Publish the health message; given ``now`` (monotonic s), once per ``mqtt.status_interval_s``."""
        if now is not None:
            if now < self._next_status:
                return
            self._next_status = now + self.cfg.mqtt.status_interval_s
        self._safe(self.publisher.publish_status, self.health())
