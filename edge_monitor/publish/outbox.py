"""The durable outbox: MQTT messages that must survive a broker outage or a crash.

A SQLite database in the state directory (WAL mode, ``synchronous=FULL``).
Every alert and sensor event is committed here *before* it is handed to the
MQTT client and deleted only after the broker acknowledged it (PUBACK), so a
SIGKILL, a power cut after the commit, or a broker that is down for hours
loses nothing. Messages are drained in insertion order (``id`` is
AUTOINCREMENT, never reused).

The outbox is bounded (``max_messages``). When it is full the oldest
``score`` messages are dropped first; alerts and sensor events are dropped
only when the outbox holds nothing else, and each such drop is logged as an
error. All methods are thread-safe.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import structlog

log = structlog.get_logger("edge_monitor.publish.outbox")

#: Kinds whose loss is a missed failure: dropped only as a last resort.
DURABLE_KINDS = ("alert", "sensor")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    kind     TEXT    NOT NULL,
    topic    TEXT    NOT NULL,
    payload  BLOB    NOT NULL,
    qos      INTEGER NOT NULL,
    retain   INTEGER NOT NULL,
    created  REAL    NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_kind ON outbox(kind, id);
"""


class OutboxError(Exception):
    """The outbox database cannot be opened or written: message names the file."""


@dataclass(frozen=True)
class OutboxMessage:
    """One queued message. ``created`` is Unix time in seconds."""

    id: int
    kind: str
    topic: str
    payload: bytes
    qos: int
    retain: bool
    created: float


class Outbox:
    """SQLite-backed FIFO of MQTT messages, bounded to ``max_messages`` rows."""

    def __init__(self, path: str | Path, max_messages: int = 10000) -> None:
        self.path = Path(path)
        self.max_messages = int(max_messages)
        self._lock = threading.Lock()
        self.dropped = {"score": 0, "durable": 0}
        self._closed_count: int | None = None  # count() after close()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: a committed alert survives a power cut too, not only a process crash.
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as err:
            raise OutboxError(f"{self.path}: cannot open the outbox database: {err}") from None

    def put(self, kind: str, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> int:
        """Commit one message and return its id (0 when a ``score`` was refused for room)."""
        with self._transaction("write to"):
            count = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
            if count >= self.max_messages and not self._make_room(kind, count):
                return 0
            cur = self._db.execute(
                "INSERT INTO outbox(kind, topic, payload, qos, retain, created) VALUES (?,?,?,?,?,?)",
                (kind, topic, sqlite3.Binary(payload), int(qos), int(bool(retain)), time.time()),
            )
            return int(cur.lastrowid or 0)

    @contextmanager
    def _transaction(self, what: str) -> Iterator[None]:
        """One locked ``BEGIN IMMEDIATE`` .. ``COMMIT``; rolled back and an :class:`OutboxError` on failure."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                yield
                self._db.execute("COMMIT")
            except sqlite3.Error as err:
                try:
                    self._db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                raise OutboxError(f"{self.path}: cannot {what} the outbox: {err}") from None

    def _make_room(self, kind: str, count: int) -> bool:
        """Delete enough rows for one more; False when a new score should just be refused."""
        excess = count - self.max_messages + 1
        scores = self._db.execute(
            "SELECT id FROM outbox WHERE kind NOT IN (?, ?) ORDER BY id LIMIT ?", (*DURABLE_KINDS, excess)
        ).fetchall()
        if scores:
            self._db.executemany("DELETE FROM outbox WHERE id = ?", scores)
            self.dropped["score"] += len(scores)
            if self.dropped["score"] == len(scores) or self.dropped["score"] % 1000 < len(scores):
                log.warning(
                    "outbox full: dropping oldest score messages",
                    outbox=str(self.path), max_messages=self.max_messages, dropped_total=self.dropped["score"],
                )
            excess -= len(scores)
        if excess <= 0:
            return True
        if kind not in DURABLE_KINDS:
            self.dropped["score"] += 1
            return False
        oldest = self._db.execute("SELECT id, kind, topic FROM outbox ORDER BY id LIMIT ?", (excess,)).fetchall()
        self._db.executemany("DELETE FROM outbox WHERE id = ?", [(row[0],) for row in oldest])
        self.dropped["durable"] += len(oldest)
        log.error(
            "outbox full of alerts: DROPPING the oldest alert/sensor messages; raise mqtt.outbox_max_messages "
            "or fix the broker connection",
            outbox=str(self.path), max_messages=self.max_messages, dropped=len(oldest),
            dropped_total=self.dropped["durable"], first_dropped_topic=oldest[0][2] if oldest else None,
        )
        return True

    def after(self, last_id: int, limit: int) -> list[OutboxMessage]:
        """Up to ``limit`` messages with ``id > last_id``, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, kind, topic, payload, qos, retain, created FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
                (int(last_id), int(limit)),
            ).fetchall()
        return [OutboxMessage(r[0], r[1], r[2], bytes(r[3]), r[4], bool(r[5]), r[6]) for r in rows]

    def delete(self, *msg_ids: int) -> None:
        """Forget messages the broker has acknowledged (one transaction, one fsync)."""
        if not msg_ids:
            return
        with self._transaction("delete from"):
            self._db.executemany("DELETE FROM outbox WHERE id = ?", [(int(i),) for i in msg_ids])

    def count(self, kind: str | None = None) -> int:
        """Number of queued messages (of one ``kind`` when given)."""
        with self._lock:
            if self._closed_count is not None:
                return self._closed_count if kind is None else 0
            if kind is None:
                return int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
            return int(self._db.execute("SELECT COUNT(*) FROM outbox WHERE kind = ?", (kind,)).fetchone()[0])

    def __len__(self) -> int:
        return self.count()

    def close(self) -> None:
        """Close the database; ``count()`` keeps answering with the last count."""
        with self._lock:
            if self._closed_count is not None:
                return
            try:
                self._closed_count = int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
                self._db.close()
            except sqlite3.Error:
                pass
