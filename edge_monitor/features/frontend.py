"""The log-mel front end: the one feature implementation of trainer and daemon.

NumPy, in float32, with the FFT of SciPy's compiled pocketfft loaded on its
own (:func:`_load_pocketfft`; importing ``scipy.signal`` would cost the Pi
~78 MB of RSS, ``scipy.fft`` ~17 MB). The output matches::

    S = librosa.feature.melspectrogram(y=x, sr=sr, n_fft=n_fft, hop_length=hop,
                                       n_mels=n_mels, fmin=f_min, fmax=f_max,
                                       power=2.0, center=True, pad_mode="constant",
                                       htk=False, norm="slaney")
    librosa.power_to_db(S, ref=1.0, amin=amin, top_db=None)

to within 1e-3 dB on noise and 0.01 dB on real 16-bit recordings (cells
above -90 dB; measured 2e-5 dB) and on pure tones (cells within 90 dB of the
frame's peak) (``tests/test_features.py``), without librosa at run time.

The dB reference is fixed (``ref=1.0`` for a full-scale float signal), never
the clip's own maximum: a machine that gets louder must look louder.

Frame counts. With ``center=True`` a clip of ``n`` samples gives
``1 + n // hop`` frames. A 10 s window at 16 kHz (160 000 samples, hop 512)
gives **313** frames. The convolutional autoencoder pools by 2 three times, so
its input width must divide by 8: :func:`model_frames` crops to the largest
multiple (**312** frames, the paper's 128 x 312), dropping the last frame
(centred 16 ms before the window's end, a quarter zero padding): only the
window's final 16 ms lose their frame.

Speed: the filterbank, the window and per-thread work buffers are built once;
the filterbank is applied in blocks over the few FFT bins each band touches.
One 10 s window costs about 1.1 ms on one x86 core (``bench/RESULTS.md``:
1.09 ms median), 1.8-2.1x faster than librosa (``bench/bench_features.py``).
"""

from __future__ import annotations

import functools
import threading
from dataclasses import asdict, dataclass
from types import ModuleType

import numpy as np

__all__ = [
    "FeatureParams",
    "LogMel",
    "logmel",
    "mel_filterbank",
    "mel_band_edges_hz",
    "n_frames",
    "model_frames",
]


@dataclass(frozen=True)
class FeatureParams:
    """Every parameter of the front end; recorded in each model bundle.

    Attributes:
        sample_rate: samples per second of the audio fed to the front end (Hz).
        window_seconds: length of one scored window (s).
        n_fft: FFT size and analysis window length (samples).
        hop_length: step between frames (samples).
        n_mels: number of mel bands.
        f_min: lowest mel filter edge (Hz).
        f_max: highest mel filter edge (Hz); ``None`` means ``sample_rate / 2``.
        power: exponent of the magnitude spectrum (2 = power).
        amin: floor of the mel power before the log (linear power units); sets
            the dB floor at ``10 * log10(amin)`` (-100 dB for 1e-10).
        ref: the fixed dB reference (linear power units).
    """

    sample_rate: int = 16000
    window_seconds: float = 10.0
    n_fft: int = 1024
    hop_length: int = 512
    n_mels: int = 128
    f_min: float = 0.0
    f_max: float | None = None
    power: float = 2.0
    amin: float = 1e-10
    ref: float = 1.0

    def __post_init__(self) -> None:
        if self.sample_rate <= 0 or self.n_fft <= 0 or self.hop_length <= 0 or self.n_mels <= 0:
            raise ValueError("sample_rate, n_fft, hop_length and n_mels must be positive")
        if self.window_seconds <= 0:
            raise ValueError("window_seconds must be positive")
        if not 0 <= self.f_min < self.fmax_hz <= self.sample_rate / 2:
            raise ValueError(
                f"need 0 <= f_min < f_max <= sample_rate/2, got f_min={self.f_min}, f_max={self.fmax_hz}"
            )
        if self.amin <= 0 or self.ref <= 0:
            raise ValueError("amin and ref must be positive")

    @property
    def fmax_hz(self) -> float:
        """The upper filter edge in Hz, resolving ``None`` to Nyquist."""
        return float(self.sample_rate) / 2 if self.f_max is None else float(self.f_max)

    @property
    def window_samples(self) -> int:
        """Samples in one scored window."""
        return int(round(self.window_seconds * self.sample_rate))

    @property
    def window_frames(self) -> int:
        """Frames of one full window (313 for the defaults)."""
        return n_frames(self.window_samples, self.hop_length)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: object) -> FeatureParams:
        if not isinstance(data, dict):
            raise TypeError(f"features must be an object, got {type(data).__name__}")
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown feature parameter(s): {', '.join(sorted(unknown))}")
        return cls(**data)


def n_frames(n_samples: int, hop_length: int) -> int:
    """Frames that a centred STFT yields for ``n_samples`` samples."""
    return 1 + n_samples // hop_length


def model_frames(frames: int, multiple: int = 8) -> int:
    """The largest multiple of ``multiple`` not above ``frames`` (313 -> 312)."""
    if frames < multiple:
        raise ValueError(f"{frames} frames is fewer than the model's pooling factor {multiple}")
    return frames - frames % multiple


# --- mel scale (Slaney's, as librosa with htk=False) ---------------------------

_F_SP = 200.0 / 3  # Hz per mel below the break
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = np.log(6.4) / 27.0


def _hz_to_mel(hz: float | np.ndarray) -> np.ndarray:
    hz = np.asarray(hz, dtype=np.float64)
    mel = hz / _F_SP
    log_part = hz >= _MIN_LOG_HZ
    mel = np.where(log_part, _MIN_LOG_MEL + np.log(np.maximum(hz, 1e-12) / _MIN_LOG_HZ) / _LOGSTEP, mel)
    return mel


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    hz = _F_SP * mel
    log_part = mel >= _MIN_LOG_MEL
    return np.where(log_part, _MIN_LOG_HZ * np.exp(_LOGSTEP * (mel - _MIN_LOG_MEL)), hz)


def mel_band_edges_hz(params: FeatureParams) -> np.ndarray:
    """Edges of the triangular mel filters, shape ``(n_mels + 2,)``, in Hz.

    Band ``i`` rises from ``edges[i]``, peaks at ``edges[i + 1]`` and falls to
    zero at ``edges[i + 2]``.
    """
    mels = np.linspace(_hz_to_mel(params.f_min), _hz_to_mel(params.fmax_hz), params.n_mels + 2)
    return _mel_to_hz(mels)


@functools.lru_cache(maxsize=8)
def mel_filterbank(params: FeatureParams) -> np.ndarray:
    """Slaney-normalised mel filterbank, shape ``(n_mels, n_fft // 2 + 1)``, float32.

    Built once per parameter set and cached; the returned array is read-only.
    """
    fft_freqs = np.fft.rfftfreq(params.n_fft, d=1.0 / params.sample_rate)
    edges = mel_band_edges_hz(params)
    fdiff = np.diff(edges)
    ramps = edges[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]  # equal area per band (Slaney)
    out: np.ndarray = weights.astype(np.float32)
    out.setflags(write=False)
    return out


@functools.lru_cache(maxsize=8)
def _hann(n_fft: int) -> np.ndarray:
    # Periodic Hann, as scipy.signal.get_window("hann", n, fftbins=True).
    # Computed in float64, then rounded once: the window itself carries no float32 error beyond that.
    w = (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)
    w.setflags(write=False)
    return w


def _load_pocketfft() -> ModuleType | None:
    """SciPy's compiled pocketfft module, loaded without importing ``scipy.fft``; ``None`` if absent.

    NumPy's own float32 FFT (``numpy.fft``, NumPy 2.x) transforms row by row
    and runs 1.5-3.5x slower than its float64 one on x86; the same pocketfft
    as shipped inside SciPy vectorises across rows and is ~1.6x faster in
    float32 than NumPy's float64. Importing ``scipy.fft`` itself would cost
    ~17 MB of RSS (its array-API machinery); loading just the extension costs
    ~2.5 MB. The module is SciPy's private ``scipy.fft._pocketfft.pypocketfft``:
    if a SciPy release moves it, this returns ``None`` and :func:`_rfft`
    falls back to ``numpy.fft`` (same float32 result within rounding, slower).
    """
    import importlib.machinery  # noqa: PLC0415
    import importlib.util  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    try:
        spec = importlib.util.find_spec("scipy")
        if spec is None or spec.origin is None:
            return None
        folder = Path(spec.origin).parent / "fft" / "_pocketfft"
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = folder / f"pypocketfft{suffix}"
            if path.is_file():
                name = "scipy.fft._pocketfft.pypocketfft"
                loader = importlib.machinery.ExtensionFileLoader(name, str(path))
                mod_spec = importlib.util.spec_from_file_location(name, path, loader=loader)
                if mod_spec is None:
                    return None
                module = importlib.util.module_from_spec(mod_spec)
                loader.exec_module(module)
                return module if callable(getattr(module, "r2c", None)) else None
    except (ImportError, OSError):
        return None
    return None


_POCKETFFT = _load_pocketfft()


def _rfft(frames: np.ndarray, out: np.ndarray) -> None:
    """Real FFT of each row of ``frames`` (float32 ``(frames, n_fft)``) into ``out`` (complex64)."""
    if _POCKETFFT is not None:
        _POCKETFFT.r2c(frames, (1,), True, 0, out, 1)
    else:
        np.fft.rfft(frames, axis=1, out=out)


_BANDS_PER_BLOCK = 8


@functools.lru_cache(maxsize=8)
def _filterbank_blocks(params: FeatureParams) -> tuple[tuple[int, int, int, int, np.ndarray], ...]:
    """The filterbank cut into blocks of bands with the FFT bins they touch.

    Each triangle spans only a few bins, so one dense ``(n_mels, n_bins)``
    product is mostly multiplications by zero; blocks of
    ``_BANDS_PER_BLOCK`` bands over their own bin range do ~14x fewer multiplications
    with the same result. Entries: ``(band0, band1, bin0, bin1, weights)``.
    """
    fb = mel_filterbank(params)
    blocks = []
    for b0 in range(0, params.n_mels, _BANDS_PER_BLOCK):
        b1 = min(b0 + _BANDS_PER_BLOCK, params.n_mels)
        cols = np.flatnonzero(fb[b0:b1].any(axis=0))
        k0, k1 = (int(cols[0]), int(cols[-1]) + 1) if cols.size else (0, 1)
        w = np.ascontiguousarray(fb[b0:b1, k0:k1])
        w.setflags(write=False)
        blocks.append((b0, b1, k0, k1, w))
    return tuple(blocks)


class _Workspace:
    """Buffers for one (parameters, input length): no large allocation per window.

    Allocating ~6 MB of temporaries per window costs more than the FFT
    itself (fresh pages fault in on every call); reusing them keeps one
    10 s window at well under a millisecond. One workspace per thread.
    """

    def __init__(self, params: FeatureParams, n: int) -> None:
        pad = params.n_fft // 2
        n_bins = params.n_fft // 2 + 1
        frames = n_frames(n, params.hop_length)
        self.padded = np.zeros(n + 2 * pad, dtype=np.float32)
        self.frames = np.lib.stride_tricks.sliding_window_view(self.padded, params.n_fft)[:: params.hop_length]
        assert self.frames.shape[0] == frames
        self.windowed = np.empty((frames, params.n_fft), dtype=np.float32)
        self.spec = np.empty((frames, n_bins), dtype=np.complex64)
        self.spec_parts = self.spec.view(np.float32).reshape(frames, n_bins, 2)
        self.power = np.empty((frames, n_bins), dtype=np.float32)
        self.mel = np.empty((params.n_mels, frames), dtype=np.float32)


_local = threading.local()


def _workspace(params: FeatureParams, n: int) -> _Workspace:
    cache: dict[tuple[FeatureParams, int], _Workspace] = getattr(_local, "cache", None) or {}
    _local.cache = cache
    ws = cache.get((params, n))
    if ws is None:
        if len(cache) >= 4:  # a few window lengths per thread at most
            cache.clear()
        ws = cache[(params, n)] = _Workspace(params, n)
    return ws


def _fill_power(x: np.ndarray, params: FeatureParams, ws: _Workspace) -> np.ndarray:
    """|STFT|^power into ``ws.power``, shape ``(frames, n_fft // 2 + 1)``, float32.

    Centred frames, zero padded (librosa's ``center=True, pad_mode="constant"``).
    The FFT runs in float32 (``numpy.fft`` keeps float32 input in single
    precision since NumPy 2.0): its rounding noise lies ~140 dB below a
    frame's loudest component, far under the ~96 dB that 16-bit audio can
    span, so every cell a real recording can hold comes out within 1e-3 dB
    of a float64 FFT (``tests/test_features.py`` measures it on real clips).
    Only synthetic signals with more than ~120 dB inside one frame (a
    full-scale tone next to noise at -120 dB) see the difference.
    """
    pad = params.n_fft // 2
    ws.padded[pad : pad + x.size] = x
    np.multiply(ws.frames, _hann(params.n_fft), out=ws.windowed)
    _rfft(ws.windowed, ws.spec)
    if params.power == 2.0:
        parts = ws.spec_parts
        np.square(parts, out=parts)
        np.add(parts[..., 0], parts[..., 1], out=ws.power)
    else:
        np.power(np.abs(ws.spec), params.power, out=ws.power, casting="same_kind")
    return ws.power


def logmel(samples: np.ndarray, params: FeatureParams = FeatureParams()) -> np.ndarray:
    """Log-mel spectrogram in dB re ``params.ref``.

    Args:
        samples: mono audio, float, full scale = 1.0, shape ``(n,)`` at
            ``params.sample_rate``.
        params: front-end parameters.

    Returns:
        float32 array of shape ``(n_mels, 1 + n // hop_length)`` in dB; finite
        everywhere (silence gives ``10 * log10(amin / ref)``). A new array on
        every call (the internal buffers are never returned).
    """
    x = np.asarray(samples)
    if x.ndim != 1:
        raise ValueError(f"logmel expects mono samples of shape (n,), got {x.shape}")
    if x.size < params.n_fft // 2 + 1:
        raise ValueError(f"need at least {params.n_fft // 2 + 1} samples, got {x.size}")
    if x.dtype.kind != "f":
        x = x.astype(np.float32)
    # Non-finite input (a broken driver) must not poison the model with NaN.
    # (A dot product is a cheap all-finite check; it also flags absurdly large values.)
    if not np.isfinite(np.dot(x, x)):
        x = np.clip(np.nan_to_num(x, nan=0.0, posinf=1.0, neginf=-1.0), -1e6, 1e6)
    ws = _workspace(params, x.size)
    power = _fill_power(x, params, ws)
    mel = ws.mel
    for b0, b1, k0, k1, w in _filterbank_blocks(params):
        np.matmul(w, power[:, k0:k1].T, out=mel[b0:b1])
    np.maximum(mel, np.float32(params.amin), out=mel)
    db = np.log10(mel)
    db *= np.float32(10.0)
    db -= np.float32(10.0 * np.log10(max(params.amin, params.ref)))
    return db


class LogMel:
    """A front end bound to one parameter set: ``LogMel(params)(samples)``.

    Holds nothing but the (cached) parameters; calling it is :func:`logmel`.
    """

    def __init__(self, params: FeatureParams = FeatureParams()) -> None:
        self.params = params
        _filterbank_blocks(params)  # build the filterbank now, not on the first window
        _hann(params.n_fft)

    def __call__(self, samples: np.ndarray) -> np.ndarray:
        return logmel(samples, self.params)
