"""The MQTT side of the configuration: the broker password, and the ``mqtt:`` section's classes re-exported.

The section's schema (:class:`MqttConfig`, :class:`TlsConfig`: fields, defaults,
ranges) lives with every other section in :mod:`edge_monitor.config.schema` and is
re-exported here; the loader (:mod:`edge_monitor.config.loader`) validates it
with the rest of the file.

The password never lives in the YAML: it is read from :data:`PASSWORD_ENV`
or ``password_file`` (see :func:`load_password`). It is never logged.
"""

from __future__ import annotations

import os
from pathlib import Path

from edge_monitor.config.schema import DEFAULT_BASE_TOPIC, PASSWORD_ENV, PROTOCOLS, ConfigError, MqttConfig, TlsConfig

__all__ = [
    "DEFAULT_BASE_TOPIC",
    "PASSWORD_ENV",
    "PROTOCOLS",
    "MqttConfig",
    "MqttConfigError",
    "TlsConfig",
    "load_password",
]


class MqttConfigError(ConfigError, ValueError):
    """A bad ``mqtt:`` value or an unreadable password file; ``path`` names the key (``mqtt.port``)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(reason, key=path)
        self.path = path


def load_password(cfg: MqttConfig) -> str | None:
    """The broker password: ``$EDGE_MONITOR_MQTT_PASSWORD``, else the first line of ``password_file``.

    The environment overrides the file, as for every secret (a systemd
    ``LoadCredential=``/``Environment=`` drop-in can replace it without
    touching the config). Returns ``None`` when neither is set. Raises
    :class:`MqttConfigError` when the file cannot be read (never includes the
    password in the message).
    """
    env = os.environ.get(PASSWORD_ENV)
    if env:
        return env
    if cfg.password_file is not None:
        try:
            text = Path(cfg.password_file).read_text(encoding="utf-8")
        except OSError as err:
            raise MqttConfigError("mqtt.password_file", f"cannot read {cfg.password_file}: {err.strerror}") from None
        lines = text.splitlines()
        if not lines or not lines[0]:
            raise MqttConfigError("mqtt.password_file", f"{cfg.password_file} is empty")
        return lines[0]
    return None
