"""WAV files in and out, and the rule that cuts clips into model windows.

Reading uses a small RIFF parser on NumPy instead of :mod:`wave` (which
refuses ``WAVE_FORMAT_EXTENSIBLE``, the header of the raw 8-channel MIMII
recordings, and float files) or :mod:`scipy.io.wavfile` (whose errors are
raw library exceptions). Supported: integer PCM with 8-bit (unsigned),
16-, 24- and 32-bit containers, IEEE float 32/64-bit, any channel count,
plain or extensible headers, any sample rate.

Every problem with a file (missing, unreadable, a directory, empty,
truncated, not a WAV, an unsupported encoding) raises one
:class:`AudioFileError` whose message is ``"<path>: <reason>"``.

Resampling uses :func:`scipy.signal.resample_poly`, imported inside
:func:`resample` only: importing ``scipy.signal`` costs ~78 MB of RSS, which
a daemon fed with 16 kHz audio never needs to pay.

Clip rule (:func:`clip_windows`, see docs/audio-io.md): a clip longer than a
window is scored as every full window at ``0, hop, 2*hop, ...`` plus one
window aligned to the clip's end when those do not reach it; a shorter clip
of at least ``min_fraction`` of a window is filled up by repeating its start;
anything shorter is refused.
"""

from __future__ import annotations

import math
import os
import secrets
import struct
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

import numpy as np

__all__ = [
    "AudioFileError",
    "ClipTooShortError",
    "RawAudio",
    "read_wav",
    "read_wav_raw",
    "write_wav",
    "resample",
    "downmix",
    "clip_windows",
]

_MAX_RATE = 1_000_000  # Hz; anything above is a corrupt header, not audio
_MAX_RATIO_TERM = 1000  # largest up/down factor resample() uses
_WAVE_FORMAT_PCM = 0x0001
_WAVE_FORMAT_IEEE_FLOAT = 0x0003
_WAVE_FORMAT_EXTENSIBLE = 0xFFFE
# Names for the encodings people actually meet, so the error says what the file is.
_FORMAT_NAMES = {
    0x0002: "Microsoft ADPCM",
    0x0006: "A-law",
    0x0007: "mu-law",
    0x0011: "IMA ADPCM",
    0x0031: "GSM 6.10",
    0x0050: "MPEG",
    0x0055: "MPEG layer 3 (MP3)",
}


class AudioFileError(Exception):
    """A WAV file that cannot be read or written; ``str(err)`` is ``"<path>: <reason>"``."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class ClipTooShortError(ValueError):
    """A clip too short to be scored as a window (see :func:`clip_windows`)."""


@dataclass(frozen=True)
class RawAudio:
    """A WAV file's samples as stored: no downmix, no resampling.

    Attributes:
        samples: float32, shape ``(n_samples, channels)``, full scale 1.0
            (integer formats are divided by ``2 ** (bits - 1)``, so the most
            negative code is exactly -1.0).
        sample_rate: samples per second per channel (Hz).
        bits: bits per sample of the container (8, 16, 24, 32 or 64).
        fmt: ``"int"`` for integer PCM, ``"float"`` for IEEE float.
    """

    samples: np.ndarray
    sample_rate: int
    bits: int
    fmt: Literal["int", "float"]

    @property
    def channels(self) -> int:
        return int(self.samples.shape[1])

    @property
    def full_scale(self) -> float:
        """The largest positive value the format can hold (e.g. 32767/32768 for 16-bit)."""
        if self.fmt == "float":
            return 1.0
        return float((2 ** (self.bits - 1) - 1) / 2 ** (self.bits - 1))

    def clipped_fraction(self) -> float:
        """Share of samples (all channels) at or beyond full scale, in [0, 1].

        A clipping microphone preamp pins samples to the format's limits.
        """
        if self.samples.size == 0:
            return 0.0
        return float(np.count_nonzero(np.abs(self.samples) >= self.full_scale) / self.samples.size)


# --- reading ------------------------------------------------------------------


def _parse_fmt(path: Path, body: bytes) -> tuple[int, int, int, int, int]:
    """``(format_tag, channels, sample_rate, block_align, bits)`` of a fmt chunk."""
    if len(body) < 16:
        raise AudioFileError(path, f"fmt chunk is {len(body)} bytes, need at least 16")
    tag, channels, rate, _byte_rate, block_align, bits = struct.unpack_from("<HHIIHH", body)
    if tag == _WAVE_FORMAT_EXTENSIBLE:
        if len(body) < 40:
            raise AudioFileError(path, f"WAVE_FORMAT_EXTENSIBLE fmt chunk is {len(body)} bytes, need 40")
        # The sub-format GUID starts with the real format tag.
        tag = struct.unpack_from("<H", body, 24)[0]
    return tag, channels, rate, block_align, bits


def _decode(path: Path, data: bytes | memoryview, tag: int, channels: int, bits: int) -> tuple[np.ndarray, str]:
    """Interleaved sample bytes to float32 ``(n, channels)`` and ``"int"``/``"float"``."""
    if tag == _WAVE_FORMAT_PCM:
        if bits == 8:
            x = (np.frombuffer(data, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
        elif bits == 16:
            x = np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
        elif bits == 24:
            b = np.frombuffer(data, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
            # Put the 3 bytes in the top of an int32 and shift back: sign-extends.
            v = (b[:, 0] << 8) | (b[:, 1] << 16) | (b[:, 2] << 24)
            x = (v >> 8).astype(np.float32) / 8388608.0
        elif bits == 32:
            x = (np.frombuffer(data, dtype="<i4").astype(np.float64) / 2147483648.0).astype(np.float32)
        else:
            raise AudioFileError(path, f"unsupported WAV encoding: {bits}-bit integer PCM (supported: 8, 16, 24, 32)")
        kind = "int"
    elif tag == _WAVE_FORMAT_IEEE_FLOAT:
        if bits == 32:
            x = np.frombuffer(data, dtype="<f4").astype(np.float32)
        elif bits == 64:
            x = np.frombuffer(data, dtype="<f8").astype(np.float32)
        else:
            raise AudioFileError(path, f"unsupported WAV encoding: {bits}-bit float (supported: 32, 64)")
        kind = "float"
    else:
        name = _FORMAT_NAMES.get(tag, "unknown")
        raise AudioFileError(
            path, f"unsupported WAV encoding: format tag 0x{tag:04X} ({name}); need integer PCM or IEEE float"
        )
    return x.reshape(-1, channels), kind


def read_wav_raw(path: str | os.PathLike[str]) -> RawAudio:
    """Read a WAV file without downmixing or resampling.

    Args:
        path: the WAV file.

    Returns:
        :class:`RawAudio` with float32 samples of shape ``(n, channels)``.

    Raises:
        AudioFileError: ``"<path>: <reason>"`` for any unreadable, empty,
            truncated, non-WAV or unsupported file.
    """
    path = Path(path)
    try:
        blob = path.read_bytes()
    except IsADirectoryError:
        raise AudioFileError(path, "is a directory, not a WAV file") from None
    except FileNotFoundError:
        raise AudioFileError(path, "no such file") from None
    except PermissionError:
        raise AudioFileError(path, "cannot read: permission denied") from None
    except OSError as exc:
        raise AudioFileError(path, f"cannot read: {exc.strerror or exc}") from None

    if not blob:
        raise AudioFileError(path, "empty file (0 bytes)")
    if len(blob) < 12:
        raise AudioFileError(path, f"truncated: {len(blob)} bytes, shorter than a RIFF/WAVE header")
    magic, _riff_size, wave = struct.unpack_from("<4sI4s", blob)
    if magic == b"RF64":
        raise AudioFileError(path, "RF64 (WAV larger than 4 GiB) is not supported")
    if magic == b"RIFX":
        raise AudioFileError(path, "big-endian RIFX WAV is not supported")
    if magic != b"RIFF" or wave != b"WAVE":
        raise AudioFileError(path, f"not a WAV file (starts with {blob[:12]!r}, expected RIFF....WAVE)")

    fmt: tuple[int, int, int, int, int] | None = None
    data: memoryview | None = None
    pos = 12
    view = memoryview(blob)
    while pos + 8 <= len(blob):
        chunk_id, size = struct.unpack_from("<4sI", blob, pos)
        body_start = pos + 8
        available = len(blob) - body_start
        if chunk_id == b"data":
            if fmt is None:
                raise AudioFileError(path, "data chunk comes before the fmt chunk")
            # Streaming writers that never patched the header leave 0xFFFFFFFF: read to the end.
            if size == 0xFFFFFFFF:
                size = available
            if size > available:
                raise AudioFileError(
                    path, f"truncated: data chunk declares {size} bytes but only {available} are present"
                )
            data = view[body_start : body_start + size]
            break
        if size > available:
            raise AudioFileError(
                path, f"truncated: {chunk_id.decode('latin-1')!r} chunk declares {size} bytes, {available} present"
            )
        if chunk_id == b"fmt ":
            fmt = _parse_fmt(path, blob[body_start : body_start + size])
        pos = body_start + size + (size & 1)  # chunks are padded to even length

    if fmt is None:
        raise AudioFileError(path, "truncated or malformed: no fmt chunk")
    if data is None:
        raise AudioFileError(path, "truncated or malformed: no data chunk")
    tag, channels, rate, block_align, bits = fmt
    if channels == 0:
        raise AudioFileError(path, "fmt chunk says 0 channels")
    if not 1 <= rate <= _MAX_RATE:
        raise AudioFileError(path, f"implausible sample rate {rate} Hz in the fmt chunk")
    if bits == 0 or bits % 8:
        raise AudioFileError(path, f"unsupported WAV encoding: {bits} bits per sample")
    expected_align = channels * bits // 8
    if block_align != expected_align:
        raise AudioFileError(
            path, f"inconsistent fmt chunk: block align {block_align}, expected {channels} x {bits // 8} bytes"
        )
    if len(data) == 0:
        raise AudioFileError(path, "no audio: the data chunk is empty")
    if len(data) % block_align:
        # Cut short mid-frame (e.g. a copy that stopped early): keep whole frames only.
        usable = len(data) - len(data) % block_align
        if usable == 0:
            raise AudioFileError(path, f"truncated: data chunk holds {len(data)} bytes, less than one frame")
        data = data[:usable]
    samples, kind = _decode(path, data, tag, channels, bits)
    return RawAudio(samples=np.ascontiguousarray(samples), sample_rate=int(rate), bits=int(bits), fmt=kind)  # type: ignore[arg-type]


def downmix(samples: np.ndarray, channel: int | None = None) -> np.ndarray:
    """``(n, channels)`` to mono ``(n,)``: the mean of all channels, or one channel."""
    if samples.ndim == 1:
        if channel not in (None, 0):
            raise ValueError(f"channel {channel} requested from mono audio")
        return samples
    if channel is None:
        if samples.shape[1] == 1:
            return samples[:, 0]
        mono: np.ndarray = samples.mean(axis=1, dtype=np.float32)
        return mono
    if not -samples.shape[1] <= channel < samples.shape[1]:
        raise ValueError(f"channel {channel} requested but the audio has {samples.shape[1]} channel(s)")
    return samples[:, channel]


def read_wav(
    path: str | os.PathLike[str], sample_rate: int = 16000, channel: int | None = None
) -> np.ndarray:
    """Read a WAV file as float32 mono at ``sample_rate``.

    Args:
        path: the WAV file (any format :func:`read_wav_raw` reads).
        sample_rate: wanted rate in Hz; other rates are resampled.
        channel: ``None`` averages all channels; an index (0-based, negative
            counts from the end) picks one.

    Returns:
        float32 array of shape ``(n,)``, full scale 1.0.

    Raises:
        AudioFileError: for any problem with the file, or a channel the file
            does not have.
    """
    raw = read_wav_raw(path)
    try:
        mono = downmix(raw.samples, channel)
    except ValueError as exc:
        raise AudioFileError(path, str(exc)) from None
    if raw.sample_rate != sample_rate:
        mono = resample(mono, raw.sample_rate, sample_rate)
    return np.ascontiguousarray(mono, dtype=np.float32)


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Resample along axis 0 with a polyphase filter; float32 out.

    Args:
        samples: shape ``(n,)`` or ``(n, channels)``.
        from_rate: current rate (Hz).
        to_rate: wanted rate (Hz).

    Returns:
        float32, ``ceil(n * to_rate / from_rate)`` samples along axis 0.

    The ratio ``to_rate / from_rate`` is used exactly when its reduced terms
    are at most 1000 (all common rates: 44.1 kHz -> 16 kHz is 160/441);
    an odd rate is approximated by the nearest such fraction (pitch error
    below 0.01 %), which bounds the filter's size.
    """
    if from_rate <= 0 or to_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {from_rate} -> {to_rate}")
    if from_rate == to_rate:
        return np.asarray(samples, dtype=np.float32)
    # Lazy: scipy.signal costs ~78 MB RSS and 16 kHz input never needs it.
    from scipy.signal import resample_poly

    ratio = Fraction(int(to_rate), int(from_rate))
    if max(ratio.numerator, ratio.denominator) > _MAX_RATIO_TERM:
        ratio = ratio.limit_denominator(_MAX_RATIO_TERM)
        while ratio.numerator > _MAX_RATIO_TERM:  # big upsampling ratios: bound the numerator too
            ratio = Fraction(ratio.numerator // 2, max(1, ratio.denominator // 2))
    out: np.ndarray = resample_poly(np.asarray(samples, dtype=np.float64), ratio.numerator, ratio.denominator, axis=0)
    return out.astype(np.float32)


# --- writing ------------------------------------------------------------------


def write_wav(path: str | os.PathLike[str], samples: np.ndarray, sample_rate: int = 16000) -> Path:
    """Write 16-bit PCM, atomically (a temporary file renamed into place).

    Args:
        path: destination; the parent folder must exist.
        samples: float, full scale 1.0, shape ``(n,)`` or ``(n, channels)``;
            clipped to [-1, 1], NaN written as 0.
        sample_rate: Hz.

    Returns:
        The path written.

    Raises:
        AudioFileError: when the file cannot be written.
    """
    path = Path(path)
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[1] == 0:
        raise ValueError(f"samples must have shape (n,) or (n, channels), got {np.shape(samples)}")
    x = np.nan_to_num(x, nan=0.0, posinf=1.0, neginf=-1.0)
    pcm = np.round(np.clip(x, -1.0, 1.0) * 32767.0).astype("<i2")
    channels = pcm.shape[1]
    payload = pcm.tobytes()
    header = struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF", 36 + len(payload), b"WAVE",
        b"fmt ", 16, _WAVE_FORMAT_PCM, channels, int(sample_rate),
        int(sample_rate) * channels * 2, channels * 2, 16,
        b"data", len(payload),
    )  # fmt: skip
    # Not tempfile.mkstemp: its 0600 mode would ignore the umask the file should get.
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as fh:
            fh.write(header)
            fh.write(payload)
        os.replace(tmp, path)
    except OSError as exc:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise AudioFileError(path, f"cannot write: {exc.strerror or exc}") from None
    return path


# --- windows ------------------------------------------------------------------


def clip_windows(
    samples: np.ndarray,
    window_samples: int,
    hop_samples: int | None = None,
    min_fraction: float = 0.5,
) -> list[np.ndarray]:
    """Cut a mono clip into the windows that are scored.

    The rule (docs/audio-io.md):

    * exactly one window long: the clip itself;
    * longer: every full window starting at ``0, hop, 2*hop, ...``, plus one
      window ending at the clip's last sample if the last full window does
      not reach it (an 11 s clip with 10 s windows gives windows at 0 s and
      1 s);
    * shorter, but at least ``min_fraction`` of a window: padded to a window
      by repeating the clip from its start (machine sound is periodic; zeros
      would look like a dropout);
    * shorter than that: :class:`ClipTooShortError`.

    Args:
        samples: mono audio, shape ``(n,)``.
        window_samples: window length (samples).
        hop_samples: step between window starts (samples); default one window.
        min_fraction: the shortest clip still scored, as a share of a window.

    Returns:
        A list of arrays of shape ``(window_samples,)``; for long clips they
        are read-only views into ``samples``.
    """
    x = np.asarray(samples)
    if x.ndim != 1:
        raise ValueError(f"clip_windows expects mono samples of shape (n,), got {x.shape}")
    if window_samples <= 0:
        raise ValueError(f"window_samples must be positive, got {window_samples}")
    hop = window_samples if hop_samples is None else int(hop_samples)
    if hop <= 0:
        raise ValueError(f"hop_samples must be positive, got {hop_samples}")
    if not 0.0 < min_fraction <= 1.0:
        raise ValueError(f"min_fraction must be in (0, 1], got {min_fraction}")
    n = x.shape[0]
    if n >= window_samples:
        starts = list(range(0, n - window_samples + 1, hop))
        if starts[-1] + window_samples < n:
            starts.append(n - window_samples)
        view = x.view()
        view.setflags(write=False)
        return [view[s : s + window_samples] for s in starts]
    needed = math.ceil(min_fraction * window_samples)
    if n < needed:
        raise ClipTooShortError(
            f"clip of {n} samples is shorter than {min_fraction:g} of a {window_samples}-sample window "
            f"(need at least {needed} samples)"
        )
    return [np.resize(x, window_samples)]  # np.resize repeats the clip cyclically
