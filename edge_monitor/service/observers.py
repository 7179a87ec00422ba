"""The daemon's observers (the status page, /metrics): told each loop event, never able to stop the loop."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edge_monitor.audio.ring_buffer import Window
    from edge_monitor.publish.messages import Payload
    from edge_monitor.service.protocols import Logger, Observer
    from edge_monitor.web.view import DaemonView

__all__ = ["Observers"]


class Observers(list["Observer"]):
    """The observers, in the order they are told; ``failures``: observer class name -> failed calls."""

    def __init__(self, log: Logger) -> None:
        super().__init__()
        self.log = log
        self.failures: dict[str, int] = {}

    def tell(self, view: DaemonView, event: str, payload: Window | Payload | None) -> None:
        """Tell each observer: ``observe(view, event, payload)`` on the loop's thread.

        Events: ``start`` (loop starts), ``window`` (payload: the Window just
        processed, scored or not), ``alert`` / ``sensor`` (payload: the dict
        just published), ``tick`` (every loop turn, at least every 0.5 s),
        ``stop`` (shutdown, after the last status). Observers must be quick
        and never block; one that fails is logged and the loop goes on.
        """
        for obs in self:
            try:
                obs.observe(view, event, payload)
            except Exception as exc:  # noqa: BLE001 - the page must never stop the monitoring
                name = type(obs).__name__
                n = self.failures[name] = self.failures.get(name, 0) + 1
                if n & (n - 1) == 0:  # failures 1, 2, 4, 8, ...: seen, without flooding the journal
                    self.log.error("observer failed", observer=name, hook=event, error=str(exc), failures=n)
