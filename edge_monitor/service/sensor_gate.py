"""The sensor checks between the source and the model: which windows may be scored, and the fault episodes.

:class:`SensorGate` runs :func:`edge_monitor.audio.sensor_health.check_window` on
each raw window, keeps the fault episodes (:class:`~edge_monitor.audio.sensor_health.SensorMonitor`)
and turns each episode's start and end into a :class:`~edge_monitor.publish.messages.SensorMessage`
(one event id per episode). A faulty window is not scored, so a pulled cable never
pages anyone about the machine; except that a window whose only fault is short
dropouts comes back with its ``bad`` samples marked, and the model leaves the frames
they touch out of its score (up to ``audio.max_dropout_fraction``).
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Callable

from edge_monitor.audio.ring_buffer import Window
from edge_monitor.audio.sensor_health import SensorEvent, SensorMonitor, SensorStatus, check_window
from edge_monitor.publish.messages import SensorMessage
from edge_monitor.service.protocols import Logger

__all__ = ["SensorGate"]


class SensorGate:
    """Checks each window's raw channels; calls ``publish`` for every fault episode that starts or ends.

    Args:
        device_id: the ``device_id`` of the messages.
        max_dropout_fraction: ``audio.max_dropout_fraction``; 0 scores no window with dropouts.
        publish: takes each sensor message (on the loop's thread).
        log: structlog logger.
    """

    def __init__(self, device_id: str, max_dropout_fraction: float, publish: Callable[[SensorMessage], None],
                 log: Logger) -> None:
        self.device_id = device_id
        self.max_dropout_fraction = max_dropout_fraction
        self.publish = publish
        self.log = log
        self.monitor = SensorMonitor()
        self.last_status: SensorStatus | None = None  # the latest window's
        self._ids: dict[str, str] = {}  # fault kind -> event id of its open episode

    def check(self, win: Window, source: str | None = None) -> Window | None:
        """The window to score (``bad`` set for dropouts), or ``None`` when a fault concerns the whole of it.

        ``source``: ``"microphone"`` or ``"replay"``, for the messages.
        """
        status = check_window(win.samples, win.sample_rate, xruns=win.xruns, bits=16)
        self.last_status = status
        for ev in self.monitor.update(status, win.end_time):
            self._event(ev, source)
        if status.ok:
            return win
        # Dropouts are local (their samples are known), so the frames around them still carry the
        # machine's sound; every other fault (dead input or channel, clipping, an xrun burst)
        # concerns the whole window.
        if status.kinds == {"dropout"} and status.bad is not None and self.max_dropout_fraction > 0:
            return dataclasses.replace(win, bad=status.bad)
        return None

    def _event(self, ev: SensorEvent, source: str | None) -> None:
        if ev.event == "start":
            self._ids[ev.kind] = str(uuid.uuid4())
        event_id = self._ids.pop(ev.kind, None) if ev.event == "end" else self._ids[ev.kind]
        msg = SensorMessage(ev.event, ev.kind, ev.since, ev.at, ev.detail, ev.windows,
                            event_id or str(uuid.uuid4()), self.device_id, source, time.time())
        log = self.log.warning if ev.event == "start" else self.log.info
        log("sensor " + ev.event, kind=ev.kind, detail=ev.detail, event_id=msg.event_id)
        self.publish(msg)
