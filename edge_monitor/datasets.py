"""Find labelled clips in the DCASE 2020 Task 2 and MIMII folder layouts.

Layouts recognised under a machine-type folder ``<machine>/``:

* DCASE 2020 Task 2: ``<machine>/train/normal_id_00_00000000.wav`` and
  ``<machine>/test/{normal,anomaly}_id_XX_NNNNNNNN.wav``;
* MIMII: ``<machine>/id_XX/{normal,abnormal}/NNNNNNNN.wav`` (``abnormal`` is
  reported as label ``"anomaly"``; MIMII has no train/test split);
* flat: ``<machine>/{normal,anomaly}_id_XX_*.wav`` with no subfolders (e.g.
  the real sample clips in ``../shared/data/real-samples/slider``).

``root`` may be one machine folder, a folder of machine folders (e.g.
``dev_data/`` with ``fan/``, ``slider/``, ...), or one part of a machine
folder: ``<machine>/train``, ``<machine>/test`` or a MIMII ``<machine>/id_XX``.
The machine type is the name of the folder that holds the layout. Machine ids
are reported as ``"id_XX"``.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Literal

__all__ = ["ClipRef", "DatasetError", "find_clips", "normalize_machine_id", "summarize"]

Label = Literal["normal", "anomaly"]
Split = Literal["train", "test"]

_DCASE_NAME = re.compile(r"^(normal|anomaly)_(id_\d+)_.*\.wav$", re.IGNORECASE)
_MIMII_ID = re.compile(r"^id_\d+$", re.IGNORECASE)
_MIMII_LABELS = {"normal": "normal", "abnormal": "anomaly"}
_NAMING = "{normal,anomaly}_id_XX_*.wav"


class DatasetError(Exception):
    """A dataset folder that cannot be read as DCASE or MIMII; one readable line."""


@dataclass(frozen=True, order=True)
class ClipRef:
    """One labelled clip.

    Attributes:
        path: the WAV file.
        label: ``"normal"`` or ``"anomaly"``.
        machine: machine type, the name of the folder holding the layout (e.g. ``"slider"``).
        machine_id: ``"id_XX"``.
        split: ``"train"`` / ``"test"`` for DCASE, ``None`` for MIMII and flat folders.
    """

    path: Path
    label: Label
    machine: str
    machine_id: str
    split: Split | None


def normalize_machine_id(value: str | int) -> str:
    """``"id_04"``, ``"04"``, ``"4"`` or ``4`` -> ``"id_04"``."""
    text = str(value).strip().lower()
    if text.startswith("id_"):
        text = text[3:]
    if not text.isdigit():
        raise DatasetError(f"machine id {value!r} is not of the form id_XX or XX")
    return f"id_{int(text):02d}"


def _is_wav(p: Path) -> bool:
    # Skip hidden files (macOS "._x.wav" resource forks are not audio).
    return p.suffix.lower() == ".wav" and not p.name.startswith(".") and p.is_file()


def _wavs(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if _is_wav(p))
    except OSError as exc:
        raise DatasetError(f"{folder}: cannot list folder: {exc.strerror or exc}") from None


def _from_names(folder: Path, machine: str, split: Split | None) -> list[ClipRef]:
    """Clips named ``{normal,anomaly}_id_XX_*.wav`` directly in ``folder``."""
    clips, odd = [], []
    for p in _wavs(folder):
        m = _DCASE_NAME.match(p.name)
        if m is None:
            odd.append(p.name)
            continue
        clips.append(ClipRef(p, m.group(1).lower(), machine, normalize_machine_id(m.group(2)), split))  # type: ignore[arg-type]
    if odd:
        # Silently skipping them would shrink the data set without anyone noticing.
        raise DatasetError(
            f"{folder}: {len(odd)} WAV file(s) not named {_NAMING} (cannot tell label and machine id), "
            f"e.g. {odd[0]}"
        )
    return clips


def _dirs(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError as exc:
        raise DatasetError(f"{folder}: cannot list folder: {exc.strerror or exc}") from None


def _layout(folder: Path) -> str | None:
    """``"dcase"``, ``"mimii"``, ``"mimii_id"``, ``"flat"`` or ``None`` for one folder."""
    names = {p.name.lower(): p for p in _dirs(folder)}
    if _MIMII_ID.match(folder.name) and any(lbl in names for lbl in _MIMII_LABELS):
        return "mimii_id"  # one id of a MIMII machine: <machine>/id_XX
    if "train" in names or "test" in names:
        return "dcase"
    for name, sub in names.items():
        if _MIMII_ID.match(name) and any((sub / lbl).is_dir() for lbl in _MIMII_LABELS):
            return "mimii"
    if any(_DCASE_NAME.match(p.name) for p in _wavs(folder)):
        return "flat"
    return None


def _scan_machine(folder: Path, layout: str, split: Split | None) -> list[ClipRef]:
    machine = folder.name
    if layout == "flat" and folder.name.lower() in ("train", "test"):
        # <machine>/train or <machine>/test of a DCASE layout, given on its own.
        sp = folder.name.lower()
        if split not in (None, sp):
            raise DatasetError(f"{folder}: split={split!r} requested from a {sp!r} folder")
        return _from_names(folder, folder.parent.name, sp)  # type: ignore[arg-type]
    if layout == "mimii_id":
        folder, only = folder.parent, folder.name.lower()
        machine, layout = folder.name, "mimii"
    else:
        only = None
    if layout == "dcase":
        clips: list[ClipRef] = []
        for sp in ("train", "test"):
            if split not in (None, sp):
                continue
            sub = next((d for d in _dirs(folder) if d.name.lower() == sp), None)
            if sub is not None:
                clips += _from_names(sub, machine, sp)  # type: ignore[arg-type]
        return clips
    if split is not None:
        raise DatasetError(
            f"{folder}: split={split!r} requested, but this {layout.upper()} layout has no train/test folders"
        )
    if layout == "flat":
        return _from_names(folder, machine, None)
    clips = []
    for id_dir in _dirs(folder):
        if not _MIMII_ID.match(id_dir.name) or only not in (None, id_dir.name.lower()):
            continue
        for lbl_dir in _dirs(id_dir):
            label = _MIMII_LABELS.get(lbl_dir.name.lower())
            if label is not None:
                mid = normalize_machine_id(id_dir.name)
                clips += [ClipRef(p, label, machine, mid, None) for p in _wavs(lbl_dir)]  # type: ignore[arg-type]
    return clips


def find_clips(
    root: str | os.PathLike[str],
    split: Split | None = None,
    machine_ids: Iterable[str | int] | None = None,
) -> list[ClipRef]:
    """All labelled clips under ``root``, sorted by path.

    Args:
        root: a machine folder in DCASE, MIMII or flat layout, or a folder of
            such machine folders.
        split: ``"train"`` or ``"test"`` to keep one DCASE split; ``None`` for all.
            Asking for a split of a layout without splits is an error.
        machine_ids: keep only these ids (``"id_00"``, ``"00"`` or ``0``).

    Returns:
        :class:`ClipRef` list, sorted by path (deterministic).

    Raises:
        DatasetError: ``root`` missing, in neither layout, holding no WAVs,
            oddly named WAVs, or no clip left after filtering.
    """
    root = Path(root)
    if split not in (None, "train", "test"):
        raise DatasetError(f"split must be 'train', 'test' or None, got {split!r}")
    if not root.exists():
        raise DatasetError(f"{root}: no such folder")
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder")

    layout = _layout(root)
    if layout is not None:
        machines = [(root, layout)]
    else:
        machines = [(d, lay) for d in _dirs(root) if (lay := _layout(d)) is not None]
    if not machines:
        raise DatasetError(
            f"{root}: neither DCASE layout (<machine>/train|test/{_NAMING}) nor MIMII layout "
            f"(<machine>/id_XX/normal|abnormal/*.wav), nor a folder of such machine folders"
        )

    clips = [c for folder, lay in machines for c in _scan_machine(folder, lay, split)]
    if not clips:
        where = f" in split {split!r}" if split else ""
        raise DatasetError(f"{root}: no WAV files{where}")
    if machine_ids is not None:
        wanted = {normalize_machine_id(m) for m in machine_ids}
        available = sorted({c.machine_id for c in clips})
        clips = [c for c in clips if c.machine_id in wanted]
        if not clips:
            raise DatasetError(
                f"{root}: no clips for machine id(s) {', '.join(sorted(wanted))}; "
                f"available: {', '.join(available)}"
            )
    return sorted(clips)


def summarize(clips: Iterable[ClipRef]) -> dict[tuple[str, str, str | None, str], int]:
    """Clip counts keyed by ``(machine, machine_id, split, label)``, sorted."""
    counts = Counter((c.machine, c.machine_id, c.split, c.label) for c in clips)
    return dict(sorted(counts.items(), key=lambda kv: tuple("" if v is None else v for v in kv[0])))
