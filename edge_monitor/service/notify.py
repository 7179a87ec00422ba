"""sd_notify: tell systemd that the daemon is ready, alive, busy or stopping.

The protocol (``man sd_notify``) is one datagram of newline-separated
``KEY=VALUE`` lines sent to the Unix socket named by ``$NOTIFY_SOCKET``. A name
starting with ``@`` is an abstract socket (the ``@`` stands for a leading NUL
byte). When ``$NOTIFY_SOCKET`` is unset (run from a shell, in tests, under
another supervisor) every function here is a no-op that returns ``False``.

The daemon sends :func:`ready` once the model is loaded, capture has started and
the first broker connection attempt was made; :func:`watchdog` from the scoring
loop itself (never from a side thread, which would keep pinging while the
pipeline is stuck); :func:`status` with a one-line summary; :func:`stopping` on
shutdown. Failures never raise: losing a notification must not take the
daemon down (systemd restarts it if the watchdog goes quiet anyway).

Standard library only: this module is imported by the daemon on the Pi.
"""

from __future__ import annotations

import os
import socket

__all__ = [
    "notify",
    "ready",
    "status",
    "watchdog",
    "stopping",
    "reloading",
    "extend_timeout",
    "watchdog_interval_s",
    "enabled",
]


def _socket_address() -> str | bytes | None:
    """The address from ``$NOTIFY_SOCKET``, or None when unset or unusable."""
    name = os.environ.get("NOTIFY_SOCKET", "")
    if not name:
        return None
    if name.startswith("@"):
        # Abstract namespace: a leading NUL byte, the rest is the name (not NUL-terminated).
        return b"\0" + name[1:].encode()
    if name.startswith("/"):
        return name
    # systemd also allows vsock:CID:PORT for VMs; the daemon never runs that way.
    return None


def enabled() -> bool:
    """True when ``$NOTIFY_SOCKET`` names a Unix socket to notify."""
    return _socket_address() is not None


def notify(*lines: str) -> bool:
    """Send ``lines`` (each ``KEY=VALUE``) as one datagram.

    Returns True when the datagram was sent, False when notification is off
    (``$NOTIFY_SOCKET`` unset) or the send failed (socket gone, permission).
    """
    address = _socket_address()
    if address is None or not lines:
        return False
    message = "\n".join(lines).encode("utf-8", errors="replace")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(message, address)
    except OSError:
        return False
    return True


def _one_line(text: str) -> str:
    """STATUS= must be one line: newlines would start new KEY=VALUE pairs."""
    return " ".join(str(text).split())


def ready(status_text: str | None = None) -> bool:
    """``READY=1`` (plus ``STATUS=`` when given): start-up is complete."""
    lines = ["READY=1"]
    if status_text:
        lines.append(f"STATUS={_one_line(status_text)}")
    return notify(*lines)


def status(text: str) -> bool:
    """``STATUS=<text>``: the one-line summary ``systemctl status`` shows."""
    return notify(f"STATUS={_one_line(text)}")


def watchdog() -> bool:
    """``WATCHDOG=1``: the scoring loop is alive. Call it at least every
    :func:`watchdog_interval_s` / 2 seconds."""
    return notify("WATCHDOG=1")


def stopping(status_text: str | None = None) -> bool:
    """``STOPPING=1``: shutdown has begun (flushing the outbox, closing capture)."""
    lines = ["STOPPING=1"]
    if status_text:
        lines.append(f"STATUS={_one_line(status_text)}")
    return notify(*lines)


def reloading() -> bool:
    """``RELOADING=1``: re-reading configuration; send :func:`ready` when done."""
    return notify("RELOADING=1")


def extend_timeout(seconds: float) -> bool:
    """``EXTEND_TIMEOUT_USEC=``: ask for ``seconds`` more before systemd gives up
    on start-up or shutdown (a slow first model load on a Pi Zero)."""
    return notify(f"EXTEND_TIMEOUT_USEC={max(0, int(seconds * 1_000_000))}")


def watchdog_interval_s() -> float | None:
    """The watchdog timeout systemd expects pings within, in seconds.

    From ``$WATCHDOG_USEC`` (microseconds), honouring ``$WATCHDOG_PID``: when
    that names another process the watchdog is not ours and the result is
    None. None also when the watchdog is off or the values are malformed.
    Ping at least every half of this interval.
    """
    usec = os.environ.get("WATCHDOG_USEC", "")
    try:
        value = int(usec)
    except ValueError:
        return None
    if value <= 0:
        return None
    pid = os.environ.get("WATCHDOG_PID", "")
    if pid:
        try:
            if int(pid) != os.getpid():
                return None
        except ValueError:
            return None
    return value / 1_000_000
