"""The daemon on bad storage and after a crash, end to end: a real mosquitto, a real full tmpfs, the real CLI.

* the disk fills while the broker is down: every alert event arrives once the broker is back;
* the disk is full at start: the daemon scores and publishes;
* a garbage outbox file: the daemon starts, moves it aside, the run's alerts arrive;
* SIGKILL with an alert open: the next start ends it (``interrupted``) and re-publishes the state;
* start-up faults a restart cannot fix exit 78 with one line; an unexpected one exits 1 with one line.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import require_binary  # noqa: E402
from disk_helpers import SmallDisk  # noqa: E402
from mqtt_helpers import Mosquitto, Subscriber, free_port  # noqa: E402
from test_daemon import Notes, bundle_and_profile, separating_rule, synth_clips, write_clips  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEV = "rail-st"
ALERT = f"edge-monitor/{DEV}/alert"
STATE = f"edge-monitor/{DEV}/state"


@pytest.fixture(scope="module")
def clips(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The session's tiny bundle, a rule that separates normal from anomalous clips, and the clip files."""
    bundle_dir, seed, mid = bundle_and_profile(request)
    from edge_monitor.model.bundle import load_bundle
    from edge_monitor.model.scorer import Scorer

    scorer = Scorer(load_bundle(bundle_dir))
    folder = tmp_path_factory.mktemp("storage-clips")
    normals = write_clips(folder / "n", synth_clips(seed, mid, None, 4, salt=71), "n")
    anomalies = write_clips(folder / "a", synth_clips(seed, mid, "loose_belt", 3, salt=71), "a")
    rule = separating_rule(scorer, normals, anomalies)
    # Two alerts: each opens after 2 of 3 anomalous windows and closes after 3 normal ones.
    cycle = normals[:3] + anomalies + normals[:3]
    return {"dir": bundle_dir, "scorer": scorer, "rule": rule, "normals": normals, "anomalies": anomalies,
            "sequence": cycle * 2}


def config(tmp_path: Path, clips: dict[str, Any], state_dir: Path, port: int, **extra: Any) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({
        "device_id": DEV, "model": str(clips["dir"]), "state_dir": str(state_dir),
        "decision": {"k": 2, "n": 3, "clear_windows": 3, "cooldown_seconds": 0, **clips["rule"]},
        "mqtt": {"host": "127.0.0.1", "port": port, "discovery": False, "status_interval_s": 1,
                 "reconnect_min_s": 0.1, "reconnect_max_s": 0.5},
        **extra}))
    return path


def own_outbox(cfg: Path) -> list[str]:
    """``--outbox <state_dir>/outbox.sqlite``: the daemon's outbox and open-alert note, as under ``run``
    (a replay otherwise keeps its own in a temporary folder)."""
    return ["--outbox", str(Path(yaml.safe_load(cfg.read_text())["state_dir"]) / "outbox.sqlite")]


def simulate(cfg: Path, paths: list[Path], *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge_monitor", "simulate", "-c", str(cfg), "--fast",
                           "--log-format", "json", *own_outbox(cfg), *args, *map(str, paths)],
                          capture_output=True, text=True, cwd=REPO, timeout=timeout)


def echoed(stdout: str) -> list[tuple[str, str]]:
    """``(event_id, event)`` of the alert events ``simulate`` printed (what the daemon published)."""
    rows = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    return [(r["event_id"], r["event"]) for r in rows if r.get("topic") == "alert"]


def received(sub: Subscriber) -> list[tuple[str, str]]:
    return [(m.json()["event_id"], m.json()["event"]) for m in sub.on(ALERT)]


def log_events(stderr: str) -> list[dict[str, Any]]:
    out = []
    for line in stderr.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


class KeepRunning:
    """The daemon's publisher, except that ``stop()`` waits for the test (the broker comes back later)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def stop(self, timeout: float = 5.0) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_disk_fills_while_the_broker_is_down_and_every_alert_arrives_later(clips: dict, tmp_path: Path) -> None:
    """In process (the publisher must outlive the replay): the outbox's disk is a full tmpfs and the broker
    is stopped while the daemon scores two alerts; then the broker comes back and every event arrives."""
    from edge_monitor.audio.replay import ReplaySource
    from edge_monitor.config.loader import load_config
    from edge_monitor.model.model_info import model_info
    from edge_monitor.service import logs
    from edge_monitor.service.daemon import Daemon, EchoPublisher, make_publisher
    from edge_monitor.web.metrics import MetricsRenderer, parse
    from edge_monitor.web.server import status_json
    from edge_monitor.web.status_board import StatusBoard

    with SmallDisk(tmp_path / "disk", size_kb=512) as disk, \
            Mosquitto(tmp_path / "broker", require_binary("mosquitto")) as broker, \
            Subscriber(broker.port, f"edge-monitor/{DEV}/#") as sub:
        cfg = load_config(config(tmp_path, clips, disk.path / "state", broker.port))
        logs.configure("warning", "json", stream=io.StringIO())
        log = logs.get_logger("test")
        pub = make_publisher(cfg, model_info(clips["scorer"].bundle), log)
        pub.start()
        out = io.StringIO()
        daemon = Daemon(cfg, clips["scorer"], KeepRunning(EchoPublisher(pub, out)), log, notifier=Notes())
        board = StatusBoard(daemon)
        daemon.observers.append(board)
        sub.wait_for(lambda ms: any(m.topic.endswith("/availability") and m.text == "online" for m in ms))
        broker.stop()
        assert disk.fill() > 0
        source = ReplaySource(clips["sequence"], daemon.model_rate, daemon.windowing, log, fast=True)
        try:
            assert daemon.run(source) == 0
            events = echoed(out.getvalue())
            assert [e for _, e in events] == ["start", "end", "start", "end"]
            assert daemon.counters.scored == len(clips["sequence"])
            storage = pub.stats()["storage"]
            assert storage["mode"] == "memory" and "full" in storage["error"], storage
            durable = [line for line in out.getvalue().splitlines() if line.startswith("{")]  # alerts + sensor
            assert storage["memory_messages"] == len(durable)
            # The operator sees it: /api/status (storage, last_error), /metrics, and the MQTT status JSON.
            board.observe(daemon, "stop", None)
            doc = status_json(board.snapshot, None)
            assert doc["storage"]["mode"] == "memory" and doc["last_error"]
            assert "No space left" in doc["last_error"] or "full" in doc["last_error"]
            assert doc["evidence_errors"] == 2  # each alert start tried to save its window
            metrics = parse(MetricsRenderer(lambda: board.snapshot, process=False).render()[0].decode())
            assert metrics["edge_monitor_outbox_degraded"] == 1.0
            assert metrics["edge_monitor_outbox_memory_messages"] == len(durable)
            assert metrics["edge_monitor_evidence_errors_total"] == 2.0
            assert daemon.health()["storage"]["mode"] == "memory"  # what <base>/status carries

            broker.start()
            sub.wait_for(lambda ms: set(received(sub)) >= set(events), timeout=30,
                         what="every alert event after the broker came back")
            disk.free()
        finally:
            pub.stop(timeout=3)
    got = received(sub)
    assert set(got) == set(events) and len(events) == 4
    starts = [m.json() for m in sub.on(ALERT) if m.json()["event"] == "start"]
    assert all(s["evidence"] is None for s in starts)  # the disk had no room for the WAVs; the alerts still went


def test_disk_full_at_start_the_daemon_scores_and_publishes(clips: dict, tmp_path: Path) -> None:
    with SmallDisk(tmp_path / "disk", size_kb=256) as disk, \
            Mosquitto(tmp_path / "broker", require_binary("mosquitto")) as broker, \
            Subscriber(broker.port, f"edge-monitor/{DEV}/#", persistent=False) as sub:
        disk.fill()  # nothing of ours on it yet: the outbox cannot even be created
        cfg = config(tmp_path, clips, disk.path / "state", broker.port)
        res = simulate(cfg, clips["sequence"])
        assert res.returncode == 0, res.stderr[-3000:]
        events = echoed(res.stdout)
        assert [e for _, e in events] == ["start", "end", "start", "end"]
        sub.wait_for(lambda ms: set(received(sub)) >= set(events), what="the run's alert events")
        status = sub.wait_for(lambda ms: any(m.topic.endswith("/status") for m in ms))
    logged = log_events(res.stderr)
    assert any(e["event"].startswith("outbox storage unavailable") for e in logged), res.stderr[-2000:]
    stopped = next(e for e in logged if e["event"] == "stopped")
    assert stopped["scored"] == len(clips["sequence"])
    last_status = [m.json() for m in status if m.topic.endswith("/status")][-1]
    assert last_status["storage"]["mode"] == "memory" and last_status["last_error"]
    assert "Traceback" not in res.stderr


def test_garbage_outbox_is_moved_aside_and_the_runs_alerts_arrive(clips: dict, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "outbox.sqlite").write_bytes(os.urandom(50_000))
    with Mosquitto(tmp_path / "broker", require_binary("mosquitto")) as broker, \
            Subscriber(broker.port, f"edge-monitor/{DEV}/#", persistent=False) as sub:
        res = simulate(config(tmp_path, clips, state, broker.port), clips["sequence"])
        assert res.returncode == 0, res.stderr[-3000:]
        events = echoed(res.stdout)
        assert len(events) == 4
        sub.wait_for(lambda ms: set(received(sub)) >= set(events), what="the run's alert events")
    moved = [p.name for p in state.iterdir() if p.name.startswith("outbox.sqlite.damaged-")]
    assert len(moved) == 1, sorted(p.name for p in state.iterdir())
    assert any(e["event"].startswith("outbox database damaged") for e in log_events(res.stderr))
    import sqlite3

    with sqlite3.connect(state / "outbox.sqlite") as db:  # the new file is a working, drained outbox
        assert db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 0
    assert "Traceback" not in res.stderr


def test_sigkill_with_an_alert_open_the_next_start_ends_it_and_republishes_state(clips: dict,
                                                                                  tmp_path: Path) -> None:
    state = tmp_path / "state"
    with Mosquitto(tmp_path / "broker", require_binary("mosquitto")) as broker, \
            Subscriber(broker.port, f"edge-monitor/{DEV}/#") as sub:
        cfg = config(tmp_path, clips, state, broker.port)
        # Anomalous sound, looped: the alert opens and never closes until the process is killed.
        proc = subprocess.Popen([sys.executable, "-m", "edge_monitor", "simulate", "-c", str(cfg), "--fast",
                                 "--loop", "--log-format", "json", *own_outbox(cfg), *map(str, clips["anomalies"])],
                                cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            start = sub.wait_topic(ALERT, 1, timeout=60)[0].json()  # delivered: the broker has it
            sub.wait_for(lambda ms: any(m.topic == STATE and m.text == "anomaly" for m in ms))
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        assert start["event"] == "start"
        # The looped clips may close and reopen alerts before the kill: the one left open is the note's.
        open_id = json.loads((state / "open-alert.json").read_text())["event_id"]
        before = [m.json() for m in sub.on(ALERT)]
        assert any(e["event"] == "start" and e["event_id"] == open_id for e in before)
        assert not any(e["event"] == "end" and e["event_id"] == open_id for e in before)  # no end followed

        res = simulate(cfg, clips["normals"][:2])  # the next start, on normal sound
        assert res.returncode == 0, res.stderr[-3000:]
        ends = sub.wait_for(lambda ms: any(m.topic == ALERT and m.json()["event"] == "end"
                                           and m.json()["event_id"] == open_id for m in ms),
                            what="the interrupted alert's end")
        end = next(m.json() for m in ends if m.topic == ALERT and m.json()["event"] == "end"
                   and m.json()["event_id"] == open_id)
        sub.wait_for(lambda ms: [m.text for m in ms if m.topic == STATE][-1:] == ["normal"],
                     what="state normal re-published")
    open_start = next(e for e in before if e["event"] == "start" and e["event_id"] == open_id)
    assert end["interrupted"] is True
    assert end["opened_at"] == open_start["window_end"] and end["duration_s"] is None
    after = [m.json() for m in sub.on(ALERT)][len(before):]
    assert [e for e in after if e["event"] == "end" and e["event_id"] == open_id] == [end]
    # Anything else after the restart is a redelivery (QoS 1: at least once) of what the killed run sent.
    assert all(e in before for e in after if e is not end and e != end)
    assert not (state / "open-alert.json").exists()
    assert any(e["event"].startswith("alert end (interrupted)") for e in log_events(res.stderr))


@pytest.mark.parametrize("command", ["run", "simulate"])
def test_state_dir_that_can_never_work_exits_78_with_one_line(clips: dict, tmp_path: Path, command: str) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the state folder should be\n")
    cfg = config(tmp_path, clips, blocker, free_port())
    args = [str(clips["normals"][0])] if command == "simulate" else []
    res = subprocess.run([sys.executable, "-m", "edge_monitor", command, "-c", str(cfg), "--log-format", "json",
                          *args],
                         capture_output=True, text=True, cwd=REPO, timeout=120)
    assert res.returncode == 78, res.stderr
    # simulate logs to stderr (JSON lines here): the error is the one line that is not a log record.
    lines = [line for line in res.stderr.strip().splitlines() if not line.startswith("{")]
    assert len(lines) == 1 and "state_dir" in lines[0] and str(blocker) in lines[0], res.stderr


def test_an_unexpected_error_is_one_line_and_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A command that fails in a way nobody foresaw (here a real module raising a real error): exit 1,
    which systemd restarts, and one line instead of a traceback."""
    from edge_monitor.cli import build_parser, dispatch

    pkg = tmp_path / "fake_cmds"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "boom.py").write_text("HELP = 'fails'\n\ndef add_arguments(p):\n    pass\n\n"
                                 "def run(args):\n    return {}['missing']\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("EDGE_MONITOR_TRACEBACK", raising=False)
    parser = build_parser("edge-monitor", "fake_cmds", {"boom": "boom"}, "", "0")
    assert dispatch(parser, ["boom"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["edge-monitor boom: unexpected error: KeyError: 'missing' "
                   "(set EDGE_MONITOR_TRACEBACK=1 for the traceback)"]
