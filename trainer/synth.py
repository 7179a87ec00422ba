"""Synthetic slide-rail recordings in the DCASE 2020 Task 2 layout.

Why: tests, the demo and CI need machine sound with known anomalies, and the
real DCASE/MIMII clips may not be redistributed. The generator below is a
small physical *sound model* of a belt-driven linear slide, tuned by ear and by
measurement against the real DCASE 2020 slider clips (see ``docs/synth.md``).

The sound model (all levels relative; the mix is scaled at the end)
-------------------------------------------------------------------
A carriage runs back and forth on a rail. One **cycle** (1-3 s, fixed per
machine id) is two **strokes** (out and back); the **pass period** is one
stroke, ``cycle_s / 2``: the time between two passes of the carriage over a
given point of the middle of the rail. Within a stroke the carriage moves for
a fraction of the time (``move_fraction``) and dwells at the end stop for the
rest. Its speed follows a **trapezoid** (accelerate, cruise, decelerate).

Machine sound, the sum of:

* **drive rumble**: low-frequency (30-400 Hz) shaped noise from the motor and
  frame, present all the time, 4-6 dB louder while the carriage moves;
* **drive tones**: a few fixed tones (drive electronics, 100/120 Hz family);
* **speed-locked orders**: a motor fundamental with harmonics, gear-mesh and
  belt-tooth tones; each frequency is proportional to the carriage speed, so in
  a spectrogram they draw the trapezoid (rise, flat, fall), as in the real
  slider clips; amplitude grows with speed;
* **running friction**: noise shaped by two or three machine resonances
  (2-7 kHz), its amplitude following ``speed ** 1.5``;
* **end-stop impacts**: when the carriage stops at either end, a damped impact
  (a short click exciting the frame's modes, 5-40 ms decays).

Background: **factory noise** (one "factory" per dataset seed): low-heavy
shaped noise (rising 6 dB/octave to a hump at 45-110 Hz, falling about
4 dB/octave above it and 3 dB/octave faster above 1.5 kHz), a few machinery
tones (40-400 Hz and 0.5-2.5 kHz), slow level drift (+-1.5 dB) and sparse
distant clunks. The drive rumble has the same shape with its own hump. It is mixed at
``snr_db`` = 10 log10(machine power / background power) of the normal machine
sound (MIMII used 6, 0 and -6 dB), and the mix is scaled to about -39 dBFS
(the level of every real DCASE slider clip, +-0.6 dB per clip). The anomaly
components are added *before* that scaling but are not counted in it: a
machine that gets louder makes a louder clip.

Per machine id a fixed **machine character** is drawn from ``(seed, id)``:
cycle period, move/dwell split, ramp time, order frequencies, friction
resonances, frame modes, squeal frequency. Per clip, small natural variation:
start phase, cycle period (+-1 %), per-stroke timing jitter (~2 ms), speed
(+-2 %), component levels (+-1 dB), all noise realisations.

Anomalies (``severity`` 0 = normal-like, 1 = default, > 1 = easier)
---------------------------------------------------------------------
Each anomaly component's amplitude is proportional to ``severity ** 1.5``
(0.3 is 16 dB below the default, 2 is 9 dB above); severity 0 is exactly the
normal clip. Calibrated so that a tiny autoencoder trained on a few clips
separates the default severity (see ``docs/synth.md``).

* ``rail_damage``: a dent at one rail position (0.47-0.53 of the rail, so the
  clicks are evenly spaced within +-3 %): each time the carriage passes it, a
  sharp broadband click ringing carriage modes (1.5-7 kHz, 4-12 ms decays)
  plus a low thump (200-700 Hz). At severity 1 one click carries the energy of
  0.64 s of the machine sound (+10 dB over one 64 ms analysis frame). The
  clicks therefore repeat at the pass period (exact times in
  ``ClipInfo.damage_times_s``).
* ``loose_belt``: timing jitter of each stroke (start and duration, std
  ``6 % * severity ** 1.5`` of the stroke), speed flutter below ~10 Hz (the orders wobble
  in frequency), a slap when the slack belt takes up at each start, and
  rattle: random ticks (about 20 per second of motion) and low-mid flapping
  noise.
* ``missing_grease``: stick-slip squeal while the carriage moves faster than
  30 % of full speed: a narrow-band tone at ``squeal_hz`` (near the machine's
  squeal frequency, 1.2-4.5 kHz, +-8 % per clip) with its 2nd and 3rd
  harmonics, slight vibrato, swelling and fading in episodes within each stroke;
  the running friction also gets rougher.

The anomalous part draws its random numbers from its own stream: with the same
clip ``rng`` seed, a ``rail_damage`` or ``missing_grease`` clip is exactly the
normal clip plus the anomaly component (``loose_belt`` changes the motion, so
it differs everywhere).

Everything is vectorised NumPy (one 10 s clip takes a few tens of ms) and
deterministic: :func:`generate_dataset` derives every clip's generator from
``(seed, machine id, split, label, index)``, so the same seed writes
bit-identical files, whatever ids or counts are asked for alongside.
"""

from __future__ import annotations

import csv
import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edge_monitor.audio.audio_io import write_wav

__all__ = [
    "ANOMALY_KINDS",
    "SAMPLE_RATE",
    "TARGET_LEVEL_DBFS",
    "MachineProfile",
    "FactoryProfile",
    "ClipInfo",
    "Motion",
    "DatasetSummary",
    "normalise_machine_id",
    "carriage_motion",
    "synthesize_clip",
    "generate_dataset",
    "render_clip",
    "clip_rng",
    "read_metadata",
    "METADATA_COLUMNS",
    "level_dbfs",
]

SAMPLE_RATE = 16000
ANOMALY_KINDS: tuple[str, ...] = ("rail_damage", "loose_belt", "missing_grease")
TARGET_LEVEL_DBFS = -39.0
METADATA_COLUMNS = (
    "file", "split", "machine", "machine_id", "label", "anomaly_kind", "severity",
    "cycle_s", "pass_period_s", "squeal_hz", "damage_position", "snr_db",
    "seconds", "sample_rate", "level_dbfs", "n_damage_clicks",
)

# Stable small integers for seeding per-clip generators.
_SPLIT_CODE = {"train": 0, "test": 1}
_LABEL_CODE = {"normal": 0, "anomaly": 1}
KIND_CODE = {None: 0, "rail_damage": 1, "loose_belt": 2, "missing_grease": 3}


def normalise_machine_id(machine_id: str | int) -> str:
    """``"id_02"``, ``"02"``, ``"2"`` or ``2`` -> ``"id_02"``; ValueError otherwise."""
    text = str(machine_id).strip()
    if text.startswith("id_"):
        text = text[3:]
    if not text.isdigit() or len(text) > 2:
        raise ValueError(f"machine id {machine_id!r} is not of the form id_NN (e.g. id_00)")
    return f"id_{int(text):02d}"


def _id_number(machine_id: str) -> int:
    return int(normalise_machine_id(machine_id)[3:])


def level_dbfs(samples: np.ndarray) -> float:
    """RMS level of a float signal (full scale 1.0) in dBFS."""
    x = np.asarray(samples, dtype=np.float64)
    return float(10 * np.log10(np.mean(x * x) + 1e-20))


# --------------------------------------------------------------------------- profiles


@dataclass(frozen=True)
class MachineProfile:
    """The fixed character of one machine id (frequencies in Hz, times in s).

    Attributes:
        machine_id: ``id_NN``.
        cycle_s: nominal period of one out-and-back cycle (s).
        move_fraction: share of each stroke the carriage moves (the rest it dwells).
        ramp_fraction: share of each move spent accelerating (same for braking).
        order_hz: frequencies of the speed-locked tones at full speed (Hz).
        order_db: their levels (dB, relative).
        drive_tone_hz, drive_tone_db: fixed drive tones (Hz, dB).
        friction_hz, friction_q, friction_db: running-friction resonances
            (centre Hz, bandwidth as a fraction of the centre, level dB).
        mode_hz, mode_decay_s, mode_db: frame modes rung by end-stop impacts.
        rumble_peak_hz: peak of the low-frequency drive rumble (Hz).
        rumble_slope_db: its spectral slope above the peak (dB/octave).
        squeal_hz: this machine's stick-slip squeal frequency when dry (Hz).
        impact_db: end-stop impact level (dB, relative).
        friction_level_db, orders_level_db: overall levels of the running
            friction and the speed-locked orders (dB, relative).
    """

    machine_id: str
    cycle_s: float
    move_fraction: float
    ramp_fraction: float
    order_hz: tuple[float, ...]
    order_db: tuple[float, ...]
    drive_tone_hz: tuple[float, ...]
    drive_tone_db: tuple[float, ...]
    friction_hz: tuple[float, ...]
    friction_q: tuple[float, ...]
    friction_db: tuple[float, ...]
    mode_hz: tuple[float, ...]
    mode_decay_s: tuple[float, ...]
    mode_db: tuple[float, ...]
    rumble_peak_hz: float
    rumble_slope_db: float
    squeal_hz: float
    impact_db: float
    friction_level_db: float
    orders_level_db: float

    @property
    def pass_period_s(self) -> float:
        """Nominal time between two passes over mid-rail: one stroke (s)."""
        return self.cycle_s / 2

    @classmethod
    def from_seed(cls, seed: int, machine_id: str | int) -> MachineProfile:
        """The machine character of ``machine_id`` in the dataset of ``seed``.

        Depends only on ``(seed, id)``: asking for other ids alongside changes nothing.
        """
        mid = normalise_machine_id(machine_id)
        rng = np.random.default_rng([int(seed), _id_number(mid), 7001])
        cycle = float(rng.uniform(1.0, 3.0))
        motor = rng.uniform(160.0, 420.0)
        orders = [motor, 2 * motor, 3 * motor]
        levels = [-20.0, -24.0, -28.0]
        gear = rng.uniform(1100.0, 2400.0)
        orders += [gear, 2 * gear]
        levels += [-16.0, -22.0]
        for _ in range(int(rng.integers(2, 4))):  # belt teeth, bearings
            orders.append(rng.uniform(2800.0, 6800.0))
            levels.append(rng.uniform(-22.0, -14.0))
        levels = [lv + rng.uniform(-3.0, 3.0) for lv in levels]
        mains = float(rng.choice([50.0, 60.0]))
        drive_hz = [2 * mains, 4 * mains, rng.uniform(600.0, 2200.0)]
        drive_db = [-30.0, -36.0, rng.uniform(-42.0, -34.0)]
        n_res = int(rng.integers(2, 4))
        friction_hz = np.sort(rng.uniform(1800.0, 7000.0, n_res))
        n_modes = 4
        mode_hz = np.sort(rng.uniform(250.0, 4500.0, n_modes))
        return cls(
            machine_id=mid,
            cycle_s=round(cycle, 4),
            move_fraction=float(rng.uniform(0.25, 0.6)),
            ramp_fraction=float(rng.uniform(0.15, 0.3)),
            order_hz=tuple(float(f) for f in orders),
            order_db=tuple(float(v) for v in levels),
            drive_tone_hz=tuple(float(f) for f in drive_hz),
            drive_tone_db=tuple(float(v) for v in drive_db),
            friction_hz=tuple(float(f) for f in friction_hz),
            friction_q=tuple(float(q) for q in rng.uniform(0.15, 0.4, n_res)),
            friction_db=tuple(float(v) for v in rng.uniform(-6.0, 0.0, n_res)),
            mode_hz=tuple(float(f) for f in mode_hz),
            mode_decay_s=tuple(float(d) for d in rng.uniform(0.005, 0.04, n_modes)),
            mode_db=tuple(float(v) for v in rng.uniform(-6.0, 0.0, n_modes)),
            rumble_peak_hz=float(rng.uniform(50.0, 110.0)),
            rumble_slope_db=float(rng.uniform(-4.6, -3.6)),
            squeal_hz=float(rng.uniform(1200.0, 4500.0)),
            impact_db=float(rng.uniform(-4.0, 0.0)),
            friction_level_db=float(rng.uniform(-19.0, -11.0)),
            orders_level_db=float(rng.uniform(2.0, 8.0)),
        )


@dataclass(frozen=True)
class FactoryProfile:
    """The background of one dataset: a factory hall (frequencies in Hz).

    Attributes:
        hump_hz: centre of the low-frequency hump (Hz).
        slope_db_per_octave: spectral slope above the hump.
        tone_hz, tone_db: stationary machinery tones (Hz, dB relative to the noise).
        clunk_rate_hz: mean rate of distant clunks (1/s).
    """

    hump_hz: float = 70.0
    slope_db_per_octave: float = -4.0
    tone_hz: tuple[float, ...] = (100.0, 150.0, 240.0, 1150.0)
    tone_db: tuple[float, ...] = (-15.0, -18.0, -17.0, -28.0)
    clunk_rate_hz: float = 0.3

    @classmethod
    def from_seed(cls, seed: int) -> FactoryProfile:
        rng = np.random.default_rng([int(seed), 7002])
        low = rng.uniform(40.0, 400.0, int(rng.integers(2, 5)))  # fans, pumps, compressors
        high = rng.uniform(500.0, 2500.0, int(rng.integers(1, 3)))  # drives, transformers
        return cls(
            hump_hz=float(rng.uniform(45.0, 110.0)),
            slope_db_per_octave=float(rng.uniform(-4.4, -3.6)),
            tone_hz=tuple(float(f) for f in np.concatenate([low, high])),
            tone_db=tuple(float(v) for v in np.concatenate([rng.uniform(-20.0, -12.0, len(low)),
                                                            rng.uniform(-32.0, -24.0, len(high))])),
            clunk_rate_hz=float(rng.uniform(0.1, 0.5)),
        )


@dataclass(frozen=True)
class ClipInfo:
    """How one clip was generated (times in s from the clip start, frequencies in Hz).

    ``damage_times_s``: when the carriage passed the rail damage (empty unless
    ``rail_damage``); ``stop_times_s``: end-stop impacts.
    """

    machine_id: str
    label: str
    anomaly_kind: str | None
    severity: float
    cycle_s: float
    pass_period_s: float
    squeal_hz: float | None
    damage_position: float | None
    snr_db: float
    seconds: float
    sample_rate: int
    level_dbfs: float
    damage_times_s: tuple[float, ...] = ()
    stop_times_s: tuple[float, ...] = ()

    def row(self) -> dict[str, object]:
        """The flat metadata.csv fields of this clip (without file/split/machine)."""
        return {
            "machine_id": self.machine_id,
            "label": self.label,
            "anomaly_kind": self.anomaly_kind or "",
            "severity": round(self.severity, 4),
            "cycle_s": round(self.cycle_s, 4),
            "pass_period_s": round(self.pass_period_s, 4),
            "squeal_hz": "" if self.squeal_hz is None else round(self.squeal_hz, 1),
            "damage_position": "" if self.damage_position is None else round(self.damage_position, 4),
            "snr_db": self.snr_db,
            "seconds": self.seconds,
            "sample_rate": self.sample_rate,
            "level_dbfs": round(self.level_dbfs, 2),
            "n_damage_clicks": len(self.damage_times_s),
        }


# --------------------------------------------------------------------------- motion


@dataclass(frozen=True)
class Motion:
    """The carriage's motion, sampled (arrays of length n).

    Attributes:
        speed: normalised speed, 0 at rest, about 1 at cruise.
        position: position along the rail, 0..1.
        starts_s, moves_s, ramps_s: per stroke start time, move duration and
            ramp time (s, clip time; strokes may start before 0).
        forward: per stroke, True when moving towards position 1.
    """

    speed: np.ndarray
    position: np.ndarray
    starts_s: np.ndarray
    moves_s: np.ndarray
    ramps_s: np.ndarray
    forward: np.ndarray

    def crossing_times(self, position: float) -> np.ndarray:
        """Times (s) at which the carriage passes ``position`` (0..1), in order."""
        m, a = self.moves_s, self.ramps_s
        frac = np.where(self.forward, position, 1.0 - position)
        p = frac * (m - a)  # distance covered, in "unit speed x seconds"
        tau = np.where(
            p < a / 2,
            np.sqrt(2 * a * p),
            np.where(p <= m - 1.5 * a, a + (p - a / 2), m - np.sqrt(np.maximum(2 * a * ((m - a) - p), 0.0))),
        )
        return self.starts_s + tau

    def stop_times(self) -> np.ndarray:
        """Times (s) at which the carriage reaches an end stop."""
        return self.starts_s + self.moves_s


def carriage_motion(machine: MachineProfile, rng: np.random.Generator, n: int, sample_rate: int,
                    *, cycle_s: float, jitter: float = 0.0, flutter: float = 0.0) -> Motion:
    """The trapezoidal back-and-forth motion of one clip.

    ``jitter``: std of stroke start/duration jitter as a fraction of the stroke
    (the loose belt); ``flutter``: relative speed flutter (below ~10 Hz) while moving.
    Natural per-stroke jitter of ~2 ms is always there.
    """
    stroke = cycle_s / 2
    seconds = n / sample_rate
    t0 = -rng.uniform(0.0, cycle_s) - stroke
    k = int(np.ceil((seconds - t0) / stroke)) + 2
    idx = np.arange(k)
    starts = t0 + idx * stroke + rng.normal(0.0, 0.002 + jitter * stroke, k)
    move = machine.move_fraction * stroke
    moves = move * (1.0 + rng.normal(0.0, 0.01 + 2 * jitter, k))
    # a move never runs into the next stroke's start, and stays a trapezoid
    moves = np.clip(moves, 0.3 * move, None)
    starts = np.maximum.accumulate(starts)
    gaps = np.diff(starts, append=starts[-1] + stroke)
    moves = np.minimum(moves, 0.95 * np.maximum(gaps, 1e-3))
    ramps = np.minimum(machine.ramp_fraction * moves, 0.45 * moves)
    forward = (idx + int(rng.integers(0, 2))) % 2 == 0

    t = np.arange(n) / sample_rate
    s = np.clip(np.searchsorted(starts, t, side="right") - 1, 0, k - 1)
    tau = t - starts[s]
    m, a = moves[s], ramps[s]
    speed = np.clip(np.minimum(np.minimum(tau / a, (m - tau) / a), 1.0), 0.0, 1.0)
    # position along the rail from the closed-form trapezoid integral
    tc = np.clip(tau, 0.0, m)
    p = np.where(tc < a, tc * tc / (2 * a),
                 np.where(tc <= m - a, a / 2 + (tc - a), (m - a) - (m - tc) ** 2 / (2 * a)))
    frac = np.clip(p / (m - a), 0.0, 1.0)
    position = np.where(forward[s], frac, 1.0 - frac)
    if flutter > 0:
        wobble = _slow_noise(rng, n, sample_rate, 10.0)
        speed = speed * (1.0 + flutter * wobble)
        speed = np.clip(speed, 0.0, None)
    return Motion(speed.astype(np.float64), position, starts, moves, ramps, forward)


# --------------------------------------------------------------------------- building blocks


def _db(x: float | np.ndarray) -> np.ndarray:
    return 10.0 ** (np.asarray(x) / 20.0)


def _shaped_noise(rng: np.random.Generator, n: int, sample_rate: int,
                  magnitude: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Gaussian noise with magnitude spectrum ``magnitude(f_hz)`` (arbitrary scale; callers normalise).

    Drawn directly in the frequency domain (complex Gaussian bins): the same
    statistics as filtering white noise, one FFT cheaper.
    """
    nf = n // 2 + 1
    spec = rng.standard_normal(nf) + 1j * rng.standard_normal(nf)
    f = np.fft.rfftfreq(n, 1.0 / sample_rate)
    return np.fft.irfft(spec * magnitude(f), n)


def _slow_noise(rng: np.random.Generator, n: int, sample_rate: int, corner_hz: float) -> np.ndarray:
    """Smooth random wander with unit variance and no content much above ``corner_hz``.

    Linear interpolation between Gaussian control points ``1 / (2 corner_hz)`` s apart:
    cheap, and well defined for clips of any length (an FFT-shaped noise would
    have no frequency bins below 1/length).
    """
    step = sample_rate / (2.0 * corner_hz)
    points = rng.standard_normal(int(np.ceil(n / step)) + 2)
    return np.interp(np.arange(n) / step + rng.uniform(0.0, 1.0), np.arange(len(points)), points)


def _bumps(f: np.ndarray, centres: Sequence[float], widths: Sequence[float], gains_db: Sequence[float]) -> np.ndarray:
    """Sum of Gaussian resonance bumps in log frequency (linear magnitude)."""
    lf = np.log2(np.maximum(f, 1.0))
    out = np.zeros_like(f)
    for c, w, g in zip(centres, widths, gains_db):
        out += _db(g) * np.exp(-0.5 * ((lf - np.log2(c)) / max(w, 1e-3)) ** 2)
    return out


def _hump(f: np.ndarray, peak_hz: float, slope_db_per_octave: float) -> np.ndarray:
    """Low-heavy magnitude: rising 6 dB/octave up to ``peak_hz``, then ``slope_db_per_octave``,
    3 dB/octave steeper above 1.5 kHz; nothing below 10 Hz."""
    octaves = np.log2(np.maximum(f, 1.0) / peak_hz)
    db = np.where(octaves > 0, slope_db_per_octave * octaves, 6.0 * octaves)
    db -= 3.0 * np.maximum(np.log2(np.maximum(f, 1.0) / 1500.0), 0.0)
    return _db(db) * (f >= 10.0)


def _decaying_modes(sample_rate: int, hz: Sequence[float] | np.ndarray, decay_s: Sequence[float] | np.ndarray,
                    gains_db: Sequence[float] | np.ndarray, rng: np.random.Generator,
                    click: float = 0.3) -> np.ndarray:
    """Impulse response of an impact: damped sinusoids plus a short broadband click."""
    length = int(min(5 * max(decay_s), 0.25) * sample_rate) + 1
    t = np.arange(length) / sample_rate
    ir = np.zeros(length)
    for f, d, g in zip(hz, decay_s, gains_db):
        if f < sample_rate / 2 * 0.95:
            ir += _db(g) * np.exp(-t / d) * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
    n_click = max(int(0.002 * sample_rate), 2)
    ir[:n_click] += click * rng.standard_normal(n_click) * np.hanning(n_click + 2)[1:-1]
    return ir / (np.max(np.abs(ir)) + 1e-12)


def _add_events(out: np.ndarray, times_s: np.ndarray, amps: np.ndarray, ir_fn: Callable[[int], np.ndarray],
                sample_rate: int) -> None:
    """Add ``amps[i] * ir_fn(i)`` at each time in ``times_s`` (in place; out-of-clip parts dropped)."""
    n = len(out)
    for i, (t, a) in enumerate(zip(times_s, amps)):
        start = int(round(t * sample_rate))
        ir = ir_fn(i)
        lo, hi = max(start, 0), min(start + len(ir), n)
        if hi > lo:
            out[lo:hi] += a * ir[lo - start:hi - start]


def _speed_locked_tones(phase_base: np.ndarray, speed: np.ndarray, hz: Sequence[float], gains_db: Sequence[float],
                        rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    """Tones whose instantaneous frequency is ``hz * speed``; ``phase_base`` = integral of speed (s)."""
    out = np.zeros(len(speed))
    amp_env = speed ** 0.7
    nyq = sample_rate / 2 * 0.97
    for f, g in zip(hz, gains_db):
        # above Nyquist at full speed: fade the tone out where it would alias
        alias_gate = np.clip((nyq - f * speed) / 200.0, 0.0, 1.0) if f >= nyq else 1.0
        gain = _db(g + rng.normal(0.0, 1.0))
        out += gain * alias_gate * np.sin(2 * np.pi * f * phase_base + rng.uniform(0, 2 * np.pi))
    return out * amp_env


# --------------------------------------------------------------------------- one clip


def _machine_normal(machine: MachineProfile, motion: Motion, rng: np.random.Generator,
                    sample_rate: int) -> np.ndarray:
    """The normal machine sound for a given motion (unscaled)."""
    n = len(motion.speed)
    v = motion.speed
    t = np.arange(n) / sample_rate
    phase_base = np.cumsum(v) / sample_rate

    rumble = _shaped_noise(rng, n, sample_rate, lambda f: _hump(f, machine.rumble_peak_hz, machine.rumble_slope_db))
    rumble *= 0.8 + 0.7 * v  # the frame hums louder while the carriage moves

    tones = np.zeros(n)
    for f, g in zip(machine.drive_tone_hz, machine.drive_tone_db):
        tones += _db(g + rng.normal(0.0, 1.0)) * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))

    orders = _speed_locked_tones(phase_base, v, machine.order_hz,
                                 [g + machine.orders_level_db for g in machine.order_db], rng, sample_rate)

    def fr_mag(f: np.ndarray) -> np.ndarray:
        return _bumps(f, machine.friction_hz, machine.friction_q, machine.friction_db) + 0.15 * _bumps(
            f, [1200.0], [1.5], [0.0])

    friction = _shaped_noise(rng, n, sample_rate, fr_mag)
    friction /= np.std(friction) + 1e-12
    friction *= _db(machine.friction_level_db + rng.normal(0.0, 1.0)) * v ** 1.5

    stops = motion.stop_times()
    stop_ir = _decaying_modes(sample_rate, machine.mode_hz, machine.mode_decay_s, machine.mode_db, rng, click=0.4)
    impacts = np.zeros(n)
    _add_events(impacts, stops, _db(machine.impact_db - 6.0 + rng.normal(0.0, 2.0, len(stops))),
                lambda i: stop_ir, sample_rate)

    rumble /= np.std(rumble) + 1e-12
    return rumble * _db(-3.0 + rng.normal(0.0, 0.5)) + tones + orders + friction + impacts


def _background(factory: FactoryProfile, rng: np.random.Generator, n: int, sample_rate: int) -> np.ndarray:
    """Factory noise with unit RMS."""
    x = _shaped_noise(rng, n, sample_rate, lambda f: _hump(f, factory.hump_hz, factory.slope_db_per_octave))
    x /= np.std(x) + 1e-12
    t = np.arange(n) / sample_rate
    for f, g in zip(factory.tone_hz, factory.tone_db):
        x += _db(g + rng.normal(0.0, 1.5)) * np.sqrt(2) * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
    # slow level drift, +-1.5 dB
    x *= _db(1.5 * _slow_noise(rng, n, sample_rate, 0.3))
    n_clunks = rng.poisson(factory.clunk_rate_hz * n / sample_rate)
    if n_clunks:
        times = rng.uniform(0, n / sample_rate, n_clunks)
        irs = [_decaying_modes(sample_rate, rng.uniform(150, 1500, 3), rng.uniform(0.02, 0.08, 3), [0, -3, -6], rng)
               for _ in range(n_clunks)]
        _add_events(x, times, _db(rng.uniform(-6.0, 4.0, n_clunks)), lambda i: irs[i], sample_rate)
    return x / (np.std(x) + 1e-12)


def _rail_damage(machine: MachineProfile, motion: Motion, rng: np.random.Generator, n: int, sample_rate: int,
                 strength: float) -> tuple[np.ndarray, float, np.ndarray]:
    position = float(rng.uniform(0.47, 0.53))
    times = motion.crossing_times(position)
    seconds = n / sample_rate
    times = times[(times > -0.05) & (times < seconds)]
    # a sharp broadband click (wheel over the dent) ringing the carriage's modes, plus a low thump
    modes_hz = np.concatenate([rng.uniform(1500.0, 7000.0, 4), rng.uniform(200.0, 700.0, 1)])
    ir = _decaying_modes(sample_rate, modes_hz, np.concatenate([rng.uniform(0.004, 0.012, 4), [0.02]]),
                         [0.0, -2.0, -4.0, -6.0, -3.0], rng, click=1.0)
    # level by energy: at severity 1 a click carries 10 dB more energy than 64 ms (one
    # analysis frame) of the machine sound, which has unit power here
    ir /= np.sqrt(np.sum(ir ** 2))
    amps = strength * np.sqrt(0.064 * sample_rate) * _db(10.0 + rng.normal(0.0, 1.5, len(times)))
    out = np.zeros(n)
    _add_events(out, times, amps, lambda i: ir, sample_rate)
    return out, position, times[(times >= 0)]


def _loose_belt(machine: MachineProfile, motion: Motion, rng: np.random.Generator, n: int, sample_rate: int,
                strength: float) -> np.ndarray:
    v = motion.speed
    moving = v > 0.05
    seconds = n / sample_rate
    # rattle: random ticks while moving
    rate = 20.0
    n_ticks = rng.poisson(rate * seconds)
    t_ticks = np.sort(rng.uniform(0, seconds, n_ticks))
    t_ticks = t_ticks[moving[np.minimum((t_ticks * sample_rate).astype(int), n - 1)]]
    tick_ir = _decaying_modes(sample_rate, rng.uniform(700.0, 3000.0, 3), rng.uniform(0.003, 0.012, 3),
                              [0.0, -3.0, -6.0], rng, click=0.5)
    out = np.zeros(n)
    _add_events(out, t_ticks, strength * _db(-8.0 + rng.normal(0, 3.0, len(t_ticks))), lambda i: tick_ir, sample_rate)
    # slap when the slack is taken up at each start
    slap_ir = _decaying_modes(sample_rate, rng.uniform(150.0, 900.0, 3), rng.uniform(0.01, 0.03, 3),
                              [0.0, -3.0, -6.0], rng, click=0.3)
    starts = motion.starts_s + 0.3 * motion.ramps_s
    _add_events(out, starts, strength * _db(-1.0 + rng.normal(0, 2.0, len(starts))), lambda i: slap_ir, sample_rate)
    # flapping: low-mid noise amplitude-modulated at the belt's flap rate while moving
    flap = _shaped_noise(rng, n, sample_rate, lambda f: _bumps(f, [350.0], [0.8], [0.0]))
    flap /= np.std(flap) + 1e-12
    flap_rate = rng.uniform(18.0, 35.0)
    am = 0.5 * (1 + np.sin(2 * np.pi * flap_rate * np.arange(n) / sample_rate)) ** 2
    out += strength * _db(-8.0) * flap * am * v
    return out


def _missing_grease(machine: MachineProfile, motion: Motion, rng: np.random.Generator, n: int, sample_rate: int,
                    strength: float) -> tuple[np.ndarray, float]:
    squeal_hz = float(machine.squeal_hz * rng.uniform(0.92, 1.08))
    t = np.arange(n) / sample_rate
    v = motion.speed
    # episodes: the squeal swells and fades within the fast part of each stroke
    episodes = _slow_noise(rng, n, sample_rate, 3.0)
    gate = np.clip((v - 0.3) / 0.3, 0.0, 1.0) * np.clip(0.5 + 0.6 * episodes + 0.8, 0.0, 1.0)
    vibrato = 1.0 + 0.003 * np.sin(2 * np.pi * rng.uniform(4.0, 8.0) * t) \
        + 0.002 * episodes  # stick-slip pitch drifts a little with load
    phase = 2 * np.pi * squeal_hz * np.cumsum(vibrato) / sample_rate
    tone = np.zeros(n)
    for h, g in ((1, 0.0), (2, -8.0), (3, -14.0)):
        if h * squeal_hz < sample_rate / 2 * 0.95:
            tone += _db(g) * np.sin(h * phase + rng.uniform(0, 2 * np.pi))
    return strength * _db(9.0) * gate * tone, squeal_hz


def _strength(severity: float) -> float:
    """Amplitude factor of an anomaly component: ``severity ** 1.5``.

    Steeper than linear so that the knob spans "barely there" to "obvious":
    severity 0.3 is 16 dB below the default 1, severity 2 is 9 dB above it.
    """
    return float(severity) ** 1.5


def _soft_limit(x: np.ndarray, knee: float = 0.6, ceiling: float = 0.95) -> np.ndarray:
    """Identity below ``knee``; above it, a tanh curve that never exceeds ``ceiling``.

    Only strong anomalies (loud clicks at severity >= 1.5) reach the knee. It
    keeps them off digital full scale, which the sensor-health checks would
    rightly call clipping (a microphone fault, not a machine fault).
    """
    a = np.abs(x)
    over = a > knee
    if not np.any(over):
        return x
    y = x.copy()
    span = ceiling - knee
    y[over] = np.sign(x[over]) * (knee + span * np.tanh((a[over] - knee) / span))
    return y


def synthesize_clip(machine: MachineProfile, rng: np.random.Generator, anomaly: str | None = None,
                    severity: float = 1.0, snr_db: float = 6.0, seconds: float = 10.0,
                    sample_rate: int = SAMPLE_RATE, factory: FactoryProfile | None = None,
                    level_dbfs_target: float = TARGET_LEVEL_DBFS) -> tuple[np.ndarray, ClipInfo]:
    """One clip of the slide rail ``machine``.

    Args:
        machine: the machine character (:meth:`MachineProfile.from_seed`).
        rng: the clip's random generator (all per-clip variation comes from it).
        anomaly: ``None`` (normal) or one of :data:`ANOMALY_KINDS`.
        severity: anomaly strength; 0 = normal-like, 1 = default, higher = easier.
        snr_db: machine-to-background power ratio of the normal machine sound (dB).
        seconds: clip length (s).
        sample_rate: samples per second (Hz).
        factory: the background; default :class:`FactoryProfile()`.
        level_dbfs_target: RMS level of the normal mix (dBFS), +-0.6 dB per clip.

    Returns:
        ``(samples, info)``: float32 mono samples in [-1, 1] of length
        ``round(seconds * sample_rate)``, and the clip's :class:`ClipInfo`.
    """
    if anomaly is not None and anomaly not in ANOMALY_KINDS:
        raise ValueError(f"unknown anomaly kind {anomaly!r}; choose from {', '.join(ANOMALY_KINDS)}")
    if severity < 0:
        raise ValueError(f"severity must be >= 0, got {severity}")
    if seconds <= 0:
        raise ValueError(f"seconds must be positive, got {seconds}")
    factory = factory or FactoryProfile()
    n = int(round(seconds * sample_rate))
    seeds = rng.integers(0, 2**63 - 1, size=4)
    r_motion, r_machine, r_background, r_anomaly = (np.random.default_rng(int(s)) for s in seeds)

    strength = _strength(severity) if anomaly is not None else 0.0
    cycle = machine.cycle_s * (1.0 + r_motion.normal(0.0, 0.01))
    belt = anomaly == "loose_belt"
    motion = carriage_motion(machine, r_motion, n, sample_rate, cycle_s=cycle,
                             jitter=0.06 * strength if belt else 0.0,
                             flutter=0.10 * strength if belt else 0.0)
    speed_scale = 1.0 + r_motion.normal(0.0, 0.02)
    motion = Motion(motion.speed * speed_scale, motion.position, motion.starts_s, motion.moves_s,
                    motion.ramps_s, motion.forward)
    machine_sig = _machine_normal(machine, motion, r_machine, sample_rate)
    norm = np.sqrt(np.mean(machine_sig ** 2)) + 1e-12
    machine_sig /= norm

    extra = np.zeros(n)
    squeal_hz = damage_position = None
    damage_times = np.zeros(0)
    if anomaly == "rail_damage":
        extra, damage_position, damage_times = _rail_damage(machine, motion, r_anomaly, n, sample_rate, strength)
    elif anomaly == "loose_belt":
        extra = _loose_belt(machine, motion, r_anomaly, n, sample_rate, strength)
    elif anomaly == "missing_grease":
        extra, squeal_hz = _missing_grease(machine, motion, r_anomaly, n, sample_rate, strength)
        # dry running is rougher: more friction noise
        fr = _shaped_noise(r_anomaly, n, sample_rate,
                           lambda f: _bumps(f, machine.friction_hz, machine.friction_q, machine.friction_db))
        fr /= np.std(fr) + 1e-12
        extra = extra + strength * _db(-10.0) * fr * motion.speed ** 1.5

    background = _background(factory, r_background, n, sample_rate) * _db(-snr_db)
    gain = _db(level_dbfs_target + r_background.uniform(-0.6, 0.6)) / np.sqrt(1.0 + _db(-snr_db) ** 2)
    mix = gain * (machine_sig + extra + background)  # extra: not in the level, see the docstring
    mix = _soft_limit(mix).astype(np.float32)
    info = ClipInfo(
        machine_id=machine.machine_id,
        label="normal" if anomaly is None else "anomaly",
        anomaly_kind=anomaly,
        severity=float(severity) if anomaly is not None else 0.0,
        cycle_s=float(machine.cycle_s),
        pass_period_s=float(machine.pass_period_s),
        squeal_hz=squeal_hz,
        damage_position=damage_position,
        snr_db=float(snr_db),
        seconds=float(seconds),
        sample_rate=int(sample_rate),
        level_dbfs=level_dbfs(mix),
        damage_times_s=tuple(float(x) for x in damage_times),
        stop_times_s=tuple(float(x) for x in motion.stop_times() if 0 <= x < seconds),
    )
    return mix, info


# --------------------------------------------------------------------------- datasets


@dataclass
class DatasetSummary:
    """What :func:`generate_dataset` wrote.

    Attributes:
        root: the machine folder (``OUT_DIR/<machine>``).
        counts: ``(machine_id, split, label, kind)`` -> number of clips; ``kind``
            is ``"normal"`` for normal clips.
        metadata_csv: path of the per-clip metadata table.
        seconds_taken: wall time (s).
    """

    root: Path
    machine: str
    seed: int
    counts: dict[tuple[str, str, str, str], int] = field(default_factory=dict)
    metadata_csv: Path | None = None
    seconds_taken: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def table(self) -> str:
        """A plain-text table of clip counts per id, split, label and kind."""
        lines = [f"{'id':6s} {'split':5s} {'label':7s} {'kind':15s} {'clips':>5s}"]
        for (mid, split, label, kind), count in sorted(self.counts.items()):
            lines.append(f"{mid:6s} {split:5s} {label:7s} {kind:15s} {count:5d}")
        lines.append(f"{'total':36s} {self.total:5d}")
        return "\n".join(lines)


def _plan(machine_ids: Sequence[str], n_train: int, n_test_normal: int, n_test_anomaly: int,
          kinds: Sequence[str]) -> list[tuple[str, str, str | None, int]]:
    """Every clip to write: (machine_id, split, kind or None, index within its file-name series)."""
    plan: list[tuple[str, str, str | None, int]] = []
    for mid in machine_ids:
        plan += [(mid, "train", None, i) for i in range(n_train)]
        plan += [(mid, "test", None, i) for i in range(n_test_normal)]
        # anomaly kinds in turn, so every kind is (nearly) equally represented
        plan += [(mid, "test", kinds[i % len(kinds)], i) for i in range(n_test_anomaly)]
    return plan


def clip_rng(seed: int, machine_id: str, split: str, anomaly: str | None, index: int) -> np.random.Generator:
    """The generator of one dataset clip; depends on nothing else, so any subset is reproducible."""
    label = "normal" if anomaly is None else "anomaly"
    return np.random.default_rng([int(seed), _id_number(machine_id), _SPLIT_CODE[split], _LABEL_CODE[label],
                                  KIND_CODE[anomaly], int(index)])


def generate_dataset(out_dir: str | Path, seed: int, *, machine_ids: Iterable[str | int] = ("id_00", "id_02", "id_04"),
                     n_train: int = 50, n_test_normal: int = 20, n_test_anomaly: int = 30,
                     snr_db: float = 6.0, severity: float = 1.0, kinds: Sequence[str] = ANOMALY_KINDS,
                     seconds: float = 10.0, sample_rate: int = SAMPLE_RATE, machine: str = "slider",
                     progress: Callable[[int, int], None] | None = None) -> DatasetSummary:
    """Write a DCASE 2020 layout dataset of synthetic slide-rail clips.

    Layout: ``out_dir/<machine>/train/normal_id_XX_NNNNNNNN.wav``,
    ``out_dir/<machine>/test/{normal,anomaly}_id_XX_NNNNNNNN.wav`` (16-bit PCM mono),
    ``out_dir/<machine>/metadata.csv`` (one row per clip, :data:`METADATA_COLUMNS`)
    and ``out_dir/<machine>/profiles.json`` (each id's :class:`MachineProfile`).
    Test anomalies cycle through ``kinds``. ``progress(done, total)`` is called after each clip.
    """
    ids = [normalise_machine_id(m) for m in machine_ids]
    if len(set(ids)) != len(ids):
        raise ValueError(f"machine ids repeat: {' '.join(ids)}")
    if not ids:
        raise ValueError("need at least one machine id")
    kinds = list(kinds)
    for k in kinds:
        if k not in ANOMALY_KINDS:
            raise ValueError(f"unknown anomaly kind {k!r}; choose from {', '.join(ANOMALY_KINDS)}")
    if n_test_anomaly and not kinds:
        raise ValueError("anomalous test clips asked for but no anomaly kinds given")
    if min(n_train, n_test_normal, n_test_anomaly) < 0:
        raise ValueError("clip counts must be >= 0")
    if not machine or "/" in machine or machine in (".", ".."):
        raise ValueError(f"machine folder name {machine!r} is not a plain folder name")

    started = time.perf_counter()
    root = Path(out_dir) / machine
    for split in ("train", "test"):
        (root / split).mkdir(parents=True, exist_ok=True)
    factory = FactoryProfile.from_seed(seed)
    profiles = {mid: MachineProfile.from_seed(seed, mid) for mid in ids}
    plan = _plan(ids, n_train, n_test_normal, n_test_anomaly, kinds)
    summary = DatasetSummary(root=root, machine=machine, seed=int(seed))
    counts: Counter[tuple[str, str, str, str]] = Counter()
    rows: list[dict[str, object]] = []
    for done, (mid, split, kind, index) in enumerate(plan, start=1):
        samples, info = synthesize_clip(profiles[mid], clip_rng(seed, mid, split, kind, index), kind,
                                        severity=severity, snr_db=snr_db, seconds=seconds,
                                        sample_rate=sample_rate, factory=factory)
        name = f"{info.label}_{mid}_{index:08d}.wav"
        write_wav(root / split / name, samples, sample_rate)
        rows.append({"file": f"{split}/{name}", "split": split, "machine": machine, **info.row()})
        counts[(mid, split, info.label, kind or "normal")] += 1
        if progress:
            progress(done, len(plan))

    summary.metadata_csv = root / "metadata.csv"
    with open(summary.metadata_csv, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(METADATA_COLUMNS))
        writer.writeheader()
        writer.writerows(rows)
    (root / "profiles.json").write_text(json.dumps(
        {"seed": int(seed), "machine": machine, "factory": asdict(factory),
         "machines": {mid: asdict(p) | {"pass_period_s": p.pass_period_s} for mid, p in profiles.items()}},
        indent=2) + "\n")
    summary.counts = dict(counts)
    summary.seconds_taken = time.perf_counter() - started
    return summary


def read_metadata(root: str | Path) -> list[dict[str, str]]:
    """Rows of ``<root>/metadata.csv`` (``root`` = the machine folder), as strings."""
    with open(Path(root) / "metadata.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def render_clip(kind: str | None = "normal", seed: int = 0, machine_id: str | int = "id_00", index: int = 0,
                severity: float = 1.0, snr_db: float = 6.0, seconds: float = 10.0,
                sample_rate: int = SAMPLE_RATE) -> tuple[np.ndarray, ClipInfo]:
    """One clip by name, for tests and notebooks: ``kind`` is ``"normal"``/``None`` or an anomaly kind.

    The same clip (before 16-bit quantisation) as ``test/<label>_<id>_<index>.wav`` of
    ``generate_dataset(seed=seed)`` when that file is of this kind (the dataset's
    anomaly kinds cycle: index ``i`` gets ``kinds[i % len(kinds)]``).
    """
    anomaly = None if kind in (None, "normal") else kind
    mid = normalise_machine_id(machine_id)
    return synthesize_clip(MachineProfile.from_seed(seed, mid), clip_rng(seed, mid, "test", anomaly, index),
                           anomaly, severity=severity, snr_db=snr_db, seconds=seconds,
                           sample_rate=sample_rate, factory=FactoryProfile.from_seed(seed))
