"""What a threshold does: recall and false alarms at the bundle's threshold and at others (evaluation report).

A clip is flagged when its score (the mean of its window scores) exceeds the
threshold, as :func:`trainer.evaluate.score_clips` decides. For a bundle whose
threshold comes from a false-alarm budget (rule ``budget``,
:mod:`edge_monitor.model.threshold`) the table also shows the thresholds of
other budgets and the false alerts per day the bundle's tail model expects at
each threshold; for every bundle it shows the thresholds that would have
flagged at most 0, 5 and 10 % of these normal clips (measured here, so an
optimistic view of new audio).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from edge_monitor.model.model_json import ModelJson

__all__ = ["BUDGETS", "OperatingPoint", "operating_html", "operating_lines", "operating_points", "selection_summary"]

#: The budgets (false alerts per day) the table shows besides the bundle's own.
BUDGETS: tuple[float, ...] = (0.1, 0.3, 1.0, 3.0, 10.0)


@dataclass(frozen=True)
class OperatingPoint:
    """One row: a threshold and what it gives on the evaluated clips.

    Attributes:
        label: where the threshold comes from (``"bundle"``, ``"budget 0.3/day"``, ``"normals flagged <= 5 %"``).
        threshold: the threshold on the clip score.
        recall: share of anomalous clips above it.
        false_positive_rate: share of normal clips above it.
        alarms_per_day: false alerts a day the bundle's tail model expects (budget bundles), else ``None``.
    """

    label: str
    threshold: float
    recall: float
    false_positive_rate: float
    alarms_per_day: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _point(label: str, t: float, normal: np.ndarray, anomalous: np.ndarray, doc: ModelJson | None) -> OperatingPoint:
    budget = doc.threshold.budget if doc is not None else None
    return OperatingPoint(label, float(t), float(np.mean(anomalous > t)) if anomalous.size else float("nan"),
                          float(np.mean(normal > t)) if normal.size else float("nan"),
                          budget.alarms_per_day(t) if budget is not None else None)


def operating_points(scores: Sequence[float] | np.ndarray, labels: Sequence[str], threshold: float,
                     doc: ModelJson | None = None) -> list[OperatingPoint]:
    """The bundle's threshold, other budgets' (budget bundles) and the test normals' quantiles.

    Args:
        scores: ``(n,)`` clip scores.
        labels: ``"normal"`` / ``"anomaly"`` per clip.
        threshold: the bundle's (or the configured) threshold.
        doc: the bundle's model.json (for the budget tail model), or ``None``.
    """
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray([lab == "anomaly" for lab in labels])
    normal, anomalous = s[~y], s[y]
    rows = [_point("bundle", threshold, normal, anomalous, doc)]
    budget = doc.threshold.budget if doc is not None else None
    if budget is not None:
        rows += [_point(f"budget {f:g}/day", budget.threshold_for(f), normal, anomalous, doc) for f in BUDGETS
                 if not np.isclose(f, budget.false_alarms_per_day)]
    if normal.size:
        for share in (0.0, 0.05, 0.10):
            # The lowest threshold that flags at most this share of these normal clips.
            k = int(np.floor(share * normal.size))
            t = float(np.sort(normal)[normal.size - 1 - k])
            rows.append(_point(f"normals flagged <= {share:.0%}", t, normal, anomalous, doc))
    return rows


def selection_summary(doc: ModelJson | None) -> dict[str, Any] | None:
    """The bundle's detector choice for metrics.json: chosen weights and every candidate's figures."""
    if doc is None or doc.selection is None:
        return None
    sel = doc.selection
    return {"chosen": sel.weights, "fused_pseudo_auc": sel.fused_figure,
            "candidates": [m.to_dict() for m in sel.members], **({"fallback": sel.fallback} if sel.fallback else {})}


def operating_html(points: Sequence[OperatingPoint], doc: ModelJson | None) -> str:
    """The report's section: the detector choice with its pseudo-anomaly figures, then the threshold table."""
    import html

    e = html.escape
    parts: list[str] = []
    sel = doc.selection if doc is not None else None
    if sel is not None and sel.members:
        kinds = list(sel.members[0].figures)
        head = "".join(f"<th>{e(k.replace('_', ' '))}</th>" for k in kinds)
        rows = []
        for m in sel.members:
            cls = ' class="summary"' if m.weight > 0 else ""
            rows.append(f"<tr{cls}><td>{e(m.name)}</td><td>{e(m.description)}</td><td>{m.weight:.2f}</td>"
                        f"<td>{m.figure:.3f}</td>" + "".join(f"<td>{m.figures[k]:.2f}</td>" for k in kinds) + "</tr>")
        rows.append("<tr><td>fused</td><td>the chosen weights</td><td></td>"
                    f"<td>{sel.fused_figure:.3f}</td>"
                    + "".join(f"<td>{sel.fused_figures.get(k, float('nan')):.2f}</td>" for k in kinds) + "</tr>")
        parts.append(
            '<h2 id="detector-choice">Detector choice</h2>'
            f'<p class="sub">Chosen at training from the machine\'s own normal clips: {sel.n_normal} normal '
            f"windows scored out of fold and {sel.n_pseudo} pseudo-anomalies made from them. Figures are "
            "pseudo-AUCs (0.5: blind); a candidate with weight 0 is not in the bundle."
            + (f" The weights are the default ensemble's: {e(sel.fallback)}." if sel.fallback else "") + "</p>"
            "<table><thead><tr><th>candidate</th><th>detector</th><th>weight</th><th>mean</th>"
            f"{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>")
    body = []
    for p in points:
        cls = ' class="summary"' if p.label == "bundle" else ""
        per_day = "" if p.alarms_per_day is None else f"{p.alarms_per_day:.3g}"
        body.append(f"<tr{cls}><td>{e(p.label)}</td><td>{p.threshold:.4g}</td><td>{p.recall:.2f}</td>"
                    f"<td>{p.false_positive_rate:.3f}</td><td>{per_day}</td></tr>")
    thr = doc.threshold.describe() if doc is not None else ""
    parts.append(
        '<h2 id="operating-points">Recall and false alarms by threshold</h2>'
        f'<p class="sub">The bundle\'s threshold: {e(thr)}. Recall: anomalous clips above the threshold; FPR: '
        "normal clips above it; expected false alerts per day: the bundle's tail model at the alert rule it "
        "was fitted for (budget thresholds only).</p>"
        "<table><thead><tr><th>threshold from</th><th>threshold</th><th>recall</th><th>FPR</th>"
        f"<th>expected false alerts / day</th></tr></thead><tbody>{''.join(body)}</tbody></table>")
    return "".join(parts)


def operating_lines(metrics: dict[str, Any]) -> list[str]:
    """The terminal's view of ``metrics.json``'s ``detector_choice`` and ``operating_points``."""
    out: list[str] = []
    choice = metrics.get("detector_choice")
    if choice:
        chosen = ", ".join(f"{n} {w:.2f}" for n, w in choice["chosen"].items())
        figs = ", ".join(f"{c['name']} {c['pseudo_auc']:.3f}" for c in choice["candidates"])
        out.append(f"detectors chosen (weight): {chosen}; pseudo-AUC of each candidate: {figs}; "
                   f"fused {choice['fused_pseudo_auc']:.3f}")
    points = metrics.get("operating_points") or []
    if points:
        out.append(f"{'threshold from':<24}{'threshold':>10}{'recall':>8}{'FPR':>8}{'false alerts/day':>18}")
        for p in points:
            per_day = "" if p["alarms_per_day"] is None else f"{p['alarms_per_day']:.3g}"
            out.append(f"{p['label']:<24}{p['threshold']:>10.4g}{p['recall']:>8.2f}{p['false_positive_rate']:>8.3f}"
                       f"{per_day:>18}")
    return out
