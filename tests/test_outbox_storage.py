"""The outbox degrades instead of dying: damaged files moved aside and salvaged, a full disk served from memory.

Real SQLite files throughout; the full disk is a real small tmpfs (tests/disk_helpers.py).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from edge_monitor.publish.outbox import Outbox, OutboxError, OutboxMessage
from edge_monitor.publish.outbox_repair import salvage
from edge_monitor.publish.storage import MemoryQueue, MessageStore
from tests.disk_helpers import SmallDisk


class Clock:
    """A monotonic clock the test moves by hand (the store's retry schedule)."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def good_outbox(path: Path, n: int, payload_bytes: int = 40) -> list[bytes]:
    """A real outbox with ``n`` alert rows; returns their payloads in order."""
    box = Outbox(path)
    payloads = [f"alert-{i:05d}-".encode() + b"x" * payload_bytes for i in range(n)]
    box.put_many([OutboxMessage(0, "alert", "dev/alert", p, 1, False, 0.0) for p in payloads])  # one fsync
    box.close()
    return payloads


def moved_files(folder: Path, name: str) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.name.startswith(name + ".damaged-") and
                  not p.name.endswith(("-wal", "-shm")))


def damage_garbage(path: Path) -> None:
    path.write_bytes(os.urandom(20_000))


def damage_truncated(path: Path) -> None:
    good_outbox(path, 400, 400)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def damage_zeroed_header(path: Path) -> None:
    good_outbox(path, 50)
    data = path.read_bytes()
    path.write_bytes(b"\0" * 100 + data[100:])


def damage_folder(path: Path) -> None:
    path.mkdir()
    (path / "something").write_text("not a database")


def damage_foreign_schema(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE outbox (id INTEGER PRIMARY KEY, body TEXT)")
        db.execute("INSERT INTO outbox(body) VALUES ('hello')")


@pytest.mark.parametrize("damage", [damage_garbage, damage_truncated, damage_zeroed_header, damage_folder,
                                    damage_foreign_schema], ids=lambda f: f.__name__[7:])
def test_a_damaged_file_is_moved_aside_and_a_new_outbox_started(tmp_path: Path, damage) -> None:
    path = tmp_path / "state" / "outbox.sqlite"
    path.parent.mkdir()
    damage(path)
    with pytest.raises(OutboxError) as info:
        Outbox(path).close()
    assert info.value.damaged, str(info.value)

    with capture_logs() as logs:
        store = MessageStore(path)
    moved = moved_files(path.parent, path.name)
    assert len(moved) == 1, sorted(p.name for p in path.parent.iterdir())
    assert moved[0].name.startswith("outbox.sqlite.damaged-20") and moved[0].name.endswith("Z")
    assert store.report()["mode"] == "disk" and store.report()["moved_aside"] == [str(moved[0])]
    assert any(e["event"].startswith("outbox database damaged") and e["log_level"] == "error" for e in logs)
    # The new file works: a message goes to disk, comes back, is deleted.
    before = {m.id for m in store.after(0, 100_000)}
    mid = store.put("alert", "dev/alert", b"new")
    assert mid not in before and [m.payload for m in store.after(0, 100_000) if m.id == mid] == [b"new"]
    store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT payload FROM outbox WHERE id = ?", (mid,)).fetchone()[0] == b"new"
    if damage is damage_truncated:  # the rows before the cut are rescued (about half of 400)
        assert 100 < store.report()["salvaged"] < 400 and len(before) == store.report()["salvaged"]
    elif damage in (damage_garbage, damage_zeroed_header, damage_folder, damage_foreign_schema):
        assert store.report()["salvaged"] == 0 and not before


def test_corrupted_pages_rows_on_both_sides_are_salvaged(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    payloads = good_outbox(path, 2000, 400)
    page = sqlite3.connect(path).execute("PRAGMA page_size").fetchone()[0]
    data = bytearray(path.read_bytes())
    n_pages = len(data) // page
    bad = range(n_pages // 2 - 5, n_pages // 2 + 5)  # ten leaf pages in the middle
    for p in bad:
        data[p * page:(p + 1) * page] = b"\xab" * page
    path.write_bytes(bytes(data))

    rows = salvage(path)
    got = [m.payload for m in rows]
    assert got == sorted(got)  # id order
    assert set(got) <= set(payloads)
    assert payloads[0] in got and payloads[-1] in got  # both sides of the damaged region
    lost = len(payloads) - len(got)
    # Each 4 kB page holds ~9 rows of 440 bytes: ten bad leaves lose some 90 rows, not the file.
    assert 0 < lost < 200, lost

    store = MessageStore(path)
    assert store.report()["salvaged"] == len(got)
    assert [m.payload for m in store.after(0, 100_000)] == got  # in the new file, in order
    assert store.report()["mode"] == "disk"
    store.close()
    assert Outbox(path).count("alert") == len(got)


def test_damage_found_at_write_time_is_repaired_without_losing_the_alert(tmp_path: Path) -> None:
    """Pages corrupted while the store is open: the next write reports "malformed", the store repairs."""
    path = tmp_path / "outbox.sqlite"
    store = MessageStore(path)
    ids = [store.put("alert", "dev/alert", b"y" * 3000) for _ in range(30)]
    with sqlite3.connect(path) as db:  # everything into the main file first, where the damage goes
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page = 4096
    with open(path, "r+b") as fh:  # what a worn card does under a running daemon: pages 2-9 garbled
        fh.seek(1 * page)
        fh.write(b"\xab" * (8 * page))
    with sqlite3.connect(path) as db:  # another writer touches page 1 only: the store's page cache goes stale
        db.execute("PRAGMA user_version = 7")
    new = store.put("alert", "dev/alert", b"after the damage")
    got = store.after(0, 1000)
    assert got[-1].id == new and got[-1].payload == b"after the damage"
    assert all(m.id in ids for m in got[:-1])
    report = store.report()
    assert report["mode"] == "disk" and len(report["moved_aside"]) == 1, report
    assert report["salvaged"] == len(got) - 1
    store.close()


def test_memory_queue_bound_drops_sensor_messages_before_any_alert() -> None:
    q = MemoryQueue(max_messages=4)

    def m(i: int, kind: str) -> OutboxMessage:
        return OutboxMessage(i, kind, "t/" + kind, f"{kind}{i}".encode(), 1, False, 0.0)

    for i, kind in enumerate(["alert", "sensor", "alert", "sensor"], start=1):
        assert q.add(m(i, kind)) is None
    assert q.add(m(5, "alert")).id == 2  # the oldest sensor message makes room
    assert q.add(m(6, "sensor")).id == 4  # then the next sensor message
    assert q.add(m(7, "sensor")).id == 6  # a new sensor message never pushes an alert out
    assert [x.id for x in q.all()] == [1, 3, 5, 7]
    assert q.add(m(8, "alert")).id == 7
    assert q.add(m(9, "alert")).id == 1  # only alerts left: the oldest alert goes
    assert [x.kind for x in q.all()] == ["alert"] * 4
    assert q.dropped == {"sensor": 4, "alert": 1}


def test_full_disk_keeps_alerts_in_memory_and_writes_them_when_space_returns(tmp_path: Path) -> None:
    clock = Clock()
    with SmallDisk(tmp_path / "disk", size_kb=256) as disk:
        path = disk.path / "outbox.sqlite"
        store = MessageStore(path, retry_min_s=5, retry_max_s=40, now=clock)
        first = store.put("alert", "dev/alert", b"before")
        disk.fill()
        with capture_logs() as logs:
            ids = [store.put("alert", "dev/alert", f"full-{i}".encode() + b"z" * 2000) for i in range(20)]
        report = store.report()
        assert report["mode"] == "memory" and "full" in report["error"], report
        assert report["memory_messages"] >= 1 and report["retry_in_s"] == 5.0
        errors = [e for e in logs if e["log_level"] == "error"]
        assert len(errors) == 1 and errors[0]["event"].startswith("outbox storage unavailable")  # once, not 20x
        assert [m.id for m in store.after(0, 100)] == [first, *ids]  # nothing lost, in order
        assert store.count() == 21

        clock.t += 6  # due, but the disk is still full: the next retry waits twice as long
        store.count()
        assert store.report()["mode"] == "memory" and store.report()["retry_in_s"] == 10.0

        disk.free()
        store.delete(ids[0])  # acknowledged while degraded: memory forgets it at once
        clock.t += 11
        assert store.count() == 20  # the retry ran: everything is on disk now
        report = store.report()
        assert report["mode"] == "disk" and report["memory_messages"] == 0 and report["recoveries"] == 1
        store.close()
        with sqlite3.connect(path) as db:
            on_disk = [r[0] for r in db.execute("SELECT id FROM outbox ORDER BY id")]
        assert on_disk == [first, *ids[1:]]


def test_disk_unusable_at_start_then_the_old_rows_come_first(tmp_path: Path) -> None:
    """A full disk at start (the old outbox cannot even be opened): memory ids collide with the old file's,
    so they are renumbered after it (generation + 1), the old rows come first and nothing is overwritten."""
    clock = Clock()
    with SmallDisk(tmp_path / "disk", size_kb=256) as disk:
        path = disk.path / "outbox.sqlite"
        old = good_outbox(path, 3)
        for companion in ("-wal", "-shm"):
            Path(str(path) + companion).unlink(missing_ok=True)
        disk.fill()
        store = MessageStore(path, retry_min_s=5, now=clock)
        assert store.report()["mode"] == "memory"
        new = [store.put("alert", "dev/alert", f"new-{i}".encode()) for i in range(2)]
        assert new == [1, 2] and store.generation == 0
        disk.free()
        clock.t += 6
        store.count()
        assert store.report()["mode"] == "disk" and store.generation == 1
        got = store.after(0, 10)
        assert [m.payload for m in got] == [*old, b"new-0", b"new-1"]
        assert [m.id for m in got] == [1, 2, 3, 4, 5]
        store.delete(1, generation=0)  # an acknowledgement of the old numbering deletes nothing
        assert store.count() == 5
        store.close()


def test_delivery_follows_a_renumbering_and_loses_nothing(tmp_path: Path) -> None:
    """Messages sent from memory are in flight when the disk comes back holding older rows with the same
    ids: the delivery starts again from the oldest, late acks of the old numbers delete nothing, and every
    message is delivered (some twice, which subscribers de-duplicate)."""
    from edge_monitor.publish.delivery import Delivery
    from tests.test_mqtt_logic import FakeClock, FakeTransport

    clock = Clock()
    with SmallDisk(tmp_path / "disk", size_kb=256) as disk:
        path = disk.path / "outbox.sqlite"
        old = good_outbox(path, 2)
        for companion in ("-wal", "-shm"):
            Path(str(path) + companion).unlink(missing_ok=True)
        disk.fill()
        store = MessageStore(path, retry_min_s=5, now=clock)
        new = [store.put("alert", "dev/alert", f"new-{i}".encode()) for i in range(2)]
        delivery = Delivery(store)
        t = FakeTransport(delivery, FakeClock(), auto_ack=False)  # type: ignore[arg-type]
        delivery.begin(t)
        assert delivery.pump() == 2 and [p[1] for p in t.published] == [b"new-0", b"new-1"]
        first_mids = [p[4] for p in t.published]

        disk.free()
        clock.t += 6
        store.count()  # the retry: old rows 1-2 on disk, the queued ones renumbered to 3-4
        assert store.generation == 1
        for mid in first_mids:  # acks of the old numbers (1, 2) arrive now: they must not delete old rows
            delivery.on_puback(mid)
        delivery.flush_acks()
        assert store.count() == 4
        assert delivery.pump() == 4
        assert [p[1] for p in t.published[2:]] == [*old, b"new-0", b"new-1"]
        for mid in [p[4] for p in t.published[2:]]:
            delivery.on_puback(mid)
        assert delivery.flush_acks() == 4 and store.count() == 0 and delivery.idle()
        assert new == [1, 2]
        store.close()
