"""The publisher's logic without a broker and without sleeping: back-off, CONNACK timeout, PUBACK
bookkeeping, outbox draining, Home Assistant's birth message.

A scripted :class:`FakeTransport` stands where paho stands (the
``edge_monitor.publish.transport.Transport`` seam) and a :class:`FakeClock`
advances by exactly what the code waits, so every test is deterministic and
takes milliseconds. The same code against a real mosquitto: tests/test_publisher.py.
"""

from __future__ import annotations

import random
import threading
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from edge_monitor.publish.connection import Connector, FailureLog, run_with_backoff
from edge_monitor.publish.delivery import Delivery
from edge_monitor.publish.discovery import Topics
from edge_monitor.publish.outbox import Outbox
from edge_monitor.publish.publisher import Publisher
from edge_monitor.publish.retained import RetainedValues, ScoreBacklog
from edge_monitor.publish.transport import TransportEvents
from edge_monitor.util.backoff import Backoff, backoff_delay
from tests.mqtt_helpers import mqtt_config


class FakeClock:
    """Monotonic seconds that move only when the code under test waits."""

    def __init__(self) -> None:
        self.t = 1000.0
        self.waits: list[float] = []

    def now(self) -> float:
        return self.t

    def wait(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.t += seconds


class FakeTransport:
    """A scripted MQTT connection: records what is published; acks like a broker unless told otherwise.

    ``connack``: ``None`` accepts, a string refuses, ``...`` never answers. ``lose_after``: the
    connection drops on that loop turn. QoS 0 is acknowledged *inside* ``publish()``, as paho does;
    QoS 1 on the next loop turn when ``auto_ack``.
    """

    def __init__(self, events: TransportEvents, clock: FakeClock, *, connack: object = None,
                 connect_error: BaseException | None = None, auto_ack: bool = True,
                 lose_after: int | None = None, inbox: list[tuple[str, bytes]] | None = None) -> None:
        self.events, self.clock = events, clock
        self.connack, self.connect_error, self.auto_ack = connack, connect_error, auto_ack
        self.lose_after, self.inbox = lose_after, list(inbox or [])
        self.published: list[tuple[str, bytes, int, bool, int]] = []
        self.subscribed: list[str] = []
        self.unacked: list[int] = []
        self.turns = 0
        self.gone = False
        self.closed = False
        self._mid = 0

    def connect(self) -> None:
        if self.connect_error is not None:
            raise self.connect_error

    def loop(self, timeout_s: float) -> str | None:
        self.clock.t += timeout_s
        self.turns += 1
        if self.turns == 1 and self.connack is not ...:
            self.events.on_connack(self.connack)  # type: ignore[arg-type]
            return None
        if self.lose_after is not None and self.turns >= self.lose_after:
            self.gone = True
            return "the connection was lost"
        if self.inbox:
            self.events.on_message(*self.inbox.pop(0))
        if self.auto_ack:
            while self.unacked:
                self.events.on_puback(self.unacked.pop(0), None)
        return None

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> int | None:
        if self.gone:
            return None
        self._mid += 1
        self.published.append((topic, payload, qos, retain, self._mid))
        if qos == 0:
            self.events.on_puback(self._mid, None)  # before publish() returns, like paho
        else:
            self.unacked.append(self._mid)
        return self._mid

    def subscribe(self, topic: str, qos: int) -> None:
        self.subscribed.append(topic)

    def disconnect(self) -> None:
        self.gone = True

    def close(self) -> None:
        self.closed = True

    def topics(self) -> list[str]:
        return [p[0] for p in self.published]


# --- back-off ------------------------------------------------------------------------------------

def test_backoff_doubles_to_the_cap_with_equal_jitter():
    rng = random.Random(1)
    for attempt in range(10):
        cap = min(60.0, 2.0 ** attempt)
        assert cap / 2 <= backoff_delay(attempt, 1.0, 60.0, rng) <= cap
    assert len({round(backoff_delay(3, 1.0, 60.0, rng), 6) for _ in range(20)}) > 10  # jitter spreads a fleet
    plain = Backoff(1.0, 30.0, jitter=False)  # capture's schedule
    assert [plain.next_delay() for _ in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    plain.reset()
    assert plain.upcoming_cap() == plain.next_delay() == 1


def test_reconnect_backs_off_and_resets_only_after_a_stable_connection():
    clock, stop = FakeClock(), threading.Event()
    # Four refusals, one connection that holds 12 s, one the broker drops at once, two refusals.
    script = [(False, 0), (False, 0), (False, 0), (False, 0), (True, 12.0), (True, 0.0), (False, 0), (False, 0)]

    def session() -> bool:
        accepted, lasted = script.pop(0)
        clock.t += lasted
        if not script:
            stop.set()
        return accepted

    run_with_backoff(session, Backoff(1.0, 60.0, jitter=False), stop, now=clock.now, wait=clock.wait)
    # 1, 2, 4, 8; reset by the stable connection: 1; the dropped one does not reset: 2, 4.
    assert clock.waits == [1, 2, 4, 8, 1, 2, 4]


def test_an_exception_in_a_session_is_logged_and_retried():
    clock, stop = FakeClock(), threading.Event()
    calls = []

    def session() -> bool:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("boom")
        stop.set()
        return False

    with capture_logs() as logs:
        run_with_backoff(session, Backoff(1.0, 60.0, jitter=False), stop, now=clock.now, wait=clock.wait)
    assert len(calls) == 2 and clock.waits == [1]
    assert any(e["event"] == "mqtt publisher error" and e["error"] == "boom" for e in logs)


# --- connecting ----------------------------------------------------------------------------------

def connector(clock: FakeClock, **fake) -> tuple[Connector, list[FakeTransport]]:
    made: list[FakeTransport] = []

    def factory(events: TransportEvents) -> FakeTransport:
        made.append(FakeTransport(events, clock, **fake))
        return made[-1]

    return Connector(factory, "broker.test", 1883, 2.0, FailureLog("broker.test:1883"), now=clock.now), made


def test_connect_errors_are_one_clear_line_per_distinct_problem():
    clock = FakeClock()
    refused, made = connector(clock, connect_error=ConnectionRefusedError(111, "Connection refused"))
    with capture_logs() as logs:
        for _ in range(5):
            assert refused.open(lambda *a: None, lambda *a: None) is None
    assert refused.failures.failures == 5 and all(t.closed for t in made)
    errors = [e for e in logs if e["log_level"] == "error"]
    assert len(errors) == 1 and "connection refused by broker.test:1883" in errors[0]["error"]
    assert refused.failures.connected() == errors[0]["error"]  # "recovered_from" on the next success


@pytest.mark.parametrize(("fake", "words"), [
    ({"connack": ...}, "no CONNACK from broker.test:1883 within 2 s"),
    ({"connack": "Not authorized"}, "broker refused the login: Not authorized (check mqtt.username"),
    ({"connack": "Client identifier not valid"}, "refused the client id"),
    ({"connack": ..., "lose_after": 3}, "closed before CONNACK (the connection was lost)"),
])
def test_a_connection_the_broker_does_not_accept_fails_clearly(fake, words):
    clock = FakeClock()
    conn, made = connector(clock, **fake)
    start = clock.t
    assert conn.open(lambda *a: None, lambda *a: None) is None
    assert words in (conn.failures.last_error or "")
    assert made[0].closed
    assert clock.t - start <= 2.0 + 0.2  # the CONNACK wait is bounded by connect_timeout_s


def test_an_accepted_connection_is_handed_over_open():
    clock = FakeClock()
    conn, made = connector(clock)
    assert conn.open(lambda *a: None, lambda *a: None) is made[0] and not made[0].closed
    assert conn.failures.failures == 0


# --- delivery ------------------------------------------------------------------------------------

@pytest.fixture
def outbox(tmp_path: Path):
    box = Outbox(tmp_path / "o.db")
    yield box
    box.close()


def fill(outbox: Outbox, n: int) -> None:
    for i in range(n):
        outbox.put("alert", "base/alert", f"a{i}".encode(), qos=1)


def test_outbox_drains_in_order_within_the_window_and_deletes_only_acknowledged(outbox):
    fill(outbox, 25)
    delivery = Delivery(outbox, max_inflight=20)
    t = FakeTransport(delivery, FakeClock(), auto_ack=False)  # type: ignore[arg-type]
    delivery.begin(t)
    assert delivery.pump() == 20 and delivery.pump() == 0  # the window is full
    assert [p[1] for p in t.published] == [f"a{i}".encode() for i in range(20)]
    for mid in [p[4] for p in t.published[:5]]:
        delivery.on_puback(mid)
    assert outbox.count() == 25  # acknowledged, not yet deleted: one transaction per batch
    assert delivery.flush_acks() == 5 and outbox.count() == 20
    assert delivery.pump() == 5 and [p[1] for p in t.published[20:]] == [f"a{i}".encode() for i in range(20, 25)]
    assert delivery.in_flight() == 20 and not delivery.idle()


def test_refused_and_unacknowledged_messages_are_sent_again_on_the_next_connection(outbox):
    fill(outbox, 3)
    delivery = Delivery(outbox)
    first = FakeTransport(delivery, FakeClock(), auto_ack=False)  # type: ignore[arg-type]
    delivery.begin(first)
    delivery.pump()
    mids = [p[4] for p in first.published]
    with capture_logs() as logs:
        delivery.on_puback(mids[0], "Not authorized")  # MQTT 5: acknowledged but refused (an ACL)
    delivery.on_puback(mids[2])
    first.gone = True
    delivery.end()
    assert any("rejected an outbox message" in e["event"] for e in logs)
    assert outbox.count() == 2  # a0 (refused) and a1 (no PUBACK) stay
    second = FakeTransport(delivery, FakeClock(), auto_ack=False)  # type: ignore[arg-type]
    delivery.begin(second)
    delivery.pump()
    assert [p[1] for p in second.published] == [b"a0", b"a1"]  # from the oldest, in order


def test_an_ack_that_arrives_inside_publish_is_not_lost(outbox):
    # paho reports QoS 0 as published before publish() returns its mid; the outbox must still let go.
    outbox.put("alert", "base/alert", b"q0", qos=0)
    delivery = Delivery(outbox)
    delivery.begin(FakeTransport(delivery, FakeClock()))  # type: ignore[arg-type]
    assert delivery.pump() == 1
    assert delivery.flush_acks() == 1 and outbox.count() == 0 and delivery.idle()


def test_a_lost_connection_stops_the_drain_and_keeps_the_messages(outbox):
    fill(outbox, 3)
    delivery = Delivery(outbox)
    t = FakeTransport(delivery, FakeClock())  # type: ignore[arg-type]
    delivery.begin(t)
    t.gone = True
    assert delivery.pump() == 0 and delivery.send("base/state", b"normal", 1, True) is None
    assert outbox.count() == 3


# --- latest values -------------------------------------------------------------------------------

def test_retained_values_are_sent_on_change_and_again_on_a_new_connection():
    values = RetainedValues(Topics("base"))
    assert values.set("microphone", b"ok") and not values.set("microphone", b"ok")
    values.set("state", b"normal")
    assert [(m.topic, m.payload) for m in values.take_due()] == [("base/state", b"normal"),
                                                                 ("base/microphone", b"ok")]
    assert values.take_due() == []
    values.resend()  # a new connection: everything set goes again, nothing unset
    assert [m.topic for m in values.take_due()] == ["base/state", "base/microphone"]


def test_score_backlog_keeps_only_the_latest_few():
    backlog = ScoreBacklog(size=3)
    for i in range(10):
        backlog.append(str(i).encode())
    assert [backlog.pop() for _ in range(4)] == [b"7", b"8", b"9", None]
    assert backlog.dropped == 7


# --- the publisher over a fake transport -----------------------------------------------------------

def test_home_assistant_online_resends_discovery_and_offline_does_not(tmp_path):
    clock, made = FakeClock(), []
    inbox = [("homeassistant/status", b"offline"), ("homeassistant/status", b"online")]

    def factory(events: TransportEvents) -> FakeTransport:
        made.append(FakeTransport(events, clock, inbox=inbox, lose_after=6))
        return made[-1]

    cfg = mqtt_config({"host": "broker.test"})
    pub = Publisher(cfg, "rail-7", tmp_path / "o.db", {"name": "ae"}, transport_factory=factory, now=clock.now)
    pub.set_state("normal")
    pub.publish_alert({"event_id": "e1", "event": "start"})
    assert pub._session() is True
    t = made[0]
    configs = [topic for topic in t.topics() if topic.endswith("/config")]
    assert len(configs) == 6  # at connect, and once more for "online" only
    assert t.subscribed == ["homeassistant/status"]
    assert t.topics()[:4] == [*configs[:3], "edge-monitor/rail-7/availability"]  # configs before "online"
    assert t.topics().count("edge-monitor/rail-7/state") == 2  # after connect, and with the re-announcement
    stats = pub.stats()
    assert stats["discovery_sent"] == 2 and stats["outbox_depth"] == 0 and stats["outbox_acked"] == 1
    assert stats["connected"] is False and "lost" in stats["last_error"]
    pub.stop(timeout=0)


def test_publisher_sends_payloads_as_given_and_requires_the_daemon_s_event_id(tmp_path):
    cfg = mqtt_config({"host": "broker.test"})
    clock = FakeClock()
    made: list[FakeTransport] = []
    pub = Publisher(cfg, "rail-7", tmp_path / "o.db", transport_factory=lambda ev: made.append(
        FakeTransport(ev, clock, lose_after=3)) or made[-1], now=clock.now)
    with pytest.raises(ValueError, match="event_id"):
        pub.publish_alert({"event": "start"})
    assert pub.publish_sensor({"event_id": "s1", "kind": "clipping"}) == "s1"
    pub.publish_status({"uptime_s": 1.0})
    pub._session()
    sent = {p[0]: p[1] for p in made[0].published}
    assert sent["edge-monitor/rail-7/sensor"] == b'{"event_id":"s1","kind":"clipping"}'
    assert sent["edge-monitor/rail-7/status"] == b'{"uptime_s":1.0}'
    assert "edge-monitor/rail-7/microphone" not in sent  # never derived from sensor events
    pub.stop(timeout=0)
