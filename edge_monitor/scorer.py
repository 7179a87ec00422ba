"""Window -> anomaly score: log-mel, normalise, reconstruct with TFLite, measure the error.

The score of a window is the mean squared error between the model input
(per-band scaled log-mel, ``(n_mels, frames)``: each band's training range
scaled to 0..1, clipped to the bundle's ``clip_lo``..``clip_hi``) and its
reconstruction. The per-band ``(n_mels,)`` and per-frame ``(frames,)`` means
of the squared error are kept for explanations and reports. The trainer's
evaluation, ``edge-monitor score`` and the daemon all score through this
class, so they agree by construction. No TensorFlow here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge_monitor import audio_io
from edge_monitor.bundle import ModelBundle
from edge_monitor.features import LogMel, fill_invalid_frames, to_model_input
from edge_monitor.tflite_backend import TFLiteError, TFLiteModel

__all__ = ["ClipScore", "Scorer", "WindowScore", "window_errors"]


@dataclass(frozen=True)
class WindowScore:
    """The score of one window.

    Attributes:
        score: reconstruction MSE (unitless; the training range of each band is 0..1),
            over the valid frames.
        band_error: ``(n_mels,)`` mean squared error per mel band, over the valid frames.
        frame_error: ``(frames,)`` mean squared error per frame (hop seconds apart);
            NaN for invalid frames.
        input: ``(n_mels, frames)`` the model input (training range 0..1); invalid
            frames hold the fill the model saw (``features.fill_invalid_frames``).
        recon: ``(n_mels, frames)`` its reconstruction.
        valid: ``(frames,)`` bool, False for frames touched by a sensor fault;
            ``None`` when every frame is valid.
    """

    score: float
    band_error: np.ndarray
    frame_error: np.ndarray
    input: np.ndarray
    recon: np.ndarray
    valid: np.ndarray | None = None


@dataclass(frozen=True)
class ClipScore:
    """The score of a clip: the mean of its window scores."""

    score: float
    windows: list[WindowScore] = field(default_factory=list)

    @property
    def max_window_score(self) -> float:
        return max(w.score for w in self.windows)


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


class Scorer:
    """Scores windows of audio with a bundle's TFLite model.

    Args:
        bundle: a verified bundle from :func:`edge_monitor.bundle.load_bundle`.
        num_threads: TFLite interpreter threads.
    """

    def __init__(self, bundle: ModelBundle, num_threads: int = 1) -> None:
        self.bundle = bundle
        self.features = bundle.features
        self.norm = bundle.norm
        self.n_mels, self.frames = bundle.input_shape
        self.window_samples = bundle.features.window_samples
        LogMel(self.features)  # build the filterbank now, not on the first window
        try:
            self.model = TFLiteModel(bundle.tflite_path, num_threads=num_threads)
        except TFLiteError as exc:
            from edge_monitor.bundle import BundleError
            raise BundleError(str(exc)) from None
        expected = (1, self.n_mels, self.frames, 1)
        if self.model.input_shape != expected or self.model.output_shape != expected:
            from edge_monitor.bundle import BundleError
            raise BundleError(f"{bundle.tflite_path}: model input/output {self.model.input_shape}/"
                              f"{self.model.output_shape} do not match model.json's input_shape {expected}")

    @property
    def backend(self) -> str:
        """Which TFLite interpreter is in use (``ai_edge_litert``, ``tflite_runtime`` or ``tensorflow``)."""
        return self.model.backend

    @property
    def threshold(self) -> float:
        return self.bundle.threshold

    def score_input(self, inp: np.ndarray, valid: np.ndarray | None = None) -> WindowScore:
        """Score an already computed model input ``(n_mels, frames)`` (``features.to_model_input``).

        ``valid``: ``(>= frames,)`` bool (``features.valid_frames``; the
        frames the model crops are ignored), ``None``: all valid. Invalid
        frames are filled before the model runs and left out of the score.
        """
        v = None
        if valid is not None:
            v = np.asarray(valid, dtype=bool)[: self.frames]
            if v.size != self.frames:
                raise ValueError(f"valid must cover the model's {self.frames} frames, got shape {np.shape(valid)}")
            if v.all():
                v = None
            else:
                inp = fill_invalid_frames(inp, v)
        recon = self.model.run(inp)
        score, band, frame = window_errors(inp, recon, v)
        return WindowScore(score=score, band_error=band, frame_error=frame, input=inp, recon=recon, valid=v)

    def score_window(self, samples: np.ndarray, valid: np.ndarray | None = None) -> WindowScore:
        """Score one window of mono float audio at the bundle's sample rate.

        Args:
            samples: ``(window_samples,)`` float, full scale 1.0 (160 000 for 10 s at 16 kHz).
            valid: ``(window_frames,)`` bool over the window's log-mel frames
                (313 at the defaults; ``features.valid_frames``), True where
                the frame is free of sensor faults; ``None`` means all valid.
                The score pools only the valid frames.
        """
        samples = np.asarray(samples)
        if samples.ndim != 1 or samples.shape[0] != self.window_samples:
            raise ValueError(f"a window must be mono with {self.window_samples} samples, got shape {samples.shape}")
        inp = to_model_input(samples, self.features, self.norm, self.frames)
        return self.score_input(inp, valid)

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
