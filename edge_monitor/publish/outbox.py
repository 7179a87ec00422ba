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

This class is the file alone: it raises :class:`OutboxError` when the file
cannot be opened or written (``damaged`` tells a file that must be replaced
from a disk that may recover). :mod:`edge_monitor.publish.storage` wraps it
so that the daemon never sees those errors: it moves a damaged file aside and
keeps messages in memory while the disk is full.
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


#: The columns of a table this code wrote; anything else under the name ``outbox`` is foreign.
COLUMNS = ("id", "kind", "topic", "payload", "qos", "retain", "created")
#: SQLite result codes that mean the file itself is bad (SQLITE_CORRUPT, SQLITE_NOTADB): replace it.
_DAMAGED_CODES = (11, 26)


class OutboxError(Exception):
    """The outbox database cannot be opened or written: message names the file.

    ``damaged`` is ``True`` when the file itself is unusable (not a database,
    malformed pages, a foreign schema, a folder in its place): waiting will not
    help, the file must be moved aside. ``False`` for a disk that may recover
    (full, I/O error, permissions).
    """

    def __init__(self, message: str, damaged: bool = False) -> None:
        super().__init__(message)
        self.damaged = damaged


def _is_damage(err: sqlite3.Error) -> bool:
    return getattr(err, "sqlite_errorcode", None) in _DAMAGED_CODES


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

    #: Message numbering: a file never renumbers (see :attr:`edge_monitor.publish.storage.MessageStore.generation`).
    generation = 0

    def __init__(self, path: str | Path, max_messages: int = 10000) -> None:
        self.path = Path(path)
        self.max_messages = int(max_messages)
        self._lock = threading.Lock()
        self.dropped = {"score": 0, "durable": 0}
        self._closed_count: int | None = None  # count() after close()
        if self.path.is_dir():
            raise OutboxError(f"{self.path}: cannot open the outbox database: a folder is in its place", True)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise OutboxError(f"{self.path}: cannot create its folder: {err.strerror or err}") from None
        db: sqlite3.Connection | None = None
        try:
            db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            # FULL: a committed alert survives a power cut too, not only a process crash.
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA busy_timeout=5000")
            _check(db, self.path)
            db.executescript(_SCHEMA)
        except sqlite3.Error as err:
            if db is not None:
                db.close()
            raise OutboxError(f"{self.path}: cannot open the outbox database: {err}", _is_damage(err)) from None
        except OutboxError:
            db.close()  # type: ignore[union-attr]  # _check runs on an open connection
            raise
        self._db = db

    def put(self, kind: str, topic: str, payload: bytes, qos: int = 1, retain: bool = False,
            msg_id: int | None = None) -> int:
        """Commit one message and return its id (0 when a ``score`` was refused for room).

        ``msg_id`` gives the id (the storage layer numbers messages itself, so
        that one kept in memory keeps its id when it reaches the disk); by
        default SQLite picks the next one.
        """
        with self._transaction("write to"):
            return self._insert(OutboxMessage(msg_id or 0, kind, topic, payload, qos, retain, time.time()))

    def put_many(self, messages: list[OutboxMessage]) -> None:
        """Commit messages with their own ids and times, in one transaction (one fsync)."""
        with self._transaction("write to"):
            for m in messages:
                self._insert(m)

    def _insert(self, m: OutboxMessage) -> int:
        """One INSERT inside a transaction (``m.id`` 0: SQLite picks it)."""
        count = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
        if count >= self.max_messages and not self._make_room(m.kind, count):
            return 0
        cur = self._db.execute(
            "INSERT INTO outbox(id, kind, topic, payload, qos, retain, created) VALUES (?,?,?,?,?,?,?)",
            (m.id or None, m.kind, m.topic, sqlite3.Binary(m.payload), int(m.qos), int(bool(m.retain)), m.created),
        )
        return int(cur.lastrowid or 0)

    def probe(self) -> None:
        """Prove the file takes a write (one header field rewritten; no message row, no id used)."""
        with self._transaction("write to"):
            version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
            self._db.execute(f"PRAGMA user_version = {(version + 1) % 1_000_000}")

    def max_id(self) -> int:
        """The highest id this file ever gave out (AUTOINCREMENT's high-water mark), 0 for a new file."""
        with self._lock:
            try:
                row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
                top = self._db.execute("SELECT MAX(id) FROM outbox").fetchone()[0]
            except sqlite3.Error as err:
                raise OutboxError(f"{self.path}: cannot read the outbox: {err}", _is_damage(err)) from None
        return max(int(row[0]) if row else 0, int(top or 0))

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
                raise OutboxError(f"{self.path}: cannot {what} the outbox: {err}", _is_damage(err)) from None

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
            try:
                rows = self._db.execute(
                    "SELECT id, kind, topic, payload, qos, retain, created FROM outbox WHERE id > ? "
                    "ORDER BY id LIMIT ?", (int(last_id), int(limit)),
                ).fetchall()
            except sqlite3.Error as err:
                raise OutboxError(f"{self.path}: cannot read the outbox: {err}", _is_damage(err)) from None
        return [OutboxMessage(r[0], r[1], r[2], bytes(r[3]), r[4], bool(r[5]), r[6]) for r in rows]

    def delete(self, *msg_ids: int, generation: int | None = None) -> None:
        """Forget messages the broker has acknowledged (one transaction, one fsync); ``generation`` is unused."""
        if not msg_ids:
            return
        with self._transaction("delete from"):
            self._db.executemany("DELETE FROM outbox WHERE id = ?", [(int(i),) for i in msg_ids])

    def count(self, kind: str | None = None) -> int:
        """Number of queued messages (of one ``kind`` when given)."""
        with self._lock:
            if self._closed_count is not None:
                return self._closed_count if kind is None else 0
            try:
                if kind is None:
                    return int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
                return int(self._db.execute("SELECT COUNT(*) FROM outbox WHERE kind = ?", (kind,)).fetchone()[0])
            except sqlite3.Error as err:
                raise OutboxError(f"{self.path}: cannot read the outbox: {err}", _is_damage(err)) from None

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


def _check(db: sqlite3.Connection, path: Path) -> None:
    """Refuse a file this code did not write (a foreign ``outbox`` table) or one with damaged pages.

    ``quick_check`` reads every page once: milliseconds for a bounded outbox,
    and it finds the malformed pages at start rather than at the first alert.
    """
    columns = tuple(r[1] for r in db.execute("PRAGMA table_info(outbox)"))
    if columns and columns != COLUMNS:  # none: a new file
        raise OutboxError(f"{path}: not an edge-monitor outbox (table outbox has columns {', '.join(columns)})", True)
    result = db.execute("PRAGMA quick_check(1)").fetchone()
    if not result or result[0] != "ok":
        raise OutboxError(f"{path}: database disk image is malformed ({result[0] if result else 'no answer'})", True)
