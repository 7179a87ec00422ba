"""Home Assistant MQTT discovery: payloads against the documented schema, and the
retained / re-published behaviour against a real mosquitto."""

from __future__ import annotations

import re

import pytest

from edge_monitor.publish.discovery import Topics, discovery_messages
from edge_monitor.publish.publisher import Publisher
from tests.conftest import require_binary
from tests.mqtt_helpers import Mosquitto, Subscriber, mqtt_config, publish_once

# Documented configuration variables, from
#   https://www.home-assistant.io/integrations/binary_sensor.mqtt/  (Configuration Variables)
#   https://www.home-assistant.io/integrations/sensor.mqtt/         (Configuration Variables)
#   https://www.home-assistant.io/integrations/mqtt/  (discovery: "origin" block; device block keys)
COMMON_KEYS = {
    "availability", "availability_mode", "availability_template", "availability_topic", "default_entity_id",
    "device", "enabled_by_default", "encoding", "entity_category", "entity_picture", "expire_after",
    "force_update", "icon", "json_attributes_template", "json_attributes_topic", "name", "object_id",
    "origin", "payload_available", "payload_not_available", "platform", "qos", "state_topic", "unique_id",
    "value_template", "device_class",
}
BINARY_SENSOR_KEYS = COMMON_KEYS | {"off_delay", "payload_off", "payload_on"}
SENSOR_KEYS = COMMON_KEYS | {"last_reset_value_template", "options", "state_class",
                             "suggested_display_precision", "unit_of_measurement"}
DEVICE_KEYS = {"configuration_url", "connections", "hw_version", "identifiers", "manufacturer", "model",
               "model_id", "name", "serial_number", "suggested_area", "sw_version", "via_device"}
ORIGIN_KEYS = {"name", "sw_version", "support_url"}
ENTITY_CATEGORIES = {"config", "diagnostic"}
STATE_CLASSES = {"measurement", "measurement_angle", "total", "total_increasing"}
# <discovery_prefix>/<component>/[<node_id>/]<object_id>/config, ids of [a-zA-Z0-9_-]
TOPIC_RE = re.compile(r"^homeassistant/(binary_sensor|sensor)/([a-zA-Z0-9_-]+)/([a-zA-Z0-9_-]+)/config$")

DEVICE = "rail 7/a"  # awkward on purpose: a space and a slash must not leak into discovery topics
BASE = "edge-monitor/rail-7"
FAST = {"reconnect_min_s": 0.1, "reconnect_max_s": 0.5}


def test_payloads_use_only_documented_keys_and_values():
    topics = Topics(BASE)
    msgs = discovery_messages("homeassistant", DEVICE, topics, {"name": "ae", "machine": "slider"})
    assert len(msgs) == 3
    by_component: dict[str, list[dict]] = {"binary_sensor": [], "sensor": []}
    for topic, payload in msgs:
        m = TOPIC_RE.match(topic)
        assert m, topic
        component = m.group(1)
        by_component[component].append(payload)
        allowed = BINARY_SENSOR_KEYS if component == "binary_sensor" else SENSOR_KEYS
        assert set(payload) <= allowed, set(payload) - allowed
        assert set(payload["device"]) <= DEVICE_KEYS
        assert set(payload["origin"]) <= ORIGIN_KEYS and payload["origin"]["name"]
        assert payload["device"]["identifiers"] and payload["device"]["name"]
        assert payload["availability_topic"] == topics.availability
        assert (payload["payload_available"], payload["payload_not_available"]) == ("online", "offline")
        assert payload["state_topic"].startswith(BASE + "/")
        assert payload.get("entity_category", "diagnostic") in ENTITY_CATEGORIES
        assert payload["qos"] in (0, 1, 2)
        assert "/" not in payload["unique_id"] and " " not in payload["unique_id"]

    # Home Assistant's suggested_area is a place, from mqtt.area, never the machine type.
    assert all("suggested_area" not in p["device"] for _, p in msgs)
    placed = discovery_messages("homeassistant", DEVICE, topics, {"name": "ae", "machine": "slider"}, "Line 2")
    assert {p["device"]["suggested_area"] for _, p in placed} == {"Line 2"}

    anomaly, microphone = by_component["binary_sensor"]
    assert anomaly["device_class"] == microphone["device_class"] == "problem"
    assert anomaly["state_topic"] == topics.state
    assert (anomaly["payload_on"], anomaly["payload_off"]) == ("anomaly", "normal")
    assert microphone["name"] == "Microphone problem"
    assert microphone["state_topic"] == topics.microphone
    assert (microphone["payload_on"], microphone["payload_off"]) == ("problem", "ok")
    (score,) = by_component["sensor"]
    assert score["state_topic"] == topics.score and "value_json.score" in score["value_template"]
    assert score["state_class"] in STATE_CLASSES
    assert "device_class" not in score  # a bare number has no HA sensor device class

    unique_ids = [p["unique_id"] for _, p in msgs]
    assert len(set(unique_ids)) == 3
    assert all(p["device"] == msgs[0][1]["device"] for _, p in msgs)  # one HA device


@pytest.fixture
def broker(tmp_path):
    with Mosquitto(tmp_path, require_binary("mosquitto")) as b:
        yield b


def configs(msgs):
    return [m for m in msgs if m.topic.startswith("homeassistant/") and m.topic.endswith("/config")]


def test_discovery_is_retained_and_resent_when_home_assistant_comes_online(broker, tmp_path):
    cfg = mqtt_config({"host": "127.0.0.1", "port": broker.port, **FAST})
    pub = Publisher(cfg, "rail-7", tmp_path / "o.db", {"name": "ae"})
    pub.start()
    try:
        # Home Assistant starting after the device: the retained configs are there for it. The
        # publisher sends "online" after the configs on the same connection, so once a subscriber
        # sees "online" the broker holds the configs.
        with Subscriber(broker.port, f"{BASE}/availability") as device_watch:
            device_watch.wait_for(lambda ms: any(m.text == "online" for m in ms), what="online")
        with Subscriber(broker.port, "homeassistant/#", f"{BASE}/availability") as ha:
            first = ha.wait_for(lambda ms: len(configs(ms)) >= 3 and ha.on(f"{BASE}/availability"),
                                what="3 retained discovery configs and the retained availability")
            assert all(m.retain and m.qos == 1 for m in configs(first))
            assert {m.topic for m in configs(first)} == {
                "homeassistant/binary_sensor/rail-7/anomaly/config",
                "homeassistant/sensor/rail-7/score/config",
                "homeassistant/binary_sensor/rail-7/microphone/config",
            }
            assert [m.text for m in ha.on(f"{BASE}/availability")] == ["online"]
            sent_before = pub.stats()["discovery_sent"]

            # Home Assistant restarts and announces itself: everything is sent again, live.
            publish_once(broker.port, "homeassistant/status", "online")
            again = ha.wait_for(lambda ms: len(configs(ms)) >= 6, what="discovery re-sent")
            assert {m.topic for m in configs(again)[3:]} == {m.topic for m in configs(first)}
            assert all(not m.retain for m in configs(again)[3:])  # live delivery, not the retained copy
            assert {m.topic: m.json() for m in configs(again)[3:]} == {m.topic: m.json() for m in configs(first)}
            assert pub.stats()["discovery_sent"] == sent_before + 1
            ha.wait_for(lambda ms: len(ha.on(f"{BASE}/availability")) >= 2, what="online re-sent")
            # ("offline" from Home Assistant triggers nothing: tests/test_mqtt_logic.py, no broker needed.)
    finally:
        pub.stop(timeout=2.0)


def test_scores_off_removes_the_score_entity(broker, tmp_path):
    cfg = mqtt_config({"host": "127.0.0.1", "port": broker.port, "publish_scores": False, **FAST})
    with Subscriber(broker.port, "homeassistant/#", f"{BASE}/score", f"{BASE}/alert", persistent=False) as ha:
        pub = Publisher(cfg, "rail-7", tmp_path / "o.db", {})
        pub.start()
        try:
            msgs = ha.wait_for(lambda ms: len(configs(ms)) >= 3, what="discovery")
            score_cfg = [m for m in configs(msgs) if "/sensor/" in m.topic]
            assert [m.payload for m in score_cfg] == [b""] and score_cfg[0].retain
            pub.publish_score({"score": 0.5})
            pub.publish_alert({"event_id": "sentinel", "event": "start"})  # goes out after any score would
            ha.wait_topic(f"{BASE}/alert")
            assert ha.on(f"{BASE}/score") == []
        finally:
            pub.stop(timeout=2.0)


def test_discovery_off_publishes_no_configs(broker, tmp_path):
    cfg = mqtt_config({"host": "127.0.0.1", "port": broker.port, "discovery": False, **FAST})
    with Subscriber(broker.port, "homeassistant/#", f"{BASE}/availability", f"{BASE}/alert") as ha:
        pub = Publisher(cfg, "rail-7", tmp_path / "o.db", {})
        pub.start()
        try:
            ha.wait_topic(f"{BASE}/availability")  # sent after the configs there would have been
            assert pub.stats()["discovery_sent"] == 0
            publish_once(broker.port, "homeassistant/status", "online")
            pub.publish_alert({"event_id": "sentinel", "event": "start"})
            ha.wait_topic(f"{BASE}/alert")
            assert configs(ha.messages) == []
        finally:
            pub.stop(timeout=2.0)
