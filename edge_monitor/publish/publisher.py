"""MQTT publisher: transports what the daemon decided -- alerts that are never lost, state, scores, health.

The daemon sets every message's content (``event_id``, ``device_id``,
``time``, the microphone state); this module only moves it to the broker.
One background thread owns the connection; the public methods write to the
durable outbox (:mod:`edge_monitor.publish.storage`) or to in-memory latest-value slots
and return at once, so they never block on the network and are safe to call
from any thread.

Topics under ``<base>`` (default ``edge-monitor/<device_id>``):

==================  =====  ======  =============================================
topic               QoS    retain  what
==================  =====  ======  =============================================
``availability``    1      yes     ``online`` / ``offline`` (``offline`` = Last Will)
``state``           1      yes     ``normal`` / ``anomaly``
``alert``           1*     no      alert JSON, durable (outbox first)
``sensor``          1*     no      microphone fault JSON, durable (outbox first)
``microphone``      1      yes     ``ok`` / ``problem`` (set by the daemon)
``score``           0      no      per-window score JSON; memory only, latest 5 while offline
``status``          1      yes     health JSON (the daemon's)
==================  =====  ======  =============================================

(*) ``mqtt.qos``, 1 by default.

The jobs live in their own modules: :mod:`edge_monitor.publish.connection`
(connect, CONNACK timeout, back-off, error wording), :mod:`edge_monitor.publish.delivery`
(outbox drain with PUBACK tracking), :mod:`edge_monitor.publish.retained` (retained
values, discovery, the score backlog) and :mod:`edge_monitor.publish.transport`
(the seam to paho; tests inject their own transport).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import structlog

from edge_monitor.config.mqtt import MqttConfig, load_password
from edge_monitor.publish.connection import (
    LOOP_TURN_S,
    Connector,
    FailureLog,
    run_with_backoff,
)
from edge_monitor.publish.delivery import MAX_INFLIGHT, Delivery
from edge_monitor.publish.discovery import Topics, node_id
from edge_monitor.publish.retained import (
    MICROPHONE_STATES,
    SCORE_BACKLOG,
    STATES,
    RetainedValues,
    ScoreBacklog,
    announcements,
)
from edge_monitor.publish.storage import MessageStore
from edge_monitor.publish.transport import (
    ClientOptions,
    Transport,
    TransportFactory,
    paho_factory,
)
from edge_monitor.util.backoff import Backoff

__all__ = ["MICROPHONE_STATES", "SCORE_BACKLOG", "STATES", "Publisher"]

log = structlog.get_logger("edge_monitor.publish.publisher")


def _encode(payload: Mapping[str, object]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), default=str).encode("utf-8")


class Publisher:
    """Publishes one device's alerts, state, scores and health to an MQTT broker.

    Args:
        cfg: the ``mqtt:`` section.
        device_id: names the topics and the Home Assistant device.
        outbox_path: the SQLite outbox (created if missing; messages a previous
            run left there are sent first).
        model_info: ``{"name", "sha256", "machine"}``, shown in discovery.
        transport_factory: makes the MQTT connection (default: paho with
            ``cfg``'s broker, TLS, credentials and Last Will).
        now: monotonic clock in seconds (tests).
    """

    def __init__(self, cfg: MqttConfig, device_id: str, outbox_path: str | Path, model_info: dict | None = None, *,
                 transport_factory: TransportFactory | None = None, now: Callable[[], float] = time.monotonic) -> None:
        self.cfg = cfg
        self.device_id = device_id
        self.model_info = dict(model_info or {})
        self.topics = Topics(cfg.topic_base(device_id))
        self.client_id = cfg.client_id or f"edge-monitor-{node_id(device_id)}"
        if transport_factory is None:
            transport_factory = paho_factory(ClientOptions(
                host=cfg.host, port=cfg.port, client_id=self.client_id, protocol=cfg.protocol,
                keepalive=cfg.keepalive, connect_timeout_s=cfg.connect_timeout_s, username=cfg.username,
                password=load_password(cfg),  # MqttConfigError now, not in the thread
                will_topic=self.topics.availability, tls=cfg.tls, max_inflight=MAX_INFLIGHT))
        self._now = now
        self._outbox = MessageStore(outbox_path, cfg.outbox_max_messages)  # never raises: degrades to memory
        self._delivery = Delivery(self._outbox)
        self._retained = RetainedValues(self.topics)
        self._scores = ScoreBacklog()
        self._failures = FailureLog(f"{cfg.host}:{cfg.port}")
        self._connector = Connector(transport_factory, cfg.host, cfg.port, cfg.connect_timeout_s, self._failures, now)

        self._stop = threading.Event()
        self._stop_deadline = 0.0
        self._thread: threading.Thread | None = None
        self._rediscover = False  # Home Assistant came online (set and read on the connection thread)
        self._lock = threading.Lock()  # the counters below
        self._connected = False
        self._counts = {"connects": 0, "alerts_queued": 0, "sensor_queued": 0, "scores_sent": 0, "discovery_sent": 0}

    # ------------------------------------------------------------------ public API
    def start(self) -> None:
        """Start connecting in the background (returns at once)."""
        if self._thread is not None:
            return
        backoff = Backoff(self.cfg.reconnect_min_s, self.cfg.reconnect_max_s)
        self._thread = threading.Thread(target=run_with_backoff, args=(self._session, backoff, self._stop),
                                        kwargs={"now": self._now}, name="mqtt-publisher", daemon=True)
        self._thread.start()

    def publish_alert(self, payload: Mapping[str, object]) -> str:
        """Queue an alert durably (committed before this returns); returns its ``event_id``.

        Raises ``ValueError`` without an ``event_id`` (the daemon sets it). A
        disk that cannot be written raises nothing: the alert waits in memory
        (:mod:`edge_monitor.publish.storage`) and ``stats()["storage"]`` says so.
        """
        event_id = self._event_id(payload)
        self._outbox.put("alert", self.topics.alert, _encode(payload), qos=self.cfg.qos, retain=False)
        self._count("alerts_queued")
        return event_id

    def publish_sensor(self, payload: Mapping[str, object]) -> str:
        """Queue a microphone/sensor event durably; returns its ``event_id`` (as :meth:`publish_alert`)."""
        event_id = self._event_id(payload)
        self._outbox.put("sensor", self.topics.sensor, _encode(payload), qos=self.cfg.qos, retain=False)
        self._count("sensor_queued")
        return event_id

    def set_state(self, state: str) -> None:
        """Set the retained ``<base>/state`` (``normal`` or ``anomaly``)."""
        if state not in STATES:
            raise ValueError(f"state must be one of {STATES}, got {state!r}")
        self._retained.set("state", state.encode())

    def set_microphone(self, state: str) -> None:
        """Set the retained ``<base>/microphone`` (``ok`` or ``problem``), as the daemon's sensor checks see it."""
        if state not in MICROPHONE_STATES:
            raise ValueError(f"microphone state must be one of {MICROPHONE_STATES}, got {state!r}")
        self._retained.set("microphone", state.encode())

    def publish_score(self, payload: Mapping[str, object]) -> None:
        """One window's score: QoS 0, best effort, memory only (the latest ``SCORE_BACKLOG`` wait for a connection)."""
        if self.cfg.publish_scores:
            self._scores.append(_encode(payload))

    def publish_status(self, payload: Mapping[str, object]) -> None:
        """The daemon's health JSON on ``<base>/status`` (retained; the latest value wins while offline)."""
        self._retained.set("status", _encode(payload))

    def stats(self) -> dict[str, object]:
        """Counters for health reports, metrics and tests (keys are stable)."""
        with self._lock:
            out: dict[str, object] = dict(self._counts)
            out["connected"] = self._connected
        out["connect_failures"] = self._failures.failures
        out["last_error"] = self._failures.last_error
        out["outbox_sent"] = self._delivery.sent
        out["outbox_acked"] = self._delivery.acked
        out["outbox_depth"] = self._outbox.count()
        out["outbox_dropped_alerts"] = self._outbox.dropped["durable"]
        out["scores_dropped"] = self._scores.dropped
        out["storage"] = self._outbox.report()
        return out

    def stop(self, timeout: float = 5.0) -> None:
        """Flush what can be flushed within ``timeout`` s, publish ``offline``, disconnect.

        Messages not acknowledged by then stay in the outbox for the next start.
        """
        self._stop_deadline = self._now() + timeout
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout + 2.0)
            self._thread = None
        self._outbox.close()

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _event_id(payload: Mapping[str, object]) -> str:
        if not isinstance(payload, dict):
            raise TypeError(f"payload must be a dict, got {type(payload).__name__}")
        event_id = payload.get("event_id")
        if not event_id:
            raise ValueError("payload has no event_id: the daemon sets event_id, device_id and time")
        return str(event_id)

    def _count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self._counts[key] += n

    # ------------------------------------------------------------------ the connection thread
    def _session(self) -> bool:
        """One connection: connect, serve until it drops or stop() is called. ``True`` if the broker accepted it."""
        transport = self._connector.open(self._delivery.on_puback, self._on_message, self._stop.is_set)
        if transport is None:
            return False
        self._delivery.begin(transport)
        try:
            with self._lock:
                self._connected = True
                self._counts["connects"] += 1
            recovered = self._failures.connected()
            log.info("mqtt connected", broker=f"{self.cfg.host}:{self.cfg.port}", client_id=self.client_id,
                     protocol=self.cfg.protocol, outbox_depth=self._outbox.count(),
                     **({"recovered_from": recovered} if recovered else {}))
            if self.cfg.discovery:
                transport.subscribe(f"{self.cfg.discovery_prefix}/status", 1)
            self._announce()
            self._retained.resend()  # a clean session: the broker may have lost or never had them
            while not self._stop.is_set():
                self._service()
                reason = transport.loop(LOOP_TURN_S)
                if reason is not None:
                    self._failures.lost(reason)
                    log.warning("mqtt connection lost; reconnecting", error=reason, outbox_depth=self._outbox.count())
                    return True
            self._shutdown(transport)
            return True
        finally:
            self._delivery.end()
            with self._lock:
                self._connected = False
            transport.close()

    def _on_message(self, topic: str, payload: bytes) -> None:
        if topic == f"{self.cfg.discovery_prefix}/status" and payload.strip() == b"online":
            self._rediscover = True

    def _announce(self) -> None:
        for m in announcements(self.topics, self.device_id, self.model_info, discovery=self.cfg.discovery,
                               prefix=self.cfg.discovery_prefix, publish_scores=self.cfg.publish_scores,
                               area=self.cfg.area):
            self._delivery.send(m.topic, m.payload, m.qos, m.retain)
        if self.cfg.discovery:
            self._count("discovery_sent")

    def _service(self) -> None:
        """One turn of work on a live connection: acks, Home Assistant, retained values, scores, the outbox."""
        self._delivery.flush_acks()
        if self._rediscover:
            self._rediscover = False
            log.info("home assistant came online: re-sending discovery")
            self._announce()
            self._retained.resend("state", "microphone")
        due = self._retained.take_due()
        for i, m in enumerate(due):
            if self._delivery.send(m.topic, m.payload, m.qos, m.retain) is None:
                self._retained.put_back(due[i:])  # connection gone: due again on the next one
                return
        while (score := self._scores.pop()) is not None:
            if self._delivery.send(self.topics.score, score, 0, False) is None:
                self._scores.push_front(score)
                return
            self._count("scores_sent")
        self._delivery.pump()

    def _shutdown(self, transport: Transport) -> None:
        """Flush the outbox until the stop deadline, then say ``offline`` and disconnect."""
        while self._now() < self._stop_deadline - 0.5:
            self._service()
            if self._delivery.idle():
                break
            if transport.loop(LOOP_TURN_S) is not None:
                return
        mid = self._delivery.send(self.topics.availability, b"offline", 1, True)
        end = max(self._now() + 0.2, min(self._stop_deadline, self._now() + 2.0))
        while mid is not None and not self._delivery.is_done(mid) and self._now() < end:
            if transport.loop(LOOP_TURN_S) is not None:
                return
        transport.disconnect()
        self._delivery.flush_acks()
        log.info("mqtt disconnected", outbox_depth=self._outbox.count())
