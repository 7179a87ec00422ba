"""Threshold rules: from scores of normal windows to the score above which a window is anomalous.

The default rule (``gamma``): fit a gamma distribution to the normal window
scores by maximum likelihood (``scipy.stats.gamma.fit``) and take its
``quantile`` (0.99 by default) — the DCASE 2020 baseline does the same with
0.9. Reconstruction MSEs are positive and right-skewed, which a gamma fits
well, and a fitted quantile is steadier than an empirical 99th percentile of a
few dozen scores. When the fit fails or gives something implausible (not
finite, or below the median of the scores) or there are fewer than
:data:`MIN_GAMMA_SCORES` scores, the rule falls back to the
empirical ``quantile`` percentile and says so (``rule: "percentile"``).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

__all__ = ["RULES", "ThresholdFit", "fit_threshold", "score_distribution", "band_error_stats",
           "CalibrationError", "CalibrationResult", "calibrate_bundle", "find_wavs"]

RULES = ("gamma", "percentile")

#: Fewer scores than this make a three-parameter fit meaningless: use the percentile.
MIN_GAMMA_SCORES = 10

#: Percentiles recorded in the score distribution of model.json.
PERCENTILES = (1, 5, 25, 50, 75, 90, 95, 99)


@dataclass(frozen=True)
class ThresholdFit:
    """A threshold and how it was chosen (stored as ``threshold`` in model.json).

    Attributes:
        value: the threshold on the window score (reconstruction MSE).
        rule: ``"gamma"`` or ``"percentile"`` (what was actually used).
        quantile: the quantile of the normal-score distribution, e.g. 0.99.
        n_scores: how many normal window scores it was fitted on.
        source: ``"validation"`` (training) or ``"calibration"`` (on-site normals).
        requested_rule: the rule asked for (differs from ``rule`` after a fallback).
        gamma: ``{"a", "loc", "scale"}`` when the gamma fit was used.
        note: why a fallback happened, if it did.
    """

    value: float
    rule: str
    quantile: float
    n_scores: int
    source: str = "validation"
    requested_rule: str = "gamma"
    gamma: dict[str, float] = field(default_factory=dict)
    note: str = ""

    def describe(self) -> str:
        """One line, e.g. ``gamma fit 0.99 quantile of 40 validation scores``."""
        what = "gamma fit" if self.rule == "gamma" else "empirical"
        return f"{what} {self.quantile:g} quantile of {self.n_scores} {self.source} window scores"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if not d["gamma"]:
            d.pop("gamma")
        if not d["note"]:
            d.pop("note")
        d["description"] = self.describe()
        return d


def _gamma_quantile(scores: np.ndarray, quantile: float) -> tuple[float, dict[str, float]]:
    from scipy import stats

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        candidates = []
        try:
            candidates.append(stats.gamma.fit(scores))  # free location, as the DCASE baseline
        except Exception:  # noqa: BLE001 - scipy raises several kinds on degenerate data
            pass
        try:
            candidates.append(stats.gamma.fit(scores, floc=0.0))
        except Exception:  # noqa: BLE001
            pass
    median = float(np.median(scores))
    for a, loc, scale in candidates:
        value = float(stats.gamma.ppf(quantile, a, loc=loc, scale=scale))
        # A plausible fit puts the threshold above the bulk of the normals and not
        # absurdly far beyond the largest one.
        if math.isfinite(value) and median < value < 10 * float(scores.max()) + 1e-12:
            return value, {"a": float(a), "loc": float(loc), "scale": float(scale)}
    raise ValueError("gamma fit failed or was implausible")


def fit_threshold(scores: np.ndarray, quantile: float = 0.99, rule: str = "gamma",
                  source: str = "validation") -> ThresholdFit:
    """Choose a threshold from normal window scores.

    Args:
        scores: reconstruction MSEs of normal windows (at least 2).
        quantile: in (0, 1); the share of normal windows expected below the threshold.
        rule: ``"gamma"`` (default, with percentile fallback) or ``"percentile"``.
        source: recorded with the result (``"validation"`` or ``"calibration"``).
    """
    if rule not in RULES:
        raise ValueError(f"rule must be one of {', '.join(RULES)}, got {rule!r}")
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"quantile must be in (0, 1), got {quantile}")
    arr = np.asarray(scores, dtype=np.float64).ravel()
    arr = arr[np.isfinite(arr)]
    if arr.size < 2:
        raise ValueError(f"need at least 2 finite normal scores to fit a threshold, got {arr.size}")
    note = ""
    if rule == "gamma":
        if arr.size < MIN_GAMMA_SCORES:
            note = f"{arr.size} scores are too few for a gamma fit (need {MIN_GAMMA_SCORES})"
        elif np.ptp(arr) <= 0:
            note = "all scores equal; gamma fit impossible"
        else:
            try:
                value, params = _gamma_quantile(arr, quantile)
                return ThresholdFit(value=value, rule="gamma", quantile=quantile, n_scores=int(arr.size),
                                    source=source, requested_rule=rule, gamma=params)
            except ValueError as exc:
                note = str(exc)
    value = float(np.percentile(arr, 100.0 * quantile))
    if value <= 0:
        value = float(arr.max()) * 1.01 + 1e-9  # a zero threshold would flag every window
    return ThresholdFit(value=value, rule="percentile", quantile=quantile, n_scores=int(arr.size),
                        source=source, requested_rule=rule, note=note)


def score_distribution(scores: np.ndarray) -> dict[str, Any]:
    """Mean, std, min, max and percentiles of window scores (model.json ``validation_scores``)."""
    arr = np.asarray(scores, dtype=np.float64).ravel()
    return {
        "n": int(arr.size),
        "mean": float(arr.mean()),
        "std": float(arr.std()),
        "min": float(arr.min()),
        "max": float(arr.max()),
        "percentiles": {str(p): float(np.percentile(arr, p)) for p in PERCENTILES},
    }


def band_error_stats(band_errors: np.ndarray, source: str = "validation") -> dict[str, Any]:
    """Per-mel-band error statistics from ``(n_windows, n_mels)`` band errors.

    Returns ``{"mean", "std", "p95", "p99"}`` lists of ``n_mels`` floats plus
    ``source`` and ``n``: what ``edge_monitor.explain`` compares a window against.
    """
    arr = np.asarray(band_errors, dtype=np.float64)
    return {
        "source": source,
        "n": int(arr.shape[0]),
        "mean": arr.mean(axis=0).tolist(),
        "std": arr.std(axis=0).tolist(),
        "p95": np.percentile(arr, 95, axis=0).tolist(),
        "p99": np.percentile(arr, 99, axis=0).tolist(),
    }


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
    :class:`edge_monitor.scorer.Scorer`; the threshold is re-fitted with
    :func:`fit_threshold` (the bundle's rule and quantile unless given).
    ``model.json`` is rewritten atomically with the new ``threshold`` (source
    ``"calibration"``), ``calibration_scores`` (their distribution),
    ``band_error`` from the calibration windows, and the previous threshold
    appended to ``threshold_history``. ``model.tflite`` is not touched, so the
    checksum in ``model.json`` stays valid.
    """
    from datetime import datetime, timezone

    from edge_monitor.bundle import load_bundle, write_model_json
    from edge_monitor.scorer import Scorer

    bundle = load_bundle(bundle_dir)
    old = bundle.meta.get("threshold", {})
    rule = rule or old.get("requested_rule") or old.get("rule") or "gamma"
    quantile = quantile if quantile is not None else float(old.get("quantile", 0.99))
    files = find_wavs(inputs)
    scorer = Scorer(bundle, num_threads=num_threads)
    scores, bands = [], []
    for i, path in enumerate(files, start=1):
        clip = scorer.score_file(path)
        scores += [w.score for w in clip.windows]
        bands += [w.band_error for w in clip.windows]
        if progress and (i % 50 == 0 or i == len(files)):
            progress(f"scored {i}/{len(files)} files ({len(scores)} windows)")
    arr = np.asarray(scores)
    if arr.size < 2:
        raise CalibrationError(f"only {arr.size} window(s) of {bundle.features.window_seconds:g} s in "
                               f"{len(files)} file(s); record at least 2 windows of normal sound (more is better: "
                               f"{MIN_GAMMA_SCORES}+ for the gamma fit)")
    fit = fit_threshold(arr, quantile=quantile, rule=rule, source="calibration")
    meta = dict(bundle.meta)
    if write:
        history = list(meta.get("threshold_history", []))
        history.append({**old, "replaced": datetime.now(timezone.utc).isoformat(timespec="seconds")})
        meta["threshold_history"] = history
        meta["threshold"] = fit.to_dict()
        meta["calibration_scores"] = score_distribution(arr) | {"n_files": len(files)}
        meta["band_error"] = band_error_stats(np.asarray(bands), source="calibration")
        target = write_model_json(bundle.path, meta)
    else:
        target = bundle.path / "model.json"
    return CalibrationResult(old_threshold=bundle.threshold, new=fit, n_files=len(files), n_windows=int(arr.size),
                             above_old=int((arr > bundle.threshold).sum()), scores=arr, model_json=target)
