"""The daemon's YAML configuration, validated into frozen dataclasses.

``load_config(path) -> Config`` reads the file with PyYAML's composer so that
every value keeps its line number, then walks the node tree against the
dataclasses below. Anything wrong (bad YAML, an unknown key, a wrong type, a
value out of range, a missing required key) raises :class:`ConfigError` whose
message is one line::

    /etc/edge-monitor/config.yaml:12: decision.k: must be between 1 and 1000, got 0

Callers exit with :data:`EX_CONFIG` (78), which the systemd unit lists in
``RestartPreventExitStatus=`` so that a bad file does not restart-loop.

One schema: every section, ``mqtt:`` included, is a dataclass below whose
fields carry their default and their limits (:func:`_opt`), and one walker
(:class:`_Walker`) checks the YAML against them. Rules that tie two keys
together are each section's ``cross_check()``. We keep this walker rather
than a schema library: it is a few hundred lines on PyYAML, which the daemon
loads anyway (+4.5 MiB peak RSS over a bare interpreter with the example
config loaded), while pydantic would add ~300 ms of start-up and ~14 MiB more
(numbers in docs/daemon.md) and still need this node walk for line numbers.

Existing key names are kept as they are (users' files must keep working); new
keys only extend them. Relative paths (``model``, ``state_dir``,
``evidence.dir``, ``mqtt.password_file``, ``mqtt.tls.*_file``) are resolved
against the directory of the config file. The MQTT password is never in the
YAML: ``mqtt.password_file`` or the environment variable :data:`PASSWORD_ENV`
(read by :func:`edge_monitor.config.mqtt.load_password`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, TypeVar

__all__ = [
    "EX_CONFIG",
    "PASSWORD_ENV",
    "ConfigError",
    "AudioConfig",
    "DecisionConfig",
    "EvidenceConfig",
    "HttpConfig",
    "LoggingConfig",
    "Config",
    "MqttConfig",
    "TlsConfig",
]

EX_CONFIG = 78  # sysexits.h: configuration error; systemd does not restart on it
PASSWORD_ENV = "EDGE_MONITOR_MQTT_PASSWORD"

_T = TypeVar("_T")


class ConfigError(Exception):
    """A configuration problem; ``str(exc)`` is one line: ``FILE:LINE: key.path: what``."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None, key: str | None = None):
        self.file, self.line, self.key, self.reason = file, line, key, message
        where = ""
        if file is not None:
            where = f"{file}:{line}: " if line is not None else f"{file}: "
        if key:
            where += f"{key}: "
        super().__init__(where + message)


def _meta(*, doc: str = "", min: float | None = None, max: float | None = None, gt: float | None = None,
          choices: tuple[object, ...] | None = None, pattern: str | None = None, exists: str | None = None,
          toggle: bool = False, convert: Callable[[object], object] | None = None,
          default_from: Callable[[Mapping[str, object]], object] | None = None) -> dict[str, object]:
    """The metadata the walker validates a field against.

    Args:
        min, max, gt: inclusive bounds (``gt``: strictly greater than).
        choices, pattern: allowed values; a regular expression a string must match whole.
        exists: ``"file"``: a path must name a readable file.
        toggle: a section that ``true`` turns on with its defaults and ``false`` turns off (``None``).
        convert: replaces the type check: takes the YAML scalar, returns the value or raises
            ``ValueError(reason)``.
        default_from: computes the default from the section's given values (``port`` from ``tls``).
    """
    return {"doc": doc, "min": min, "max": max, "gt": gt, "choices": choices, "pattern": pattern,
            "exists": exists, "toggle": toggle, "convert": convert, "default_from": default_from}


def _opt(default: _T, *, doc: str = "", min: float | None = None,
         max: float | None = None, gt: float | None = None, choices: tuple[object, ...] | None = None,
         pattern: str | None = None, exists: str | None = None,
         toggle: bool = False, convert: Callable[[object], object] | None = None,
         default_from: Callable[[Mapping[str, object]], object] | None = None) -> _T:
    """A dataclass field with a default and the metadata the walker validates against (see :func:`_meta`)."""
    return field(default=default, metadata=_meta(doc=doc, min=min, max=max, gt=gt, choices=choices,
                                                 pattern=pattern, exists=exists, toggle=toggle,
                                                 convert=convert, default_from=default_from))


def _section(factory: Callable[[], _T]) -> _T:
    """A dataclass field holding a section, its defaults from ``factory``."""
    return field(default_factory=factory, metadata=_meta())


# --- the mqtt: section --------------------------------------------------------------
# Checks beyond a type and a range are plain functions named in the field's metadata
# (``convert`` replaces the type check for the raw scalar, ``default_from`` derives a default
# from the section's other values): the walker below stays the one place that reads YAML.

DEFAULT_BASE_TOPIC = "edge-monitor/{device_id}"
PROTOCOLS = ("3.1.1", "5")


def _topic(value: object) -> str:
    """A topic prefix: a non-empty string without wildcards, surrounding ``/`` removed."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"must be a non-empty string, got {value!r}")
    if any(ch in value for ch in "+#\0"):
        raise ValueError(f"a topic may not contain '+', '#' or NUL: {value!r}")
    return value.strip().strip("/")


def _protocol(value: object) -> str:
    """MQTT protocol version: ``3.1.1`` (also ``311``, ``3``) or ``5`` (also ``5.0``)."""
    text = str(value)
    if text in ("3.1.1", "311", "3"):
        return "3.1.1"
    if text in ("5", "5.0"):
        return "5"
    raise ValueError(f"expected 3.1.1 or 5, got {value!r}")


@dataclass(frozen=True)
class TlsConfig:
    """TLS to the broker (``mqtt.tls``; ``true`` = system CAs, ``null``/``false`` = plain TCP).

    Attributes:
        ca_file: CA certificate that verifies the broker; ``None`` = system CAs.
        cert_file, key_file: optional client certificate and its key.
        insecure: skip the host name check (the chain is still verified), for
            brokers addressed by an IP that is not in their certificate.
    """

    ca_file: Path | None = _opt(None, exists="file")
    cert_file: Path | None = _opt(None, exists="file")
    key_file: Path | None = _opt(None, exists="file")
    insecure: bool = False

    def cross_check(self) -> tuple[str, str] | None:
        if self.key_file is not None and self.cert_file is None:
            return "key_file", "given without mqtt.tls.cert_file"
        return None


@dataclass(frozen=True)
class MqttConfig:
    """Everything the publisher needs to reach the broker and name its topics.

    Times are in seconds. ``base_topic`` may contain ``{device_id}``.
    ``outbox_max_messages`` bounds the durable outbox (alerts, sensor events and
    scores queued while the broker is unreachable). ``port`` defaults to 8883
    with TLS, else 1883. The password is never a key here (``password:`` is
    rejected): see :data:`PASSWORD_ENV` and ``password_file``.
    """

    REJECTED_KEYS: ClassVar[dict[str, str]] = {
        "password": f"not allowed in the YAML: use mqtt.password_file or ${PASSWORD_ENV}",
    }

    enabled: bool = _opt(True, doc="false = no broker: alerts are only logged")
    host: str = "localhost"
    port: int = _opt(1883, min=1, max=65535, default_from=lambda v: 8883 if v.get("tls") is not None else 1883)
    base_topic: str = _opt(DEFAULT_BASE_TOPIC, convert=_topic)
    username: str | None = None
    password_file: Path | None = _opt(None, exists="file")
    tls: TlsConfig | None = _opt(None, toggle=True)
    discovery: bool = True
    discovery_prefix: str = _opt("homeassistant", convert=_topic)
    area: str | None = _opt(None, doc="Home Assistant suggested_area (where the machine is, e.g. 'Line 2'); "
                                      "null = none")
    client_id: str | None = None
    keepalive: int = _opt(30, min=1, max=65535)
    qos: int = _opt(1, min=1, max=2, doc="alert and sensor events; scores are always QoS 0")
    publish_scores: bool = True
    status_interval_s: float = _opt(60.0, min=1.0)
    outbox_max_messages: int = _opt(10000, min=10, max=10_000_000)
    protocol: str = _opt("3.1.1", convert=_protocol, choices=PROTOCOLS)
    reconnect_min_s: float = _opt(1.0, min=0.05)
    reconnect_max_s: float = _opt(60.0, min=0.05)
    connect_timeout_s: float = _opt(10.0, min=0.5)

    def topic_base(self, device_id: str) -> str:
        """The base topic with ``{device_id}`` filled in, without a trailing slash."""
        return self.base_topic.replace("{device_id}", device_id).rstrip("/")

    def cross_check(self) -> tuple[str, str] | None:
        if self.reconnect_max_s < self.reconnect_min_s:
            return "reconnect_max_s", "must not be smaller than mqtt.reconnect_min_s"
        if self.password_file is not None and self.username is None:
            return "password_file", "given without mqtt.username"
        return None


@dataclass(frozen=True)
class AudioConfig:
    """Where the audio comes from and how often a window is scored.

    Attributes:
        device: input device: a substring of its name (preferred: indices
            change when USB devices come and go) or a PortAudio index;
            ``None`` = the system default input.
        hop_seconds: seconds between the starts of consecutive scored windows
            (the window length itself is the model's, 10 s by default).
        sample_rate: capture rate in Hz; ``None`` = the model's rate (16 kHz)
            when the device accepts it, else the device's default rate, then
            resampled per window.
        channels: channels to open on the device.
        channel: which opened channel to use (0-based); ``None`` = the mean of
            all opened channels.
        block_seconds: PortAudio callback block length (s).
        stall_seconds: no audio for this long means the device is lost (s).
        retry_max_seconds: ceiling of the reconnect back-off (s).
        max_dropout_fraction: a window whose only sensor fault is dropouts is
            still scored, on its other frames, while the dropouts touch at
            most this share of its log-mel frames (0.1: about 0.9 s of a
            10 s window); 0 skips every window with a dropout.
    """

    device: int | str | None = _opt(None, doc="name substring or index; null = system default")
    hop_seconds: float = _opt(10.0, gt=0, max=3600, doc="how often a window is scored")
    sample_rate: int | None = _opt(None, min=8000, max=384000)
    channels: int = _opt(1, min=1, max=64)
    channel: int | None = _opt(None, min=0, max=63)
    block_seconds: float = _opt(0.1, min=0.005, max=2.0)
    stall_seconds: float = _opt(5.0, min=0.5, max=600)
    retry_max_seconds: float = _opt(30.0, min=1, max=3600)
    max_dropout_fraction: float = _opt(0.1, min=0.0, max=0.5,
                                       doc="windows with dropouts on at most this share of frames are scored")

    def cross_check(self) -> tuple[str, str] | None:
        if self.channel is not None and self.channel >= self.channels:
            return "channel", f"must be below audio.channels ({self.channels}), got {self.channel}"
        return None


@dataclass(frozen=True)
class DecisionConfig:
    """The alert rule (see :mod:`edge_monitor.decide.decision`).

    Attributes:
        threshold: anomaly-score threshold; ``None`` = the bundle's.
        k, n: an alert opens when ``k`` of the last ``n`` windows exceed it.
        clear_windows: it closes after this many consecutive windows below
            the clear level (hysteresis; see ``clear_ratio``).
        clear_ratio: where the clear level sits between the typical normal
            score B (the bundle's median validation score) and the threshold T:
            ``B + clear_ratio * (T - B)``.
        cooldown_seconds: after an alert closes, no new one opens for this
            long (window time, s).
    """

    threshold: float | None = _opt(None, gt=0)
    k: int = _opt(2, min=1, max=1000)
    n: int = _opt(3, min=1, max=1000)
    clear_windows: int = _opt(3, min=1, max=1000)
    clear_ratio: float = _opt(0.5, gt=0, max=1.0)
    cooldown_seconds: float = _opt(60.0, min=0, max=86400)

    def cross_check(self) -> tuple[str, str] | None:
        if self.k > self.n:
            return "k", f"must not exceed decision.n ({self.n}), got {self.k}"
        return None


@dataclass(frozen=True)
class EvidenceConfig:
    """WAV evidence of the strongest window that raised each alert.

    Attributes:
        enabled: save it.
        max_mb: disk quota of the evidence folder in MB (10**6 bytes);
            oldest files are deleted first.
        dir: folder; ``None`` = ``<state_dir>/evidence``.
    """

    enabled: bool = True
    max_mb: float = _opt(200.0, gt=0, max=1_000_000)
    dir: Path | None = None


@dataclass(frozen=True)
class HttpConfig:
    """The operator's web page and Prometheus metrics (:mod:`edge_monitor.web.server`).

    The whole section absent means no server. Read-only: GET/HEAD of ``/``,
    ``/api/status``, ``/metrics`` and ``/evidence/<file>``.

    Attributes:
        listen: ``HOST:PORT`` to bind (``[::1]:8088`` for IPv6); port 0 picks
            a free port (logged). A non-loopback host (a LAN address,
            ``0.0.0.0``) requires ``token_env``.
        token_env: name of an environment variable holding the access token;
            requests must then carry ``Authorization: Bearer <token>`` or
            ``?token=<token>``. Like the MQTT password, the token itself is
            never in the YAML.
        history_seconds: how much score history the page's chart gets (s).
    """

    listen: str = _opt("127.0.0.1:8088", pattern=r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):[0-9]{1,5}",
                       doc="HOST:PORT; loopback unless a token is set")
    token_env: str | None = _opt(None, pattern=r"[A-Za-z_][A-Za-z0-9_]*", doc="env variable with the token")
    history_seconds: float = _opt(3600.0, min=60, max=86400)

    @property
    def host(self) -> str:
        """The host part of ``listen`` (IPv6 without brackets)."""
        return split_listen(self.listen)[0]

    def cross_check(self) -> tuple[str, str] | None:
        """``listen`` parses, and an address reachable from the network has a token."""
        try:
            host, port = split_listen(self.listen)
        except ValueError as exc:
            return "listen", str(exc)
        if port > 65535:
            return "listen", f"port must be at most 65535, got {port}"
        if not is_loopback_host(host) and self.token_env is None:
            return "listen", (f"{host} is reachable from the network: set http.token_env (an environment "
                              "variable holding an access token), or listen on 127.0.0.1")
        return None

    @property
    def port(self) -> int:
        return split_listen(self.listen)[1]

    @property
    def loopback(self) -> bool:
        """``True`` when ``listen`` binds only to this machine (127.0.0.0/8, ::1, localhost)."""
        return is_loopback_host(self.host)


def split_listen(listen: str) -> tuple[str, int]:
    """``"HOST:PORT"`` / ``"[V6]:PORT"`` -> ``(host, port)``; ``ValueError`` when malformed."""
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"must be HOST:PORT, got {listen!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` (an IP literal or ``localhost``) is a loopback address; names are not."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything, so it needs a token


@dataclass(frozen=True)
class LoggingConfig:
    """Log level and format (the command line's ``--log-*`` options win)."""

    level: str = _opt("info", choices=("debug", "info", "warning", "error"))
    format: str = _opt("auto", choices=("auto", "console", "json"))


@dataclass(frozen=True)
class Config:
    """The whole configuration file.

    Attributes:
        device_id: this monitor's id, used in MQTT topics and Home Assistant
            unique ids: letters, digits, ``-`` and ``_``.
        model: model bundle directory.
        state_dir: outbox, evidence and other state.
        num_threads: TFLite interpreter threads.
        http: the status page and metrics server; ``None`` (section absent)
            = no server.
        source: the file this was loaded from (not a YAML key).
    """

    device_id: str = field(metadata=_meta(pattern=r"[A-Za-z0-9_-]{1,64}"))
    model: Path = field(metadata=_meta())
    state_dir: Path = _opt(Path("/var/lib/edge-monitor"))
    audio: AudioConfig = _section(AudioConfig)
    decision: DecisionConfig = _section(DecisionConfig)
    mqtt: MqttConfig = _section(MqttConfig)
    evidence: EvidenceConfig = _section(EvidenceConfig)
    logging: LoggingConfig = _section(LoggingConfig)
    http: HttpConfig | None = _opt(None, doc="status page and /metrics; absent = no server")
    num_threads: int = _opt(1, min=1, max=64)
    source: Path | None = field(default=None, metadata={"internal": True})

    @property
    def evidence_dir(self) -> Path:
        return self.evidence.dir if self.evidence.dir is not None else self.state_dir / "evidence"

    @property
    def outbox_path(self) -> Path:
        return self.state_dir / "outbox.sqlite"
