"""What the status page may read of the scoring loop: a typed, read-only view of the daemon.

:class:`edge_monitor.service.daemon.Daemon` satisfies :class:`DaemonView`
structurally; the page (:mod:`edge_monitor.web.status_board`) reads only
this, on the loop's thread, and never changes it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from edge_monitor.audio.sensor_health import SensorStatus
    from edge_monitor.model.bundle import ModelBundle

__all__ = ["DaemonView", "LoopCounters"]


class LoopCounters(Protocol):
    """Windows and alerts since start-up."""

    @property
    def windows(self) -> int: ...
    @property
    def scored(self) -> int: ...
    @property
    def sensor_faulty(self) -> int: ...
    @property
    def scored_partial(self) -> int: ...
    @property
    def alerts(self) -> int: ...
    @property
    def errors(self) -> int: ...
    @property
    def evidence_errors(self) -> int: ...


class DaemonView(Protocol):
    """The scoring loop's state, read-only."""

    @property
    def device_id(self) -> str: ...
    @property
    def bundle(self) -> ModelBundle: ...
    @property
    def threshold(self) -> float: ...
    @property
    def clear_level(self) -> float: ...
    @property
    def state(self) -> str:
        """``"normal"`` or ``"anomaly"``."""
        ...
    @property
    def last_score(self) -> float | None: ...
    @property
    def peak_score(self) -> float | None:
        """The open alert's highest score so far (``None`` while no alert is open)."""
        ...
    @property
    def counters(self) -> LoopCounters: ...
    @property
    def last_sensor_status(self) -> SensorStatus | None:
        """The sensor check of the latest window."""
        ...
    @property
    def sensor_active(self) -> tuple[str, ...]:
        """Fault kinds of the open sensor episodes."""
        ...
    @property
    def xruns(self) -> int: ...
    @property
    def overruns(self) -> int: ...
    @property
    def evidence_dir(self) -> Path | None:
        """Where alert evidence is saved (``None``: evidence off)."""
        ...

    def health(self) -> dict[str, object]:
        """The health message's payload (``<base>/status``)."""
        ...

    def publisher_stats(self) -> dict[str, object]:
        """The publisher's counters (``connected``, ``outbox_depth``, ...)."""
        ...
