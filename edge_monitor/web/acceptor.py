"""Connections in, request heads read by one selector thread, requests answered by a small pool.

Why not one thread per connection: a client that sends its request head a byte
every few seconds holds its thread (and, with a cap on threads, a slot) for as
long as it likes, so a few dozen of them blinded the status page. Here no
thread waits on a client until its whole head has arrived:

- one thread (``selectors``) accepts and reads request heads into buffers;
  each connection has a whole-head deadline (:data:`HEAD_DEADLINE_S` from
  accept, or from the end of the previous response on a kept-alive
  connection), not a per-byte timeout; heads over :data:`MAX_HEAD_BYTES` are refused;
- at most :data:`MAX_PER_CLIENT` connections of one client address wait for
  their heads, and :data:`MAX_PENDING` in all: a new connection beyond either
  closes the *oldest* waiting one (a slow client gives way; a client that
  sends its head at once is never the oldest);
- a complete head goes through ``precheck`` on that thread (the token: an
  unauthorised request is answered 401 there and then, without a worker);
- then to one of :data:`WORKERS` threads, through a queue of at most
  :data:`MAX_QUEUED` (beyond: 503), which answers it with a whole-response
  deadline (:data:`RESPONSE_DEADLINE_S`) and hands a kept-alive connection
  back to the selector.

Standard library only; the handler is any callable that answers one request
on a blocking socket.
"""

from __future__ import annotations

import queue
import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = [
    "HEAD_DEADLINE_S",
    "MAX_HEAD_BYTES",
    "MAX_PENDING",
    "MAX_PER_CLIENT",
    "MAX_QUEUED",
    "RESPONSE_DEADLINE_S",
    "WORKERS",
    "Acceptor",
    "Request",
    "simple_response",
]

HEAD_DEADLINE_S = 10.0  # the whole request head (request line + headers) must arrive within this
MAX_HEAD_BYTES = 16 * 1024
MAX_PENDING = 256  # connections waiting for their heads, all clients together
MAX_PER_CLIENT = 32  # ... of one client address
WORKERS = 8  # threads answering complete requests
MAX_QUEUED = 32  # complete requests waiting for a worker; more are answered 503
RESPONSE_DEADLINE_S = 60.0  # a whole response, headers and body, must be written within this
_ACCEPTS_PER_WAKE = 64


@dataclass
class Request:
    """One complete request head handed to a worker.

    Attributes:
        sock: the connection (blocking, in the worker).
        client: the client's address tuple.
        head: the request line and headers, ``b"...\\r\\n\\r\\n"``.
        rest: bytes read after the head (a pipelined next request), kept for the next round.
        deadline: ``time.monotonic()`` by which the response must be written.
    """

    sock: socket.socket
    client: tuple[str, int]
    head: bytes
    rest: bytes
    deadline: float


@dataclass
class _Pending:
    sock: socket.socket
    client: tuple[str, int]
    since: float
    buf: bytearray = field(default_factory=bytearray)


def simple_response(code: int, reason: str, extra: str = "") -> bytes:
    """A complete ``Connection: close`` response with a short text body (sent from the selector thread)."""
    body = f"{code} {reason}\n".encode()
    return (f"HTTP/1.1 {code} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {len(body)}"
            f"\r\nConnection: close\r\nX-Content-Type-Options: nosniff\r\nCache-Control: no-store\r\n{extra}\r\n"
            ).encode() + body


class Acceptor:
    """The listening socket, the head reader and the worker pool (see the module docstring).

    Args:
        address: ``(host, port)``; port 0 lets the kernel choose.
        handle: answers one :class:`Request` on its (blocking) socket; returns True to keep the
            connection open for the next request. Runs on a worker thread; its exceptions are
            passed to ``on_error`` and the connection is closed.
        precheck: ``head -> response bytes or None``; a response is sent at once (non-blocking)
            and the connection closed. Runs on the selector thread: keep it cheap.
        on_error: ``(client, exception)`` for a failed request (a debug log line).
    """

    def __init__(self, address: tuple[str, int], handle: Callable[[Request], bool],
                 precheck: Callable[[bytes], bytes | None], on_error: Callable[[tuple[str, int], BaseException], None]
                 ) -> None:
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self._listener = socket.socket(family, socket.SOCK_STREAM)
        try:
            self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._listener.bind(address)
            self._listener.listen(128)
        except OSError:
            self._listener.close()
            raise
        self._listener.setblocking(False)
        self.server_address: tuple[str, int] = self._listener.getsockname()[:2]
        self._handle, self._precheck, self._on_error = handle, precheck, on_error
        self._sel = selectors.DefaultSelector()
        self._pending: dict[int, _Pending] = {}
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._returned: list[tuple[socket.socket, tuple[str, int], bytes]] = []
        self._returned_lock = threading.Lock()
        self._jobs: queue.Queue[Request | None] = queue.Queue(MAX_QUEUED)
        self._stop = threading.Event()
        self._stopped = threading.Event()
        self._workers = [threading.Thread(target=self._work, name=f"edge-monitor-http-{i}", daemon=True)
                         for i in range(WORKERS)]

    # --- lifecycle ----------------------------------------------------------------------------------

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Run the selector loop until :meth:`shutdown` (on the calling thread)."""
        for w in self._workers:
            w.start()
        self._sel.register(self._listener, selectors.EVENT_READ, "accept")
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        try:
            while not self._stop.is_set():
                self._expire(time.monotonic())
                timeout = min([poll_interval] + [p.since + HEAD_DEADLINE_S - time.monotonic()
                                                 for p in self._pending.values()])
                for key, _ in self._sel.select(max(0.0, timeout)):
                    if key.data == "accept":
                        self._accept()
                    elif key.data == "wake":
                        self._take_returned()
                    else:
                        self._read(key.fd)
        finally:
            self._stopped.set()

    def shutdown(self) -> None:
        """Stop the loop (from another thread) and wait for it."""
        self._stop.set()
        self._wake()
        self._stopped.wait(5.0)

    def server_close(self) -> None:
        """Close the listener and every waiting connection; the workers finish their request and exit."""
        for p in list(self._pending.values()):
            self._drop(p)
        for _ in self._workers:
            try:
                self._jobs.put_nowait(None)
            except queue.Full:
                break
        self._sel.close()
        self._listener.close()
        self._wake_r.close()
        self._wake_w.close()

    @property
    def pending(self) -> int:
        """Connections waiting for their request heads (read on the selector thread; approximate elsewhere)."""
        return len(self._pending)

    # --- selector thread ------------------------------------------------------------------------------

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"x")
        except OSError:  # buffer full (a wake is already pending) or closed at shutdown
            pass

    def _accept(self) -> None:
        for _ in range(_ACCEPTS_PER_WAKE):
            try:
                sock, addr = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of file descriptors: the waiting ones give way below
                self._on_error(("-", 0), exc)
                self._evict(None)
                return
            self._admit(sock, (str(addr[0]), int(addr[1])), b"")

    def _admit(self, sock: socket.socket, client: tuple[str, int], buf: bytes) -> None:
        if sum(1 for p in self._pending.values() if p.client[0] == client[0]) >= MAX_PER_CLIENT:
            self._evict(client[0])
        if len(self._pending) >= MAX_PENDING:
            self._evict(None)
        sock.setblocking(False)
        pending = _Pending(sock, client, time.monotonic(), bytearray(buf))
        self._pending[sock.fileno()] = pending
        self._sel.register(sock, selectors.EVENT_READ, "conn")
        if b"\r\n\r\n" in pending.buf:  # a pipelined request already read
            self._complete(pending)

    def _evict(self, client: str | None) -> None:
        """Close the oldest connection waiting for its head (of ``client``, or of anyone).

        Each candidate's socket is read first: a request whose head already arrived, but
        was not read yet in a burst of accepts, is completed rather than dropped.
        """
        pool = sorted((p for p in self._pending.values() if client is None or p.client[0] == client),
                      key=lambda p: p.since)
        for p in pool:
            self._read(p.sock.fileno())
            if self._pending.get(p.sock.fileno()) is p:
                self._drop(p)
                return

    def _drop(self, p: _Pending) -> None:
        fd = p.sock.fileno()
        self._pending.pop(fd, None)
        try:
            self._sel.unregister(p.sock)
        except (KeyError, ValueError):
            pass
        p.sock.close()

    def _expire(self, now: float) -> None:
        for p in [p for p in self._pending.values() if now - p.since >= HEAD_DEADLINE_S]:
            self._reply_and_drop(p, simple_response(408, "Request Timeout") if p.buf else b"")

    def _read(self, fd: int) -> None:
        p = self._pending.get(fd)
        if p is None:
            return
        try:
            data = p.sock.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(p)
            return
        if not data:
            self._drop(p)
            return
        p.buf += data
        if b"\r\n\r\n" in p.buf:
            self._complete(p)
        elif len(p.buf) > MAX_HEAD_BYTES:
            self._reply_and_drop(p, simple_response(431, "Request Header Fields Too Large"))

    def _complete(self, p: _Pending) -> None:
        end = p.buf.index(b"\r\n\r\n") + 4
        if end > MAX_HEAD_BYTES:
            self._reply_and_drop(p, simple_response(431, "Request Header Fields Too Large"))
            return
        head, rest = bytes(p.buf[:end]), bytes(p.buf[end:])
        refusal = self._precheck(head)
        if refusal is not None:
            self._reply_and_drop(p, refusal)
            return
        self._pending.pop(p.sock.fileno(), None)
        self._sel.unregister(p.sock)
        try:
            self._jobs.put_nowait(Request(p.sock, p.client, head, rest, time.monotonic() + RESPONSE_DEADLINE_S))
        except queue.Full:
            self._send_quietly(p.sock, simple_response(503, "Service Unavailable", "Retry-After: 1\r\n"))
            p.sock.close()

    def _reply_and_drop(self, p: _Pending, response: bytes) -> None:
        if response:
            self._send_quietly(p.sock, response)
        self._drop(p)

    @staticmethod
    def _send_quietly(sock: socket.socket, data: bytes) -> None:
        try:
            sock.send(data)  # non-blocking: what fits in the socket buffer (a short response always does)
        except OSError:
            pass

    def _take_returned(self) -> None:
        try:
            while self._wake_r.recv(512):
                pass
        except (BlockingIOError, InterruptedError, OSError):
            pass
        with self._returned_lock:
            back, self._returned = self._returned, []
        for sock, client, rest in back:
            if self._stop.is_set():
                sock.close()
            else:
                self._admit(sock, client, rest)

    # --- workers ----------------------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            req = self._jobs.get()
            if req is None:
                return
            keep = False
            try:
                req.sock.setblocking(True)
                keep = self._handle(req)
            except Exception as exc:  # noqa: BLE001 - a client that went away, a deadline: one debug line
                self._on_error(req.client, exc)
            if keep and not self._stop.is_set():
                with self._returned_lock:
                    self._returned.append((req.sock, req.client, req.rest))
                self._wake()
            else:
                try:
                    req.sock.close()
                except OSError:
                    pass
