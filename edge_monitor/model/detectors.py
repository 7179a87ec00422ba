"""The detectors a bundle can hold, each scoring one window's log-mel. NumPy (+ TFLite for the autoencoder).

Every detector takes the window's log-mel in dB, ``db`` ``(n_mels, frames)``
(``features.logmel`` cropped to the bundle's ``input_shape``), and the
window's valid frames, and returns a :class:`DetectorOutput`: one window score
(higher = less like normal) and, for explanations, a per-frame score and a
per-mel-band share. Kinds:

``autoencoder``
    the TFLite autoencoder's reconstruction error of the per-band scaled
    input (``model_input.MinMaxNorm``); frames pooled by :class:`Pooling`
    (``mean``: the squared error over the window, as before; ``top``: the mean
    of the worst frames).
``profile``
    the window's *level profile*: per coarse band (adjacent mel bands
    averaged in dB), the median level and the mean of the loudest
    ``top_fraction`` of frames; scored by its Mahalanobis distance from the
    normal profiles (:class:`edge_monitor.model.gaussian.GaussianModel`). It sees a
    machine that runs louder or quieter in some band, and short events that
    are louder *or missing* (a valve whose click is gone), which a mean over
    313 frames averages away. ~0.1 ms per window.
``frames``
    each frame's spectrum (coarse bands) by its Mahalanobis distance from
    normal frames, pooled over the worst frames (:class:`Pooling` ``top``):
    short new events. ~0.3 ms per window.
``subspace``
    runs of ``context`` frames (coarse bands, 5 x 64 values) by what lies
    outside the principal subspace of normal runs
    (:class:`edge_monitor.model.subspace.SubspaceModel`, a linear autoencoder),
    pooled over the window: a changed *time pattern* whose single frames look
    normal (the DCASE baseline's 5-frame input, fitted in closed form). ~1 ms
    per window.

The profile, frame and subspace detectors are fitted from normal log-mels by
:mod:`edge_monitor.model.fit` with NumPy alone, so a Pi can learn a machine without
TensorFlow (``edge-monitor learn``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from edge_monitor.model.gaussian import GaussianModel
from edge_monitor.model.subspace import SubspaceModel, patches

if TYPE_CHECKING:
    from edge_monitor.features.model_input import MinMaxNorm

__all__ = [
    "KINDS",
    "NUMPY_KINDS",
    "DetectorOutput",
    "Detector",
    "ModelRunner",
    "Pooling",
    "ProfileDetector",
    "FrameDetector",
    "SubspaceDetector",
    "NumpyDetector",
    "AutoencoderDetector",
    "coarse_bands",
    "profile_vector",
    "top_count",
]

KINDS = ("autoencoder", "profile", "frames", "subspace")
#: Kinds fitted and scored with NumPy alone.
NUMPY_KINDS = ("profile", "frames", "subspace")


def top_count(n: int, fraction: float) -> int:
    """How many of ``n`` frames the top-``fraction`` pooling averages: ``max(1, round(fraction * n))``."""
    return max(1, min(n, int(round(fraction * n))))


@dataclass(frozen=True)
class Pooling:
    """How per-frame scores become one window score.

    Attributes:
        kind: ``"mean"`` (every valid frame) or ``"top"`` (the mean of the
            highest ``fraction`` of the valid frames, at least one): a short
            event weighs as much as a long one.
        fraction: share of frames for ``"top"`` (0 < fraction <= 1).
    """

    kind: str = "mean"
    fraction: float = 0.01

    def __post_init__(self) -> None:
        if self.kind not in ("mean", "top"):
            raise ValueError(f"pooling kind must be 'mean' or 'top', got {self.kind!r}")
        if not 0.0 < self.fraction <= 1.0:
            raise ValueError(f"pooling fraction must be in (0, 1], got {self.fraction}")

    def apply(self, frame_scores: np.ndarray, valid: np.ndarray | None = None) -> float:
        """Pool ``(frames,)`` scores over the valid frames (``valid``: ``(frames,)`` bool or None)."""
        f = np.asarray(frame_scores, dtype=np.float64)
        if valid is not None:
            f = f[np.asarray(valid, dtype=bool)]
        if f.size == 0:
            raise ValueError("no valid frame to pool")
        if self.kind == "mean":
            return float(f.mean())
        k = top_count(f.size, self.fraction)
        return float(np.partition(f, f.size - k)[f.size - k:].mean())

    def to_dict(self) -> dict[str, object]:
        return {"kind": self.kind} if self.kind == "mean" else {"kind": self.kind, "fraction": self.fraction}

    @classmethod
    def from_dict(cls, data: object) -> Pooling:
        if not isinstance(data, dict):
            raise ValueError(f"pooling must be an object, got {data!r}")
        return cls(kind=str(data.get("kind", "mean")), fraction=float(data.get("fraction", 0.01)))

    def describe(self) -> str:
        return "mean over the window" if self.kind == "mean" else f"mean of the worst {self.fraction:.0%} of frames"


@dataclass(frozen=True)
class DetectorOutput:
    """One detector's verdict on one window.

    Attributes:
        name: the detector's name in the bundle.
        score: the window score (unitless, higher = less like normal).
        frame_scores: ``(frames,)`` per-frame score (NaN on invalid frames);
            for ``profile``, each frame's summed squared level deviation.
        band_share: ``(n_mels,)`` how much each mel band contributes (>= 0,
            unnormalised): where in frequency the window differs.
        input: the autoencoder's ``(n_mels, frames)`` model input (``None`` for other kinds).
        recon: its reconstruction (``None`` for other kinds).
    """

    name: str
    score: float
    frame_scores: np.ndarray
    band_share: np.ndarray
    input: np.ndarray | None = None
    recon: np.ndarray | None = None


class ModelRunner(Protocol):
    """The autoencoder's runner (:class:`edge_monitor.model.tflite_backend.TFLiteModel`)."""

    @property
    def backend(self) -> str: ...

    def run(self, x: np.ndarray) -> np.ndarray: ...


class Detector(Protocol):
    """Scores one window's log-mel; see the module docstring."""

    @property
    def name(self) -> str: ...

    @property
    def kind(self) -> str: ...

    def score(self, db: np.ndarray, valid: np.ndarray | None = None) -> DetectorOutput: ...


def coarse_bands(db: np.ndarray, n_bands: int) -> np.ndarray:
    """Average adjacent mel bands (in dB): ``(..., n_mels, frames)`` -> ``(..., n_bands, frames)``.

    ``n_mels`` must be a multiple of ``n_bands`` (128 mels -> 16 bands of 8).
    """
    x = np.asarray(db)
    n_mels = x.shape[-2]
    if n_bands < 1 or n_mels % n_bands:
        raise ValueError(f"{n_mels} mel bands do not split into {n_bands} equal coarse bands")
    shape = x.shape[:-2] + (n_bands, n_mels // n_bands, x.shape[-1])
    coarse: np.ndarray = x.reshape(shape).mean(axis=-2, dtype=np.float64)
    return coarse


def profile_vector(bands: np.ndarray, valid: np.ndarray | None, top_fraction: float) -> np.ndarray:
    """The level profile of one window: ``(2 * n_bands,)`` = per band [median dB..., loudest-frames mean dB...].

    Args:
        bands: ``(n_bands, frames)`` coarse-band levels in dB (:func:`coarse_bands`).
        valid: ``(frames,)`` bool, or None for all frames.
        top_fraction: share of the (valid) frames averaged for the peak level.
    """
    b = np.asarray(bands, dtype=np.float64)
    if valid is not None:
        b = b[:, np.asarray(valid, dtype=bool)]
    t = b.shape[1]
    if t == 0:
        raise ValueError("no valid frame for a level profile")
    k = top_count(t, top_fraction)
    part = np.partition(b, (t // 2, t - k), axis=1) if t > 1 else b
    median = np.median(b, axis=1)
    top = part[:, t - k:].mean(axis=1)
    return np.concatenate([median, top])


def _expand(per_band: np.ndarray, n_mels: int) -> np.ndarray:
    """Coarse-band values ``(n_bands,)`` -> per mel band ``(n_mels,)`` (each coarse band's value repeated)."""
    return np.repeat(np.asarray(per_band, dtype=np.float64), n_mels // per_band.shape[0])


@dataclass(frozen=True)
class ProfileDetector:
    """Mahalanobis distance of the window's level profile from normal profiles (see the module docstring).

    Attributes:
        name: name in the bundle.
        n_bands: coarse bands (a divisor of n_mels; 16 by default).
        top_fraction: share of loudest frames for the peak level (0.01: 3 of 312 frames).
        model: the Gaussian of normal ``(2 * n_bands,)`` profiles.
    """

    name: str
    n_bands: int
    top_fraction: float
    model: GaussianModel
    kind: str = "profile"

    def features(self, db: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
        return profile_vector(coarse_bands(db, self.n_bands), valid, self.top_fraction)

    def score(self, db: np.ndarray, valid: np.ndarray | None = None) -> DetectorOutput:
        bands = coarse_bands(db, self.n_bands)
        vec = profile_vector(bands, valid, self.top_fraction)
        d2 = float(self.model.sq_distance(vec))
        contrib = np.maximum(self.model.contributions(vec), 0.0)
        per_band = contrib[: self.n_bands] + contrib[self.n_bands:]
        # Per frame: how far each frame's band levels sit from the normal median
        # profile, in normal standard deviations (where in time the window differs).
        z = (bands - self.model.mean[: self.n_bands, None]) / self.model.std[: self.n_bands, None]
        frame = np.sum(z**2, axis=0)
        if valid is not None:
            frame = np.where(np.asarray(valid, dtype=bool), frame, np.nan)
        return DetectorOutput(self.name, math.sqrt(max(d2, 0.0)), frame, _expand(per_band, db.shape[0]))


@dataclass(frozen=True)
class FrameDetector:
    """Per-frame Mahalanobis distance (coarse bands) from normal frames, pooled (see the module docstring).

    Attributes:
        name: name in the bundle.
        n_bands: coarse bands (a divisor of n_mels; 32 by default).
        pooling: how frame distances become the window score (``top`` by default).
        model: the Gaussian of normal ``(n_bands,)`` frames.
    """

    name: str
    n_bands: int
    pooling: Pooling
    model: GaussianModel
    kind: str = "frames"

    def score(self, db: np.ndarray, valid: np.ndarray | None = None) -> DetectorOutput:
        bands = coarse_bands(db, self.n_bands).T  # (frames, n_bands)
        d2 = self.model.sq_distance(bands)
        score = self.pooling.apply(d2, valid)
        frame = d2 if valid is None else np.where(np.asarray(valid, dtype=bool), d2, np.nan)
        # The band shares of the frames that made the score.
        ok = np.isfinite(frame)
        k = top_count(int(ok.sum()), self.pooling.fraction if self.pooling.kind == "top" else 1.0)
        worst = np.argsort(np.where(ok, frame, -np.inf))[-k:]
        contrib = np.maximum(self.model.contributions(bands[worst]), 0.0).mean(axis=0)
        return DetectorOutput(self.name, score, frame, _expand(contrib, db.shape[0]))


@dataclass(frozen=True)
class SubspaceDetector:
    """Runs of frames outside the normal principal subspace, pooled (see the module docstring).

    Attributes:
        name: name in the bundle.
        n_bands: coarse bands (a divisor of n_mels; 64 by default).
        context: frames per run (5 by default).
        pooling: how run scores become the window score (``mean`` by default).
        model: the subspace of normal ``(context * n_bands,)`` runs.
    """

    name: str
    n_bands: int
    context: int
    pooling: Pooling
    model: SubspaceModel
    kind: str = "subspace"

    def score(self, db: np.ndarray, valid: np.ndarray | None = None) -> DetectorOutput:
        bands = coarse_bands(db, self.n_bands)
        runs = patches(bands, self.context)  # (frames - context + 1, context * n_bands)
        n_frames, n_runs = bands.shape[1], runs.shape[0]
        ok = np.ones(n_runs, dtype=bool)
        if valid is not None:
            # A run counts if every frame in it is valid; a window cut into
            # shorter pieces by sensor faults falls back to runs centred on a
            # valid frame, then to every run (it must still get a score).
            v = np.asarray(valid, dtype=bool)[:n_frames]
            ok = np.convolve(v.astype(np.int64), np.ones(self.context, dtype=np.int64), mode="valid") == self.context
            if not ok.any():
                ok = v[self.context // 2: self.context // 2 + n_runs].copy()
            if not ok.any():
                ok = np.ones(n_runs, dtype=bool)
        sel = runs if ok.all() else runs[ok]
        if self.pooling.kind == "mean":
            # Every run makes the score: one projection gives the score and the band shares.
            worst_r = self.model.residual_values(sel)
            err = np.einsum("ij,ij->i", worst_r, worst_r, dtype=np.float64) / self.model.dim
        else:
            err = self.model.residual(sel)
            k = top_count(err.size, self.pooling.fraction)
            worst_r = self.model.residual_values(sel[np.argpartition(err, err.size - k)[err.size - k:]])
        score = self.pooling.apply(err)
        frame = np.full(n_frames, np.nan)
        frame[np.flatnonzero(ok) + self.context // 2] = err  # each run at its centre frame
        # The band shares of the runs that made the score.
        contrib = (worst_r**2).reshape(-1, self.context, self.n_bands).sum(axis=1).mean(axis=0)
        return DetectorOutput(self.name, score, frame, _expand(contrib, db.shape[0]))


#: The detectors fitted with NumPy alone (:data:`NUMPY_KINDS`).
NumpyDetector = ProfileDetector | FrameDetector | SubspaceDetector


class AutoencoderDetector:
    """The TFLite autoencoder's reconstruction error, pooled (see the module docstring).

    Args:
        name: name in the bundle.
        model: a runner with ``run(x (n_mels, frames)) -> (n_mels, frames)``
            (:class:`edge_monitor.model.tflite_backend.TFLiteModel`).
        norm: the bundle's :class:`edge_monitor.features.frontend.MinMaxNorm`.
        pooling: ``mean`` (the mean squared error: bundles before detectors) or ``top``.
    """

    kind = "autoencoder"

    def __init__(self, name: str, model: ModelRunner, norm: MinMaxNorm, pooling: Pooling = Pooling()) -> None:
        self.name = name
        self.model = model
        self.norm = norm
        self.pooling = pooling

    def score(self, db: np.ndarray, valid: np.ndarray | None = None) -> DetectorOutput:
        return self.score_input(self.norm.apply(db), valid)

    def score_input(self, inp: np.ndarray, valid: np.ndarray | None = None) -> DetectorOutput:
        """Score an already scaled model input ``(n_mels, frames)``; invalid frames are filled first."""
        from edge_monitor.features.model_input import fill_invalid_frames

        v = None if valid is None or np.all(valid) else np.asarray(valid, dtype=bool)
        if v is not None:
            inp = fill_invalid_frames(inp, v)
        recon = self.model.run(inp)
        err = np.square(recon.astype(np.float64) - inp.astype(np.float64))
        frame = err.mean(axis=0)
        kept = err if v is None else err[:, v]
        band = kept.mean(axis=1)
        # "mean" is exactly the score of bundles before detectors (scorer.window_errors).
        score = float(kept.mean()) if self.pooling.kind == "mean" else self.pooling.apply(frame, v)
        if v is not None:
            frame = np.where(v, frame, np.nan)
        return DetectorOutput(self.name, score, frame, band, input=inp, recon=recon)
