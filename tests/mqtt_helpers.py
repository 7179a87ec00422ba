"""Real-broker helpers for tests: a mosquitto per test on a free 127.0.0.1 port, and a subscriber
that records what actually arrives.

They live in :mod:`devtools.broker`, with the demo's broker and alert printer, so that there is one
mosquitto launcher and one subscriber; this module keeps the tests' import path. Usage::

    from tests.conftest import require_binary
    from tests.mqtt_helpers import Mosquitto, Subscriber

    def test_x(tmp_path):
        with Mosquitto(tmp_path, require_binary("mosquitto")) as broker:
            with Subscriber(broker.port, "edge-monitor/#") as sub:
                ...
                sub.wait_for(lambda ms: len(sub.on("edge-monitor/dev/alert")) >= 2)

See :class:`devtools.broker.Subscriber` for what ``Received.retain`` means in its modes.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from devtools.broker import (
    Mosquitto,
    Received,
    Subscriber,
    free_port,
    publish_once,
    wait_port,
)
from edge_monitor.config.loader import parse_config
from edge_monitor.config.schema import MqttConfig

__all__ = ["Mosquitto", "Received", "Subscriber", "free_port", "mqtt_config", "publish_once", "wait_port"]


def mqtt_config(raw: Mapping[str, Any] | list[Any] | None, base_dir: Path | None = None) -> MqttConfig:
    """The ``mqtt:`` section ``raw`` (``None``: no section) of a minimal config file, as the daemon
    loads it: relative paths against ``base_dir`` (else the cwd); a bad value raises the loader's
    :class:`edge_monitor.config.schema.ConfigError` naming the key."""
    text = "device_id: test\nmodel: model\n" + ("" if raw is None else yaml.safe_dump({"mqtt": raw}))
    return parse_config(text, "<test>", base_dir).mqtt
