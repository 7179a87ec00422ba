"""The daemon's YAML configuration, validated into frozen dataclasses.

``load_config(path) -> Config`` reads the file with PyYAML's composer so that
every value keeps its line number, then walks the node tree against the
dataclasses below. Anything wrong (bad YAML, an unknown key, a wrong type, a
value out of range, a missing required key) raises :class:`ConfigError` whose
message is one line::

    /etc/edge-monitor/config.yaml:12: decision.k: must be at least 1, got 0

Callers exit with :data:`EX_CONFIG` (78), which the systemd unit lists in
``RestartPreventExitStatus=`` so that a bad file does not restart-loop.

The key names of the issue are kept as they are (users' files must keep
working); new keys only extend them. Relative paths (``model``,
``state_dir``, ``evidence.dir``) are resolved against the directory of the
config file. The ``mqtt:`` section is validated by
:func:`edge_monitor.mqtt_config.parse_mqtt_config`; its errors get the file
line here. The MQTT password is never in the YAML: ``mqtt.password_file`` or
the environment variable ``EDGE_MONITOR_MQTT_PASSWORD``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

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
    "load_config",
    "parse_config",
    "MqttConfig",
    "TlsConfig",
]

EX_CONFIG = 78  # sysexits.h: configuration error; systemd does not restart on it
PASSWORD_ENV = "EDGE_MONITOR_MQTT_PASSWORD"


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


def _opt(default: Any = dataclasses.MISSING, *, doc: str = "", min: float | None = None,
         max: float | None = None, gt: float | None = None, choices: tuple | None = None,
         pattern: str | None = None, factory: Any = None) -> Any:
    """A dataclass field with validation metadata (ranges are inclusive unless ``gt``)."""
    meta = {"doc": doc, "min": min, "max": max, "gt": gt, "choices": choices, "pattern": pattern}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


# The MQTT section's dataclasses belong to the MQTT work (edge_monitor/mqtt_config.py).
try:  # pragma: no cover - depends on which parts have landed
    from edge_monitor.mqtt_config import MqttConfig, TlsConfig  # type: ignore[assignment]
    from edge_monitor.mqtt_config import parse_mqtt_config as _parse_mqtt
except ModuleNotFoundError as _exc:  # pragma: no cover
    if _exc.name != "edge_monitor.mqtt_config":
        raise
    _parse_mqtt = None

    @dataclass(frozen=True)
    class TlsConfig:  # type: ignore[no-redef]
        """Stand-in until edge_monitor.mqtt_config lands (same field names)."""

        ca_file: Path | None = None
        cert_file: Path | None = None
        key_file: Path | None = None

    @dataclass(frozen=True)
    class MqttConfig:  # type: ignore[no-redef]
        """Stand-in until edge_monitor.mqtt_config lands (same field names)."""

        host: str = "127.0.0.1"
        port: int = _opt(1883, min=1, max=65535)
        base_topic: str | None = None
        username: str | None = None
        password_file: Path | None = None
        password: str | None = None
        tls: TlsConfig = field(default_factory=TlsConfig)
        discovery: bool = True
        discovery_prefix: str = "homeassistant"
        client_id: str | None = None
        keepalive: int = _opt(30, min=5, max=3600)
        qos: int = _opt(1, min=0, max=2)
        publish_scores: bool = True
        outbox_max_messages: int = _opt(100000, min=10)


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


@dataclass(frozen=True)
class DecisionConfig:
    """The alert rule (see :mod:`edge_monitor.decision`).

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


@dataclass(frozen=True)
class EvidenceConfig:
    """WAV evidence of the window that raised each alert.

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
    """The operator's web page and Prometheus metrics (:mod:`edge_monitor.http_server`).

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

    device_id: str = _opt(pattern=r"[A-Za-z0-9_-]{1,64}")
    model: Path = _opt()
    state_dir: Path = _opt(Path("/var/lib/edge-monitor"))
    audio: AudioConfig = _opt(factory=AudioConfig)
    decision: DecisionConfig = _opt(factory=DecisionConfig)
    mqtt: MqttConfig = _opt(factory=MqttConfig)
    evidence: EvidenceConfig = _opt(factory=EvidenceConfig)
    logging: LoggingConfig = _opt(factory=LoggingConfig)
    http: HttpConfig | None = _opt(None, doc="status page and /metrics; absent = no server")
    num_threads: int = _opt(1, min=1, max=64)
    source: Path | None = field(default=None, metadata={"internal": True})

    @property
    def evidence_dir(self) -> Path:
        return self.evidence.dir if self.evidence.dir is not None else self.state_dir / "evidence"

    @property
    def outbox_path(self) -> Path:
        return self.state_dir / "outbox.sqlite"


# --- the walker ------------------------------------------------------------------

_TAG = "tag:yaml.org,2002:"


class _Walker:
    def __init__(self, loader: yaml.SafeLoader, file: str, base_dir: Path):
        self.loader, self.file, self.base_dir = loader, file, base_dir

    def error(self, node: yaml.Node | None, key: str, message: str) -> ConfigError:
        line = node.start_mark.line + 1 if node is not None else None
        return ConfigError(message, file=self.file, line=line, key=key)

    def build(self, cls: type, node: yaml.Node | None, path: str, parent: yaml.Node | None = None) -> Any:
        """A ``cls`` instance from a mapping node (``None`` node = all defaults)."""
        if node is not None and not isinstance(node, yaml.MappingNode):
            if node.tag == _TAG + "null":
                node = None
            else:
                raise self.error(node, path or "(top level)", f"must be a mapping, got {_describe(node)}")
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
        values: dict[str, Any] = {}
        seen: dict[str, yaml.Node] = {}
        for key_node, value_node in (node.value if node is not None else []):
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
            kpath = f"{path}.{key}" if path else str(key)
            if key not in fields:
                hint = ", ".join(sorted(fields))
                raise self.error(key_node, kpath, f"unknown key (known here: {hint})")
            if key in seen:
                raise self.error(key_node, kpath, f"duplicate key (first at line {seen[key].start_mark.line + 1})")
            seen[key] = key_node
            values[key] = self.convert(hints[key], fields[key], value_node, kpath)
        for name, f in fields.items():
            if name not in values and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                where = node if node is not None else parent
                raise self.error(where, f"{path}.{name}" if path else name, "required key is missing")
        try:
            return cls(**values)
        except (TypeError, ValueError) as exc:
            raise self.error(node if node is not None else parent, path or "(top level)", str(exc)) from None

    def convert(self, hint: Any, f: dataclasses.Field | None, node: yaml.Node, path: str) -> Any:
        options = _union_members(hint)
        optional = type(None) in options
        options = [o for o in options if o is not type(None)]
        if node.tag == _TAG + "null":
            if optional:
                return None
            raise self.error(node, path, f"must not be null (expected {_type_name(options)})")
        for opt in options:
            if opt is MqttConfig and _parse_mqtt is not None:
                return self.build_mqtt(node, path)
            if dataclasses.is_dataclass(opt):
                return self.build(opt, node, path, node)
        if not isinstance(node, yaml.ScalarNode):
            raise self.error(node, path, f"must be {_type_name(options)}, got {_describe(node)}")
        value = self.loader.construct_object(node, deep=True)
        for opt in options:
            converted = _coerce(opt, value)
            if converted is not _NO:
                if opt is Path:
                    converted = self.resolve_path(converted)
                if f is not None:
                    self.check_range(f, converted, node, path)
                return converted
        raise self.error(node, path, f"must be {_type_name(options)}{' or null' if optional else ''}, got {_describe(node)}")

    def build_mqtt(self, node: yaml.Node, path: str) -> Any:
        """The ``mqtt:`` section, validated by the MQTT work's own parser."""
        raw = self.loader.construct_object(node, deep=True)
        try:
            return _parse_mqtt(raw, self.base_dir)
        except ValueError as exc:
            key = getattr(exc, "path", None) or path
            reason = getattr(exc, "reason", None) or str(exc)
            # The line of the deepest node of that key path that exists.
            where = _find(node, key.split(".", 1)[1]) if "." in key else node
            raise self.error(where, key, reason) from None

    def resolve_path(self, p: Path) -> Path:
        p = p.expanduser()
        return p if p.is_absolute() else (self.base_dir / p)

    def check_range(self, f: dataclasses.Field, value: Any, node: yaml.Node, path: str) -> None:
        m = f.metadata
        if not m:
            return
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if isinstance(value, float) and not math.isfinite(value):
                raise self.error(node, path, f"must be a finite number, got {value}")
            if m.get("gt") is not None and not value > m["gt"]:
                raise self.error(node, path, f"must be greater than {m['gt']}, got {value}")
            if m.get("min") is not None and value < m["min"]:
                raise self.error(node, path, f"must be at least {m['min']}, got {value}")
            if m.get("max") is not None and value > m["max"]:
                raise self.error(node, path, f"must be at most {m['max']}, got {value}")
        if m.get("choices") is not None and value not in m["choices"]:
            raise self.error(node, path, f"must be one of {', '.join(map(str, m['choices']))}, got {value!r}")
        if m.get("pattern") is not None and isinstance(value, str) and not re.fullmatch(m["pattern"], value):
            raise self.error(node, path, f"must match {m['pattern']}, got {value!r}")


_NO = object()


def _coerce(opt: Any, value: Any) -> Any:
    """``value`` as type ``opt`` when YAML gave a compatible scalar, else ``_NO``."""
    if opt is bool:
        return value if isinstance(value, bool) else _NO
    if opt is int:
        return value if isinstance(value, int) and not isinstance(value, bool) else _NO
    if opt is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        return _NO
    if opt is str:
        return value if isinstance(value, str) else _NO
    if opt is Path:
        return Path(value) if isinstance(value, str) and value else _NO
    return _NO


def _union_members(hint: Any) -> list[Any]:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return list(typing.get_args(hint))
    return [hint]


def _type_name(options: list[Any]) -> str:
    names = {bool: "true/false", int: "an integer", float: "a number", str: "a string", Path: "a path"}
    return " or ".join(names.get(o, getattr(o, "__name__", str(o))) for o in options)


def _describe(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    kind = node.tag.rsplit(":", 1)[-1]
    kind = {"str": "string", "int": "integer", "float": "number", "bool": "boolean"}.get(kind, kind)
    return f"{kind} {node.value!r}"


# --- entry points ---------------------------------------------------------------------


def parse_config(text: str, file: str = "<string>", base_dir: Path | None = None) -> Config:
    """Validate YAML ``text``; errors name ``file``. Relative paths resolve against ``base_dir``."""
    loader = yaml.SafeLoader(text)
    try:
        try:
            root = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark is not None else None
            what = " ".join(p for p in (exc.context, exc.problem) if p)
            raise ConfigError(f"invalid YAML: {what}", file=file, line=line) from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"invalid YAML: {exc}", file=file) from None
        if root is None:
            raise ConfigError("the file is empty (need at least device_id and model)", file=file)
        walker = _Walker(loader, file, base_dir or Path.cwd())
        cfg: Config = walker.build(Config, root, "")
        cfg = _post_validate(cfg, walker, root)
    finally:
        loader.dispose()
    return dataclasses.replace(cfg, source=Path(file) if file != "<string>" else None)


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate the YAML file at ``path``; raise :class:`ConfigError`.

    The MQTT password is not part of :class:`Config`: the publisher reads it
    with :func:`edge_monitor.mqtt_config.load_password` (``password_file`` or
    ``$EDGE_MONITOR_MQTT_PASSWORD``) so that it never sits in a logged object.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("no such file", file=str(p)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read: {exc}", file=str(p)) from None
    return parse_config(text, str(p), p.resolve().parent)


def _find(root: yaml.Node, dotted: str) -> yaml.Node | None:
    """The value node at ``a.b.c`` (or the deepest existing parent) for error lines."""
    node = root
    for part in dotted.split("."):
        if not isinstance(node, yaml.MappingNode):
            return node
        for k, v in node.value:
            if getattr(k, "value", None) == part:
                node = v
                break
        else:
            return node
    return node


def _post_validate(cfg: Config, walker: _Walker, root: yaml.Node) -> Config:
    """Checks that involve more than one key, and derived defaults."""
    d = cfg.decision
    if d.k > d.n:
        raise walker.error(_find(root, "decision.k"), "decision.k", f"must not exceed decision.n ({d.n}), got {d.k}")
    a = cfg.audio
    if a.channel is not None and a.channel >= a.channels:
        raise walker.error(_find(root, "audio.channel"), "audio.channel",
                           f"must be below audio.channels ({a.channels}), got {a.channel}")
    _check_http(cfg, walker, root)
    return cfg


def _check_http(cfg: Config, walker: _Walker, root: yaml.Node) -> None:
    """``http.listen`` parses, and an address reachable from the network has a token."""
    h = cfg.http
    if h is None:
        return
    try:
        host, port = split_listen(h.listen)
    except ValueError as exc:
        raise walker.error(_find(root, "http.listen"), "http.listen", str(exc)) from None
    if port > 65535:
        raise walker.error(_find(root, "http.listen"), "http.listen", f"port must be at most 65535, got {port}")
    if not is_loopback_host(host) and h.token_env is None:
        raise walker.error(_find(root, "http.listen"), "http.listen",
                           f"{host} is reachable from the network: set http.token_env (an environment "
                           "variable holding an access token), or listen on 127.0.0.1")
