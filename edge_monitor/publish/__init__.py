"""MQTT out: publisher, connection, delivery, retained values, transport, the SQLite outbox, HA discovery."""
