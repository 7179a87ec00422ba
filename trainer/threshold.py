"""On-site calibration of a bundle's threshold; the threshold rules live in :mod:`edge_monitor.model.threshold`."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC
from pathlib import Path
from typing import Any

import numpy as np

from edge_monitor.model.model_json import BandStats, ScoreStats
from edge_monitor.model.threshold import (
    MIN_GAMMA_SCORES,
    RULES,
    ThresholdFit,
    fit_threshold,
)

__all__ = ["RULES", "ThresholdFit", "fit_threshold",
           "CalibrationError", "CalibrationResult", "calibrate_bundle", "find_wavs"]


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
                     progress: Callable[[str], None] | None = None) -> CalibrationResult:
    """Re-fit a bundle's threshold (and per-band error statistics) on normal on-site recordings.

    Every window of every WAV is scored with the runtime
    :class:`edge_monitor.model.scorer.Scorer`; the threshold is re-fitted with
    :func:`fit_threshold` (the bundle's rule and quantile unless given).
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
    assert doc is not None  # load_bundle always sets it
    old = doc.threshold
    rule = rule or (old.requested_rule if old.requested_rule in RULES else None) or (
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
    fit = fit_threshold(arr, quantile=quantile, rule=rule, source="calibration")
    if write:
        history = list(doc.extra.get("threshold_history", []))
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
