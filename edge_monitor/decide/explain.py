"""Explain a window's reconstruction error in words: what changed, where, how much.

An anomaly score alone says "something is different". This module turns one
scored window (:class:`edge_monitor.model.scorer.WindowScore`) into an
:class:`Explanation`: the frequency range in Hz that carries most of the
*excess* error (error above what the model makes on normal validation audio,
band by band), its kind, the repetition period of impacts, the level change
in dB against normal, and one plain sentence for people.

Kinds (``Explanation.kind``):

``tonal``
    a narrow frequency range, sustained over the window (a squeal, a whine).
``impact``
    broadband and short (clicks, knocks), with ``period_s`` when they repeat.
``broadband``
    a wide range, sustained: louder or rougher running.
``level_shift``
    the whole spectrum moved by about the same number of dB: far more likely
    a moved or re-gained microphone than a machine fault. The text suggests
    ``edge-monitor-train calibrate``. The window is still scored.
``none``
    nothing stands out (a normal window).

Use::

    explainer = Explainer.from_bundle(bundle)      # once, at start-up
    ex = explainer(window_score, samples=window)   # per window above threshold
    alert["explanation"] = ex.to_dict()            # {kind, freq_lo_hz, ...}
    print(ex.text)  # "A new tone near 3.1 kHz (2.9-3.3 kHz), 12 dB above normal."

or the one-shot :func:`explain_window`. Pure NumPy (plus the front end's
``scipy.fft`` when ``samples`` are given); ~20 ms per window.

Inputs. The model input is per-band min/max scaled dB
(:class:`edge_monitor.features.frontend.MinMaxNorm`), so levels in dB are recovered as
``lo + x * (hi - lo)``; ``x`` is clipped to the bundle's ``[clip_lo, clip_hi]``
(``[-1, 2]`` for new bundles: one training range of headroom on either side;
``[0, 1]`` for old ones; ``None`` = no bound on that side). A level that hit
the clip reads as *at least* its value ("at least N dB"), and a click train
louder than the clip is flattened. Pass the window's samples
(``samples=``) or unclipped log-mel (``db=``) for exact levels and reliable
impacts. The training level per
band comes from the bundle's ``band_level_db.mean`` when present, else from the
model's own reconstruction of the window (what the model expected to hear).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np

from edge_monitor.features.frontend import FeatureParams, logmel, mel_band_edges_hz
from edge_monitor.features.model_input import MinMaxNorm

__all__ = [
    "KINDS",
    "Explanation",
    "explainers_for",
    "BundleExplainer",
    "ExplainSettings",
    "Explainer",
    "explain_window",
    "NOTHING_STANDS_OUT",
]

KINDS: tuple[str, ...] = ("tonal", "impact", "broadband", "level_shift", "none")

NOTHING_STANDS_OUT = "Nothing stands out: the sound is within what the model learned as normal."


class _WindowScoreLike(Protocol):
    score: float
    band_error: np.ndarray  # (n_mels,)
    frame_error: np.ndarray  # (frames,)
    input: np.ndarray  # (n_mels, frames), scaled, clipped to [norm.clip_lo, norm.clip_hi]
    recon: np.ndarray  # (n_mels, frames) in (0, 1) (sigmoid)


@dataclass(frozen=True)
class Explanation:
    """What stands out in one window.

    The six public fields (:meth:`to_dict`) go into the alert JSON as
    ``explanation``; the rest are for plots (the evaluation report's error maps).

    Attributes:
        kind: one of :data:`KINDS`.
        freq_lo_hz: lower edge of the frequency range carrying most of the
            excess error (Hz); ``None`` for ``none``.
        freq_hi_hz: upper edge of that range (Hz); ``None`` for ``none``.
        period_s: repetition period of impacts (s), ``None`` unless ``impact``
            and repeating.
        level_change_db: level in that range minus the normal level there
            (dB, positive = louder); ``None`` for ``none``.
        text: one plain sentence.
        peak_hz: centre of the strongest band (Hz) (the tone's frequency for
            ``tonal``); ``None`` for ``none``.
        bands: first and last mel band index (inclusive) of the range, or ``None``.
        event_times_s: for ``impact``, the times (s from the window start) of
            the impacts found; empty otherwise.
        excess_share: share of the window's excess error inside the range (0..1).
        detector: the bundle's detector that fired and whose view this explains
            (``"autoencoder"``, ``"profile"``, ``"frames"``); ``None`` when unknown.
    """

    kind: str
    freq_lo_hz: float | None
    freq_hi_hz: float | None
    period_s: float | None
    level_change_db: float | None
    text: str
    peak_hz: float | None = None
    bands: tuple[int, int] | None = None
    event_times_s: tuple[float, ...] = field(default_factory=tuple)
    excess_share: float = 0.0
    detector: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The alert payload's ``explanation``: ``{kind, freq_lo_hz, freq_hi_hz,
        period_s, level_change_db, text}`` (+ ``detector`` when known); numbers rounded, ``None`` as null."""

        def r(v: float | None, nd: int) -> float | None:
            return None if v is None else round(float(v), nd)

        return {
            "kind": self.kind,
            "freq_lo_hz": r(self.freq_lo_hz, 0),
            "freq_hi_hz": r(self.freq_hi_hz, 0),
            "period_s": r(self.period_s, 2),
            "level_change_db": r(self.level_change_db, 1),
            "text": self.text,
            **({"detector": self.detector} if self.detector else {}),
        }


@dataclass(frozen=True)
class ExplainSettings:
    """Tuning of the explanation (defaults work for the 128-band front end).

    Attributes:
        min_evidence: spectral evidence needed to explain anything but an
            impact: the sum over bands of ``max(0, z - 2)``, where a band's
            ``z = (error - mean) / (p99 - mean)`` from the validation statistics.
        tonal_octaves: widest range, in octaves, still called ``tonal``.
        tonal_share: share of the excess a tone and its harmonics must carry
            to be tonal (the rest may be rougher running around it).
        tonal_contrast: the tone's bands must carry this many times the mean
            excess of their neighbours (a peak, not a plateau).
        tonal_peak_db: a level-rise peak this many dB above the neighbouring
            bands' rise marks a tone.
        tonal_min_run: mean length (frames) of the runs in which the tone
            sounds (a squeal holds; a rattle ringing one mode flickers).
        range_share: the reported range is the narrowest run of bands holding
            this share of the excess (for non-tonal kinds).
        impact_share: the top ``impact_frames`` share of frames must carry at
            least this share of the time-excess for ``impact``.
        impact_frames: see ``impact_share`` (fraction of frames, 0..1).
        shift_db: smallest uniform level change called ``level_shift`` (dB).
        shift_spread_db: the band-to-band spread (10th..90th percentile) of the
            level change must stay below this for ``level_shift`` (dB).
        min_period_s: shortest repetition period reported (s); also the
            shortest gap between two impacts.
        hp_frames: the impact curve is the residual minus its running median
            over ``2 * hp_frames + 1`` frames (keeps only short events).
        impact_top_frames: share of frames whose mean robust z is the
            prominence of a candidate impact range (0.025 = 8 of 312 frames).
        impact_z: robust z an impact frame must reach.
        impact_prominence: prominence needed to call an anomalous window
            (spectral evidence or score above the threshold) ``impact``.
        impact_prominence_alone: prominence that makes a window ``impact``
            without other evidence.
    """

    min_evidence: float = 5.0
    tonal_octaves: float = 0.5
    tonal_share: float = 0.3
    tonal_contrast: float = 3.0
    tonal_peak_db: float = 6.0
    tonal_min_run: float = 3.0
    range_share: float = 0.7
    impact_share: float = 0.5
    impact_frames: float = 0.1
    shift_db: float = 4.0
    shift_spread_db: float = 4.0
    min_period_s: float = 0.15
    hp_frames: int = 3
    impact_top_frames: float = 0.025
    impact_z: float = 6.0
    impact_prominence: float = 5.0
    impact_prominence_alone: float = 8.0


def _fmt_hz(hz: float) -> str:
    if hz >= 1000.0:
        return f"{hz / 1000.0:.1f} kHz"
    return f"{hz:.0f} Hz"


def _fmt_range(lo: float, hi: float) -> str:
    if lo >= 1000.0 and hi >= 1000.0:
        return f"{lo / 1000.0:.1f}–{hi / 1000.0:.1f} kHz"
    if hi >= 1000.0:
        return f"{lo:.0f} Hz–{hi / 1000.0:.1f} kHz"
    return f"{lo:.0f}–{hi:.0f} Hz"


def _fmt_level(db: float | None, at_least: bool = False) -> str:
    if db is None or not math.isfinite(db):
        return ""
    if abs(db) < 1.0:
        return ", at about the normal level"
    return f", {'at least ' if at_least else ''}{abs(db):.0f} dB {'above' if db > 0 else 'below'} normal"


def _stat(stats: Mapping[str, Any], names: Sequence[str], n_mels: int) -> np.ndarray | None:
    for name in names:
        if name in stats and stats[name] is not None:
            arr = np.asarray(stats[name], dtype=np.float64).reshape(-1)
            if arr.shape != (n_mels,):
                raise ValueError(f"band_error_stats[{name!r}] has {arr.size} values, expected {n_mels}")
            return arr
    return None


def _power_db_sum(db: np.ndarray, axis: int) -> np.ndarray:
    """Level of the power sum along ``axis`` (dB)."""
    m = np.max(db, axis=axis, keepdims=True)
    return np.squeeze(m, axis=axis) + 10.0 * np.log10(np.sum(10.0 ** ((db - m) / 10.0), axis=axis))


def _narrowest_run(weights: np.ndarray, share: float) -> tuple[int, int]:
    """Narrowest contiguous index run ``[a, b]`` whose weights sum to >= ``share`` of the total."""
    total = float(weights.sum())
    c = np.concatenate(([0.0], np.cumsum(weights)))
    need = share * total
    best = (0, len(weights) - 1)
    best_w = len(weights)
    # For each start a, the first end b with c[b+1] - c[a] >= need (c is monotone).
    ends = np.searchsorted(c, c[:-1] + need - 1e-12 * total, side="left") - 1
    for a, b in enumerate(ends):
        if b < len(weights) and b - a + 1 < best_w:
            best, best_w = (a, int(b)), int(b) - a + 1
    return best


def _periodicity(x: np.ndarray, min_lag: int, max_lag: int) -> tuple[float | None, float]:
    """Repetition period (frames, sub-frame) of ``x`` from its autocorrelation, and its strength (0..1).

    Picks the shortest lag whose autocorrelation peak reaches 0.6 of the
    strongest peak, so a multiple of the period is not reported instead.
    """
    x = np.asarray(x, dtype=np.float64) - float(np.mean(x))
    n = x.size
    if n < 2 * min_lag + 2 or not np.any(x):
        return None, 0.0
    nfft = 1 << int(math.ceil(math.log2(2 * n)))
    spec = np.fft.rfft(x, nfft)
    acf = np.fft.irfft(spec * np.conj(spec), nfft)[:n]
    if acf[0] <= 0:
        return None, 0.0
    # Unbiased: a lag of L frames overlaps only n - L frames.
    acf = acf / acf[0] * n / np.maximum(n - np.arange(n), 1)
    max_lag = min(max_lag, n // 2)
    if max_lag <= min_lag + 1:
        return None, 0.0
    seg = acf[min_lag : max_lag + 1]
    peaks = np.flatnonzero((seg[1:-1] > seg[:-2]) & (seg[1:-1] >= seg[2:])) + 1
    if peaks.size == 0:
        return None, 0.0
    best = float(seg[peaks].max())
    if best < 0.25:
        return None, best
    first = int(peaks[np.flatnonzero(seg[peaks] >= 0.6 * best)[0]])
    # Parabolic interpolation around the chosen peak.
    y0, y1, y2 = seg[first - 1], seg[first], seg[first + 1]
    denom = y0 - 2 * y1 + y2
    frac = 0.5 * (y0 - y2) / denom if denom != 0 else 0.0
    return min_lag + first + float(np.clip(frac, -0.5, 0.5)), float(seg[first])


def _impact_frames(f: np.ndarray, min_gap: int, level: float) -> np.ndarray:
    """Frames of the impacts in a robust-z curve: local maxima >= ``level`` and >= 1/3 of the largest,
    at least ``min_gap`` frames apart (the stronger one wins)."""
    if f.size < 3 or float(f.max()) <= 0:
        return np.zeros(0, dtype=int)
    level = max(level, float(f.max()) / 3.0)
    cand = np.flatnonzero((f[1:-1] >= f[:-2]) & (f[1:-1] > f[2:]) & (f[1:-1] >= level)) + 1
    # Greedy non-maximum suppression: keep the strongest within each min_gap.
    keep: list[int] = []
    for i in cand[np.argsort(-f[cand])]:
        if all(abs(int(i) - k) >= min_gap for k in keep):
            keep.append(int(i))
    return np.array(sorted(keep), dtype=int)


class Explainer:
    """Explains windows of one model: holds the band edges, stats and normalisation.

    Args:
        params: the bundle's front-end parameters.
        norm: the bundle's normalisation (per-band ``lo``/``hi`` in dB).
        band_error_stats: per-band reconstruction error of the validation
            normals: ``{"mean": [n_mels], "p99": [n_mels]}`` (another high
            percentile key such as ``"p95"`` is accepted).
        threshold: the bundle's window threshold; a window at or below it with
            no band above its p99 is ``none``. Optional.
        band_level_db: per-band mean training level in dB (``n_mels``),
            optional; without it the model's reconstruction is the reference.
        settings: tuning, see :class:`ExplainSettings`.
    """

    def __init__(
        self,
        params: FeatureParams,
        norm: MinMaxNorm,
        band_error_stats: Mapping[str, Any],
        threshold: float | None = None,
        band_level_db: Sequence[float] | np.ndarray | None = None,
        settings: ExplainSettings = ExplainSettings(),
    ) -> None:
        self.params = params
        self.norm = norm
        n = params.n_mels
        if len(norm.lo) != n:
            raise ValueError(f"normalisation has {len(norm.lo)} bands, features have {n}")
        mean = _stat(band_error_stats, ("mean",), n)
        high = _stat(band_error_stats, ("p99", "p995", "p999", "p95", "p90"), n)
        if mean is None or high is None:
            raise ValueError("band_error_stats needs per-band 'mean' and 'p99' lists")
        self.err_mean = mean
        # A band with no spread in validation would make every error infinite z.
        self.err_spread = np.maximum(high - mean, 1e-6 + 0.05 * np.abs(mean))
        self.threshold = threshold
        self.band_level_db = None if band_level_db is None else np.asarray(band_level_db, dtype=np.float64).reshape(n)
        self.settings = settings
        self.edges = mel_band_edges_hz(params)
        self.centres = self.edges[1:-1]
        self.lo = np.asarray(norm.lo, dtype=np.float64)
        self.span = np.asarray(norm.hi, dtype=np.float64) - self.lo
        self.frame_s = params.hop_length / params.sample_rate
        self._log2c = np.log2(np.maximum(self.centres, 1.0))
        # Candidate band ranges for impacts: 1 and 2 octaves wide, in half-octave steps.
        ranges: set[tuple[int, int]] = set()
        top = float(self._log2c[-1])
        for width in (1.0, 2.0):
            start = float(self._log2c[0])
            while start + width <= top + 0.5:
                idx = np.flatnonzero((self._log2c >= start) & (self._log2c < start + width))
                if idx.size >= 4:
                    ranges.add((int(idx[0]), int(idx[-1])))
                start += 0.5
        self._impact_ranges = sorted(ranges) or [(0, n - 1)]

    @classmethod
    def from_bundle(cls, bundle: Any, settings: ExplainSettings = ExplainSettings(),
                    reference: str = "recon") -> Explainer:
        """Build from a loaded :class:`edge_monitor.model.bundle.ModelBundle`.

        ``reference``: ``"recon"`` explains the autoencoder's error against its
        reconstruction (``band_error`` statistics); ``"mean"`` explains the
        NumPy detectors' deviation from each band's normal level
        (``band_deviation`` statistics, :attr:`WindowScore.reference`).
        """
        stats = getattr(bundle, "band_error_stats" if reference == "recon" else "deviation_stats", None)
        if not stats:
            raise ValueError(f"{getattr(bundle, 'path', 'bundle')}: model.json has no band_error statistics")
        doc = getattr(bundle, "doc", None)
        levels = doc.band_level_db if doc is not None else None
        level_mean = levels.mean if levels is not None else None
        return cls(
            bundle.features,
            bundle.norm,
            stats,
            threshold=getattr(bundle, "threshold", None),
            band_level_db=level_mean,
            settings=settings,
        )

    # -- the explanation -----------------------------------------------------

    def __call__(self, ws: _WindowScoreLike, db: np.ndarray | None = None, *,
                 samples: np.ndarray | None = None) -> Explanation:
        """Explain one window.

        Args:
            ws: the window's score (``input``, ``recon`` of shape
                ``(n_mels, frames)``, scaled as by the bundle's
                normalisation; ``score``). A ``db`` attribute
                on it, when present and not ``None``, is used as ``db``.
            db: the window's unclipped log-mel in dB, shape ``(n_mels, >= frames)``.
            samples: or the window's mono samples (float, full scale 1.0, at the
                bundle's sample rate); its log-mel is computed here (~10 ms).

        Give ``db`` or ``samples`` whenever you can: the model input is clipped
        to ``[norm.clip_lo, norm.clip_hi]``, so without them anything beyond
        the clip (a loud squeal, a click) reads as only as loud as the clip,
        and impacts are found far less reliably.
        """
        s = self.settings
        if db is None:
            db = getattr(ws, "db", None)
        if db is None and samples is not None:
            db = logmel(np.asarray(samples, dtype=np.float32), self.params)
        x = np.asarray(ws.input, dtype=np.float64)
        y = np.asarray(ws.recon, dtype=np.float64)
        if x.ndim != 2 or x.shape != y.shape or x.shape[0] != self.params.n_mels:
            raise ValueError(f"input/recon must be ({self.params.n_mels}, frames), got {x.shape} and {y.shape}")
        # Frames touched by a sensor fault (a dropout's zeros) say nothing about the
        # machine: explain the window from its valid frames only.
        valid = getattr(ws, "valid", None)
        kept = None
        if valid is not None and not np.all(valid[: x.shape[1]]):
            kept = np.flatnonzero(np.asarray(valid, dtype=bool)[: x.shape[1]])
            if db is not None and np.ndim(db) == 2 and np.shape(db)[1] >= x.shape[1]:
                db = np.asarray(db)[:, kept]
            x, y = x[:, kept], y[:, kept]
        n_mels, frames = x.shape
        err = (x - y) ** 2
        z = (err.mean(axis=1) - self.err_mean) / self.err_spread
        sig = np.maximum(z - 1.0, 0.0)  # excess above the band's validation p99, in p99 units
        evidence = float(np.maximum(z - 2.0, 0.0).sum())

        if db is not None:
            db = np.asarray(db, dtype=np.float64)
            if db.ndim != 2 or db.shape[0] != n_mels or db.shape[1] < frames:
                raise ValueError(f"db must be ({n_mels}, >= {frames}) dB, got {db.shape}")
        in_db = self.lo[:, None] + x * self.span[:, None] if db is None else db[:, :frames]
        ref_db = self.lo[:, None] + y * self.span[:, None]
        # Cells pinned at a clip bound of the model input: their level is a bound,
        # not a value. Only the clipped input has them (``db`` is exact).
        capped_hi, capped_lo = self._pinned(x) if db is None else (np.zeros_like(x, dtype=bool),) * 2
        capped = (capped_hi, capped_lo)

        score = float(getattr(ws, "score", float(err.mean())))
        above = self.threshold is not None and score > self.threshold
        # With the bundle's training level per band, compare exact levels; without
        # it, the middle of each band's training range is the reference, and the
        # test runs on the clipped model input, where the reference's per-band
        # bias is smaller than the spread of unclipped levels.
        exact = self.band_level_db is not None and db is not None
        shift = self._level_shift(in_db if exact else self.lo[:, None] + x * self.span[:, None])
        if shift is not None:
            pinned = capped_hi if shift > 0 else capped_lo
            if db is not None and not exact:
                # Size it from the unclipped levels: the median change over the bands.
                ref = self.lo + 0.5 * self.span
                shift = float(np.median((in_db.mean(axis=1) - ref)[self.span > 1.5]))
            return self._explain_shift(shift, at_least=float(pinned.mean()) >= 0.1)

        imp = self._impacts(in_db - ref_db)
        prominence = -np.inf if imp is None or imp["hits"].size == 0 else float(imp["prominence"])
        # Impacts need a window that is anomalous on other grounds, or very prominent bursts.
        strong = evidence >= s.min_evidence or above
        impact_ok = prominence >= (s.impact_prominence if strong else s.impact_prominence_alone)
        if (self.threshold is not None and not above) or (not strong and not impact_ok):
            # Below the threshold the model calls the window normal: say so,
            # whatever small differences the bands show.
            return Explanation("none", None, None, None, None, NOTHING_STANDS_OUT)

        # 1. a steady tone (with harmonics) where the model errs, unless bursts
        #    stand out even more (then the "tone" is the bursts' ringing);
        # 2. impact: short, prominent bursts in some band range.
        if evidence >= s.min_evidence and prominence < s.impact_prominence_alone:
            tone = self._tonal(sig, z, err, in_db, ref_db, capped)
            if tone is not None:
                return tone
        if impact_ok and imp is not None:
            a, b = imp["bands"]
            hits = imp["hits"]
            period = imp["period_s"]
            lvl, at_least = self._level(in_db, ref_db, capped, a, b, hits, stat="mean")
            lo_hz, hi_hz = float(self.edges[a]), float(self.edges[b + 2])
            broad = self._octaves(a, b) >= 1.0
            where = f"{'broadband ' if broad else ''}{_fmt_range(lo_hz, hi_hz)}"
            if period is not None:
                head = f"An impact about every {period:.1f} s"
            elif hits.size > 1:
                head = f"{hits.size} impacts"
            else:
                head = "An impact"
            return Explanation(
                "impact",
                lo_hz,
                hi_hz,
                period,
                lvl,
                f"{head}, {where}{_fmt_level(lvl, at_least)}.",
                peak_hz=float(self.centres[(a + b) // 2]),
                bands=(a, b),
                event_times_s=tuple(float(t if kept is None else kept[t]) * self.frame_s for t in hits),
                excess_share=float(sig[a : b + 1].sum() / max(sig.sum(), 1e-12)),
            )

        # 3. broadband: the narrowest run of bands holding most of the excess.
        weights = sig if float(sig.sum()) > 0 else np.maximum(z, 0.0)
        if float(weights.sum()) <= 0:
            weights = np.ones(n_mels)
        a, b = _narrowest_run(weights, s.range_share)
        # Extend over neighbours that carry a fair part of the run's excess (a
        # plateau is reported whole, not cut at 70 % of its width).
        level = 0.25 * float(weights[a : b + 1].mean())
        while a > 0 and float(weights[max(0, a - 2) : a].max()) >= level:
            a -= 1
        while b < n_mels - 1 and float(weights[b + 1 : b + 3].max()) >= level:
            b += 1
        prof = np.maximum(err[a : b + 1] - self.err_mean[a : b + 1, None], 0.0).sum(axis=0)
        worse = np.flatnonzero(prof >= np.percentile(prof, 50))  # the frames that differ most
        lvl, at_least = self._level(in_db, ref_db, capped, a, b, worse, stat="mean")
        lo_hz, hi_hz = float(self.edges[a]), float(self.edges[b + 2])
        if lvl >= 1.0:
            what = "Louder running"
        elif lvl <= -1.0:
            what = "Quieter running"
        else:
            what = "Rougher running"
        return Explanation(
            "broadband",
            lo_hz,
            hi_hz,
            None,
            lvl,
            f"{what} across {_fmt_range(lo_hz, hi_hz)}{_fmt_level(lvl, at_least)}.",
            peak_hz=float(self.centres[int(np.argmax(weights))]),
            bands=(a, b),
            excess_share=float(weights[a : b + 1].sum() / weights.sum()),
        )

    def _tonal(self, sig: np.ndarray, z: np.ndarray, err: np.ndarray, in_db: np.ndarray, ref_db: np.ndarray,
               capped: tuple[np.ndarray, np.ndarray]) -> Explanation | None:
        """A steady tone (with its harmonics) where the model errs, or None.

        Two ways to find the tone's band: the sharpest peak of the level rise
        (input minus reconstruction, dB, 75th percentile over frames, minus
        the median of the neighbouring bands), where the model's error is
        also above p99; else the band with the most excess error, when it
        stands well above its neighbours and its family (tone + harmonics)
        carries a fair share of all the excess.
        """
        s = self.settings
        rise = in_db - ref_db
        r = np.percentile(rise, 75, axis=1)
        peak = r - self._local_median(r)
        cand: list[tuple[np.ndarray, int]] = []
        p_rise = int(np.argmax(peak))
        if peak[p_rise] >= s.tonal_peak_db and float(z[max(0, p_rise - 1) : p_rise + 2].max()) >= 1.0:
            cand.append((np.maximum(peak, 0.0), p_rise))
        total = float(sig.sum())
        if total > 0:
            p_sig = int(np.argmax(sig))
            if sig[p_sig] >= 2.0:
                cand.append((sig, p_sig))
        for spec, p in cand:
            a, b = self._grow(spec, p)
            fa, fb = self._fundamental(spec, p, (a, b))
            family = self._family(spec, fa, fb, (a, b))
            if spec is sig:
                share = float(sig[family].sum()) / total
                contrast = max(self._contrast(sig, fa, fb), self._contrast(sig, a, b))
                if share < s.tonal_share or contrast < s.tonal_contrast:
                    continue
            else:
                share = float(sig[family].sum()) / total if total > 0 else 0.0
            if not self._steady(rise, fa, fb):
                continue
            peak_hz = self._tone_hz(in_db, ref_db, fa, fb)
            prof = rise[fa : fb + 1].mean(axis=0)
            on = np.flatnonzero(prof >= np.percentile(prof, 50))  # the frames where the tone sounds
            lvl, at_least = self._level(in_db, ref_db, capped, fa, fb, on, stat="mean")
            lo_hz, hi_hz = float(self.edges[fa]), float(self.edges[fb + 2])
            harm = " with harmonics" if (fa, fb) != (a, b) or family.sum() > (fb - fa + 1) + 2 else ""
            return Explanation(
                "tonal",
                lo_hz,
                hi_hz,
                None,
                lvl,
                f"A new tone near {_fmt_hz(peak_hz)} ({_fmt_range(lo_hz, hi_hz)}){harm}{_fmt_level(lvl, at_least)}.",
                peak_hz=peak_hz,
                bands=(fa, fb),
                excess_share=share,
            )
        return None

    @staticmethod
    def _local_median(r: np.ndarray, half: int = 8) -> np.ndarray:
        """Median of ``r`` over bands ``b - half .. b + half`` without ``b - 1 .. b + 1``."""
        n = r.size
        out = np.empty(n)
        for b in range(n):
            idx = [i for i in range(max(0, b - half), min(n, b + half + 1)) if abs(i - b) > 1]
            out[b] = float(np.median(r[idx])) if idx else 0.0
        return out

    def _fundamental(self, spec: np.ndarray, p: int, rng: tuple[int, int]) -> tuple[int, int]:
        """The band range of the fundamental when band ``p`` is a 2nd or 3rd harmonic, else ``rng``."""
        for k in (3, 2):
            f0 = self.centres[p] / k
            q = int(np.argmin(np.abs(self.centres - f0)))
            lo_q, hi_q = max(0, q - 1), min(len(spec) - 1, q + 1)
            qq = lo_q + int(np.argmax(spec[lo_q : hi_q + 1]))
            if (spec[qq] >= 0.15 * spec[p] and spec[qq] > 0 and abs(np.log2(self.centres[qq] / f0)) < 0.1
                    and self._contrast(spec, qq, qq) >= self.settings.tonal_contrast):
                return self._grow(spec, qq)
        return rng

    def _family(self, spec: np.ndarray, fa: int, fb: int, rng: tuple[int, int]) -> np.ndarray:
        """Bands of the tone ``fa..fb``, of ``rng`` and of the harmonics that stand out in ``spec``."""
        family = np.zeros(len(spec), dtype=bool)
        family[fa : fb + 1] = True
        family[rng[0] : rng[1] + 1] = True
        f0 = float(self.centres[(fa + fb) // 2])
        for k in range(2, 6):
            if f0 * k > self.edges[-1]:
                break
            q = int(np.argmin(np.abs(self.centres - f0 * k)))
            lo_q, hi_q = max(0, q - 1), min(len(spec) - 1, q + 1)
            if self._contrast(spec, lo_q, hi_q) >= self.settings.tonal_contrast:
                family[lo_q : hi_q + 1] |= spec[lo_q : hi_q + 1] > 0
        return family

    def _steady(self, rise: np.ndarray, a: int, b: int) -> bool:
        """True when the rise in bands ``a..b`` over their neighbours lasts: on in
        >= 15 % of the frames, in runs of >= 3 frames (~0.1 s) on average. A
        squeal holds; a rattle ringing the same mode flickers; clicks are single frames."""
        n = rise.shape[0]
        nb = [i for i in range(max(0, a - 8), min(n, b + 9)) if i < a - 1 or i > b + 1]
        base = rise[nb].mean(axis=0) if nb else np.zeros(rise.shape[1])
        prof = rise[a : b + 1].mean(axis=0) - base
        top = float(np.percentile(prof, 90))
        if top <= 0:
            return False
        on = prof >= 0.5 * top
        padded = np.concatenate(([False], on, [False]))
        edges = np.flatnonzero(padded[1:] != padded[:-1])
        runs = edges[1::2] - edges[0::2]
        return bool(on.mean() >= 0.15 and runs.size and runs.mean() >= self.settings.tonal_min_run)

    @staticmethod
    def _contrast(sig: np.ndarray, a: int, b: int) -> float:
        """Mean excess in bands ``a..b`` over the mean in equally wide flanks on both sides."""
        w = max(3, b - a + 1)
        flanks = np.concatenate((sig[max(0, a - w) : a], sig[b + 1 : b + 1 + w]))
        inside = float(sig[a : b + 1].mean())
        outside = float(flanks.mean()) if flanks.size else 0.0
        return inside / outside if outside > 0 else (np.inf if inside > 0 else 0.0)

    def _grow(self, sig: np.ndarray, p: int) -> tuple[int, int]:
        """Bands around ``p`` holding >= 25 % of its excess, at most ``tonal_octaves`` wide."""
        a = b = p
        while True:
            grown = False
            for cand in (a - 1, b + 1):
                if 0 <= cand < len(sig) and sig[cand] >= 0.25 * sig[p]:
                    lo_c, hi_c = min(a, cand), max(b, cand)
                    if self._octaves(lo_c, hi_c) <= self.settings.tonal_octaves:
                        a, b, grown = lo_c, hi_c, True
            if not grown:
                return a, b

    def _impacts(self, resid: np.ndarray) -> dict[str, Any] | None:
        """Short bursts in the residual: best band range, impact frames, period, prominence.

        The residual is high-passed in time (minus a running median over
        ``2 * hp_frames + 1`` frames) so slow changes do not count, averaged
        over each candidate range (1 and 2 octaves wide, half-octave steps),
        and robustly z-scored over time; the range whose strongest frames
        stand out most wins.
        """
        s = self.settings
        n_mels, frames = resid.shape
        h = s.hp_frames
        if frames < 4 * h + 4:
            return None
        padded = np.pad(resid, ((0, 0), (h, h)), mode="edge")
        hp = resid - np.median(np.lib.stride_tricks.sliding_window_view(padded, 2 * h + 1, axis=1), axis=2)
        csum = np.concatenate((np.zeros((1, frames)), np.cumsum(hp, axis=0)), axis=0)
        k = max(2, int(round(s.impact_top_frames * frames)))
        best: dict[str, Any] | None = None
        for a, b in self._impact_ranges:
            g = (csum[b + 1] - csum[a]) / (b - a + 1)
            med = float(np.median(g))
            mad = 1.4826 * float(np.median(np.abs(g - med))) + 1e-12
            gz = (g - med) / mad
            prom = float(np.sort(gz)[-k:].mean())
            if best is None or prom > best["prominence"]:
                best = {"prominence": prom, "bands": (a, b), "gz": gz}
        if best is None:
            return None
        gz = best["gz"]
        min_gap = max(2, int(round(s.min_period_s / self.frame_s)))
        hits = _impact_frames(np.maximum(gz, 0.0), min_gap=min_gap, level=s.impact_z)
        best["hits"] = hits
        best["period_s"] = self._period(np.maximum(gz, 0.0), hits, min_gap)
        return best

    def _period(self, g: np.ndarray, hits: np.ndarray, min_gap: int) -> float | None:
        """Repetition period (s) of impacts: the median interval when regular, checked by autocorrelation."""
        if hits.size < 3:
            return None
        gaps = np.diff(hits).astype(np.float64)
        med = float(np.median(gaps))
        # Missed hits make some gaps multiples of the period: fold them back.
        mult = np.maximum(np.round(gaps / med), 1.0)
        folded = gaps / mult
        if float(np.std(folded)) > 0.15 * float(np.mean(folded)):
            lag, strength = _periodicity(g, min_gap, g.size // 2)
            return None if lag is None else lag * self.frame_s
        return float(np.sum(gaps) / np.sum(mult)) * self.frame_s

    # -- helpers -------------------------------------------------------------

    def _octaves(self, a: int, b: int) -> float:
        """Width of bands ``a..b`` in octaves (filter edges)."""
        return float(np.log2(max(self.edges[b + 2], 1.0) / max(self.edges[a], 1.0)))

    def _pinned(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cells of the model input ``x`` at its upper / lower clip bound (all False for a ``None`` bound)."""
        # The clip sets values to the bound exactly; the margin covers float32 rounding.
        hi, lo = self.norm.clip_hi, self.norm.clip_lo
        at_hi = x >= hi - 1e-3 if hi is not None else np.zeros_like(x, dtype=bool)
        at_lo = x <= lo + 1e-3 if lo is not None else np.zeros_like(x, dtype=bool)
        return at_hi, at_lo

    def _level(self, in_db: np.ndarray, ref_db: np.ndarray, capped: tuple[np.ndarray, np.ndarray], a: int, b: int,
               frames_idx: np.ndarray | None, stat: str) -> tuple[float, bool]:
        """Level change in bands ``a..b`` against normal (dB), and whether it is a lower bound.

        Per frame the bands' powers are summed; ``stat`` ("mean" of power or
        "median") combines the frames ``frames_idx`` (all when ``None``). The
        normal level is the bundle's training level when known, else the
        reconstruction of the same frames. ``capped`` are the cells pinned at
        the upper and lower clip bound: when a quarter of the cells used sit at
        the bound on the side of the change, the change is a lower bound.
        """
        sl = slice(a, b + 1)
        cols = np.arange(in_db.shape[1]) if frames_idx is None or len(frames_idx) == 0 else np.asarray(frames_idx)
        now = _power_db_sum(in_db[sl][:, cols], axis=0)
        if self.band_level_db is not None:
            ref = np.full(now.shape, float(_power_db_sum(self.band_level_db[sl][:, None], axis=0)[0]))
        else:
            ref = _power_db_sum(ref_db[sl][:, cols], axis=0)
        if stat == "median":
            change = float(np.median(now - ref))
        else:
            change = 10.0 * math.log10(float(np.mean(10.0 ** (now / 10.0)))) - 10.0 * math.log10(
                float(np.mean(10.0 ** (ref / 10.0)))
            )
        pinned = capped[0] if change > 0 else capped[1]
        at_least = bool(change != 0 and float(np.mean(pinned[sl][:, cols])) >= 0.25)
        return change, at_least

    def _tone_hz(self, in_db: np.ndarray, ref_db: np.ndarray, a: int, b: int) -> float:
        """The tone's frequency: the band with the largest level rise, refined by its neighbours."""
        rise = (in_db[a : b + 1] - ref_db[a : b + 1]).mean(axis=1)
        i = a + int(np.argmax(rise))
        if 0 < i < len(self.centres) - 1:
            # Weighted centre of the three bands around the peak (power of the rise).
            w = 10.0 ** (np.maximum((in_db[i - 1 : i + 2] - ref_db[i - 1 : i + 2]).mean(axis=1), 0.0) / 10.0) - 1.0
            if float(w.sum()) > 0:
                return float(2.0 ** (np.dot(w, self._log2c[i - 1 : i + 2]) / w.sum()))
        return float(self.centres[i])

    def _level_shift(self, in_db: np.ndarray) -> float | None:
        """The uniform level change in dB when the whole spectrum moved alike, else ``None``."""
        s = self.settings
        now = in_db.mean(axis=1)
        if self.band_level_db is not None:
            ref = self.band_level_db
        else:
            ref = self.lo + 0.5 * self.span  # the middle of the training range
        d = now - ref
        # Bands at the floor of the front end (silence) cannot move: leave them out.
        live = self.span > 1.5
        if live.sum() < max(8, 0.5 * len(d)):
            return None
        d = d[live]
        med = float(np.median(d))
        p10, p90 = np.percentile(d, [10, 90])
        agree = float(np.mean(np.sign(d) == np.sign(med)))
        if abs(med) >= s.shift_db and float(p90 - p10) <= s.shift_spread_db and agree >= 0.9:
            return med
        return None

    def _explain_shift(self, shift: float, at_least: bool = False) -> Explanation:
        lo_hz, hi_hz = float(self.edges[0]), float(self.edges[-1])
        direction = "louder" if shift > 0 else "quieter"
        return Explanation(
            "level_shift",
            lo_hz,
            hi_hz,
            None,
            shift,
            f"Everything is {'at least ' if at_least else ''}{abs(shift):.0f} dB {direction} across the whole "
            f"spectrum: "
            f"the microphone was probably moved or its gain changed; if so, run `edge-monitor-train calibrate`.",
            peak_hz=None,
            bands=(0, self.params.n_mels - 1),
            excess_share=1.0,
        )


class BundleExplainer:
    """Explains a window of any bundle from the view of the detector that fired.

    ``BundleExplainer.from_bundle(bundle)(window_score, samples=...)``: the
    autoencoder's error against its reconstruction when it fired
    (``window_score.reference == "recon"``), the deviation from each band's
    normal level when a NumPy detector fired (``"mean"``); the explanation's
    ``detector`` names it.
    """

    def __init__(self, explainers: Mapping[str, Explainer]) -> None:
        if not explainers:
            raise ValueError("no explainer")
        self.explainers = dict(explainers)

    @classmethod
    def from_bundle(cls, bundle: Any, settings: ExplainSettings = ExplainSettings()) -> BundleExplainer:
        """Raises ``ValueError`` when the bundle has no band statistics at all."""
        found = explainers_for(bundle, settings)
        if not found:
            raise ValueError(f"{getattr(bundle, 'path', 'bundle')}: model.json has no band statistics "
                             f"(band_error or band_deviation)")
        return cls(found)

    def __call__(self, ws: _WindowScoreLike, db: np.ndarray | None = None, *,
                 samples: np.ndarray | None = None) -> Explanation:
        ref = getattr(ws, "reference", "recon")
        explainer = self.explainers.get(ref)
        if explainer is None:
            raise ValueError(f"the bundle has no statistics to explain a window by {ref!r}")
        out = explainer(ws, db, samples=samples)
        fired = getattr(ws, "detector", None)
        return replace(out, detector=fired) if fired else out


def explainers_for(bundle: Any, settings: ExplainSettings = ExplainSettings()) -> dict[str, Explainer]:
    """One :class:`Explainer` per reference the bundle's detectors use: ``{"recon": ..., "mean": ...}``.

    A window is explained by the detector that fired
    (``explainers_for(b)[window_score.reference](window_score, ...)``): the
    autoencoder's reconstruction error, or the NumPy detectors' deviation from
    the normal level. A reference whose statistics the bundle lacks is left out.
    """
    out: dict[str, Explainer] = {}
    for ref in ("recon", "mean"):
        try:
            out[ref] = Explainer.from_bundle(bundle, settings, reference=ref)
        except ValueError:
            continue
    return out


def explain_window(
    ws: _WindowScoreLike,
    bundle: Any,
    db: np.ndarray | None = None,
    *,
    samples: np.ndarray | None = None,
    settings: ExplainSettings = ExplainSettings(),
) -> Explanation:
    """One-shot :class:`Explainer` for ``bundle`` (a loaded ``ModelBundle``) applied to ``ws``.

    For many windows build one :class:`Explainer` and call it instead.
    """
    return Explainer.from_bundle(bundle, settings)(ws, db=db, samples=samples)
