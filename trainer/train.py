"""Train an autoencoder on normal clips and write a model bundle.

The path, in order (:func:`train_bundle`):

1. find the normal training clips (``trainer.datasets.find_clips``),
   read them (``edge_monitor.audio.audio_io.read_wav``) and cut them into windows
   (``audio_io.clip_windows``), exactly as the daemon will;
2. split the *clips* (not windows) into training and validation sets;
3. log-mel every window (``edge_monitor.features.frontend.logmel``), fit the per-band
   ``MinMaxNorm`` on the training windows only and scale every window with it:
   ``norm.apply(logmel(w)[:, :frames])`` is what ``model_input.to_model_input``
   computes at run time, so training and run-time inputs are the same code;
4. fit the autoencoder (Adam 1e-3, MSE, early stopping on validation loss
   with patience 5, restoring the best weights), one progress line per epoch;
5. save ``model.keras`` and ``training_curve.png``, convert to
   ``model.tflite`` (batch size 1; float32 or dynamic-range int8);
6. score the validation windows with the TFLite model (the runtime path),
   choose the threshold (:mod:`trainer.threshold`), store the score
   distribution and per-band error statistics, and write ``model.json``;
7. when the dataset has held-out test clips of both labels, score them with
   the runtime :class:`edge_monitor.model.scorer.Scorer` and record the AUC (and,
   with ``quantize="dynamic"``, the float32 AUC for comparison).

Deterministic for a seed on one machine (``keras.utils.set_random_seed`` and
``tf.config.experimental.enable_op_determinism``).
"""

from __future__ import annotations

import hashlib
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

import edge_monitor
from edge_monitor.audio import audio_io
from edge_monitor.features.frontend import FeatureParams, logmel, model_frames
from edge_monitor.features.model_input import MinMaxNorm
from edge_monitor.model.bundle import (
    MODEL_KERAS,
    MODEL_TFLITE,
    TRAINING_CURVE,
    load_bundle,
    read_model_json,
    write_arrays,
    write_model_json,
)
from edge_monitor.model.detectors import Pooling
from edge_monitor.model.fit import (
    NumpyFit,
    band_deviations,
    detector_arrays,
    detector_macs,
    fit_numpy_detectors,
    normal_threshold,
    pseudo_anomalies,
    select_fusion,
)
from edge_monitor.model.fusion import Fusion, NormalStats
from edge_monitor.model.model_json import BandLevels, BandStats, ModelJson, ScoreStats
from edge_monitor.model.pseudo import KINDS as PSEUDO_KINDS
from edge_monitor.model.select import PseudoSet, Selection, pick_windows
from edge_monitor.util.progress import progress_text
from trainer.autoencoder import (
    _auc,
    _fmt_seconds,
    keras_window_scores,
    plot_training_curve,
    pooled_scores,
    quantization_effect,
    tflite_errors,
    train_autoencoder,
)
from trainer.datasets import ClipRef, DatasetError, find_clips
from trainer.defaults import (
    ARCHITECTURES,
    DEFAULT_AE_POOLING,
    DEFAULT_ARCH,
    DEFAULT_CHANNELS,
    DEFAULT_CLIP_HI,
    DEFAULT_CLIP_LO,
    DEFAULT_FALSE_ALARMS_PER_DAY,
    DEFAULT_FUSION,
    DEFAULT_THRESHOLD_QUANTILE,
    DEFAULT_THRESHOLD_RULE,
    DETECTOR_KINDS,
    MIN_AUTOENCODER_CLIPS,
    default_detectors,
    detector_specs,
)

__all__ = [
    "TrainConfig",
    "TrainResult",
    "TrainingError",
    "data_fingerprint",
    "load_logmels",
    "load_windows",
    "select_clips",
    "split_train_val",
    "train_bundle",
    "keras_window_scores",
    "plot_training_curve",
]

Progress = Callable[[str], None]


class TrainingError(Exception):
    """Training cannot start or finish; one readable line."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything that shapes a training run (recorded in model.json).

    Attributes:
        epochs: maximum epochs (early stopping may end sooner).
        seed: seeds the clip split, weight init and shuffling.
        arch: ``"conv"`` or ``"dense"`` (trainer.model; default ``trainer.defaults.DEFAULT_ARCH``).
        channels: filters of the three conv encoder blocks.
        clip_lo, clip_hi: clip bounds of the normalised input
            (:class:`edge_monitor.features.model_input.MinMaxNorm`; ``None``: no clip),
            stored in model.json's ``normalisation``.
        quantize: ``"none"`` (float32) or ``"dynamic"`` (int8 weights).
        val_split: share of training *clips* held out for validation, early
            stopping and the threshold (at least one clip).
        batch_size: windows per gradient step.
        patience: early-stopping patience in epochs.
        learning_rate: Adam learning rate.
        threshold_rule: ``"gamma"`` or ``"percentile"`` (trainer.threshold).
        threshold_quantile: quantile of the normal-score distribution.
        machine_ids: restrict to these ids (``None``: all ids found).
        features: the front-end parameters.
        score_test: score held-out test clips (when present) and record the AUC.
        detectors: the candidate detectors (``autoencoder``, ``profile``,
            ``frames``, ``frames_mean``, ``subspace``); ``None``: the default
            ones (:func:`trainer.defaults.default_detectors`).
        fusion: ``weighted`` (default: the detectors and their weights chosen
            from pseudo-anomalies, :mod:`edge_monitor.model.select`; those
            with weight 0 leave the bundle), or ``max`` / ``mean`` of every
            detector's standardised score.
        false_alarms_per_day: the budget of threshold rule ``budget`` (the default with ``weighted``).
        ae_pooling: the autoencoder's frame pooling (``mean`` or ``top``).
        pseudo_kinds: the pseudo-anomaly kinds the choice makes (every kind; the bench
            leaves one out to see a machine that lacks it, e.g. events to remove).
    """

    epochs: int = 15
    seed: int = 0
    arch: str = DEFAULT_ARCH
    channels: tuple[int, int, int] = DEFAULT_CHANNELS
    clip_lo: float | None = DEFAULT_CLIP_LO
    clip_hi: float | None = DEFAULT_CLIP_HI
    quantize: str = "none"
    val_split: float = 0.1
    batch_size: int = 16
    patience: int = 5
    learning_rate: float = 1e-3
    threshold_rule: str = DEFAULT_THRESHOLD_RULE
    threshold_quantile: float = DEFAULT_THRESHOLD_QUANTILE
    machine_ids: tuple[str, ...] | None = None
    features: FeatureParams = field(default_factory=FeatureParams)
    score_test: bool = True
    detectors: tuple[str, ...] | None = None
    fusion: str = DEFAULT_FUSION
    ae_pooling: Pooling = DEFAULT_AE_POOLING
    false_alarms_per_day: float = DEFAULT_FALSE_ALARMS_PER_DAY
    pseudo_kinds: tuple[str, ...] = PSEUDO_KINDS


@dataclass
class TrainResult:
    """What :func:`train_bundle` produced."""

    bundle_dir: Path
    meta: dict[str, Any]
    history: dict[str, list[float]]
    val_scores: np.ndarray
    seconds: float


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# --- data ----------------------------------------------------------------------


def select_clips(root: str | Path, machine_ids: Sequence[str] | None = None,
                 seed: int = 0) -> tuple[list[ClipRef], list[ClipRef]]:
    """``(training normals, held-out test clips)`` of one machine type.

    DCASE layout: the ``train`` split's normals and the ``test`` split.
    Layouts without a split (MIMII, flat folders): per machine id, as many
    normal clips as there are anomalies (at most half the normals), drawn with
    ``seed``, are held out for testing with the anomalies, as the DCASE 2020
    development set was built from MIMII; the other normals train.
    """
    clips = find_clips(root, machine_ids=machine_ids)
    machines = sorted({c.machine for c in clips})
    if len(machines) > 1:
        raise DatasetError(f"{root}: holds several machine types ({', '.join(machines)}); "
                           f"point at one machine folder, e.g. {Path(root) / machines[0]}")
    if any(c.split is not None for c in clips):
        train = [c for c in clips if c.split == "train" and c.label == "normal"]
        test = [c for c in clips if c.split == "test"]
    else:
        rng = np.random.default_rng(seed)
        train, test = [], []
        for mid in sorted({c.machine_id for c in clips}):
            normals = [c for c in clips if c.machine_id == mid and c.label == "normal"]
            anomalies = [c for c in clips if c.machine_id == mid and c.label == "anomaly"]
            n_hold = min(len(anomalies), len(normals) // 2)
            order = rng.permutation(len(normals))
            held = {normals[i].path for i in order[:n_hold]}
            train += [c for c in normals if c.path not in held]
            test += [c for c in normals if c.path in held] + anomalies
    if not train:
        raise DatasetError(f"{root}: no normal training clips found")
    return sorted(train), sorted(test)


def split_train_val(clips: Sequence[ClipRef], val_split: float, seed: int) -> tuple[list[ClipRef], list[ClipRef]]:
    """Split clips (not windows: windows of one clip are alike) into training and validation.

    At least one clip goes to each side (two to validation from four clips
    on, so the threshold has two scores); needs at least two clips.
    """
    if len(clips) < 2:
        raise TrainingError(f"need at least 2 normal training clips (one for validation), got {len(clips)}")
    if not 0.0 < val_split < 1.0:
        raise TrainingError(f"val_split must be in (0, 1), got {val_split}")
    # Two validation clips at least (when there are 4+): a threshold needs 2+ scores.
    n_val = min(len(clips) - 1, max(2 if len(clips) >= 4 else 1, int(round(val_split * len(clips)))))
    order = np.random.default_rng(seed).permutation(len(clips))
    val_idx = set(order[:n_val].tolist())
    train = [c for i, c in enumerate(clips) if i not in val_idx]
    val = [c for i, c in enumerate(clips) if i in val_idx]
    return train, val


def data_fingerprint(clips: Sequence[ClipRef]) -> dict[str, Any]:
    """``{"n_files", "sha256"}``: SHA-256 over the sorted ``"<name>\\t<bytes>\\n"`` lines.

    Names, not full paths, so the same data copied elsewhere has the same fingerprint.
    """
    lines = sorted(f"{c.machine_id}/{c.path.name}\t{c.path.stat().st_size}\n" for c in clips)
    digest = hashlib.sha256("".join(lines).encode("utf-8")).hexdigest()
    return {"n_files": len(lines), "sha256": digest}


def load_logmels(clips: Sequence[ClipRef], params: FeatureParams, frames: int,
                 progress: Progress | None = None) -> np.ndarray:
    """Log-mel (dB) of every scored window of every clip, ``(n_windows, n_mels, frames)`` float32.

    Windows come from ``audio_io.clip_windows``: the daemon's rule.
    """
    return load_windows(clips, params, frames, progress)[0]


def load_windows(clips: Sequence[ClipRef], params: FeatureParams, frames: int,
                 progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(log-mels (n_windows, n_mels, frames) float32 dB, clip index of each window (n_windows,))``."""
    out: list[np.ndarray] = []
    groups: list[int] = []
    t0 = time.monotonic()
    for i, clip in enumerate(clips):
        samples = audio_io.read_wav(clip.path, sample_rate=params.sample_rate)
        try:
            windows = audio_io.clip_windows(samples, params.window_samples)
        except ValueError as exc:
            raise TrainingError(f"{clip.path}: {exc}") from None
        out.extend(logmel(w, params)[:, :frames] for w in windows)
        groups.extend([i] * len(windows))
        if progress and (i + 1) % 200 == 0:
            progress(f"  features: {progress_text(i + 1, len(clips), time.monotonic() - t0, 'clips')}")
    return np.stack(out).astype(np.float32, copy=False), np.asarray(groups)


def window_samples(clips: Sequence[ClipRef], groups: np.ndarray, index: np.ndarray,
                   params: FeatureParams) -> list[np.ndarray]:
    """The samples of the windows ``index`` (of :func:`load_windows`' ``(clips, groups)``), cut the same way."""
    groups = np.asarray(groups)
    cut: dict[int, list[np.ndarray]] = {}  # clip -> its windows
    for g in dict.fromkeys(int(groups[i]) for i in index):
        cut[g] = audio_io.clip_windows(audio_io.read_wav(clips[g].path, sample_rate=params.sample_rate),
                                       params.window_samples)
    return [np.asarray(cut[int(groups[i])][int(i) - int(np.argmax(groups == groups[i]))], dtype=np.float32)
            for i in index]


# --- training ------------------------------------------------------------------


def _score_test(bundle_dir: Path, test: Sequence[ClipRef], progress: Progress) -> dict[str, Any] | None:
    """AUC of the held-out test clips scored through the runtime Scorer; None without both labels."""
    from edge_monitor.model.scorer import Scorer

    labels = np.array([c.label == "anomaly" for c in test], dtype=int)
    if labels.min(initial=1) == labels.max(initial=0):
        return None
    scorer = Scorer(load_bundle(bundle_dir))
    scores = np.array([scorer.score_file(c.path).score for c in test])
    auc = _auc(labels, scores)
    flagged = scores > scorer.threshold
    progress(f"held-out test AUC {auc:.4f} ({int((labels == 0).sum())} normal, {int(labels.sum())} anomalous clips)")
    return {
        "auc": auc,
        "n_normal": int((labels == 0).sum()),
        "n_anomaly": int(labels.sum()),
        "true_positive_rate": float(flagged[labels == 1].mean()),
        "false_positive_rate": float(flagged[labels == 0].mean()),
        "scores": scores,
        "labels": labels,
    }


def _choose_detectors(config: TrainConfig, n_clips: int) -> tuple[str, ...]:
    kinds = tuple(config.detectors) if config.detectors else default_detectors(n_clips)
    unknown = [k for k in kinds if k not in DETECTOR_KINDS]
    if unknown or not kinds or len(set(kinds)) != len(kinds):
        raise TrainingError(f"detectors must be distinct names from {', '.join(DETECTOR_KINDS)}, "
                            f"got {', '.join(kinds)}")
    return kinds


def train_bundle(data_dir: str | Path, out_dir: str | Path, config: TrainConfig = TrainConfig(),
                 progress: Progress | None = _stderr) -> TrainResult:
    """Train on the normal clips under ``data_dir`` and write a bundle to ``out_dir``.

    The bundle's detectors are ``config.detectors`` or, by default, chosen
    from the number of normal clips (:func:`trainer.defaults.default_detectors`).
    The NumPy detectors are fitted on every normal clip with out-of-fold
    normal scores (:mod:`edge_monitor.model.fit`); the autoencoder on the training
    share, with the validation clips for early stopping. Fusion statistics
    and the threshold come from normal scores no detector was fitted on.

    Raises:
        DatasetError: no usable clips.
        TrainingError: too few clips, clips too short, bad settings.
        audio_io.AudioFileError: an unreadable WAV (its path in the message).
    """
    log = progress or (lambda _line: None)
    t_start = time.monotonic()
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    params = config.features
    frames = model_frames(params.window_frames)
    input_shape = (params.n_mels, frames)

    train_all, test = select_clips(data_dir, config.machine_ids, config.seed)
    kinds = _choose_detectors(config, len(train_all))
    if config.arch not in ARCHITECTURES:
        raise TrainingError(f"unknown architecture {config.arch!r}; choose one of {', '.join(ARCHITECTURES)}")
    use_ae = "autoencoder" in kinds
    specs = detector_specs(kinds, config.ae_pooling)
    numpy_specs = [sp for sp in specs if sp.kind != "autoencoder"]
    if len(train_all) < 2:
        raise TrainingError(f"need at least 2 normal training clips, got {len(train_all)}")
    if use_ae:
        train_clips, val_clips = split_train_val(train_all, config.val_split, config.seed)
    else:
        train_clips, val_clips = list(train_all), []
    machine = train_all[0].machine
    machine_ids = sorted({c.machine_id for c in train_all})
    why = "" if config.detectors else " (the default: docs/model.md)"
    if use_ae and len(train_all) < MIN_AUTOENCODER_CLIPS:
        log(f"note: {len(train_all)} normal clips are few for an autoencoder ({MIN_AUTOENCODER_CLIPS}+ advised); "
            f"the profile and frame detectors need no more than a few")
    log(f"data: {machine} {', '.join(machine_ids)}: {len(train_all)} normal training clips"
        + (f" ({len(train_clips)} training + {len(val_clips)} validation for the autoencoder)" if use_ae else "")
        + f", {len(test)} held-out test clips; detectors: {', '.join(kinds)}{why}")

    ordered = list(train_clips) + list(val_clips)
    db_all, groups = load_windows(ordered, params, frames, log)
    n_train_windows = int(np.sum(groups < len(train_clips)))
    norm = MinMaxNorm.fit(db_all[:n_train_windows], clip_lo=config.clip_lo, clip_hi=config.clip_hi)
    log(f"features: {len(db_all)} windows of {input_shape[0]}x{frames} ({time.monotonic() - t_start:.1f} s)")

    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in (MODEL_TFLITE, MODEL_KERAS, TRAINING_CURVE, "detectors.npz"):
        (out_dir / stale).unlink(missing_ok=True)  # a bundle folder reused for another kind keeps no old model

    weighted = config.fusion == "weighted" and len(specs) > 1
    pseudo: PseudoSet | None = None
    if weighted:
        # Pseudo-anomalies from windows every candidate scores unseen: with the autoencoder,
        # its validation windows; otherwise training windows spread over every clip.
        idx = np.arange(n_train_windows, len(db_all)) if use_ae else pick_windows(groups)
        t_ps = time.monotonic()
        pseudo = pseudo_anomalies(window_samples(ordered, groups, idx, params), idx, groups, params, frames,
                                  config.seed, config.pseudo_kinds)
        log(f"pseudo-anomalies: {len(pseudo)} windows made from {idx.size} normal windows "
            f"({time.monotonic() - t_ps:.1f} s)")
    scores: dict[str, np.ndarray] = {}  # detector -> normal scores on the threshold windows
    pseudo_scores: dict[str, np.ndarray] = {}
    stats: dict[str, NormalStats] = {}
    history: dict[str, list[float]] = {}
    training: dict[str, Any] = {"seed": config.seed, "train_clips": len(train_clips), "val_clips": len(val_clips),
                                "data_dir": str(data_dir), "data_fingerprint": data_fingerprint(train_all)}
    versions: dict[str, Any] = {"edge_monitor": edge_monitor.__version__, "numpy": np.__version__,
                                "python": platform.python_version()}
    tflite: bytes | None = None
    ae_model = None
    ae: dict[str, Any] = {}
    band_error: BandStats | None = None
    band_deviation: BandStats | None = None
    fit: NumpyFit | None = None
    if numpy_specs:
        fit = fit_numpy_detectors(numpy_specs, db_all, groups, pseudo=pseudo)
        fitted = {sp.name: sp for sp in fit.specs}  # with what fitting found (a subspace's dimension)
        specs = [fitted.get(sp.name, sp) for sp in specs]
        numpy_specs = list(fit.specs)
        for sp in numpy_specs:
            oof = fit.oof_scores[sp.name]
            stats[sp.name] = NormalStats.of(oof)
            # With an autoencoder the threshold is fitted on the validation windows (the
            # autoencoder's unseen ones); the NumPy detectors' scores there are out-of-fold too.
            scores[sp.name] = oof[n_train_windows:] if use_ae else oof
            if pseudo is not None:
                pseudo_scores[sp.name] = fit.pseudo_scores[sp.name]
        deviations = band_deviations(db_all, norm, BandLevels.of(db_all[:n_train_windows]).mean)
        band_deviation = BandStats.of(deviations, source="training")
        training["numpy_fit_seconds"] = round(fit.seconds, 3)
        log(f"detectors: {'; '.join(sp.describe() for sp in numpy_specs)} fitted in {fit.seconds:.1f} s "
            f"(out-of-fold normal scores of {len(db_all)} windows)")
    if use_ae and len(db_all) - n_train_windows < 2:
        raise TrainingError(f"the autoencoder needs at least 2 validation windows for its threshold, got "
                            f"{len(db_all) - n_train_windows} from {len(val_clips)} clip(s): give 4 or more normal "
                            f"clips, or leave the autoencoder out (the default detectors need no validation share)")
    if use_ae:
        ae = train_autoencoder(config, norm.apply(db_all[:n_train_windows]), norm.apply(db_all[n_train_windows:]),
                               input_shape, out_dir, machine, machine_ids, log)
        tflite, history, ae_model = ae["tflite"], ae["history"], ae["model"]
        ae_spec = next(sp for sp in specs if sp.kind == "autoencoder")
        val_scores, val_bands, val_frames = tflite_errors(tflite, norm.apply(db_all[n_train_windows:]))
        scores[ae_spec.name] = pooled_scores(ae_spec, val_scores, val_frames)
        stats[ae_spec.name] = NormalStats.of(scores[ae_spec.name])
        if pseudo is not None:
            ps, _, pf = tflite_errors(tflite, norm.apply(pseudo.db))
            pseudo_scores[ae_spec.name] = pooled_scores(ae_spec, ps, pf)
        band_error = BandStats.of(val_bands, source="validation")
        training.update(ae["training"])
        versions.update(ae["versions"])

    selection: Selection | None = None
    if weighted and pseudo is not None:
        selection, fusion, fused = select_fusion(scores, pseudo_scores, pseudo, specs, seed=config.seed)
        for line in selection.lines():
            log(line)
        specs = [sp for sp in specs if sp.name in fusion.weights]
    else:
        fusion = Fusion(config.fusion if len(specs) > 1 else "none", stats if len(specs) > 1 else {})
        fused = fusion.fuse_many({sp.name: scores[sp.name] for sp in specs})
    chosen = [sp.name for sp in specs]
    if fit is not None and any(sp.kind != "autoencoder" for sp in specs):
        write_arrays(out_dir, detector_arrays(fit.keep(chosen).detectors))
    if use_ae and "autoencoder" not in {sp.kind for sp in specs}:
        for unused in (MODEL_TFLITE, MODEL_KERAS, TRAINING_CURVE):
            (out_dir / unused).unlink(missing_ok=True)  # not chosen: nothing of it in the bundle
        tflite, ae_model, band_error = None, None, None
    model_info: dict[str, Any] = dict(ae["model_meta"]) if tflite is not None else {"arch": None}
    model_info["macs_per_window"] = int(sum(ae["macs"] if sp.kind == "autoencoder" else
                                            detector_macs(sp, *input_shape) for sp in specs))
    source = "validation" if use_ae else "out-of-fold"
    rule = config.threshold_rule if fusion.rule == "weighted" or config.threshold_rule != "budget" else "gamma"
    thr = normal_threshold(fused, rule, config.threshold_quantile, config.false_alarms_per_day, source)
    log(f"threshold: {thr.value:.6g} ({thr.describe()})" + (f"; fusion {fusion.rule} of {', '.join(chosen)}"
                                                             if fusion.rule != "none" else ""))
    doc = ModelJson(
        features=params, input_shape=input_shape, normalisation=norm, detectors=tuple(specs), fusion=fusion,
        threshold=thr, created=datetime.now(UTC).isoformat(timespec="seconds"), machine=machine,
        machine_ids=tuple(machine_ids), band_level_db=BandLevels.of(db_all[:n_train_windows]),
        validation_scores=ScoreStats.of(fused, source=source), band_error=band_error,
        band_deviation=band_deviation, model=model_info, training=training, versions=versions,
        selection=selection)
    write_model_json(out_dir, doc)

    if config.score_test and test:
        result = _score_test(out_dir, test, log)
        if result is not None:
            extra: dict[str, Any] = {"test": {k: v for k, v in result.items() if k not in ("scores", "labels")}}
            if config.quantize != "none" and ae_model is not None and tflite is not None and fusion.rule == "none":
                # The same clips through the float32 model: what quantisation costs.
                from trainer.convert import to_tflite

                float_bytes = to_tflite(ae_model, "none")
                q = quantization_effect(float_bytes, tflite, test, params, norm, frames, result)
                extra["quantization"] = q
                log(f"quantization ({config.quantize}): AUC {q['auc_float32']:.4f} -> {q['auc_quantized']:.4f}, "
                    f"{q['bytes_float32']:,} -> {q['bytes_quantized']:,} bytes")
            doc = replace(doc, extra=doc.extra | extra)
            write_model_json(out_dir, doc)

    seconds = time.monotonic() - t_start
    log(f"bundle written to {out_dir} ({_fmt_seconds(seconds)})")
    load_bundle(out_dir)  # verify what was written
    meta = read_model_json(out_dir)  # as written: plain JSON values
    return TrainResult(bundle_dir=out_dir, meta=meta, history=history, val_scores=fused, seconds=seconds)


