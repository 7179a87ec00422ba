"""Real-broker helpers for tests: a mosquitto per test on a free 127.0.0.1 port,
and a subscriber that records what actually arrives.

Usage::

    from tests.conftest import require_binary
    from tests.mqtt_helpers import Mosquitto, Subscriber

    def test_x(tmp_path):
        with Mosquitto(tmp_path, require_binary("mosquitto")) as broker:
            with Subscriber(broker.port, "edge-monitor/#") as sub:
                ...
                msgs = sub.wait_for(lambda ms: len(sub.on("edge-monitor/dev/alert")) >= 2)

See :class:`Subscriber` for what ``Received.retain`` means in its two modes.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.subscribeoptions import SubscribeOptions


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 10.0, host: str = "127.0.0.1") -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing accepts connections on {host}:{port} after {timeout} s")


class Mosquitto:
    """A mosquitto process with its own config file, log and port.

    ``extra`` lines are appended to the listener block (e.g. ``password_file``,
    ``cafile``/``certfile``/``keyfile``); ``anonymous`` sets ``allow_anonymous``.
    The port stays the same across :meth:`restart`.
    """

    def __init__(self, tmp: Path, binary: str = "mosquitto", *, extra: list[str] | None = None,
                 anonymous: bool = True, port: int | None = None) -> None:
        self.dir = Path(tmp) / f"mosquitto-{id(self):x}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.binary = binary
        self.port = port or free_port()
        self.conf = self.dir / "mosquitto.conf"
        self.log = self.dir / "mosquitto.log"
        lines = [
            "per_listener_settings true",
            f"listener {self.port} 127.0.0.1",
            f"allow_anonymous {'true' if anonymous else 'false'}",
            *(extra or []),
            # As root mosquitto would switch to user "mosquitto", which cannot write into pytest's tmp.
            *(["user root"] if os.geteuid() == 0 else []),
            "persistence true",
            f"persistence_location {self.dir}/",
            "autosave_interval 0",
            f"log_dest file {self.log}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
        ]
        self.conf.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 10.0) -> "Mosquitto":
        if self.proc is not None and self.proc.poll() is None:
            return self
        self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, start_new_session=True)
        try:
            wait_port(self.port, timeout)
        except TimeoutError:
            err = b""
            if self.proc.poll() is not None and self.proc.stderr is not None:
                err = self.proc.stderr.read()
            log = self.log.read_text() if self.log.exists() else ""
            self.stop()
            raise RuntimeError(f"mosquitto did not start on port {self.port}: {err.decode()} {log}") from None
        return self

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        self.proc = None

    def restart(self, pause_s: float = 0.0) -> None:
        self.stop()
        time.sleep(pause_s)
        self.start()

    def pause(self) -> None:
        """SIGSTOP the broker: connections stay open but nothing answers (a half-open peer)."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)

    def log_text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def __enter__(self) -> "Mosquitto":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    at: float

    def json(self) -> Any:
        return json.loads(self.payload)

    @property
    def text(self) -> str:
        return self.payload.decode()


class Subscriber:
    """A real MQTT subscriber on 127.0.0.1 that records every message.

    ``persistent=True`` (default): MQTT 3.1.1 with a persistent session
    (``clean_session=False``) and a fixed client id, so QoS 1 messages
    published while it reconnects after a broker restart are queued for it by
    the broker (the helper's mosquitto saves sessions on shutdown).
    ``Received.retain`` is then true only for messages replayed from the
    broker's retained store, i.e. for a late joiner.

    ``persistent=False``: MQTT 5 with ``retainAsPublished``, so ``retain`` is
    the publisher's own flag on live messages too.

    paho's loop thread reconnects on its own; subscriptions are renewed on
    every connect. Subscriptions use QoS 2, so ``qos`` is the publisher's QoS.
    """

    def __init__(self, port: int, *topics: str, host: str = "127.0.0.1", persistent: bool = True,
                 username: str | None = None, password: str | None = None, tls: dict | None = None) -> None:
        self.topics = topics or ("#",)
        self.persistent = persistent
        self.messages: list[Received] = []
        self._cond = threading.Condition()
        self.connected = threading.Event()
        self.client_id = f"test-sub-{os.getpid()}-{id(self):x}"
        if persistent:
            self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id,
                                      protocol=mqtt.MQTTv311, clean_session=False)
        else:
            self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv5)
        if username:
            self.client.username_pw_set(username, password)
        if tls:
            self.client.tls_set(**tls)
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_disconnect = lambda *a: self.connected.clear()
        self.host, self.port = host, port

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:  # noqa: ANN001
        if reason_code.is_failure:
            return
        if self.persistent:
            client.subscribe([(t, 2) for t in self.topics])
        else:
            opts = SubscribeOptions(qos=2, retainAsPublished=True)
            client.subscribe([(t, opts) for t in self.topics])
        self.connected.set()

    def _on_message(self, client, userdata, msg) -> None:  # noqa: ANN001
        with self._cond:
            self.messages.append(Received(msg.topic, bytes(msg.payload), msg.qos, bool(msg.retain), time.time()))
            self._cond.notify_all()

    def start(self, timeout: float = 10.0) -> "Subscriber":
        self.client.connect(self.host, self.port, keepalive=10)
        self.client.loop_start()
        if not self.connected.wait(timeout):
            raise TimeoutError(f"subscriber could not connect to {self.host}:{self.port}")
        time.sleep(0.2)  # let the SUBACK land before the test publishes
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def on(self, topic: str) -> list[Received]:
        with self._cond:
            return [m for m in self.messages if m.topic == topic]

    def wait_for(self, predicate: Callable[[list[Received]], bool], timeout: float = 15.0,
                 what: str = "the expected messages") -> list[Received]:
        end = time.monotonic() + timeout
        with self._cond:
            while not predicate(list(self.messages)):
                left = end - time.monotonic()
                if left <= 0:
                    summary = [(m.topic, m.payload[:80]) for m in self.messages[-20:]]
                    raise AssertionError(f"timed out after {timeout} s waiting for {what}; last messages: {summary}")
                self._cond.wait(min(left, 0.2))
            return list(self.messages)

    def wait_topic(self, topic: str, count: int = 1, timeout: float = 15.0) -> list[Received]:
        self.wait_for(lambda ms: sum(m.topic == topic for m in ms) >= count, timeout,
                      what=f"{count} message(s) on {topic}")
        return self.on(topic)

    def __enter__(self) -> "Subscriber":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def publish_once(port: int, topic: str, payload: str | bytes, retain: bool = False, qos: int = 1) -> None:
    """Publish one message from a throw-away client (e.g. ``homeassistant/status online``)."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-pub-{time.monotonic_ns()}")
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        client.publish(topic, payload, qos=qos, retain=retain).wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()
