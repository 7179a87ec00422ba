"""Tools for the demo and the tests, not shipped: a local MQTT broker launcher and the demo runner."""
