"""Reading the YAML config: one walker checks every node against the dataclasses of :mod:`.schema`.

PyYAML's composer keeps each value's line number, so every :class:`~.schema.ConfigError`
names the file, the line and the key path (see :mod:`edge_monitor.config.schema`).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
import types
import typing
from pathlib import Path

import yaml

from edge_monitor.config.schema import Config, ConfigError

__all__ = ["load_config", "parse_config", "check_hop_fits", "key_location"]


# --- the walker ------------------------------------------------------------------

_TAG = "tag:yaml.org,2002:"


class _Dataclass(typing.Protocol):
    """A dataclass (what ``dataclasses.fields`` takes)."""

    __dataclass_fields__: typing.ClassVar[dict[str, dataclasses.Field[object]]]


_D = typing.TypeVar("_D", bound=_Dataclass)


class _Walker:
    def __init__(self, loader: yaml.SafeLoader, file: str, base_dir: Path):
        self.loader, self.file, self.base_dir = loader, file, base_dir

    def error(self, node: yaml.Node | None, key: str, message: str) -> ConfigError:
        line = node.start_mark.line + 1 if node is not None else None
        return ConfigError(message, file=self.file, line=line, key=key)

    def build(self, cls: type[_D], node: yaml.Node | None, path: str, parent: yaml.Node | None = None) -> _D:
        """A ``cls`` instance from a mapping node (``None`` node = all defaults).

        After the fields, ``cls.cross_check()`` (when defined) checks rules that involve
        more than one key; it returns ``(key, reason)`` for the first broken one.
        """
        if node is not None and not isinstance(node, yaml.MappingNode):
            if node.tag == _TAG + "null":
                node = None
            else:
                raise self.error(node, path or "(top level)", f"must be a mapping, got {_describe(node)}")
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
        rejected: dict[str, str] = getattr(cls, "REJECTED_KEYS", {})
        values: dict[str, object] = {}
        seen: dict[str, yaml.Node] = {}
        for key_node, value_node in (node.value if node is not None else []):
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
            kpath = f"{path}.{key}" if path else str(key)
            if key in rejected:
                raise self.error(key_node, kpath, rejected[key])
            if key not in fields:
                hint = ", ".join(sorted(fields))
                close = difflib.get_close_matches(str(key), list(fields), n=1, cutoff=0.7)
                guess = f"; did you mean {path + '.' if path else ''}{close[0]}?" if close else ""
                raise self.error(key_node, kpath, f"unknown key{guess} (known here: {hint})")
            if key in seen:
                raise self.error(key_node, kpath, f"duplicate key (first at line {seen[key].start_mark.line + 1})")
            seen[key] = key_node
            values[key] = self.convert(hints[key], fields[key], value_node, kpath)
        where = node if node is not None else parent
        for name, f in fields.items():
            if name in values:
                continue
            if f.metadata.get("default_from") is not None:
                values[name] = f.metadata["default_from"](values)
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise self.error(where, f"{path}.{name}" if path else name, "required key is missing")
        try:
            obj = cls(**values)
        except (TypeError, ValueError) as exc:
            raise self.error(where, path or "(top level)", str(exc)) from None
        problem = obj.cross_check() if hasattr(obj, "cross_check") else None
        if problem is not None:
            key, reason = problem
            at = _find(node, key) if node is not None else parent
            raise self.error(at, f"{path}.{key}" if path else key, reason)
        return obj

    def convert(self, hint: object, f: dataclasses.Field[object] | None, node: yaml.Node, path: str) -> object:
        options = _union_members(hint)
        optional = type(None) in options
        options = [o for o in options if o is not type(None)]
        meta = f.metadata if f is not None else {}
        if node.tag == _TAG + "null":
            if optional:
                return None
            raise self.error(node, path, f"must not be null (expected {_type_name(options)})")
        if meta.get("toggle") and node.tag == _TAG + "bool":
            section = next(o for o in options if isinstance(o, type) and dataclasses.is_dataclass(o))
            return self.build(section, None, path, node) if self.loader.construct_object(node) else None
        for opt in options:
            if isinstance(opt, type) and dataclasses.is_dataclass(opt):
                return self.build(opt, node, path, node)
        if not isinstance(node, yaml.ScalarNode):
            raise self.error(node, path, f"must be {_type_name(options)}, got {_describe(node)}")
        value = self.loader.construct_object(node, deep=True)
        if meta.get("convert") is not None:
            try:
                converted = meta["convert"](value)
            except ValueError as exc:
                raise self.error(node, path, str(exc)) from None
            self.check_range(meta, converted, node, path)
            return converted
        for opt in options:
            converted = _coerce(opt, value)
            if converted is _NO:
                continue
            if isinstance(converted, str) and opt is str:
                if not converted.strip():
                    raise self.error(node, path, f"must be a non-empty string, got {value!r}")
                converted = converted.strip()
            if isinstance(converted, Path) and opt is Path:
                converted = self.resolve_path(converted)
                if meta.get("exists") == "file":
                    self.check_file(converted, node, path)
            self.check_range(meta, converted, node, path)
            return converted
        or_null = " or null" if optional else ""
        raise self.error(node, path, f"must be {_type_name(options)}{or_null}, got {_describe(node)}")

    def check_file(self, p: Path, node: yaml.Node, path: str) -> None:
        if not p.is_file():
            raise self.error(node, path, f"file not found: {p}")
        if not os.access(p, os.R_OK):
            raise self.error(node, path, f"file not readable: {p}")

    def resolve_path(self, p: Path) -> Path:
        p = p.expanduser()
        return p if p.is_absolute() else (self.base_dir / p)

    def check_range(self, m: typing.Mapping[str, object], value: object, node: yaml.Node, path: str) -> None:
        if not m:
            return
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if isinstance(value, float) and not math.isfinite(value):
                raise self.error(node, path, f"must be a finite number, got {value}")
            lo, hi, gt = _bound(m, "min"), _bound(m, "max"), _bound(m, "gt")
            below = (gt is not None and not value > gt) or (lo is not None and value < lo)
            if below or (hi is not None and value > hi):
                raise self.error(node, path, f"must be {_range_words(lo, hi, gt)}, got {value}")
        choices, pattern = m.get("choices"), m.get("pattern")
        if isinstance(choices, tuple) and value not in choices:
            raise self.error(node, path, f"must be one of {', '.join(map(str, choices))}, got {value!r}")
        if isinstance(pattern, str) and isinstance(value, str) and not re.fullmatch(pattern, value):
            raise self.error(node, path, f"must match {pattern}, got {value!r}")


def _bound(m: typing.Mapping[str, object], key: str) -> float | None:
    """A numeric bound of a field's metadata (``min``, ``max``, ``gt``); ``None`` when unset."""
    v = m.get(key)
    return v if isinstance(v, (int, float)) else None


def _range_words(lo: float | None, hi: float | None, gt: float | None) -> str:
    """``between 1 and 65535``, ``greater than 0 and at most 1.0``, ``at least 10``."""
    if lo is not None and hi is not None:
        return f"between {lo} and {hi}"
    parts = [f"greater than {gt}" if gt is not None else "", f"at least {lo}" if lo is not None else "",
             f"at most {hi}" if hi is not None else ""]
    return " and ".join(p for p in parts if p)


_NO = object()


def _coerce(opt: object, value: object) -> object:
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


def _union_members(hint: object) -> list[object]:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return list(typing.get_args(hint))
    return [hint]


def _type_name(options: list[object]) -> str:
    names: dict[object, str] = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
                                Path: "a path"}
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
        cfg = walker.build(Config, root, "")
    finally:
        loader.dispose()
    return dataclasses.replace(cfg, source=Path(file) if file != "<string>" else None)


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate the YAML file at ``path``; raise :class:`ConfigError`.

    The MQTT password is not part of :class:`Config`: the publisher reads it
    with :func:`edge_monitor.config.mqtt.load_password` (``password_file`` or
    :data:`PASSWORD_ENV`) so that it never sits in a logged object.
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


def key_location(cfg: Config, key: str) -> str:
    """``"/etc/edge-monitor/config.yaml:3: model"``: where the file ``cfg`` came from sets ``key``.

    For errors found after loading (a missing model folder): they name the line to
    fix. Falls back to the file alone, or the key alone, when the file is gone or
    was not a file (:func:`parse_config` of a string).
    """
    if cfg.source is None:
        return key
    try:
        root = yaml.compose(cfg.source.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        root = None
    node = _find(root, key) if root is not None else None
    return str(ConfigError("", file=str(cfg.source), line=node.start_mark.line + 1 if node is not None else None,
                           key=key)).rstrip(": ")


def check_hop_fits(cfg: Config, window_seconds: float) -> None:
    """Raise :class:`ConfigError` when ``audio.hop_seconds`` exceeds the model's window (s).

    A longer hop would skip samples between windows. Needs the model, so it runs
    after :func:`load_config` (``run``, ``simulate``, ``check-config``).
    """
    if cfg.audio.hop_seconds > window_seconds + 1e-9:
        raise ConfigError(f"must not exceed the model's window of {window_seconds:g} s "
                          f"(samples would be skipped), got {cfg.audio.hop_seconds:g}",
                          file=str(cfg.source) if cfg.source else None, key="audio.hop_seconds")
