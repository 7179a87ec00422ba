"""The durable outbox: order, bound and drop policy, crash safety."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap

from structlog.testing import capture_logs

from edge_monitor.publish.outbox import Outbox
from tests.conftest import REPO


def test_fifo_order_survives_reopen_and_ids_are_never_reused(tmp_path):
    db = tmp_path / "state" / "outbox.db"
    box = Outbox(db, max_messages=100)
    ids = [box.put("alert", "t/alert", f"a{i}".encode()) for i in range(5)]
    assert ids == sorted(ids)
    box.delete(ids[-1])  # the highest id is gone: a new row must still get a larger one
    box.close()

    box = Outbox(db, max_messages=100)
    new_id = box.put("sensor", "t/sensor", b"s")
    assert new_id > ids[-1]
    msgs = box.after(0, 10)
    assert [m.payload for m in msgs] == [b"a0", b"a1", b"a2", b"a3", b"s"]
    assert [m.kind for m in msgs] == ["alert"] * 4 + ["sensor"]
    assert [m.id for m in box.after(ids[1], 2)] == ids[2:4]
    assert all(m.qos == 1 and m.retain is False for m in msgs)
    box.close()
    assert box.count() == 5  # still answers after close

    mode = sqlite3.connect(db).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_full_outbox_drops_oldest_scores_first_and_says_so(tmp_path):
    box = Outbox(tmp_path / "o.db", max_messages=10)
    box.put("alert", "a", b"alert-0")
    for i in range(8):
        box.put("score", "s", f"score-{i}".encode(), qos=0)
    box.put("alert", "a", b"alert-1")
    with capture_logs() as logs:
        box.put("alert", "a", b"alert-2")
        box.put("score", "s", b"score-new", qos=0)
    payloads = [m.payload for m in box.after(0, 100)]
    assert len(payloads) == 10
    assert payloads[0] == b"alert-0"
    assert b"score-0" not in payloads and b"score-1" not in payloads
    assert payloads[-3:] == [b"alert-1", b"alert-2", b"score-new"]
    assert box.dropped == {"score": 2, "durable": 0}
    assert any(e["log_level"] == "warning" and "score" in e["event"] for e in logs)


def test_alerts_are_dropped_only_at_the_bound_and_loudly(tmp_path):
    box = Outbox(tmp_path / "o.db", max_messages=10)
    for i in range(10):
        box.put("alert", "a", f"alert-{i}".encode())
    # A score cannot push out an alert: it is refused instead.
    assert box.put("score", "s", b"score", qos=0) == 0
    assert box.count() == 10 and box.count("score") == 0
    with capture_logs() as logs:
        box.put("sensor", "x", b"sensor-new")
    payloads = [m.payload for m in box.after(0, 100)]
    assert payloads[0] == b"alert-1" and payloads[-1] == b"sensor-new"
    assert box.dropped["durable"] == 1
    errors = [e for e in logs if e["log_level"] == "error"]
    assert len(errors) == 1 and "DROPPING" in errors[0]["event"]


def test_committed_messages_survive_sigkill(tmp_path):
    db = tmp_path / "o.db"
    child = textwrap.dedent(
        f"""
        import os, signal, sys
        sys.path.insert(0, {str(REPO)!r})
        from edge_monitor.publish.outbox import Outbox
        box = Outbox({str(db)!r})
        for i in range(3):
            box.put("alert", "t", b"alert-%d" % i)
        os.kill(os.getpid(), signal.SIGKILL)  # no close(), no atexit, no checkpoint
        """
    )
    proc = subprocess.run([sys.executable, "-c", child], capture_output=True, timeout=60)
    assert proc.returncode == -9, proc.stderr.decode()
    box = Outbox(db)
    assert [m.payload for m in box.after(0, 10)] == [b"alert-0", b"alert-1", b"alert-2"]
