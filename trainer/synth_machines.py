"""The fixed character of a synthetic slide rail and its factory, and what one clip was made of.

Drawn from ``(seed, machine id)`` so that a dataset is reproducible; see :mod:`trainer.synth` for
the sound model these parameters feed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "ANOMALY_KINDS",
    "SAMPLE_RATE",
    "TARGET_LEVEL_DBFS",
    "ClipInfo",
    "FactoryProfile",
    "MachineProfile",
    "level_dbfs",
    "machine_number",
    "normalise_machine_id",
]

SAMPLE_RATE = 16000
ANOMALY_KINDS: tuple[str, ...] = ("rail_damage", "loose_belt", "missing_grease")
TARGET_LEVEL_DBFS = -39.0


def normalise_machine_id(machine_id: str | int) -> str:
    """``"id_02"``, ``"02"``, ``"2"`` or ``2`` -> ``"id_02"``; ValueError otherwise."""
    text = str(machine_id).strip()
    if text.startswith("id_"):
        text = text[3:]
    if not text.isdigit() or len(text) > 2:
        raise ValueError(f"machine id {machine_id!r} is not of the form id_NN (e.g. id_00)")
    return f"id_{int(text):02d}"


def machine_number(machine_id: str) -> int:
    """``"id_02"`` -> 2 (the number seeds the machine's generators)."""
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
        rng = np.random.default_rng([int(seed), machine_number(mid), 7001])
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
