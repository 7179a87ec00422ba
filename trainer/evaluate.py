"""Evaluate a model bundle on labelled clips: scores, metrics and the report.

Every clip is scored by :class:`edge_monitor.model.scorer.Scorer`, the TFLite path
the daemon runs, never by the Keras model, so the report describes what will
run on the Pi. A clip's score is the mean of its window scores and the clip is
*decided* anomalous when ``score > threshold`` (the bundle's threshold).

Clips: the ``test`` split of a DCASE-layout folder (2020, or 2021-2025 with
sections and domains), every clip of a MIMII layout, or a flat folder of
``{normal,anomaly}_id_XX_*.wav`` / ``section_XX_...`` names
(:func:`trainer.datasets.find_clips`). Test clips without a label in the
name (DCASE evaluation sets) are refused with one line: they cannot be scored
against a label. A clip that cannot be read is
reported (one line on stderr, ``failed`` in ``metrics.json``, a note in the
report) and left out of the metrics; the others are still scored.

Outputs in the report folder: ``metrics.json``, ``scores.csv``, the figures
of :mod:`trainer.report` and ``index.html``.
"""

from __future__ import annotations

import csv
import datetime as _dt
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from edge_monitor.audio import audio_io
from edge_monitor.model.bundle import ModelBundle, load_bundle
from edge_monitor.model.scorer import Scorer
from edge_monitor.util.jsonutil import jsonable
from edge_monitor.util.progress import progress_text
from trainer import review
from trainer.datasets import ClipRef, DatasetError, find_clips
from trainer.metrics import MAX_FPR, Scored, evaluate_scores
from trainer.operating import operating_html, operating_points, selection_summary

__all__ = [
    "ClipResult",
    "Failure",
    "Evaluation",
    "evaluation_clips",
    "score_clips",
    "compute_metrics",
    "write_scores_csv",
    "write_metrics_json",
    "pick_examples",
    "evaluate",
    "Progress",
]

SCORES_CSV = "scores.csv"
METRICS_JSON = "metrics.json"
CSV_COLUMNS = ("path", "machine_id", "label", "score", "decision", "machine", "windows", "domain", "attributes")


@dataclass(frozen=True)
class ClipResult:
    """The score of one labelled clip.

    Attributes:
        clip: the clip (path, label, machine, machine id, domain, attributes).
        group: the id metrics are grouped by: ``"id_00"`` / ``"section_00"``, or
            ``"fan/id_00"`` when the data holds several machine types.
        score: mean window score (reconstruction MSE).
        max_window_score: the highest window score of the clip.
        n_windows: windows scored (an 11 s ToyCar clip has 2).
        decision: ``"anomaly"`` when ``score > threshold``, else ``"normal"``.
    """

    clip: ClipRef
    group: str
    score: float
    max_window_score: float
    n_windows: int
    decision: str

    @property
    def domain(self) -> str | None:
        """``"source"`` / ``"target"`` (DCASE 2021-2025), else ``None``."""
        return self.clip.domain

    @property
    def attributes(self) -> tuple[tuple[str, str], ...]:
        """The clip's attributes from its name, e.g. ``(("pat", "01"),)``."""
        return self.clip.attributes


@dataclass(frozen=True)
class Failure:
    """A clip that could not be scored, and why (one line)."""

    path: Path
    error: str


@dataclass
class Evaluation:
    """What :func:`evaluate` produced."""

    metrics: dict[str, Any]
    results: list[ClipResult]
    failures: list[Failure]
    report_dir: Path
    index_html: Path
    files: dict[str, Path] = field(default_factory=dict)


class Progress:
    """``scoring clips: 37/120 (31 %) ~42 s left`` on a terminal (one updating line), every 10 % otherwise."""

    def __init__(self, total: int, what: str = "scoring clips", stream: TextIO | None = None) -> None:
        self.total = max(total, 1)
        self.what = what
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last_decile = -1
        self._start = time.monotonic()

    def __call__(self, done: int) -> None:
        pct = 100 * done // self.total
        text = f"{self.what}: {progress_text(done, self.total, time.monotonic() - self._start)}"
        if self.tty:
            end = "\n" if done >= self.total else "\x1b[K"
            self.stream.write(f"\r{text}" + end)
            self.stream.flush()
        elif pct // 10 != self._last_decile:
            self._last_decile = pct // 10
            self.stream.write(f"{text}\n")
            self.stream.flush()


def evaluation_clips(data_dir: str | Path, machine_ids: Sequence[str] | None = None,
                     bundle_training: dict[str, Any] | None = None) -> tuple[list[ClipRef], str]:
    """The clips to evaluate on, and a sentence saying which they are.

    - DCASE layout: the ``test`` split (unlabelled evaluation-set clips are an error).
    - MIMII and flat layouts (no split): when the bundle was trained on this
      very folder (its ``training.data_fingerprint`` matches), only the
      normals that training held out plus the anomalies
      (:func:`trainer.train.select_clips` with the training seed), so no
      training clip is scored; otherwise every clip.

    Raises:
        DatasetError: no such folder, unknown layout, or no test clips.
    """
    clips = find_clips(data_dir, machine_ids=machine_ids, unlabelled="error")
    if any(c.split is not None for c in clips):
        chosen = [c for c in clips if c.split == "test"]
        if not chosen:
            raise DatasetError(f"{data_dir}: only training clips found; evaluation needs the test split "
                               "(test/{normal,anomaly}_id_XX_*.wav or "
                               "test/section_XX_<domain>_test_<normal|anomaly>_NNNN*.wav)")
        return chosen, "the test split"
    training = bundle_training or {}
    fingerprint = training.get("data_fingerprint")
    if fingerprint and len({c.machine for c in clips}) == 1:
        from trainer.train import data_fingerprint, select_clips

        train, test = select_clips(data_dir, machine_ids, int(training.get("seed", 0)))
        if data_fingerprint(train) == fingerprint:
            return test, "the clips held out from training (same folder and seed as the bundle's training)"
    return clips, "every clip (no train/test split in this layout)"


def _groups(clips: Sequence[ClipRef]) -> Callable[[ClipRef], str]:
    several = len({c.machine for c in clips}) > 1
    return (lambda c: f"{c.machine}/{c.machine_id}") if several else (lambda c: c.machine_id)


def score_clips(scorer: Scorer, clips: Sequence[ClipRef],
                progress: Callable[[int], None] | None = None,
                on_error: Callable[[Failure], None] | None = None) -> tuple[list[ClipResult], list[Failure]]:
    """Score every clip through the runtime scorer.

    Args:
        scorer: the daemon's :class:`~edge_monitor.model.scorer.Scorer` on the bundle.
        clips: from :func:`evaluation_clips`.
        progress: called with the number of clips done after each clip.
        on_error: called for each clip that cannot be read or scored.

    Returns:
        ``(results, failures)``, results in the order of ``clips``.
    """
    group = _groups(clips)
    threshold = scorer.threshold
    results: list[ClipResult] = []
    failures: list[Failure] = []
    for i, clip in enumerate(clips, 1):
        try:
            cs = scorer.score_file(clip.path)
        except (audio_io.AudioFileError, OSError, ValueError) as exc:
            msg = str(exc)
            fail = Failure(clip.path, msg[len(str(clip.path)) + 2:] if msg.startswith(f"{clip.path}: ") else msg)
            failures.append(fail)
            if on_error:
                on_error(fail)
        else:
            if not math.isfinite(cs.score):
                # A broken model (NaN output) must not poison every metric; say so per clip.
                fail = Failure(clip.path, f"score is not finite ({cs.score}): the model's output is broken")
                failures.append(fail)
                if on_error:
                    on_error(fail)
                if progress:
                    progress(i)
                continue
            results.append(ClipResult(
                clip=clip, group=group(clip), score=cs.score, max_window_score=cs.max_window_score,
                n_windows=len(cs.windows), decision="anomaly" if cs.score > threshold else "normal"))
        if progress:
            progress(i)
    return results, failures


def compute_metrics(results: Sequence[ClipResult], threshold: float,
                    failures: Sequence[Failure] = ()) -> dict[str, Any]:
    """``metrics.json``'s content: :func:`trainer.metrics.evaluate_scores` plus counts of what failed."""
    metrics = evaluate_scores([Scored(r.group, r.clip.label, r.score, r.clip.domain) for r in results], threshold)
    metrics["decision_rule"] = "score > threshold"
    metrics["max_fpr"] = MAX_FPR
    metrics["n_clips"] = len(results)
    metrics["n_failed"] = len(failures)
    metrics["failed"] = [{"path": str(f.path), "error": f.error} for f in failures]
    return metrics


def write_scores_csv(results: Sequence[ClipResult], path: Path) -> Path:
    """One row per scored clip: path, machine id, label, score, decision, machine, windows, domain, attributes.

    ``domain`` is empty where the data has none; ``attributes`` is ``key=value``
    pairs joined by ``;`` (``pat=01``, ``vel=4;loc=A``), empty when none.
    """
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(CSV_COLUMNS)
        for r in results:
            w.writerow([str(r.clip.path), r.clip.machine_id, r.clip.label, f"{r.score:.8g}", r.decision,
                        r.clip.machine, r.n_windows, r.clip.domain or "",
                        ";".join(f"{k}={v}" for k, v in r.clip.attributes)])
    return path


def write_metrics_json(metrics: dict[str, Any], path: Path) -> Path:
    """``metrics.json``, strict JSON (undefined metrics are ``null``)."""
    path.write_text(json.dumps(jsonable(metrics), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return path


def pick_examples(results: Sequence[ClipResult]) -> list[tuple[str, str, ClipResult]]:
    """``(label, kind, result)`` for the worst and the most typical (median score) clip per class.

    Worst is the clip nearest to being decided wrongly: the *highest*-scoring
    normal clip (a false alarm if any) and the *lowest*-scoring anomalous clip
    (a miss if any). With a single clip in a class only its ``worst`` is returned.
    """
    picks: list[tuple[str, str, ClipResult]] = []
    for label in ("normal", "anomaly"):
        members = sorted((r for r in results if r.clip.label == label), key=lambda r: r.score,
                         reverse=label == "anomaly")
        if not members:
            continue
        worst = members[-1]
        picks.append((label, "worst", worst))
        median = float(np.median([r.score for r in members]))
        typical = min(members[:-1], key=lambda r: abs(r.score - median), default=None)
        if typical is not None:
            picks.append((label, "typical", typical))
    return picks


def _explainer(bundle: ModelBundle) -> Callable[..., dict[str, Any] | None]:
    """A function window -> explanation dict for the error maps (``None`` when unavailable).

    The dict is the alert's ``explanation`` plus ``bands`` (first, last mel
    band) and ``event_times_s`` (impact times), which the plot marks.
    """
    from edge_monitor.decide.explain import BundleExplainer

    try:
        explainer = BundleExplainer.from_bundle(bundle)
    except ValueError:  # a bundle without band statistics
        return lambda window, samples=None: None

    def explain(window: Any, samples: np.ndarray | None = None) -> dict[str, Any] | None:
        try:
            ex = explainer(window, samples=samples)
        except (ValueError, FloatingPointError):  # the report must not die on an explanation
            return None
        if ex.kind == "none":
            return None
        d: dict[str, Any] = {**ex.to_dict()}
        d["bands"] = list(ex.bands) if ex.bands else None
        d["event_times_s"] = list(ex.event_times_s)
        return d

    return explain


def evaluate(bundle_dir: str | Path, data_dir: str | Path, report_dir: str | Path, *,
             machine_ids: Sequence[str] | None = None, num_threads: int = 1, embed_images: bool = True,
             progress: bool = True, stream: TextIO | None = None) -> Evaluation:
    """Score the test clips of ``data_dir`` with the bundle and write the full report.

    Args:
        bundle_dir: a model bundle (``model.tflite`` + ``model.json``).
        data_dir: DCASE, MIMII or flat layout (see :func:`evaluation_clips`).
        report_dir: created if needed; existing report files are replaced.
        machine_ids: evaluate only these ids.
        num_threads: TFLite interpreter threads.
        embed_images: base64 images inside ``index.html`` (self-contained) or relative links.
        progress: show progress on ``stream``.
        stream: where progress and per-clip errors go (default stderr).

    Raises:
        BundleError, DatasetError: with one readable line.
    """
    from trainer import report  # matplotlib: only when a report is actually written

    err = stream if stream is not None else sys.stderr
    bundle = load_bundle(bundle_dir)
    scorer = Scorer(bundle, num_threads=num_threads)
    clips, which = evaluation_clips(data_dir, machine_ids, bundle.doc.training)
    out = Path(report_dir)
    out.mkdir(parents=True, exist_ok=True)

    def on_error(f: Failure) -> None:
        err.write(f"\nnot scored: {f.path}: {f.error}\n" if progress and getattr(err, "isatty", lambda: False)()
                  else f"not scored: {f.path}: {f.error}\n")

    results, failures = score_clips(scorer, clips, Progress(len(clips), stream=err) if progress else None, on_error)
    if not results:
        raise DatasetError(f"{data_dir}: none of the {len(clips)} clips could be scored")
    threshold = bundle.threshold
    metrics = compute_metrics(results, threshold, failures)
    kinds = review.clip_kinds(r.clip for r in results)
    by_kind = review.group_rows(results, lambda r: kinds[r.clip.path])
    by_domain = review.group_rows(results, lambda r: r.clip.domain) if metrics.get("domains") else []
    misses, alarms, n_misses, n_alarms = review.wrong_clips(results, kinds, _clip_explainer(scorer))
    metrics.update(review.review_json(by_kind, by_domain, misses, alarms, n_misses, n_alarms))
    metrics["bundle"] = str(Path(bundle_dir))
    metrics["bundle_sha256"] = bundle.sha256
    metrics["data_dir"] = str(Path(data_dir))
    metrics["clips_used"] = which
    metrics["machine"] = ", ".join(sorted({r.clip.machine for r in results}))
    metrics["created"] = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")

    points = operating_points([r.score for r in results], [r.clip.label for r in results], threshold, bundle.doc)
    metrics["operating_points"] = [p.to_dict() for p in points]
    choice = selection_summary(bundle.doc)
    if choice is not None:
        metrics["detector_choice"] = choice

    files: dict[str, Path] = {}
    files["metrics"] = write_metrics_json(metrics, out / METRICS_JSON)
    files["scores"] = write_scores_csv(results, out / SCORES_CSV)

    y = np.array([1 if r.clip.label == "anomaly" else 0 for r in results])
    s = np.array([r.score for r in results])
    figures: list[report.Figure] = []
    if 0 < y.sum() < len(y):
        per_id = {g: (y[[r.group == g for r in results]], s[[r.group == g for r in results]])
                  for g in sorted({r.group for r in results})}
        caption = ("True-positive rate against false-positive rate as the threshold sweeps all scores. The circle "
                   "is the bundle's threshold; the shaded strip is the FPR range of the pAUC.")
        if len(per_id) == 1 and metrics.get("domains"):
            # One section with domains: one curve per domain, as AUC source / target are computed.
            d = np.array([r.domain or "" for r in results])
            per_id = {f"{dom} normals vs all anomalies": (y[(d == dom) | (y == 1)], s[(d == dom) | (y == 1)])
                      for dom in metrics["domains"]}
            caption += (" Thin curves: each domain's normal clips against every anomalous clip (AUC source "
                        "and AUC target).")
        files["roc"] = report.plot_roc(y, s, threshold, metrics, out / "roc.png", per_id=per_id)
        figures.append(report.Figure("roc.png", "ROC curve", caption, wide=False))
    fused = bundle.fusion.rule != "none"
    xlabel = (report.FUSED_SCORE_LABEL if fused else report.MSE_SCORE_LABEL
              if bundle.detectors[0].kind == "autoencoder" else f"clip score: the {bundle.detectors[0].kind} "
              "detector's raw score")
    files["scores_png"] = report.plot_score_distributions(s[y == 0], s[y == 1], threshold,
                                                          out / "score_distributions.png", xlabel=xlabel)
    figures.append(report.Figure(
        "score_distributions.png", "Score distributions",
        "Clip scores (the mean window score over the clip's windows: "
        + ("the fused standardised detector score, in normal standard deviations above a typical normal "
           "window, negative for quieter-than-typical windows" if fused else xlabel.split(": ", 1)[1])
        + ") of normal and anomalous clips. "
        "Clips right of the dashed line are flagged; scores far above the threshold are gathered in the "
        "marked overflow bar at the right, so that the normal clips and the threshold keep their room.",
        wide=False))

    examples = _reconstruction_examples(scorer, results)
    vmax = max((float(np.percentile(ex.sq_error, 99.5)) for ex in examples), default=None)
    for ex in examples:
        name = f"recon_{ex.label}_{ex.kind}.png"
        files[name] = report.plot_reconstruction(ex, bundle.features, bundle.norm, out / name, error_vmax=vmax)
        rank = report.rank_words(ex.label, ex.kind)
        middle = ("its reconstruction by the autoencoder" if ex.reference == "recon" else
                  "each band's normal level (the profile and frame detectors' reference) as a line, "
                  "with this window's median level per band")
        cap = (f"The {rank} {'normal' if ex.label == 'normal' else 'anomalous'} clip, "
               f"{ex.clip_score:.4g} against threshold {threshold:.4g}. Left: the model input; middle: "
               f"{middle}; right: the squared error, on one colour scale for all examples.")
        if ex.explanation and ex.explanation.get("text"):
            cap += f" Explanation (dashed box): {ex.explanation['text']}"
        worst = "highest score" if ex.label == "normal" else "lowest score"
        figures.append(report.Figure(name, f"{'Normal' if ex.label == 'normal' else 'Anomalous'} clip, "
                                           f"{f'worst ({worst})' if ex.kind == 'worst' else 'typical'}: "
                                           f"{ex.path.name}", cap))

    curve = report.copy_training_curve(Path(bundle_dir), out)
    if curve is not None:
        files["training_curve"] = curve
        figures.append(report.Figure("training_curve.png", "Training curve",
                                     "Training and validation loss per epoch, from the model bundle.", wide=False))
    info = {
        "model": f"{Path(bundle_dir).resolve()} (sha256 {bundle.sha256[:12]})",
        "machine": metrics["machine"],
        "data": f"{Path(data_dir).resolve()}: {which}",
        "clips scored": f"{metrics['n_normal']} normal, {metrics['n_anomaly']} anomalous"
                        + (f", {len(failures)} unreadable" if failures else ""),
        **({"domains": "; ".join(f"{d}: {metrics[f'n_normal_{d}']} normal, {metrics[f'n_anomaly_{d}']} anomalous"
                                 for d in metrics["domains"])} if metrics.get("domains") else {}),
        "threshold": f"{threshold:.6g} ({bundle.doc.threshold.rule} rule; anomalous when score > threshold)",
        "scored with": (f"{', '.join(d.describe() for d in bundle.detectors)}; fusion {bundle.fusion.rule}; "
                        f"the runtime scorer ({scorer.backend})"),
        "created": metrics["created"],
    }
    sections = [review.review_html(by_kind, by_domain, misses, alarms, n_misses, n_alarms, threshold),
                operating_html(points, bundle.doc)]
    index = report.write_index_html(out, metrics, figures, info, embed=embed_images, sections=sections)
    files["index"] = index
    return Evaluation(metrics=metrics, results=results, failures=failures, report_dir=out, index_html=index,
                      files=files)


def _clip_explainer(scorer: Scorer) -> review.Explain:
    """The strongest window of a clip and its explanation sentence, for the misses and false alarms."""
    explain = _explainer(scorer.bundle)

    def one(r: ClipResult) -> tuple[int, float, str, str] | None:
        try:
            samples = audio_io.read_wav(r.clip.path, sample_rate=scorer.features.sample_rate)
            cs = scorer.score_clip(samples)
        except (audio_io.AudioFileError, OSError, ValueError):
            return None
        k = int(np.argmax([w.score for w in cs.windows]))
        w = cs.windows[k]
        windows = audio_io.clip_windows(samples, scorer.window_samples)
        ex = explain(w, windows[k] if len(windows) == len(cs.windows) else None)
        return k, float(w.score), w.detector or "", str((ex or {}).get("text", ""))

    return one


def _reconstruction_examples(scorer: Scorer, results: Sequence[ClipResult]) -> list[Any]:
    """Re-score the picked clips to get their input and reconstruction (kept for a few clips only)."""
    from trainer.report import ReconExample

    explain = _explainer(scorer.bundle)
    examples = []
    for label, kind, r in pick_examples(results):
        try:
            samples = audio_io.read_wav(r.clip.path, sample_rate=scorer.features.sample_rate)
            cs = scorer.score_clip(samples)
        except (audio_io.AudioFileError, OSError, ValueError):
            continue
        k = int(np.argmax([w.score for w in cs.windows]))
        w = cs.windows[k]
        explanation = None
        if label == "anomaly":
            # The window's samples (the same cut as score_clip's): exact levels, reliable impacts.
            windows = audio_io.clip_windows(samples, scorer.window_samples)
            explanation = explain(w, windows[k] if len(windows) == len(cs.windows) else None)
        examples.append(ReconExample(path=r.clip.path, label=label, kind=kind, clip_score=r.score,
                                     window_index=k, n_windows=len(cs.windows), input=w.input, recon=w.recon,
                                     machine_id=r.group, explanation=explanation, reference=w.reference))
    return examples
