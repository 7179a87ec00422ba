"""Reaching the broker: one connection attempt, its CONNACK timeout, the back-off between attempts,
and one readable log line per distinct problem.

Survived without a restart: refused connections, DNS failures, a broker
that accepts TCP but never answers (no CONNACK within ``connect_timeout_s``),
TLS errors, wrong credentials, and connections the broker drops at once (two
devices sharing a client id keep backing off instead of fighting in a tight
loop). Times are in seconds; the clock and the wait are injectable so tests
run the schedule without sleeping.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Callable

import structlog

from edge_monitor.publish.transport import Transport, TransportFactory
from edge_monitor.util.backoff import Backoff

__all__ = ["STABLE_SESSION_S", "Connector", "FailureLog", "connack_hint", "describe_error", "run_with_backoff"]

log = structlog.get_logger("edge_monitor.publish.publisher")

STABLE_SESSION_S = 10.0  # a connection that lasted this long resets the reconnect back-off
LOOP_TURN_S = 0.1  # longest one network turn blocks (stop requests and new work wait at most this)


def describe_error(err: BaseException, host: str, port: int) -> str:
    """One readable phrase for a failed connect (never contains credentials)."""
    if isinstance(err, socket.gaierror):
        return f"cannot resolve broker host {host!r}: {err.strerror or err}"
    if isinstance(err, ConnectionRefusedError):
        return f"connection refused by {host}:{port} (is the broker running and listening there?)"
    if isinstance(err, ssl.SSLCertVerificationError):
        return (f"TLS certificate of {host}:{port} not trusted: {err.verify_message or err.reason} "
                "(check mqtt.tls.ca_file)")
    if isinstance(err, ssl.SSLError):
        return f"TLS handshake with {host}:{port} failed: {err.reason or err}"
    if isinstance(err, (TimeoutError, socket.timeout)):
        return f"timed out connecting to {host}:{port}"
    if isinstance(err, OSError):
        return f"cannot connect to {host}:{port}: {err.strerror or err}"
    return f"cannot connect to {host}:{port}: {err}"


def connack_hint(reason: str) -> str:
    """The broker's CONNACK refusal, with the config keys that usually fix it."""
    low = reason.lower()
    if "authori" in low or "user name" in low or "password" in low:
        return (f"broker refused the login: {reason} "
                "(check mqtt.username and mqtt.password_file / $EDGE_MONITOR_MQTT_PASSWORD)")
    if "identifier" in low:
        return f"broker refused the client id: {reason} (check mqtt.client_id)"
    return f"broker refused the connection: {reason}"


class FailureLog:
    """Connection problems: counted, the latest kept, each distinct one logged once as an error.

    Written by the connection thread only; the counters are plain attributes
    that other threads may read.
    """

    def __init__(self, broker: str) -> None:
        self.broker = broker
        self.failures = 0
        self.last_error: str | None = None
        self._logged: str | None = None

    def fail(self, message: str) -> None:
        self.failures += 1
        self.last_error = message
        if message != self._logged:  # one line per distinct problem, not one per retry
            self._logged = message
            log.error("mqtt connection failed; retrying with back-off", broker=self.broker, error=message)
        else:
            log.debug("mqtt connection still failing", error=message)

    def lost(self, reason: str) -> None:
        """An established connection dropped (logged by the caller, with context)."""
        self.last_error = f"connection lost ({reason})"

    def connected(self) -> str | None:
        """A connection was accepted: the problem it recovered from, if any (and forget it)."""
        recovered, self._logged = self._logged, None
        return recovered


_WAITING = object()  # no CONNACK yet


class _ConnectEvents:
    """Forwards a transport's events: CONNACK kept here, PUBACKs and messages to the session."""

    def __init__(self, on_puback: Callable[[int, str | None], None], on_message: Callable[[str, bytes], None]) -> None:
        self.connack: object = _WAITING  # None: accepted; str: refused with that reason
        self._on_puback = on_puback
        self._on_message = on_message

    def on_connack(self, refused: str | None) -> None:
        self.connack = refused

    def on_puback(self, mid: int, refused: str | None) -> None:
        self._on_puback(mid, refused)

    def on_message(self, topic: str, payload: bytes) -> None:
        self._on_message(topic, payload)


class Connector:
    """Opens connections through ``factory``; a refused, failed or silent attempt is a :class:`FailureLog` entry."""

    def __init__(self, factory: TransportFactory, host: str, port: int, connect_timeout_s: float,
                 failures: FailureLog, now: Callable[[], float] = time.monotonic) -> None:
        self.factory = factory
        self.host, self.port = host, port
        self.connect_timeout_s = connect_timeout_s
        self.failures = failures
        self.now = now

    def open(self, on_puback: Callable[[int, str | None], None], on_message: Callable[[str, bytes], None],
             stopping: Callable[[], bool] = lambda: False) -> Transport | None:
        """Connect and wait for the broker's CONNACK: the live transport, or ``None`` (failure logged)."""
        events = _ConnectEvents(on_puback, on_message)
        transport = self.factory(events)
        try:
            transport.connect()
        except (OSError, ValueError) as err:
            transport.close()
            self.failures.fail(describe_error(err, self.host, self.port))
            return None
        deadline = self.now() + self.connect_timeout_s
        problem: str | None = None
        while events.connack is _WAITING:
            reason = transport.loop(LOOP_TURN_S)
            if events.connack is not _WAITING:
                break
            if reason is not None:
                problem = f"connection to {self.host}:{self.port} closed before CONNACK ({reason})"
                break
            if stopping():
                transport.close()
                return None
            if self.now() > deadline:
                problem = (f"no CONNACK from {self.host}:{self.port} within {self.connect_timeout_s:g} s "
                           "(broker stalled or half-open connection)")
                break
        if problem is None and isinstance(events.connack, str):
            problem = connack_hint(events.connack)
        if problem is not None:
            transport.close()
            self.failures.fail(problem)
            return None
        return transport


def run_with_backoff(session: Callable[[], bool], backoff: Backoff, stop: threading.Event, *,
                     now: Callable[[], float] = time.monotonic, wait: Callable[[float], object] | None = None,
                     stable_s: float = STABLE_SESSION_S) -> None:
    """Run ``session()`` again and again until ``stop`` is set, waiting ``backoff`` between runs.

    ``session()`` returns ``True`` when the broker accepted the connection. The
    back-off restarts only after a connection that held for ``stable_s``; one
    the broker drops at once keeps backing off. An exception in ``session``
    is logged and treated as a failed attempt: the thread never dies.
    """
    wait = wait or stop.wait
    while not stop.is_set():
        began = now()
        try:
            accepted = session()
        except Exception as err:
            log.exception("mqtt publisher error", error=str(err))
            accepted = False
        if stop.is_set():
            break
        if accepted and now() - began >= stable_s:
            backoff.reset()
        delay = backoff.next_delay()
        log.debug("mqtt reconnect scheduled", retry_in_s=round(delay, 2), attempt=backoff.attempt)
        wait(delay)
