"""The microphone fault episodes open right now, kept in a tiny file so that a restart can end them.

As with alerts (:mod:`edge_monitor.publish.open_alerts`): a SIGKILL, a power cut
or a plain stop during a microphone fault would leave its ``<base>/sensor``
``start`` delivered and no ``end`` ever following, so a consumer pairing them
would see the fault open forever. The daemon keeps the open episodes' ``start``
payloads in ``open-sensor-events.json`` next to the outbox (an object by fault
kind), rewritten when an episode starts or ends and removed when none is open:
a few small durable writes per episode, never one per window. On the next start
:meth:`OpenSensorEvents.interrupted` turns what the file still holds into
``end`` events marked ``"interrupted": true``, published (durably) before the
first window is checked; if the fault is still there, that first window starts
a new episode with a new ``event_id``.

The file is advisory, as the alert's: when it cannot be written (a full disk)
the sensor event is still published and only the ending-after-a-crash is lost.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import structlog

from edge_monitor.publish.open_alerts import read_note, remove_note
from edge_monitor.util.durable import write_durably

__all__ = ["FILE_NAME", "OpenSensorEvents", "interrupted_sensor_end"]

log = structlog.get_logger("edge_monitor.publish.open_sensor_events")

FILE_NAME = "open-sensor-events.json"
#: Start-payload keys an interrupted ``end`` repeats (as a normal ``end`` does).
_KEPT = ("event_id", "device_id", "source", "kind", "since", "at", "detail", "windows")


def interrupted_sensor_end(start: Mapping[str, object], now_iso: str) -> dict[str, object]:
    """The ``end`` event of a fault episode whose daemon stopped while it was open.

    ``at`` and ``windows`` are the start's (the last known): nobody saw the fault end.
    """
    end: dict[str, object] = {k: start.get(k) for k in _KEPT}
    end.update({"event": "end", "interrupted": True, "time": now_iso})
    return end


class OpenSensorEvents:
    """``<folder>/open-sensor-events.json``: fault kind -> the open episode's ``start`` payload."""

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / FILE_NAME
        self._open: dict[str, dict[str, object]] = {}

    def record(self, payload: Mapping[str, object]) -> str | None:
        """Note a sensor event (``start``: keep it; ``end``: forget its kind). Returns an error text, or ``None``."""
        kind = str(payload.get("kind"))
        if payload.get("event") == "start":
            self._open[kind] = {k: payload.get(k) for k in _KEPT}
        elif payload.get("event") == "end":
            if self._open.pop(kind, None) is None:
                return None
        else:
            return None
        try:
            if self._open:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                write_durably(self.path, json.dumps(self._open, default=str) + "\n", 0o640)
            else:
                remove_note(self.path)
        except OSError as exc:
            return f"{self.path}: cannot note the open sensor events: {exc.strerror or exc}"
        return None

    def interrupted(self, now_iso: str) -> list[dict[str, object]]:
        """``end`` events for the episodes the previous run left open (empty when none; never raises)."""
        note = read_note(self.path, "open-sensor-events")
        if note is None or note == {}:
            return []
        starts = list(note.values()) if isinstance(note, dict) else []
        if not starts or not all(isinstance(s, dict) and s.get("event_id") for s in starts):
            log.error("open-sensor-events file unreadable: ignored", path=str(self.path))
            return []
        return [interrupted_sensor_end(s, now_iso) for s in starts]

    def clear(self) -> None:
        """Forget every open episode (raises ``OSError`` only when an existing file cannot be removed)."""
        self._open.clear()
        remove_note(self.path)
