"""The sound of one clip of a synthetic slide rail: the carriage's motion, the machine, the factory
background and the three anomalies, mixed (:func:`synthesize_clip`). The model is described in
:mod:`trainer.synth`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from trainer.synth_machines import (
    ANOMALY_KINDS,
    SAMPLE_RATE,
    TARGET_LEVEL_DBFS,
    ClipInfo,
    FactoryProfile,
    MachineProfile,
    level_dbfs,
)

__all__ = ["Motion", "carriage_motion", "synthesize_clip"]


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
