"""What a model sees of a log-mel: per-band scaling, the autoencoder's input, and valid-frame masks.

:class:`MinMaxNorm` maps each mel band's training range to 0..1 (the autoencoder's input);
:func:`valid_frames` turns a per-sample mask of dropped audio into a per-frame mask, and
:func:`fill_invalid_frames` replaces the frames it rejects, so that a dropout is never scored.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edge_monitor.features.frontend import FeatureParams, logmel, n_frames

__all__ = ["MinMaxNorm", "to_model_input", "valid_frames", "fill_invalid_frames"]


@dataclass(frozen=True)
class MinMaxNorm:
    """Per-mel-band scaling of dB values, fitted on training data only.

    ``x = clip((db - lo) / (hi - lo), clip_lo, clip_hi)`` band by band: the
    band's training range (robust percentiles) maps to 0..1. The paper fed
    z-scores into a sigmoid decoder, which cannot output negative values; a
    target whose *normal* range is [0, 1] agrees with the sigmoid
    (docs/model.md).

    The clip bounds are stored in model.json with the scaling, so the runtime
    applies exactly what training used. ``clip_hi`` above 1 is headroom: a
    sound louder than anything in training keeps its excess (the sigmoid
    output cannot follow it above 1, so its error grows with its loudness)
    instead of being flattened to the loudest training level. ``None`` means
    no clipping on that side. Old bundles without the keys mean ``[0, 1]``.

    Attributes:
        lo: per-band lower bound in dB, length ``n_mels``.
        hi: per-band upper bound in dB, length ``n_mels``.
        clip_lo: lower clip of the scaled value (``None``: none).
        clip_hi: upper clip of the scaled value (``None``: none).
    """

    lo: tuple[float, ...] = field(default_factory=tuple)
    hi: tuple[float, ...] = field(default_factory=tuple)
    clip_lo: float | None = 0.0
    clip_hi: float | None = 1.0

    def __post_init__(self) -> None:
        if len(self.lo) != len(self.hi) or not self.lo:
            raise ValueError("lo and hi must be non-empty and of equal length")
        for name in ("clip_lo", "clip_hi"):
            v = getattr(self, name)
            if v is not None and not np.isfinite(v):
                raise ValueError(f"{name} must be a finite number or None, got {v!r}")
        if self.clip_lo is not None and self.clip_hi is not None and self.clip_hi <= self.clip_lo:
            raise ValueError(f"clip_hi ({self.clip_hi}) must be above clip_lo ({self.clip_lo})")

    @classmethod
    def fit(cls, logmels: np.ndarray, low_pct: float = 0.5, high_pct: float = 99.5, min_span_db: float = 1.0,
            clip_lo: float | None = 0.0, clip_hi: float | None = 1.0) -> MinMaxNorm:
        """Fit from training log-mels of shape ``(n_clips, n_mels, frames)`` (dB).

        Robust percentiles instead of the raw min/max keep one click in the
        training set from squashing a band's whole range.
        """
        arr = np.asarray(logmels, dtype=np.float64)
        bands = np.moveaxis(arr, -2, 0).reshape(arr.shape[-2], -1)
        lo = np.percentile(bands, low_pct, axis=1)
        hi = np.percentile(bands, high_pct, axis=1)
        hi = np.maximum(hi, lo + min_span_db)
        return cls(lo=tuple(float(v) for v in lo), hi=tuple(float(v) for v in hi), clip_lo=clip_lo, clip_hi=clip_hi)

    def apply(self, db: np.ndarray) -> np.ndarray:
        """Scale ``(..., n_mels, frames)`` dB per band and clip to ``[clip_lo, clip_hi]``; float32."""
        lo = np.asarray(self.lo, dtype=np.float32)[:, None]
        span = (np.asarray(self.hi, dtype=np.float32) - np.asarray(self.lo, dtype=np.float32))[:, None]
        x = (db - lo) / span
        if self.clip_lo is not None or self.clip_hi is not None:
            x = np.clip(x, self.clip_lo, self.clip_hi)
        return np.asarray(x, dtype=np.float32)

    def to_dict(self) -> dict[str, object]:
        return {"kind": "minmax", "lo": list(self.lo), "hi": list(self.hi),
                "clip_lo": self.clip_lo, "clip_hi": self.clip_hi}

    @classmethod
    def from_dict(cls, data: object) -> MinMaxNorm:
        """From :meth:`to_dict`'s dict; missing ``clip_lo``/``clip_hi`` (bundles before them) mean 0 and 1."""
        if not isinstance(data, dict):
            raise TypeError(f"normalisation must be an object, got {type(data).__name__}")
        if data.get("kind", "minmax") != "minmax":
            raise ValueError(f"unsupported normalisation kind {data.get('kind')!r}")

        def bound(key: str, default: float) -> float | None:
            v = data.get(key, default)
            return None if v is None else float(v)

        return cls(lo=tuple(float(v) for v in data["lo"]), hi=tuple(float(v) for v in data["hi"]),
                   clip_lo=bound("clip_lo", 0.0), clip_hi=bound("clip_hi", 1.0))


def to_model_input(samples: np.ndarray, params: FeatureParams, norm: MinMaxNorm, frames: int) -> np.ndarray:
    """One window of audio to the autoencoder's input, shape ``(n_mels, frames)``.

    Values are the band's training range scaled to 0..1, clipped to the
    norm's ``[clip_lo, clip_hi]``.

    The single path from samples to model input, used by the trainer when it
    builds its dataset and by the daemon for every window. The log-mel is
    cropped to its first ``frames`` frames (see the module docstring).
    """
    db = logmel(samples, params)
    if db.shape[1] < frames:
        raise ValueError(f"window gives {db.shape[1]} frames, model needs {frames}")
    return norm.apply(db[:, :frames])


def valid_frames(bad: np.ndarray, params: FeatureParams, sample_rate: int | None = None) -> np.ndarray:
    """Which log-mel frames of a window are free of bad samples.

    A frame is invalid when any bad sample lies in its FFT span: with
    ``center=True`` frame ``t`` covers samples ``[t * hop - n_fft // 2,
    t * hop + n_fft // 2)`` of the window (the rest is zero padding), so a
    dropout of ``L`` samples invalidates about ``L / hop + 2`` frames (a
    0.2 s dropout: 8 or 9 of a 10 s window's 313 frames).

    Args:
        bad: ``(n_samples,)`` bool, True for samples that are not the
            machine's sound (a dropout's exact zeros), at ``sample_rate``.
        params: the front end's parameters (frames, hop, FFT size, model rate).
        sample_rate: rate of ``bad`` in Hz; ``None`` means
            ``params.sample_rate``. At another rate the frame spans are mapped
            by time and widened by 2 ms on each side, the reach of the
            resampler's filter (``audio_io.resample``).

    Returns:
        ``(frames,)`` bool, True where the frame is valid; ``frames`` is
        ``n_frames(n, hop)`` for the window's ``n`` samples at the model's
        rate (``params.window_frames``, 313, for a full window).
    """
    b = np.asarray(bad, dtype=bool)
    if b.ndim != 1:
        raise ValueError(f"bad must be a (n_samples,) bool array, got shape {b.shape}")
    rate = params.sample_rate if sample_rate is None else int(sample_rate)
    if rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    n_model = b.size if rate == params.sample_rate else int(round(b.size * params.sample_rate / rate))
    frames = n_frames(n_model, params.hop_length)
    start = np.arange(frames, dtype=np.int64) * params.hop_length - params.n_fft // 2
    stop = start + params.n_fft
    if rate != params.sample_rate:
        scale, margin = rate / params.sample_rate, int(np.ceil(2e-3 * rate))
        start = np.floor(start * scale).astype(np.int64) - margin
        stop = np.ceil(stop * scale).astype(np.int64) + margin
    count = np.concatenate(([0], np.cumsum(b, dtype=np.int64)))
    lo, hi = np.clip(start, 0, b.size), np.clip(stop, 0, b.size)
    empty: np.ndarray = (count[hi] - count[lo]) == 0
    return empty


def fill_invalid_frames(inp: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """The model input with its invalid frames replaced by each band's median over the valid ones.

    The autoencoder reconstructs every frame from its neighbours (the dense
    model from 5 stacked frames, the convolutional one from a wider field),
    so a dropout's floor-level frames would disturb the reconstruction of
    the valid frames next to them. Training never saw such frames; the
    window's own typical spectrum is what it saw, and what a steady anomaly
    looks like too, so the fill neither fakes nor hides one. The score then
    pools only the valid frames (``scorer.window_errors``).

    Args:
        inp: ``(n_mels, frames)`` model input (``to_model_input``).
        valid: ``(>= frames,)`` bool from :func:`valid_frames`; entries
            beyond ``frames`` (the frame the model crops, 313 -> 312) are ignored.

    Returns:
        a new float32 ``(n_mels, frames)`` array (``inp`` itself when every frame is valid).

    Raises:
        ValueError: when no frame is valid or the shapes disagree.
    """
    x = np.asarray(inp)
    v = np.asarray(valid, dtype=bool)
    if x.ndim != 2 or v.ndim != 1 or v.size < x.shape[1]:
        raise ValueError(f"need inp (n_mels, frames) and valid (>= frames,), got {x.shape} and {v.shape}")
    v = v[: x.shape[1]]
    if v.all():
        return x
    if not v.any():
        raise ValueError("no valid frame to score")
    out = np.array(x, dtype=np.float32, copy=True)
    out[:, ~v] = np.median(x[:, v], axis=1, keepdims=True)
    return out
