"""What to look at after the AUC: results by fault kind and by domain, and the clips the threshold got wrong.

Pure data and HTML; :mod:`trainer.evaluate` scores the clips and calls these.

A clip's *kind* is, from the most to the least specific source:

1. ``metadata.csv`` of the synthetic data (:func:`trainer.synth.generate_dataset`):
   its ``anomaly_kind`` (``loose_belt``, ``rail_damage`` ...), ``normal`` for normal clips;
2. a DCASE attribute file ``attributes_XX.csv`` next to the ``test/`` folder
   (``file_name,d1p,d1v,d2p,d2v,...``): ``d1p=d1v, d2p=d2v``;
3. the attributes in a DCASE 2021-2025 name (``..._anomaly_0001_pat_02.wav`` -> ``pat=02``);
4. otherwise ``normal`` for normal clips and :data:`UNKNOWN_KIND` for anomalous ones.

A DCASE attribute is the recording condition (both labels have one), so a row
of the kind table can hold normal and anomalous clips.
"""

from __future__ import annotations

import csv
import html
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from trainer.datasets import ClipRef
    from trainer.evaluate import ClipResult

__all__ = [
    "UNKNOWN_KIND",
    "GroupRow",
    "WrongClip",
    "clip_kinds",
    "group_rows",
    "wrong_clips",
    "review_json",
    "review_html",
]

UNKNOWN_KIND = "(kind not recorded)"
#: At most this many misses and as many false alarms are listed (and explained) in the report.
MAX_LISTED = 25


# --- kinds -----------------------------------------------------------------------


def _read_csv(path: Path) -> list[dict[str, str]]:
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error):
        return []  # a broken side file must not stop the evaluation: the names still give kinds


def _folder_kinds(folder: Path) -> dict[str, str]:
    """``{file name: kind}`` from ``folder/metadata.csv`` and ``folder/attributes_*.csv``."""
    kinds: dict[str, str] = {}
    for attr_file in sorted(folder.glob("attributes_*.csv")):
        for row in _read_csv(attr_file):
            name = Path(row.get("file_name") or "").name
            pairs = []
            for i in range(1, 10):
                key, value = row.get(f"d{i}p"), row.get(f"d{i}v")
                if key:
                    pairs.append(f"{key}={value}" if value not in (None, "") else key)
            if name and pairs:
                kinds[name] = ", ".join(pairs)
    for row in _read_csv(folder / "metadata.csv"):
        name = Path(row.get("file") or "").name
        if name and row.get("label"):
            kinds[name] = row.get("anomaly_kind") or ("normal" if row["label"] == "normal" else UNKNOWN_KIND)
    return kinds


def clip_kinds(clips: Iterable[ClipRef]) -> dict[Path, str]:
    """Each clip's kind (see the module doc), keyed by its path."""
    cache: dict[Path, dict[str, str]] = {}
    out: dict[Path, str] = {}
    for clip in clips:
        found = None
        for folder in (clip.path.parent, clip.path.parent.parent):
            if folder not in cache:
                cache[folder] = _folder_kinds(folder)
            found = cache[folder].get(clip.path.name)
            if found:
                break
        if not found and clip.attributes:
            found = ", ".join(f"{k}={v}" for k, v in clip.attributes)
        out[clip.path] = found or ("normal" if clip.label == "normal" else UNKNOWN_KIND)
    return out


# --- tables ------------------------------------------------------------------------


def _auc(anomalous: np.ndarray, normal: np.ndarray) -> float | None:
    """P(anomalous score > normal score), ties half (Mann-Whitney); ``None`` without both."""
    if not len(anomalous) or not len(normal):
        return None
    diff = anomalous[:, None] - normal[None, :]
    return float(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)


@dataclass(frozen=True)
class GroupRow:
    """One row of a kind or domain table.

    ``auc``: this row's anomalous clips against this row's normal clips, or
    against every normal clip when the row has none (a fault kind).
    """

    name: str
    n_normal: int
    false_alarms: int
    n_anomaly: int
    detected: int
    auc: float | None
    lowest_anomaly: float | None
    highest_normal: float | None


def group_rows(results: Sequence[ClipResult], key: Callable[[ClipResult], str | None]) -> list[GroupRow]:
    """One :class:`GroupRow` per value of ``key`` (``None``: left out), sorted by name with ``normal`` first."""
    every_normal = np.array([r.score for r in results if r.clip.label == "normal"])
    groups: dict[str, list[ClipResult]] = {}
    for r in results:
        k = key(r)
        if k is not None:
            groups.setdefault(k, []).append(r)
    rows = []
    for name in sorted(groups, key=lambda n: (n != "normal", n == UNKNOWN_KIND, n)):
        members = groups[name]
        normal = np.array([r.score for r in members if r.clip.label == "normal"])
        anomaly = np.array([r.score for r in members if r.clip.label == "anomaly"])
        rows.append(GroupRow(
            name=name, n_normal=len(normal),
            false_alarms=sum(1 for r in members if r.clip.label == "normal" and r.decision == "anomaly"),
            n_anomaly=len(anomaly),
            detected=sum(1 for r in members if r.clip.label == "anomaly" and r.decision == "anomaly"),
            auc=_auc(anomaly, normal if len(normal) else every_normal),
            lowest_anomaly=float(anomaly.min()) if len(anomaly) else None,
            highest_normal=float(normal.max()) if len(normal) else None))
    return rows


@dataclass(frozen=True)
class WrongClip:
    """A clip the threshold decided wrongly: a missed anomaly or a false alarm.

    ``window_*``: the clip's strongest window (index from 0, its fused score,
    the detector that saw most); ``explanation``: that window's explanation
    sentence, empty when nothing stands out or the bundle cannot explain.
    """

    result: ClipResult
    kind: str
    window_index: int
    window_score: float
    detector: str
    explanation: str

    @property
    def what(self) -> str:
        return "missed anomaly" if self.result.clip.label == "anomaly" else "false alarm"


#: ``explain(result) -> (window index, window score, detector, sentence)`` for one clip; ``None`` if unreadable.
Explain = Callable[["ClipResult"], "tuple[int, float, str, str] | None"]


def wrong_clips(results: Sequence[ClipResult], kinds: Mapping[Path, str], explain: Explain,
                limit: int = MAX_LISTED) -> tuple[list[WrongClip], list[WrongClip], int, int]:
    """``(misses, false_alarms, n_misses, n_false_alarms)`` at the threshold.

    Misses are listed from the lowest score (the clearest miss) up, false alarms
    from the highest down; at most ``limit`` of each are explained.
    """
    misses = sorted((r for r in results if r.clip.label == "anomaly" and r.decision == "normal"),
                    key=lambda r: r.score)
    alarms = sorted((r for r in results if r.clip.label == "normal" and r.decision == "anomaly"),
                    key=lambda r: -r.score)

    def one(r: ClipResult) -> WrongClip:
        found = explain(r)
        index, score, detector, text = found if found else (-1, float("nan"), "", "")
        return WrongClip(r, kinds.get(r.clip.path, UNKNOWN_KIND), index, score, detector, text)

    return [one(r) for r in misses[:limit]], [one(r) for r in alarms[:limit]], len(misses), len(alarms)


def _row_json(row: GroupRow) -> dict[str, Any]:
    return {"name": row.name, "n_normal": row.n_normal, "false_alarms": row.false_alarms,
            "n_anomaly": row.n_anomaly, "detected": row.detected, "auc": row.auc,
            "lowest_anomaly_score": row.lowest_anomaly, "highest_normal_score": row.highest_normal}


def _wrong_json(w: WrongClip) -> dict[str, Any]:
    r = w.result
    return {"path": str(r.clip.path), "group": r.group, "kind": w.kind, "domain": r.clip.domain, "score": r.score,
            "window": w.window_index, "window_score": w.window_score if w.window_index >= 0 else None,
            "detector": w.detector or None, "explanation": w.explanation or None}


def review_json(by_kind: Sequence[GroupRow], by_domain: Sequence[GroupRow], misses: Sequence[WrongClip],
                alarms: Sequence[WrongClip], n_misses: int, n_alarms: int) -> dict[str, Any]:
    """The review as ``metrics.json`` keys: ``by_kind``, ``by_domain``, ``misses``, ``false_alarms`` and counts."""
    return {"by_kind": [_row_json(r) for r in by_kind], "by_domain": [_row_json(r) for r in by_domain],
            "n_misses": n_misses, "misses": [_wrong_json(w) for w in misses],
            "n_false_alarms": n_alarms, "false_alarms": [_wrong_json(w) for w in alarms]}


# --- HTML ---------------------------------------------------------------------------


def _num(v: float | None, digits: int = 3) -> str:
    return "–" if v is None or not np.isfinite(v) else f"{v:.{digits}f}"


def _share(k: int, n: int) -> str:
    return "–" if n == 0 else f"{k} ({100 * k / n:.0f} %)"


def _group_table(rows: Sequence[GroupRow], first: str, table_id: str) -> str:
    e = html.escape
    head = (f"<tr><th>{e(first)}</th><th>normal clips</th><th>false alarms</th><th>anomalous clips</th>"
            "<th>detected</th><th>AUC</th><th>lowest anomalous score</th><th>highest normal score</th></tr>")
    body = "".join(
        f"<tr><td>{e(r.name)}</td><td>{r.n_normal or '–'}</td><td>{_share(r.false_alarms, r.n_normal)}</td>"
        f"<td>{r.n_anomaly or '–'}</td><td>{_share(r.detected, r.n_anomaly)}</td><td>{_num(r.auc)}</td>"
        f"<td>{_num(r.lowest_anomaly, 4)}</td><td>{_num(r.highest_normal, 4)}</td></tr>" for r in rows)
    return f'<table id="{table_id}" class="review"><thead>{head}</thead><tbody>{body}</tbody></table>'


def _wrong_table(items: Sequence[WrongClip], threshold: float, table_id: str) -> str:
    e = html.escape
    domains = any(w.result.clip.domain for w in items)
    head = ('<tr><th>clip</th><th class="txt">id</th><th class="txt">kind</th>'
            + ('<th class="txt">domain</th>' if domains else "")
            + '<th>clip score</th><th>minus threshold</th><th>strongest window (detector)</th>'
              '<th class="txt">explanation (that window)</th></tr>')
    body = []
    for w in items:
        r = w.result
        window = "–"
        if w.window_index >= 0:
            which = f"{w.window_index + 1} of {r.n_windows}: " if r.n_windows > 1 else ""
            window = f"{which}{w.window_score:.4g} ({e(w.detector)})"
        body.append(
            f'<tr><td class="txt">{e(r.clip.path.name)}</td><td class="txt">{e(r.group)}</td>'
            f'<td class="txt">{e(w.kind)}</td>'
            + (f'<td class="txt">{e(r.clip.domain or "–")}</td>' if domains else "")
            + f"<td>{r.score:.4g}</td><td>{r.score - threshold:+.3g}</td><td>{window}</td>"
              f'<td class="txt expl">{e(w.explanation or "nothing stands out")}</td></tr>')
    return f'<table id="{table_id}" class="review"><thead>{head}</thead><tbody>{"".join(body)}</tbody></table>'


def review_html(by_kind: Sequence[GroupRow], by_domain: Sequence[GroupRow], misses: Sequence[WrongClip],
                alarms: Sequence[WrongClip], n_misses: int, n_alarms: int, threshold: float) -> str:
    """The report's sections "By fault kind", "By domain" and "Misses and false alarms" (one HTML fragment)."""
    parts = ['<section id="by-kind"><h2>By fault kind</h2>']
    if by_kind and not all(r.name in ("normal", UNKNOWN_KIND) for r in by_kind):
        parts.append(_group_table(by_kind, "kind", "kind-table"))
        parts.append('<p class="sub">Kind: the synthetic data\'s metadata.csv, a DCASE attributes_XX.csv, or the '
                     "attributes in the file names (a recording condition: both labels have one). Detected and "
                     "false alarms at the threshold; AUC: the row's anomalous clips against the row's normal "
                     "clips, or against every normal clip when the row has none.</p>")
    else:
        parts.append('<p class="sub">The clips carry no fault kind (no metadata.csv, DCASE attribute file or '
                     "attributes in the names).</p>")
    parts.append("</section>")
    if by_domain:
        parts.append('<section id="by-domain"><h2>By domain</h2>')
        parts.append(_group_table(by_domain, "domain", "domain-table"))
        parts.append('<p class="sub">AUC: the domain\'s normal clips against its own anomalous clips.</p></section>')
    parts.append(f'<section id="wrong"><h2>Misses and false alarms at the threshold {threshold:.4g}</h2>')
    for title, items, n, table_id, order in (
            ("Missed anomalies", misses, n_misses, "misses", "lowest score first"),
            ("False alarms", alarms, n_alarms, "false-alarms", "highest score first")):
        shown = f", the first {len(items)} shown" if n > len(items) else ""
        parts.append(f"<h3>{title}: {n}{shown}</h3>")
        if items:
            parts.append(_wrong_table(items, threshold, table_id))
            parts.append(f'<p class="sub">{order}; every clip\'s score is in scores.csv.</p>')
        else:
            parts.append(f'<p class="sub" id="{table_id}-none">None.</p>')
    parts.append('<p class="sub">Clip score: the mean of the clip\'s window scores, the one the threshold '
                 "applies to. Strongest window: its score and the detector that saw most; the explanation is "
                 "what the alert would have said about it.</p></section>")
    return "\n".join(parts)
