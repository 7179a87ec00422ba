"""Configuration: the typed YAML schema and its MQTT section. Imports nothing else of edge_monitor but util."""
