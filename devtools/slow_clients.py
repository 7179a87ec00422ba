"""Slow HTTP clients ("slowloris"): many connections that send a request head a byte at a time.

Used by tests/test_http_hostile.py and bench/bench_http.py against the status
page on a loopback port. Each client connects, sends one byte of a GET head
every ``interval_s`` (never finishing it), and reconnects at once when the
server closes the connection, so ``n`` connections stay open or opening for
as long as the attack runs. One thread drives them all (``selectors``).

    with SlowClients(("127.0.0.1", port), n=200, interval_s=4.0):
        ...  # probe the server meanwhile

``sources`` > 1 spreads the clients over that many loopback source addresses
(127.0.0.2, 127.0.0.3, ...; Linux routes all of 127.0.0.0/8 to ``lo``), as
many hosts on a LAN would; 1 keeps them all on 127.0.0.1, the probe's own
address (the hardest case for per-client limits).
"""

from __future__ import annotations

import selectors
import socket
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType

__all__ = ["SlowClients"]

_HEAD = b"GET /api/status HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 4000


@dataclass
class _Client:
    index: int
    sock: socket.socket | None = None
    sent: int = 0
    next_send: float = 0.0
    opened: float = 0.0


@dataclass
class Tally:
    """What the attack saw: connections made, closed by the server, and how long the closed ones lived (s)."""

    connects: int = 0
    closed_by_server: int = 0
    lifetimes: list[float] = field(default_factory=list)


class SlowClients:
    """``n`` slow clients against ``address`` on a background thread (see the module docstring)."""

    def __init__(self, address: tuple[str, int], n: int = 200, interval_s: float = 4.0, sources: int = 1) -> None:
        self.address, self.n, self.interval_s, self.sources = address, n, interval_s, sources
        self.tally = Tally()
        self._sel = selectors.DefaultSelector()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="slow-clients", daemon=True)
        self._clients = [_Client(i) for i in range(n)]

    def __enter__(self) -> SlowClients:
        self._thread.start()
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    @property
    def open_now(self) -> int:
        return sum(1 for c in self._clients if c.sock is not None)

    def _connect(self, c: _Client, now: float) -> None:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if self.sources > 1:
            s.bind((f"127.0.0.{2 + c.index % self.sources}", 0))
        s.setblocking(False)
        try:
            s.connect(self.address)
        except BlockingIOError:
            pass
        except OSError:
            s.close()
            c.next_send = now + 0.5
            return
        c.sock, c.sent, c.opened = s, 0, now
        c.next_send = now + self.interval_s * (c.index / self.n)  # staggered: one byte somewhere every few ms
        self._sel.register(s, selectors.EVENT_READ, c)
        self.tally.connects += 1

    def _close(self, c: _Client, now: float, by_server: bool) -> None:
        if c.sock is None:
            return
        self._sel.unregister(c.sock)
        c.sock.close()
        c.sock = None
        c.next_send = now + 0.1  # reconnect soon, without spinning
        if by_server:
            self.tally.closed_by_server += 1
            self.tally.lifetimes.append(now - c.opened)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                for c in self._clients:
                    if c.sock is None:
                        if now >= c.next_send:
                            self._connect(c, now)
                        continue
                    if now >= c.next_send:
                        try:
                            c.sock.send(_HEAD[c.sent % len(_HEAD):][:1])
                            c.sent += 1
                        except BlockingIOError:
                            pass
                        except OSError:
                            self._close(c, now, by_server=True)
                            continue
                        c.next_send = now + self.interval_s
                for key, _ in self._sel.select(0.05):
                    c = key.data
                    try:
                        data = c.sock.recv(4096)
                    except BlockingIOError:
                        continue
                    except OSError:
                        data = b""
                    if not data or b"HTTP/1.1" in data:
                        self._close(c, time.monotonic(), by_server=True)
        finally:
            for c in self._clients:
                self._close(c, time.monotonic(), by_server=False)
            self._sel.close()


def main() -> int:
    """``python -m devtools.slow_clients HOST PORT [--n N] [--seconds S] [--sources K]``: attack, print the tally.

    In its own process, so that the attackers' Python does not compete for the
    measured process's GIL. Prints one JSON line when done (or on SIGTERM).
    """
    import argparse
    import json
    import signal

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--interval", type=float, default=4.0, help="seconds between a client's bytes (default 4)")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--sources", type=int, default=1)
    args = ap.parse_args()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    with SlowClients((args.host, args.port), args.n, args.interval, args.sources) as slow:
        t0 = time.monotonic()
        samples = []
        while not done.wait(1.0) and time.monotonic() - t0 < args.seconds:
            samples.append(slow.open_now)
    t = slow.tally
    print(json.dumps({"connects": t.connects, "closed_by_server": t.closed_by_server,
                      "longest_life_s": max(t.lifetimes, default=0.0), "open_per_second": samples}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
