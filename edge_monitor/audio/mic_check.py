"""Is the microphone placed and set right? Level, peak, clipping, noise floor, bands, verdict.

Pure analysis of raw samples (no I/O): ``edge-monitor check-mic`` feeds it a
few seconds of capture, and the status page feeds it the daemon's latest
window. Levels are dBFS of the RMS with full scale 1.0 (a full-scale sine
reads -3 dBFS), the convention of :mod:`edge_monitor.audio.sensor_health`.

The verdict is one plain sentence an installer can act on:

* ``no signal``: dead input (digital silence or a constant), as the sensor
  checks define it (:func:`edge_monitor.audio.sensor_health.check_window`);
* ``clipping``: more than ``SensorLimits.clip_fraction`` of samples at full
  scale, the level at which the daemon stops scoring a window;
* ``too quiet``: RMS below :data:`QUIET_DBFS`;
* ``very loud``: RMS above :data:`LOUD_DBFS` (little headroom before clipping);
* ``OK`` otherwise.

NumPy only; ~10 ms for 10 s at 16 kHz.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from edge_monitor.audio.sensor_health import SensorLimits, check_window

__all__ = ["LOUD_DBFS", "QUIET_DBFS", "Band", "MicReport", "analyse", "octave_bands"]

#: Below this RMS level (dBFS) the machine is too faint: the log-mel sits near the noise
#: floor of a typical USB microphone (about -70 dBFS), so faults change little in it.
QUIET_DBFS = -50.0
#: Above this RMS level (dBFS) the peaks of a machine's impacts are close to full scale.
LOUD_DBFS = -6.0
#: Block length for the short-term RMS whose 10th percentile is the noise floor (s).
BLOCK_SECONDS = 0.1
#: Octave band centres (Hz), IEC 61260 nominal values.
OCTAVE_CENTRES_HZ = (31.5, 63.0, 125.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0, 16000.0)


@dataclass(frozen=True)
class Band:
    """One octave band: centre frequency (Hz) and the level of the sound in it (dBFS, RMS)."""

    centre_hz: float
    level_dbfs: float


@dataclass(frozen=True)
class MicReport:
    """What :func:`analyse` found.

    Attributes:
        seconds: length analysed (s).
        sample_rate: Hz.
        rms_dbfs: overall RMS level (dBFS; ``None`` for digital silence).
        peak_dbfs: largest absolute sample (dBFS; ``None`` for silence).
        clip_fraction: share of samples at full scale (0..1).
        noise_floor_dbfs: 10th percentile of the RMS of 0.1 s blocks (dBFS;
            ``None`` when those blocks are silent): the quiet moments.
        bands: the strongest octave bands, loudest first (up to 3).
        verdict: ``"ok"``, ``"no_signal"``, ``"clipping"``, ``"too_quiet"`` or ``"too_loud"``.
        advice: the plain sentence for the installer.
        faults: sensor fault kinds found (:data:`edge_monitor.audio.sensor_health.FAULT_KINDS`).
    """

    seconds: float
    sample_rate: int
    rms_dbfs: float | None
    peak_dbfs: float | None
    clip_fraction: float
    noise_floor_dbfs: float | None
    bands: list[Band] = field(default_factory=list)
    verdict: str = "ok"
    advice: str = "OK"
    faults: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def lines(self) -> list[str]:
        """The human-readable report, one fact per line."""
        bands = ", ".join(f"{_hz(b.centre_hz)} {b.level_dbfs:.1f} dBFS" for b in self.bands) or "-"
        return [
            f"level        {_db(self.rms_dbfs)} (RMS)",
            f"peak         {_db(self.peak_dbfs)}",
            f"clipping     {100.0 * self.clip_fraction:.3f} % of samples at full scale",
            f"noise floor  {_db(self.noise_floor_dbfs)} (10th percentile of {BLOCK_SECONDS:g} s blocks)",
            f"strongest    {bands} (octave bands)",
            f"verdict      {self.advice}",
        ]


def _db(v: float | None) -> str:
    return "silence" if v is None else f"{v:.1f} dBFS"


def _hz(f: float) -> str:
    return f"{f / 1000:g} kHz" if f >= 1000 else f"{f:g} Hz"


def _dbfs(ms: float) -> float | None:
    """Mean square -> dBFS of its RMS, ``None`` for zero."""
    return round(10.0 * math.log10(ms), 1) if ms > 0 else None


def octave_bands(mono: np.ndarray, sample_rate: int, frame: int = 2048) -> list[Band]:
    """Level of each octave band below Nyquist (dBFS of the band's RMS), in band order.

    Average power spectrum of consecutive Hann-windowed frames (``frame``
    samples: 7.8 Hz bins at 16 kHz, three bins in the lowest octave), scaled so that the bands' mean
    squares add up to the signal's (Parseval), which makes a band's level
    comparable with the overall RMS level.
    """
    x = np.asarray(mono, dtype=np.float32)
    n = min(frame, x.size)
    if n < 16:
        return []
    # All frames in one batched FFT: a few large NumPy calls, which release the GIL, rather
    # than a Python loop (this also runs in an HTTP thread next to the scoring loop).
    frames = x[: (x.size // n) * n].reshape(-1, n)
    win = np.hanning(n).astype(np.float32)
    spec = np.fft.rfft(frames * win, axis=1)
    power = np.mean(np.abs(spec) ** 2, axis=0, dtype=np.float64)
    scale = np.full(power.size, 2.0)
    scale[0] = 1.0
    if n % 2 == 0:
        scale[-1] = 1.0
    ms_bins = power * scale / (n * float(np.sum(win.astype(np.float64) ** 2)))
    freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
    out = []
    for c in OCTAVE_CENTRES_HZ:
        lo, hi = c / math.sqrt(2.0), c * math.sqrt(2.0)
        if lo >= sample_rate / 2:
            break
        sel = (freqs >= lo) & (freqs < hi)
        level = _dbfs(float(ms_bins[sel].sum())) if sel.any() else None
        if level is not None:
            out.append(Band(c, level))
    return out


def analyse(samples: np.ndarray, sample_rate: int, *, bits: int | None = 16,
            limits: SensorLimits | None = None, top_bands: int = 3) -> MicReport:
    """Analyse raw capture: ``(n,)`` or ``(n, channels)``, float with full scale 1.0.

    Multi-channel input is judged on its loudest channel for level and peak
    (the channel a bad gain setting shows first) and downmixed for the bands.
    ``bits`` is the capture's word length (clip level one LSB below full scale).
    """
    limits = limits if limits is not None else SensorLimits()
    x = np.asarray(samples, dtype=np.float32)
    if x.ndim == 1:
        x = x[:, None]
    n = x.shape[0]
    if n == 0:
        return MicReport(0.0, sample_rate, None, None, 0.0, None, [], "no_signal",
                         "no signal: nothing was captured (check the device)", ["dead_input"])
    status = check_window(x, sample_rate, bits=bits, limits=limits)
    kinds = [f.kind for f in status.faults]
    ms_per_channel = np.mean(x.astype(np.float64) ** 2, axis=0)
    loudest = int(np.argmax(ms_per_channel))
    ch = x[:, loudest]
    rms = _dbfs(float(ms_per_channel[loudest]))
    peak_abs = float(np.max(np.abs(ch)))
    peak = round(20.0 * math.log10(peak_abs), 1) if peak_abs > 0 else None
    clip_level = 1.0 - 2.0 ** -(bits - 1) if bits else 1.0
    clip = float(np.count_nonzero(np.abs(x) >= clip_level)) / x.size
    block = max(1, round(BLOCK_SECONDS * sample_rate))
    nb = n // block
    if nb >= 1:
        blocks = ch[: nb * block].astype(np.float64).reshape(nb, block)
        floor = _dbfs(float(np.percentile(np.mean(blocks ** 2, axis=1), 10)))
    else:
        floor = rms
    bands = sorted(octave_bands(x.mean(axis=1), sample_rate), key=lambda b: -b.level_dbfs)[:top_bands]

    if "dead_input" in kinds:
        verdict, advice = "no_signal", "no signal: check the cable, the device name and its mute switch"
    elif clip > limits.clip_fraction:
        verdict, advice = "clipping", "clipping: lower the gain"
    elif rms is None or rms < QUIET_DBFS:
        verdict, advice = "too_quiet", "too quiet: move closer or raise gain"
    elif rms > LOUD_DBFS:
        verdict, advice = "too_loud", "very loud: lower the gain a little to keep headroom"
    else:
        verdict, advice = "ok", "OK"
    return MicReport(round(n / sample_rate, 3), int(sample_rate), rms, peak, round(clip, 6), floor, bands,
                     verdict, advice, kinds)
