"""A raw window as captured -> what the model scores: mono audio at the model's rate, and its valid frames.

The one place that conditions audio for the model: the daemon (through
:meth:`edge_monitor.model.scorer.Scorer.predict`), ``record``, ``learn`` and
the trainer's scoring all turn a window into the model's input here, so a
device at 44.1 kHz, a stereo array or a dropout is treated the same way
everywhere. Pure functions.
"""

from __future__ import annotations

import numpy as np

from edge_monitor.audio import audio_io
from edge_monitor.features.frontend import FeatureParams
from edge_monitor.features.model_input import valid_frames

__all__ = ["TooFewValidFrames", "fit_length", "frame_mask", "to_model_audio"]


class TooFewValidFrames(ValueError):
    """A window's sensor faults touch more of its frames than may be left out of a score.

    Attributes:
        invalid_share: share of the window's log-mel frames that are invalid (0..1).
    """

    def __init__(self, invalid_share: float, limit: float) -> None:
        super().__init__(f"{invalid_share:.0%} of the window's frames are invalid (at most {limit:.0%} may be)")
        self.invalid_share = invalid_share


def fit_length(x: np.ndarray, n: int) -> np.ndarray:
    """Crop or zero-pad ``x`` to ``n`` samples (resampling a window may be off by one)."""
    if x.shape[0] == n:
        return x
    if x.shape[0] > n:
        return x[:n]
    return np.pad(x, (0, n - x.shape[0]))


def to_model_audio(samples: np.ndarray, sample_rate: int, rate: int, n: int, channel: int | None = None) -> np.ndarray:
    """One captured window ``(m,)`` or ``(m, channels)`` at ``sample_rate`` Hz as float32 mono ``(n,)`` at ``rate`` Hz.

    Downmix (the mean of the channels, or ``channel``), resample the window
    as a whole when the device runs at another rate (``audio_io.resample``, as
    ``read_wav`` does for files), crop or pad to ``n`` samples.
    """
    mono = audio_io.downmix(samples, channel)
    if sample_rate != rate:
        mono = audio_io.resample(mono, sample_rate, rate)
    return np.ascontiguousarray(fit_length(mono, n), dtype=np.float32)


def frame_mask(bad: np.ndarray | None, sample_rate: int, params: FeatureParams,
               max_invalid: float = 1.0) -> np.ndarray | None:
    """The ``(frames,)`` valid-frame mask of a window whose samples ``bad`` are not the machine's sound.

    ``None`` when there are no bad samples (every frame valid).

    Raises:
        TooFewValidFrames: more than ``max_invalid`` (0..1) of the frames are invalid.
    """
    if bad is None:
        return None
    valid = valid_frames(bad, params, sample_rate=sample_rate)
    invalid = 1.0 - float(valid.mean())
    if invalid > max_invalid:
        raise TooFewValidFrames(invalid, max_invalid)
    return valid
