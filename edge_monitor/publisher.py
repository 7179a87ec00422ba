"""MQTT publisher: alerts that are never lost, state, scores, health, HA discovery.

One background thread owns the connection; the public methods only write to
the durable outbox (:mod:`edge_monitor.spool`) or to latest-value slots and
wake that thread, so they never block on the network and are safe to call
from any thread.

Topics under ``<base>`` (default ``edge-monitor/<device_id>``):

==================  =====  ======  =============================================
topic               QoS    retain  what
==================  =====  ======  =============================================
``availability``    1      yes     ``online`` / ``offline`` (``offline`` = Last Will)
``state``           1      yes     ``normal`` / ``anomaly``
``alert``           1*     no      alert JSON, durable (outbox first)
``sensor``          1*     no      microphone fault JSON, durable (outbox first)
``microphone``      1      yes     ``ok`` / ``problem`` (derived from sensor events)
``score``           0      no      per-window score JSON (``publish_scores``)
``status``          1      yes     health JSON, ``queue_depth`` added
==================  =====  ======  =============================================

(*) ``mqtt.qos``, 1 by default.

Delivery: each alert/sensor message is committed to SQLite before it is
handed to paho and deleted when the broker's PUBACK arrives. Every new
connection drains the outbox from its oldest message, in order, so a message
whose PUBACK was lost is sent again (at-least-once: subscribers de-duplicate
on ``(event_id, event)``). Connections are attempted with exponential
back-off and jitter (``reconnect_min_s`` .. ``reconnect_max_s``); a missing
CONNACK (half-open TCP, a stopped broker) times out after
``connect_timeout_s`` and a silent connection is detected by the MQTT
keepalive. Each distinct connection error is logged once, as one line.
"""

from __future__ import annotations

import json
import random
import socket
import ssl
import threading
import time
import uuid
from collections import deque
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import structlog
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from edge_monitor.discovery import Topics, discovery_messages, node_id
from edge_monitor.mqtt_config import MqttConfig, load_password
from edge_monitor.spool import Outbox

log = structlog.get_logger("edge_monitor.publisher")

STATES = ("normal", "anomaly")
MICROPHONE_STATES = ("ok", "problem")
MAX_INFLIGHT = 20  # outbox messages awaiting PUBACK at once (paho's default window)
STABLE_SESSION_S = 10.0  # a connection that lasted this long resets the reconnect back-off
#: Unsent scores kept in memory. Scores are best effort and never touch the disk (an outage
#: of days must not wear the SD card, one synced write per window); after a reconnect Home
#: Assistant gets only these latest few, not a flood of stale values.
SCORE_BACKLOG = 5


def utc_now_iso() -> str:
    """Current time as ISO 8601 UTC with milliseconds, e.g. ``2026-11-25T12:00:00.123Z``."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def backoff_delay(attempt: int, min_s: float, max_s: float, rng: random.Random | None = None) -> float:
    """Seconds to wait before connection attempt ``attempt + 1``.

    Exponential (``min_s * 2**attempt``, capped at ``max_s``) with "equal
    jitter": uniformly in [cap/2, cap], so a fleet restarted together does
    not hammer the broker in step.
    """
    rng = rng or random
    cap = min(max_s, min_s * (2 ** min(attempt, 30)))
    return cap / 2 + rng.uniform(0, cap / 2)


def describe_error(err: BaseException, host: str, port: int) -> str:
    """One readable phrase for a failed connect (never contains credentials)."""
    if isinstance(err, socket.gaierror):
        return f"cannot resolve broker host {host!r}: {err.strerror or err}"
    if isinstance(err, ConnectionRefusedError):
        return f"connection refused by {host}:{port} (is the broker running and listening there?)"
    if isinstance(err, ssl.SSLCertVerificationError):
        return f"TLS certificate of {host}:{port} not trusted: {err.verify_message or err.reason} (check mqtt.tls.ca_file)"
    if isinstance(err, ssl.SSLError):
        return f"TLS handshake with {host}:{port} failed: {err.reason or err}"
    if isinstance(err, (TimeoutError, socket.timeout)):
        return f"timed out connecting to {host}:{port}"
    if isinstance(err, OSError):
        return f"cannot connect to {host}:{port}: {err.strerror or err}"
    return f"cannot connect to {host}:{port}: {err}"


def _connack_hint(reason: str) -> str:
    low = reason.lower()
    if "authori" in low or "user name" in low or "password" in low:
        return f"broker refused the login: {reason} (check mqtt.username and mqtt.password_file / $EDGE_MONITOR_MQTT_PASSWORD)"
    if "identifier" in low:
        return f"broker refused the client id: {reason} (check mqtt.client_id)"
    return f"broker refused the connection: {reason}"


class Publisher:
    """Publishes one device's alerts, state, scores and health to an MQTT broker.

    ``outbox_path`` is the SQLite outbox file (created if missing; messages left
    there by a previous run are sent first). ``model_info`` is
    ``{"name": ..., "sha256": ..., "machine": ...}``, used in discovery.
    """

    def __init__(self, cfg: MqttConfig, device_id: str, outbox_path: str | Path, model_info: dict | None = None) -> None:
        self.cfg = cfg
        self.device_id = device_id
        self.model_info = dict(model_info or {})
        self.topics = Topics(cfg.topic_base(device_id))
        self.client_id = cfg.client_id or f"edge-monitor-{node_id(device_id)}"
        self._password = load_password(cfg)  # MqttConfigError early, not in the thread
        self._outbox = Outbox(outbox_path, cfg.outbox_max_messages)
        self._rng = random.Random()

        self._stop = threading.Event()
        self._stop_deadline = 0.0
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # latest-value slots and counters
        self._ack_lock = threading.RLock()  # mid bookkeeping (RLock: on_publish may run inside publish())

        self._state: str | None = None
        self._microphone: str | None = None
        self._active_faults: set[str] = set()  # sensor fault kinds between their start and end
        self._status: bytes | None = None
        self._dirty: set[str] = set()
        self._scores: deque[bytes] = deque(maxlen=SCORE_BACKLOG)
        self._rediscover = False

        # per-connection bookkeeping, reset by _session()
        self._connack: bool | str | None = None
        self._pending: dict[int, int | None] = {}  # mid -> outbox id (None: not an outbox message)
        self._early: set[int] = set()  # mids acknowledged before publish() returned them
        self._acked_ids: list[int] = []  # outbox ids PUBACKed, not yet deleted
        self._last_sent_id = 0
        self._connected = False

        self._last_error: str | None = None
        self._logged_error: str | None = None
        self._counts = {
            "connects": 0, "connect_failures": 0, "alerts_queued": 0, "sensor_queued": 0,
            "outbox_acked": 0, "outbox_sent": 0, "scores_sent": 0, "discovery_sent": 0,
        }

    # ------------------------------------------------------------------ public API
    def start(self) -> None:
        """Start connecting in the background (returns at once)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="mqtt-publisher", daemon=True)
        self._thread.start()

    def publish_alert(self, payload: dict[str, Any]) -> str:
        """Queue an alert durably (committed before this returns); returns its ``event_id``."""
        msg = self._complete(payload)
        self._outbox.put("alert", self.topics.alert, self._encode(msg), qos=self.cfg.qos, retain=False)
        self._count("alerts_queued")
        return msg["event_id"]

    def publish_sensor(self, payload: dict[str, Any]) -> str:
        """Queue a microphone/sensor event durably; returns its ``event_id``.

        ``event: start|end`` with a ``kind`` also drives ``<base>/microphone``:
        ``problem`` while any kind is between its start and end, else ``ok``.
        """
        msg = self._complete(payload)
        self._outbox.put("sensor", self.topics.sensor, self._encode(msg), qos=self.cfg.qos, retain=False)
        self._count("sensor_queued")
        event = msg.get("event")
        if event in ("start", "end"):
            # Fault kinds start and end independently: the microphone is fine only when none is active.
            key = str(msg.get("kind") or msg["event_id"])
            with self._lock:
                (self._active_faults.add if event == "start" else self._active_faults.discard)(key)
                problem = bool(self._active_faults)
            self.set_microphone("problem" if problem else "ok")
        return msg["event_id"]

    def set_state(self, state: str) -> None:
        """Set the retained ``<base>/state`` (``normal`` or ``anomaly``)."""
        if state not in STATES:
            raise ValueError(f"state must be one of {STATES}, got {state!r}")
        self._set_slot("state", state)

    def set_microphone(self, state: str) -> None:
        """Set the retained ``<base>/microphone`` (``ok`` or ``problem``)."""
        if state not in MICROPHONE_STATES:
            raise ValueError(f"microphone state must be one of {MICROPHONE_STATES}, got {state!r}")
        self._set_slot("microphone", state)

    def publish_score(self, payload: dict[str, Any]) -> None:
        """One window's score (QoS 0, best effort, memory only: the latest ``SCORE_BACKLOG`` wait for a connection)."""
        if not self.cfg.publish_scores:
            return
        self._scores.append(self._encode(payload))  # deque.append is atomic; the oldest falls out

    def publish_status(self, payload: dict[str, Any]) -> None:
        """Health JSON on ``<base>/status`` (retained; latest value wins while offline).

        Adds ``queue_depth`` (outbox messages not yet acknowledged) and ``mqtt``
        counters unless the caller set them. The daemon calls this every
        ``mqtt.status_interval_s`` seconds.
        """
        msg = dict(payload)
        msg.setdefault("device_id", self.device_id)
        msg.setdefault("time", utc_now_iso())
        msg.setdefault("queue_depth", self._outbox.count())
        msg.setdefault("mqtt", {k: v for k, v in self.stats().items() if k != "last_error"})
        data = self._encode(msg)
        with self._lock:
            self._status = data
            self._dirty.add("status")

    def stats(self) -> dict[str, Any]:
        """Counters for health reports and tests."""
        with self._lock:
            out: dict[str, Any] = dict(self._counts)
            out["connected"] = self._connected
            out["last_error"] = self._last_error
        out["outbox_depth"] = self._outbox.count()
        out["outbox_dropped_scores"] = self._outbox.dropped["score"]
        out["outbox_dropped_alerts"] = self._outbox.dropped["durable"]
        return out

    def stop(self, timeout: float = 5.0) -> None:
        """Flush what can be flushed within ``timeout`` s, publish ``offline``, disconnect.

        Messages not acknowledged by then stay in the outbox for the next start.
        """
        self._stop_deadline = time.monotonic() + timeout
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout + 2.0)
            self._thread = None
        self._outbox.close()

    # ------------------------------------------------------------------ helpers
    def _complete(self, payload: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(payload, dict):
            raise TypeError(f"payload must be a dict, got {type(payload).__name__}")
        msg = dict(payload)
        msg.setdefault("event_id", str(uuid.uuid4()))
        msg.setdefault("device_id", self.device_id)
        msg.setdefault("time", utc_now_iso())
        return msg

    @staticmethod
    def _encode(payload: dict[str, Any]) -> bytes:
        return json.dumps(payload, separators=(",", ":"), default=str).encode("utf-8")

    def _set_slot(self, name: str, value: str) -> None:
        with self._lock:
            if getattr(self, f"_{name}") == value:
                return
            setattr(self, f"_{name}", value)
            self._dirty.add(name)

    def _count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self._counts[key] += n

    # ------------------------------------------------------------------ connection thread
    def _run(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                had_session = self._session()
            except Exception as err:  # never let the thread die: log and retry
                log.exception("mqtt publisher error", error=str(err))
                had_session = False
            if self._stop.is_set():
                break
            # Back-off restarts only after a connection that held for a while; one the broker
            # drops at once (e.g. two devices sharing a client_id) keeps backing off.
            if had_session and time.monotonic() - began >= STABLE_SESSION_S:
                attempt = 0
            delay = backoff_delay(attempt, self.cfg.reconnect_min_s, self.cfg.reconnect_max_s, self._rng)
            attempt += 1
            log.debug("mqtt reconnect scheduled", retry_in_s=round(delay, 2), attempt=attempt)
            self._stop.wait(delay)

    def _make_client(self) -> mqtt.Client:
        v5 = self.cfg.protocol == "5"
        kwargs: dict[str, Any] = {
            "callback_api_version": CallbackAPIVersion.VERSION2,
            "client_id": self.client_id,
            "protocol": mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        }
        if not v5:
            kwargs["clean_session"] = True
        client = mqtt.Client(**kwargs)
        client.will_set(self.topics.availability, "offline", qos=1, retain=True)
        if self.cfg.username:
            client.username_pw_set(self.cfg.username, self._password)
        tls = self.cfg.tls
        if tls is not None:
            client.tls_set(
                ca_certs=str(tls.ca_file) if tls.ca_file else None,
                certfile=str(tls.cert_file) if tls.cert_file else None,
                keyfile=str(tls.key_file) if tls.key_file else None,
                cert_reqs=ssl.CERT_REQUIRED,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
            if tls.insecure:
                client.tls_insecure_set(True)
        client.max_inflight_messages_set(MAX_INFLIGHT)
        client.connect_timeout = self.cfg.connect_timeout_s
        client.on_connect = self._on_connect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    def _fail(self, message: str) -> None:
        with self._lock:
            self._counts["connect_failures"] += 1
            self._last_error = message
            first = message != self._logged_error
            self._logged_error = message
        if first:  # one line per distinct problem, not one per retry
            log.error("mqtt connection failed; retrying with back-off", broker=f"{self.cfg.host}:{self.cfg.port}",
                      error=message)
        else:
            log.debug("mqtt connection still failing", error=message)

    def _session(self) -> bool:
        """One connection: connect, serve until it drops or stop() is called.

        Returns True when the broker accepted the connection (back-off resets).
        """
        client = self._make_client()
        with self._ack_lock:
            self._pending.clear()
            self._early.clear()
        self._last_sent_id = 0
        self._connack = None
        try:
            if self.cfg.protocol == "5":
                client.connect(self.cfg.host, self.cfg.port, self.cfg.keepalive, clean_start=True)
            else:
                client.connect(self.cfg.host, self.cfg.port, self.cfg.keepalive)
        except (OSError, ValueError) as err:
            self._fail(describe_error(err, self.cfg.host, self.cfg.port))
            return False

        deadline = time.monotonic() + self.cfg.connect_timeout_s
        try:
            while self._connack is None:
                rc = client.loop(timeout=0.1)
                if self._connack is not None:
                    break
                if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    self._fail(f"connection to {self.cfg.host}:{self.cfg.port} closed before CONNACK ({mqtt.error_string(rc)})")
                    return False
                if time.monotonic() > deadline or self._stop.is_set():
                    if not self._stop.is_set():
                        self._fail(f"no CONNACK from {self.cfg.host}:{self.cfg.port} within "
                                   f"{self.cfg.connect_timeout_s:g} s (broker stalled or half-open connection)")
                    return False
            if self._connack is not True:
                self._fail(_connack_hint(str(self._connack)))
                return False

            with self._lock:
                self._connected = True
                self._counts["connects"] += 1
                recovered = self._logged_error
                self._logged_error = None
            log.info("mqtt connected", broker=f"{self.cfg.host}:{self.cfg.port}", client_id=self.client_id,
                     protocol=self.cfg.protocol, outbox_depth=self._outbox.count(),
                     **({"recovered_from": recovered} if recovered else {}))
            self._on_fresh_connection(client)
            while not self._stop.is_set():
                self._service(client)
                rc = client.loop(timeout=0.1)
                if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    with self._lock:
                        self._last_error = f"connection lost ({mqtt.error_string(rc)})"
                    log.warning("mqtt connection lost; reconnecting", error=mqtt.error_string(rc),
                                outbox_depth=self._outbox.count())
                    return True
            self._shutdown(client)
            return True
        finally:
            self._flush_acks()
            with self._lock:
                self._connected = False
            sock = client.socket()
            if sock is not None:  # a refused or stalled connection: close it now, not at GC
                try:
                    sock.close()
                except OSError:
                    pass

    # ------------------------------------------------------------------ callbacks (connection thread)
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:  # noqa: ANN001
        self._connack = True if not reason_code.is_failure else str(reason_code)

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:  # noqa: ANN001
        with self._ack_lock:
            if mid not in self._pending:
                self._early.add(mid)
                return
            oid = self._pending.pop(mid)
        if oid is not None:
            self._acked(oid, reason_code)

    def _on_message(self, client, userdata, message) -> None:  # noqa: ANN001
        if message.topic == f"{self.cfg.discovery_prefix}/status" and message.payload.strip() == b"online":
            self._rediscover = True

    def _acked(self, oid: int, reason_code: Any) -> None:
        if getattr(reason_code, "is_failure", False):
            # The broker refused this message (MQTT 5 PUBACK >= 0x80, e.g. an ACL): keep it, it
            # is retried on the next connection; say so once per message.
            log.error("mqtt broker rejected an outbox message; kept for retry", outbox_id=oid,
                      reason=str(reason_code))
            return
        with self._ack_lock:
            self._acked_ids.append(oid)  # deleted in one transaction per loop turn (_flush_acks)

    def _flush_acks(self) -> None:
        with self._ack_lock:
            ids, self._acked_ids = self._acked_ids, []
        if ids:
            self._outbox.delete(*ids)
            self._count("outbox_acked", len(ids))

    # ------------------------------------------------------------------ sending
    def _send(self, client: mqtt.Client, topic: str, payload: bytes | str, qos: int, retain: bool,
              oid: int | None = None) -> bool:
        with self._ack_lock:
            info = client.publish(topic, payload, qos=qos, retain=retain)
            if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                return False  # not connected any more; this client is discarded, the outbox keeps it
            if info.mid in self._early:
                self._early.discard(info.mid)
                acked_now = True
            else:
                self._pending[info.mid] = oid
                acked_now = False
        if acked_now and oid is not None:
            self._acked(oid, None)
        return True

    def _publish_discovery(self, client: mqtt.Client) -> None:
        if not self.cfg.discovery:
            return
        for topic, payload in discovery_messages(self.cfg.discovery_prefix, self.device_id, self.topics,
                                                 self.model_info):
            if topic.startswith(f"{self.cfg.discovery_prefix}/sensor/") and not self.cfg.publish_scores:
                self._send(client, topic, b"", 1, True)  # empty retained config removes the entity
                continue
            self._send(client, topic, json.dumps(payload, separators=(",", ":")), 1, True)
        self._count("discovery_sent")

    def _on_fresh_connection(self, client: mqtt.Client) -> None:
        if self.cfg.discovery:
            client.subscribe(f"{self.cfg.discovery_prefix}/status", qos=1)
        self._publish_discovery(client)
        self._send(client, self.topics.availability, "online", 1, True)
        with self._lock:
            self._dirty.update({"state", "microphone", "status"})

    def _service(self, client: mqtt.Client) -> None:
        self._flush_acks()
        if self._rediscover:
            self._rediscover = False
            log.info("home assistant came online: re-sending discovery")
            self._publish_discovery(client)
            self._send(client, self.topics.availability, "online", 1, True)
            with self._lock:
                self._dirty.update({"state", "microphone"})

        with self._lock:
            dirty, self._dirty = self._dirty, set()
            slots = {"state": self._state, "microphone": self._microphone, "status": self._status}
        for name in ("state", "microphone", "status"):
            if name in dirty and slots[name] is not None:
                self._send(client, getattr(self.topics, name), slots[name], 1, True)

        while self._scores:
            self._send(client, self.topics.score, self._scores.popleft(), 0, False)
            self._count("scores_sent")

        with self._ack_lock:
            room = MAX_INFLIGHT - sum(1 for v in self._pending.values() if v is not None)
        if room <= 0:
            return
        for msg in self._outbox.after(self._last_sent_id, room):
            if not self._send(client, msg.topic, msg.payload, msg.qos, msg.retain, oid=msg.id):
                return  # connection went away; the loop notices and reconnects
            self._last_sent_id = msg.id
            self._count("outbox_sent")

    def _shutdown(self, client: mqtt.Client) -> None:
        """Flush the outbox until the stop deadline, then say ``offline`` and disconnect."""
        while time.monotonic() < self._stop_deadline - 0.5:
            self._service(client)
            with self._ack_lock:
                waiting = any(v is not None for v in self._pending.values())
            if not waiting and self._outbox.count() == 0:
                break
            if client.loop(timeout=0.1) != MQTTErrorCode.MQTT_ERR_SUCCESS:
                return
        info = client.publish(self.topics.availability, "offline", qos=1, retain=True)
        end = max(time.monotonic() + 0.2, min(self._stop_deadline, time.monotonic() + 2.0))
        while not info.is_published() and time.monotonic() < end:
            if client.loop(timeout=0.1) != MQTTErrorCode.MQTT_ERR_SUCCESS:
                return
        client.disconnect()
        client.loop(timeout=0.1)
        self._flush_acks()
        log.info("mqtt disconnected", outbox_depth=self._outbox.count())
