"""The model bundle: the contract between the trainer (or ``edge-monitor learn``) and the daemon.

A bundle is a directory::

    model.json           everything needed to use it (below)
    model.tflite         the autoencoder, batch size 1 (only when the bundle has one)
    detectors.npz        the NumPy detectors' parameters (only when the bundle has any)
    model.keras          the Keras model (workstation only; not needed at run time)
    training_curve.png   train / validation loss per epoch (not needed at run time)

``model.json`` (schema version :data:`SCHEMA_VERSION`) holds: the feature
parameters, the input shape ``[n_mels, frames]``, the per-band normalisation,
the ``detectors`` (kind, name, pooling, settings: :mod:`edge_monitor.model.detectors`)
and the ``fusion`` rule with each detector's normal statistics
(:mod:`edge_monitor.model.fusion`), the threshold on the fused score and the rule
that chose it, the distribution of validation scores, per-mel-band errors on
the validation normals (``band_error``: ``mean``, ``p95``, ``p99``; and
``band_deviation`` for the NumPy detectors), machine type and ids, a
fingerprint of the training data, the versions that built it, the cost per
window, ``sha256`` of ``model.tflite`` and ``arrays.sha256`` of
``detectors.npz``.

Schema 1 bundles (before detectors: one autoencoder, mean squared error) load
as a bundle with one ``autoencoder`` detector, pooling ``mean`` and fusion
``none``, and score exactly as they were trained.

:func:`load_bundle` refuses a bundle it cannot trust with one
:class:`BundleError` line naming the file and what is wrong.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge_monitor.features.frontend import FeatureParams
from edge_monitor.features.model_input import MinMaxNorm
from edge_monitor.model import validate, validate_npz
from edge_monitor.model.detectors import NUMPY_KINDS
from edge_monitor.model.fusion import Fusion
from edge_monitor.model.model_json import DetectorSpec, ModelJson
from edge_monitor.util.durable import atomic_writer, write_durably
from edge_monitor.util.jsonutil import JsonObject, jsonable

__all__ = [
    "SCHEMA_VERSION",
    "MODEL_JSON",
    "MODEL_TFLITE",
    "MODEL_KERAS",
    "DETECTORS_NPZ",
    "TRAINING_CURVE",
    "BundleError",
    "DetectorSpec",
    "ModelBundle",
    "ModelJson",
    "load_bundle",
    "read_model_json",
    "write_model_json",
    "sha256_file",
]

SCHEMA_VERSION = 2
#: Versions this edge_monitor reads.
READABLE_VERSIONS = (1, 2)
MODEL_JSON = "model.json"
MODEL_TFLITE = "model.tflite"
MODEL_KERAS = "model.keras"
DETECTORS_NPZ = "detectors.npz"
TRAINING_CURVE = "training_curve.png"


#: Mode of the files a bundle writer creates: readable by the daemon's service user.
_FILE_MODE = 0o644


class BundleError(Exception):
    """A bundle that cannot be used; the message is ``"<file>: <what is wrong>"``."""


@dataclass(frozen=True)
class ModelBundle:
    """A verified bundle, ready for :class:`edge_monitor.model.scorer.Scorer`.

    ``model.json`` is held once, typed and validated, in :attr:`doc`; the
    properties below are views of it for the fields every caller needs.
    Code that wants the file's plain JSON values reads the file
    (:func:`read_model_json`).

    Attributes:
        path: the bundle directory.
        doc: ``model.json`` (:class:`edge_monitor.model.model_json.ModelJson`).
        tflite_path: ``path / "model.tflite"`` (absent when no detector is an autoencoder).
        sha256: hex SHA-256 of ``model.tflite`` (verified), or of ``detectors.npz``
            for a bundle without an autoencoder: what identifies the model.
        arrays: the NumPy detectors' parameters (``detectors.npz``; empty without them).
    """

    path: Path
    doc: ModelJson
    tflite_path: Path
    sha256: str
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def features(self) -> FeatureParams:
        """Front-end parameters the model was trained with."""
        return self.doc.features

    @property
    def norm(self) -> MinMaxNorm:
        """Per-band dB -> [0, 1] scaling fitted on the training data."""
        return self.doc.normalisation

    @property
    def input_shape(self) -> tuple[int, int]:
        """``(n_mels, frames)`` of one model input."""
        return self.doc.input_shape

    @property
    def threshold(self) -> float:
        """Window score (the fused score; a reconstruction MSE for autoencoder-only bundles) above which
        a window is anomalous."""
        return self.doc.threshold.value

    @property
    def machine(self) -> str:
        """Machine type (e.g. ``"slider"``), ``""`` when unknown."""
        return self.doc.machine

    @property
    def machine_ids(self) -> tuple[str, ...]:
        """Machine ids trained on (e.g. ``("id_00",)``)."""
        return self.doc.machine_ids

    @property
    def detectors(self) -> tuple[DetectorSpec, ...]:
        return self.doc.detectors

    @property
    def fusion(self) -> Fusion:
        return self.doc.fusion

    @property
    def has_autoencoder(self) -> bool:
        return any(d.kind == "autoencoder" for d in self.detectors)

    @property
    def detector_names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.detectors)


def read_model_json(bundle_dir: str | Path) -> JsonObject:
    """A bundle's ``model.json`` as plain JSON values (reports and summaries; :func:`load_bundle` verifies it)."""
    data = json.loads((Path(bundle_dir) / MODEL_JSON).read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise BundleError(f"{Path(bundle_dir) / MODEL_JSON}: expected a JSON object at the top level")
    return data


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_model_json(bundle_dir: str | Path, meta: JsonObject | ModelJson) -> Path:
    """Write ``model.json`` atomically and durably (temporary file, fsync, rename, fsync of the folder).

    ``meta``: the typed document (:class:`edge_monitor.model.model_json.ModelJson`),
    or a mapping (what an older tool or a test edits by hand).

    Sets ``schema_version`` and, when ``model.tflite`` exists, ``sha256`` from
    its bytes, so the file always agrees with the model next to it. NumPy
    values are converted to plain JSON numbers.
    """
    bundle_dir = Path(bundle_dir)
    if isinstance(meta, ModelJson):
        meta = meta.to_dict()
    meta = {"schema_version": SCHEMA_VERSION, **{k: v for k, v in meta.items() if k != "schema_version"}}
    tflite = bundle_dir / MODEL_TFLITE
    if tflite.is_file():
        meta["sha256"] = sha256_file(tflite)
    arrays = bundle_dir / DETECTORS_NPZ
    if arrays.is_file():
        meta["arrays"] = {"file": DETECTORS_NPZ, "sha256": sha256_file(arrays)}
    text = json.dumps(jsonable(meta), indent=2, sort_keys=False, allow_nan=False) + "\n"
    # Durable (fsync of the file and the folder): a power cut leaves the old model.json or the new one.
    return write_durably(bundle_dir / MODEL_JSON, text, _FILE_MODE)


def write_arrays(bundle_dir: str | Path, arrays: dict[str, np.ndarray]) -> Path:
    """Write the NumPy detectors' parameters to ``detectors.npz`` atomically and durably (no pickles)."""
    bundle_dir = Path(bundle_dir)
    target = bundle_dir / DETECTORS_NPZ
    with atomic_writer(target, _FILE_MODE) as fh:
        np.savez(fh, **{k: np.asarray(v, dtype=np.float64) for k, v in arrays.items()})  # type: ignore[arg-type]
    return target


def load_bundle(bundle_dir: str | Path, expected_features: FeatureParams | None = None,
                verify_checksum: bool = True) -> ModelBundle:
    """Read and verify a bundle directory.

    Args:
        bundle_dir: the directory holding ``model.json`` (and ``model.tflite``
            and/or ``detectors.npz``, as its detectors need).
        expected_features: when given, the bundle's feature parameters must
            equal these (e.g. the daemon's configured sample rate and window).
        verify_checksum: compare ``sha256`` / ``arrays.sha256`` in
            ``model.json`` with the bytes of ``model.tflite`` / ``detectors.npz``
            (always on in the daemon).

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
        raise BundleError(f"{json_path}: missing (not a model bundle; train one with edge-monitor-train train "
                          f"or edge-monitor learn)")
    try:
        meta = validate.read_model_json(json_path)  # size and nesting checked before parsing
    except validate.ValidationError as exc:
        raise BundleError(str(exc)) from None
    except OSError as exc:
        raise BundleError(f"{json_path}: unreadable ({exc.strerror or exc})") from None
    version = meta.get("schema_version")
    if version not in READABLE_VERSIONS:
        raise BundleError(f"{json_path}: schema version {version!r} is not supported (this edge_monitor reads "
                          f"versions {', '.join(map(str, READABLE_VERSIONS))}); retrain or upgrade edge_monitor")
    try:
        validate.check_model_json(meta, json_path)  # every field's type, range and agreement
    except validate.ValidationError as exc:
        raise BundleError(str(exc)) from None
    try:
        doc = ModelJson.from_dict(meta)
    except (TypeError, ValueError, KeyError) as exc:
        raise BundleError(f"{json_path}: {exc}") from None
    features, detectors = doc.features, doc.detectors
    if expected_features is not None and features != expected_features:
        ours, theirs = expected_features.to_dict(), features.to_dict()
        diff = ", ".join(f"{k}={theirs[k]!r} (expected {ours[k]!r})" for k in ours if ours[k] != theirs.get(k))
        raise BundleError(f"{json_path}: feature parameters differ from the expected ones: {diff}")
    has_ae = any(d.kind == "autoencoder" for d in detectors)
    actual = ""
    if has_ae:
        if not tflite_path.is_file():
            raise BundleError(f"{tflite_path}: missing (the bundle is incomplete)")
        if not meta.get("sha256"):
            raise BundleError(f"{json_path}: missing key(s) sha256")
        if verify_checksum:
            actual = sha256_file(tflite_path)
            if actual != meta["sha256"]:
                raise BundleError(f"{tflite_path}: checksum mismatch (sha256 {actual[:12]}..., model.json says "
                                  f"{str(meta['sha256'])[:12]}...): the model file was changed or belongs to "
                                  f"another bundle")
        else:
            actual = str(meta["sha256"])
    arrays = _load_arrays(root, meta, detectors, json_path, verify_checksum)
    if not has_ae:
        actual = doc.arrays_sha256  # what identifies a NumPy-only bundle's model
    return ModelBundle(path=root, doc=doc, tflite_path=tflite_path, sha256=actual, arrays=arrays)


def _load_arrays(root: Path, meta: JsonObject, detectors: tuple[DetectorSpec, ...], json_path: Path,
                 verify_checksum: bool) -> dict[str, np.ndarray]:
    """The NumPy detectors' parameters from ``detectors.npz``, verified; ``{}`` when none is needed."""
    if not any(d.kind in NUMPY_KINDS for d in detectors):
        return {}
    path = root / DETECTORS_NPZ
    if not path.is_file():
        raise BundleError(f"{path}: missing (the bundle is incomplete)")
    info = meta.get("arrays")
    if not isinstance(info, dict) or not isinstance(info.get("sha256"), str):
        raise BundleError(f"{json_path}: missing key(s) arrays.sha256")
    if verify_checksum:
        actual = sha256_file(path)
        if actual != info["sha256"]:
            raise BundleError(f"{path}: checksum mismatch (sha256 {actual[:12]}..., model.json says "
                              f"{info['sha256'][:12]}...): the file was changed or belongs to another bundle")
    try:
        validate_npz.check_arrays_file(path, validate_npz.expected_arrays(detectors))  # before any array is read
    except validate.ValidationError as exc:
        raise BundleError(str(exc)) from None
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: np.asarray(npz[k]) for k in npz.files}
    except Exception as exc:  # zipfile/ValueError/OSError: a damaged file
        raise BundleError(f"{path}: unreadable ({exc})") from None
    return arrays
