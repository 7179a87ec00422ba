"""Fitting the NumPy detectors from normal log-mels, and writing a bundle of them. NumPy (+ SciPy's gamma fit).

Used by ``edge-monitor-train train`` next to the autoencoder, and alone by
``edge-monitor learn`` on the Pi, where there is no TensorFlow. The steps:

1. every normal window's log-mel ``(n, n_mels, frames)`` and the clip it came
   from (windows of one clip are alike, so folds split clips, not windows);
2. per detector, *out-of-fold* scores: fit on the other folds' clips, score
   the held-out ones (:func:`cross_fit_scores`) — what the detector gives on
   normal sound it has not seen, with every clip used once;
3. the same for pseudo-anomalies made from the held-out windows, and from
   both the choice of detectors and their fusion weights
   (:mod:`edge_monitor.model.select`, rule ``weighted``);
4. the threshold from the fused out-of-fold scores and a false-alarm budget
   (:func:`edge_monitor.model.threshold.fit_budget_threshold`);
5. the chosen detectors fitted on every clip.

So ten clips of a new machine give a model *and* an honest threshold, with no
clip spent on validation alone.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

import edge_monitor
from edge_monitor.features.frontend import FeatureParams, logmel
from edge_monitor.features.model_input import MinMaxNorm
from edge_monitor.model.bundle import DetectorSpec, load_bundle, read_model_json, write_arrays, write_model_json
from edge_monitor.model.detectors import (
    NUMPY_KINDS,
    FrameDetector,
    NumpyDetector,
    Pooling,
    ProfileDetector,
    SubspaceDetector,
    coarse_bands,
    profile_vector,
    top_count,
)
from edge_monitor.model.fusion import Fusion, NormalStats
from edge_monitor.model.gaussian import GaussianModel
from edge_monitor.model.model_json import BandLevels, BandStats, ModelJson, ScoreStats
from edge_monitor.model.pseudo import KINDS
from edge_monitor.model.select import PseudoSet, Selection, choose, make_pseudo_set
from edge_monitor.model.subspace import SubspaceModel, patches
from edge_monitor.model.threshold import (
    DEFAULT_FALSE_ALARMS_PER_DAY,
    ThresholdFit,
    fit_budget_threshold,
    fit_threshold,
)
from edge_monitor.util.jsonutil import JsonObject

__all__ = [
    "DEFAULT_PROFILE",
    "DEFAULT_FRAMES",
    "DEFAULT_FRAMES_MEAN",
    "DEFAULT_SUBSPACE",
    "NUMPY_CANDIDATES",
    "pseudo_anomalies",
    "select_fusion",
    "NumpyFit",
    "band_deviations",
    "cross_fit_scores",
    "fit_detector",
    "fit_numpy_detectors",
    "detector_arrays",
    "write_numpy_bundle",
]

Progress = Callable[[str], None]

#: The defaults, chosen by ``bench/bench_model_choice.py`` (docs/model.md).
DEFAULT_PROFILE = DetectorSpec("profile", "profile", n_bands=16, top_fraction=0.01)
DEFAULT_FRAMES = DetectorSpec("frames", "frames", pooling=Pooling("top", 0.01), n_bands=32)
#: The frame Gaussian pooled over the whole window: steady changes (the slider result of issue 20).
DEFAULT_FRAMES_MEAN = DetectorSpec("frames_mean", "frames", pooling=Pooling("mean"), n_bands=32)
#: Runs of 5 frames in 64 bands outside the normal subspace: changed time patterns (docs/model.md).
DEFAULT_SUBSPACE = DetectorSpec("subspace", "subspace", pooling=Pooling("mean"), n_bands=64, context=5,
                                variance=0.9)
#: The NumPy candidates every ``train`` and ``learn`` chooses among (:mod:`edge_monitor.model.select`).
NUMPY_CANDIDATES = (DEFAULT_PROFILE, DEFAULT_FRAMES, DEFAULT_FRAMES_MEAN, DEFAULT_SUBSPACE)
#: The subspace keeps at most this many dimensions (bounds its cost: 320 x 128 multiplies a run).
MAX_SUBSPACE_COMPONENTS = 128

#: At most this many frames fit the frame Gaussian (an even subsample beyond it).
MAX_FIT_FRAMES = 200_000


def band_deviations(db: np.ndarray, norm: MinMaxNorm, level_mean: Sequence[float] | np.ndarray) -> np.ndarray:
    """``(n, n_mels)`` mean squared deviation per band of the scaled input from the scaled normal level.

    What :class:`edge_monitor.model.scorer.Scorer` reports as ``band_error`` when a
    NumPy detector fired; its normal statistics (``band_deviation`` in
    model.json) let the explanations say which bands stand out.
    """
    ref = norm.apply(np.asarray(level_mean, dtype=np.float32)[:, None]).astype(np.float64)
    out = np.empty((db.shape[0], db.shape[1]))
    for i, w in enumerate(db):
        out[i] = np.mean((norm.apply(w).astype(np.float64) - ref) ** 2, axis=1)
    return out


def fit_detector(spec: DetectorSpec, db: np.ndarray) -> NumpyDetector:
    """Fit one NumPy detector on normal log-mels ``(n, n_mels, frames)`` (dB).

    A subspace's dimension is what the data gives (:func:`fitted_spec` records it).

    Raises:
        ValueError: an unknown kind, or too little data (a profile needs 2+ windows).
    """
    db = np.asarray(db)
    if spec.kind == "profile":
        vecs = np.stack([profile_vector(coarse_bands(w, spec.n_bands), None, spec.top_fraction) for w in db])
        return ProfileDetector(spec.name, spec.n_bands, spec.top_fraction, GaussianModel.fit(vecs))
    if spec.kind == "frames":
        frames = np.moveaxis(coarse_bands(db, spec.n_bands), -1, -2).reshape(-1, spec.n_bands)
        if frames.shape[0] > MAX_FIT_FRAMES:
            frames = frames[np.linspace(0, frames.shape[0] - 1, MAX_FIT_FRAMES).astype(np.int64)]
        return FrameDetector(spec.name, spec.n_bands, spec.pooling, GaussianModel.fit(frames))
    if spec.kind == "subspace":
        runs = (patches(coarse_bands(w, spec.n_bands), spec.context) for w in db)
        model = SubspaceModel.fit_patches(runs, spec.variance, MAX_SUBSPACE_COMPONENTS)
        return SubspaceDetector(spec.name, spec.n_bands, spec.context, spec.pooling, model)
    raise ValueError(f"{spec.kind!r} is not a NumPy detector ({', '.join(NUMPY_KINDS)})")


def _scores(det: NumpyDetector, db: np.ndarray) -> np.ndarray:
    return np.array([det.score(w).score for w in db])


def cross_fit_scores(spec: DetectorSpec, db: np.ndarray, groups: np.ndarray, n_folds: int = 10,
                     pseudo: PseudoSet | None = None) -> np.ndarray:
    """Out-of-fold window scores ``(n,)``: each clip scored by a detector fitted without it.

    Args:
        spec: the detector.
        db: ``(n, n_mels, frames)`` normal log-mels.
        groups: ``(n,)`` the clip of each window (folds split clips).
        n_folds: folds (fewer when there are fewer clips: leave-one-clip-out).
        pseudo: pseudo-anomalies made from these windows; when given, their
            scores (by the model of the fold that held out their source
            window's clip) follow the normal ones: ``(n + len(pseudo),)``.
    """
    groups = np.asarray(groups)
    clips = np.unique(groups)
    if clips.size < 2:
        raise ValueError(f"need at least 2 clips for out-of-fold scores, got {clips.size}")
    k = min(n_folds, clips.size)
    out = np.empty(db.shape[0])
    extra = np.empty(0 if pseudo is None else len(pseudo))
    for f in range(k):
        held = np.isin(groups, clips[f::k])
        if (~held).sum() < 2:
            raise ValueError("too few windows to fit a detector without one fold")
        det = fit_detector(spec, db[~held])
        out[held] = _scores(det, db[held])
        if pseudo is not None:
            mine = np.isin(groups[pseudo.source], clips[f::k])
            if mine.any():
                extra[mine] = _scores(det, pseudo.db[mine])
    return out if pseudo is None else np.concatenate([out, extra])


@dataclass
class NumpyFit:
    """NumPy detectors fitted on every clip, with their out-of-fold normal scores.

    Attributes:
        specs: the detectors' descriptions (model.json ``detectors``).
        detectors: the fitted detectors, in the order of ``specs``.
        oof_scores: name -> ``(n,)`` out-of-fold scores of the training windows.
        seconds: fitting time.
        pseudo_scores: name -> out-of-fold scores of the pseudo-anomalies (when given).
    """

    specs: list[DetectorSpec]
    detectors: list[NumpyDetector]
    oof_scores: dict[str, np.ndarray] = field(default_factory=dict)
    seconds: float = 0.0
    pseudo_scores: dict[str, np.ndarray] = field(default_factory=dict)

    def keep(self, names: Sequence[str]) -> NumpyFit:
        """Only the detectors named (the chosen ones), in their order here."""
        idx = [i for i, s in enumerate(self.specs) if s.name in names]
        return NumpyFit([self.specs[i] for i in idx], [self.detectors[i] for i in idx],
                        {self.specs[i].name: self.oof_scores[self.specs[i].name] for i in idx}, self.seconds,
                        {self.specs[i].name: self.pseudo_scores[self.specs[i].name]
                         for i in idx if self.specs[i].name in self.pseudo_scores})


def fit_numpy_detectors(specs: Sequence[DetectorSpec], db: np.ndarray, groups: np.ndarray,
                        n_folds: int = 10, pseudo: PseudoSet | None = None) -> NumpyFit:
    """Out-of-fold scores (of ``pseudo`` too), then the final fit on everything, for each NumPy detector."""
    t0 = time.monotonic()
    specs = [s for s in specs if s.kind in NUMPY_KINDS]
    both = {s.name: cross_fit_scores(s, db, groups, n_folds, pseudo) for s in specs}
    n = db.shape[0]
    dets = [fit_detector(s, db) for s in specs]
    return NumpyFit([fitted_spec(s, d) for s, d in zip(specs, dets, strict=True)], dets,
                    {k: v[:n] for k, v in both.items()}, time.monotonic() - t0,
                    {k: v[n:] for k, v in both.items()} if pseudo is not None else {})


def pseudo_anomalies(waves: Sequence[np.ndarray], index: np.ndarray, groups: np.ndarray, params: FeatureParams,
                     frames: int, seed: int = 0, kinds: Sequence[str] = KINDS) -> PseudoSet:
    """:func:`edge_monitor.model.select.make_pseudo_set` through the one front end, cropped to ``frames``."""

    def features(x: np.ndarray) -> np.ndarray:
        return logmel(x, params)[:, :frames]

    return make_pseudo_set(waves, index, groups, params.sample_rate, features, seed=seed, kinds=kinds)


def select_fusion(normal: dict[str, np.ndarray], pseudo: dict[str, np.ndarray], pseudo_set: PseudoSet,
                  specs: Sequence[DetectorSpec], *, seed: int = 0) -> tuple[Selection, Fusion, np.ndarray]:
    """Choose among candidates from their normal and pseudo-anomaly scores; ``(evidence, fusion, fused normal)``.

    ``normal`` / ``pseudo``: candidate name -> out-of-fold scores (the same
    windows for every candidate). The fusion holds only the chosen
    detectors (weight > 0); the fused scores are those of the normal windows.
    """
    selection, stats = choose(normal, pseudo, pseudo_set.kinds, {s.name: s.describe() for s in specs},
                              n_pseudo_sources=int(np.unique(pseudo_set.source).size), seed=seed)
    weights = selection.weights
    fusion = Fusion("weighted", {n: stats[n] for n in weights}, weights)
    return selection, fusion, fusion.fuse_many({n: normal[n] for n in weights})


def fitted_spec(spec: DetectorSpec, det: NumpyDetector) -> DetectorSpec:
    """``spec`` with what fitting found that model.json records (a subspace's ``components``)."""
    if isinstance(det, SubspaceDetector):
        return replace(spec, components=det.model.components)
    return spec


def detector_arrays(detectors: Sequence[NumpyDetector]) -> dict[str, np.ndarray]:
    """``detectors.npz``: ``<name>.mean``, ``.precision``, ``.std`` (subspace: ``.scale``, ``.basis``)."""
    out: dict[str, np.ndarray] = {}
    for d in detectors:
        out.update(d.model.to_arrays(f"{d.name}."))
    return out


def detector_macs(spec: DetectorSpec, n_mels: int, frames: int) -> int:
    """Multiply-accumulates per window of a NumPy detector (band averaging + Mahalanobis or projection)."""
    if spec.kind == "profile":
        d = 2 * spec.n_bands
        return n_mels * frames + d * d + d
    if spec.kind == "subspace":
        # Per run: standardise (d), project onto the k basis vectors and back (2 d k): the mean
        # pooling's one pass gives the score and the band shares; top pooling projects every
        # run once (d k) and rebuilds only the worst.
        d, k, runs = spec.context * spec.n_bands, max(spec.components, 1), frames - spec.context + 1
        per_run = d + (2 * d * k if spec.pooling.kind == "mean" else d * k)
        rebuilt = 0 if spec.pooling.kind == "mean" else top_count(runs, spec.pooling.fraction) * 2 * d * k
        return n_mels * frames + runs * per_run + rebuilt
    return n_mels * frames + frames * (spec.n_bands * spec.n_bands + spec.n_bands)


def write_numpy_bundle(out_dir: str | Path, db: np.ndarray, groups: np.ndarray, params: FeatureParams,
                       specs: Sequence[DetectorSpec] = NUMPY_CANDIDATES, *, waves: Sequence[np.ndarray] = (),
                       wave_index: Sequence[int] = (), fusion_rule: str = "weighted",
                       threshold_rule: str = "budget", threshold_quantile: float = 0.99,
                       false_alarms_per_day: float = DEFAULT_FALSE_ALARMS_PER_DAY,
                       clip_lo: float | None = -1.0, clip_hi: float | None = 2.0, machine: str = "",
                       machine_ids: Sequence[str] = (), source: JsonObject | None = None,
                       progress: Progress | None = None, seed: int = 0) -> JsonObject:
    """Fit NumPy detectors on normal log-mels and write a bundle without an autoencoder; returns model.json.

    Args:
        out_dir: the bundle folder (created).
        db: ``(n, n_mels, frames)`` normal windows' log-mel in dB, ``frames``
            = ``features.model_frames(params.window_frames)``.
        groups: ``(n,)`` the recording each window came from (at least 2).
        params: the front end's parameters (recorded).
        specs: the candidate detectors (``weighted``: chosen among; otherwise all kept).
        waves: normal windows' samples (``(window_samples,)`` at ``params.sample_rate``) the
            pseudo-anomalies are made from (``weighted`` only; :func:`edge_monitor.model.select.pick_windows`).
        wave_index: each one's index in ``db``.
        fusion_rule: ``weighted`` (default: chosen from pseudo-anomalies), or
            ``max`` / ``mean`` of every detector in ``specs`` (bundles before
            the choice; one detector: ``none``).
        threshold_rule: ``budget`` (``weighted`` only), ``gamma`` or ``percentile``.
        false_alarms_per_day: the budget (rule ``budget``, the daemon's default 2-of-3 rule and 10 s hop).
        source: recorded as ``training`` (e.g. ``{"minutes": 10, "device": ...}``).
        seed: the pseudo-anomaly draws.
    """
    log = progress or (lambda _line: None)
    out_dir = Path(out_dir)
    db = np.asarray(db, dtype=np.float32)
    n, n_mels, frames = db.shape
    selection: Selection | None = None
    if fusion_rule == "weighted":
        if not len(waves):
            raise ValueError("weighted fusion needs normal windows' samples for the pseudo-anomalies")
        pseudo = pseudo_anomalies(waves, np.asarray(wave_index), np.asarray(groups), params, frames, seed)
        fit = fit_numpy_detectors(specs, db, groups, pseudo=pseudo)
        selection, fusion, fused = select_fusion(fit.oof_scores, fit.pseudo_scores, pseudo, fit.specs, seed=seed)
        fit = fit.keep(list(fusion.weights))
        for line in selection.lines():
            log(line)
    else:
        fit = fit_numpy_detectors(specs, db, groups)
        rule = fusion_rule if len(fit.specs) > 1 else "none"
        fusion = Fusion(rule, {n_: NormalStats.of(s) for n_, s in fit.oof_scores.items()} if rule != "none" else {})
        fused = fusion.fuse_many(fit.oof_scores)
    thr = normal_threshold(fused, threshold_rule, threshold_quantile, false_alarms_per_day, "out-of-fold")
    norm = MinMaxNorm.fit(db, clip_lo=clip_lo, clip_hi=clip_hi)
    levels = BandLevels.of(db)
    log(f"detectors: {', '.join(s.describe() for s in fit.specs)}; fitted in {fit.seconds:.1f} s; "
        f"threshold {thr.value:.4g} ({thr.describe()})")
    doc = ModelJson(
        features=params, input_shape=(n_mels, frames), normalisation=norm, detectors=tuple(fit.specs),
        fusion=fusion, threshold=thr, created=datetime.now(UTC).isoformat(timespec="seconds"), machine=machine,
        machine_ids=tuple(machine_ids), band_level_db=levels,
        validation_scores=ScoreStats.of(fused, source="out-of-fold"),
        band_deviation=BandStats.of(band_deviations(db, norm, levels.mean), source="training"),
        model={"arch": None, "macs_per_window": int(sum(detector_macs(s, n_mels, frames) for s in fit.specs))},
        training={"windows": int(n), "clips": int(np.unique(groups).size), "fit_seconds": round(fit.seconds, 3),
                  **(source or {})},
        versions={"edge_monitor": edge_monitor.__version__, "numpy": np.__version__,
                  "python": platform.python_version()},
        selection=selection,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    write_arrays(out_dir, detector_arrays(fit.detectors))
    write_model_json(out_dir, doc)
    load_bundle(out_dir)  # verify what was written
    return read_model_json(out_dir)


def normal_threshold(fused: np.ndarray, rule: str, quantile: float, false_alarms_per_day: float,
                     source: str) -> ThresholdFit:
    """The threshold from normal fused scores: ``budget`` (:func:`fit_budget_threshold`), else :func:`fit_threshold`.

    The budget rule needs 10 normal scores, two of them above 0; with fewer (a
    tiny or very steady training set) it falls back to the gamma rule (itself
    the empirical percentile below 10 scores) and says so in ``note``.
    """
    if rule != "budget":
        return fit_threshold(fused, quantile, rule, source=source)
    try:
        return fit_budget_threshold(fused, false_alarms_per_day, source=source)
    except ValueError as exc:
        fallback = fit_threshold(fused, quantile, "gamma", source=source)
        return replace(fallback, requested_rule="budget", note=f"budget rule not possible: {exc}")
