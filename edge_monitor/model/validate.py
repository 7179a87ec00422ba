"""The one validator of a bundle's files: ``model.json`` field by field and ``detectors.npz`` before it is read.

:func:`edge_monitor.model.bundle.load_bundle` calls it, so ``check-config``,
``score``, ``simulate``, ``run`` and ``learn`` refuse the same bundles with the
same line, ``"<file>: <field>: <what is wrong>"`` (:class:`ValidationError`,
which the bundle loader turns into a ``BundleError``, exit 78 in the tools).

What it guarantees before anything else reads the bundle:

- ``model.json`` is at most :data:`MAX_MODEL_JSON_BYTES` (checked on the open
  file, before reading) and nests at most :data:`MAX_JSON_DEPTH` deep (counted
  on the bytes, before parsing: no ``RecursionError``).
- every field the runtime reads has its JSON type (an integer field rejects
  ``1024.5``, ``128.0`` and ``true``), is finite and lies in its range; one
  table per section (:data:`FEATURES`, :data:`NORMALISATION`, :data:`DETECTOR`,
  ...), so a new field is one line.
- the feature parameters fit a Raspberry Pi: one window's samples, frames and
  STFT cells stay below :data:`MAX_WINDOW_SAMPLES`, :data:`MAX_FRAMES` and
  :data:`MAX_STFT_CELLS` (the default 10 s window uses 160 000, 313 and 160 569).
- the parts agree: per-band lists have ``n_mels`` values, ``n_bands`` divides
  ``n_mels``, every NumPy detector finds its arrays with the shapes its bands
  need.
- ``detectors.npz`` is checked before any array is read
  (:mod:`edge_monitor.model.validate_npz`).

Keys the runtime does not read (``training``, ``selection``, ...) are only
required to be JSON objects where the runtime copies them as such.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeGuard

import numpy as np

from edge_monitor.util.jsonutil import JsonObject, to_float, to_int

if TYPE_CHECKING:
    from edge_monitor.model.scorer import Scorer

__all__ = [
    "MAX_FRAMES",
    "MAX_JSON_DEPTH",
    "MAX_MODEL_JSON_BYTES",
    "MAX_STFT_CELLS",
    "MAX_WINDOW_SAMPLES",
    "Field",
    "ValidationError",
    "check_model_json",
    "dry_run",
    "read_model_json",
]

#: ``model.json`` size cap (bytes); a real one is ~50 kB (a few 128-value lists).
MAX_MODEL_JSON_BYTES = 4 * 1024 * 1024
#: Deepest nesting of ``[``/``{`` accepted in ``model.json`` (a real one nests 4 deep).
MAX_JSON_DEPTH = 32
#: Samples in one window: 60 s at 32 kHz (a float32 window of 8 MB).
MAX_WINDOW_SAMPLES = 2_000_000
#: Log-mel frames of one window (313 for 10 s at hop 512).
MAX_FRAMES = 8192
#: STFT cells of one window, frames * (n_fft // 2 + 1): 4 M float32 = 16 MB of power spectrum.
MAX_STFT_CELLS = 4_000_000
#: Mel bands (the per-window arrays are ``(n_mels, frames)``).
MAX_N_MELS = 512
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,63}")


class ValidationError(ValueError):
    """A bundle file that cannot be used; ``str()`` is ``"<file>: <field>: <what is wrong>"``."""


@dataclass(frozen=True)
class Field:
    """What one JSON value must be.

    Attributes:
        kind: ``"int"`` (a JSON integer, not ``1.0``, not ``true``), ``"number"``
            (int or float, finite), ``"str"``, ``"object"``, ``"list"``,
            ``"numbers"`` (a list of finite numbers).
        lo, hi: inclusive range of a number, or of a list's or string's length.
        above: ``lo`` is exclusive (``> lo``).
        required: absence is an error (else the reader's default applies).
        nullable: ``null`` is allowed.
        choices: allowed values of a ``str``.
    """

    kind: str
    lo: float | None = None
    hi: float | None = None
    above: bool = False
    required: bool = False
    nullable: bool = False
    choices: tuple[str, ...] = ()


def _num(x: object) -> TypeGuard[int | float]:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _seq(v: object) -> list[object]:
    """A JSON list its table has checked; ``[]`` for null or absent."""
    return v if isinstance(v, list) else []


def _obj(v: object) -> JsonObject:
    """A JSON object its table has checked; ``{}`` for null or absent."""
    return v if isinstance(v, dict) else {}


def _range_text(f: Field) -> str:
    lo = "" if f.lo is None else (f"> {f.lo:g}" if f.above else f">= {f.lo:g}")
    hi = "" if f.hi is None else f"<= {f.hi:g}"
    return " and ".join(p for p in (lo, hi) if p)


def _in_range(v: float, f: Field) -> bool:
    if f.lo is not None and (v <= f.lo if f.above else v < f.lo):
        return False
    return f.hi is None or v <= f.hi


def check_value(value: object, f: Field, where: str) -> None:
    """Raise ``ValueError("<where>: ...")`` unless ``value`` is what ``f`` describes."""
    if value is None:
        if f.nullable:
            return
        raise ValueError(f"{where}: must not be null")
    if f.kind == "int":
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"{where}: must be an integer, got {json.dumps(value)[:40]}")
    elif f.kind == "number":
        if not _num(value) or not math.isfinite(value):
            raise ValueError(f"{where}: must be a finite number, got {json.dumps(value)[:40]}")
    elif f.kind == "str":
        if not isinstance(value, str):
            raise ValueError(f"{where}: must be a string, got {json.dumps(value)[:40]}")
        if f.choices and value not in f.choices:
            raise ValueError(f"{where}: must be one of {', '.join(f.choices)}, got {value!r}")
    elif f.kind == "object":
        if not isinstance(value, dict):
            raise ValueError(f"{where}: must be an object, got {json.dumps(value)[:40]}")
        return
    elif f.kind in ("list", "numbers"):
        if not isinstance(value, list):
            raise ValueError(f"{where}: must be a list, got {json.dumps(value)[:40]}")
        if not _in_range(len(value), f):
            raise ValueError(f"{where}: must have {_range_text(f)} values, got {len(value)}")
        if f.kind == "numbers":
            bad = next((i for i, v in enumerate(value) if not _num(v) or not math.isfinite(v)), None)
            if bad is not None:
                raise ValueError(f"{where}[{bad}]: must be a finite number, got {json.dumps(value[bad])[:40]}")
        return
    else:  # pragma: no cover - a typo in a table
        raise AssertionError(f"unknown field kind {f.kind!r}")
    size = len(value) if isinstance(value, str) else value if _num(value) else None
    if size is not None and not _in_range(size, f):
        what = "length" if isinstance(value, str) else "value"
        raise ValueError(f"{where}: {what} must be {_range_text(f)}, got {value!r}")


def check_section(data: object, spec: Mapping[str, Field], where: str) -> JsonObject:
    """Check an object against a table; returns it (keys not in the table pass unchecked)."""
    if not isinstance(data, dict):
        raise ValueError(f"{where}: must be an object, got {json.dumps(data)[:40]}")
    for key, f in spec.items():
        name = f"{where}.{key}" if where else key
        if key in data:
            check_value(data[key], f, name)
        elif f.required:
            raise ValueError(f"{name}: missing")
    return data


# --- the tables: one per section ---------------------------------------------------------------------

FEATURES: dict[str, Field] = {
    "sample_rate": Field("int", 1000, 192_000),
    "window_seconds": Field("number", 0.0, 600.0, above=True),
    "n_fft": Field("int", 16, 16384),
    "hop_length": Field("int", 1, 16384),
    "n_mels": Field("int", 1, MAX_N_MELS),
    "f_min": Field("number", 0.0),
    "f_max": Field("number", 0.0, above=True, nullable=True),
    "power": Field("number", 0.0, 4.0, above=True),
    "amin": Field("number", 0.0, 1.0, above=True),
    "ref": Field("number", 0.0, 1e12, above=True),
}
NORMALISATION: dict[str, Field] = {
    "kind": Field("str", choices=("minmax",)),
    "lo": Field("numbers", 1, MAX_N_MELS, required=True),
    "hi": Field("numbers", 1, MAX_N_MELS, required=True),
    "clip_lo": Field("number", nullable=True),
    "clip_hi": Field("number", nullable=True),
}
DETECTOR: dict[str, Field] = {
    "name": Field("str", 1, 64),
    "kind": Field("str", required=True),
    "n_bands": Field("int", 1, MAX_N_MELS),
    "top_fraction": Field("number", 0.0, 1.0, above=True),
    "pooling": Field("object"),
    "file": Field("str"),
    # subspace: frames per run, kept variance, dimension (checked against n_bands in model_json)
    "context": Field("int", 1, 32),
    "variance": Field("number", 0.0, 1.0, above=True),
    "components": Field("int", 1, 1024),
}
POOLING: dict[str, Field] = {
    "kind": Field("str", choices=("mean", "top")),
    "fraction": Field("number", 0.0, 1.0, above=True),
}
FUSION: dict[str, Field] = {
    "rule": Field("str"),
    "normal": Field("object", nullable=True),
}
NORMAL_STATS: dict[str, Field] = {
    "mean": Field("number", required=True),
    "std": Field("number", 0.0, above=True, required=True),
}
THRESHOLD: dict[str, Field] = {
    # The decision rule needs a positive threshold (decide.decision.RuleParams).
    "value": Field("number", 0.0, above=True, required=True),
    "rule": Field("str"),
    "requested_rule": Field("str"),
    "source": Field("str"),
    "quantile": Field("number", 0.0, 1.0, nullable=True),
    "n_scores": Field("int", 0),
    "gamma": Field("object", nullable=True),
    "note": Field("str"),
}
SCORE_STATS: dict[str, Field] = {
    "n": Field("int", 0), "mean": Field("number", nullable=True), "std": Field("number", nullable=True),
    "min": Field("number", nullable=True), "max": Field("number", nullable=True),
    "percentiles": Field("object", nullable=True), "source": Field("str"),
}
BAND_STATS: dict[str, Field] = {
    "mean": Field("numbers", nullable=True), "p99": Field("numbers", nullable=True),
    "p95": Field("numbers", nullable=True), "std": Field("numbers", nullable=True),
    "n": Field("int", 0), "source": Field("str"),
}
BAND_LEVELS: dict[str, Field] = {
    "mean": Field("numbers", required=True), "std": Field("numbers", nullable=True),
    "n_windows": Field("int", 0), "source": Field("str"),
}
TOP: dict[str, Field] = {
    "created": Field("str", nullable=True),
    "machine": Field("str", nullable=True),
    "machine_ids": Field("list", 0, 1000, nullable=True),
    "input_shape": Field("list", 2, 2, required=True),
    "detectors": Field("list", 1, 16),
    "sha256": Field("str", nullable=True),
    "arrays": Field("object", nullable=True),
    "model": Field("object", nullable=True),
    "training": Field("object", nullable=True),
    "versions": Field("object", nullable=True),
}


# --- reading -----------------------------------------------------------------------------------------

def _depth(raw: bytes) -> int:
    """Deepest ``[``/``{`` nesting of JSON text, strings left out; O(n) in NumPy."""
    text = re.sub(rb'"(?:[^"\\]|\\.)*"', b'""', raw)
    b = np.frombuffer(text, dtype=np.uint8)
    step = (np.isin(b, (ord("["), ord("{"))).astype(np.int32) - np.isin(b, (ord("]"), ord("}"))).astype(np.int32))
    return int(np.cumsum(step).max(initial=0))


def read_model_json(path: Path) -> JsonObject:
    """Parse ``model.json``, its size and nesting checked first.

    Raises:
        ValidationError: too large, too deeply nested, not UTF-8, bad JSON, not an object.
        OSError: unreadable.
    """
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        raw = fh.read(MAX_MODEL_JSON_BYTES + 1)
    if max(size, len(raw)) > MAX_MODEL_JSON_BYTES:
        raise ValidationError(f"{path}: {max(size, len(raw))} bytes, more than the {MAX_MODEL_JSON_BYTES} a "
                              f"model.json may have")
    depth = _depth(raw)
    if depth > MAX_JSON_DEPTH:
        raise ValidationError(f"{path}: JSON nested {depth} deep, more than {MAX_JSON_DEPTH}")
    try:
        meta = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ValidationError(f"{path}: not UTF-8 text ({exc.reason})") from None
    except json.JSONDecodeError as exc:
        raise ValidationError(f"{path}: bad JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except RecursionError:  # the depth count above makes this unreachable; kept as a last guard
        raise ValidationError(f"{path}: JSON nested too deeply") from None
    if not isinstance(meta, dict):
        raise ValidationError(f"{path}: expected a JSON object at the top level, got {type(meta).__name__}")
    return meta


# --- model.json --------------------------------------------------------------------------------------

def _features(data: object) -> JsonObject:
    feats = check_section(data, FEATURES, "features")
    unknown = sorted(set(feats) - set(FEATURES))
    if unknown:  # FeatureParams has no place for them: a typo would silently fall back to a default
        raise ValueError(f"bad 'features': unknown feature parameter(s): {', '.join(unknown)}")
    rate, n_fft = to_int(feats.get("sample_rate", 16000)), to_int(feats.get("n_fft", 1024))
    hop, n_mels = to_int(feats.get("hop_length", 512)), to_int(feats.get("n_mels", 128))
    samples = int(round(to_float(feats.get("window_seconds", 10.0)) * rate))
    if samples > MAX_WINDOW_SAMPLES:
        raise ValueError(f"features.window_seconds: a window of {samples} samples is more than the "
                         f"{MAX_WINDOW_SAMPLES} a Pi is given")
    if samples < n_fft:
        raise ValueError(f"features.window_seconds: a window of {samples} samples is shorter than n_fft {n_fft}")
    if hop > n_fft:
        raise ValueError(f"features.hop_length: {hop} is more than n_fft {n_fft} (samples would be skipped)")
    frames = 1 + samples // hop
    if frames > MAX_FRAMES:
        raise ValueError(f"features.hop_length: {frames} frames per window, more than {MAX_FRAMES}")
    if frames * (n_fft // 2 + 1) > MAX_STFT_CELLS:
        raise ValueError(f"features.n_fft: {frames} frames x {n_fft // 2 + 1} bins per window, more than "
                         f"{MAX_STFT_CELLS}")
    if n_mels > n_fft // 2 + 1:
        raise ValueError(f"features.n_mels: {n_mels} bands from {n_fft // 2 + 1} FFT bins")
    return feats


def _band_lists(data: JsonObject, keys: tuple[str, ...], n_mels: int, where: str) -> None:
    for key in keys:
        values = data.get(key)
        if isinstance(values, list) and len(values) != n_mels:
            raise ValueError(f"{where}.{key}: {len(values)} values, expected {n_mels} (one per mel band)")


def _detector(data: object, i: int, n_mels: int) -> tuple[str, str, int]:
    where = f"detectors[{i}]"
    det = check_section(data, DETECTOR, where)
    kind = det["kind"]
    name = str(det.get("name") or kind)
    if not _NAME.fullmatch(name):
        raise ValueError(f"{where}.name: {name!r} must be letters, digits, '_' or '-'")
    if "pooling" in det:
        check_section(det["pooling"], POOLING, f"{where}.pooling")
    n_bands = to_int(det.get("n_bands", 0))
    if n_bands and n_mels % n_bands:
        raise ValueError(f"{where}.n_bands: {n_bands} does not divide {n_mels} mel bands")
    return str(name), str(kind), n_bands


def check_model_json(meta: JsonObject, path: Path) -> None:
    """Check every field of a parsed ``model.json`` the runtime reads; :class:`ValidationError` names it."""
    try:
        _check(meta)
    except ValueError as exc:
        raise ValidationError(f"{path}: {exc}") from None


def _check(meta: JsonObject) -> None:
    required = ["features", "input_shape", "normalisation", "threshold"]
    required += ["sha256"] if meta.get("schema_version") == 1 else ["detectors", "fusion"]
    missing = [k for k in required if k not in meta]
    if missing:
        raise ValueError(f"missing key(s) {', '.join(missing)}")
    check_section(meta, TOP, "")
    feats = _features(meta["features"])
    n_mels = to_int(feats.get("n_mels", 128))
    shape = _seq(meta["input_shape"])
    for i, v in enumerate(shape):
        check_value(v, Field("int", 1, MAX_FRAMES), f"input_shape[{i}]")
    if shape[0] != n_mels:
        raise ValueError(f"input_shape: {shape} does not fit features.n_mels {n_mels}")
    norm = check_section(meta.get("normalisation"), NORMALISATION, "normalisation")
    _band_lists(norm, ("lo", "hi"), n_mels, "normalisation")
    los, his = _seq(norm["lo"]), _seq(norm["hi"])
    flat = next((i for i, (lo, hi) in enumerate(zip(los, his, strict=True)) if not to_float(hi) > to_float(lo)),
                None)
    if flat is not None:
        raise ValueError(f"normalisation.hi[{flat}]: must be above lo[{flat}] ({his[flat]} <= {los[flat]})")
    for i, det in enumerate(_seq(meta.get("detectors"))):
        _detector(det, i, n_mels)
    if "fusion" in meta:
        fusion = check_section(meta["fusion"], FUSION, "fusion")
        for name, stats in _obj(fusion.get("normal")).items():
            check_section(stats, NORMAL_STATS, f"fusion.normal.{name}")
    threshold = meta.get("threshold")
    if isinstance(threshold, dict):
        check_section(threshold, THRESHOLD, "threshold")
    else:
        check_value(threshold, THRESHOLD["value"], "threshold")
    for key in ("validation_scores", "calibration_scores"):
        if meta.get(key) is not None:
            stats = check_section(meta[key], SCORE_STATS, key)
            for p, v in _obj(stats.get("percentiles")).items():
                check_value(v, Field("number"), f"{key}.percentiles.{p}")
    for key in ("band_error", "band_deviation"):
        if meta.get(key) is not None:
            _band_lists(check_section(meta[key], BAND_STATS, key), ("mean", "p99", "p95", "std"), n_mels, key)
    if meta.get("band_level_db") is not None:
        _band_lists(check_section(meta["band_level_db"], BAND_LEVELS, "band_level_db"), ("mean", "std"), n_mels,
                    "band_level_db")
    for i, v in enumerate(_seq(meta.get("machine_ids"))):
        check_value(v, Field("str", 0, 200), f"machine_ids[{i}]")


# --- one window, scored at load ----------------------------------------------------------------------

def dry_run(scorer: Scorer) -> None:
    """Score one window of silence; a bundle that cannot is refused now rather than failing every window.

    Raises:
        BundleError: ``"<bundle>/model.json: a window of silence cannot be scored (...)"``.
    """
    from edge_monitor.model.bundle import MODEL_JSON, BundleError

    where = scorer.bundle.path / MODEL_JSON
    try:
        score = scorer.score_window(np.zeros(scorer.window_samples, dtype=np.float32)).score
    except (ValueError, TypeError, IndexError, ArithmeticError, MemoryError, RuntimeError) as exc:
        raise BundleError(f"{where}: a window of silence cannot be scored ({type(exc).__name__}: {exc})") from None
    if not math.isfinite(score):
        raise BundleError(f"{where}: a window of silence scores {score} (the detectors' parameters are unusable)")
