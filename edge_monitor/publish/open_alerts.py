"""The alert that is open right now, kept in a tiny file so that a restart can close it.

A SIGKILL, a power cut or an OOM kill while an alert is open would leave its
``start`` delivered and no ``end`` ever following, and ``<base>/state`` stuck
at ``anomaly``. The daemon therefore writes the open alert's ``start`` payload
to ``open-alert.json`` next to the outbox when the alert opens and removes the
file when it closes: two small durable writes per alert, never one per window.
On the next start :meth:`OpenAlerts.interrupted` turns what the file still
holds into ``end`` events marked ``"interrupted": true``; the daemon publishes
them (durably, as every alert event) with ``<base>/state`` = ``normal``.

The file is advisory: when it cannot be written (a full disk) the alert is
still published, the failure is returned for the daemon's ``last_error``, and
only the closing-after-a-crash is lost.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import structlog

from edge_monitor.util.durable import fsync_dir, write_durably

__all__ = ["FILE_NAME", "OpenAlerts", "interrupted_end", "read_note", "remove_note"]

log = structlog.get_logger("edge_monitor.publish.open_alerts")

FILE_NAME = "open-alert.json"
#: Start-payload keys an interrupted ``end`` repeats (as a normal ``end`` does).
_KEPT = ("event_id", "device_id", "machine", "window_start", "window_end", "threshold", "peak_score", "model",
         "windows", "peak_window_start", "peak_window_end", "source")


def interrupted_end(start: Mapping[str, object], now_iso: str) -> dict[str, object]:
    """The ``end`` event of an alert whose daemon stopped while it was open.

    Its window times are the opening window's (the last ones known); ``score``
    and ``duration_s`` are ``null``: nobody knows when the sound really ended.
    """
    end: dict[str, object] = {k: start.get(k) for k in _KEPT}
    end.update({"event": "end", "interrupted": True, "time": now_iso, "score": None, "evidence": None,
                "explanation": None, "opened_at": start.get("window_end"), "duration_s": None})
    return end


class OpenAlerts:
    """``<folder>/open-alert.json``: written at alert start, removed at alert end."""

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / FILE_NAME

    def record(self, payload: Mapping[str, object]) -> str | None:
        """Note an alert event (``start``: keep it; ``end``: forget it). Returns an error text, or ``None``."""
        try:
            if payload.get("event") == "start":
                self.path.parent.mkdir(parents=True, exist_ok=True)
                keep = {k: payload.get(k) for k in _KEPT}
                write_durably(self.path, json.dumps(keep, default=str) + "\n", 0o640)
            elif payload.get("event") == "end":
                self.clear()
        except OSError as exc:
            return f"{self.path}: cannot note the open alert: {exc.strerror or exc}"
        return None

    def interrupted(self, now_iso: str) -> list[dict[str, object]]:
        """``end`` events for what the previous run left open (empty when nothing was; never raises)."""
        start = read_note(self.path, "open-alert")
        if start is None:
            return []
        if not isinstance(start, dict) or not start.get("event_id"):
            log.error("open-alert file unreadable: ignored", path=str(self.path))
            return []
        return [interrupted_end(start, now_iso)]

    def clear(self) -> None:
        """Forget the open alert (raises ``OSError`` only when an existing file cannot be removed)."""
        remove_note(self.path)


def read_note(path: Path, what: str) -> object:
    """The JSON a note file holds; ``None`` when there is none or it cannot be read or parsed (logged; never raises).

    ``what`` names the note in the log (``"open-alert"``).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.error(f"cannot read the {what} file", path=str(path), error=exc.strerror or str(exc))
        return None
    try:
        return json.loads(text)
    except ValueError:
        log.error(f"{what} file unreadable: ignored", path=str(path))
        return None


def remove_note(path: Path) -> None:
    """Remove a note file durably (raises ``OSError`` only when an existing file cannot be removed)."""
    try:
        path.unlink()
    except FileNotFoundError:
        return
    fsync_dir(path.parent)
