"""The pipeline: audio source -> ring buffer -> sensor check -> score -> decision -> publisher.

One :class:`Daemon` serves ``edge-monitor run`` (microphone) and
``edge-monitor simulate`` (WAV replay) alike; only the source differs. The
audio thread (PortAudio's callback or the replay thread) only fills the ring;
everything here runs on the main thread, the *scoring loop*:

1. take the next window from the ring (every ``audio.hop_seconds``), waiting
   at most 0.5 s so that signals, the systemd watchdog and the device
   supervisor are served even while no audio arrives;
2. check the raw channels for sensor faults (:mod:`edge_monitor.audio.sensor_health`):
   a faulty window raises/keeps a ``<base>/sensor`` event and is **not**
   scored, so a pulled cable never pages anyone about the rail; except that
   a window whose only fault is short dropouts (at most
   ``audio.max_dropout_fraction`` of its frames) is scored on its other
   frames, so a glitching USB microphone does not blind the monitor;
3. downmix, resample to the model's rate if the device runs at another one,
   score (:class:`edge_monitor.model.scorer.Scorer`);
4. feed the score to the :class:`~edge_monitor.decide.decision.Decider`; an alert
   start saves the strongest of the windows that raised it as evidence (the
   last ``n`` windows stay in memory, :mod:`edge_monitor.decide.candidates`),
   explains that window (:mod:`edge_monitor.decide.explain`) and is published
   (durably, outbox first);
5. ``WATCHDOG=1`` and ``STATUS=`` to systemd, the per-window score and the
   periodic health message to MQTT.

Observers (``Daemon.observers``, see :meth:`Daemon._observe`) see each
window, alert and sensor event on the loop's thread; the ``http:`` status
page and ``/metrics`` (:mod:`edge_monitor.web.server`) is one, attached only
when the config has that section.

The publisher is injected: anything with ``start()``, ``publish_alert(dict)``,
``publish_sensor(dict)``, ``set_state(str)``, ``set_microphone(str)``, ``publish_score(dict)``,
``publish_status(dict)``, ``stats() -> dict`` and ``stop(timeout)`` (the MQTT
:class:`edge_monitor.publish.publisher.Publisher`, :class:`NullPublisher`, or a test's
recording sink).

Shutdown (SIGTERM/SIGINT, :meth:`Daemon.request_stop`): the loop finishes the
window in flight, stops capture, sends ``STOPPING=1``, flushes the publisher
(``stop(timeout=3)``) and returns 0, within 5 s.
"""

from __future__ import annotations

import datetime as _dt
import json
import signal
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from edge_monitor.audio import audio_io
from edge_monitor.audio.ring_buffer import RingBuffer, Window
from edge_monitor.audio.sensor_health import SensorMonitor, check_window
from edge_monitor.config.loader import check_hop_fits
from edge_monitor.config.schema import Config
from edge_monitor.decide.candidates import CandidateWindows
from edge_monitor.decide.decision import AlertEvent, Decider, DecisionRule, typical_normal_score
from edge_monitor.decide.evidence import EvidenceStore
from edge_monitor.decide.explain import BundleExplainer
from edge_monitor.model.model_info import model_info, model_ref
from edge_monitor.publish.open_alerts import OpenAlerts
from edge_monitor.publish.state_dir import prepare_state_dir
from edge_monitor.service.protocols import AudioSource, NotifierLike, PublisherLike, ScorerLike

__all__ = ["Daemon", "NullPublisher", "EchoPublisher", "PublisherLike", "iso_utc", "make_publisher"]

READ_TIMEOUT_S = 0.5  # longest the loop waits for audio before serving signals/watchdog
STOP_FLUSH_S = 3.0  # publisher flush budget on shutdown (the whole stop must stay under 5 s)


def iso_utc(t: float) -> str:
    """Unix time -> ISO 8601 UTC with milliseconds (``2026-11-25T12:00:00.000Z``)."""
    return _dt.datetime.fromtimestamp(t, _dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class NullPublisher:
    """A publisher that publishes nothing (``mqtt.enabled: false``, ``simulate --no-mqtt``)."""

    def start(self) -> None:
        pass

    def publish_alert(self, payload: dict) -> None:
        pass

    def publish_sensor(self, payload: dict) -> None:
        pass

    def set_state(self, state: str) -> None:
        pass

    def set_microphone(self, state: str) -> None:
        pass

    def publish_score(self, payload: dict) -> None:
        pass

    def publish_status(self, payload: dict) -> None:
        pass

    def stats(self) -> dict:
        return {"connected": False, "broker": None}

    def stop(self, timeout: float = 5.0) -> None:
        pass


class EchoPublisher:
    """Wraps a publisher and also prints each alert and sensor event as one JSON line.

    ``simulate`` uses it on stdout so that a run shows its alerts (and tests
    can read them) with or without a broker.
    """

    def __init__(self, inner: Any, stream: TextIO | None = None) -> None:
        self.inner = inner
        self.stream = stream if stream is not None else sys.stdout

    def _echo(self, topic: str, payload: dict) -> None:
        self.stream.write(json.dumps({"topic": topic, **payload}, sort_keys=True) + "\n")
        self.stream.flush()

    def publish_alert(self, payload: dict) -> None:
        self.inner.publish_alert(payload)
        self._echo("alert", payload)

    def publish_sensor(self, payload: dict) -> None:
        self.inner.publish_sensor(payload)
        self._echo("sensor", payload)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def make_publisher(cfg: Config, model_info: dict, log: Any, outbox: Path | None = None) -> Any:
    """The MQTT publisher for ``cfg`` (or a :class:`NullPublisher` when ``mqtt.enabled`` is false).

    ``outbox``: the SQLite outbox (default ``cfg.outbox_path``; ``simulate`` passes one of its own).
    """
    if not cfg.mqtt.enabled:
        log.info("mqtt disabled: alerts are logged only")
        return NullPublisher()
    from edge_monitor.publish.publisher import Publisher  # noqa: PLC0415 - paho loads only when used

    prepare_state_dir(cfg.state_dir, log)
    path = outbox if outbox is not None else cfg.outbox_path
    return Publisher(cfg.mqtt, cfg.device_id, path, model_info)  # never fails on the disk


@dataclass
class _Counters:
    windows: int = 0
    scored: int = 0
    sensor_faulty: int = 0  # windows with a sensor fault (scored partly or not at all)
    scored_partial: int = 0  # of those, scored on their valid frames (short dropouts)
    alerts: int = 0
    errors: int = 0
    evidence_errors: int = 0  # evidence WAVs that could not be saved (a full disk)


class Daemon:
    """The scoring loop. Build it, build a source with :meth:`make_ring`, call :meth:`run`.

    Args:
        cfg: the validated configuration.
        scorer: a :class:`edge_monitor.model.scorer.Scorer` for the bundle.
        publisher: see the module docstring.
        log: structlog logger.
        notifier: the sd_notify module (``ready``, ``status``, ``watchdog``,
            ``stopping``); default :mod:`edge_monitor.service.notify`.
        id_factory: event ids (default UUID4).
    """

    def __init__(self, cfg: Config, scorer: ScorerLike, publisher: PublisherLike, log: Any,
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
        self.threshold = float(cfg.decision.threshold if cfg.decision.threshold is not None else self.bundle.threshold)
        d = cfg.decision
        self.rule = DecisionRule(self.threshold, d.k, d.n, d.clear_windows, d.clear_ratio, d.cooldown_seconds,
                                 baseline=typical_normal_score(self._typical_normal(), self.threshold))
        self.decider = Decider(self.rule, id_factory)
        # The last n scored windows' (model-rate samples, WindowScore): an alert's strongest window.
        self.candidates: CandidateWindows[tuple[np.ndarray, Any]] = CandidateWindows(d.n)
        self.evidence = (EvidenceStore(cfg.evidence_dir, int(cfg.evidence.max_mb * 1_000_000))
                         if cfg.evidence.enabled else None)
        self.explainer = self._make_explainer()
        self.sensor_monitor, self._check_window = self._make_sensor_health()
        self._sensor_ids: dict[str, str] = {}
        self.model_info = model_info(self.bundle, self.threshold)
        self.counters = _Counters()
        self.source: AudioSource | None = None
        self.last_score: float | None = None
        self.last_error: str | None = None
        self.started_at = time.time()
        self._stop_requested = False
        self._next_status = 0.0
        self.open_alerts = OpenAlerts(cfg.outbox_path.parent)  # closes an alert a crash left open
        self.last_sensor_status: Any = None  # the latest window's SensorStatus (observers read it)
        # Observers see the loop's events on the loop's thread (see _observe); the HTTP
        # status page and /metrics (edge_monitor.web.server) is one, only with `http:` set.
        self.observers: list[Any] = []
        self._observer_failures: dict[str, int] = {}
        self.http: Any = None
        if getattr(cfg, "http", None) is not None:
            from edge_monitor.web.server import attach  # loads only when configured

            self.http = attach(self)

    def _typical_normal(self) -> float | None:
        doc = getattr(self.bundle, "doc", None)
        return doc.typical_normal_score() if doc is not None else None

    # --- optional parts --------------------------------------------------------------------

    def _make_explainer(self) -> Any:
        try:
            return BundleExplainer.from_bundle(self.bundle)
        except (ValueError, KeyError, TypeError) as exc:
            self.log.info("alerts without explanations", reason=str(exc))
            return None

    def _make_sensor_health(self) -> tuple[Any, Any]:
        return SensorMonitor(), check_window

    # --- wiring ----------------------------------------------------------------------------

    def make_ring(self, sample_rate: int, channels: int) -> RingBuffer:
        """A ring for a source running at ``sample_rate`` with ``channels`` channels."""
        window = int(round(self.window_seconds * sample_rate))
        hop = min(window, max(1, int(round(self.cfg.audio.hop_seconds * sample_rate))))
        return RingBuffer(window, hop, sample_rate, channels)

    def request_stop(self, *_args: Any) -> None:
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
                      explanations=self.explainer is not None, sensor_health=self.sensor_monitor is not None)
        self._observe("start", None)
        try:
            while not self._stop_requested:
                ring = source.ring
                win = ring.read(timeout=READ_TIMEOUT_S) if ring is not None else None
                if ring is None:
                    time.sleep(READ_TIMEOUT_S)
                self.notify.watchdog()
                if win is not None:
                    self.process(win)
                    self._observe("window", win)
                elif ring is not None and ring.closed and source.ring is ring:
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
                      xruns=self._xruns(), overruns=self._overruns())

    # --- one window -----------------------------------------------------------------------------

    def process(self, win: Window) -> None:
        """Check, score and decide one window (errors are logged, never fatal)."""
        self.counters.windows += 1
        if win.xruns:
            # Samples were lost inside this window: never silent, the sensor checks judge bursts.
            self.log.warning("input overflow (xrun)", index=win.index, xruns=win.xruns, total_xruns=self._xruns())
        try:
            skip, valid = self._sensor_fault(win)
            if self.sensor_monitor is not None:
                # The monitor knows whether a fault episode is open; the publisher only carries
                # it (and sends it only when it changes).
                self._safe(self.publisher.set_microphone, "ok" if self.sensor_monitor.ok else "problem")
            if skip:
                return
            mono = audio_io.downmix(win.samples, self.cfg.audio.channel)
            if win.sample_rate != self.model_rate:
                mono = _fit(audio_io.resample(mono, win.sample_rate, self.model_rate), self.scorer.window_samples)
            mono = np.ascontiguousarray(mono, dtype=np.float32)
            ws = self.scorer.score_window(mono) if valid is None else self.scorer.score_window(mono, valid=valid)
        except Exception as exc:  # noqa: BLE001 - one bad window must not stop months of monitoring
            self.counters.errors += 1
            self.last_error = f"window {win.index}: {type(exc).__name__}: {exc}"
            self.log.error("window failed", index=win.index, error=self.last_error)
            return
        self.counters.scored += 1
        self.last_score = ws.score
        self.candidates.push(ws.score, win.start_time, win.end_time, (mono, ws))
        event = self.decider.update(ws.score, win.start_time, win.end_time)
        self.log.debug("window", index=win.index, start=iso_utc(win.start_time), score=round(ws.score, 6),
                       threshold=self.threshold, above=ws.score > self.threshold, state=self.decider.state,
                       xruns=win.xruns)
        if self.cfg.mqtt.publish_scores:
            self._safe(self.publisher.publish_score, {
                "device_id": self.cfg.device_id, "time": iso_utc(time.time()),
                "window_start": iso_utc(win.start_time), "window_end": iso_utc(win.end_time),
                "score": ws.score, "threshold": self.threshold, "state": self.decider.state,
                "source": self._source_kind()})
        if event is not None:
            self._alert(event, win, mono, ws)
        self.notify.status(self.status_line())

    def _sensor_fault(self, win: Window) -> tuple[bool, np.ndarray | None]:
        """Run the sensor checks: ``(skip, valid)``.

        ``skip`` is ``True`` when the window must not be scored; ``valid`` is
        the ``(frames,)`` mask of a window scored on part of its frames
        (:meth:`_valid_frames`), ``None`` for a clean one.
        """
        if self.sensor_monitor is None:
            return False, None
        status = self._check_window(win.samples, win.sample_rate, xruns=win.xruns, bits=16)
        self.last_sensor_status = status
        for ev in self.sensor_monitor.update(status, win.end_time):
            payload = ev.to_dict()
            if ev.event == "start":
                self._sensor_ids[ev.kind] = str(uuid.uuid4())
            event_id = self._sensor_ids.pop(ev.kind, None) if ev.event == "end" else self._sensor_ids[ev.kind]
            payload.update({"event_id": event_id or str(uuid.uuid4()), "device_id": self.cfg.device_id,
                            "source": self._source_kind(),
                            "time": iso_utc(time.time()), "since": iso_utc(ev.since), "at": iso_utc(ev.at)})
            log = self.log.warning if ev.event == "start" else self.log.info
            log("sensor " + ev.event, kind=ev.kind, detail=ev.detail, event_id=payload["event_id"])
            self._safe(self.publisher.publish_sensor, payload)
            self._observe("sensor", payload)
        if status.ok:
            return False, None
        self.counters.sensor_faulty += 1
        valid = self._valid_frames(status, win)
        if valid is not None:
            self.counters.scored_partial += 1
            self.log.debug("window scored on its valid frames", index=win.index,
                           faults=[f.kind for f in status.faults],
                           valid_frames=int(valid.sum()), frames=int(valid.size))
            return False, valid
        self.log.debug("window not scored: sensor fault", index=win.index,
                       faults=[f.kind for f in status.faults], rms_dbfs=status.to_dict()["rms_dbfs"])
        self.notify.status(self.status_line())
        return True, None

    def _valid_frames(self, status: Any, win: Window) -> np.ndarray | None:
        """The valid-frame mask of a window whose only faults are short dropouts, else ``None``.

        Dropouts are local (their samples are known), so the frames around
        them still carry the machine's sound; every other fault (dead input
        or channel, clipping, an xrun burst) concerns the whole window.
        """
        bad = getattr(status, "bad", None)
        limit = self.cfg.audio.max_dropout_fraction
        if bad is None or limit <= 0 or status.kinds != {"dropout"}:
            return None
        from edge_monitor.features.model_input import valid_frames  # noqa: PLC0415

        valid = valid_frames(bad, self.bundle.features, sample_rate=win.sample_rate)
        if 1.0 - float(valid.mean()) > limit:
            return None
        return valid

    def _alert(self, ev: AlertEvent, win: Window, mono: np.ndarray, ws: Any) -> None:
        evidence_path = None
        explanation = None
        if ev.event == "start":
            self.counters.alerts += 1
            # Evidence, explanation and detectors describe the strongest window that raised the alert.
            peak = self.candidates.find(ev.peak_window_start)
            if peak is not None:
                mono, ws = peak.data
            if self.evidence is not None:
                try:
                    evidence_path = str(self.evidence.save(ev.event_id, mono, self.model_rate,
                                                           ev.peak_window_start))
                except Exception as exc:  # noqa: BLE001 - a full disk must not lose the alert
                    self.counters.evidence_errors += 1
                    self.last_error = f"evidence not saved: {exc}"
                    self.log.error("evidence not saved", event_id=ev.event_id, error=str(exc))
            if self.explainer is not None:
                try:
                    # The unclipped log-mel (ws.db) or the raw samples give exact levels (the
                    # model input is clipped to the bundle's [clip_lo, clip_hi], which can
                    # flatten very loud clicks) and reliable impacts. The detector that fired
                    # decides the view: its reconstruction, or the normal band levels.
                    explanation = self.explainer(ws, samples=mono).to_dict()
                except Exception as exc:  # noqa: BLE001
                    self.log.warning("no explanation", event_id=ev.event_id, error=str(exc))
        payload = {
            "event_id": ev.event_id,
            "device_id": self.cfg.device_id,
            "machine": self.bundle.machine,
            "event": ev.event,
            "time": iso_utc(time.time()),
            "window_start": iso_utc(ev.window_start),
            "window_end": iso_utc(ev.window_end),
            "score": ev.score,
            "threshold": ev.threshold,
            "peak_score": ev.peak_score,
            "peak_window_start": iso_utc(ev.peak_window_start),
            "peak_window_end": iso_utc(ev.peak_window_end),
            "source": self._source_kind(),
            "model": model_ref(self.bundle),
            "evidence": evidence_path,
            "explanation": explanation,
            "windows": ev.windows,
        }
        if ev.event == "start" and getattr(ws, "z", None):
            payload["detectors"] = {"fired": ws.detector,
                                    "z": {k: round(v, 3) for k, v in ws.z.items()}}
        if ev.event == "end":
            payload["opened_at"] = iso_utc(ev.opened_at)
            payload["duration_s"] = round(ev.window_end - ev.opened_at, 3)
        self.log.info("alert " + ev.event, event_id=ev.event_id, score=round(ev.score, 6),
                      peak_score=round(ev.peak_score, 6), threshold=ev.threshold,
                      window_start=payload["window_start"], evidence=evidence_path,
                      explanation=(explanation or {}).get("text"))
        self._safe(self.publisher.publish_alert, payload)
        self._safe(self.publisher.set_state, "anomaly" if ev.event == "start" else "normal")
        self._note_open_alert(payload)
        self._observe("alert", payload)

    def _note_open_alert(self, payload: dict[str, Any]) -> None:
        """Keep (start) or forget (end) the open alert on disk, for the next start after a crash."""
        error = self.open_alerts.record(payload)
        if error is not None:
            self.last_error = error
            self.log.error("open alert not noted on disk", error=error)

    def _source_kind(self) -> str | None:
        """``"microphone"`` or ``"replay"``: the payloads say where their audio came from."""
        return self.source.kind if self.source is not None else None

    def _observe(self, event: str, payload: Any) -> None:
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

    def _safe(self, fn: Callable[..., Any], *args: Any) -> None:
        try:
            fn(*args)
        except Exception as exc:  # noqa: BLE001 - the publisher reports its own problems
            self.counters.errors += 1
            self.last_error = f"{getattr(fn, '__name__', 'publish')}: {type(exc).__name__}: {exc}"
            self.log.error("publish failed", error=self.last_error)

    # --- health ---------------------------------------------------------------------------------

    def _xruns(self) -> int:
        ring = getattr(self.source, "ring", None)
        return int(ring.xruns) if ring is not None else 0

    def _overruns(self) -> int:
        ring = getattr(self.source, "ring", None)
        return int(ring.overruns) if ring is not None else 0

    def status_line(self) -> str:
        """The one-line summary for systemd's ``STATUS=``."""
        score = f"{self.last_score:.4g}" if self.last_score is not None else "-"
        try:
            broker = "connected" if self.publisher.stats().get("connected") else "broker down"
        except Exception:  # noqa: BLE001
            broker = "broker ?"
        sensor = "" if self.sensor_monitor is None or self.sensor_monitor.ok else \
            " sensor: " + ",".join(self.sensor_monitor.active)
        return (f"{self.decider.state} last score {score} (threshold {self.threshold:.4g}), "
                f"{self.counters.scored} windows, {self.counters.alerts} alerts, {broker}{sensor}")

    def health(self) -> dict[str, Any]:
        """The ``<base>/status`` health JSON."""
        try:
            pub = self.publisher.stats()
        except Exception:  # noqa: BLE001
            pub = {}
        return {
            "device_id": self.cfg.device_id,
            "time": iso_utc(time.time()),
            "uptime_s": round(time.time() - self.started_at, 1),
            "state": self.decider.state,
            "last_score": self.last_score,
            "threshold": self.threshold,
            "windows": self.counters.windows,
            "windows_scored": self.counters.scored,
            "windows_sensor_fault": self.counters.sensor_faulty,
            "windows_scored_partial": self.counters.scored_partial,
            "alerts": self.counters.alerts,
            "mqtt": {k: v for k, v in pub.items() if k != "last_error"},  # the publisher's counters
            "xruns": self._xruns(),
            "overruns": self._overruns(),
            "last_error": self.last_error or (pub.get("storage") or {}).get("error")
            or (getattr(self.source, "last_error", None) if self.source else None),
            "storage": pub.get("storage"),  # the outbox: "disk", or "memory" while the disk cannot be written
            "evidence_errors": self.counters.evidence_errors,
            "source": self.source.stats() if self.source is not None else None,
            "sensor": self.sensor_monitor.state() if self.sensor_monitor is not None else None,
            "model": model_ref(self.bundle),
        } | ({"queue_depth": pub["outbox_depth"]} if "outbox_depth" in pub else {})

    def _maybe_publish_status(self) -> None:
        now = time.monotonic()
        if now >= self._next_status:
            self._next_status = now + self.cfg.mqtt.status_interval_s
            self._publish_status()

    def _publish_status(self) -> None:
        self._safe(self.publisher.publish_status, self.health())


def _fit(x: np.ndarray, n: int) -> np.ndarray:
    """Crop or zero-pad ``x`` to ``n`` samples (resampling may be off by one)."""
    if x.shape[0] == n:
        return x
    if x.shape[0] > n:
        return x[:n]
    return np.pad(x, (0, n - x.shape[0]))
