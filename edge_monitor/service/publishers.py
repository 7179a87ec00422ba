"""Publishers the daemon is given besides the MQTT one: nowhere, and MQTT plus a JSON line per event.

:func:`make_publisher` picks the MQTT :class:`edge_monitor.publish.publisher.Publisher`
or :class:`NullPublisher` from the config; ``simulate`` wraps either in an
:class:`EchoPublisher`. All satisfy :class:`edge_monitor.service.protocols.PublisherLike`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TextIO

from edge_monitor.config.schema import Config
from edge_monitor.publish.messages import Payload
from edge_monitor.publish.state_dir import prepare_state_dir
from edge_monitor.service.protocols import Logger, PublisherLike

__all__ = ["EchoPublisher", "NullPublisher", "make_publisher"]


class NullPublisher:
    """A publisher that publishes nothing (``mqtt.enabled: false``, ``simulate --no-mqtt``)."""

    def start(self) -> None:
        pass

    def publish_alert(self, payload: Payload) -> None:
        pass

    def publish_sensor(self, payload: Payload) -> None:
        pass

    def set_state(self, state: str) -> None:
        pass

    def set_microphone(self, state: str) -> None:
        pass

    def publish_score(self, payload: Payload) -> None:
        pass

    def publish_status(self, payload: Payload) -> None:
        pass

    def stats(self) -> Payload:
        return {"connected": False, "broker": None}

    def stop(self, timeout: float = 5.0) -> None:
        pass


class EchoPublisher:
    """Wraps a publisher and also prints each alert and sensor event as one JSON line.

    ``simulate`` uses it on stdout so that a run shows its alerts (and tests
    can read them) with or without a broker.
    """

    def __init__(self, inner: PublisherLike, stream: TextIO | None = None) -> None:
        self.inner = inner
        self.stream = stream if stream is not None else sys.stdout

    def _echo(self, topic: str, payload: Payload) -> None:
        self.stream.write(json.dumps({"topic": topic, **payload}, sort_keys=True) + "\n")
        self.stream.flush()

    def start(self) -> None:
        self.inner.start()

    def publish_alert(self, payload: Payload) -> None:
        self.inner.publish_alert(payload)
        self._echo("alert", payload)

    def publish_sensor(self, payload: Payload) -> None:
        self.inner.publish_sensor(payload)
        self._echo("sensor", payload)

    def set_state(self, state: str) -> None:
        self.inner.set_state(state)

    def set_microphone(self, state: str) -> None:
        self.inner.set_microphone(state)

    def publish_score(self, payload: Payload) -> None:
        self.inner.publish_score(payload)

    def publish_status(self, payload: Payload) -> None:
        self.inner.publish_status(payload)

    def stats(self) -> Payload:
        return self.inner.stats()

    def stop(self, timeout: float = 5.0) -> None:
        self.inner.stop(timeout)


def make_publisher(cfg: Config, model_info: Payload, log: Logger, outbox: Path | None = None) -> PublisherLike:
    """The MQTT publisher for ``cfg`` (or a :class:`NullPublisher` when ``mqtt.enabled`` is false).

    ``outbox``: the SQLite outbox (default ``cfg.outbox_path``; ``simulate`` passes one of its own).
    """
    if not cfg.mqtt.enabled:
        log.info("mqtt disabled: alerts are logged only")
        return NullPublisher()
    from edge_monitor.publish.publisher import Publisher  # noqa: PLC0415 - paho loads only when used

    prepare_state_dir(cfg.state_dir, log)
    path = outbox if outbox is not None else cfg.outbox_path
    return Publisher(cfg.mqtt, cfg.device_id, path, model_info)  # never fails on the disk
