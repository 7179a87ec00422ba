"""How the daemon is doing, in two forms: systemd's ``STATUS=`` line and the ``<base>/status`` message.

Both read the daemon's state at the moment they are asked (the scoring loop
asks every window and every ``mqtt.status_interval_s``; the status page on its
own schedule). Asking the publisher for its stats may fail while the broker
is down; that never stops the summary.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from edge_monitor.model.model_info import model_ref
from edge_monitor.publish.messages import HealthMessage, Payload

if TYPE_CHECKING:
    from edge_monitor.service.daemon import Daemon

__all__ = ["health_message", "status_line"]


def _publisher_stats(d: Daemon) -> Payload | None:
    try:
        return d.publisher.stats()
    except Exception:  # noqa: BLE001 - a publisher in trouble must not hide the rest of the summary
        return None


def status_line(d: Daemon) -> str:
    """The one-line summary for systemd's ``STATUS=``."""
    score = f"{d.last_score:.4g}" if d.last_score is not None else "-"
    pub = _publisher_stats(d)
    broker = "broker ?" if pub is None else "connected" if pub.get("connected") else "broker down"
    monitor = d.sensors.monitor
    sensor = "" if monitor.ok else " sensor: " + ",".join(monitor.active)
    return (f"{d.decider.state} last score {score} (threshold {d.threshold:.4g}), "
            f"{d.counters.scored} windows, {d.counters.alerts} alerts, {broker}{sensor}")


def health_message(d: Daemon) -> HealthMessage:
    """The ``<base>/status`` health message, now."""
    pub = _publisher_stats(d) or {}
    storage = pub.get("storage")
    storage = storage if isinstance(storage, dict) else None
    storage_error = storage.get("error") if storage is not None else None
    depth = pub.get("outbox_depth")
    c = d.counters
    return HealthMessage(
        device_id=d.cfg.device_id, time=time.time(), started_at=d.started_at, state=d.decider.state,
        last_score=d.last_score, threshold=d.threshold, windows=c.windows, windows_scored=c.scored,
        windows_sensor_fault=c.sensor_faulty, windows_scored_partial=c.scored_partial, alerts=c.alerts,
        mqtt=pub, xruns=d.xruns, overruns=d.overruns,
        last_error=d.last_error or (storage_error if isinstance(storage_error, str) else None)
        or (d.source.last_error if d.source is not None else None),
        storage=storage, evidence_errors=c.evidence_errors,
        source=d.source.stats() if d.source is not None else None, sensor=d.sensors.monitor.state(),
        model=model_ref(d.bundle), queue_depth=depth if isinstance(depth, int) else None)
