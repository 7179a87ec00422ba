"""``model.json`` as one type: what the trainer and ``edge-monitor learn`` write and every runtime module reads.

:class:`ModelJson` is the document (schema version
:data:`edge_monitor.model.bundle.SCHEMA_VERSION`); :meth:`ModelJson.from_dict`
validates a parsed file (``ValueError`` naming the key that is wrong) and
:meth:`ModelJson.to_dict` gives the JSON object back. The parts the runtime
uses are typed (features, normalisation, detectors, fusion, threshold, the
per-band statistics the explanations compare with, the normal score
distributions the decision's clear level comes from); the informational
parts (``model``, ``training``, ``versions``, ``test``, ...) stay plain
mappings, and keys this version does not know are kept in ``extra`` and
written back unchanged.

Schema 1 documents (before detectors) read as one ``autoencoder`` detector,
pooling ``mean``, fusion ``none``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np

from edge_monitor.features.frontend import FeatureParams
from edge_monitor.features.model_input import MinMaxNorm
from edge_monitor.model.detectors import KINDS, NUMPY_KINDS, Pooling
from edge_monitor.model.fusion import Fusion
from edge_monitor.model.select import Selection
from edge_monitor.model.threshold import AlertBudget, ThresholdFit
from edge_monitor.util.jsonutil import JsonObject, to_int

__all__ = ["BandLevels", "BandStats", "DetectorSpec", "ModelJson", "ScoreStats"]

_T = TypeVar("_T")

#: Top-level keys with a typed field (everything else lands in ``ModelJson.extra``).
_TYPED = ("schema_version", "created", "machine", "machine_ids", "features", "input_shape", "normalisation",
          "band_level_db", "detectors", "fusion", "threshold", "validation_scores", "calibration_scores",
          "band_error", "band_deviation", "sha256", "arrays", "model", "training", "versions", "selection")


def _floats(values: object, n: int, where: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.shape != (n,):
        raise ValueError(f"{where} has {arr.size} values, expected {n} (one per mel band)")
    return arr


@dataclass(frozen=True)
class DetectorSpec:
    """One detector of a bundle, as model.json describes it.

    Attributes:
        name: unique within the bundle (``"autoencoder"``, ``"profile"``, ``"frames"``).
        kind: one of :data:`edge_monitor.model.detectors.KINDS`.
        pooling: frames -> window score (``autoencoder``, ``frames``, ``subspace``).
        n_bands: coarse bands (``profile``, ``frames``, ``subspace``); 0 for the autoencoder.
        top_fraction: the profile's loudest-frame share (``profile``).
        context: frames per run (``subspace``).
        variance: share of the normal variance the subspace keeps (``subspace``).
        components: the subspace's dimension, set when fitted (``subspace``; 0 before).
    """

    name: str
    kind: str
    pooling: Pooling = Pooling()
    n_bands: int = 0
    top_fraction: float = 0.01
    context: int = 0
    variance: float = 0.9
    components: int = 0

    def to_dict(self) -> JsonObject:
        out: JsonObject = {"name": self.name, "kind": self.kind}
        if self.kind == "autoencoder":
            out.update(file="model.tflite", pooling=self.pooling.to_dict())
        elif self.kind == "profile":
            out.update(n_bands=self.n_bands, top_fraction=self.top_fraction)
        elif self.kind == "subspace":
            out.update(n_bands=self.n_bands, context=self.context, variance=self.variance,
                       components=self.components, pooling=self.pooling.to_dict())
        else:
            out.update(n_bands=self.n_bands, pooling=self.pooling.to_dict())
        return out

    @classmethod
    def from_dict(cls, data: object, n_mels: int) -> DetectorSpec:
        if not isinstance(data, dict):
            raise ValueError(f"a detector must be an object, got {data!r}")
        kind = data.get("kind")
        if kind not in KINDS:
            raise ValueError(f"unknown detector kind {kind!r} (this edge_monitor knows {', '.join(KINDS)})")
        name = str(data.get("name") or kind)
        pooling = Pooling.from_dict(data.get("pooling", {"kind": "mean"}))
        n_bands = int(data.get("n_bands", 0))
        if kind in NUMPY_KINDS and (n_bands < 1 or n_mels % n_bands):
            raise ValueError(f"detector {name!r}: n_bands {n_bands} does not divide {n_mels} mel bands")
        top = float(data.get("top_fraction", 0.01))
        if not 0.0 < top <= 1.0:
            raise ValueError(f"detector {name!r}: top_fraction must be in (0, 1], got {top}")
        if kind != "subspace":
            return cls(name=name, kind=str(kind), pooling=pooling, n_bands=n_bands, top_fraction=top)
        context, components = int(data.get("context", 0)), int(data.get("components", 0))
        variance = float(data.get("variance", 0.9))
        if context < 1 or components < 1 or components >= context * n_bands or not 0.0 < variance < 1.0:
            raise ValueError(f"detector {name!r}: context {context}, components {components} and variance "
                             f"{variance} do not make a subspace of {context} x {n_bands} values")
        return cls(name=name, kind="subspace", pooling=pooling, n_bands=n_bands, context=context,
                   variance=variance, components=components)

    def describe(self) -> str:
        if self.kind == "autoencoder":
            return f"autoencoder ({self.pooling.describe()})"
        if self.kind == "profile":
            return f"level profile ({self.n_bands} bands, median and loudest {self.top_fraction:.0%} of frames)"
        if self.kind == "subspace":
            return (f"subspace of {self.context}-frame runs ({self.n_bands} bands, {self.variance:.0%} of the "
                    f"variance, {self.pooling.describe()})")
        return f"frame Gaussian ({self.n_bands} bands, {self.pooling.describe()})"


@dataclass(frozen=True)
class BandStats:
    """Per-mel-band statistics of normal windows' errors (``band_error``) or deviations (``band_deviation``).

    Attributes:
        mean, p99: ``(n_mels,)`` (required by the explanations).
        p95, std: ``(n_mels,)`` or ``None``.
        source: ``"validation"``, ``"training"`` or ``"calibration"``.
        n: windows they were computed from.
    """

    mean: np.ndarray
    p99: np.ndarray
    p95: np.ndarray | None = None
    std: np.ndarray | None = None
    source: str = ""
    n: int = 0

    @classmethod
    def from_dict(cls, data: object, n_mels: int, where: str) -> BandStats:
        if not isinstance(data, dict):
            raise ValueError(f"'{where}' must be an object with per-band lists")
        high = next((k for k in ("p99", "p995", "p999", "p95", "p90") if data.get(k) is not None), None)
        if data.get("mean") is None or high is None:
            raise ValueError(f"'{where}' needs per-band 'mean' and 'p99' lists")
        opt = {k: _floats(data[k], n_mels, f"{where}.{k}") if data.get(k) is not None else None
               for k in ("p95", "std")}
        return cls(mean=_floats(data["mean"], n_mels, f"{where}.mean"),
                   p99=_floats(data[high], n_mels, f"{where}.{high}"), p95=opt["p95"], std=opt["std"],
                   source=str(data.get("source", "")), n=int(data.get("n", 0)))

    @classmethod
    def of(cls, values: np.ndarray, source: str) -> BandStats:
        """From ``(n_windows, n_mels)`` per-band values."""
        arr = np.asarray(values, dtype=np.float64)
        return cls(mean=arr.mean(axis=0), p99=np.percentile(arr, 99, axis=0), p95=np.percentile(arr, 95, axis=0),
                   std=arr.std(axis=0), source=source, n=int(arr.shape[0]))

    def to_dict(self) -> JsonObject:
        out: JsonObject = {"source": self.source, "n": self.n, "mean": self.mean.tolist()}
        if self.std is not None:
            out["std"] = self.std.tolist()
        if self.p95 is not None:
            out["p95"] = self.p95.tolist()
        out["p99"] = self.p99.tolist()
        return out

    def as_arrays(self) -> dict[str, np.ndarray]:
        """``{"mean", "p99"[, "p95", "std"]}``: what :class:`edge_monitor.decide.explain.Explainer` takes."""
        out = {"mean": self.mean, "p99": self.p99}
        if self.p95 is not None:
            out["p95"] = self.p95
        if self.std is not None:
            out["std"] = self.std
        return out


@dataclass(frozen=True)
class BandLevels:
    """Per-mel-band mean and standard deviation (dB) of the training log-mels (``band_level_db``)."""

    mean: np.ndarray
    std: np.ndarray
    n_windows: int = 0
    source: str = "training"

    @classmethod
    def of(cls, db: np.ndarray) -> BandLevels:
        """From training log-mels ``(n, n_mels, frames)`` (dB); rounded to 0.1 mdB as stored."""
        bands = np.moveaxis(np.asarray(db, dtype=np.float64), -2, 0).reshape(db.shape[-2], -1)
        return cls(np.round(bands.mean(axis=1), 4), np.round(bands.std(axis=1), 4), int(db.shape[0]))

    @classmethod
    def from_dict(cls, data: object, n_mels: int) -> BandLevels:
        if not isinstance(data, dict):
            raise ValueError("'band_level_db' must be an object")
        std = data.get("std")
        return cls(_floats(data.get("mean"), n_mels, "band_level_db.mean"),
                   _floats(std, n_mels, "band_level_db.std") if std is not None else np.zeros(n_mels),
                   int(data.get("n_windows", 0)), str(data.get("source", "training")))

    def to_dict(self) -> JsonObject:
        return {"mean": [float(v) for v in self.mean], "std": [float(v) for v in self.std],
                "n_windows": self.n_windows, "source": self.source}


@dataclass(frozen=True)
class ScoreStats:
    """The distribution of normal window scores (``validation_scores``, ``calibration_scores``)."""

    n: int
    mean: float
    std: float
    min: float
    max: float
    percentiles: dict[str, float]
    source: str = ""
    extra: JsonObject = field(default_factory=dict)

    @property
    def median(self) -> float | None:
        return self.percentiles.get("50")

    @classmethod
    def of(cls, scores: np.ndarray, source: str = "",
           percentiles: tuple[int, ...] = (1, 5, 25, 50, 75, 90, 95, 99)) -> ScoreStats:
        arr = np.asarray(scores, dtype=np.float64).ravel()
        return cls(n=int(arr.size), mean=float(arr.mean()), std=float(arr.std()), min=float(arr.min()),
                   max=float(arr.max()), percentiles={str(p): float(np.percentile(arr, p)) for p in percentiles},
                   source=source)

    @classmethod
    def from_dict(cls, data: object, where: str) -> ScoreStats:
        if not isinstance(data, dict):
            raise ValueError(f"'{where}' must be an object")
        known = ("n", "mean", "std", "min", "max", "percentiles", "source")
        pct = data.get("percentiles") or {}
        if not isinstance(pct, dict):
            raise ValueError(f"'{where}.percentiles' must be an object")
        return cls(n=int(data.get("n", 0)), mean=float(data.get("mean", math.nan)),
                   std=float(data.get("std", math.nan)), min=float(data.get("min", math.nan)),
                   max=float(data.get("max", math.nan)), percentiles={str(k): float(v) for k, v in pct.items()},
                   source=str(data.get("source", "")), extra={k: v for k, v in data.items() if k not in known})

    def to_dict(self) -> JsonObject:
        out: JsonObject = {"n": self.n, "mean": self.mean, "std": self.std, "min": self.min, "max": self.max,
                               "percentiles": dict(self.percentiles)}
        if self.source:
            out["source"] = self.source
        return out | self.extra


def _list(value: object) -> list[object]:
    """A JSON list, or ``[]`` for ``null``/absent (model.json's validation has checked the type)."""
    if not value:
        return []
    if not isinstance(value, list):
        raise ValueError(f"expected a list, got {value!r}")
    return list(value)


def _object(value: object) -> JsonObject:
    """A copy of a JSON object, or ``{}`` for ``null``/absent (model.json's validation has checked the type)."""
    if not value:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"expected an object, got {value!r}")
    return dict(value)


def _threshold_from(data: object) -> ThresholdFit:
    if isinstance(data, (int, float)) and not isinstance(data, bool):
        return ThresholdFit(value=float(data), rule="unknown", quantile=math.nan, n_scores=0)
    if not isinstance(data, dict):
        raise ValueError(f"'threshold' must be an object, got {data!r}")
    value = data.get("value")
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ValueError(f"threshold must be a number, got {value!r}")
    return ThresholdFit(value=float(value), rule=str(data.get("rule", "unknown")),
                        quantile=float(data.get("quantile", math.nan)), n_scores=int(data.get("n_scores", 0)),
                        source=str(data.get("source", "validation")),
                        requested_rule=str(data.get("requested_rule", data.get("rule", "unknown"))),
                        gamma=dict(data.get("gamma") or {}), note=str(data.get("note", "")),
                        budget=AlertBudget.from_dict(data["budget"]) if data.get("budget") is not None else None)


@dataclass(frozen=True)
class ModelJson:
    """The whole of ``model.json`` (see the module docstring and docs/model.md, "The bundle")."""

    features: FeatureParams
    input_shape: tuple[int, int]
    normalisation: MinMaxNorm
    detectors: tuple[DetectorSpec, ...]
    fusion: Fusion
    threshold: ThresholdFit
    schema_version: int = 2
    created: str = ""
    machine: str = ""
    machine_ids: tuple[str, ...] = ()
    band_level_db: BandLevels | None = None
    validation_scores: ScoreStats | None = None
    calibration_scores: ScoreStats | None = None
    band_error: BandStats | None = None
    band_deviation: BandStats | None = None
    sha256: str = ""
    arrays_sha256: str = ""
    model: JsonObject = field(default_factory=dict)
    training: JsonObject = field(default_factory=dict)
    versions: JsonObject = field(default_factory=dict)
    extra: JsonObject = field(default_factory=dict)
    selection: Selection | None = None

    @property
    def detector_names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.detectors)

    def typical_normal_score(self) -> float | None:
        """The median normal window score: on-site calibration's when there is one, else validation's."""
        for stats in (self.calibration_scores, self.validation_scores):
            if stats is not None and stats.median is not None and math.isfinite(stats.median):
                return stats.median
        return None

    def to_dict(self) -> JsonObject:
        """The JSON object (NumPy values still to be made plain by ``write_model_json``)."""
        out: JsonObject = {
            "schema_version": self.schema_version,
            "created": self.created,
            "machine": self.machine,
            "machine_ids": list(self.machine_ids),
            "features": self.features.to_dict(),
            "input_shape": list(self.input_shape),
            "normalisation": self.normalisation.to_dict(),
        }
        if self.band_level_db is not None:
            out["band_level_db"] = self.band_level_db.to_dict()
        out["detectors"] = [d.to_dict() for d in self.detectors]
        out["fusion"] = self.fusion.to_dict()
        out["model"] = dict(self.model)
        out["threshold"] = self.threshold.to_dict()
        if self.validation_scores is not None:
            out["validation_scores"] = self.validation_scores.to_dict()
        if self.calibration_scores is not None:
            out["calibration_scores"] = self.calibration_scores.to_dict()
        if self.band_error is not None:
            out["band_error"] = self.band_error.to_dict()
        if self.band_deviation is not None:
            out["band_deviation"] = self.band_deviation.to_dict()
        if self.selection is not None:
            out["selection"] = self.selection.to_dict()
        out["training"] = dict(self.training)
        out["versions"] = dict(self.versions)
        out.update(self.extra)
        if self.sha256:
            out["sha256"] = self.sha256
        if self.arrays_sha256:
            out["arrays"] = {"file": "detectors.npz", "sha256": self.arrays_sha256}
        return out

    @classmethod
    def from_dict(cls, meta: JsonObject) -> ModelJson:
        """Validate a parsed ``model.json``; ``ValueError`` says which key is wrong."""
        version = meta.get("schema_version")
        required = ["features", "input_shape", "normalisation", "threshold"]
        required += ["sha256"] if version == 1 else ["detectors", "fusion"]
        missing = [k for k in required if k not in meta]
        if missing:
            raise ValueError(f"missing key(s) {', '.join(missing)}")
        try:
            features = FeatureParams.from_dict(meta["features"])
        except (TypeError, ValueError) as exc:
            raise ValueError(f"bad 'features': {exc}") from None
        try:
            norm = MinMaxNorm.from_dict(meta["normalisation"])
        except (TypeError, ValueError, KeyError) as exc:
            raise ValueError(f"bad 'normalisation': {exc}") from None
        shape = meta["input_shape"]
        if not (isinstance(shape, list) and len(shape) == 2 and all(isinstance(v, int) for v in shape)):
            raise ValueError(f"'input_shape' must be [n_mels, frames], got {shape!r}")
        n_mels, frames = shape
        if n_mels != features.n_mels or not 8 <= frames <= features.window_frames:
            raise ValueError(f"input_shape {shape} does not fit the features ({features.n_mels} mels, "
                             f"{features.window_frames} frames per window)")
        if len(norm.lo) != n_mels:
            raise ValueError(f"normalisation has {len(norm.lo)} bands, expected {n_mels}")
        if version == 1:
            detectors: tuple[DetectorSpec, ...] = (DetectorSpec("autoencoder", "autoencoder"),)
            fusion = Fusion("none", {})
        else:
            raw = meta["detectors"]
            if not isinstance(raw, list) or not raw:
                raise ValueError("'detectors' must be a non-empty list")
            try:
                detectors = tuple(DetectorSpec.from_dict(d, n_mels) for d in raw)
                names = tuple(d.name for d in detectors)
                if len(set(names)) != len(names):
                    raise ValueError(f"detector names repeat: {', '.join(names)}")
                fusion = Fusion.from_dict(meta["fusion"], names)
            except (TypeError, ValueError, KeyError) as exc:
                raise ValueError(f"bad detectors or fusion: {exc}") from None
        threshold = _threshold_from(meta["threshold"])
        # A fused score is a z-score (it may be negative); an autoencoder's MSE or a distance is positive.
        positive = fusion.rule == "none"
        if not math.isfinite(threshold.value) or (positive and threshold.value <= 0):
            raise ValueError(f"threshold must be a {'positive' if positive else 'finite'} number, "
                             f"got {threshold.value!r}")

        def optional(key: str, parse: Callable[[object], _T]) -> _T | None:
            raw_value = meta.get(key)
            return parse(raw_value) if raw_value else None

        arrays = meta.get("arrays")
        if arrays is not None and not (isinstance(arrays, dict) and isinstance(arrays.get("sha256"), str)):
            raise ValueError("'arrays' must be {\"file\": \"detectors.npz\", \"sha256\": ...}")
        return cls(
            features=features, input_shape=(int(n_mels), int(frames)), normalisation=norm, detectors=detectors,
            fusion=fusion, threshold=threshold, schema_version=to_int(version or 0),
            created=str(meta.get("created") or ""), machine=str(meta.get("machine") or ""),
            machine_ids=tuple(str(v) for v in _list(meta.get("machine_ids"))),
            band_level_db=optional("band_level_db", lambda d: BandLevels.from_dict(d, n_mels)),
            validation_scores=optional("validation_scores", lambda d: ScoreStats.from_dict(d, "validation_scores")),
            calibration_scores=optional("calibration_scores",
                                        lambda d: ScoreStats.from_dict(d, "calibration_scores")),
            band_error=optional("band_error", lambda d: BandStats.from_dict(d, n_mels, "band_error")),
            band_deviation=optional("band_deviation", lambda d: BandStats.from_dict(d, n_mels, "band_deviation")),
            sha256=str(meta.get("sha256") or ""), arrays_sha256=str(arrays["sha256"]) if arrays else "",
            model=_object(meta.get("model")), training=_object(meta.get("training")),
            versions=_object(meta.get("versions")),
            extra={k: v for k, v in meta.items() if k not in _TYPED},
            selection=optional("selection", Selection.from_dict),
        )
