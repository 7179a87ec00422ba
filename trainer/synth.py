"""Synthetic slide-rail recordings in the DCASE 2020 Task 2 layout.

Why: tests, the demo and CI need machine sound with known anomalies, and the
real DCASE/MIMII clips may not be redistributed. The generator is a small
physical *sound model* of a belt-driven linear slide, tuned by ear and by
measurement against the real DCASE 2020 slider clips (see ``docs/synth.md``):
the machine and factory characters in :mod:`trainer.synth_machines`, the sound
of one clip in :mod:`trainer.synth_sound`, and here the datasets written to disk.

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
from trainer.synth_machines import (
    ANOMALY_KINDS,
    SAMPLE_RATE,
    TARGET_LEVEL_DBFS,
    ClipInfo,
    FactoryProfile,
    MachineProfile,
    level_dbfs,
    machine_number,
    normalise_machine_id,
)
from trainer.synth_sound import Motion, carriage_motion, synthesize_clip

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
    "KIND_CODE",
]

METADATA_COLUMNS = (
    "file", "split", "machine", "machine_id", "label", "anomaly_kind", "severity",
    "cycle_s", "pass_period_s", "squeal_hz", "damage_position", "snr_db",
    "seconds", "sample_rate", "level_dbfs", "n_damage_clicks",
)

# Stable small integers for seeding per-clip generators.
_SPLIT_CODE = {"train": 0, "test": 1}
_LABEL_CODE = {"normal": 0, "anomaly": 1}
KIND_CODE = {None: 0, "rail_damage": 1, "loose_belt": 2, "missing_grease": 3}



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
    return np.random.default_rng([int(seed), machine_number(machine_id), _SPLIT_CODE[split], _LABEL_CODE[label],
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
