"""Demo-only MQTT plumbing: a local broker and a subscriber that prints alerts.

Never used by the daemon or the tests (tests always run a real mosquitto via
``tests/mqtt_helpers.py``). :func:`start_broker` picks, in order:

1. ``mosquitto`` from ``$PATH``;
2. when absent and running as root (and ``install=True``): ``apt-get install -y mosquitto``;
3. an embedded broker from the ``amqtt`` package (``pip install amqtt``), run in
   a background thread, so the demo also works as a normal user.

:class:`AlertPrinter` subscribes to ``<base>/alert`` and ``<base>/sensor``
(``base`` may contain ``+``) and prints one line per message as it arrives,
plus the alert's ``explanation.text`` when there is one.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TextIO

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


class BrokerUnavailable(RuntimeError):
    """No way to run a local broker: the message says what to install."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, timeout: float, alive: Callable[[], bool] = lambda: True) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end and alive():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


@dataclass
class BrokerHandle:
    """A running local broker on ``host:port``; ``kind`` is ``mosquitto`` or ``amqtt``."""

    kind: str
    host: str
    port: int
    _stop: Callable[[], None] = field(repr=False)

    def stop(self) -> None:
        self._stop()

    def __enter__(self) -> "BrokerHandle":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _start_mosquitto(binary: str, port: int) -> BrokerHandle:
    workdir = Path(tempfile.mkdtemp(prefix="edge-monitor-broker-"))
    conf = workdir / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\n")
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    if not _wait_port(port, 10.0, lambda: proc.poll() is None):
        err = proc.stderr.read().decode(errors="replace") if proc.poll() is not None else ""
        proc.kill()
        raise BrokerUnavailable(f"mosquitto did not start on 127.0.0.1:{port}: {err.strip()[-300:]}")

    def stop() -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
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
        result = subprocess.run(cmd, env=env, capture_output=True)
        if cmd[1] == "install" and result.returncode == 0:
            break
    return shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)


def _start_amqtt(port: int) -> BrokerHandle:
    try:
        from amqtt.broker import Broker  # noqa: PLC0415 - optional, demo only
    except ImportError:
        raise BrokerUnavailable(
            "no MQTT broker available: install mosquitto (apt-get install mosquitto) "
            "or the embedded one (pip install amqtt)"
        ) from None
    config = {
        "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }
    import logging  # noqa: PLC0415

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
            try:
                fut.result(5)
            except Exception:  # noqa: BLE001 - best effort at demo exit
                pass
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
        self._ready = threading.Event()
        self.topics = [f"{base_topic}/alert", f"{base_topic}/sensor"]
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"edge-monitor-demo-{os.getpid()}")
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.host, self.port = host, port

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:  # noqa: ANN001
        if not reason_code.is_failure:
            client.subscribe([(t, 1) for t in self.topics])

    def _on_message(self, client, userdata, msg) -> None:  # noqa: ANN001
        try:
            self.received.append((msg.topic, json.loads(msg.payload)))
        except ValueError:
            pass
        for line in format_message(msg.topic, msg.payload):
            print(line, file=self.out, flush=True)

    def start(self, timeout: float = 10.0) -> "AlertPrinter":
        self.client.on_subscribe = lambda *a: self._ready.set()
        self.client.connect(self.host, self.port, keepalive=30)
        self.client.loop_start()
        if not self._ready.wait(timeout):
            raise BrokerUnavailable(f"could not subscribe at {self.host}:{self.port}")
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self) -> "AlertPrinter":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
