"""A damaged outbox file: read what can still be read, then move it aside for a new one.

Damage means the file itself is unusable, not the disk: garbage or a zeroed
header ("file is not a database"), a truncated file or corrupted pages
("database disk image is malformed"), a table of another program under the
name ``outbox``, or a folder where the file should be. Such a file never heals,
so waiting or restarting cannot help; it is renamed to
``<name>.damaged-<UTC time>`` (with its ``-wal`` and ``-shm`` companions: a
stale write-ahead log must never be replayed into the new file) and kept for
whoever wants to look at it.

Salvage reads the ``outbox`` rows in id order until the first unreadable
page, then in reverse order from the end until the first unreadable page
again, so the rows on either side of a damaged region are kept. Only alert and
sensor messages with well-formed columns are taken; a foreign table gives none.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import structlog

from edge_monitor.publish.outbox import COLUMNS, DURABLE_KINDS, OutboxMessage
from edge_monitor.util.durable import fsync_dir

__all__ = ["damaged_name", "move_aside", "salvage"]

log = structlog.get_logger("edge_monitor.publish.outbox")

#: Companion files SQLite keeps next to the database in WAL mode.
COMPANIONS = ("-wal", "-shm", "-journal")


def salvage(path: Path, limit: int = 100_000) -> list[OutboxMessage]:
    """The readable alert/sensor rows of the outbox at ``path``, oldest first (never raises)."""
    if not path.is_file():
        return []
    try:
        # Read-only: nothing is written to a file being rescued.
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error:
        return []
    found: dict[int, OutboxMessage] = {}
    try:
        try:
            # Tolerate a schema that points past the end of the file (a truncated file): SQLite would
            # otherwise refuse to read any table. The connection is read-only; nothing is written.
            db.execute("PRAGMA writable_schema = ON")
            columns = tuple(r[1] for r in db.execute("PRAGMA table_info(outbox)"))
        except sqlite3.Error:
            return []
        if columns != COLUMNS:
            return []
        for order in ("ASC", "DESC"):
            _read(db, order, found, limit)
    finally:
        db.close()
    return [found[i] for i in sorted(found)]


def _read(db: sqlite3.Connection, order: str, found: dict[int, OutboxMessage], limit: int) -> None:
    """Add rows in ``order`` to ``found`` until the first error (a damaged page) or ``limit`` rows."""
    try:
        cur = db.execute(f"SELECT id, kind, topic, payload, qos, retain, created FROM outbox ORDER BY id {order}")
        for r in cur:
            if len(found) >= limit:
                return
            msg = _message(r)
            if msg is not None:
                found.setdefault(msg.id, msg)
    except sqlite3.Error:
        return


def _message(r: tuple[object, ...]) -> OutboxMessage | None:
    """A row as a message, or ``None`` when a column has the wrong type (garbage that parsed as a row)."""
    mid, kind, topic, payload, qos, retain, created = r
    if not (isinstance(mid, int) and mid > 0 and kind in DURABLE_KINDS and isinstance(topic, str) and topic
            and isinstance(payload, bytes | str) and qos in (0, 1, 2) and isinstance(created, int | float)):
        return None
    data = payload.encode("utf-8") if isinstance(payload, str) else bytes(payload)
    return OutboxMessage(mid, kind, topic, data, int(qos), bool(retain), float(created))


def damaged_name(path: Path, now: float | None = None) -> Path:
    """``<path>.damaged-<UTC time>`` (``outbox.sqlite.damaged-20261203T101500Z``), unique in its folder."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))
    target = path.with_name(f"{path.name}.damaged-{stamp}")
    n = 1
    while target.exists() or target.is_symlink():
        n += 1
        target = path.with_name(f"{path.name}.damaged-{stamp}-{n}")
    return target


def move_aside(path: Path, now: float | None = None) -> Path:
    """Rename the damaged file (and its companions) out of the way; returns the new name.

    Raises ``OSError`` when the rename is refused (then no new file can be
    started at ``path`` either, and the caller keeps messages in memory).
    """
    target = damaged_name(path, now)
    path.rename(target)
    for suffix in COMPANIONS:
        companion = path.with_name(path.name + suffix)
        if companion.exists():
            try:
                companion.rename(target.with_name(target.name + suffix))
            except OSError:
                companion.unlink(missing_ok=True)  # a stale WAL must not be replayed into the new file
    fsync_dir(path.parent)  # the renames survive a power cut: the new file never meets the old WAL
    return target
