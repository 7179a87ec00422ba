"""Detection metrics of an anomaly scorer, as DCASE Task 2 reports them (2020, and 2022-2025 domains).

Anomaly is the positive class (label 1), normal the negative class (label 0).
Scores are reconstruction errors: higher means more anomalous. A clip is
*decided* anomalous when ``score > threshold`` (the runtime's rule).

All metrics come from scikit-learn:

- ``auc``: :func:`sklearn.metrics.roc_auc_score`.
- ``pauc``: ``roc_auc_score(y, s, max_fpr=0.1)``, exactly as the DCASE 2020
  baseline computes it. scikit-learn applies the McClish standardisation to the
  partial area ``A`` under the ROC for FPR in ``[0, 0.1]``::

      pauc = 0.5 * (1 + (A - 0.1**2 / 2) / (0.1 - 0.1**2 / 2))

  so a random scorer gets 0.5 and a perfect one 1.0, and our numbers compare
  with published DCASE results.
- ``pauc_raw``: the plain partial area ``A / 0.1`` (random scorer: 0.05,
  perfect: 1.0), the "pAUC" of the DCASE 2020 task description's formula.
- ``precision``, ``recall``, ``f1`` of the anomaly class at the threshold.

With domains (DCASE 2021-2025 names, :attr:`Scored.domain`), as the official
DCASE 2022-2025 evaluators compute them (``dcase202{2,3,4,5}_task2_evaluator.py``):

- ``auc_source`` / ``auc_target``: ``roc_auc_score`` over the normal clips of
  that domain **and every anomalous clip of the section, of both domains**
  (the evaluators select ``(domain == d) | (label == anomaly)``). A detector
  that merely scores target-domain sounds higher gains nothing: target normals
  are ranked against the source anomalies too.
- ``pauc``: unchanged, over all clips of the section, both domains.
- ``official_score``: the harmonic mean of ``auc_source``, ``auc_target`` and
  ``pauc``, each floored at ``sys.float_info.epsilon`` as the evaluators do.
  Over several sections (``mean_over_ids``) it is the harmonic mean of all
  their values together (every section's AUC source, AUC target and pAUC),
  the evaluators' "official score", not a mean of per-section scores.

DCASE 2021 used another rule (AUC and pAUC per domain from that domain's clips
only, and a harmonic mean over those); it is not computed here.

A metric that is undefined for the data (AUC with only one class present,
precision with no clip decided anomalous, ...) is ``None`` and a sentence in
``notes`` says why; nothing raises.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import auc as _area
from sklearn.metrics import precision_recall_fscore_support, roc_auc_score, roc_curve

__all__ = ["MAX_FPR", "METRIC_KEYS", "DOMAINS", "partial_auc_raw", "binary_metrics", "domain_metrics",
           "official_score", "evaluate_scores", "Scored"]

MAX_FPR = 0.1
# Keys averaged over machine ids (the DCASE "average" row).
METRIC_KEYS = ("auc", "pauc", "pauc_raw", "precision", "recall", "f1")
DOMAINS = ("source", "target")
# The evaluators' floor before the harmonic mean: an AUC of 0 gives a score near 0, not an error.
_EPS = sys.float_info.epsilon


@dataclass(frozen=True)
class Scored:
    """One scored clip: its machine id (or section), true label, anomaly score and domain."""

    machine_id: str
    label: str  # "normal" | "anomaly"
    score: float
    domain: str | None = None  # "source" | "target"; None where the data has no domains


def partial_auc_raw(y_true: np.ndarray, scores: np.ndarray, max_fpr: float = MAX_FPR) -> float:
    """Area under the ROC for FPR in ``[0, max_fpr]``, divided by ``max_fpr``.

    The ROC is interpolated linearly at ``max_fpr`` (as scikit-learn does for
    ``roc_auc_score(max_fpr=...)``), so the result is the mean TPR over that FPR
    range: 0 for a scorer that ranks every anomaly below every normal, 1 for a
    perfect one, ``max_fpr / 2`` for chance.

    Args:
        y_true: 0 (normal) / 1 (anomaly), shape ``(n,)``; both classes present.
        scores: anomaly scores, shape ``(n,)``.
        max_fpr: upper end of the false-positive-rate range, in (0, 1].
    """
    fpr, tpr, _ = roc_curve(y_true, scores)
    stop = int(np.searchsorted(fpr, max_fpr, side="right"))
    if stop >= len(fpr):  # the curve ends at FPR 1 <= max_fpr
        return float(_area(fpr, tpr) / max_fpr)
    tpr_at = float(np.interp(max_fpr, [fpr[stop - 1], fpr[stop]], [tpr[stop - 1], tpr[stop]]))
    x = np.append(fpr[:stop], max_fpr)
    y = np.append(tpr[:stop], tpr_at)
    return float(_area(x, y) / max_fpr)


def _none_if_nan(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def binary_metrics(y_true: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray,
                   threshold: float, max_fpr: float = MAX_FPR) -> dict[str, Any]:
    """AUC, pAUC (both kinds), precision, recall and F1 of one set of clips.

    Args:
        y_true: 1 for anomaly, 0 for normal, shape ``(n,)``.
        scores: anomaly scores (reconstruction MSE), shape ``(n,)``.
        threshold: a clip is decided anomalous when ``score > threshold``.
        max_fpr: FPR limit of the partial AUC.

    Returns:
        ``{"auc", "pauc", "pauc_raw", "precision", "recall", "f1", "threshold",
        "n_normal", "n_anomaly", "tp", "fp", "tn", "fn", "notes"}``; undefined
        metrics are ``None`` with a sentence in ``notes`` (a list of str).
    """
    y = np.asarray(y_true, dtype=int)
    s = np.asarray(scores, dtype=float)
    if y.shape != s.shape or y.ndim != 1:
        raise ValueError(f"labels {y.shape} and scores {s.shape} must be 1-D and of equal length")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 (normal) or 1 (anomaly)")
    n_anomaly = int(y.sum())
    n_normal = int(y.size - n_anomaly)
    decided = (s > threshold).astype(int)
    out: dict[str, Any] = {
        "auc": None, "pauc": None, "pauc_raw": None,
        "precision": None, "recall": None, "f1": None,
        "threshold": float(threshold), "n_normal": n_normal, "n_anomaly": n_anomaly,
        "tp": int(((decided == 1) & (y == 1)).sum()), "fp": int(((decided == 1) & (y == 0)).sum()),
        "tn": int(((decided == 0) & (y == 0)).sum()), "fn": int(((decided == 0) & (y == 1)).sum()),
        "notes": [],
    }
    notes: list[str] = out["notes"]
    if y.size == 0:
        notes.append("no clips: every metric is undefined")
        return out
    if n_normal and n_anomaly:
        out["auc"] = float(roc_auc_score(y, s))
        out["pauc"] = float(roc_auc_score(y, s, max_fpr=max_fpr))
        out["pauc_raw"] = partial_auc_raw(y, s, max_fpr)
    else:
        only = "normal" if n_anomaly == 0 else "anomalous"
        notes.append(f"only {only} clips: AUC and pAUC are undefined")

    # zero_division=nan marks "undefined" instead of silently reporting 0.
    p, r, f, _ = precision_recall_fscore_support(
        y, decided, labels=[1], average="binary", pos_label=1, zero_division=np.nan)
    out["precision"], out["recall"], out["f1"] = _none_if_nan(p), _none_if_nan(r), _none_if_nan(f)
    if out["precision"] is None:
        notes.append("no clip scored above the threshold: precision is undefined")
    if out["recall"] is None:
        notes.append("no anomalous clips: recall is undefined")
    return out


def official_score(values: Sequence[float | None]) -> float | None:
    """Harmonic mean of AUCs and pAUCs, each floored at machine epsilon; ``None`` if any is ``None``."""
    if not values or any(v is None for v in values):
        return None
    from scipy.stats import hmean

    return float(hmean(np.maximum(np.asarray(values, dtype=float), _EPS)))


def domain_metrics(y_true: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray,
                   domains: Sequence[str | None], pauc: float | None) -> dict[str, Any]:
    """AUC source, AUC target and the official score of one section (DCASE 2022-2025 rule).

    Args:
        y_true: 1 anomaly / 0 normal, shape ``(n,)``.
        scores: anomaly scores, shape ``(n,)``.
        domains: ``"source"`` / ``"target"`` per clip (``None``: no domain).
        pauc: the section's pAUC over both domains (:func:`binary_metrics`).

    Returns:
        ``{"auc_source", "auc_target", "official_score", "n_normal_source",
        "n_anomaly_source", "n_normal_target", "n_anomaly_target", "notes"}``;
        all ``None`` / 0 without a note when no clip has a domain.
    """
    y = np.asarray(y_true, dtype=int)
    s = np.asarray(scores, dtype=float)
    d = np.array([v if v is not None else "" for v in domains], dtype=object)
    bad = set(d.tolist()) - {"", *DOMAINS}
    if bad:
        raise ValueError(f"unknown domain(s) {sorted(bad)}: expected 'source' or 'target'")
    out: dict[str, Any] = {"auc_source": None, "auc_target": None, "official_score": None}
    for dom in DOMAINS:
        out[f"n_normal_{dom}"] = int(((d == dom) & (y == 0)).sum())
        out[f"n_anomaly_{dom}"] = int(((d == dom) & (y == 1)).sum())
    notes: list[str] = []
    out["notes"] = notes
    if not (d != "").any():
        return out
    if (d == "").any():
        notes.append(f"{int((d == '').sum())} clip(s) without a domain: AUC source/target and the official "
                     "score are undefined")
        return out
    n_anomaly = int(y.sum())
    if n_anomaly == 0 or n_anomaly == y.size:
        return out  # one class only: binary_metrics already says why AUC is undefined
    for dom in DOMAINS:
        # DCASE 2022-2025: this domain's normals against every anomaly of the section.
        sel = (d == dom) | (y == 1)
        n_norm = out[f"n_normal_{dom}"]
        if n_norm:
            out[f"auc_{dom}"] = float(roc_auc_score(y[sel], s[sel]))
        else:
            notes.append(f"no normal {dom}-domain clips: AUC {dom} and the official score are undefined")
    out["official_score"] = official_score([out["auc_source"], out["auc_target"], pauc])
    return out


def evaluate_scores(clips: Sequence[Scored], threshold: float, max_fpr: float = MAX_FPR) -> dict[str, Any]:
    """Metrics over all clips, per machine id, and their mean over ids.

    DCASE 2020 Task 2 reports AUC and pAUC per machine id and their arithmetic
    mean per machine type; ``mean_over_ids`` is that mean for every metric in
    :data:`METRIC_KEYS`, taken over the ids that have both classes and where
    the metric is defined (``ids_used`` lists them per metric).

    With domains, the pooled result and every ``per_id`` entry also carry the
    :func:`domain_metrics` keys, and ``mean_over_ids`` gains ``auc_source``,
    ``auc_target`` (arithmetic means) and ``official_score`` (the harmonic mean
    of every id's AUC source, AUC target and pAUC: DCASE's official score),
    over the ids listed in ``official_ids_used`` (those where all three are
    defined).

    Returns:
        The :func:`binary_metrics` and :func:`domain_metrics` keys for all
        clips pooled, plus ``domains`` (the domains present), ``per_id: {id:
        {...}}`` and ``mean_over_ids: {metric: value | None, "ids_used":
        {metric: [ids]}, "official_ids_used": [ids]}``.
    """
    y = np.array([1 if c.label == "anomaly" else 0 for c in clips], dtype=int)
    s = np.array([c.score for c in clips], dtype=float)
    bad = {c.label for c in clips} - {"normal", "anomaly"}
    if bad:
        raise ValueError(f"unknown label(s) {sorted(bad)}: expected 'normal' or 'anomaly'")
    d = [c.domain for c in clips]

    def both_kinds(sel: np.ndarray) -> dict[str, Any]:
        m = binary_metrics(y[sel], s[sel], threshold, max_fpr)
        dm = domain_metrics(y[sel], s[sel], [v for v, keep in zip(d, sel) if keep], m["pauc"])
        m["notes"] = m["notes"] + dm.pop("notes")
        m.update(dm)
        return m

    result = both_kinds(np.ones(len(clips), dtype=bool))
    result["domains"] = sorted({v for v in d if v is not None})
    ids = sorted({c.machine_id for c in clips})
    per_id: dict[str, Any] = {}
    for mid in ids:
        per_id[mid] = both_kinds(np.array([c.machine_id == mid for c in clips], dtype=bool))
    mean: dict[str, Any] = {}
    used: dict[str, list[str]] = {}
    # Only ids with both classes: an id without anomalies has a "precision" of 0 whenever a
    # normal clip is flagged, which says nothing about detection and would drag the mean.
    both = [mid for mid, m in per_id.items() if m["n_normal"] and m["n_anomaly"]]
    for key in METRIC_KEYS:
        vals = [(mid, per_id[mid][key]) for mid in both if per_id[mid][key] is not None]
        used[key] = [mid for mid, _ in vals]
        mean[key] = float(np.mean([v for _, v in vals])) if vals else None
    mean["ids_used"] = used
    # DCASE's official score: one harmonic mean over every section's AUC source, AUC target and pAUC.
    official = [mid for mid in both
                if all(per_id[mid][k] is not None for k in ("auc_source", "auc_target", "pauc"))]
    for key in ("auc_source", "auc_target"):
        mean[key] = float(np.mean([per_id[mid][key] for mid in official])) if official else None
    mean["official_score"] = official_score(
        [per_id[mid][k] for k in ("auc_source", "auc_target", "pauc") for mid in official]) if official else None
    mean["official_ids_used"] = official
    one_class = sorted(set(ids) - set(both))
    notes = [f"left out of the mean over ids (only one class present): {', '.join(one_class)}"] if one_class else []
    undefined = sorted({mid for mid in both for key in METRIC_KEYS if mid not in used[key]})
    if undefined:
        notes.append(f"left out of the mean of an undefined metric: {', '.join(undefined)}")
    mean["notes"] = notes
    result["per_id"] = per_id
    result["mean_over_ids"] = mean
    return result
