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

from devtools.broker import (
    Mosquitto,
    Received,
    Subscriber,
    free_port,
    publish_once,
    wait_port,
)

__all__ = ["Mosquitto", "Received", "Subscriber", "free_port", "publish_once", "wait_port"]
