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
   start saves the strongest of the windows that raised it as evidence (the
   last ``n`` windows stay in memory, :mod:`edge_monitor.decide.candidates`),
   explains that window (:mod:`edge_monitor.decide.explain`) and is published
   (durably, outbox first);
5. ``WATCHDOG=1`` and ``STATUS=`` to systemd, the per-window score and the
   periodic health message to MQTT (typed messages: :mod:`edge_monitor.publish.messages`).

Observers (``Daemon.observers``, see :meth:`Daemon._observe`) see each
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
from edge_monitor.decide.candidates import CandidateWindows
from edge_monitor.decide.decision import AlertEvent, Decider, DecisionRule, typical_normal_score
from edge_monitor.decide.evidence import EvidenceStore
from edge_monitor.decide.explain import BundleExplainer
from edge_monitor.model.conditioning import TooFewValidFrames
from edge_monitor.model.model_info import model_info, model_ref
from edge_monitor.model.scorer import WindowScore
from edge_monitor.publish.messages import (
    AlertMessage,
    Detectors,
    HealthMessage,
    Payload,
    ScoreMessage,
    SensorMessage,
    iso_utc,
)
from edge_monitor.publish.open_alerts import OpenAlerts
from edge_monitor.service.protocols import (
    AudioSource,
    Logger,
    NotifierLike,
    Observer,
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
        # The last n scored windows' WindowScore (with the audio it scored): an alert's strongest window.
        self.candidates: CandidateWindows[WindowScore] = CandidateWindows(d.n)
        self.evidence = (EvidenceStore(cfg.evidence_dir, int(cfg.evidence.max_mb * 1_000_000))
                         if cfg.evidence.enabled else None)
        self.explainer = self._make_explainer()
        self.sensors = SensorGate(cfg.device_id, cfg.audio.max_dropout_fraction, self._publish_sensor, log)
        self.model_info = model_info(self.bundle, self.threshold)
        self.counters = Counters()
        self.source: AudioSource | None = None
        self.last_score: float | None = None
        self.last_error: str | None = None
        self.started_at = time.time()
        self._stop_requested = False
        self._next_status = 0.0
        self.open_alerts = OpenAlerts(cfg.outbox_path.parent)  # closes an alert a crash left open
        # Observers see the loop's events on the loop's thread (see _observe); `run` and `simulate`
        # attach the HTTP status page and /metrics (edge_monitor.web.server) when `http:` is set.
        self.observers: list[Observer] = []
        self._observer_failures: dict[str, int] = {}

    def _make_explainer(self) -> BundleExplainer | None:
        try:
            return BundleExplainer.from_bundle(self.bundle)
        except (ValueError, KeyError, TypeError) as exc:
            self.log.info("alerts without explanations", reason=str(exc))
            return None

    # --- the read-only view observers get (edge_monitor.web.view.DaemonView) --------------------

    @property
    def device_id(self) -> str:
        return self.cfg.device_id

    @property
    def state(self) -> str:
        """``"normal"``, ``"anomaly"`` (the decider's state)."""
        return self.decider.state

    @property
    def clear_level(self) -> float:
        return self.rule.clear_level

    @property
    def peak_score(self) -> float | None:
        """The open alert's highest score so far (``None`` while no alert is open)."""
        return self.decider.peak_score

    @property
    def sensor_active(self) -> tuple[str, ...]:
        """The fault kinds of the open sensor episodes."""
        return tuple(self.sensors.monitor.active)

    @property
    def last_sensor_status(self) -> SensorStatus | None:
        """The sensor check of the latest window."""
        return self.sensors.last_status

    @property
    def evidence_dir(self) -> Path | None:
        """Where alert evidence is saved (``None``: evidence off)."""
        return self.cfg.evidence_dir if self.evidence is not None else None

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
        for end in self.open_alerts.interrupted(iso_utc(time.time())):  # the previous run died with it open
            self.log.warning("alert end (interrupted): the previous run stopped while it was open",
                             event_id=end["event_id"], opened_at=end["opened_at"])
            self._safe(self.publisher.publish_alert, end)
            self._safe(self.publisher.set_state, "normal")
            self._note_open_alert(end)
        capturing = source.start()
        self.notify.ready(self.status_line() if capturing else f"waiting for audio device: {source.last_error}")
        self.log.info("monitoring", device_id=self.cfg.device_id, source=source.kind,
                      model=self.bundle.path.name, sha256=self.bundle.sha256[:12], threshold=self.threshold,
                      clear_level=self.rule.clear_level, hop_s=self.cfg.audio.hop_seconds,
                      window_s=self.window_seconds, k=self.rule.k, n=self.rule.n,
                      explanations=self.explainer is not None, sensor_health=True)
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
                self._maybe_publish_status()
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
        self.candidates.push(ws.score, win.start_time, win.end_time, ws)
        event = self.decider.update(ws.score, win.start_time, win.end_time)
        self.log.debug("window", index=win.index, start=iso_utc(win.start_time), score=round(ws.score, 6),
                       threshold=self.threshold, above=ws.score > self.threshold, state=self.decider.state,
                       xruns=win.xruns)
        if self.cfg.mqtt.publish_scores:
            self._safe(self.publisher.publish_score, ScoreMessage(
                self.cfg.device_id, time.time(), win.start_time, win.end_time, ws.score, self.threshold,
                self.decider.state, self._source_kind()).to_payload())
        if event is not None:
            self._alert(event, ws)
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
        self._observe("sensor", payload)

    def _alert(self, ev: AlertEvent, ws: WindowScore) -> None:
        evidence_path = None
        explanation = None
        if ev.event == "start":
            self.counters.alerts += 1
            # Evidence, explanation and detectors describe the strongest window that raised the alert.
            peak = self.candidates.find(ev.peak_window_start)
            if peak is not None:
                ws = peak.data
            evidence_path = self._save_evidence(ev, ws)
            explanation = self._explain(ev, ws)
        msg = AlertMessage(
            event_id=ev.event_id, device_id=self.cfg.device_id, machine=self.bundle.machine, event=ev.event,
            time=time.time(), window_start=ev.window_start, window_end=ev.window_end, score=ev.score,
            threshold=ev.threshold, peak_score=ev.peak_score, peak_window_start=ev.peak_window_start,
            peak_window_end=ev.peak_window_end, source=self._source_kind(), model=model_ref(self.bundle),
            evidence=evidence_path, explanation=explanation, windows=ev.windows,
            detectors=Detectors(ws.detector, ws.z) if ev.event == "start" and ws.z else None,
            opened_at=ev.opened_at if ev.event == "end" else None)
        payload = msg.to_payload()
        self.log.info("alert " + ev.event, event_id=ev.event_id, score=round(ev.score, 6),
                      peak_score=round(ev.peak_score, 6), threshold=ev.threshold,
                      window_start=payload["window_start"], evidence=evidence_path,
                      explanation=(explanation or {}).get("text"))
        self._safe(self.publisher.publish_alert, payload)
        self._safe(self.publisher.set_state, "anomaly" if ev.event == "start" else "normal")
        self._note_open_alert(payload)
        self._observe("alert", payload)

    def _note_open_alert(self, payload: Payload) -> None:
        """Keep (start) or forget (end) the open alert on disk, for the next start after a crash."""
        error = self.open_alerts.record(payload)
        if error is not None:
            self.last_error = error
            self.log.error("open alert not noted on disk", error=error)

    def _save_evidence(self, ev: AlertEvent, ws: WindowScore) -> str | None:
        if self.evidence is None or ws.samples is None:
            return None
        try:
            return str(self.evidence.save(ev.event_id, ws.samples, self.model_rate, ev.peak_window_start))
        except Exception as exc:  # noqa: BLE001 - a full disk must not lose the alert
            self.counters.evidence_errors += 1
            self.last_error = f"evidence not saved: {exc}"
            self.log.error("evidence not saved", event_id=ev.event_id, error=str(exc))
            return None

    def _explain(self, ev: AlertEvent, ws: WindowScore) -> Payload | None:
        if self.explainer is None:
            return None
        try:
            # The unclipped log-mel (ws.db) or the scored samples give exact levels (the model
            # input is clipped to the bundle's [clip_lo, clip_hi], which can flatten very loud
            # clicks) and reliable impacts. The detector that fired decides the view: its
            # reconstruction, or the normal band levels.
            return self.explainer(ws, samples=ws.samples).to_dict()
        except Exception as exc:  # noqa: BLE001
            self.log.warning("no explanation", event_id=ev.event_id, error=str(exc))
            return None

    def _source_kind(self) -> str | None:
        """``"microphone"`` or ``"replay"``: the payloads say where their audio came from."""
        return self.source.kind if self.source is not None else None

    def _observe(self, event: str, payload: Window | Payload | None) -> None:
        """Tell each observer: ``observe(daemon, event, payload)`` on the loop's thread.

        Events: ``start`` (loop starts), ``window`` (payload: the Window just
        processed, scored or not), ``alert`` / ``sensor`` (payload: the dict
        just published), ``tick`` (every loop turn, at least every 0.5 s),
        ``stop`` (shutdown, after the last status). Observers must be quick
        and never block; one that fails is logged and the loop goes on.
        """
        for obs in self.observers:
            try:
                obs.observe(self, event, payload)
            except Exception as exc:  # noqa: BLE001 - the page must never stop the monitoring
                name = type(obs).__name__
                n = self._observer_failures[name] = self._observer_failures.get(name, 0) + 1
                if n & (n - 1) == 0:  # failures 1, 2, 4, 8, ...: seen, without flooding the journal
                    self.log.error("observer failed", observer=name, hook=event, error=str(exc), failures=n)

    def _safe(self, fn: Callable[..., object], *args: object) -> None:
        try:
            fn(*args)
        except Exception as exc:  # noqa: BLE001 - the publisher reports its own problems
            self.counters.errors += 1
            self.last_error = f"{fn.__name__}: {type(exc).__name__}: {exc}"
            self.log.error("publish failed", error=self.last_error)

    # --- health ---------------------------------------------------------------------------------

    def status_line(self) -> str:
        """The one-line summary for systemd's ``STATUS=``."""
        score = f"{self.last_score:.4g}" if self.last_score is not None else "-"
        try:
            broker = "connected" if self.publisher.stats().get("connected") else "broker down"
        except Exception:  # noqa: BLE001
            broker = "broker ?"
        sensor = "" if self.sensors.monitor.ok else " sensor: " + ",".join(self.sensors.monitor.active)
        return (f"{self.decider.state} last score {score} (threshold {self.threshold:.4g}), "
                f"{self.counters.scored} windows, {self.counters.alerts} alerts, {broker}{sensor}")

    def health_message(self) -> HealthMessage:
        """The ``<base>/status`` health message, now."""
        try:
            pub = self.publisher.stats()
        except Exception:  # noqa: BLE001
            pub = {}
        c = self.counters
        return HealthMessage(
            device_id=self.cfg.device_id, time=time.time(), started_at=self.started_at, state=self.decider.state,
            last_score=self.last_score, threshold=self.threshold, windows=c.windows, windows_scored=c.scored,
            windows_sensor_fault=c.sensor_faulty, windows_scored_partial=c.scored_partial, alerts=c.alerts,
            mqtt=pub, xruns=self.xruns, overruns=self.overruns,
            last_error=self.last_error or (pub.get("storage") or {}).get("error")
            or (self.source.last_error if self.source is not None else None),
            storage=pub.get("storage"), evidence_errors=c.evidence_errors,
            source=self.source.stats() if self.source is not None else None, sensor=self.sensors.monitor.state(),
            model=model_ref(self.bundle), queue_depth=pub.get("outbox_depth"))

    def health(self) -> Payload:
        """The ``<base>/status`` health JSON (:meth:`health_message` as its payload)."""
        return self.health_message().to_payload()

    def _maybe_publish_status(self) -> None:
        now = time.monotonic()
        if now >= self._next_status:
            self._next_status = now + self.cfg.mqtt.status_interval_s
            self._publish_status()

    def _publish_status(self) -> None:
        self._safe(self.publisher.publish_status, self.health())
