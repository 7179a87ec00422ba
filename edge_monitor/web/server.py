"""The operator's view: a status page, ``/api/status``, Prometheus ``/metrics`` and evidence WAVs.

Configured by the ``http:`` section (:class:`edge_monitor.config.schema.HttpConfig`);
absent means this module is never imported. ``run`` and ``simulate`` build an
:class:`HttpService` with :func:`attach` over the daemon's read-only view
(:class:`edge_monitor.web.view.DaemonView`) and add it to the daemon's
observers: it starts the server when the loop starts and stops it at
shutdown, so ``edge-monitor run`` and ``edge-monitor simulate`` both serve.

Routes (GET and HEAD only; everything else is 405; no directory listing):

``/``                  the status page (one static HTML file with inline JS; no CDN, no build step)
``/api/status``        ``Daemon.health()`` (the MQTT ``<base>/status`` JSON) plus score history,
                       recent alerts and sensor events, live microphone numbers
``/metrics``           Prometheus exposition format (:mod:`edge_monitor.web.metrics`)
``/evidence/<file>``   an evidence WAV: a plain ``*.wav`` name directly inside the evidence
                       folder, no symlink; Range requests are honoured (seeking in ``<audio>``)

Never in the scoring loop's way: the server runs in daemon threads and reads
only the immutable snapshot the loop publishes
(:mod:`edge_monitor.web.status_board`); no lock is shared with the loop.
Never starved by its clients (:mod:`edge_monitor.web.acceptor`): one selector
thread reads request heads, each under a whole-head deadline, with at most a
few dozen waiting per client address (the oldest gives way); the token is
checked there, before a worker is involved; a small pool of workers answers
complete requests under a whole-response deadline, and a client that stops
reading gives up its worker after :data:`SOCKET_TIMEOUT_S` without progress.
Evidence is served only from regular files, checked before they are opened
(a FIFO named ``x.wav`` never blocks a worker); an undecodable path is a 400.

Access: a loopback ``listen`` needs no token unless ``http.token_env`` is set;
any other address needs one (refused at config validation otherwise). The
token goes in ``Authorization: Bearer <token>`` or ``?token=<token>`` (the
page passes its own ``?token=`` on to its requests).
"""

from __future__ import annotations

import hmac
import io
import json
import math
import os
import re
import socket
import stat
import threading
import time
from collections.abc import Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, unquote, urlsplit

from structlog.typing import FilteringBoundLogger

from edge_monitor.audio.ring_buffer import Window
from edge_monitor.config.schema import ConfigError, HttpConfig
from edge_monitor.web.acceptor import Acceptor, Request, simple_response
from edge_monitor.web.status_board import COARSE_SECONDS, Snapshot, StatusBoard
from edge_monitor.web.view import DaemonView

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

    from edge_monitor.web.metrics import MetricsRenderer

__all__ = ["SOCKET_TIMEOUT_S", "HttpService", "attach", "status_json"]

SOCKET_TIMEOUT_S = 10.0  # a client that reads nothing of a response for this long is dropped
EVIDENCE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,200}\.wav")
CHUNK = 64 * 1024


def attach(daemon: DaemonView, cfg: HttpConfig, log: FilteringBoundLogger, source: str | None = None) -> HttpService:
    """The service for the ``http:`` section ``cfg`` over ``daemon``; the caller adds it to the daemon's observers.

    ``source``: the config file (for error messages). Raises :class:`ConfigError`
    (key ``http.token_env``) when the token variable is named but unset.
    """
    return HttpService(cfg, daemon, log=log, source=source)


def _read_token(cfg: HttpConfig, source: str | None) -> str | None:
    if cfg.token_env is None:
        return None
    token = os.environ.get(cfg.token_env, "")
    if not token.strip():
        raise ConfigError(f"the environment variable {cfg.token_env} is unset or empty (it must hold the "
                          "access token)", file=source, key="http.token_env")
    return token.strip()


def _json_safe(x: object) -> object:
    """NaN/inf -> None, recursively (JSON has no such numbers; the page's JSON.parse rejects them)."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    return x


def status_json(s: Snapshot, mic: Mapping[str, object] | None) -> dict[str, object]:
    """The ``/api/status`` document: the health JSON plus what the page needs."""
    doc = dict(s.health)
    doc.update({
        "info": s.info,
        "threshold": s.threshold,
        "clear_level": s.clear_level,
        "state": s.state,
        "last_score": s.last_score,
        "last_window_time": s.last_window_time,
        "input_level_dbfs": s.input_rms_dbfs,
        "mqtt_connected": s.mqtt_connected,
        "outbox_depth": s.outbox_depth,
        "counters": s.counters,
        "skipped_by_kind": s.skipped_by_kind,
        "history": [[round(t, 3), sc, st] for t, sc, st in s.history],
        "history_coarse": [[t, hi, lo, st] for t, hi, lo, st in s.coarse],
        "coarse_seconds": COARSE_SECONDS,
        "recent_alerts": list(s.alerts),
        "sensor_events": list(s.sensor_log),
        "mic": mic,
        "snapshot_time": s.made_at,
    })
    return {k: _json_safe(v) for k, v in doc.items()}


class _MicCache:
    """Microphone numbers (:func:`edge_monitor.audio.mic_check.analyse`) of the latest window, computed
    on request in an HTTP thread, once per window (a lock private to the HTTP side)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple[int, int] | None = None
        self._value: dict[str, object] | None = None

    def get(self, s: Snapshot) -> dict[str, object] | None:
        if s.last_raw is None:
            return None
        key = (id(s.last_raw), s.last_raw_index)
        with self._lock:
            if key != self._key:
                from edge_monitor.audio.mic_check import analyse

                try:
                    self._value = analyse(s.last_raw, s.last_raw_rate).to_dict()
                    self._value["window_index"] = s.last_raw_index
                except Exception as exc:  # noqa: BLE001
                    self._value = {"error": str(exc)}
                self._key = key
            return self._value


def _token_ok(token: str | None, authorization: str, query: dict[str, list[str]]) -> bool:
    """The token from ``Authorization: Bearer`` or ``?token=``, compared in constant time."""
    if token is None:
        return True
    given = None
    if authorization.lower().startswith("bearer "):
        given = authorization[7:].strip()
    elif query.get("token"):
        given = query["token"][0]
    return given is not None and hmac.compare_digest(given.encode(), token.encode())


class _Server:
    """The acceptor (:mod:`edge_monitor.web.acceptor`) with this module's handler and the service it serves."""

    def __init__(self, address: tuple[str, int], handler: type[_Handler], service: HttpService) -> None:
        self.service = service
        self._handler = handler
        self._acceptor = Acceptor(address, self._answer, self._precheck, self._failed)
        self.server_address = self._acceptor.server_address

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        self._acceptor.serve_forever(poll_interval)

    def shutdown(self) -> None:
        self._acceptor.shutdown()

    def server_close(self) -> None:
        self._acceptor.server_close()

    def _answer(self, req: Request) -> bool:
        # BaseHTTPRequestHandler is typed for socketserver; it only stores request and server (see setup).
        return not self._handler(req, req.client, self).close_connection  # type: ignore[arg-type]

    def _precheck(self, head: bytes) -> bytes | None:
        """On the selector thread: 401 for a GET or HEAD without the token (the handler answers the rest)."""
        token = self.service.token
        if token is None:
            return None
        lines = head.split(b"\r\n")
        words = lines[0].split()
        if len(words) != 3 or words[0] not in (b"GET", b"HEAD"):
            return None  # 400 / 405 from the handler, which says what is allowed
        auth = next((line.split(b":", 1)[1].strip() for line in lines[1:]
                     if line[:14].lower() == b"authorization:"), b"")
        try:
            query = parse_qs(urlsplit(words[1].decode("latin-1")).query)
        except ValueError:
            query = {}
        if _token_ok(token, auth.decode("latin-1"), query):
            return None
        return simple_response(401, "Unauthorized", 'WWW-Authenticate: Bearer realm="edge-monitor"\r\n')

    def _failed(self, client: tuple[str, int], exc: BaseException) -> None:
        # A client that went away or ran out of time mid-response: one debug line, no traceback on stderr.
        self.service.log.debug("http request aborted", client=client[0], error=repr(exc))


class _DeadlineWriter(io.RawIOBase):
    """The response stream of one request: every write must finish by the request's deadline."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        super().__init__()
        self._sock, self._deadline = sock, deadline

    def writable(self) -> bool:
        return True

    def write(self, data: ReadableBuffer) -> int:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("response deadline passed")
        self._sock.settimeout(min(left, SOCKET_TIMEOUT_S))  # sendall's timeout covers the whole call
        self._sock.sendall(data)
        return memoryview(data).nbytes


class _Handler(BaseHTTPRequestHandler):
    server: _Server  # type: ignore[assignment]  # not a socketserver.BaseServer (see _Server)
    protocol_version = "HTTP/1.1"
    server_version = "edge-monitor"
    sys_version = ""

    # --- plumbing --------------------------------------------------------------------------------

    def setup(self) -> None:
        # One request per handler: its head was read by the acceptor, the socket is the client's.
        req: Request = self.request
        self.connection = req.sock
        self.rfile = io.BytesIO(req.head)
        self.wfile = _DeadlineWriter(req.sock, req.deadline)  # type: ignore[assignment]

    def handle(self) -> None:
        self.close_connection = True
        self.handle_one_request()

    def finish(self) -> None:
        pass  # the acceptor keeps or closes the socket

    def log_message(self, format: str, *args: object) -> None:
        self.server.service.log.debug("http", client=self.client_address[0], line=format % args)

    def _refuse(self) -> None:
        self.send_error(HTTPStatus.METHOD_NOT_ALLOWED, "read-only: GET and HEAD only")

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = do_CONNECT = _refuse

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # Every error closes the connection and says what is allowed.
        self.close_connection = True
        if code == HTTPStatus.METHOD_NOT_ALLOWED:
            self._extra_headers = [("Allow", "GET, HEAD")]
        super().send_error(code, message, explain)

    def end_headers(self) -> None:
        for k, v in getattr(self, "_extra_headers", []):
            self.send_header(k, v)
        self._extra_headers = []
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def _send(self, body: bytes, ctype: str, code: int = 200, head: bool = False) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _authorised(self, query: dict[str, list[str]]) -> bool:
        return _token_ok(self.server.service.token, self.headers.get("Authorization", ""), query)

    # --- routes ----------------------------------------------------------------------------------

    def do_HEAD(self) -> None:
        self._route(head=True)

    def do_GET(self) -> None:
        self._route(head=False)

    def _route(self, head: bool) -> None:
        svc = self.server.service
        try:
            parts = urlsplit(self.path)
            query = parse_qs(parts.query)
        except ValueError:
            self.send_error(HTTPStatus.BAD_REQUEST, "bad request target")
            return
        if not self._authorised(query):
            self._extra_headers = [("WWW-Authenticate", 'Bearer realm="edge-monitor"')]
            self.send_error(HTTPStatus.UNAUTHORIZED, "token required")
            return
        path = parts.path
        if path in ("/", "/index.html"):
            self._send(svc.page, "text/html; charset=utf-8", head=head)
        elif path == "/api/status":
            snap = svc.snapshot()
            body = json.dumps(status_json(snap, svc.mic.get(snap)), allow_nan=False).encode()
            self._send(body, "application/json", head=head)
        elif path == "/metrics":
            body, ctype = svc.metrics().render(self.headers.get("Accept"))
            self._send(body, ctype, head=head)
        elif path.startswith("/evidence/"):
            self._evidence(path[len("/evidence/"):], head)
        else:
            self.send_error(HTTPStatus.NOT_FOUND)

    def _evidence(self, raw_name: str, head: bool) -> None:
        # Decode once, then accept only a plain file name: no separators, no "..", no dot
        # files, nothing but *.wav; the file must be a regular file (not a symlink) directly
        # inside the evidence folder, opened without following links.
        try:
            name = unquote(raw_name, errors="strict") if "%" in raw_name else raw_name
        except UnicodeDecodeError:
            self.send_error(HTTPStatus.BAD_REQUEST, "the path is not UTF-8")
            return
        folder = self.server.service.snapshot().evidence_dir
        if folder is None or not EVIDENCE_NAME.fullmatch(name) or ".." in name:
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        path = Path(folder) / name
        try:
            # A regular file before it is opened: opening a FIFO named *.wav would block the worker.
            before = os.stat(path, follow_symlinks=False)
            if not stat.S_ISREG(before.st_mode):
                raise FileNotFoundError(name)
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) != (before.st_dev, before.st_ino):  # swapped
            os.close(fd)
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        with os.fdopen(fd, "rb") as f:
            size = st.st_size
            start, end = 0, size - 1
            code = HTTPStatus.OK
            rng = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", "").strip())
            if rng and size > 0 and (rng.group(1) or rng.group(2)):
                if rng.group(1):
                    start = int(rng.group(1))
                    end = min(int(rng.group(2)), size - 1) if rng.group(2) else size - 1
                else:  # suffix range: the last N bytes
                    start = max(0, size - int(rng.group(2)))
                if start > end or start >= size:
                    self._extra_headers = [("Content-Range", f"bytes */{size}")]
                    self.send_error(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
                    return
                code = HTTPStatus.PARTIAL_CONTENT
            length = end - start + 1 if size else 0
            self.send_response(code)
            self.send_header("Content-Type", "audio/wav")
            self.send_header("Content-Length", str(length))
            self.send_header("Accept-Ranges", "bytes")
            if code == HTTPStatus.PARTIAL_CONTENT:
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self.end_headers()
            if head:
                return
            f.seek(start)
            left = length
            while left > 0:
                chunk = f.read(min(CHUNK, left))
                if not chunk:
                    break
                self.wfile.write(chunk)  # blocks only this worker, until SOCKET_TIMEOUT_S or the deadline
                left -= len(chunk)


class HttpService:
    """The server and its status board, as one daemon observer.

    Args:
        cfg: the ``http:`` section.
        daemon: the daemon's read-only view (read on the loop's thread only, by the board).
        log: structlog logger.
        source: the config file (for error messages).
    """

    def __init__(self, cfg: HttpConfig, daemon: DaemonView, log: FilteringBoundLogger,
                 source: str | None = None) -> None:
        self.cfg = cfg
        self.log = log
        self.token = _read_token(cfg, source)
        self.board = StatusBoard(daemon, cfg.history_seconds)
        self.page = resources.files("edge_monitor.web").joinpath("status_page.html").read_bytes()
        self.mic = _MicCache()
        self._metrics: MetricsRenderer | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.address: tuple[str, int] | None = None

    def snapshot(self) -> Snapshot:
        return self.board.snapshot

    def metrics(self) -> MetricsRenderer:
        if self._metrics is None:  # prometheus_client loads on the first scrape, in an HTTP thread
            from edge_monitor.web.metrics import MetricsRenderer

            self._metrics = MetricsRenderer(self.snapshot)
        return self._metrics

    @property
    def url(self) -> str | None:
        if self.address is None:
            return None
        host = f"[{self.address[0]}]" if ":" in self.address[0] else self.address[0]
        return f"http://{host}:{self.address[1]}/"

    # --- observer -----------------------------------------------------------------------------

    def observe(self, daemon: DaemonView, event: str, payload: Window | Mapping[str, object] | None) -> None:
        self.board.observe(daemon, event, payload)
        if event == "start":
            self.start()
        elif event == "stop":
            self.stop()

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Bind and serve in a daemon thread. A bind failure is logged, never fatal: monitoring goes on."""
        if self._server is not None:
            return
        try:
            self._server = _Server((self.cfg.host, self.cfg.port), _Handler, self)
        except OSError as exc:
            self.log.error("http server not started", listen=self.cfg.listen, error=str(exc))
            return
        host, port = self._server.server_address[:2]
        self.address = (str(host), int(port))
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.5},
                                        name="edge-monitor-http", daemon=True)
        self._thread.start()
        self.log.info("http server listening", url=self.url, token=self.token is not None)

    def stop(self, timeout: float = 2.0) -> None:
        """Stop accepting; connection threads are daemon threads and die with the process."""
        server, self._server = self._server, None
        if server is None:
            return
        t0 = time.monotonic()
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(max(0.0, timeout - (time.monotonic() - t0)))
        self.log.info("http server stopped")
