"""On-site calibration of a bundle's threshold; the threshold rules live in :mod:`edge_monitor.model.threshold`."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC
from pathlib import Path
from typing import Any

import numpy as np

from edge_monitor.model.model_json import BandStats, ModelJson, ScoreStats
from edge_monitor.model.threshold import (
    DEFAULT_FALSE_ALARMS_PER_DAY,
    MIN_GAMMA_SCORES,
    RULES,
    AlertBudget,
    ThresholdFit,
    fit_budget_threshold,
    fit_threshold,
    window_rate,
)

__all__ = ["RULES", "ThresholdFit", "fit_threshold",
           "CalibrationError", "CalibrationResult", "calibrate_bundle", "find_wavs", "move_to_budget"]


# --- on-site calibration -----------------------------------------------------------


class CalibrationError(Exception):
    """Calibration cannot run (no WAVs, too few windows); one readable line."""


@dataclass
class CalibrationResult:
    """What :func:`calibrate_bundle` did."""

    old_threshold: float
    new: ThresholdFit
    n_files: int
    n_windows: int
    above_old: int
    scores: np.ndarray
    model_json: Any


def _history(doc: ModelJson) -> list[object]:
    """The earlier thresholds kept in ``model.json`` (``threshold_history``), oldest first."""
    raw = doc.extra.get("threshold_history")
    return list(raw) if isinstance(raw, list) else []


def find_wavs(inputs: Sequence[str | Path]) -> list[Path]:
    """WAV files named, plus every ``*.wav`` under named folders (recursive, sorted)."""
    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(q for q in p.rglob("*") if q.is_file() and q.suffix.lower() == ".wav")
            if not found:
                raise CalibrationError(f"{p}: no .wav files in this folder")
            out += found
        elif p.is_file():
            out.append(p)
        else:
            raise CalibrationError(f"{p}: no such file or folder")
    return out


def calibrate_bundle(bundle_dir: str | Path, inputs: Sequence[str | Path], rule: str | None = None,
                     quantile: float | None = None, num_threads: int = 1, write: bool = True,
                     progress: Callable[[str], None] | None = None, false_alarms_per_day: float | None = None,
                     alert_rule: tuple[int, int, float] | None = None) -> CalibrationResult:
    """Re-fit a bundle's threshold (and per-band error statistics) on normal on-site recordings.

    Every window of every WAV is scored with the runtime
    :class:`edge_monitor.model.scorer.Scorer`; the threshold is re-fitted with
    :func:`fit_threshold` (the bundle's rule and quantile unless given), or,
    for rule ``budget`` (the bundle's, or asked for with
    ``false_alarms_per_day``), with :func:`fit_budget_threshold` for that
    budget and ``alert_rule`` ``(k, n, hop_seconds)`` (the bundle's unless given).
    ``model.json`` is rewritten atomically with the new ``threshold`` (source
    ``"calibration"``), ``calibration_scores`` (their distribution),
    ``band_error`` (and ``band_deviation``) from the calibration windows, and
    the previous threshold appended to ``threshold_history``. For a bundle of
    several detectors the threshold applies to the fused score; the fusion's
    normal statistics stay as trained. ``model.tflite`` and ``detectors.npz``
    are not touched, so the checksums in ``model.json`` stay valid.
    """
    from datetime import datetime

    from edge_monitor.model.bundle import load_bundle, write_model_json
    from edge_monitor.model.scorer import Scorer

    bundle = load_bundle(bundle_dir)
    doc = bundle.doc
    old = doc.threshold
    rule = rule or (old.requested_rule if old.requested_rule in (*RULES, "budget") else None) or (
        old.rule if old.rule in RULES else "gamma")
    quantile = quantile if quantile is not None else (old.quantile if math.isfinite(old.quantile) else 0.99)
    files = find_wavs(inputs)
    scorer = Scorer(bundle, num_threads=num_threads)
    scores: list[float] = []
    bands: dict[str, list[np.ndarray]] = {"recon": [], "mean": []}  # by the view of the detector that fired
    for i, path in enumerate(files, start=1):
        clip = scorer.score_file(path)
        scores += [w.score for w in clip.windows]
        for w in clip.windows:
            bands[w.reference].append(w.band_error)
        if progress and (i % 50 == 0 or i == len(files)):
            progress(f"scored {i}/{len(files)} files ({len(scores)} windows)")
    arr = np.asarray(scores)
    if arr.size < 2:
        raise CalibrationError(f"only {arr.size} window(s) of {bundle.features.window_seconds:g} s in "
                               f"{len(files)} file(s); record at least 2 windows of normal sound (more is better: "
                               f"{MIN_GAMMA_SCORES}+ for the gamma fit)")
    ob = old.budget
    if false_alarms_per_day is not None or (rule == "budget" and ob is not None):
        budget = false_alarms_per_day if false_alarms_per_day is not None else (
            ob.false_alarms_per_day if ob is not None else DEFAULT_FALSE_ALARMS_PER_DAY)
        k, n, hop = alert_rule or ((ob.k, ob.n, ob.hop_seconds) if ob is not None else (2, 3, 10.0))
        try:
            fit = fit_budget_threshold(arr, budget, k, n, hop, source="calibration")
        except ValueError as exc:
            raise CalibrationError(f"cannot fit the false-alarm budget on these windows: {exc}") from None
    else:
        fit = fit_threshold(arr, quantile=quantile, rule=rule if rule in RULES else "gamma", source="calibration")
    if write:
        history = _history(doc)
        history.append({**old.to_dict(), "replaced": datetime.now(UTC).isoformat(timespec="seconds")})
        calibration = ScoreStats.of(arr, source="calibration")
        calibration = replace(calibration, extra={"n_files": len(files)})
        # Per-band statistics of the windows each view explained (a view no window used keeps its own).
        stats = {ref: BandStats.of(np.asarray(b), source="calibration") for ref, b in bands.items() if len(b) >= 2}
        new_doc = replace(doc, threshold=fit, calibration_scores=calibration,
                          band_error=stats.get("recon", doc.band_error),
                          band_deviation=stats.get("mean", doc.band_deviation),
                          extra=doc.extra | {"threshold_history": history})
        target = write_model_json(bundle.path, new_doc)
    else:
        target = bundle.path / "model.json"
    return CalibrationResult(old_threshold=bundle.threshold, new=fit, n_files=len(files), n_windows=int(arr.size),
                             above_old=int((arr > bundle.threshold).sum()), scores=arr, model_json=target)


def move_to_budget(bundle_dir: str | Path, false_alarms_per_day: float = DEFAULT_FALSE_ALARMS_PER_DAY,
                   alert_rule: tuple[int, int, float] | None = None, write: bool = True) -> CalibrationResult:
    """Move a ``budget`` bundle's threshold to another false-alarm budget, without recordings.

    The tail model fitted when the threshold was (``threshold.budget``:
    training's out-of-fold scores, or the last calibration's) gives the
    threshold of the new budget and alert rule (``(k, n, hop_seconds)``, the
    bundle's unless given). Recordings of the site, when there are some,
    are better: :func:`calibrate_bundle` with ``false_alarms_per_day``.

    Raises:
        CalibrationError: the bundle's threshold has no budget tail model (an older rule).
    """
    from datetime import datetime

    from edge_monitor.model.bundle import load_bundle, write_model_json

    bundle = load_bundle(bundle_dir)
    doc = bundle.doc
    old = doc.threshold
    if old.budget is None:
        raise CalibrationError(f"{bundle.path / 'model.json'}: the threshold ({old.rule} rule) has no false-alarm "
                               f"budget to move; give normal recordings of the site to re-fit it")
    k, n, hop = alert_rule or (old.budget.k, old.budget.n, old.budget.hop_seconds)
    try:
        rate = window_rate(false_alarms_per_day, k, n, hop)
    except ValueError as exc:
        raise CalibrationError(str(exc)) from None
    budget = AlertBudget(false_alarms_per_day=float(false_alarms_per_day), k=k, n=n, hop_seconds=float(hop),
                         window_rate=rate, sigma=old.budget.sigma, share_positive=old.budget.share_positive)
    fit = replace(old, value=budget.threshold_for(false_alarms_per_day), quantile=1.0 - rate, budget=budget)
    target = bundle.path / "model.json"
    if write:
        history = _history(doc)
        history.append({**old.to_dict(), "replaced": datetime.now(UTC).isoformat(timespec="seconds")})
        new_doc = replace(doc, threshold=fit, extra=doc.extra | {"threshold_history": history})
        target = write_model_json(bundle.path, new_doc)
    return CalibrationResult(old_threshold=old.value, new=fit, n_files=0, n_windows=0, above_old=0,
                             scores=np.empty(0), model_json=target)
