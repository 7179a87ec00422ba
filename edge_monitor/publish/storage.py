"""Where durable MQTT messages wait: the SQLite outbox when the disk allows, memory when it does not.

The daemon must keep scoring and alerting on a full SD card, on a damaged
outbox file and on a state folder it cannot write, and must say so instead of
dying. :class:`MessageStore` gives the publisher the outbox's interface
(``put``, ``after``, ``delete``, ``count``) and never raises:

* **disk** (normal): every message is committed to the
  :class:`~edge_monitor.publish.outbox.Outbox` before it is sent.
* **memory** (degraded): the file cannot be opened or written (full disk, I/O
  error, permissions). New messages go to a bounded in-memory queue and are
  delivered from there when the broker is reachable. The disk is tried again
  with exponential back-off (:data:`RETRY_MIN_S` doubling up to
  :data:`RETRY_MAX_S`); when it works again the queued messages are written to
  it (one transaction) and the store is back to **disk**. Messages in memory
  are lost if the process dies before that: the log, ``<base>/status``,
  ``/api/status`` and ``/metrics`` all say the store is degraded.
* **damaged file** (:mod:`edge_monitor.publish.outbox_repair`): its readable
  alert/sensor rows are salvaged, the file is moved aside with a timestamp and
  a new one is started with the salvaged rows in it. This happens at start
  and whenever a read or write reports damage.

The memory queue holds at most :data:`MEMORY_MAX_MESSAGES` messages. At the
bound the oldest *sensor* message is dropped first; an alert is dropped (the
oldest one) only when the queue holds nothing but alerts. Every drop is
counted and logged as an error.

Message ids are given here, not by SQLite, so that a message keeps its id
when it moves from memory to disk (an in-flight message is acknowledged by
its id). If the disk turns out to hold ids the memory queue already used (it
could not be read at start), the queued messages are renumbered after the
disk's and :attr:`MessageStore.generation` is incremented: the delivery then
starts again from the oldest message and ignores acknowledgements of the old
numbers (a message may be delivered twice; subscribers de-duplicate on
``(event_id, event)``), but none is lost.

All methods are thread-safe (one lock; the disk work under it is a few
milliseconds, and it is retried at most every :data:`RETRY_MIN_S` s).
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable
from pathlib import Path

import structlog

from edge_monitor.publish.outbox import Outbox, OutboxError, OutboxMessage
from edge_monitor.publish.outbox_repair import move_aside, salvage
from edge_monitor.util.backoff import Backoff

__all__ = ["MEMORY_MAX_MESSAGES", "RETRY_MAX_S", "RETRY_MIN_S", "MemoryQueue", "MessageStore"]

log = structlog.get_logger("edge_monitor.publish.outbox")

#: Messages kept in memory while the disk cannot be written (~1-2 kB each: a few MB at most).
#: At one alert start and end per minute (the default cooldown) that is over 8 hours of alerts.
MEMORY_MAX_MESSAGES = 1000
RETRY_MIN_S = 5.0  # first retry of the disk after a failure (s)
RETRY_MAX_S = 300.0  # retries back off to at most this (s): a full card is not re-probed in a tight loop
#: Kinds in the order they are dropped at the memory bound (first the sensor messages).
_DROP_ORDER = ("sensor", "alert")


class MemoryQueue:
    """A bounded queue of messages ordered by id; not thread-safe (the store's lock guards it)."""

    def __init__(self, max_messages: int = MEMORY_MAX_MESSAGES) -> None:
        self.max_messages = int(max_messages)
        self._ids: list[int] = []  # sorted
        self._msgs: dict[int, OutboxMessage] = {}
        self.dropped: dict[str, int] = {}  # kind -> messages dropped at the bound

    def add(self, msg: OutboxMessage) -> OutboxMessage | None:
        """Queue ``msg``; returns the message dropped to make room for it, if any (maybe ``msg`` itself)."""
        victim: OutboxMessage | None = None
        if len(self._ids) >= self.max_messages:
            victim = self._victim(msg)
            self.dropped[victim.kind] = self.dropped.get(victim.kind, 0) + 1
            if victim is msg:
                return msg
            self.remove(victim.id)
        bisect.insort(self._ids, msg.id)
        self._msgs[msg.id] = msg
        return victim

    def _victim(self, new: OutboxMessage) -> OutboxMessage:
        """The oldest message of the least important kind present (the new one counts too)."""
        for kind in _DROP_ORDER:
            for i in self._ids:
                if self._msgs[i].kind == kind:
                    return self._msgs[i]
            if new.kind == kind:
                return new
        return self._msgs[self._ids[0]]  # an unknown kind: treated as the least important

    def after(self, last_id: int, limit: int) -> list[OutboxMessage]:
        start = bisect.bisect_right(self._ids, last_id)
        return [self._msgs[i] for i in self._ids[start:start + limit]]

    def remove(self, msg_id: int) -> bool:
        """Forget ``msg_id``; ``False`` when it is not here."""
        if self._msgs.pop(msg_id, None) is None:
            return False
        del self._ids[bisect.bisect_left(self._ids, msg_id)]
        return True

    def all(self) -> list[OutboxMessage]:
        return [self._msgs[i] for i in self._ids]

    def count(self, kind: str | None = None) -> int:
        return len(self._ids) if kind is None else sum(1 for m in self._msgs.values() if m.kind == kind)

    def renumber_after(self, top: int) -> bool:
        """Give the queued messages ids after ``top`` (in order) if any has ``id <= top``; whether it did."""
        if not self._ids or self._ids[0] > top:
            return False
        queued = self.all()
        self.clear()
        for i, m in enumerate(queued, start=top + 1):
            self._ids.append(i)
            self._msgs[i] = OutboxMessage(i, m.kind, m.topic, m.payload, m.qos, m.retain, m.created)
        return True

    def clear(self) -> None:
        self._ids.clear()
        self._msgs.clear()

    def __len__(self) -> int:
        return len(self._ids)


class DiskHealth:
    """Whether the outbox's disk takes writes, why not, since when, and when to try it again.

    Not thread-safe (the store's lock guards it). Times: ``now`` is the
    store's monotonic clock, ``since`` wall time (for the report).
    """

    def __init__(self, retry_min_s: float, retry_max_s: float) -> None:
        self.backoff = Backoff(retry_min_s, retry_max_s, jitter=False)
        self.healthy = False  # the disk took the last write
        self.error: str | None = None
        self.since: float | None = None
        self.next_retry = 0.0
        self.recoveries = 0

    def fail(self, error: str, now: float) -> tuple[bool, float | None]:
        """Note a failure: ``(first, delay)``, whether the store just degraded and the new retry delay
        (``None``: a read failing between retries leaves the schedule as it is, no back-off growth)."""
        first = self.healthy or self.error is None
        self.healthy, self.error = False, error
        if self.since is None:
            self.since = time.time()
        if not first and now < self.next_retry:
            return first, None
        delay = self.backoff.next_delay()
        self.next_retry = now + delay
        return first, delay

    def ok(self) -> bool:
        """The disk took a write; ``True`` when that ends a degradation."""
        recovered = self.error is not None
        self.healthy, self.error, self.since = True, None, None
        self.backoff.reset()
        self.recoveries += recovered
        return recovered

    def due(self, now: float) -> bool:
        return not self.healthy and now >= self.next_retry

    def report(self, now: float) -> dict[str, object]:
        return {"mode": "disk" if self.healthy else "memory", "error": self.error,
                "since": _iso(self.since) if self.since is not None else None,
                "retry_in_s": None if self.healthy else round(max(0.0, self.next_retry - now), 1),
                "recoveries": self.recoveries}


class MessageStore:
    """The outbox at ``path`` with a memory fallback (see the module docstring). Never raises on I/O."""

    def __init__(self, path: str | Path, max_messages: int = 10000, *, memory_max: int = MEMORY_MAX_MESSAGES,
                 retry_min_s: float = RETRY_MIN_S, retry_max_s: float = RETRY_MAX_S,
                 now: Callable[[], float] = time.monotonic) -> None:
        self.path = Path(path)
        self.max_messages = int(max_messages)
        self.generation = 0  # incremented when queued messages are renumbered (see the module docstring)
        self._now = now
        self._lock = threading.RLock()
        self._disk: Outbox | None = None
        self._health = DiskHealth(retry_min_s, retry_max_s)
        self._seq = 0  # the last id given out
        self._mem = MemoryQueue(memory_max)
        self._tombstones: set[int] = set()  # acknowledged, still on a disk that refused the delete
        self._disk_count = 0  # the disk's depth when last read (kept while it cannot be read)
        self._dropped_disk = {"score": 0, "durable": 0}  # from replaced disk files
        self.moved_aside: list[str] = []
        self.salvaged = 0
        self._closed = False
        self._replacing = False
        with self._lock:
            self._open()

    # --- the outbox interface -----------------------------------------------------------------
    def put(self, kind: str, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> int:
        """Queue one message (on disk if possible, else in memory); returns its id."""
        with self._lock:
            self._maybe_retry()
            self._seq += 1
            msg = OutboxMessage(self._seq, kind, topic, payload, int(qos), bool(retain), time.time())
            for _ in range(2):  # a damaged file is replaced by the first failure; the second try uses the new one
                if self._disk is None or not self._health.healthy:
                    break
                try:
                    self._disk.put(kind, topic, payload, qos, retain, msg_id=msg.id)
                    return msg.id
                except OutboxError as err:
                    self._failed(err)
            self._keep_in_memory(msg)
            return msg.id

    def after(self, last_id: int, limit: int) -> list[OutboxMessage]:
        """Up to ``limit`` queued messages with ``id > last_id``, oldest first (disk and memory merged)."""
        with self._lock:
            self._maybe_retry()
            rows: list[OutboxMessage] = []
            if self._disk is not None:
                try:
                    rows = [m for m in self._disk.after(last_id, limit + len(self._tombstones))
                            if m.id not in self._tombstones]
                except OutboxError as err:
                    self._failed(err)
            rows += self._mem.after(last_id, limit)
            rows.sort(key=lambda m: m.id)
            return rows[:limit]

    def delete(self, *msg_ids: int, generation: int | None = None) -> None:
        """Forget acknowledged messages; acknowledgements of an older :attr:`generation` are ignored."""
        with self._lock:
            if generation is not None and generation != self.generation:
                return
            rest = [i for i in msg_ids if not self._mem.remove(i)]
            if not rest:
                return
            self._tombstones.update(rest)
            self._delete_tombstones()

    def count(self, kind: str | None = None) -> int:
        """Queued messages (of one ``kind`` when given), disk and memory together."""
        with self._lock:
            self._maybe_retry()
            n = 0
            if self._disk is not None:
                try:
                    n = self._disk.count(kind)
                    if kind is None:
                        self._disk_count = n
                except OutboxError:
                    n = self._disk_count if kind is None else 0
                n = max(0, n - len(self._tombstones))
            return n + self._mem.count(kind)

    def __len__(self) -> int:
        return self.count()

    @property
    def dropped(self) -> dict[str, int]:
        """``score``: scores refused for room; ``durable``: alert/sensor messages dropped (disk or memory bound)."""
        with self._lock:
            disk = self._disk.dropped if self._disk is not None else {"score": 0, "durable": 0}
            mem = sum(v for k, v in self._mem.dropped.items() if k != "score")
            return {"score": self._dropped_disk["score"] + disk["score"] + self._mem.dropped.get("score", 0),
                    "durable": self._dropped_disk["durable"] + disk["durable"] + mem}

    def close(self) -> None:
        """Close the file; messages still in memory are lost, and the log says how many."""
        with self._lock:
            if self._closed:
                return
            if len(self._mem):
                self._maybe_retry(force=True)
            self._closed = True
            if len(self._mem):
                log.error("outbox: messages kept in memory are LOST at exit (the disk could not be written)",
                          outbox=str(self.path), lost=len(self._mem),
                          alerts=self._mem.count("alert"), error=self._health.error)
            if self._disk is not None:
                self._disk_count = self._disk.count() if self._health.healthy else self._disk_count
                self._disk.close()

    # --- what the operator sees --------------------------------------------------------------------
    def report(self) -> dict[str, object]:
        """The ``storage`` part of the health JSON (keys are stable)."""
        with self._lock:
            return {"path": str(self.path), **self._health.report(self._now()), "memory_messages": len(self._mem),
                    "memory_max": self._mem.max_messages, "memory_dropped": dict(self._mem.dropped),
                    "moved_aside": list(self.moved_aside[-3:]), "damaged_files": len(self.moved_aside),
                    "salvaged": self.salvaged}

    # --- opening, failing, recovering (lock held) -----------------------------------------------
    def _open(self) -> None:
        """Open the file (replacing a damaged one) and take it into use, or degrade."""
        try:
            disk = Outbox(self.path, self.max_messages)
        except OutboxError as err:
            self._failed(err)
            return
        self._adopt(disk)

    def _adopt(self, disk: Outbox) -> None:
        """Use ``disk``: continue its numbering, move the memory queue into it, delete what was acknowledged."""
        self._disk = disk
        try:
            top = disk.max_id()
        except OutboxError as err:
            self._failed(err)
            return
        if self._mem.renumber_after(top):
            # Numbered without knowing the disk's ids (it could not be read): the delivery starts again.
            self.generation += 1
            self._tombstones.clear()
        self._seq = max(self._seq, top, *(m.id for m in self._mem.all()))
        self._flush_memory()

    def _flush_memory(self) -> None:
        """Write the memory queue to disk in one transaction (a probe write when it is empty)."""
        assert self._disk is not None
        queued = self._mem.all()
        try:
            if queued:
                self._disk.put_many(queued)
            elif not self._health.healthy:
                self._disk.probe()
        except OutboxError as err:
            self._failed(err)
            return
        self._mem.clear()
        if self._health.ok():
            log.warning("outbox storage recovered: alerts are written to disk again", outbox=str(self.path),
                        moved_from_memory=len(queued))
        self._delete_tombstones()

    def _delete_tombstones(self) -> None:
        if not self._tombstones or self._disk is None or not self._health.healthy:
            return
        ids = sorted(self._tombstones)
        try:
            self._disk.delete(*ids)
        except OutboxError as err:
            self._failed(err)
            return
        self._tombstones.difference_update(ids)

    def _failed(self, err: OutboxError) -> None:
        """A read or write failed: replace a damaged file, or keep messages in memory until the disk recovers."""
        if err.damaged and not self._replacing:
            self._replacing = True  # a new file that is damaged at once (a failing card) waits for the retry
            try:
                self._replace(str(err))
            finally:
                self._replacing = False
        else:
            self._degrade(str(err))

    def _replace(self, reason: str) -> None:
        """Salvage the damaged file's rows, move it aside, start a new one with them."""
        if self._disk is not None:
            for k, v in self._disk.dropped.items():
                self._dropped_disk[k] += v
            self._disk.close()
            self._disk = None
        self._health.healthy = False
        rows = [m for m in salvage(self.path) if m.id not in self._tombstones]
        try:
            moved = move_aside(self.path)
        except OSError as exc:
            self._degrade(f"{reason}; cannot move it aside: {exc.strerror or exc}")
            return
        self.moved_aside.append(str(moved))
        self.salvaged += len(rows)
        self._tombstones.clear()
        log.error("outbox database damaged: moved aside, starting a new one", outbox=str(self.path),
                  moved_to=str(moved), salvaged=len(rows), error=reason)
        self._seq = max(self._seq, *(m.id for m in rows)) if rows else self._seq
        disk: Outbox | None = None
        try:
            disk = Outbox(self.path, self.max_messages)
            disk.put_many(rows)  # with their ids: in-flight ones are acknowledged as usual
        except OutboxError as err:
            self._disk = disk  # readable, maybe (a full disk); None when it could not even be opened
            for m in rows:
                if self._mem.add(m) is m:
                    break  # the memory bound: the rest stays readable in the moved file
            self._degrade(str(err))  # never a second replacement in a row: wait for the retry
            return
        self._adopt(disk)

    def _degrade(self, error: str) -> None:
        first, delay = self._health.fail(error, self._now())
        if delay is None:
            return
        if first:
            log.error("outbox storage unavailable: alerts are kept in memory and delivered from there; "
                      "retrying the disk with back-off", outbox=str(self.path), error=error,
                      memory_max=self._mem.max_messages, retry_in_s=round(delay, 1))
        else:
            log.debug("outbox storage still unavailable", outbox=str(self.path), error=error,
                      retry_in_s=round(delay, 1))

    def _keep_in_memory(self, msg: OutboxMessage) -> None:
        victim = self._mem.add(msg)
        if victim is not None:
            log.error("outbox memory queue full: DROPPING the oldest " + victim.kind + " message",
                      outbox=str(self.path), memory_max=self._mem.max_messages, topic=victim.topic,
                      dropped_total=sum(self._mem.dropped.values()), error=self._health.error)

    def _maybe_retry(self, force: bool = False) -> None:
        if self._closed or self._health.healthy or (not force and not self._health.due(self._now())):
            return
        if self._disk is None:
            self._open()
        else:
            self._flush_memory()


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
