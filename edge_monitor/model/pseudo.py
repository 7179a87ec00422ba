"""Pseudo-anomalies: plausible faults synthesised from a machine's own normal sound. Pure NumPy.

A new machine comes with normal recordings only, so which detector sees *its*
faults cannot be measured on real faults. What can be measured is how each
detector reacts to changes that faults make to a sound (the DCASE 2023-2025
"first-shot" finding: synthetic anomalies made from normal data are what
generalised across machine types). Every function here takes one window of
normal audio ``x`` (``(n,)`` float, full scale 1.0, at ``sample_rate`` Hz) and
returns the same window with one change, as ``(n,)`` float32; the changed
window then goes through the one log-mel front end like any other window.

Kinds (:data:`KINDS`), each sized relative to the clip itself so that the
same draw is as subtle on a quiet fan as on a loud press:

``tone``
    a new steady tone (a bearing whine, an electrical hum), its power a few dB
    above or below the clip's power in the tone's neighbourhood.
``clicks``
    a train of short band-limited impacts (a loose part, a damaged tooth),
    each carrying a few dB more energy than one 64 ms frame of the clip.
``band_noise``
    noise in a band (a leak, rubbing, a clogged filter).
``level_step``
    the clip louder or quieter by a few dB in a band (wear, a changed load).
``event_removed``
    the clip's own transients (a valve's click, an end-stop impact) weakened
    or gone: found in the band where they stand out most, brought down
    towards the band's median level. ``None`` when the clip has no events.
``speed``
    the whole sound a few per cent faster or slower (pitch and rhythm).
``other_machine``
    another clip, transposed as a machine of another speed would sound,
    mixed in below the clip's level.

:func:`synthesize` draws one of them with random parameters from a
:class:`numpy.random.Generator` (deterministic for a seed).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "KINDS",
    "PseudoAnomaly",
    "band_power",
    "tone",
    "clicks",
    "band_noise",
    "level_step",
    "remove_events",
    "speed_change",
    "mix_in",
    "synthesize",
]

KINDS: tuple[str, ...] = ("tone", "clicks", "band_noise", "level_step", "event_removed", "speed", "other_machine")

#: Lowest and highest frequency (Hz, the top capped below Nyquist) where changes are placed.
F_LO = 100.0
F_HI = 7000.0


@dataclass(frozen=True)
class PseudoAnomaly:
    """One synthesised pseudo-anomalous window.

    Attributes:
        kind: one of :data:`KINDS`.
        samples: ``(n,)`` float32, the changed window.
        detail: the drawn parameters (Hz, dB, factors), for reports and tests.
    """

    kind: str
    samples: np.ndarray
    detail: dict[str, object] = field(default_factory=dict)


def _mask(n: int, sample_rate: int, lo_hz: float, hi_hz: float) -> np.ndarray:
    """``(n // 2 + 1,)`` bool: the rFFT bins of an ``n``-sample signal within ``[lo_hz, hi_hz]``."""
    f = np.fft.rfftfreq(n, 1.0 / sample_rate)
    return (f >= lo_hz) & (f <= hi_hz)


def _bandpass(x: np.ndarray, sample_rate: int, lo_hz: float, hi_hz: float) -> np.ndarray:
    """The part of ``x`` within ``[lo_hz, hi_hz]`` (an ideal FFT filter), ``(n,)`` float64."""
    spec = np.fft.rfft(np.asarray(x, dtype=np.float64))
    return np.fft.irfft(spec * _mask(len(x), sample_rate, lo_hz, hi_hz), len(x))


def band_power(x: np.ndarray, sample_rate: int, lo_hz: float, hi_hz: float) -> float:
    """Mean power (full scale 1.0 squared) of ``x`` within ``[lo_hz, hi_hz]``; a tiny floor for silence."""
    part = _bandpass(x, sample_rate, lo_hz, hi_hz)
    return float(np.mean(part**2)) + 1e-20


def _out(y: np.ndarray) -> np.ndarray:
    # The capture path clips at full scale; so does a changed window.
    out: np.ndarray = np.clip(y, -1.0, 1.0).astype(np.float32)
    return out


def tone(x: np.ndarray, sample_rate: int, freq_hz: float, level_db: float, phase: float = 0.0) -> np.ndarray:
    """``x`` plus a steady tone at ``freq_hz``.

    ``level_db``: the tone's power relative to the power of ``x`` within
    +-10 % of ``freq_hz`` (0 dB: the tone doubles the power there).
    """
    n = len(x)
    width = max(25.0, 0.1 * freq_hz)
    power = band_power(x, sample_rate, freq_hz - width, freq_hz + width) * 10 ** (level_db / 10)
    t = np.arange(n) / sample_rate
    return _out(np.asarray(x, dtype=np.float64) + np.sqrt(2 * power) * np.sin(2 * np.pi * freq_hz * t + phase))


def clicks(x: np.ndarray, sample_rate: int, times_s: np.ndarray, lo_hz: float, hi_hz: float, level_db: float,
           decay_s: float, rng: np.random.Generator) -> np.ndarray:
    """``x`` plus short impacts at ``times_s``: band-limited noise bursts decaying with ``decay_s`` (s).

    ``level_db``: each impact's energy relative to the energy of ``x`` in one
    64 ms frame within the impact's band (0 dB: the frame's band energy doubles).
    """
    n = len(x)
    length = min(n, int(8 * decay_s * sample_rate) + 1)
    burst = _bandpass(rng.standard_normal(length) * np.exp(-np.arange(length) / (decay_s * sample_rate)),
                      sample_rate, lo_hz, hi_hz)
    frame_energy = band_power(x, sample_rate, lo_hz, hi_hz) * 0.064 * sample_rate
    burst *= np.sqrt(frame_energy * 10 ** (level_db / 10) / max(float(np.sum(burst**2)), 1e-20))
    y = np.asarray(x, dtype=np.float64).copy()
    for t in np.asarray(times_s, dtype=np.float64):
        i = int(round(t * sample_rate))
        if 0 <= i < n:
            m = min(length, n - i)
            y[i:i + m] += burst[:m]
    return _out(y)


def band_noise(x: np.ndarray, sample_rate: int, lo_hz: float, hi_hz: float, level_db: float,
               rng: np.random.Generator) -> np.ndarray:
    """``x`` plus steady noise within ``[lo_hz, hi_hz]`` at ``level_db`` relative to ``x``'s power there."""
    noise = _bandpass(rng.standard_normal(len(x)), sample_rate, lo_hz, hi_hz)
    gain = np.sqrt(band_power(x, sample_rate, lo_hz, hi_hz) * 10 ** (level_db / 10) / (np.mean(noise**2) + 1e-20))
    return _out(np.asarray(x, dtype=np.float64) + gain * noise)


def level_step(x: np.ndarray, sample_rate: int, lo_hz: float, hi_hz: float, gain_db: float) -> np.ndarray:
    """``x`` with its content within ``[lo_hz, hi_hz]`` made ``gain_db`` louder (negative: quieter)."""
    spec = np.fft.rfft(np.asarray(x, dtype=np.float64))
    spec[_mask(len(x), sample_rate, lo_hz, hi_hz)] *= 10 ** (gain_db / 20)
    return _out(np.fft.irfft(spec, len(x)))


def _frame_db(x: np.ndarray, hop: int) -> np.ndarray:
    """Power per ``hop``-sample frame in dB, ``(len(x) // hop,)``."""
    m = len(x) // hop
    level: np.ndarray = 10 * np.log10(np.mean(x[: m * hop].reshape(m, hop) ** 2, axis=1) + 1e-20)
    return level


def _bands(sample_rate: int, n_bands: int) -> np.ndarray:
    """``(n_bands + 1,)`` log-spaced band edges (Hz) from :data:`F_LO` to min(:data:`F_HI`, 0.45 x rate)."""
    return np.geomspace(F_LO, min(F_HI, 0.45 * sample_rate), n_bands + 1)


def event_frames(x: np.ndarray, sample_rate: int, rise_db: float = 6.0, n_bands: int = 8,
                 hop: int = 256) -> np.ndarray | None:
    """``(len(x) // hop,)`` bool: the ``hop``-sample frames holding ``x``'s transients; ``None`` when it has none.

    The range :data:`F_LO`.. min(:data:`F_HI`, 0.45 x rate) is split into
    ``n_bands`` log-spaced bands; a band has events when some, but at most a
    third, of its frames are ``rise_db`` above its median frame and its
    loudest frames twice that (a steady sound has none; a sound that is
    mostly loud has no "event"). The events are those of the band whose
    loudest frames stand highest above its median.
    """
    edges = _bands(sample_rate, n_bands)
    best: tuple[float, np.ndarray] | None = None
    for lo, hi in zip(edges[:-1], edges[1:]):
        e = _frame_db(_bandpass(x, sample_rate, lo, hi), hop)
        above = e > float(np.median(e)) + rise_db
        prominence = float(np.percentile(e, 99.5) - np.median(e))
        # Noise alone in a narrow band has frames 6 dB up now and then (its loudest 0.5 % sit
        # ~9 dB above the median): an event must stand twice ``rise_db`` above the median.
        if 0 < float(np.mean(above)) <= 1 / 3 and prominence >= 2 * rise_db:
            if best is None or prominence > best[0]:
                best = (prominence, above)
    return None if best is None else best[1]


def remove_events(x: np.ndarray, sample_rate: int, depth_db: float, rise_db: float = 6.0, n_bands: int = 8,
                  hop: int = 256) -> np.ndarray | None:
    """``x`` with its transients (:func:`event_frames`) weakened by up to ``depth_db``.

    In every band, the event frames (and one frame either side) are brought
    down towards that band's median level, by at most ``depth_db``: the event
    goes in all bands while the steady sound around it stays as it was (a
    valve whose click is gone, not a click with a hole in one band). The gain
    is interpolated per sample so no new click appears. ``None`` when there
    are no events.
    """
    events = event_frames(x, sample_rate, rise_db, n_bands, hop)
    if events is None:
        return None
    events = events | np.roll(events, 1) | np.roll(events, -1)
    xd = np.asarray(x, dtype=np.float64)
    spec = np.fft.rfft(xd)
    edges = _bands(sample_rate, n_bands)
    centres = (np.arange(events.size) + 0.5) * hop
    out = xd.copy()
    for lo, hi in zip(edges[:-1], edges[1:]):
        part = np.fft.irfft(spec * _mask(len(xd), sample_rate, lo, hi), len(xd))
        e = _frame_db(part, hop)
        gain_db = np.where(events, -np.clip(e - float(np.median(e)), 0.0, depth_db), 0.0)
        out += part * (10 ** (np.interp(np.arange(len(xd)), centres, gain_db) / 20) - 1.0)
    return _out(out)


def speed_change(x: np.ndarray, factor: float) -> np.ndarray:
    """``x`` played ``factor`` times as fast (pitch up by the same factor), same length.

    Band-limited (FFT) resampling, so no level changes at high frequencies;
    the signal is reflected at its ends where the stretched one runs short.
    """
    n = len(x)
    m = max(2, int(round(n / factor)))
    spec = np.fft.rfft(np.asarray(x, dtype=np.float64))
    keep = m // 2 + 1
    spec = spec[:keep] if keep <= spec.size else np.concatenate([spec, np.zeros(keep - spec.size, complex)])
    y = np.fft.irfft(spec, m) * (m / n)
    if m >= n:
        start = (m - n) // 2
        return _out(y[start:start + n])
    pad = n - m
    return _out(np.pad(y, (pad // 2, pad - pad // 2), mode="reflect"))


def mix_in(x: np.ndarray, other: np.ndarray, level_db: float) -> np.ndarray:
    """``x`` plus ``other`` (same length) scaled to ``level_db`` relative to ``x``'s power."""
    xd = np.asarray(x, dtype=np.float64)
    od = np.asarray(other, dtype=np.float64)[: len(xd)]
    od = np.pad(od, (0, len(xd) - len(od)))
    gain = np.sqrt(np.mean(xd**2) * 10 ** (level_db / 10) / (np.mean(od**2) + 1e-20))
    return _out(xd + gain * od)


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _band(rng: np.random.Generator, sample_rate: int, octaves: tuple[float, float]) -> tuple[float, float]:
    """A random band ``octaves`` wide (uniform in the range) with a log-uniform centre."""
    top = min(F_HI, 0.45 * sample_rate)
    width = rng.uniform(*octaves)
    centre = _log_uniform(rng, F_LO * 2 ** (width / 2), top / 2 ** (width / 2))
    return centre / 2 ** (width / 2), centre * 2 ** (width / 2)


def synthesize(kind: str, x: np.ndarray, sample_rate: int, rng: np.random.Generator,
               other: np.ndarray | None = None) -> PseudoAnomaly | None:
    """One pseudo-anomaly of ``kind`` made from the normal window ``x``, its parameters drawn from ``rng``.

    The ranges span subtle to plain (the figures they give are meant to rank
    detectors, not to be near 1). ``other``: a different normal window for
    ``other_machine`` (``x`` reversed in time when ``None``). ``None`` when the
    kind does not apply (``event_removed`` on a sound without events).

    Raises:
        ValueError: an unknown kind.
    """
    top = min(F_HI, 0.45 * sample_rate)
    if kind == "tone":
        f = _log_uniform(rng, F_LO * 1.5, top)
        level = rng.uniform(0.0, 12.0)
        return PseudoAnomaly(kind, tone(x, sample_rate, f, level, rng.uniform(0, 2 * np.pi)),
                             {"freq_hz": f, "level_db": level})
    if kind == "clicks":
        rate = _log_uniform(rng, 0.2, 4.0)
        period = 1.0 / rate
        duration = len(x) / sample_rate
        times = np.arange(rng.uniform(0, period), duration, period)
        times = times + rng.normal(0.0, 0.05 * period, size=times.size)
        lo, hi = _band(rng, sample_rate, (1.0, 4.0))
        level = rng.uniform(-8.0, 6.0)
        decay = rng.uniform(0.001, 0.006)
        return PseudoAnomaly(kind, clicks(x, sample_rate, times, lo, hi, level, decay, rng),
                             {"rate_hz": rate, "band_hz": (lo, hi), "level_db": level, "decay_s": decay})
    if kind == "band_noise":
        lo, hi = _band(rng, sample_rate, (0.3, 1.5))
        level = rng.uniform(-6.0, 6.0)
        return PseudoAnomaly(kind, band_noise(x, sample_rate, lo, hi, level, rng), {"band_hz": (lo, hi),
                                                                                    "level_db": level})
    if kind == "level_step":
        lo, hi = _band(rng, sample_rate, (0.5, 2.0))
        gain = rng.choice([-1.0, 1.0]) * rng.uniform(2.0, 6.0)
        return PseudoAnomaly(kind, level_step(x, sample_rate, lo, hi, gain), {"band_hz": (lo, hi), "gain_db": gain})
    if kind == "event_removed":
        depth = rng.uniform(6.0, 20.0)
        y = remove_events(x, sample_rate, depth)
        return None if y is None else PseudoAnomaly(kind, y, {"depth_db": depth})
    if kind == "speed":
        factor = 1.0 + rng.choice([-1.0, 1.0]) * rng.uniform(0.01, 0.04)
        return PseudoAnomaly(kind, speed_change(x, factor), {"factor": factor})
    if kind == "other_machine":
        source = np.asarray(other if other is not None else x[::-1], dtype=np.float64)
        factor = float(rng.choice([rng.uniform(0.6, 0.85), rng.uniform(1.2, 1.6)]))
        level = rng.uniform(-15.0, -3.0)
        return PseudoAnomaly(kind, mix_in(x, speed_change(source, factor), level),
                             {"factor": factor, "level_db": level})
    raise ValueError(f"unknown pseudo-anomaly kind {kind!r} (one of {', '.join(KINDS)})")
