"""The model bundle: the contract between the trainer and the daemon.

A bundle is a directory::

    model.tflite         the autoencoder, batch size 1 (float32 or dynamic-range int8)
    model.json           everything needed to use it (below)
    model.keras          the Keras model (workstation only; not needed at run time)
    training_curve.png   train / validation loss per epoch (not needed at run time)

``model.json`` (schema version :data:`SCHEMA_VERSION`) holds: the feature
parameters, the input shape ``[n_mels, frames]``, the per-band normalisation,
the threshold and the rule that chose it, the distribution of validation
scores, per-mel-band reconstruction error on the validation normals
(``band_error``: ``mean``, ``p95``, ``p99``), machine type and ids, a
fingerprint of the training data, the versions that built it, the model's
multiply-accumulates per window, and ``sha256`` of ``model.tflite``.

:func:`load_bundle` refuses a bundle it cannot trust with one
:class:`BundleError` line naming the file and what is wrong.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge_monitor.features import FeatureParams, MinMaxNorm, model_frames

__all__ = [
    "SCHEMA_VERSION",
    "MODEL_JSON",
    "MODEL_TFLITE",
    "MODEL_KERAS",
    "TRAINING_CURVE",
    "BundleError",
    "ModelBundle",
    "load_bundle",
    "write_model_json",
    "sha256_file",
]

SCHEMA_VERSION = 1
MODEL_JSON = "model.json"
MODEL_TFLITE = "model.tflite"
MODEL_KERAS = "model.keras"
TRAINING_CURVE = "training_curve.png"

#: Keys every model.json must carry (others are informational).
REQUIRED_KEYS = ("schema_version", "features", "input_shape", "normalisation", "threshold", "sha256")


class BundleError(Exception):
    """A bundle that cannot be used; the message is ``"<file>: <what is wrong>"``."""


@dataclass(frozen=True)
class ModelBundle:
    """A verified bundle, ready for :class:`edge_monitor.scorer.Scorer`.

    Attributes:
        path: the bundle directory.
        meta: the parsed ``model.json``.
        features: front-end parameters the model was trained with.
        norm: per-band dB -> [0, 1] scaling fitted on the training data.
        input_shape: ``(n_mels, frames)`` of one model input.
        threshold: window score (reconstruction MSE) above which a window is anomalous.
        tflite_path: ``path / "model.tflite"``.
        sha256: hex SHA-256 of ``model.tflite`` (verified).
        machine: machine type (e.g. ``"slider"``), ``""`` when unknown.
        machine_ids: machine ids trained on (e.g. ``["id_00"]``).
        band_error_stats: ``{"mean": (n_mels,), "p95": (n_mels,), "p99": (n_mels,)}``
            float64 arrays: per-band reconstruction error of the validation
            normals (empty dict when the bundle has none).
    """

    path: Path
    meta: dict[str, Any]
    features: FeatureParams
    norm: MinMaxNorm
    input_shape: tuple[int, int]
    threshold: float
    tflite_path: Path
    sha256: str
    machine: str = ""
    machine_ids: tuple[str, ...] = ()
    band_error_stats: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def threshold_rule(self) -> str:
        return str(self.meta.get("threshold", {}).get("rule", "unknown"))

    def summary(self) -> dict[str, Any]:
        """Short description for logs and MQTT status messages."""
        return {
            "path": str(self.path),
            "sha256": self.sha256[:12],
            "machine": self.machine,
            "machine_ids": list(self.machine_ids),
            "threshold": self.threshold,
            "created": self.meta.get("created"),
            "quantize": self.meta.get("model", {}).get("quantize"),
        }


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_jsonable(v) for v in value.tolist()]
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return v if math.isfinite(v) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, Path):
        return str(value)
    return value


def write_model_json(bundle_dir: str | Path, meta: dict[str, Any]) -> Path:
    """Write ``model.json`` atomically (temporary file + rename).

    Sets ``schema_version`` and, when ``model.tflite`` exists, ``sha256`` from
    its bytes, so the file always agrees with the model next to it. NumPy
    values are converted to plain JSON numbers.
    """
    bundle_dir = Path(bundle_dir)
    meta = {"schema_version": SCHEMA_VERSION, **{k: v for k, v in meta.items() if k != "schema_version"}}
    tflite = bundle_dir / MODEL_TFLITE
    if tflite.is_file():
        meta["sha256"] = sha256_file(tflite)
    text = json.dumps(_jsonable(meta), indent=2, sort_keys=False, allow_nan=False) + "\n"
    target = bundle_dir / MODEL_JSON
    fd, tmp = tempfile.mkstemp(prefix=".model.json.", dir=bundle_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def _band_stats(meta: dict[str, Any], n_mels: int, where: Path) -> dict[str, np.ndarray]:
    raw = meta.get("band_error")
    if not raw:
        return {}
    if not isinstance(raw, dict):
        raise BundleError(f"{where}: 'band_error' must be an object with per-band lists")
    out: dict[str, np.ndarray] = {}
    for key, values in raw.items():
        if not isinstance(values, list):
            continue  # e.g. "source": "validation"
        arr = np.asarray(values, dtype=np.float64)
        if arr.shape != (n_mels,):
            raise BundleError(f"{where}: band_error.{key} has {arr.size} values, expected {n_mels} (one per mel band)")
        out[key] = arr
    return out


def load_bundle(bundle_dir: str | Path, expected_features: FeatureParams | None = None,
                verify_checksum: bool = True) -> ModelBundle:
    """Read and verify a bundle directory.

    Args:
        bundle_dir: the directory holding ``model.json`` and ``model.tflite``.
        expected_features: when given, the bundle's feature parameters must
            equal these (e.g. the daemon's configured sample rate and window).
        verify_checksum: compare ``sha256`` in ``model.json`` with the bytes of
            ``model.tflite`` (always on in the daemon).

    Raises:
        BundleError: missing directory or file, bad JSON, wrong schema version,
            missing keys, unusable values, mismatched feature parameters or checksum.
    """
    root = Path(bundle_dir)
    if not root.is_dir():
        raise BundleError(f"{root}: model bundle directory does not exist")
    json_path = root / MODEL_JSON
    tflite_path = root / MODEL_TFLITE
    if not json_path.is_file():
        raise BundleError(f"{json_path}: missing (not a model bundle; train one with edge-monitor-train train)")
    if not tflite_path.is_file():
        raise BundleError(f"{tflite_path}: missing (the bundle is incomplete)")
    try:
        meta = json.loads(json_path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise BundleError(f"{json_path}: not UTF-8 text ({exc.reason})") from None
    except json.JSONDecodeError as exc:
        raise BundleError(f"{json_path}: bad JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    if not isinstance(meta, dict):
        raise BundleError(f"{json_path}: expected a JSON object at the top level, got {type(meta).__name__}")
    version = meta.get("schema_version")
    if version != SCHEMA_VERSION:
        raise BundleError(f"{json_path}: schema version {version!r} is not supported (this edge_monitor reads "
                          f"version {SCHEMA_VERSION}); retrain or upgrade edge_monitor")
    missing = [k for k in REQUIRED_KEYS if k not in meta]
    if missing:
        raise BundleError(f"{json_path}: missing key(s) {', '.join(missing)}")
    try:
        features = FeatureParams.from_dict(meta["features"])
    except (TypeError, ValueError) as exc:
        raise BundleError(f"{json_path}: bad 'features': {exc}") from None
    if expected_features is not None and features != expected_features:
        ours, theirs = expected_features.to_dict(), features.to_dict()
        diff = ", ".join(f"{k}={theirs[k]!r} (expected {ours[k]!r})" for k in ours if ours[k] != theirs.get(k))
        raise BundleError(f"{json_path}: feature parameters differ from the expected ones: {diff}")
    try:
        norm = MinMaxNorm.from_dict(meta["normalisation"])
    except (TypeError, ValueError, KeyError) as exc:
        raise BundleError(f"{json_path}: bad 'normalisation': {exc}") from None
    shape = meta["input_shape"]
    if not (isinstance(shape, list) and len(shape) == 2 and all(isinstance(v, int) for v in shape)):
        raise BundleError(f"{json_path}: 'input_shape' must be [n_mels, frames], got {shape!r}")
    n_mels, frames = shape
    if n_mels != features.n_mels or not 8 <= frames <= features.window_frames:
        raise BundleError(f"{json_path}: input_shape {shape} does not fit the features "
                          f"({features.n_mels} mels, {features.window_frames} frames per window)")
    if len(norm.lo) != n_mels:
        raise BundleError(f"{json_path}: normalisation has {len(norm.lo)} bands, expected {n_mels}")
    thr = meta["threshold"]
    value = thr.get("value") if isinstance(thr, dict) else thr
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
        raise BundleError(f"{json_path}: threshold must be a positive number, got {value!r}")
    if verify_checksum:
        actual = sha256_file(tflite_path)
        if actual != meta["sha256"]:
            raise BundleError(f"{tflite_path}: checksum mismatch (sha256 {actual[:12]}..., model.json says "
                              f"{str(meta['sha256'])[:12]}...): the model file was changed or belongs to another bundle")
    else:
        actual = str(meta["sha256"])
    machine_ids = meta.get("machine_ids") or []
    return ModelBundle(
        path=root,
        meta=meta,
        features=features,
        norm=norm,
        input_shape=(int(n_mels), int(frames)),
        threshold=float(value),
        tflite_path=tflite_path,
        sha256=actual,
        machine=str(meta.get("machine") or ""),
        machine_ids=tuple(str(v) for v in machine_ids),
        band_error_stats=_band_stats(meta, n_mels, json_path),
    )


def default_input_shape(features: FeatureParams) -> tuple[int, int]:
    """``(n_mels, model_frames(window_frames))``: (128, 312) for the defaults."""
    return features.n_mels, model_frames(features.window_frames)
