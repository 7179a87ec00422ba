"""sd_notify against real Unix datagram sockets (a path socket and an abstract one).

The receiving side is what systemd does: bind an AF_UNIX SOCK_DGRAM socket,
turn on SO_PASSCRED (systemd checks the sender's PID for NotifyAccess=main) and
read datagrams of newline-separated KEY=VALUE lines.
"""

from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

from edge_monitor.service import notify

REPO = Path(__file__).resolve().parents[1]


class Receiver:
    """A bound datagram socket standing in for systemd's notify socket."""

    def __init__(self, env_value: str, address: str | bytes) -> None:
        self.env_value = env_value
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind(address)
        self.sock.settimeout(5.0)

    def receive(self) -> tuple[list[str], int | None]:
        """One datagram: its lines and the sender's PID from SCM_CREDENTIALS."""
        data, ancdata, _flags, _addr = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
        pid = None
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid, _uid, _gid = struct.unpack("iII", payload[:12])
        return data.decode("utf-8").split("\n"), pid

    def nothing_pending(self) -> bool:
        self.sock.settimeout(0.2)
        try:
            self.sock.recv(4096)
        except (TimeoutError, BlockingIOError):
            return True
        finally:
            self.sock.settimeout(5.0)
        return False

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def short_dir():
    # AF_UNIX paths are limited to 108 bytes: pytest's tmp_path can be longer.
    path = Path(tempfile.mkdtemp(prefix="emn-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(params=["path", "abstract"])
def receiver(request, short_dir, monkeypatch):
    if request.param == "path":
        sock_path = str(short_dir / "notify.sock")
        rx = Receiver(sock_path, sock_path)
    else:
        name = f"edge-monitor-test-{uuid.uuid4().hex}"
        rx = Receiver("@" + name, b"\0" + name.encode())
    monkeypatch.setenv("NOTIFY_SOCKET", rx.env_value)
    yield rx
    rx.close()


def test_ready_status_watchdog_stopping_arrive_as_datagrams(receiver):
    assert notify.enabled()
    assert notify.ready("model loaded, capture on hw:CARD=Device")
    assert receiver.receive()[0] == ["READY=1", "STATUS=model loaded, capture on hw:CARD=Device"]
    assert notify.status("normal\nlast score 0.012\tbroker up")
    # Newlines would smuggle in extra KEY=VALUE pairs: STATUS is folded to one line.
    assert receiver.receive()[0] == ["STATUS=normal last score 0.012 broker up"]
    assert notify.watchdog()
    assert receiver.receive()[0] == ["WATCHDOG=1"]
    assert notify.extend_timeout(2.5)
    assert receiver.receive()[0] == ["EXTEND_TIMEOUT_USEC=2500000"]
    assert notify.reloading()
    assert receiver.receive()[0] == ["RELOADING=1"]
    assert notify.stopping()
    assert receiver.receive()[0] == ["STOPPING=1"]
    assert receiver.nothing_pending()


def test_sender_pid_is_the_calling_process(receiver):
    """NotifyAccess=main: systemd accepts only datagrams whose credentials carry
    the main PID, so the message must come from the daemon process itself."""
    code = "from edge_monitor.service import notify; import sys; sys.exit(0 if notify.ready('child') else 3)"
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    lines, pid = receiver.receive()
    assert proc.wait(timeout=30) == 0
    assert lines == ["READY=1", "STATUS=child"]
    assert pid == proc.pid


def test_unset_socket_is_a_no_op(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert not notify.enabled()
    assert notify.ready() is False
    assert notify.watchdog() is False
    assert notify.status("x") is False
    assert notify.stopping() is False


def test_unsupported_address_is_a_no_op(monkeypatch):
    monkeypatch.setenv("NOTIFY_SOCKET", "vsock:2:1234")
    assert not notify.enabled()
    assert notify.watchdog() is False


def test_vanished_socket_does_not_raise(short_dir, monkeypatch):
    """systemd restarted or the socket file is gone: a failed send is False, never an exception."""
    monkeypatch.setenv("NOTIFY_SOCKET", str(short_dir / "gone.sock"))
    assert notify.enabled()
    assert notify.watchdog() is False
    monkeypatch.setenv("NOTIFY_SOCKET", f"@edge-monitor-nobody-{uuid.uuid4().hex}")
    assert notify.ready() is False


@pytest.mark.parametrize(
    ("usec", "pid", "expected"),
    [
        ("60000000", "self", 60.0),
        ("60000000", None, 60.0),
        ("500000", "self", 0.5),
        ("60000000", "other", None),   # the watchdog belongs to another process
        ("0", "self", None),
        ("", None, None),
        ("sixty", None, None),
        ("60000000", "not-a-pid", None),
    ],
)
def test_watchdog_interval(monkeypatch, usec, pid, expected):
    monkeypatch.setenv("WATCHDOG_USEC", usec)
    if pid is None:
        monkeypatch.delenv("WATCHDOG_PID", raising=False)
    elif pid == "self":
        monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    elif pid == "other":
        monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    else:
        monkeypatch.setenv("WATCHDOG_PID", pid)
    assert notify.watchdog_interval_s() == expected


def test_watchdog_interval_unset(monkeypatch):
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert notify.watchdog_interval_s() is None


def test_systemd_notify_tool_agrees_on_abstract_addresses(short_dir, monkeypatch):
    """Cross-check the receiver against systemd's own client: what `systemd-notify`
    sends to an ``@name`` socket arrives on the same abstract address we use."""
    from tests.conftest import require_binary

    tool = require_binary("systemd-notify")
    name = f"edge-monitor-test-{uuid.uuid4().hex}"
    rx = Receiver("@" + name, b"\0" + name.encode())
    try:
        env = {**os.environ, "NOTIFY_SOCKET": "@" + name}
        subprocess.run([tool, "--no-block", "--status=hello from systemd-notify"], env=env, check=True, timeout=30)
        lines, _pid = rx.receive()
        assert "STATUS=hello from systemd-notify" in lines
    finally:
        rx.close()


@pytest.fixture(scope="module")
def daemon_run(tiny_bundle, synth_dataset, tmp_path_factory):
    """Run the daemon process itself (`edge-monitor simulate`: the pipeline of `run`
    with a WAV replay instead of the microphone) under a real notify socket until
    it has pinged the watchdog twice, then SIGTERM it. Returns (datagrams,
    stderr, exit status); every datagram's sender PID was the daemon's."""
    import signal

    tmp = tmp_path_factory.mktemp("notify-daemon")
    name = f"edge-monitor-test-{uuid.uuid4().hex}"
    rx = Receiver("@" + name, b"\0" + name.encode())
    config = tmp / "config.yaml"
    config.write_text(
        f"device_id: notify-test\nmodel: {tiny_bundle}\nstate_dir: {tmp / 'state'}\n"
        "mqtt:\n  enabled: false\nevidence:\n  enabled: false\n")
    wav = sorted((synth_dataset / "train").glob("*.wav"))[0]
    env = {**os.environ, "NOTIFY_SOCKET": "@" + name, "WATCHDOG_USEC": "60000000",
           "PYTHONPATH": str(REPO)}
    env.pop("WATCHDOG_PID", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge_monitor", "simulate", "--config", str(config), "--log-format", "json",
         "--no-mqtt", "--loop", str(wav)],
        cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    messages: list[list[str]] = []
    try:
        rx.sock.settimeout(120)  # model load on a busy CI machine
        while sum("WATCHDOG=1" in m for m in messages) < 2:
            lines, pid = rx.receive()
            assert pid == proc.pid, "a notification came from another process (NotifyAccess=main)"
            messages.append(lines)
        proc.send_signal(signal.SIGTERM)
        while not any("STOPPING=1" in m for m in messages):
            lines, pid = rx.receive()
            assert pid == proc.pid
            messages.append(lines)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        rx.close()
    return messages, stderr, proc.returncode


def test_daemon_notifies_ready_watchdog_stopping_over_a_real_socket(daemon_run):
    """READY=1 once running, WATCHDOG=1 from the loop, STATUS= lines, STOPPING=1
    on SIGTERM, then a clean exit."""
    messages, stderr, returncode = daemon_run
    assert returncode == 0, stderr
    flat = [line for m in messages for line in m]
    assert "READY=1" in flat
    assert flat.index("READY=1") < flat.index("WATCHDOG=1"), "READY=1 must come before the first watchdog ping"
    assert any(line.startswith("STATUS=") and len(line) > len("STATUS=") for line in flat)
    assert flat.index("STOPPING=1") > flat.index("WATCHDOG=1")


def test_daemon_logs_are_json_lines_for_journald(daemon_run):
    """`journalctl -o cat` shows the service's stdout/stderr verbatim: with
    --log-format json every line must be one JSON object."""
    import json

    _messages, stderr, _returncode = daemon_run
    log_lines = [line for line in stderr.splitlines() if line.strip()]
    assert log_lines, "no log output"
    bad = []
    for line in log_lines:
        try:
            if not isinstance(json.loads(line), dict):
                bad.append(line)
        except ValueError:
            bad.append(line)
    assert not bad, f"log lines that are not JSON objects: {bad}"
