"""Detection metrics of an anomaly scorer, as the DCASE 2020 Task 2 baseline reports them.

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

A metric that is undefined for the data (AUC with only one class present,
precision with no clip decided anomalous, ...) is ``None`` and a sentence in
``notes`` says why; nothing raises.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import auc as _area, precision_recall_fscore_support, roc_auc_score, roc_curve

__all__ = ["MAX_FPR", "METRIC_KEYS", "partial_auc_raw", "binary_metrics", "evaluate_scores", "Scored"]

MAX_FPR = 0.1
# Keys averaged over machine ids (the DCASE "average" row).
METRIC_KEYS = ("auc", "pauc", "pauc_raw", "precision", "recall", "f1")


@dataclass(frozen=True)
class Scored:
    """One scored clip: its machine id, true label and anomaly score."""

    machine_id: str
    label: str  # "normal" | "anomaly"
    score: float


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


def evaluate_scores(clips: Sequence[Scored], threshold: float, max_fpr: float = MAX_FPR) -> dict[str, Any]:
    """Metrics over all clips, per machine id, and their mean over ids.

    DCASE 2020 Task 2 reports AUC and pAUC per machine id and their arithmetic
    mean per machine type; ``mean_over_ids`` is that mean for every metric in
    :data:`METRIC_KEYS`, taken over the ids that have both classes and where
    the metric is defined (``ids_used`` lists them per metric).

    Returns:
        The :func:`binary_metrics` keys for all clips pooled, plus
        ``per_id: {id: {...}}`` and ``mean_over_ids: {metric: value | None,
        "ids_used": {metric: [ids]}}``.
    """
    y = np.array([1 if c.label == "anomaly" else 0 for c in clips], dtype=int)
    s = np.array([c.score for c in clips], dtype=float)
    bad = {c.label for c in clips} - {"normal", "anomaly"}
    if bad:
        raise ValueError(f"unknown label(s) {sorted(bad)}: expected 'normal' or 'anomaly'")
    result = binary_metrics(y, s, threshold, max_fpr)
    ids = sorted({c.machine_id for c in clips})
    per_id: dict[str, Any] = {}
    for mid in ids:
        sel = np.array([c.machine_id == mid for c in clips])
        per_id[mid] = binary_metrics(y[sel], s[sel], threshold, max_fpr)
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
    one_class = sorted(set(ids) - set(both))
    notes = [f"left out of the mean over ids (only one class present): {', '.join(one_class)}"] if one_class else []
    undefined = sorted({mid for mid in both for key in METRIC_KEYS if mid not in used[key]})
    if undefined:
        notes.append(f"left out of the mean of an undefined metric: {', '.join(undefined)}")
    mean["notes"] = notes
    result["per_id"] = per_id
    result["mean_over_ids"] = mean
    return result
