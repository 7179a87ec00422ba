"""Find labelled clips in the DCASE Task 2 (2020-2025), MIMII and flat folder layouts.

Layouts recognised under a machine-type folder ``<machine>/``:

* DCASE 2020 Task 2: ``<machine>/train/normal_id_00_00000000.wav`` and
  ``<machine>/test/{normal,anomaly}_id_XX_NNNNNNNN.wav``;
* DCASE 2022-2025 Task 2: ``<machine>/train/`` and ``<machine>/test/`` holding
  ``section_XX_{source,target}_{train,test}_{normal,anomaly}_NNNN[_<attributes>].wav``
  (e.g. ``section_00_target_test_anomaly_0012_pat_03.wav``);
* DCASE 2021 Task 2: the same names, with the test split in two folders
  ``<machine>/source_test/`` and ``<machine>/target_test/``;
* MIMII: ``<machine>/id_XX/{normal,abnormal}/NNNNNNNN.wav`` (``abnormal`` is
  reported as label ``"anomaly"``; MIMII has no train/test split);
* flat: ``<machine>/{normal,anomaly}_id_XX_*.wav`` or ``<machine>/section_XX_...wav``
  with no subfolders (e.g. the real sample clips in ``../shared/data/real-samples/slider``).

**The folder decides the split, never the name**: a clip in ``train/`` is a
training clip even when its name says ``test`` (as in
``../shared/data/real-dev/valve/train/``, cut from a release's test split).

DCASE 2021+ names give the section (machine id ``"section_XX"``), the domain
(``"source"`` / ``"target"``) and the attributes of the recording condition.
The attribute tail is read as ``key_value`` pairs (``pat_01`` ->
``(("pat", "01"),)``, ``vel_4_loc_A`` -> ``(("vel", "4"), ("loc", "A"))``);
``noAttribute`` means none; a tail that does not split into pairs (2021's
``strength_1_ambient``) is kept whole as ``(("attributes", tail),)``.

Unlabelled clips: DCASE *evaluation* sets name their test clips without a
label (``section_00_0000.wav``; 2021: ``section_03_source_test_0000.wav``),
the labels being in the organisers' ground-truth files. Such clips in a test
folder are skipped by default (they can neither train nor be scored against a
label, and training on an evaluation set's ``train/`` must still work);
``unlabelled="error"`` refuses them with one readable line instead, which is
what evaluation uses. Any other WAV whose name says neither label nor id is an
error: silently skipping it would shrink the data set without anyone noticing.

``root`` may be one machine folder, a folder of machine folders (e.g.
``dev_data/`` with ``fan/``, ``slider/``, ...), or one part of a machine
folder: ``<machine>/train``, ``<machine>/test``, ``<machine>/source_test``,
``<machine>/target_test`` or a MIMII ``<machine>/id_XX``. The machine type is
the name of the folder that holds the layout.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = ["ClipRef", "DatasetError", "find_clips", "normalize_machine_id", "parse_attributes", "summarize"]

Label = Literal["normal", "anomaly"]
Split = Literal["train", "test"]
Domain = Literal["source", "target"]
Unlabelled = Literal["skip", "error"]

_DCASE2020_NAME = re.compile(r"^(normal|anomaly)_(id_\d+)_.*\.wav$", re.IGNORECASE)
# DCASE 2021-2025: section, domain, the release's split (ignored: the folder decides), label, index, attributes.
_SECTION_NAME = re.compile(
    r"^section_(\d+)_(source|target)_(train|test)_(normal|anomaly)_(\d+)(?:_(.+))?\.wav$", re.IGNORECASE)
# Evaluation-set test clips: no label in the name (2022+: section_00_0000; 2021: section_03_source_test_0000).
_UNLABELLED_NAME = re.compile(r"^section_(\d+)_(?:(source|target)_test_)?(\d+)\.wav$", re.IGNORECASE)
_MIMII_ID = re.compile(r"^id_\d+$", re.IGNORECASE)
_MIMII_LABELS = {"normal": "normal", "abnormal": "anomaly"}
# Folders of a DCASE machine folder: their split, and the domain a 2021 test folder implies.
_SPLIT_DIRS: dict[str, tuple[Split, Domain | None]] = {
    "train": ("train", None), "test": ("test", None),
    "source_test": ("test", "source"), "target_test": ("test", "target"),
}
_NAMING = ("{normal,anomaly}_id_XX_*.wav or "
           "section_XX_{source,target}_{train,test}_{normal,anomaly}_NNNN[_attributes].wav")


class DatasetError(Exception):
    """A dataset folder that cannot be read as DCASE or MIMII; one readable line."""


@dataclass(frozen=True, order=True)
class ClipRef:
    """One labelled clip.

    Attributes:
        path: the WAV file.
        label: ``"normal"`` or ``"anomaly"``.
        machine: machine type, the name of the folder holding the layout (e.g. ``"slider"``).
        machine_id: ``"id_XX"`` (DCASE 2020, MIMII) or ``"section_XX"`` (DCASE 2021-2025).
        split: ``"train"`` / ``"test"`` for DCASE (from the folder), ``None`` for MIMII and flat folders.
        domain: ``"source"`` / ``"target"`` for DCASE 2021-2025 names, ``None`` where the layout has none.
        attributes: the recording condition from the name, e.g. ``(("pat", "01"),)``; ``()`` when none.
    """

    path: Path
    label: Label
    machine: str
    machine_id: str
    split: Split | None
    domain: str | None = None
    attributes: tuple[tuple[str, str], ...] = ()


def normalize_machine_id(value: str | int) -> str:
    """``"id_04"``, ``"04"``, ``"4"`` or ``4`` -> ``"id_04"``; ``"section_0"`` -> ``"section_00"``.

    A bare number means ``id_XX`` here; :func:`find_clips` reads it as
    ``section_XX`` when the data has only sections.
    """
    text = str(value).strip().lower()
    kind = "id"
    if text.startswith("section_"):
        kind, text = "section", text[len("section_"):]
    elif text.startswith("id_"):
        text = text[3:]
    if not text.isdigit():
        raise DatasetError(f"machine id {value!r} is not of the form id_XX, section_XX or XX")
    return f"{kind}_{int(text):02d}"


def _resolve_machine_ids(requested: Iterable[str | int], available: set[str]) -> set[str]:
    """The ids ``requested`` names, reading a bare number as the one kind of id the data has."""
    kinds = {a.split("_", 1)[0] for a in available}
    wanted = set()
    for value in requested:
        mid = normalize_machine_id(value)
        bare = not str(value).strip().lower().startswith(("id_", "section_"))
        if bare and kinds == {"section"}:
            mid = "section" + mid[2:]
        elif bare and len(kinds) > 1:
            n = mid[3:]
            raise DatasetError(f"machine id {value!r} is ambiguous here: the data has both id_XX and "
                               f"section_XX ids; write id_{n} or section_{n}")
        wanted.add(mid)
    return wanted


def parse_attributes(tail: str | None) -> tuple[tuple[str, str], ...]:
    """The attribute tail of a DCASE 2021+ name as ``(key, value)`` pairs.

    ``"pat_01"`` -> ``(("pat", "01"),)``; ``"vel_4_loc_A"`` -> ``(("vel", "4"), ("loc", "A"))``;
    ``None``, ``""`` or ``"noAttribute"`` -> ``()``; a tail that is not
    ``key_value`` pairs (``"strength_1_ambient"``) -> ``(("attributes", tail),)``.
    """
    if not tail or tail.lower() == "noattribute":
        return ()
    parts = tail.split("_")
    if len(parts) % 2 == 0 and all(parts):
        return tuple(zip(parts[0::2], parts[1::2]))
    return (("attributes", tail),)


def _is_wav(p: Path) -> bool:
    # Skip hidden files (macOS "._x.wav" resource forks are not audio).
    return p.suffix.lower() == ".wav" and not p.name.startswith(".") and p.is_file()


def _wavs(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if _is_wav(p))
    except OSError as exc:
        raise DatasetError(f"{folder}: cannot list folder: {exc.strerror or exc}") from None


def _named(name: str) -> bool:
    return bool(_DCASE2020_NAME.match(name) or _SECTION_NAME.match(name))


def _from_names(folder: Path, machine: str, split: Split | None, folder_domain: str | None,
                unlabelled: Unlabelled, skipped: list[Path]) -> list[ClipRef]:
    """Clips named in one of the DCASE namings directly in ``folder``.

    Unlabelled evaluation-set clips go to ``skipped`` (or raise, see the module docstring).
    """
    clips: list[ClipRef] = []
    odd: list[str] = []
    blind: list[Path] = []
    for p in _wavs(folder):
        m = _DCASE2020_NAME.match(p.name)
        if m is not None:
            clips.append(ClipRef(p, m.group(1).lower(), machine, normalize_machine_id(m.group(2)), split))  # type: ignore[arg-type]
            continue
        m = _SECTION_NAME.match(p.name)
        if m is not None:
            section, domain, _release_split, label, _index, tail = m.groups()
            domain = domain.lower()
            if folder_domain is not None and domain != folder_domain:
                raise DatasetError(f"{p}: a {domain}-domain clip in the {folder.name} folder "
                                   f"(expected section_XX_{folder_domain}_...)")
            clips.append(ClipRef(p, label.lower(), machine, f"section_{int(section):02d}", split,  # type: ignore[arg-type]
                                 domain, parse_attributes(tail)))
            continue
        if _UNLABELLED_NAME.match(p.name) and split != "train":
            blind.append(p)
            continue
        odd.append(p.name)
    if odd:
        raise DatasetError(
            f"{folder}: {len(odd)} WAV file(s) not named {_NAMING} (cannot tell label and machine id), "
            f"e.g. {odd[0]}"
        )
    if blind and unlabelled == "error":
        raise DatasetError(
            f"{folder}: {len(blind)} clip(s) without a label in the name (DCASE evaluation-set names such as "
            f"{blind[0].name}; the labels are only in the organisers' ground truth): use the development set, "
            f"or rename them section_XX_<source|target>_test_<normal|anomaly>_NNNN.wav"
        )
    skipped += blind
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
    if any(name in names for name in _SPLIT_DIRS):
        return "dcase"
    for name, sub in names.items():
        if _MIMII_ID.match(name) and any((sub / lbl).is_dir() for lbl in _MIMII_LABELS):
            return "mimii"
    wavs = _wavs(folder)
    if any(_named(p.name) for p in wavs):
        return "flat"
    if folder.name.lower() in _SPLIT_DIRS and any(_UNLABELLED_NAME.match(p.name) for p in wavs):
        return "flat"  # an evaluation set's test folder on its own: reported as unlabelled, not as "no layout"
    return None


def _scan_machine(folder: Path, layout: str, split: Split | None, unlabelled: Unlabelled,
                  skipped: list[Path]) -> list[ClipRef]:
    machine = folder.name
    if layout == "flat" and folder.name.lower() in _SPLIT_DIRS:
        # <machine>/train, <machine>/test, <machine>/source_test, ... given on its own.
        sp, domain = _SPLIT_DIRS[folder.name.lower()]
        if split not in (None, sp):
            raise DatasetError(f"{folder}: split={split!r} requested from a {sp!r} folder")
        return _from_names(folder, folder.parent.name, sp, domain, unlabelled, skipped)
    if layout == "mimii_id":
        folder, only = folder.parent, folder.name.lower()
        machine, layout = folder.name, "mimii"
    else:
        only = None
    if layout == "dcase":
        clips: list[ClipRef] = []
        for sub in _dirs(folder):
            if sub.name.lower() not in _SPLIT_DIRS:
                continue
            sp, domain = _SPLIT_DIRS[sub.name.lower()]
            if split in (None, sp):
                clips += _from_names(sub, machine, sp, domain, unlabelled, skipped)
        return clips
    if split is not None:
        raise DatasetError(
            f"{folder}: split={split!r} requested, but this {layout.upper()} layout has no train/test folders"
        )
    if layout == "flat":
        return _from_names(folder, machine, None, None, unlabelled, skipped)
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
    unlabelled: Unlabelled = "skip",
) -> list[ClipRef]:
    """All labelled clips under ``root``, sorted by path.

    Args:
        root: a machine folder in a DCASE, MIMII or flat layout, or a folder of
            such machine folders.
        split: ``"train"`` or ``"test"`` to keep one DCASE split; ``None`` for all.
            Asking for a split of a layout without splits is an error.
        machine_ids: keep only these ids: ``"id_00"``, ``"section_00"``, or a
            bare ``"00"`` / ``0``, read as the one kind of id the data has
            (an error when it has both).
        unlabelled: ``"skip"`` (default) leaves out test clips whose names
            carry no label (DCASE evaluation sets); ``"error"`` refuses them.

    Returns:
        :class:`ClipRef` list, sorted by path (deterministic).

    Raises:
        DatasetError: ``root`` missing, in no layout, holding no labelled WAVs,
            oddly named WAVs, unlabelled ones with ``unlabelled="error"``, or
            no clip left after filtering.
    """
    root = Path(root)
    if split not in (None, "train", "test"):
        raise DatasetError(f"split must be 'train', 'test' or None, got {split!r}")
    if unlabelled not in ("skip", "error"):
        raise DatasetError(f"unlabelled must be 'skip' or 'error', got {unlabelled!r}")
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

    skipped: list[Path] = []
    clips = [c for folder, lay in machines for c in _scan_machine(folder, lay, split, unlabelled, skipped)]
    if not clips:
        where = f" in split {split!r}" if split else ""
        why = (f" ({len(skipped)} clip(s) without a label in the name, e.g. {skipped[0].name}: a DCASE "
               f"evaluation set, whose labels are only in the organisers' ground truth)") if skipped else ""
        raise DatasetError(f"{root}: no labelled WAV files{where}{why}" if skipped
                           else f"{root}: no WAV files{where}")
    if machine_ids is not None:
        available = {c.machine_id for c in clips}
        wanted = _resolve_machine_ids(machine_ids, available)
        clips = [c for c in clips if c.machine_id in wanted]
        if not clips:
            raise DatasetError(
                f"{root}: no clips for machine id(s) {', '.join(sorted(wanted))}; "
                f"available: {', '.join(sorted(available))}"
            )
    return sorted(clips)


def summarize(clips: Iterable[ClipRef]) -> dict[tuple[str, str, str | None, str], int]:
    """Clip counts keyed by ``(machine, machine_id, split, label)``, sorted."""
    counts = Counter((c.machine, c.machine_id, c.split, c.label) for c in clips)
    return dict(sorted(counts.items(), key=lambda kv: tuple("" if v is None else v for v in kv[0])))
