"""MQTT publisher against a real mosquitto on 127.0.0.1.

Topics, retained flags, QoS and payloads as a real subscriber sees them;
alerts across a broker restart, a half-open broker and a SIGKILL; TLS with a
client certificate and password authentication; a wrong password; the
``mqtt:`` config validator.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from edge_monitor.config.mqtt import load_password
from edge_monitor.config.schema import ConfigError
from edge_monitor.publish.outbox import Outbox
from edge_monitor.publish.publisher import SCORE_BACKLOG, Publisher
from tests.conftest import REPO, require_binary
from tests.mqtt_helpers import Mosquitto, Subscriber, free_port, mqtt_config, publish_once

DEVICE = "rail-7"
BASE = f"edge-monitor/{DEVICE}"
MODEL = {"name": "slide_rail_ae", "sha256": "ab" * 32, "machine": "slider"}
FAST = {"reconnect_min_s": 0.1, "reconnect_max_s": 0.5, "connect_timeout_s": 2.0}


def mqtt_cfg(port: int, **over):
    raw = {"host": "127.0.0.1", "port": port, **FAST, **over}
    return mqtt_config(raw)


def alert(i: int, event: str = "start") -> dict:
    """An alert payload with every field the issue lists."""
    return {
        "event_id": f"evt-{i:03d}",
        "device_id": DEVICE,
        "machine": "slider",
        "event": event,
        "time": "2026-11-25T12:00:00.000Z",
        "window_start": "2026-11-25T11:59:50.000Z",
        "window_end": "2026-11-25T12:00:00.000Z",
        "score": 0.031 + i / 1000,
        "threshold": 0.02,
        "peak_score": 0.04,
        "model": {"name": MODEL["name"], "sha256": MODEL["sha256"]},
        "evidence": None,
    }


def sensor(i: int, event: str = "start", kind: str = "dead_input") -> dict:
    """A sensor event as the daemon sends it: ids and times set once, by the daemon."""
    return {"event": event, "kind": kind, "since": "2026-11-25T12:00:00.000Z", "at": "2026-11-25T12:00:00.000Z",
            "detail": "no signal", "windows": 1, "event_id": f"sensor-{i:03d}", "device_id": DEVICE,
            "time": "2026-11-25T12:00:00.100Z"}


def unique_in_order(msgs) -> list[tuple[str, str]]:
    """(event_id, event) of alert messages, de-duplicated (QoS 1 may re-send), first-seen order."""
    seen: list[tuple[str, str]] = []
    for m in msgs:
        d = m.json()
        key = (d["event_id"], d["event"])
        if key not in seen:
            seen.append(key)
    return seen


@pytest.fixture
def mosquitto(tmp_path):
    with Mosquitto(tmp_path, require_binary("mosquitto")) as broker:
        yield broker


@pytest.fixture
def publishers():
    made: list[Publisher] = []
    yield made
    for p in made:
        p.stop(timeout=1.0)


def start_publisher(made, cfg, outbox: Path, device=DEVICE) -> Publisher:
    pub = Publisher(cfg, device, outbox, MODEL)
    made.append(pub)
    pub.start()
    return pub


def wait_until(cond, what: str, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, f"timed out waiting until {what}"
        time.sleep(0.02)


def wait_connected(pub: Publisher, timeout: float = 10.0) -> None:
    wait_until(lambda: pub.stats()["connected"], f"the publisher connects ({pub.stats()})", timeout)


def wait_drained(pub: Publisher) -> None:
    """The subscriber can see a message before the publisher has processed its PUBACK."""
    wait_until(lambda: pub.stats()["outbox_depth"] == 0, "the outbox is empty (every PUBACK processed)")


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_topics_retain_qos_and_payloads(mosquitto, publishers, tmp_path, protocol):
    with Subscriber(mosquitto.port, f"{BASE}/#", persistent=False) as sub:
        pub = start_publisher(publishers, mqtt_cfg(mosquitto.port, protocol=protocol), tmp_path / "o.db")
        pub.set_state("normal")
        wait_connected(pub)
        pub.set_state("anomaly")
        pub.publish_alert(alert(1))
        pub.publish_sensor(sensor(1))
        pub.set_microphone("problem")
        pub.publish_score({"score": 0.01, "threshold": 0.02})
        pub.publish_status({"uptime_s": 12.5, "windows_scored": 3, "xruns": 0, "last_error": None})

        sub.wait_topic(f"{BASE}/status")
        sub.wait_topic(f"{BASE}/alert")
        sub.wait_topic(f"{BASE}/sensor")
        sub.wait_topic(f"{BASE}/score")
        sub.wait_for(lambda ms: any(m.topic == f"{BASE}/state" and m.text == "anomaly" for m in ms))

        (a,) = sub.on(f"{BASE}/alert")
        assert (a.qos, a.retain) == (1, False)
        assert a.json() == alert(1)
        (s,) = sub.on(f"{BASE}/sensor")
        assert (s.qos, s.retain) == (1, False)
        assert s.json() == sensor(1)  # exactly what the daemon sent: nothing re-stamped or added
        (sc,) = sub.on(f"{BASE}/score")
        assert (sc.qos, sc.retain) == (0, False) and sc.json()["score"] == 0.01
        avail = sub.on(f"{BASE}/availability")
        assert [(m.text, m.qos, m.retain) for m in avail] == [("online", 1, True)]
        states = sub.on(f"{BASE}/state")
        assert [(m.text, m.retain) for m in states][-1] == ("anomaly", True)
        assert all(m.qos == 1 and m.retain for m in states)
        sub.wait_for(lambda ms: any(m.topic == f"{BASE}/microphone" and m.text == "problem" for m in ms))
        status = sub.on(f"{BASE}/status")[-1]
        assert status.retain and status.json() == {"uptime_s": 12.5, "windows_scored": 3, "xruns": 0,
                                                   "last_error": None}

    # A late joiner sees the retained topics only: never an alert, a sensor event or a score.
    with Subscriber(mosquitto.port, f"{BASE}/#") as late:
        # The broker sends retained messages on SUBSCRIBE, before anything published later: once a
        # sentinel published now arrives, every retained message has.
        publish_once(mosquitto.port, f"{BASE}/sentinel", "x")
        late.wait_topic(f"{BASE}/sentinel")
        topics = {m.topic: m for m in late.messages if m.topic != f"{BASE}/sentinel"}
        assert set(topics) == {f"{BASE}/{t}" for t in ("availability", "state", "microphone", "status")}
        assert topics[f"{BASE}/availability"].text == "online"
        assert topics[f"{BASE}/state"].text == "anomaly"
        assert all(m.retain for m in topics.values())

        pub.stop(timeout=3.0)
        late.wait_for(lambda ms: ms[-1].topic == f"{BASE}/availability" and ms[-1].text == "offline",
                      what="offline on stop")
    assert pub.stats()["outbox_depth"] == 0


def test_alerts_raised_while_broker_down_arrive_once_in_order(mosquitto, publishers, tmp_path):
    cfg = mqtt_cfg(mosquitto.port, keepalive=5)
    with Subscriber(mosquitto.port, f"{BASE}/alert") as sub:
        pub = start_publisher(publishers, cfg, tmp_path / "o.db")
        wait_connected(pub)
        pub.publish_alert(alert(0, "start"))
        sub.wait_topic(f"{BASE}/alert", 1)

        mosquitto.stop()
        during = [(0, "end"), (1, "start"), (1, "end"), (2, "start"), (2, "end")]
        for i, event in during:
            pub.publish_alert(alert(i, event))
        assert pub.stats()["outbox_depth"] == 5
        # The publisher keeps retrying without a broker (and keeps the alerts meanwhile).
        wait_until(lambda: pub.stats()["connect_failures"] >= 2, "two failed reconnects")
        assert pub.stats()["outbox_depth"] == 5
        mosquitto.start()
        pub.publish_alert(alert(3))
        pub.publish_alert(alert(3, "end"))
        sub.wait_for(lambda ms: len(unique_in_order(ms)) >= 8, timeout=20, what="all 8 alert messages")

    expected = [("evt-000", "start")] + [(f"evt-{i:03d}", e) for i, e in during]
    expected += [("evt-003", "start"), ("evt-003", "end")]
    assert unique_in_order(sub.messages) == expected
    wait_drained(pub)


CHILD = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {repo!r})
    import structlog
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=sys.stderr))  # stdout: READY only
    from tests.mqtt_helpers import mqtt_config
    from edge_monitor.publish.publisher import Publisher
    cfg = mqtt_config({cfg!r})
    pub = Publisher(cfg, {device!r}, {outbox!r}, {{}})
    pub.start()
    {body}
    print("READY", flush=True)
    time.sleep(60)
    """
)


def run_child(tmp_path: Path, cfg: dict, outbox: Path, body: str) -> subprocess.Popen:
    script = CHILD.format(repo=str(REPO), cfg=cfg, device=DEVICE, outbox=str(outbox), body=body)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.strip() == "READY":
            return proc
    proc.wait(10)
    raise AssertionError(f"child failed: {''.join(lines)} {proc.stderr.read()}")


def test_alerts_in_outbox_survive_sigkill(mosquitto, publishers, tmp_path):
    outbox = tmp_path / "o.db"
    mosquitto.stop()  # the broker is down while the daemon raises its alerts
    raw = {"host": "127.0.0.1", "port": mosquitto.port, **FAST}
    body = "\n".join(f"pub.publish_alert({alert(i)!r})" for i in range(3))
    proc = run_child(tmp_path, raw, outbox, body)
    proc.kill()  # SIGKILL: no stop(), no flush
    proc.wait(10)
    assert proc.returncode == -9
    assert Outbox(outbox).count("alert") == 3

    mosquitto.start()
    with Subscriber(mosquitto.port, f"{BASE}/alert") as sub:
        start_publisher(publishers, mqtt_config(raw), outbox)
        sub.wait_for(lambda ms: len(unique_in_order(ms)) >= 3, what="the 3 alerts from the killed process")
        assert unique_in_order(sub.messages) == [(f"evt-{i:03d}", "start") for i in range(3)]
        assert sub.on(f"{BASE}/alert")[0].json() == alert(0)


def test_last_will_says_offline_when_the_process_dies(mosquitto, tmp_path):
    raw = {"host": "127.0.0.1", "port": mosquitto.port, **FAST}
    with Subscriber(mosquitto.port, f"{BASE}/availability") as sub:
        proc = run_child(tmp_path, raw, tmp_path / "o.db",
                         "while not pub.stats()['connected']: time.sleep(0.02)")
        sub.wait_for(lambda ms: any(m.text == "online" for m in ms), what="online")
        proc.kill()
        proc.wait(10)
        sub.wait_for(lambda ms: ms[-1].text == "offline", what="the Last Will 'offline'")


def test_half_open_broker_is_detected_and_recovered(mosquitto, publishers, tmp_path):
    # SIGSTOP keeps the TCP connection open but nothing answers: only the keepalive notices.
    cfg = mqtt_cfg(mosquitto.port, keepalive=1, connect_timeout_s=1.0)
    with Subscriber(mosquitto.port, f"{BASE}/alert") as sub:
        pub = start_publisher(publishers, cfg, tmp_path / "o.db")
        wait_connected(pub)
        mosquitto.pause()
        try:
            pub.publish_alert(alert(1))
            wait_until(lambda: not pub.stats()["connected"], "the silent broker is noticed (keepalive)")
        finally:
            mosquitto.resume()
        pub.publish_alert(alert(2))
        sub.wait_for(lambda ms: len(unique_in_order(ms)) >= 2, timeout=20, what="both alerts")
    assert unique_in_order(sub.messages) == [("evt-001", "start"), ("evt-002", "start")]
    assert pub.stats()["connects"] >= 2


def test_unreachable_broker_errors_are_one_clear_line_each(publishers, tmp_path):
    with capture_logs() as logs:
        refused = start_publisher(publishers, mqtt_cfg(free_port()), tmp_path / "a.db")
        unresolvable = start_publisher(publishers, mqtt_config({"host": "no-such-broker.invalid", **FAST}),
                                       tmp_path / "b.db", device="rail-8")
        refused.publish_alert(alert(1))
        wait_until(lambda: refused.stats()["connect_failures"] >= 3, "three refused attempts")
        wait_until(lambda: unresolvable.stats()["connect_failures"] >= 2, "two failed look-ups")
    errors = [e for e in logs if e["log_level"] == "error"]
    assert len(errors) == 2, errors
    assert any("connection refused" in e["error"] for e in errors)
    assert any("cannot resolve broker host 'no-such-broker.invalid'" in e["error"] for e in errors)
    assert refused.stats()["outbox_depth"] == 1  # kept for later


def make_certs(d: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate (openssl CLI)."""
    openssl = require_binary("openssl")
    d.mkdir()

    def run(*args):
        subprocess.run([openssl, *args], check=True, capture_output=True, cwd=d)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=edge-monitor-test-ca",
        "-keyout", "ca.key", "-out", "ca.crt")
    (d / "server.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name in ("server", "client"):
        run("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", f"{name}.key",
            "-out", f"{name}.csr")
        extra = ["-extfile", "server.ext"] if name == "server" else []
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-out", f"{name}.crt", *extra)
    return {n: d / n for n in ("ca.crt", "server.crt", "server.key", "client.crt", "client.key")}


def password_file(tmp_path: Path, user: str, password: str) -> Path:
    path = tmp_path / "mosquitto.passwd"
    subprocess.run([require_binary("mosquitto_passwd"), "-b", "-c", str(path), user, password], check=True,
                   capture_output=True)
    path.chmod(0o644)
    return path


def test_tls_with_client_certificate_and_password(tmp_path, publishers):
    binary = require_binary("mosquitto")
    certs = make_certs(tmp_path / "certs")
    passwd = password_file(tmp_path, "rail", "s3cret-pw")
    extra = [
        f"cafile {certs['ca.crt']}", f"certfile {certs['server.crt']}", f"keyfile {certs['server.key']}",
        "require_certificate true", f"password_file {passwd}",
    ]
    secret = tmp_path / "mqtt-password"
    secret.write_text("s3cret-pw\n")
    with Mosquitto(tmp_path, binary, extra=extra, anonymous=False) as broker:
        tls = {"ca_certs": str(certs["ca.crt"]), "certfile": str(certs["client.crt"]),
               "keyfile": str(certs["client.key"])}
        with Subscriber(broker.port, f"{BASE}/#", username="rail", password="s3cret-pw", tls=tls) as sub:
            cfg = mqtt_cfg(broker.port, username="rail", password_file=str(secret),
                           tls={"ca_file": str(certs["ca.crt"]), "cert_file": str(certs["client.crt"]),
                                "key_file": str(certs["client.key"])})
            with capture_logs() as logs:
                pub = start_publisher(publishers, cfg, tmp_path / "o.db")
                pub.publish_alert(alert(1))
                sub.wait_topic(f"{BASE}/alert")
        assert sub.on(f"{BASE}/alert")[0].json() == alert(1)
        assert not any("s3cret" in json.dumps(e, default=str) for e in logs)

        # Without the CA the broker's certificate is not trusted: one clear line, no crash.
        untrusted = mqtt_cfg(broker.port, username="rail", password_file=str(secret),
                             tls={"cert_file": str(certs["client.crt"]), "key_file": str(certs["client.key"])})
        with capture_logs() as logs:
            bad = start_publisher(publishers, untrusted, tmp_path / "bad.db", device="rail-9")
            wait_until(lambda: bad.stats()["connect_failures"] >= 2, "two failed TLS handshakes")
        errors = [e for e in logs if e["log_level"] == "error"]
        assert len(errors) == 1 and "not trusted" in errors[0]["error"], errors


def test_wrong_password_is_one_clear_error_and_retries(tmp_path, publishers, monkeypatch):
    passwd = password_file(tmp_path, "rail", "right-password")
    with Mosquitto(tmp_path, require_binary("mosquitto"), extra=[f"password_file {passwd}"],
                   anonymous=False) as broker:
        monkeypatch.setenv("EDGE_MONITOR_MQTT_PASSWORD", "wrong-password")
        cfg = mqtt_cfg(broker.port, username="rail", reconnect_max_s=0.3)
        with capture_logs() as logs:
            pub = start_publisher(publishers, cfg, tmp_path / "o.db")
            pub.publish_alert(alert(1))
            wait_until(lambda: pub.stats()["connect_failures"] >= 4, "four refused logins")
        stats = pub.stats()
        assert stats["connects"] == 0
        errors = [e for e in logs if e["log_level"] == "error"]
        assert len(errors) == 1, errors
        assert "refused the login" in errors[0]["error"] and "password_file" in errors[0]["error"]
        assert not any("wrong-password" in json.dumps(e, default=str) for e in logs)
        assert stats["outbox_depth"] == 1  # the alert waits for a working login


# ---------------------------------------------------------------- mqtt: config validation

def test_config_defaults_and_extras(tmp_path):
    cfg = mqtt_config(None)
    assert (cfg.host, cfg.port, cfg.qos, cfg.discovery, cfg.discovery_prefix) == ("localhost", 1883, 1, True,
                                                                                  "homeassistant")
    assert cfg.topic_base("rail-1") == "edge-monitor/rail-1"
    assert cfg.publish_scores and cfg.protocol == "3.1.1" and cfg.outbox_max_messages == 10000
    ca = tmp_path / "ca.crt"
    ca.write_text("x")
    cfg = mqtt_config({"tls": {"ca_file": str(ca)}, "protocol": 5, "base_topic": "plant/{device_id}/"})
    assert cfg.port == 8883 and cfg.protocol == "5" and cfg.tls.ca_file == ca
    assert cfg.topic_base("r") == "plant/r"


@pytest.mark.parametrize(
    ("raw", "path", "words"),
    [
        ({"port": "1883x"}, "mqtt.port", "integer"),
        ({"port": 70000}, "mqtt.port", "between"),
        ({"usename": "x"}, "mqtt.usename", "unknown key"),
        ({"password": "x"}, "mqtt.password", "password_file or $EDGE_MONITOR_MQTT_PASSWORD"),
        ({"tls": {"ca_file": "/nonexistent/ca.pem"}}, "mqtt.tls.ca_file", "file not found"),
        ({"tls": {"cafile": "x"}}, "mqtt.tls.cafile", "unknown key"),
        ({"protocol": "4"}, "mqtt.protocol", "3.1.1 or 5"),
        ({"discovery": "yes"}, "mqtt.discovery", "true or false"),
        ({"base_topic": "a/#"}, "mqtt.base_topic", "may not contain"),
        ({"keepalive": 0}, "mqtt.keepalive", "between"),
        ({"qos": 0}, "mqtt.qos", "between"),
        ([1, 2], "mqtt", "mapping"),
    ],
)
def test_config_errors_name_the_key(raw, path, words):
    with pytest.raises(ConfigError) as exc:
        mqtt_config(raw)
    assert exc.value.key == path
    assert words in exc.value.reason and f": {path}: {exc.value.reason}" in str(exc.value)


def test_password_from_file_or_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("EDGE_MONITOR_MQTT_PASSWORD", raising=False)
    assert load_password(mqtt_config({"username": "u"})) is None
    monkeypatch.setenv("EDGE_MONITOR_MQTT_PASSWORD", "from-env")
    assert load_password(mqtt_config({"username": "u"})) == "from-env"
    f = tmp_path / "pw"
    f.write_text("from-file\nignored\n")
    # The environment overrides the file (secrets can be replaced without editing the config).
    assert load_password(mqtt_config({"username": "u", "password_file": str(f)})) == "from-env"
    monkeypatch.delenv("EDGE_MONITOR_MQTT_PASSWORD")
    assert load_password(mqtt_config({"username": "u", "password_file": str(f)})) == "from-file"
    with pytest.raises(ConfigError, match="mqtt.password_file: given without mqtt.username"):
        mqtt_config({"password_file": str(f)})
    cfg = mqtt_config({"username": "u", "password_file": str(f)})
    assert "from-file" not in repr(cfg)


def test_demo_broker_and_printer_show_alerts_with_explanation(tmp_path, publishers):
    import io

    from devtools.broker import AlertPrinter, start_broker

    require_binary("mosquitto")
    out = io.StringIO()
    with start_broker(prefer="mosquitto", install=False) as broker, AlertPrinter(broker.host, broker.port,
                                                                                  out=out) as printer:
        assert broker.kind == "mosquitto"
        pub = start_publisher(publishers, mqtt_cfg(broker.port), tmp_path / "o.db")
        pub.publish_alert(alert(1) | {"explanation": {"kind": "tonal", "text": "A new tone near 3.1 kHz."}})
        pub.publish_sensor(sensor(1))
        wait_until(lambda: len(printer.received) >= 2, "the printer got both messages")
    lines = out.getvalue().splitlines()
    assert "ALERT START" in lines[0] and "score=0.032" in lines[0] and "threshold=0.02" in lines[0]
    assert lines[1] == "    -> A new tone near 3.1 kHz."
    assert "SENSOR START" in lines[2] and "kind=dead_input" in lines[2]


def test_microphone_is_what_the_daemon_says(mosquitto, publishers, tmp_path):
    mic = f"{BASE}/microphone"
    with Subscriber(mosquitto.port, mic, f"{BASE}/alert") as sub:
        pub = start_publisher(publishers, mqtt_cfg(mosquitto.port), tmp_path / "o.db")
        pub.publish_sensor(sensor(1, "start"))
        pub.publish_alert(alert(1))  # sentinel: queued after the sensor event, so it arrives after
        sub.wait_topic(f"{BASE}/alert")
        assert sub.on(mic) == []  # a sensor event alone sets nothing: the daemon's SensorMonitor decides
        pub.set_microphone("problem")
        sub.wait_for(lambda ms: [m.text for m in ms if m.topic == mic] == ["problem"], what="problem")
    with pytest.raises(ValueError, match="microphone state"):
        pub.set_microphone("broken")


def test_relative_secret_paths_resolve_against_the_config_folder(tmp_path):
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "pw").write_text("x\n")
    (tmp_path / "secrets" / "ca.crt").write_text("x")
    cfg = mqtt_config({"username": "u", "password_file": "secrets/pw", "tls": {"ca_file": "secrets/ca.crt"}},
                            base_dir=tmp_path)
    assert cfg.password_file == tmp_path / "secrets" / "pw" and cfg.tls.ca_file == tmp_path / "secrets" / "ca.crt"


def outbox_rows_ever(path: Path) -> int:
    """Rows ever inserted into the outbox file (AUTOINCREMENT's high-water mark survives deletes)."""
    import sqlite3

    with sqlite3.connect(path) as db:
        row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
    return int(row[0]) if row else 0


def test_scores_while_broker_down_never_touch_the_disk_and_only_the_latest_are_sent(tmp_path, publishers):
    # queue_qos0_messages: the subscriber's persistent session keeps QoS 0 messages across the restart.
    outbox = tmp_path / "o.db"
    with Mosquitto(tmp_path, require_binary("mosquitto"), extra=["queue_qos0_messages true"]) as broker, \
            Subscriber(broker.port, f"{BASE}/score") as sub:
        broker.stop()
        pub = start_publisher(publishers, mqtt_cfg(broker.port), outbox)
        for i in range(12):  # 12 windows, two minutes of monitoring, while the broker is away
            pub.publish_score({"score": i / 100, "window": i})
        assert pub.stats()["outbox_depth"] == 0
        assert outbox_rows_ever(outbox) == 0  # not even a row written and deleted again
        broker.start()
        msgs = sub.wait_topic(f"{BASE}/score", SCORE_BACKLOG)
        pub.publish_score({"score": 0.5, "window": 12})  # a live score after the backlog: the sentinel
        msgs = sub.wait_for(lambda ms: ms[-1].json()["window"] == 12, what="the live score")
    windows = [m.json()["window"] for m in msgs]
    assert windows == list(range(12 - SCORE_BACKLOG, 13))  # the latest few, in order; no stale flood
    assert all(m.qos == 0 for m in msgs)
    assert outbox_rows_ever(outbox) == 0
