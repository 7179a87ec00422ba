"""The MQTT side of the configuration: the password, and the ``mqtt:`` section on its own.

The section's schema (:class:`MqttConfig`, :class:`TlsConfig`: fields, defaults,
ranges) lives with every other section in :mod:`edge_monitor.config.schema` and is
re-exported here. :func:`parse_mqtt_config` validates a plain mapping (as a
program or a test holds it) through the same walker; its error is a
:class:`MqttConfigError` whose ``path`` is the dotted key (``"mqtt.tls.ca_file"``)
and whose ``str()`` is ``"mqtt.tls.ca_file: file not found: /etc/x.pem"`` (no
file or line: there is no file).

The password never lives in the YAML: it is read from :data:`PASSWORD_ENV`
or ``password_file`` (see :func:`load_password`). It is never logged.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from edge_monitor.config.loader import _Walker
from edge_monitor.config.schema import DEFAULT_BASE_TOPIC, PASSWORD_ENV, PROTOCOLS, ConfigError, MqttConfig, TlsConfig

__all__ = [
    "DEFAULT_BASE_TOPIC",
    "PASSWORD_ENV",
    "PROTOCOLS",
    "MqttConfig",
    "MqttConfigError",
    "TlsConfig",
    "load_password",
    "parse_mqtt_config",
]


class MqttConfigError(ConfigError, ValueError):
    """A bad ``mqtt:`` value or an unreadable password file; ``path`` names the key (``mqtt.port``)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(reason, key=path)
        self.path = path


def parse_mqtt_config(raw: Mapping[str, Any] | None, base_dir: str | Path | None = None) -> MqttConfig:
    """Validate the raw ``mqtt:`` mapping (``None`` -> defaults) with the config walker.

    Relative ``password_file`` and ``tls.*_file`` paths are taken relative to
    ``base_dir`` (the config file's folder) when given, else to the cwd.
    Raises :class:`MqttConfigError` naming the first bad key; unknown keys are
    errors (a typo such as ``usename`` must not silently drop authentication).
    """
    # The walker reads YAML nodes (for line numbers); a mapping becomes one by a round trip.
    try:
        text = yaml.safe_dump(raw)
    except yaml.YAMLError as exc:
        raise MqttConfigError("mqtt", f"not plain data: {exc}") from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        walker = _Walker(loader, "<mqtt>", Path(base_dir) if base_dir is not None else Path.cwd())
        cfg: MqttConfig = walker.build(MqttConfig, node, "mqtt")
    except ConfigError as exc:
        raise MqttConfigError(exc.key or "mqtt", exc.reason) from None
    finally:
        loader.dispose()
    return cfg


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
