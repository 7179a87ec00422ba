"""Local MQTT plumbing, in one place: a mosquitto launcher and a recording subscriber, used by the
demo, the tests and the benchmarks (never by the daemon).

* :class:`Mosquitto`: a ``mosquitto`` process with its own config file, port
  and log; start/stop/restart, ``pause`` (SIGSTOP: a half-open peer), extra
  listener lines (TLS, ``password_file``), persistence on or off.
* :class:`Subscriber`: a real MQTT subscriber that records every message and
  lets a caller wait for a predicate (a sentinel message) instead of sleeping.
* :func:`start_broker` (the demo's) picks, in order:

  1. ``mosquitto`` from ``$PATH``;
  2. when absent and running as root (and ``install=True``): ``apt-get install -y mosquitto``;
  3. an embedded broker from the ``amqtt`` package (``pip install amqtt``), run in
     a background thread, so the demo also works as a normal user.

* :class:`AlertPrinter` subscribes to ``<base>/alert`` and ``<base>/sensor``
  (``base`` may contain ``+``) and prints one line per message as it arrives,
  plus the alert's ``explanation.text`` when there is one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self, TextIO

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.subscribeoptions import SubscribeOptions


class BrokerUnavailable(RuntimeError):
    """No way to run a local broker: the message says what to install."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 10.0, host: str = "127.0.0.1",
              alive: Callable[[], bool] = lambda: True) -> None:
    """Return once ``host:port`` accepts TCP connections; ``TimeoutError`` after ``timeout`` s or
    as soon as ``alive()`` says the server process is gone."""
    end = time.monotonic() + timeout
    while time.monotonic() < end and alive():
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)  # polling a port: there is no event to wait on
    raise TimeoutError(f"nothing accepts connections on {host}:{port} after {timeout} s")


class Mosquitto:
    """A mosquitto process with its own config file, log and port (127.0.0.1).

    ``extra`` lines are appended to the listener block (e.g. ``password_file``,
    ``cafile``/``certfile``/``keyfile``); ``anonymous`` sets ``allow_anonymous``.
    ``persistence`` keeps sessions and retained messages across :meth:`restart`
    (the tests' persistent subscribers need it). The port stays the same
    across restarts.
    """

    def __init__(self, tmp: Path, binary: str = "mosquitto", *, extra: list[str] | None = None,
                 anonymous: bool = True, port: int | None = None, persistence: bool = True) -> None:
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
            # As root mosquitto would switch to user "mosquitto", which cannot write into our folder.
            *(["user root"] if os.geteuid() == 0 else []),
            *(["persistence true", f"persistence_location {self.dir}/", "autosave_interval 0"] if persistence
              else ["persistence false"]),
            f"log_dest file {self.log}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
        ]
        self.conf.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 10.0) -> Self:
        if self.proc is not None and self.proc.poll() is None:
            return self
        proc = self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                            stderr=subprocess.PIPE, start_new_session=True)
        try:
            wait_port(self.port, timeout, alive=lambda: proc.poll() is None)
        except TimeoutError:
            err = b""
            if proc.poll() is not None and proc.stderr is not None:
                err = proc.stderr.read()
            self.stop()
            raise RuntimeError(f"mosquitto did not start on port {self.port}: {err.decode(errors='replace')} "
                               f"{self.log_text()[-500:]}") from None
        return self

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a paused broker cannot act on SIGTERM
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        self.proc = None

    def pause(self) -> None:
        """SIGSTOP the broker: connections stay open but nothing answers (a half-open peer)."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)

    def log_text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass(frozen=True)
class Received:
    """One message as a subscriber got it; ``at`` is Unix time in seconds."""

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
    """A real MQTT subscriber that records every message; :meth:`wait_for` blocks on a predicate.

    ``persistent=True`` (default): MQTT 3.1.1 with a persistent session
    (``clean_session=False``) and a fixed client id, so QoS 1 messages
    published while it reconnects after a broker restart are queued for it by
    the broker. ``Received.retain`` is then true only for messages replayed
    from the broker's retained store, i.e. for a late joiner.

    ``persistent=False``: a clean session; with ``v5`` (the default then) MQTT 5
    with ``retainAsPublished``, so ``retain`` is the publisher's own flag on
    live messages too; ``v5=False`` for brokers without MQTT 5 (amqtt).

    paho's loop thread reconnects on its own; subscriptions (QoS ``qos``, 2 by
    default so ``Received.qos`` is the publisher's) are renewed on every
    connect, and :meth:`start` returns once the broker acknowledged them.
    ``on_message`` is called with each :class:`Received` on paho's thread.
    """

    def __init__(self, port: int, *topics: str, host: str = "127.0.0.1", persistent: bool = True,
                 v5: bool | None = None, qos: int = 2, username: str | None = None, password: str | None = None,
                 tls: dict | None = None, client_id: str | None = None,
                 on_message: Callable[[Received], None] | None = None) -> None:
        self.topics = topics or ("#",)
        self.persistent = persistent
        self.v5 = (not persistent) if v5 is None else v5
        self.qos = qos
        self.messages: list[Received] = []
        self._cond = threading.Condition()
        self._callback = on_message
        self.connected = threading.Event()
        self.subscribed = threading.Event()  # SUBACK received on the current connection
        self.client_id = client_id or f"test-sub-{os.getpid()}-{id(self):x}"
        if self.v5:
            self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv5)
        else:
            self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id,
                                      protocol=mqtt.MQTTv311, clean_session=not persistent)
        if username:
            self.client.username_pw_set(username, password)
        if tls:
            self.client.tls_set(**tls)
        self.client.reconnect_delay_set(0.1, 0.5)  # type: ignore[arg-type]  # paho takes seconds as float
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.on_disconnect = self._on_disconnect
        self.host, self.port = host, port

    def _on_connect(self, client, _userdata, _flags, reason_code, _properties) -> None:
        if reason_code.is_failure:
            return
        if self.v5:
            opts = SubscribeOptions(qos=self.qos, retainAsPublished=True)
            client.subscribe([(t, opts) for t in self.topics])
        else:
            client.subscribe([(t, self.qos) for t in self.topics])
        self.connected.set()

    def _on_disconnect(self, *args: object) -> None:
        self.connected.clear()
        self.subscribed.clear()

    def _on_message(self, _client, _userdata, msg) -> None:
        received = Received(msg.topic, bytes(msg.payload), msg.qos, bool(msg.retain), time.time())
        with self._cond:
            self.messages.append(received)
            self._cond.notify_all()
        if self._callback is not None:
            self._callback(received)

    def start(self, timeout: float = 10.0) -> Self:
        """Connect and return once the subscriptions are acknowledged (SUBACK)."""
        self.client.connect(self.host, self.port, keepalive=10)
        self.client.loop_start()
        if not self.subscribed.wait(timeout):
            self.stop()
            raise TimeoutError(f"subscriber could not subscribe at {self.host}:{self.port}")
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def on(self, topic: str) -> list[Received]:
        with self._cond:
            return [m for m in self.messages if m.topic == topic]

    def wait_for(self, predicate: Callable[[list[Received]], bool], timeout: float = 15.0,
                 what: str = "the expected messages") -> list[Received]:
        """Block until ``predicate(messages)`` holds (woken by each message); ``AssertionError`` after ``timeout`` s."""
        end = time.monotonic() + timeout
        with self._cond:
            while not predicate(list(self.messages)):
                left = end - time.monotonic()
                if left <= 0:
                    summary = [(m.topic, m.payload[:80]) for m in self.messages[-20:]]
                    raise AssertionError(f"timed out after {timeout} s waiting for {what}; last messages: {summary}")
                self._cond.wait(left)
            return list(self.messages)

    def wait_topic(self, topic: str, count: int = 1, timeout: float = 15.0) -> list[Received]:
        self.wait_for(lambda ms: sum(m.topic == topic for m in ms) >= count, timeout,
                      what=f"{count} message(s) on {topic}")
        return self.on(topic)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def publish_once(port: int, topic: str, payload: str | bytes, retain: bool = False, qos: int = 1,
                 host: str = "127.0.0.1") -> None:
    """Publish one message from a throw-away client and wait for the broker's acknowledgement."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-pub-{time.monotonic_ns()}")
    client.connect(host, port)
    client.loop_start()
    try:
        client.publish(topic, payload, qos=qos, retain=retain).wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()


@dataclass
class BrokerHandle:
    """A running local broker on ``host:port``; ``kind`` is ``mosquitto`` or ``amqtt``."""

    kind: str
    host: str
    port: int
    _stop: Callable[[], None] = field(repr=False)

    def stop(self) -> None:
        self._stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _start_mosquitto(binary: str, port: int) -> BrokerHandle:
    workdir = Path(tempfile.mkdtemp(prefix="edge-monitor-broker-"))
    broker = Mosquitto(workdir, binary, port=port, persistence=False)
    try:
        broker.start()
    except RuntimeError as err:
        shutil.rmtree(workdir, ignore_errors=True)
        raise BrokerUnavailable(str(err)[-300:]) from None

    def stop() -> None:
        broker.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    return BrokerHandle("mosquitto", "127.0.0.1", port, stop)


def _apt_install_mosquitto(log: Callable[[str], None]) -> str | None:
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return None
    log("mosquitto not found; installing it with apt-get (running as root) ...")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "install", "-y", "--no-install-recommends", "mosquitto"],
                ["apt-get", "update"],
                ["apt-get", "install", "-y", "--no-install-recommends", "mosquitto"]):
        result = subprocess.run(cmd, env=env, capture_output=True, check=False)
        if cmd[1] == "install" and result.returncode == 0:
            break
    return shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)


def _start_amqtt(port: int) -> BrokerHandle:
    try:
        from amqtt.broker import Broker
    except ImportError:
        raise BrokerUnavailable(
            "no MQTT broker available: install mosquitto (apt-get install mosquitto) "
            "or the embedded one (pip install amqtt)"
        ) from None
    config = {
        "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }
    import logging

    # amqtt logs every probe and disconnect at WARNING; the demo output is the alerts.
    logging.getLogger("amqtt").setLevel(logging.CRITICAL)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    failure: list[BaseException] = []
    holder: dict[str, Any] = {}

    async def main() -> None:
        try:
            broker = Broker(config)
            await broker.start()
            holder["broker"] = broker
        except BaseException as err:  # noqa: BLE001 - reported to the caller
            failure.append(err)
        finally:
            started.set()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(main())
        if not failure:
            loop.run_forever()

    thread = threading.Thread(target=run, name="amqtt-broker", daemon=True)
    thread.start()
    started.wait(15)
    if failure or "broker" not in holder:
        raise BrokerUnavailable(f"embedded amqtt broker did not start on 127.0.0.1:{port}: {failure[:1]}")

    def stop() -> None:
        broker = holder.get("broker")
        if broker is not None and loop.is_running():
            fut = asyncio.run_coroutine_threadsafe(broker.shutdown(), loop)
            with contextlib.suppress(Exception):  # best effort at demo exit
                fut.result(5)
        if loop.is_running():
            loop.call_soon_threadsafe(loop.stop)
        thread.join(5)

    return BrokerHandle("amqtt", "127.0.0.1", port, stop)


def start_broker(port: int | None = None, prefer: str = "auto", install: bool = True,
                 log: Callable[[str], None] = lambda s: print(s, file=sys.stderr)) -> BrokerHandle:
    """Start a local broker on 127.0.0.1 for the demo (see the module docstring for the order).

    ``prefer``: ``auto``, ``mosquitto`` or ``amqtt``. Raises :class:`BrokerUnavailable`.
    """
    port = port or free_port()
    if prefer in ("auto", "mosquitto"):
        binary = shutil.which("mosquitto") or (
            "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
        if binary is None and install:
            binary = _apt_install_mosquitto(log)
        if binary is not None:
            return _start_mosquitto(binary, port)
        if prefer == "mosquitto":
            raise BrokerUnavailable("mosquitto is not installed (apt-get install mosquitto)")
    return _start_amqtt(port)


def format_message(topic: str, payload: bytes) -> list[str]:
    """Human lines for one alert/sensor message (the demo's output)."""
    try:
        msg = json.loads(payload)
    except ValueError:
        return [f"{topic}: {payload[:200]!r}"]
    kind = "SENSOR" if topic.endswith("/sensor") else "ALERT"
    event = str(msg.get("event", "?")).upper()
    parts = [f"{msg.get('time', '')} {kind} {event:<5} device={msg.get('device_id', '?')}"]
    if kind == "ALERT":
        for key in ("score", "peak_score", "threshold"):
            if isinstance(msg.get(key), (int, float)):
                parts.append(f"{key}={msg[key]:.4g}")
        if msg.get("evidence"):
            parts.append(f"evidence={msg['evidence']}")
    else:
        parts.append(f"kind={msg.get('kind', '?')}")
        if msg.get("since"):
            parts.append(f"since={msg['since']}")
    lines = [" ".join(parts)]
    explanation = msg.get("explanation")
    if isinstance(explanation, dict) and explanation.get("text"):
        lines.append(f"    -> {explanation['text']}")
    elif isinstance(msg.get("text"), str):
        lines.append(f"    -> {msg['text']}")
    return lines


class AlertPrinter:
    """Subscribes to ``<base>/alert`` and ``<base>/sensor`` and prints each message as it arrives."""

    def __init__(self, host: str, port: int, base_topic: str = "edge-monitor/+", out: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.received: list[tuple[str, dict]] = []
        self.topics = [f"{base_topic}/alert", f"{base_topic}/sensor"]
        # MQTT 3.1.1, clean session, QoS 1: works with mosquitto and with the embedded amqtt broker.
        self.subscriber = Subscriber(port, *self.topics, host=host, persistent=False, v5=False, qos=1,
                                     client_id=f"edge-monitor-demo-{os.getpid()}", on_message=self._print)

    def _print(self, msg: Received) -> None:
        try:
            self.received.append((msg.topic, msg.json()))
        except ValueError:
            pass
        for line in format_message(msg.topic, msg.payload):
            print(line, file=self.out, flush=True)

    def start(self, timeout: float = 10.0) -> Self:
        try:
            self.subscriber.start(timeout)
        except (OSError, TimeoutError) as err:
            raise BrokerUnavailable(f"could not subscribe at {self.subscriber.host}:{self.subscriber.port}: "
                                    f"{err}") from None
        return self

    def stop(self) -> None:
        self.subscriber.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
