"""Window -> anomaly score: log-mel once, every detector of the bundle, fused into one score.

A bundle holds one or more detectors (:mod:`edge_monitor.model.detectors`): the
TFLite autoencoder's reconstruction error, the window's level profile, the
frame Gaussian. Each scores the window's log-mel ``(n_mels, frames)``; the
bundle's fusion rule (:mod:`edge_monitor.model.fusion`) turns their scores into the
window score the threshold applies to, and names the detector that *fired*
(the highest standardised score). For bundles with only the autoencoder (all
bundles before detectors) the score is the reconstruction MSE, as trained.

The per-band ``(n_mels,)`` and per-frame ``(frames,)`` errors kept for
explanations come from the detector that fired: the autoencoder's squared
error against its reconstruction, or, for the NumPy detectors, the squared
deviation of the scaled input from the normal level of each band (the
training mean; ``reference="mean"``). The trainer's evaluation,
``edge-monitor score`` and the daemon all score through this class, so they
agree by construction; :meth:`Scorer.predict` takes a window as captured
(any rate, any channel count, a sample mask) and conditions it
(:mod:`edge_monitor.model.conditioning`). No TensorFlow here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge_monitor.audio import audio_io
from edge_monitor.audio.ring_buffer import Window
from edge_monitor.features.frontend import LogMel, logmel
from edge_monitor.model.bundle import BundleError, DetectorSpec, ModelBundle
from edge_monitor.model.conditioning import frame_mask, to_model_audio
from edge_monitor.model.detectors import (
    AutoencoderDetector,
    Detector,
    DetectorOutput,
    FrameDetector,
    ModelRunner,
    ProfileDetector,
    SubspaceDetector,
)
from edge_monitor.model.gaussian import GaussianModel
from edge_monitor.model.subspace import SubspaceModel

__all__ = ["ClipScore", "Scorer", "WindowScore", "window_errors", "build_detector", "reference_input"]


@dataclass(frozen=True)
class WindowScore:
    """The score of one window.

    Attributes:
        score: the window score the threshold applies to: the fused score
            (rule ``max``: the largest standardised detector score), or the
            reconstruction MSE of an autoencoder-only bundle; over the valid frames.
        band_error: ``(n_mels,)`` mean squared error per mel band, over the
            valid frames, against the fired detector's reference (``reference``).
        frame_error: ``(frames,)`` mean squared error per frame (hop seconds apart);
            NaN for invalid frames.
        input: ``(n_mels, frames)`` the scaled log-mel (training range 0..1);
            invalid frames hold the fill the autoencoder saw.
        recon: ``(n_mels, frames)`` the reference: the autoencoder's
            reconstruction, or each band's normal level for the NumPy detectors.
        valid: ``(frames,)`` bool, False for frames touched by a sensor fault;
            ``None`` when every frame is valid.
        detector: name of the detector that fired (highest standardised score).
        detector_scores: every detector's raw window score.
        z: every detector's standardised score (empty for fusion ``none``).
        reference: ``"recon"`` (autoencoder) or ``"mean"`` (normal level per band).
        db: ``(n_mels, frames)`` the window's log-mel in dB (unclipped).
        frame_scores: ``(frames,)`` the fired detector's own per-frame score.
        samples: ``(window_samples,)`` float32 the mono audio at the model's
            rate that was scored (:meth:`Scorer.predict` only; evidence and
            explanations use it).
    """

    score: float
    band_error: np.ndarray
    frame_error: np.ndarray
    input: np.ndarray
    recon: np.ndarray
    valid: np.ndarray | None = None
    detector: str = "autoencoder"
    detector_scores: dict[str, float] = field(default_factory=dict)
    z: dict[str, float] = field(default_factory=dict)
    reference: str = "recon"
    db: np.ndarray | None = None
    frame_scores: np.ndarray | None = None
    samples: np.ndarray | None = None


@dataclass(frozen=True)
class ClipScore:
    """The score of a clip: the mean of its window scores."""

    score: float
    windows: list[WindowScore] = field(default_factory=list)

    @property
    def max_window_score(self) -> float:
        return max(w.score for w in self.windows)

    def detector_score(self, name: str) -> float:
        """The clip's mean raw score of one detector."""
        return float(np.mean([w.detector_scores[name] for w in self.windows]))


def window_errors(inp: np.ndarray, recon: np.ndarray,
                  valid: np.ndarray | None = None) -> tuple[float, np.ndarray, np.ndarray]:
    """``(score, band_error, frame_error)`` of one ``(n_mels, frames)`` input and reconstruction.

    The one definition of the score, shared with the trainer. ``valid``
    (``(frames,)`` bool, ``None``: all) restricts the score and the band
    errors to the valid frames; invalid frames get a NaN frame error.
    """
    err = np.square(recon.astype(np.float64) - inp.astype(np.float64))
    frame = err.mean(axis=0)
    if valid is None or valid.all():
        return float(err.mean()), err.mean(axis=1), frame
    kept = err[:, valid]
    frame[~valid] = np.nan
    return float(kept.mean()), kept.mean(axis=1), frame


def reference_input(bundle: ModelBundle, frames: int) -> np.ndarray:
    """``(n_mels, frames)`` each band's normal level (training mean dB), scaled like the model input.

    The reference the NumPy detectors' explanations measure deviations from;
    the middle of each band's training range when the bundle has no levels.
    """
    levels = bundle.doc.band_level_db
    n_mels = bundle.input_shape[0]
    if levels is not None:
        ref = bundle.norm.apply(np.asarray(levels.mean, dtype=np.float32)[:, None])
    else:
        ref = np.full((n_mels, 1), 0.5, dtype=np.float32)
    return np.repeat(np.asarray(ref, dtype=np.float32), frames, axis=1)


def build_detector(spec: DetectorSpec, bundle: ModelBundle, num_threads: int = 1) -> Detector:
    """The runtime detector for one :class:`edge_monitor.model.bundle.DetectorSpec` of a loaded bundle.

    Raises:
        BundleError: the model file or the parameters do not fit the spec.
    """
    if spec.kind == "autoencoder":
        from edge_monitor.model.tflite_backend import TFLiteError, TFLiteModel

        try:
            model = TFLiteModel(bundle.tflite_path, num_threads=num_threads)
        except TFLiteError as exc:
            raise BundleError(str(exc)) from None
        expected = (1, *bundle.input_shape, 1)
        if model.input_shape != expected or model.output_shape != expected:
            raise BundleError(f"{bundle.tflite_path}: model input/output {model.input_shape}/"
                              f"{model.output_shape} do not match model.json's input_shape {expected}")
        return AutoencoderDetector(spec.name, model, bundle.norm, spec.pooling)
    where = f"{bundle.path / 'detectors.npz'}: detector {spec.name!r}"
    try:
        params = (SubspaceModel if spec.kind == "subspace" else GaussianModel).from_arrays(bundle.arrays,
                                                                                        f"{spec.name}.")
    except (KeyError, ValueError) as exc:
        raise BundleError(f"{where}: bad or missing arrays ({exc})") from None
    if isinstance(params, SubspaceModel):
        width = spec.context * spec.n_bands
        if params.basis.shape != (spec.components, width):
            raise BundleError(f"{where} has a basis of {params.basis.shape}, model.json says "
                              f"{spec.components} x {width}")
        return SubspaceDetector(spec.name, spec.n_bands, spec.context, spec.pooling, params)
    width = 2 * spec.n_bands if spec.kind == "profile" else spec.n_bands
    if params.dim != width:
        raise BundleError(f"{where} has {params.dim} dimensions, its {spec.n_bands} bands need {width}")
    if spec.kind == "profile":
        return ProfileDetector(spec.name, spec.n_bands, spec.top_fraction, params)
    return FrameDetector(spec.name, spec.n_bands, spec.pooling, params)


class Scorer:
    """Scores windows of audio with every detector of a bundle, fused by its rule.

    Args:
        bundle: a verified bundle from :func:`edge_monitor.model.bundle.load_bundle`.
        num_threads: TFLite interpreter threads (autoencoder bundles).
    """

    def __init__(self, bundle: ModelBundle, num_threads: int = 1) -> None:
        self.bundle = bundle
        self.features = bundle.features
        self.norm = bundle.norm
        self.n_mels, self.frames = bundle.input_shape
        self.window_samples = bundle.features.window_samples
        LogMel(self.features)  # build the filterbank now, not on the first window
        self.detectors: list[Detector] = [build_detector(spec, bundle, num_threads) for spec in bundle.detectors]
        self.fusion = bundle.fusion
        self._autoencoder = next((d for d in self.detectors if isinstance(d, AutoencoderDetector)), None)
        self._reference = reference_input(bundle, self.frames)
        from edge_monitor.model.validate import dry_run

        dry_run(self)  # a bundle that cannot score a window of silence is refused here, not in the loop

    @property
    def backend(self) -> str:
        """The TFLite interpreter in use (``ai_edge_litert``, ``tflite_runtime``, ``tensorflow``), or ``numpy``."""
        return self._autoencoder.model.backend if self._autoencoder is not None else "numpy"

    @property
    def model(self) -> ModelRunner | None:
        """The autoencoder's TFLite runner (``None`` for a NumPy-only bundle)."""
        return self._autoencoder.model if self._autoencoder is not None else None

    @property
    def threshold(self) -> float:
        return self.bundle.threshold

    def _valid(self, valid: np.ndarray | None) -> np.ndarray | None:
        if valid is None:
            return None
        v = np.asarray(valid, dtype=bool)[: self.frames]
        if v.size != self.frames:
            raise ValueError(f"valid must cover the model's {self.frames} frames, got shape {np.shape(valid)}")
        if not v.any():
            raise ValueError("no valid frame in the window")
        return None if v.all() else v

    def score_db(self, db: np.ndarray, valid: np.ndarray | None = None) -> WindowScore:
        """Score one window's log-mel ``(n_mels, >= frames)`` dB (``features.logmel``; cropped here).

        ``valid``: ``(>= frames,)`` bool (``model_input.valid_frames``; the frames
        the model crops are ignored), ``None``: all valid. Invalid frames are
        left out of every detector's score.
        """
        db = np.asarray(db)
        if db.ndim != 2 or db.shape[0] != self.n_mels or db.shape[1] < self.frames:
            raise ValueError(f"log-mel must be ({self.n_mels}, >= {self.frames}), got {db.shape}")
        db = db[:, : self.frames]
        v = self._valid(valid)
        outs: dict[str, DetectorOutput] = {d.name: d.score(db, v) for d in self.detectors}
        fused = self.fusion.fuse({n: o.score for n, o in outs.items()})
        fired = outs[fused.fired]
        if fired.recon is not None and fired.input is not None:
            # The autoencoder's own errors are the ones against its reconstruction.
            inp, ref, reference = fired.input, fired.recon, "recon"
            band, frame = fired.band_share, fired.frame_scores
        else:
            ae_inp = next((o.input for o in outs.values() if o.input is not None), None)
            inp = ae_inp if ae_inp is not None else self.norm.apply(db)
            ref, reference = self._reference, "mean"
            _, band, frame = window_errors(inp, ref, v)
        return WindowScore(score=fused.score, band_error=band, frame_error=frame, input=inp, recon=ref, valid=v,
                           detector=fused.fired, detector_scores={n: o.score for n, o in outs.items()},
                           z=fused.z, reference=reference, db=db, frame_scores=fired.frame_scores)

    def score_input(self, inp: np.ndarray, valid: np.ndarray | None = None) -> WindowScore:
        """The autoencoder's score of an already scaled model input ``(n_mels, frames)`` (``to_model_input``).

        Only for bundles whose single detector is the autoencoder (bundles
        before detectors; benchmarks of the model alone). ``valid`` as in :meth:`score_db`.
        """
        if self._autoencoder is None or len(self.detectors) != 1:
            raise ValueError("score_input needs a bundle whose only detector is the autoencoder; use score_db")
        v = self._valid(valid)
        out = self._autoencoder.score_input(np.asarray(inp), v)
        assert out.input is not None and out.recon is not None
        _, band, frame = window_errors(out.input, out.recon, v)
        return WindowScore(score=out.score, band_error=band, frame_error=frame, input=out.input, recon=out.recon,
                           valid=v, detector=out.name, detector_scores={out.name: out.score},
                           frame_scores=out.frame_scores)

    def predict(self, window: Window, channel: int | None = None, max_invalid: float = 1.0) -> WindowScore:
        """Score one window as captured: the whole way from raw samples to :class:`WindowScore`.

        Conditions the window (:func:`~edge_monitor.model.conditioning.to_model_audio`:
        downmix, resample, crop or pad; ``window.bad`` -> valid frames), then
        scores it (:meth:`score_window`). ``WindowScore.samples`` holds the
        mono audio that was scored.

        Args:
            window: ``samples`` ``(n, channels)`` at ``sample_rate`` Hz; ``bad``
                ``(n,)`` bool marks samples that are not the machine's sound.
            channel: the channel to score (``audio.channel``), ``None``: their mean.
            max_invalid: the largest share of frames the bad samples may touch (0..1).

        Raises:
            conditioning.TooFewValidFrames: ``bad`` touches more frames than that.
        """
        valid = frame_mask(window.bad, window.sample_rate, self.features, max_invalid)
        mono = to_model_audio(window.samples, window.sample_rate, self.features.sample_rate, self.window_samples,
                              channel)
        ws = self.score_window(mono) if valid is None else self.score_window(mono, valid=valid)
        return dataclasses.replace(ws, samples=mono)

    def score_window(self, samples: np.ndarray, valid: np.ndarray | None = None) -> WindowScore:
        """Score one window of mono float audio at the bundle's sample rate.

        Args:
            samples: ``(window_samples,)`` float, full scale 1.0 (160 000 for 10 s at 16 kHz).
            valid: ``(window_frames,)`` bool over the window's log-mel frames
                (313 at the defaults; ``model_input.valid_frames``), True where
                the frame is free of sensor faults; ``None`` means all valid.
                The score pools only the valid frames.
        """
        samples = np.asarray(samples)
        if samples.ndim != 1 or samples.shape[0] != self.window_samples:
            raise ValueError(f"a window must be mono with {self.window_samples} samples, got shape {samples.shape}")
        return self.score_db(logmel(samples, self.features), valid)

    def score_clip(self, samples: np.ndarray) -> ClipScore:
        """Score every window of a clip (``audio_io.clip_windows``); clip score = mean window score.

        Raises:
            audio_io.ClipTooShortError: (a ``ValueError``) for a clip under half a window.
        """
        windows = audio_io.clip_windows(np.asarray(samples, dtype=np.float32), self.window_samples)
        scores = [self.score_window(w) for w in windows]
        return ClipScore(score=float(np.mean([s.score for s in scores])), windows=scores)

    def score_file(self, path: str | Path) -> ClipScore:
        """Read a WAV (``audio_io.read_wav``, resampled to the bundle's rate) and score it."""
        samples = audio_io.read_wav(path, sample_rate=self.features.sample_rate)
        try:
            return self.score_clip(samples)
        except ValueError as exc:
            raise audio_io.AudioFileError(path, str(exc)) from None
