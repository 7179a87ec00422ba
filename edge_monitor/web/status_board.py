"""What the operator's view shows, gathered on the scoring loop and published as an immutable snapshot.

:class:`StatusBoard` is a daemon observer (``Daemon.observers``): the scoring
loop calls :meth:`StatusBoard.observe` after each window, on each alert and
sensor event and on each turn of the loop. It keeps its own counters and
bounded histories (plain Python objects only the loop thread touches) and, at
the end of each call that changed something, builds a new frozen
:class:`Snapshot` and swaps it into :attr:`StatusBoard.snapshot` (one
reference assignment, atomic under the GIL). The HTTP threads only ever read
that reference: no lock is shared between them and the loop, so a slow or
stuck client can never make the loop wait.

Cost on the loop per window: a few counter updates, one ``bisect`` for the
histogram and a tuple copy of the score history (<= 3600 entries at a 1 s
hop); ``Daemon.health()`` (which asks the publisher for its outbox depth, a
SQLite count) is refreshed at most once per :data:`HEALTH_REFRESH_S` and on
every alert and sensor event.
"""

from __future__ import annotations

import bisect
import collections
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

import numpy as np

from edge_monitor.audio.ring_buffer import Window
from edge_monitor.web.view import DaemonView

__all__ = ["HEALTH_REFRESH_S", "SCORE_BUCKET_FACTORS", "AlertRow", "Snapshot", "StatusBoard", "round_bucket_bounds"]

HEALTH_REFRESH_S = 1.0  # how stale the health part of a snapshot may get (s)
MAX_ALERTS = 20  # recent alerts kept for the page
MAX_SENSOR_EVENTS = 20  # recent sensor events kept for the page
COARSE_SECONDS = 60.0  # one coarse history entry per minute of window time ...
COARSE_ENTRIES = 1440  # ... for 24 h: the chart's long span without a per-window history of a day
#: Histogram bucket upper bounds as multiples of the threshold: the interesting
#: region is around the threshold, whatever the model's absolute score scale.
SCORE_BUCKET_FACTORS = (0.25, 0.5, 0.75, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0, 4.0, 8.0)


def round_bucket_bounds(threshold: float) -> tuple[float, ...]:
    """Absolute score bucket bounds: :data:`SCORE_BUCKET_FACTORS` x ``threshold``, to 2 significant digits.

    Round numbers read well in ``le=`` labels and in Grafana (``le="3.4"``, not
    ``le="3.431872..."``); equal bounds after rounding collapse into one.
    """
    return tuple(sorted({float(f"{f * threshold:.2g}") for f in SCORE_BUCKET_FACTORS}))


class AlertRow(TypedDict):
    """One recent alert as the page shows it; the values are the alert payloads' (``object``: JSON as sent)."""

    event_id: object
    window_start: object
    window_end: object
    score: object
    peak_score: object
    peak_window_start: object
    threshold: object
    evidence: str | None  # the evidence WAV's file name
    explanation: object  # the explanation's sentence
    open: bool
    ended: object  # the end event's window_end
    duration_s: object


@dataclass(frozen=True)
class Snapshot:
    """Everything the HTTP side serves, frozen at one moment of the scoring loop.

    Times are Unix seconds (window times follow the audio clock: stream time
    under ``simulate``). Scores are window scores: the bundle's fused detector score
    (a reconstruction MSE for an autoencoder-only bundle), on the threshold's scale.

    Attributes:
        health: ``Daemon.health()`` (the MQTT ``<base>/status`` JSON), at most
            :data:`HEALTH_REFRESH_S` old, its counters overwritten with the
            current ones.
        info: device id, model name/sha256/machine and version.
        threshold: the alert threshold; ``clear_level``: where an alert closes.
        state: ``"normal"`` or ``"anomaly"``.
        counters: cumulative counts (windows, scored, ..., see :meth:`StatusBoard.observe`).
        skipped_by_kind: windows not scored, by their first sensor fault kind.
        sensor_events: ``(kind, event) -> count`` of sensor events.
        sensor_active: fault kinds active now.
        bucket_bounds / bucket_counts / score_sum: the score histogram
            (per-bucket counts, not cumulative; the last bucket is +Inf);
            bounds are round numbers (:func:`round_bucket_bounds`).
        ratio_counts: the same scores' histogram over score / threshold, bounds
            :data:`SCORE_BUCKET_FACTORS` (+Inf last).
        history: ``(window_end, score or None, state)`` over the last
            ``http.history_seconds`` of window time (``None``: not scored).
        coarse: ``(minute end, max score, min score, state)`` per
            :data:`COARSE_SECONDS` of window time over the last 24 h (scores
            ``None`` when no window of that minute was scored; state
            ``"anomaly"`` when any of its windows was in an alert).
        alerts: recent alerts, newest first (dicts the page shows).
        sensor_log: recent sensor events, newest first.
        last_raw: the latest window's raw samples (read-only by convention;
            the ring hands out a fresh array per window) and its rate and index,
            for the microphone numbers computed on request.
        input_rms_dbfs: RMS level of the latest window (dBFS), from the sensor check.
        mqtt_connected / outbox_depth: the publisher's, as of ``health``.
        storage: the outbox's storage report (``mode`` "disk" or "memory",
            ``error``, ``memory_messages``, ...; :mod:`edge_monitor.publish.storage`),
            ``None`` without MQTT.
        last_window_time: end of the latest window (s), ``None`` before the first.
    """

    health: dict[str, object]
    info: dict[str, str]
    threshold: float
    clear_level: float
    state: str
    last_score: float | None
    counters: dict[str, int]
    skipped_by_kind: dict[str, int]
    sensor_events: dict[tuple[str, str], int]
    sensor_active: tuple[str, ...]
    bucket_bounds: tuple[float, ...]
    bucket_counts: tuple[int, ...]
    score_sum: float
    history: tuple[tuple[float, float | None, str], ...]
    alerts: tuple[AlertRow, ...]
    sensor_log: tuple[dict[str, object], ...]
    last_raw: np.ndarray | None = None
    last_raw_rate: int = 0
    last_raw_index: int = -1
    input_rms_dbfs: float | None = None
    mqtt_connected: bool = False
    outbox_depth: int | None = None
    storage: dict[str, object] | None = None
    last_window_time: float | None = None
    evidence_dir: Path | None = None
    ratio_counts: tuple[int, ...] = ()
    coarse: tuple[tuple[float, float | None, float | None, str], ...] = ()
    made_at: float = field(default_factory=time.time)


class StatusBoard:
    """A daemon observer that keeps :attr:`snapshot` current. Loop thread only (see the module doc)."""

    def __init__(self, daemon: DaemonView, history_seconds: float = 3600.0) -> None:
        from edge_monitor import __version__

        self.daemon = daemon
        self.history_seconds = float(history_seconds)
        b = daemon.bundle
        self.info = {"device_id": daemon.device_id, "model_name": b.path.name,
                     "model_sha256": b.sha256, "machine": b.machine or "", "version": str(__version__)}
        self.bounds = round_bucket_bounds(daemon.threshold)
        self.counts = [0] * (len(self.bounds) + 1)
        self.ratio_counts = [0] * (len(SCORE_BUCKET_FACTORS) + 1)
        self.score_sum = 0.0
        self.skipped: collections.Counter[str] = collections.Counter()
        self.sensor_counts: collections.Counter[tuple[str, str]] = collections.Counter()
        self.alerts_started = 0
        self.alerts_ended = 0
        self.history: collections.deque[tuple[float, float | None, str]] = collections.deque()
        self.coarse: collections.deque[tuple[float, float | None, float | None, str]] = \
            collections.deque(maxlen=COARSE_ENTRIES)
        self.alerts: collections.deque[AlertRow] = collections.deque(maxlen=MAX_ALERTS)
        self.sensor_log: collections.deque[dict[str, object]] = collections.deque(maxlen=MAX_SENSOR_EVENTS)
        self._alerts_t: tuple[AlertRow, ...] = ()
        self._sensor_t: tuple[dict[str, object], ...] = ()
        self._health: dict[str, object] = {}
        self._pub: dict[str, object] = {}
        self._health_at = float("-inf")
        self._seen = (0, 0, 0)  # (scored, sensor_faulty, errors) after the previous window
        self._last_raw: tuple[np.ndarray | None, int, int] = (None, 0, -1)
        self._rms: float | None = None
        self._last_t: float | None = None
        self.snapshot: Snapshot = self._make()

    # --- called by the scoring loop ---------------------------------------------------------

    def observe(self, daemon: DaemonView, event: str, payload: Window | Mapping[str, object] | None) -> None:
        """``event``: ``"start"``, ``"window"`` (payload: the Window just processed), ``"alert"``
        and ``"sensor"`` (payload: the published dict), ``"tick"`` (each loop turn), ``"stop"``."""
        if event == "window" and isinstance(payload, Window):
            self._window(payload)
        elif event == "alert" and isinstance(payload, dict):
            self._alert(payload)
            self._health_at = float("-inf")
        elif event == "sensor" and isinstance(payload, dict):
            self.sensor_counts[(str(payload.get("kind")), str(payload.get("event")))] += 1
            self.sensor_log.appendleft({k: payload.get(k) for k in ("event", "kind", "detail", "since", "at",
                                                                    "event_id")})
            self._sensor_t = tuple(dict(e) for e in self.sensor_log)
            self._health_at = float("-inf")
        elif event in ("start", "stop"):
            self._health_at = float("-inf")
        elif event == "tick" and time.monotonic() - self._health_at < HEALTH_REFRESH_S:
            return  # nothing new
        self.snapshot = self._make()

    def _window(self, win: Window) -> None:
        d = self.daemon
        c = d.counters
        scored, faulty, errors = self._seen
        self._seen = (c.scored, c.sensor_faulty, c.errors)
        status = d.last_sensor_status
        self._rms = None
        if status is not None:
            r = float(status.rms_dbfs)
            self._rms = round(r, 2) if r > -1e9 else None
        self._last_raw = (win.samples, int(win.sample_rate), int(win.index))
        self._last_t = float(win.end_time)
        score: float | None = None
        if c.scored > scored and d.last_score is not None:
            score = float(d.last_score)
            self.counts[bisect.bisect_left(self.bounds, score)] += 1
            self.ratio_counts[bisect.bisect_left(SCORE_BUCKET_FACTORS, score / d.threshold)] += 1
            self.score_sum += score
        elif c.sensor_faulty > faulty and c.errors == errors and status is not None and status.faults:
            self.skipped[status.faults[0].kind] += 1
        self.history.append((float(win.end_time), score, d.state))
        horizon = float(win.end_time) - self.history_seconds
        while self.history and self.history[0][0] < horizon:
            self.history.popleft()
        self._add_coarse(float(win.end_time), score, d.state)
        self._follow_peak(d.peak_score)

    def _add_coarse(self, t: float, score: float | None, state: str) -> None:
        """Fold one window into its minute: max and min score, ``"anomaly"`` if any window was."""
        end = (t // COARSE_SECONDS + 1) * COARSE_SECONDS
        if self.coarse and self.coarse[-1][0] == end:
            _, hi, lo, st = self.coarse[-1]
            if score is not None:
                hi, lo = (score, score) if hi is None or lo is None else (max(hi, score), min(lo, score))
            self.coarse[-1] = (end, hi, lo, "anomaly" if "anomaly" in (st, state) else state)
        else:
            self.coarse.append((end, score, score, state))

    def _follow_peak(self, peak: float | None) -> None:
        """A window that beats the open alert's peak updates it on the page at once (not only at its end)."""
        if peak is None or not self.alerts or not self.alerts[0]["open"] or self.alerts[0]["peak_score"] == peak:
            return
        self.alerts[0]["peak_score"] = peak
        self._alerts_t = tuple(a.copy() for a in self.alerts)

    def _alert(self, p: Mapping[str, object]) -> None:
        if p.get("event") == "start":
            self.alerts_started += 1
            ev = p.get("evidence")
            explanation = p.get("explanation")
            self.alerts.appendleft({
                "event_id": p.get("event_id"), "window_start": p.get("window_start"),
                "window_end": p.get("window_end"), "score": p.get("score"), "peak_score": p.get("peak_score"),
                "peak_window_start": p.get("peak_window_start"),
                "threshold": p.get("threshold"), "evidence": Path(str(ev)).name if ev else None,
                "explanation": explanation.get("text") if isinstance(explanation, dict) else None,
                "open": True, "ended": None, "duration_s": None})
        elif p.get("event") == "end":
            self.alerts_ended += 1
            for a in self.alerts:
                if a["event_id"] == p.get("event_id"):
                    a["open"], a["ended"], a["duration_s"] = False, p.get("window_end"), p.get("duration_s")
                    a["peak_score"], a["peak_window_start"] = p.get("peak_score"), p.get("peak_window_start")
                    ev, explanation = p.get("evidence"), p.get("explanation")
                    if ev:  # the end's recording is of a stronger window than the start's
                        a["evidence"] = Path(str(ev)).name
                        a["explanation"] = explanation.get("text") if isinstance(explanation, dict) else None
        self._alerts_t = tuple(a.copy() for a in self.alerts)

    # --- the snapshot ---------------------------------------------------------------------------

    def _refresh_health(self) -> None:
        d = self.daemon
        try:
            self._health = d.health()
        except Exception as exc:  # noqa: BLE001 - a broken part must not stop the page
            self._health = {"device_id": d.device_id, "last_error": f"health: {exc}"}
        try:
            self._pub = dict(d.publisher_stats())
        except Exception:  # noqa: BLE001
            self._pub = {}
        self._health_at = time.monotonic()

    def _make(self) -> Snapshot:
        d = self.daemon
        if time.monotonic() - self._health_at >= HEALTH_REFRESH_S:
            self._refresh_health()
        c = d.counters
        counters = {"windows": c.windows, "scored": c.scored, "sensor_faulty": c.sensor_faulty,
                    "scored_partial": c.scored_partial, "errors": c.errors,
                    "alerts_started": self.alerts_started, "alerts_ended": self.alerts_ended,
                    "evidence_errors": c.evidence_errors,
                    "xruns": d.xruns, "overruns": d.overruns,
                    "capture_restarts": _restarts(self._health.get("source"))}
        health = dict(self._health)
        health.update({"state": d.state, "last_score": d.last_score, "windows": c.windows,
                       "windows_scored": c.scored, "windows_sensor_fault": c.sensor_faulty,
                       "windows_scored_partial": c.scored_partial, "alerts": c.alerts,
                       "xruns": counters["xruns"], "overruns": counters["overruns"]})
        raw, rate, index = self._last_raw
        depth, storage = self._pub.get("outbox_depth"), self._pub.get("storage")
        return Snapshot(
            health=health, info=self.info, threshold=float(d.threshold), clear_level=float(d.clear_level),
            state=d.state, last_score=d.last_score, counters=counters,
            skipped_by_kind=dict(self.skipped), sensor_events=dict(self.sensor_counts),
            sensor_active=d.sensor_active,
            bucket_bounds=self.bounds, bucket_counts=tuple(self.counts), score_sum=self.score_sum,
            history=tuple(self.history), alerts=self._alerts_t, sensor_log=self._sensor_t,
            last_raw=raw, last_raw_rate=rate, last_raw_index=index, input_rms_dbfs=self._rms,
            mqtt_connected=bool(self._pub.get("connected")), outbox_depth=depth if isinstance(depth, int) else None,
            storage=storage if isinstance(storage, dict) else None,
            last_window_time=self._last_t, evidence_dir=d.evidence_dir,
            ratio_counts=tuple(self.ratio_counts), coarse=tuple(self.coarse))


def _restarts(source: object) -> int:
    """Capture restarts from the health message's ``source`` report (0 without one)."""
    n = source.get("restarts") if isinstance(source, dict) else None
    return int(n) if isinstance(n, (int, float)) else 0
