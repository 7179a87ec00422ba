"""Home Assistant MQTT discovery payloads for one Edge Monitor device.

Three entities, grouped under one HA device:

* ``binary_sensor`` *Anomaly* (``device_class: problem``): ``<base>/state``,
  ``anomaly`` -> on, ``normal`` -> off.
* ``sensor`` *Anomaly score*: ``value_json.score`` from ``<base>/score``.
* ``binary_sensor`` *Microphone problem* (``device_class: problem``):
  ``<base>/microphone``, ``problem`` -> on, ``ok`` -> off.

Each config goes to ``<prefix>/<component>/<node_id>/<object_id>/config``,
retained, with ``unique_id``, ``availability_topic`` (``<base>/availability``,
``online``/``offline``), a ``device`` block and an ``origin`` block. Keys are
those documented at https://www.home-assistant.io/integrations/mqtt/ (discovery,
device and origin blocks), .../binary_sensor.mqtt/ and .../sensor.mqtt/.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from edge_monitor import __version__

SUPPORT_URL = "https://github.com/edge-monitor/edge-monitor"


@dataclass(frozen=True)
class Topics:
    """Every topic one device publishes under ``base``."""

    base: str

    @property
    def availability(self) -> str:
        return f"{self.base}/availability"

    @property
    def state(self) -> str:
        return f"{self.base}/state"

    @property
    def alert(self) -> str:
        return f"{self.base}/alert"

    @property
    def sensor(self) -> str:
        return f"{self.base}/sensor"

    @property
    def microphone(self) -> str:
        return f"{self.base}/microphone"

    @property
    def score(self) -> str:
        return f"{self.base}/score"

    @property
    def status(self) -> str:
        return f"{self.base}/status"


def node_id(device_id: str) -> str:
    """``device_id`` reduced to the characters HA allows in a discovery topic ([a-zA-Z0-9_-])."""
    return re.sub(r"[^a-zA-Z0-9_-]", "_", device_id) or "edge_monitor"


def device_block(device_id: str, model_info: Mapping[str, object] | None = None,
                 area: str | None = None) -> dict[str, object]:
    """The HA ``device`` block shared by all three entities.

    ``area``: ``mqtt.area``, Home Assistant's ``suggested_area`` (a place); absent when not configured.
    """
    model_info = model_info or {}
    block: dict[str, object] = {
        "identifiers": [f"edge_monitor_{node_id(device_id)}"],
        "name": f"Edge Monitor {device_id}",
        "manufacturer": "Edge Monitor",
        "model": f"Acoustic anomaly detector ({model_info.get('name') or 'autoencoder'})",
        "sw_version": __version__,
    }
    if area:
        block["suggested_area"] = area
    return block


def discovery_messages(
    prefix: str, device_id: str, topics: Topics, model_info: Mapping[str, object] | None = None,
    area: str | None = None
) -> list[tuple[str, dict[str, object]]]:
    """``[(config_topic, payload), ...]`` for the three entities (publish retained, QoS 1)."""
    node = node_id(device_id)
    common: dict[str, object] = {
        "availability_topic": topics.availability,
        "payload_available": "online",
        "payload_not_available": "offline",
        "device": device_block(device_id, model_info, area),
        "origin": {"name": "edge-monitor", "sw_version": __version__, "support_url": SUPPORT_URL},
        "qos": 1,
    }
    anomaly: dict[str, object] = {
        **common,
        "name": "Anomaly",
        "unique_id": f"edge_monitor_{node}_anomaly",
        "state_topic": topics.state,
        "payload_on": "anomaly",
        "payload_off": "normal",
        "device_class": "problem",
        "icon": "mdi:waveform",
    }
    score: dict[str, object] = {
        **common,
        "name": "Anomaly score",
        "unique_id": f"edge_monitor_{node}_score",
        "state_topic": topics.score,
        "value_template": "{{ value_json.score }}",
        "json_attributes_topic": topics.score,
        "state_class": "measurement",
        "suggested_display_precision": 4,
        "entity_category": "diagnostic",
        "icon": "mdi:chart-bell-curve",
        "qos": 0,
    }
    microphone: dict[str, object] = {
        **common,
        "name": "Microphone problem",
        "unique_id": f"edge_monitor_{node}_microphone",
        "state_topic": topics.microphone,
        "payload_on": "problem",
        "payload_off": "ok",
        "device_class": "problem",
        "entity_category": "diagnostic",
        "icon": "mdi:microphone-off",
    }
    return [
        (f"{prefix}/binary_sensor/{node}/anomaly/config", anomaly),
        (f"{prefix}/sensor/{node}/score/config", score),
        (f"{prefix}/binary_sensor/{node}/microphone/config", microphone),
    ]
