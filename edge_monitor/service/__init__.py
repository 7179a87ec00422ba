"""The daemon that ties capture, model, decision and publishing together; protocols, sd_notify, logging."""
