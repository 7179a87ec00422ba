"""The evaluation report: plots (matplotlib, Agg) and one self-contained ``index.html``.

Every function here is pure plotting or HTML: it takes arrays and metric
dictionaries and writes files. :mod:`trainer.evaluate` produces the inputs.

Figures (PNG, 120 dpi; the three-panel reconstructions 100 dpi):

- ``roc.png``: ROC curve with AUC, the shaded pAUC region (FPR <= 0.1) and the
  threshold's operating point; thin per-id curves when there are several ids.
- ``score_distributions.png``: histograms of the scores of normal and
  anomalous clips with the threshold line; the far tail in one overflow bar.
- ``recon_<class>_<kind>.png``: model input, its reconstruction (both in dB;
  for the NumPy detectors each band's normal level, a 1-D profile) and the
  squared-error map (normalised units) for the worst (nearest to a wrong
  decision) and the most typical clip of each class.
- ``training_curve.png``: copied from the model bundle.
"""

from __future__ import annotations

import base64
import html
import math
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display on a workstation over SSH or in CI

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import roc_auc_score, roc_curve  # noqa: E402

from edge_monitor.features.frontend import FeatureParams, mel_band_edges_hz  # noqa: E402
from edge_monitor.features.model_input import MinMaxNorm  # noqa: E402
from trainer import report_panels  # noqa: E402

__all__ = [
    "Figure",
    "ReconExample",
    "plot_roc",
    "plot_score_distributions",
    "plot_reconstruction",
    "copy_training_curve",
    "metrics_rows",
    "format_metrics_table",
    "official_summary",
    "write_index_html",
    "rank_words",
]

DPI = 120
NORMAL_COLOUR = "#1f77b4"
ANOMALY_COLOUR = "#d62728"
THRESHOLD_COLOUR = "#222222"
FUSED_SCORE_LABEL = "clip score: fused standardised score (normal standard deviations; can be negative)"
MSE_SCORE_LABEL = "clip score: reconstruction MSE (normalised log-mel units²)"


@dataclass(frozen=True)
class Figure:
    """One figure of the report: file name inside the report folder, title and caption."""

    filename: str
    title: str
    caption: str = ""
    wide: bool = True  # False: half width, two side by side


@dataclass
class ReconExample:
    """One window of one clip, to draw as input / reconstruction / squared error.

    Attributes:
        path: the clip's file.
        label: ``"normal"`` or ``"anomaly"``.
        kind: ``"worst"`` (nearest to a wrong decision: the highest-scoring normal clip, the
            lowest-scoring anomalous one) or ``"typical"`` (median score), see :func:`rank_words`.
        clip_score: the clip's score (mean over its windows).
        window_index: which window of the clip is shown (the one with the highest score).
        n_windows: windows in the clip.
        input: model input, ``(n_mels, frames)`` in [0, 1].
        recon: reconstruction, ``(n_mels, frames)`` in [0, 1].
        explanation: optional ``edge_monitor.decide.explain`` result (``freq_lo_hz``,
            ``freq_hi_hz``, ``kind``, ``text`` ...) to mark on the error map.
        reference: ``"recon"`` (the autoencoder's reconstruction) or ``"mean"``
            (each band's normal level: the NumPy detectors' reference), see
            ``edge_monitor.model.scorer.WindowScore``.
    """

    path: Path
    label: str
    kind: str
    clip_score: float
    window_index: int
    n_windows: int
    input: np.ndarray
    recon: np.ndarray
    machine_id: str = ""
    explanation: dict[str, Any] | None = field(default=None)
    reference: str = "recon"

    @property
    def sq_error(self) -> np.ndarray:
        return (np.asarray(self.input, np.float64) - np.asarray(self.recon, np.float64)) ** 2


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _save(fig: plt.Figure, path: Path, dpi: int = DPI) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight", facecolor="white")
    plt.close(fig)
    return path


# --- ROC -----------------------------------------------------------------------


def plot_roc(y_true: np.ndarray, scores: np.ndarray, threshold: float, metrics: dict[str, Any],
             path: Path, per_id: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
             max_fpr: float = 0.1) -> Path:
    """ROC curve (FPR vs TPR, in %) with AUC, the pAUC region and the threshold's operating point.

    Args:
        y_true: 1 anomaly / 0 normal, shape ``(n,)``; both classes present.
        scores: clip scores, shape ``(n,)``.
        threshold: the bundle's threshold (operating point: ``score > threshold``).
        metrics: :func:`trainer.metrics.binary_metrics` of the same clips.
        per_id: optional ``{id: (y, scores)}`` drawn as thin curves.
    """
    y = np.asarray(y_true, int)
    s = np.asarray(scores, float)
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    ax.plot([0, 100], [0, 100], ls=":", color="grey", lw=1, label="chance (AUC 0.5)")
    # Per-id curves help with a few ids; beyond ten they are only clutter.
    if per_id and 1 < len(per_id) <= 10:
        cmap = plt.get_cmap("tab10")
        for i, (mid, (yi, si)) in enumerate(sorted(per_id.items())):
            if len(set(np.asarray(yi).tolist())) < 2:
                continue
            f, t, _ = roc_curve(yi, si)
            ax.plot(100 * f, 100 * t, lw=1.1, alpha=0.6, color=cmap(i % 10),
                    label=f"{mid}: AUC {roc_auc_score(yi, si):.3f}")
    fpr, tpr, _ = roc_curve(y, s)
    ax.plot(100 * fpr, 100 * tpr, lw=2.4, color=ANOMALY_COLOUR,
            label=f"all clips: AUC {_fmt(metrics.get('auc'))}, pAUC {_fmt(metrics.get('pauc'))}")
    ax.axvspan(0, 100 * max_fpr, color="#ffdd77", alpha=0.35, lw=0,
               label=f"pAUC region (FPR ≤ {100 * max_fpr:g} %)")
    n_neg, n_pos = int((y == 0).sum()), int((y == 1).sum())
    op_fpr = float(((s > threshold) & (y == 0)).sum() / n_neg) if n_neg else float("nan")
    op_tpr = float(((s > threshold) & (y == 1)).sum() / n_pos) if n_pos else float("nan")
    ax.plot(100 * op_fpr, 100 * op_tpr, "o", ms=10, mfc="white", mec=THRESHOLD_COLOUR, mew=2.2, zorder=5,
            label=f"threshold {threshold:.4g}: FPR {100 * op_fpr:.0f} %, TPR {100 * op_tpr:.0f} %")
    ax.set_xlim(-1, 101)
    ax.set_ylim(-1, 101)
    ax.set_aspect("equal")
    ax.set_xlabel("false-positive rate: normal clips flagged (%)")
    ax.set_ylabel("true-positive rate: anomalous clips flagged (%)")
    ax.set_title(f"ROC curve ({n_neg} normal, {n_pos} anomalous clips)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8, framealpha=0.92)
    return _save(fig, path)


# --- score distributions --------------------------------------------------------


def plot_score_distributions(normal: np.ndarray, anomaly: np.ndarray, threshold: float, path: Path,
                             xlabel: str = FUSED_SCORE_LABEL) -> Path:
    """Histograms of clip scores per class with the threshold as a vertical line.

    A linear axis on which the normal clips and the threshold keep most of the
    width: scores far above (an anomaly at 20x the threshold) share one marked
    overflow bar at the right (:func:`trainer.report_panels.score_scale`).
    ``xlabel`` says what the score is (:data:`FUSED_SCORE_LABEL`, :data:`MSE_SCORE_LABEL`).
    """
    normal = np.asarray(normal, float)
    anomaly = np.asarray(anomaly, float)
    fig, ax = plt.subplots(figsize=(7.6, 4.6))
    n_bins = int(np.clip(np.sqrt(max(len(normal), len(anomaly), 1)) * 2, 10, 50))
    scale = report_panels.score_scale(normal, anomaly, threshold, n_bins)
    flagged_n = int((normal > threshold).sum())
    flagged_a = int((anomaly > threshold).sum())
    if len(normal):
        ax.hist(scale.fold(normal), bins=scale.bins, color=NORMAL_COLOUR, alpha=0.6, edgecolor="white", lw=0.5,
                label=f"normal ({len(normal)} clips, {flagged_n} above threshold)")
    if len(anomaly):
        ax.hist(scale.fold(anomaly), bins=scale.bins, color=ANOMALY_COLOUR, alpha=0.6, edgecolor="white", lw=0.5,
                label=f"anomalous ({len(anomaly)} clips, {flagged_a} above threshold)")
    ax.axvline(threshold, color=THRESHOLD_COLOUR, ls="--", lw=2, label=f"threshold {threshold:.4g}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("clips (count)")
    ax.set_title("Score distributions of normal and anomalous clips")
    ax.grid(alpha=0.3, axis="y")
    # Headroom for the legend, on the side away from the threshold line.
    ax.set_ylim(0, ax.get_ylim()[1] * 1.4)
    ax.set_xlim(scale.bins[0], scale.bins[-1])
    report_panels.mark_overflow(ax, scale)
    pos = (threshold - scale.bins[0]) / (scale.bins[-1] - scale.bins[0])
    ax.legend(fontsize=8.5, framealpha=1.0, loc="upper left" if pos > 0.5 else "upper right")
    return _save(fig, path)


def rank_words(label: str, kind: str) -> str:
    """How an example was picked: ``"highest-scoring"`` (worst normal), ``"lowest-scoring"`` (worst anomalous)."""
    if kind != "worst":
        return "median-scoring"
    return "highest-scoring" if label == "normal" else "lowest-scoring"


# --- reconstructions ------------------------------------------------------------


def _band_ticks(params: FeatureParams) -> tuple[list[float], list[str]]:
    """Mel-band positions of round frequencies, for a y axis labelled in Hz."""
    centres = mel_band_edges_hz(params)[1:-1]
    ticks, labels = [], []
    for hz in (0, 250, 500, 1000, 2000, 4000, 8000, 16000, 22050):
        if params.f_min <= hz <= params.fmax_hz:
            ticks.append(float(np.interp(hz, centres, np.arange(len(centres)))))
            labels.append(report_panels.hz_label(hz))
    return ticks, labels


def plot_reconstruction(example: ReconExample, params: FeatureParams, norm: MinMaxNorm, path: Path,
                        error_vmax: float | None = None) -> Path:
    """Model input, reconstruction and squared-error map of one window, side by side.

    Input and reconstruction are drawn in dB (the normalisation undone band by
    band, so values outside the training range appear at its edges); the error
    map is in the model's normalised units, whose mean over the window is the
    window's score. ``error_vmax`` fixes the error colour scale so that several
    examples compare at a glance.
    """
    x = np.asarray(example.input, float)
    r = np.asarray(example.recon, float)
    n_mels, frames = x.shape
    lo = np.asarray(norm.lo, float)[:n_mels, None]
    span = (np.asarray(norm.hi, float) - np.asarray(norm.lo, float))[:n_mels, None]
    x_db, r_db = lo + x * span, lo + r * span
    err = example.sq_error
    seconds = frames * params.hop_length / params.sample_rate
    extent = (0.0, seconds, -0.5, n_mels - 0.5)
    vmin, vmax = float(np.percentile(x_db, 1)), float(np.percentile(x_db, 99.5))
    emax = error_vmax if error_vmax else float(max(np.percentile(err, 99.5), 1e-9))
    yticks, ylabels = _band_ticks(params)

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6), constrained_layout=True)
    panels = [
        (x_db, "model input (log-mel)", "magma", vmin, vmax, "level (dB re full scale)"),
        (r_db, "reconstruction", "magma", vmin, vmax, "level (dB re full scale)"),
        (err, (f"squared error (window score = mean = {err.mean():.4g})" if example.reference == "recon"
               else f"squared deviation from normal (mean {err.mean():.4g})"), "inferno", 0.0, emax,
         "squared error (normalised units²)"),
    ]
    if example.reference != "recon":
        # The NumPy detectors' reference is one level per band, the same in every frame: a profile.
        report_panels.draw_level_profile(axes[1], r_db[:, 0], x_db, yticks, ylabels)
    for ax, (img, title, cmap, v0, v1, clabel) in zip(axes, panels):
        if ax is axes[1] and example.reference != "recon":
            continue
        im = ax.imshow(img, origin="lower", aspect="auto", cmap=cmap, vmin=v0, vmax=v1, extent=extent,
                       interpolation="nearest")
        ax.set_title(title, fontsize=10.5)
        ax.set_xlabel("time (s)")
        ax.set_yticks(yticks, ylabels)
        ax.set_ylabel("frequency (Hz, mel scale)")
        fig.colorbar(im, ax=ax, pad=0.01, fraction=0.05).set_label(clabel, fontsize=8.5)
    # Band profile of the error beside the map: where in frequency the error sits.
    if example.explanation:
        report_panels.mark_explanation(axes[2], example.explanation, params, seconds)
    which = rank_words(example.label, example.kind)
    label = "normal" if example.label == "normal" else "anomalous"
    win = f", window {example.window_index + 1} of {example.n_windows}" if example.n_windows > 1 else ""
    mid = f" ({example.machine_id})" if example.machine_id else ""
    fig.suptitle(f"{which.capitalize()} {label} clip{mid}: {Path(example.path).name}  —  "
                 f"clip score {example.clip_score:.4g}{win}", fontsize=12)
    # 100 dpi: still 1600 px wide, and a noisy spectrogram PNG shrinks by a third.
    return _save(fig, path, dpi=100)


def copy_training_curve(bundle_dir: Path, report_dir: Path) -> Path | None:
    """Copy the bundle's ``training_curve.png`` into the report; ``None`` if the bundle has none."""
    src = Path(bundle_dir) / "training_curve.png"
    if not src.is_file():
        return None
    dst = Path(report_dir) / "training_curve.png"
    shutil.copyfile(src, dst)
    return dst


# --- metrics table -------------------------------------------------------------

_COLUMNS = [("n_normal", "normal"), ("n_anomaly", "anomalous"), ("auc", "AUC"), ("pauc", "pAUC"),
            ("pauc_raw", "pAUC raw"), ("precision", "precision"), ("recall", "recall"), ("f1", "F1")]
# Shown after pAUC when the clips have domains (DCASE 2021-2025 names).
_DOMAIN_COLUMNS = [("auc_source", "AUC source"), ("auc_target", "AUC target"), ("official_score", "official")]

DOMAIN_NOTE = ("AUC source / AUC target: the normal clips of that domain against every anomalous clip of the "
               "section, both domains; official: harmonic mean of AUC source, AUC target and pAUC, over every "
               "section at once on the mean row (DCASE 2022-2025 evaluators)")


def _columns(metrics: dict[str, Any]) -> list[tuple[str, str]]:
    """The table's columns: the domain ones only when the clips have domains."""
    if not metrics.get("domains"):
        return list(_COLUMNS)
    at = [k for k, _ in _COLUMNS].index("pauc") + 1
    return _COLUMNS[:at] + _DOMAIN_COLUMNS + _COLUMNS[at:]


def metrics_rows(metrics: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """Table rows ``(name, cells)``: one per machine id, the DCASE mean over ids, all clips pooled."""
    rows: list[tuple[str, list[str]]] = []
    columns = _columns(metrics)

    def cells(m: dict[str, Any]) -> list[str]:
        return [str(m[k]) if k.startswith("n_") else _fmt(m.get(k)) for k, _ in columns]

    per_id = metrics.get("per_id", {})
    for mid, m in per_id.items():
        rows.append((mid, cells(m)))
    if len(per_id) > 1:
        mean = dict(metrics.get("mean_over_ids", {}))
        mean["n_normal"], mean["n_anomaly"] = "", ""
        rows.append(("mean over ids", [c if c != "None" else "" for c in cells(mean)]))
    rows.append(("all clips", cells(metrics)))
    return rows


def format_metrics_table(metrics: dict[str, Any]) -> str:
    """The metrics as a fixed-width text table (printed at the end of ``evaluate``)."""
    header = ["", *(title for _, title in _columns(metrics))]
    body = [[name, *c] for name, c in metrics_rows(metrics)]
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    line = lambda r: "  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(r, widths)))  # noqa: E731
    out = [line(header), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in body]
    out.append(f"threshold {metrics['threshold']:.6g} (anomalous when score > threshold); "
               f"pAUC: FPR <= 0.1, McClish-standardised as DCASE 2020; pAUC raw = area / 0.1")
    if metrics.get("domains"):
        out.append(DOMAIN_NOTE)
        off = official_summary(metrics)
        if off:
            out.append(off)
    return "\n".join(out)


def official_summary(metrics: dict[str, Any]) -> str | None:
    """``DCASE official score 0.512 = harmonic mean of ...`` (``None`` without domains)."""
    mean = metrics.get("mean_over_ids") or {}
    if not metrics.get("domains") or mean.get("official_score") is None:
        return None
    ids = mean.get("official_ids_used") or []
    if len(ids) == 1:
        m = metrics["per_id"][ids[0]]
        parts = f"AUC source {_fmt(m['auc_source'])}, AUC target {_fmt(m['auc_target'])}, pAUC {_fmt(m['pauc'])}"
        return f"DCASE official score {_fmt(mean['official_score'])} ({ids[0]}): harmonic mean of {parts}"
    return (f"DCASE official score {_fmt(mean['official_score'])}: harmonic mean of AUC source, AUC target "
            f"and pAUC of {len(ids)} sections ({', '.join(ids)})")


# --- HTML ------------------------------------------------------------------------

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem auto;
       max-width: 1200px; padding: 0 1rem; color: #222; }
h1 { margin-bottom: 0.2rem; } .sub { color: #666; margin-top: 0; }
table { border-collapse: collapse; margin: 1rem 0; font-variant-numeric: tabular-nums; }
th, td { padding: 0.3rem 0.7rem; border-bottom: 1px solid #ddd; text-align: right; }
th:first-child, td:first-child { text-align: left; }
tr.summary td { font-weight: 600; background: #f5f7fa; }
.figures { display: flex; flex-wrap: wrap; gap: 0 2%; }
figure { margin: 1.2rem 0; flex: 0 0 100%; } figure.half { flex: 0 0 49%; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
h3 { margin: 0.3rem 0; }
figcaption { color: #555; font-size: 0.92rem; margin-top: 0.3rem; }
.notes { color: #8a5a00; } dl { display: grid; grid-template-columns: max-content auto; gap: 0.2rem 1rem; }
dt { color: #666; } dd { margin: 0; font-family: ui-monospace, monospace; }
table.review td { white-space: nowrap; } table.review .txt { text-align: left; }
table.review td.expl { white-space: normal; min-width: 18rem; }
"""


def _img_tag(path: Path, alt: str, embed: bool) -> str:
    if embed:
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        src = f"data:image/png;base64,{data}"
    else:
        src = html.escape(path.name)
    return f'<img src="{src}" alt="{html.escape(alt)}">'


def write_index_html(report_dir: Path, metrics: dict[str, Any], figures: Sequence[Figure],
                     info: dict[str, str], embed: bool = True, sections: Sequence[str] = ()) -> Path:
    """Write ``report_dir/index.html``: run details, the metrics table and every figure.

    Args:
        report_dir: folder holding the figures; ``index.html`` is written there.
        metrics: as written to ``metrics.json``.
        figures: figures in display order; their files must exist in ``report_dir``.
        info: ``{label: value}`` shown above the table (model, data, date ...).
        embed: embed PNGs as base64 data URIs (one self-contained file) or
            reference them relatively.
        sections: HTML fragments shown between the metrics and the figures
            (:func:`trainer.review.review_html`).
    """
    report_dir = Path(report_dir)
    e = html.escape
    rows = metrics_rows(metrics)
    head = "".join(f"<th>{e(t)}</th>" for t in ["", *(title for _, title in _columns(metrics))])
    body = []
    for name, cells in rows:
        cls = ' class="summary"' if name in ("mean over ids", "all clips") else ""
        body.append(f"<tr{cls}><td>{e(name)}</td>" + "".join(f"<td>{e(c)}</td>" for c in cells) + "</tr>")
    notes = list(metrics.get("notes", []))
    for mid, m in metrics.get("per_id", {}).items():
        notes += [f"{mid}: {n}" for n in m.get("notes", [])]
    notes += list(metrics.get("mean_over_ids", {}).get("notes", []))
    failed = metrics.get("failed", [])
    notes += [f"not scored: {f['path']}: {f['error']}" for f in failed]
    notes_html = ("<ul class=\"notes\">" + "".join(f"<li>{e(n)}</li>" for n in notes) + "</ul>") if notes else ""
    domain_html = ""
    if metrics.get("domains"):
        off = official_summary(metrics)
        domain_html = (f'<p class="sub" id="dcase-domains">{e(DOMAIN_NOTE)}.</p>'
                       + (f'<p id="official-score"><strong>{e(off)}</strong></p>' if off else ""))
    info_html = "<dl>" + "".join(f"<dt>{e(k)}</dt><dd>{e(str(v))}</dd>" for k, v in info.items()) + "</dl>"
    figs = []
    for f in figures:
        p = report_dir / f.filename
        cls = "" if f.wide else ' class="half"'
        figs.append(f'<figure id="{e(Path(f.filename).stem)}"{cls}><h3>{e(f.title)}</h3>{_img_tag(p, f.title, embed)}'
                    f"<figcaption>{e(f.caption)}</figcaption></figure>")
    official = (metrics.get("mean_over_ids") or {}).get("official_score")
    title_extra = f", official score {_fmt(official)}" if official is not None else ""
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Edge Monitor evaluation: {e(str(info.get('machine', '')))} AUC {_fmt(metrics.get('auc'))}{title_extra}</title>
<style>{_CSS}</style></head>
<body>
<h1>Edge Monitor evaluation report</h1>
<p class="sub">Anomaly is the positive class; a clip is flagged when its score exceeds the bundle's threshold.</p>
{info_html}
<h2>Metrics</h2>
<table id="metrics-table"><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>
<p class="sub">pAUC: partial AUC for FPR ≤ 0.1, McClish-standardised as in the DCASE 2020 baseline
(chance 0.5); pAUC raw: the plain area up to FPR 0.1 divided by 0.1 (chance 0.05).
Mean over ids: the arithmetic mean of the per-id values, as DCASE reports it.</p>
{domain_html}
{notes_html}
{''.join(sections)}
<h2>Figures</h2>
<div class="figures">{''.join(figs)}</div>
</body></html>
"""
    out = report_dir / "index.html"
    out.write_text(page, encoding="utf-8")
    return out
