"""The ``mqtt:`` section of the daemon's YAML, validated into frozen dataclasses.

Contract with ``config.py``: :func:`parse_mqtt_config` takes the raw mapping
found under ``mqtt:`` (or ``None`` when the section is absent) and either
returns an :class:`MqttConfig` or raises :class:`MqttConfigError`. The error is
a ``ValueError`` whose ``path`` attribute is the dotted key path
(``"mqtt.tls.ca_file"``) and whose ``reason`` is the readable rest; ``str(err)``
is ``"mqtt.tls.ca_file: file not found: /etc/x.pem"``. ``config.py`` adds the
YAML file name and line number for ``path``.

The password never lives in the YAML: it is read from ``password_file`` or,
when that is not set, from the environment variable
``EDGE_MONITOR_MQTT_PASSWORD`` (see :func:`load_password`). It is never logged.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PASSWORD_ENV = "EDGE_MONITOR_MQTT_PASSWORD"
DEFAULT_BASE_TOPIC = "edge-monitor/{device_id}"
PROTOCOLS = ("3.1.1", "5")


class MqttConfigError(ValueError):
    """A bad value in the ``mqtt:`` section; ``path`` names the key (``mqtt.port``)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass(frozen=True)
class TlsConfig:
    """TLS to the broker. ``ca_file`` verifies the broker; ``cert_file``/``key_file``
    are the optional client certificate. ``insecure`` skips the host name check
    (the certificate chain is still verified) for brokers addressed by an IP that
    is not in their certificate."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    insecure: bool = False


@dataclass(frozen=True)
class MqttConfig:
    """Everything the publisher needs to reach the broker and name its topics.

    Times are in seconds. ``base_topic`` may contain ``{device_id}``.
    ``outbox_max_messages`` bounds the durable outbox (alerts, sensor events and
    scores queued while the broker is unreachable).
    """

    enabled: bool = True
    host: str = "localhost"
    port: int = 1883
    base_topic: str = DEFAULT_BASE_TOPIC
    username: str | None = None
    password_file: Path | None = None
    tls: TlsConfig | None = None
    discovery: bool = True
    discovery_prefix: str = "homeassistant"
    client_id: str | None = None
    keepalive: int = 30
    qos: int = 1
    publish_scores: bool = True
    status_interval_s: float = 60.0
    outbox_max_messages: int = 10000
    protocol: str = "3.1.1"
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 60.0
    connect_timeout_s: float = 10.0

    def topic_base(self, device_id: str) -> str:
        """The base topic with ``{device_id}`` filled in, without a trailing slash."""
        return self.base_topic.replace("{device_id}", device_id).rstrip("/")


_KNOWN = {
    "enabled", "host", "port", "base_topic", "username", "password_file", "tls",
    "discovery", "discovery_prefix", "client_id", "keepalive", "qos",
    "publish_scores", "status_interval_s", "outbox_max_messages", "protocol",
    "reconnect_min_s", "reconnect_max_s", "connect_timeout_s",
}
_TLS_KNOWN = {"ca_file", "cert_file", "key_file", "insecure"}


def _bool(raw: Mapping, key: str, default: bool, prefix: str = "mqtt") -> bool:
    value = raw.get(key, default)
    if not isinstance(value, bool):
        raise MqttConfigError(f"{prefix}.{key}", f"expected true or false, got {value!r}")
    return value


def _int(raw: Mapping, key: str, default: int, lo: int, hi: int) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise MqttConfigError(f"mqtt.{key}", f"expected an integer, got {value!r}")
    if not lo <= value <= hi:
        raise MqttConfigError(f"mqtt.{key}", f"must be between {lo} and {hi}, got {value}")
    return value


def _float(raw: Mapping, key: str, default: float, lo: float) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MqttConfigError(f"mqtt.{key}", f"expected a number of seconds, got {value!r}")
    if value < lo:
        raise MqttConfigError(f"mqtt.{key}", f"must be at least {lo}, got {value}")
    return float(value)


def _str(raw: Mapping, key: str, default: str | None, prefix: str = "mqtt") -> str | None:
    value = raw.get(key, default)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise MqttConfigError(f"{prefix}.{key}", f"expected a non-empty string, got {value!r}")
    return value.strip()


def _file(raw: Mapping, key: str, prefix: str, base_dir: Path | None = None) -> Path | None:
    value = _str(raw, key, None, prefix)
    if value is None:
        return None
    path = Path(value).expanduser()
    if base_dir is not None and not path.is_absolute():
        path = Path(base_dir) / path
    if not path.is_file():
        raise MqttConfigError(f"{prefix}.{key}", f"file not found: {path}")
    if not os.access(path, os.R_OK):
        raise MqttConfigError(f"{prefix}.{key}", f"file not readable: {path}")
    return path


def _topic(raw: Mapping, key: str, default: str) -> str:
    value = _str(raw, key, default)
    assert value is not None
    if any(ch in value for ch in "+#\0"):
        raise MqttConfigError(f"mqtt.{key}", f"a topic may not contain '+', '#' or NUL: {value!r}")
    return value.strip("/")


def parse_tls(raw: Any, base_dir: Path | None = None) -> TlsConfig | None:
    """Validate ``mqtt.tls``: ``None``/``false`` -> no TLS, ``true`` -> system CAs."""
    if raw is None or raw is False:
        return None
    if raw is True:
        return TlsConfig()
    if not isinstance(raw, Mapping):
        raise MqttConfigError("mqtt.tls", f"expected a mapping (ca_file, cert_file, key_file), got {raw!r}")
    unknown = sorted(set(raw) - _TLS_KNOWN)
    if unknown:
        raise MqttConfigError(f"mqtt.tls.{unknown[0]}", f"unknown key (known: {', '.join(sorted(_TLS_KNOWN))})")
    tls = TlsConfig(
        ca_file=_file(raw, "ca_file", "mqtt.tls", base_dir),
        cert_file=_file(raw, "cert_file", "mqtt.tls", base_dir),
        key_file=_file(raw, "key_file", "mqtt.tls", base_dir),
        insecure=_bool(raw, "insecure", False, "mqtt.tls"),
    )
    if tls.key_file is not None and tls.cert_file is None:
        raise MqttConfigError("mqtt.tls.key_file", "given without mqtt.tls.cert_file")
    return tls


def parse_mqtt_config(raw: Mapping[str, Any] | None, base_dir: str | Path | None = None) -> MqttConfig:
    """Validate the raw ``mqtt:`` mapping (``None`` -> defaults).

    Relative ``password_file`` and ``tls.*_file`` paths are taken relative to
    ``base_dir`` (the config file's folder) when given, else to the cwd.

    Raises :class:`MqttConfigError` naming the first bad key. Unknown keys are
    errors (a typo such as ``usename`` must not silently drop authentication).
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise MqttConfigError("mqtt", f"expected a mapping, got {type(raw).__name__}")
    if "password" in raw:
        raise MqttConfigError("mqtt.password", f"not allowed in the YAML: use mqtt.password_file or ${PASSWORD_ENV}")
    unknown = sorted(set(raw) - _KNOWN)
    if unknown:
        raise MqttConfigError(f"mqtt.{unknown[0]}", f"unknown key (known: {', '.join(sorted(_KNOWN))})")

    base = Path(base_dir) if base_dir is not None else None
    tls = parse_tls(raw.get("tls"), base)
    protocol = str(raw.get("protocol", "3.1.1"))
    if protocol in ("3.1.1", "311", "3"):
        protocol = "3.1.1"
    elif protocol in ("5", "5.0"):
        protocol = "5"
    else:
        raise MqttConfigError("mqtt.protocol", f"expected 3.1.1 or 5, got {raw.get('protocol')!r}")

    default_port = 8883 if tls is not None else 1883
    cfg = MqttConfig(
        enabled=_bool(raw, "enabled", True),
        host=_str(raw, "host", "localhost") or "localhost",
        port=_int(raw, "port", default_port, 1, 65535),
        base_topic=_topic(raw, "base_topic", DEFAULT_BASE_TOPIC),
        username=_str(raw, "username", None),
        password_file=_file(raw, "password_file", "mqtt", base),
        tls=tls,
        discovery=_bool(raw, "discovery", True),
        discovery_prefix=_topic(raw, "discovery_prefix", "homeassistant"),
        client_id=_str(raw, "client_id", None),
        keepalive=_int(raw, "keepalive", 30, 1, 65535),
        qos=_int(raw, "qos", 1, 1, 2),
        publish_scores=_bool(raw, "publish_scores", True),
        status_interval_s=_float(raw, "status_interval_s", 60.0, 1.0),
        outbox_max_messages=_int(raw, "outbox_max_messages", 10000, 10, 10_000_000),
        protocol=protocol,
        reconnect_min_s=_float(raw, "reconnect_min_s", 1.0, 0.05),
        reconnect_max_s=_float(raw, "reconnect_max_s", 60.0, 0.05),
        connect_timeout_s=_float(raw, "connect_timeout_s", 10.0, 0.5),
    )
    if cfg.reconnect_max_s < cfg.reconnect_min_s:
        raise MqttConfigError("mqtt.reconnect_max_s", "must not be smaller than mqtt.reconnect_min_s")
    if cfg.password_file is not None and cfg.username is None:
        raise MqttConfigError("mqtt.password_file", "given without mqtt.username")
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
