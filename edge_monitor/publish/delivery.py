"""Outbox draining with PUBACK tracking: how a durable message leaves the SQLite outbox.

Per connection, :class:`Delivery` sends the outbox from its oldest message,
in order, with at most ``max_inflight`` outbox messages awaiting their PUBACK,
and deletes a message only once the broker acknowledged it (in one
transaction per batch: one fsync, not one per message). Anything not
acknowledged when the connection drops stays in the outbox and is sent again,
from the oldest, on the next connection (at-least-once: subscribers
de-duplicate on ``(event_id, event)``).

It also tracks other messages sent on the connection (retained values, the
final ``offline``) so that :meth:`Delivery.is_done` can tell when one has left.

Thread safety: :meth:`Delivery.on_puback` may be called on the transport's
loop thread or *inside* :meth:`Transport.publish` (paho reports QoS 0 as done
before ``publish()`` returns the id), hence the "early" set; one lock guards
the bookkeeping (re-entrant for that case), and the outbox has its own.
"""

from __future__ import annotations

import threading

import structlog

from edge_monitor.publish.outbox import Outbox
from edge_monitor.publish.storage import MessageStore
from edge_monitor.publish.transport import Transport

__all__ = ["MAX_INFLIGHT", "Delivery"]

log = structlog.get_logger("edge_monitor.publish.publisher")

MAX_INFLIGHT = 20  # outbox messages awaiting PUBACK at once (paho's default window)


class Delivery:
    """Sends ``outbox`` over one connection at a time and forgets what the broker acknowledged."""

    def __init__(self, outbox: MessageStore | Outbox, max_inflight: int = MAX_INFLIGHT) -> None:
        self.outbox = outbox
        self.max_inflight = max_inflight
        self._lock = threading.RLock()  # RLock: on_puback may run inside publish(), inside send()
        self._transport: Transport | None = None
        self._pending: dict[int, int | None] = {}  # mid -> outbox id (None: not an outbox message)
        self._early: dict[int, str | None] = {}  # mids acknowledged before publish() returned them
        self._acked_ids: list[int] = []  # outbox ids PUBACKed, not yet deleted
        self._last_sent_id = 0  # outbox id of the newest message sent on this connection
        self._generation = outbox.generation  # the store's numbering these ids belong to
        self.sent = 0  # outbox messages handed to a transport, all connections
        self.acked = 0  # outbox messages acknowledged and deleted, all connections

    # --- per connection --------------------------------------------------------------------------
    def begin(self, transport: Transport) -> None:
        """A fresh connection: forget the old one's ids; drain again from the oldest message."""
        with self._lock:
            self._transport = transport
            self._pending.clear()
            self._early.clear()
            self._last_sent_id = 0

    def end(self) -> None:
        """The connection is gone: delete what it acknowledged; the rest waits for the next one."""
        self.flush_acks()
        with self._lock:
            self._transport = None

    # --- sending ---------------------------------------------------------------------------------
    def send(self, topic: str, payload: bytes, qos: int, retain: bool, oid: int | None = None) -> int | None:
        """Publish one message on the current connection; its mid, or ``None`` when not connected.

        ``oid`` is the outbox id of a durable message (deleted on its PUBACK).
        """
        with self._lock:  # held across publish(): its early on_puback waits, then sees the mid as known
            transport = self._transport
            mid = transport.publish(topic, payload, qos, retain) if transport is not None else None
            if mid is None:
                return None  # connection gone; the outbox keeps the message for the next one
            if mid in self._early:
                refused = self._early.pop(mid)
                self._settle(oid, refused)
            else:
                self._pending[mid] = oid
        return mid

    def pump(self) -> int:
        """Send outbox messages after the last one sent, while the in-flight window has room.

        Returns how many were sent (0 also when the connection just went away).
        """
        with self._lock:
            self._follow_renumbering()
            room = self.max_inflight - sum(1 for oid in self._pending.values() if oid is not None)
            after = self._last_sent_id
        if room <= 0:
            return 0
        n = 0
        for msg in self.outbox.after(after, room):
            if self.send(msg.topic, msg.payload, msg.qos, msg.retain, oid=msg.id) is None:
                break  # the transport's loop reports the loss and the session ends
            with self._lock:
                self._last_sent_id = msg.id
            n += 1
        self.sent += n
        return n

    def _follow_renumbering(self) -> None:
        """The store renumbered its queued messages (lock held): send again from the oldest, and let
        the old numbers' acknowledgements delete nothing (a message may arrive twice, none is lost)."""
        generation = self.outbox.generation
        if generation == self._generation:
            return
        self._generation = generation
        self._last_sent_id = 0
        self._acked_ids.clear()
        for mid in self._pending:
            self._pending[mid] = None

    # --- acknowledgements ------------------------------------------------------------------------
    def on_puback(self, mid: int, refused: str | None = None) -> None:
        """The transport's acknowledgement of ``mid`` (see :meth:`TransportEvents.on_puback`)."""
        with self._lock:  # re-entrant: an early ack runs inside send(), which holds the lock
            if mid not in self._pending:
                self._early[mid] = refused  # publish() has not returned this mid yet
                return
            oid = self._pending.pop(mid)
            self._settle(oid, refused)

    def _settle(self, oid: int | None, refused: str | None) -> None:
        """Record a finished message (lock held)."""
        if oid is None:
            return
        if refused is not None:
            # The broker refused this message (MQTT 5 PUBACK >= 0x80, e.g. an ACL): keep it, it is
            # retried on the next connection; say so once per message and connection.
            log.error("mqtt broker rejected an outbox message; kept for retry", outbox_id=oid, reason=refused)
            return
        self._acked_ids.append(oid)  # deleted in one transaction by flush_acks()

    def flush_acks(self) -> int:
        """Delete the acknowledged outbox messages (one transaction); returns how many."""
        with self._lock:
            ids, self._acked_ids = self._acked_ids, []
            generation = self._generation
        if ids:
            self.outbox.delete(*ids, generation=generation)
            self.acked += len(ids)
        return len(ids)

    # --- questions -------------------------------------------------------------------------------
    def is_done(self, mid: int) -> bool:
        """Whether message ``mid`` of this connection was acknowledged (or was never tracked)."""
        with self._lock:
            return mid not in self._pending

    def in_flight(self) -> int:
        """Outbox messages sent on this connection and not yet acknowledged."""
        with self._lock:
            return sum(1 for oid in self._pending.values() if oid is not None)

    def idle(self) -> bool:
        """Nothing awaiting a PUBACK and nothing left in the outbox (a clean point to stop)."""
        with self._lock:
            busy = bool(self._acked_ids) or any(oid is not None for oid in self._pending.values())
        return not busy and self.outbox.count() == 0
