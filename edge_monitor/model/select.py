"""Which detectors a machine's bundle holds, and their fusion weights, chosen from its own normal sound. NumPy.

No labelled fault of a new machine exists, so the choice is made on what can
be measured from its normal clips alone:

1. every candidate detector's *out-of-fold* scores of the normal windows
   (:func:`edge_monitor.model.fit.cross_fit_scores`: a detector never scores
   a clip it was fitted on);
2. the same detectors' out-of-fold scores of *pseudo-anomalies*
   (:mod:`edge_monitor.model.pseudo`) made from those held-out windows: a new
   tone, clicks, band noise, a level step, an event removed, a speed change,
   another machine mixed in;
3. per candidate and kind, the **pseudo-AUC**: how well its score tells the
   pseudo-anomalies of that kind from the normal windows (0.5: blind);
4. the weights (:func:`choose`): each candidate's score is standardised on
   its own normal scores (:meth:`edge_monitor.model.fusion.NormalStats.robust_log`)
   and the weights on a grid of step :data:`WEIGHT_STEP` that give the fused
   score (``weighted`` rule, :func:`edge_monitor.model.fusion.weighted_power_mean`)
   the highest mean pseudo-AUC win, over the kinds that some candidate
   detects (:data:`DETECTABLE`). A candidate whose own mean pseudo-AUC is
   below :data:`MIN_FIGURE` cannot tell pseudo-anomalies from normal sound
   and gets weight 0, and is left out of the bundle (it costs nothing per
   window and cannot alarm); every other candidate keeps at least
   :data:`FLOOR`;
5. when **no** kind is detected that well by any candidate (a machine
   without transients to remove, and few clips: every figure near 0.6),
   the figures cannot rank the candidates; their differences are noise
   (without its events, valve with 10 clips chose frames 0.40, profile 0.15:
   AUC 0.694). The candidates that are not blind then get the **default
   ensemble**'s weights (:data:`DEFAULT_WEIGHTS`, renormalised over them;
   0.799 there), and the evidence says so (``Selection.fallback``).

The evidence (every candidate's figures, the chosen weights, the fused
figures) is a :class:`Selection`, stored as model.json ``selection`` and
printed by ``train`` and ``learn``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from edge_monitor.model.fusion import NormalStats, weighted_power_mean
from edge_monitor.model.pseudo import KINDS, synthesize

__all__ = [
    "MAX_PSEUDO_WINDOWS",
    "DEFAULT_WEIGHTS",
    "DETECTABLE",
    "FLOOR",
    "MIN_FIGURE",
    "MIN_PER_KIND",
    "WEIGHT_STEP",
    "MemberEvidence",
    "PseudoSet",
    "Selection",
    "auc",
    "choose",
    "default_weights",
    "make_pseudo_set",
    "pick_windows",
]

#: At most this many normal windows give pseudo-anomalies (evenly spread over the training windows).
MAX_PSEUDO_WINDOWS = 120
#: At least this many pseudo-anomalies of each kind (several draws per window from few windows):
#: with ten clips, one draw each made the choice depend on the draw (valve-10 AUC 0.77-0.81 over
#: seeds); six draws each gave the same choice for every seed tried.
MIN_PER_KIND = 60
#: A candidate whose mean pseudo-AUC is below this is blind to the pseudo-anomalies: weight 0.
MIN_FIGURE = 0.55
#: Every candidate that is not blind keeps at least this weight: a small voice in an ensemble
#: (what generalised in the DCASE first-shot analyses), which steadies the choice when ten clips
#: make the figures noisy; the member that sees most still dominates.
FLOOR = 0.05
#: The weights are chosen on the kinds that some candidate detects this well (pseudo-AUC);
#: a kind no candidate sees says nothing about which to prefer, only adds noise.
DETECTABLE = 0.75
#: The grid step of the weight search (weights sum to 1).
WEIGHT_STEP = 0.05
#: The weights used when no pseudo-anomaly kind is detectable (step 5 above): of the fixed
#: weightings of the four NumPy candidates (grid 0.05, floor 0.05), the one with the highest mean
#: test AUC over every labelled set here (valve 60 and 10 clips, synthetic rail at both
#: severities; ``bench/bench_model_choice.py --defaults``). A candidate not named here weighs
#: :data:`FLOOR` before renormalising.
DEFAULT_WEIGHTS: Mapping[str, float] = {"profile": 0.80, "frames": 0.05, "frames_mean": 0.05, "subspace": 0.10}


def auc(negative: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC of ``positive`` (should score higher) against ``negative`` scores; ties count half.

    The Mann-Whitney statistic from average ranks; no scikit-learn on the Pi.
    """
    neg = np.asarray(negative, dtype=np.float64).ravel()
    pos = np.asarray(positive, dtype=np.float64).ravel()
    if neg.size == 0 or pos.size == 0:
        raise ValueError("AUC needs scores of both classes")
    both = np.concatenate([neg, pos])
    _, inverse, counts = np.unique(both, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    ranks = (ends - (counts - 1) / 2.0)[inverse]  # average rank (1-based) of tied values
    return float((ranks[neg.size:].sum() - pos.size * (pos.size + 1) / 2.0) / (neg.size * pos.size))


@dataclass(frozen=True)
class PseudoSet:
    """Pseudo-anomalous windows made from normal training windows.

    Attributes:
        db: ``(m, n_mels, frames)`` their log-mels (dB), as the detectors score them.
        kinds: ``(m,)`` the pseudo-anomaly kind of each (:data:`edge_monitor.model.pseudo.KINDS`).
        source: ``(m,)`` the index of the normal training window each was made from
            (its clip decides which out-of-fold model scores it).
    """

    db: np.ndarray
    kinds: np.ndarray
    source: np.ndarray

    def __len__(self) -> int:
        return int(self.kinds.size)


def pick_windows(groups: np.ndarray, limit: int = MAX_PSEUDO_WINDOWS) -> np.ndarray:
    """Indices of at most ``limit`` training windows, evenly spread (every clip when there are few)."""
    n = int(np.asarray(groups).size)
    if n <= limit:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, limit).round().astype(np.int64))


def make_pseudo_set(waves: Sequence[np.ndarray], index: np.ndarray, groups: np.ndarray, sample_rate: int,
                    features: Callable[[np.ndarray], np.ndarray], seed: int = 0,
                    kinds: Sequence[str] = KINDS) -> PseudoSet:
    """Pseudo-anomalies of every kind from each given normal window: at least :data:`MIN_PER_KIND` of each.

    Args:
        waves: the normal windows' samples, each ``(window_samples,)`` float.
        index: ``(len(waves),)`` each one's index among the training windows.
        groups: ``(n_training_windows,)`` the clip of every training window
            (``other_machine`` mixes in a window of another clip when there is one).
        sample_rate: of ``waves`` (Hz).
        features: samples -> the ``(n_mels, frames)`` log-mel the detectors score
            (the one front end, cropped to the bundle's frames).
        seed: the draws (deterministic for a seed).
        kinds: which kinds.
    """
    rng = np.random.default_rng(seed)
    index = np.asarray(index)
    groups = np.asarray(groups)
    dbs: list[np.ndarray] = []
    out_kinds: list[str] = []
    source: list[int] = []
    draws = max(1, -(-MIN_PER_KIND // max(1, len(waves))))
    for x, i in [pair for pair in zip(waves, index, strict=True) for _ in range(draws)]:
        others = [k for k in range(len(waves)) if groups[index[k]] != groups[i]]
        other = waves[others[int(rng.integers(len(others)))]] if others else None
        for kind in kinds:
            made = synthesize(kind, x, sample_rate, rng, other)
            if made is None:
                continue
            dbs.append(features(made.samples))
            out_kinds.append(kind)
            source.append(int(i))
    if not dbs:
        raise ValueError("no pseudo-anomaly could be made from the normal windows")
    return PseudoSet(np.stack(dbs).astype(np.float32), np.array(out_kinds), np.array(source, dtype=np.int64))


@dataclass(frozen=True)
class MemberEvidence:
    """One candidate detector's figures.

    Attributes:
        name: the detector's name in the bundle.
        description: what it is (``DetectorSpec.describe``).
        figures: pseudo-anomaly kind -> pseudo-AUC of its out-of-fold scores.
        weight: its fusion weight (0: not in the bundle).
    """

    name: str
    description: str
    figures: dict[str, float]
    weight: float

    @property
    def figure(self) -> float:
        """The mean pseudo-AUC over the kinds."""
        return float(np.mean(list(self.figures.values())))

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "description": self.description, "weight": round(self.weight, 4),
                "pseudo_auc": round(self.figure, 4), "pseudo_auc_by_kind": {k: round(v, 4)
                                                                            for k, v in self.figures.items()}}

    @classmethod
    def from_dict(cls, data: object) -> MemberEvidence:
        if not isinstance(data, dict):
            raise ValueError(f"a selection member must be an object, got {data!r}")
        return cls(str(data["name"]), str(data.get("description", "")),
                   {str(k): float(v) for k, v in (data.get("pseudo_auc_by_kind") or {}).items()},
                   float(data.get("weight", 0.0)))


@dataclass(frozen=True)
class Selection:
    """The evidence and the choice (model.json ``selection``).

    Attributes:
        members: every candidate, chosen or not.
        fused_figures: kind -> pseudo-AUC of the fused score with the chosen weights.
        n_normal: normal (out-of-fold) windows the figures rest on.
        n_pseudo: pseudo-anomalous windows.
        seed: the pseudo-anomaly draws.
        fallback: why the weights are the default ensemble's rather than chosen ("": chosen).
        extra: keys of a newer writer, kept as read.
    """

    members: tuple[MemberEvidence, ...]
    fused_figures: dict[str, float] = field(default_factory=dict)
    n_normal: int = 0
    n_pseudo: int = 0
    seed: int = 0
    fallback: str = ""
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def weights(self) -> dict[str, float]:
        """The chosen detectors' weights (> 0), in candidate order."""
        return {m.name: m.weight for m in self.members if m.weight > 0}

    @property
    def fused_figure(self) -> float:
        return float(np.mean(list(self.fused_figures.values()))) if self.fused_figures else float("nan")

    def lines(self) -> list[str]:
        """A few lines for ``train`` and ``learn``: every candidate's figures and the choice."""
        kinds = list(self.members[0].figures) if self.members else []
        short = {k: k.replace("_", " ") for k in kinds}
        out = [f"detector choice from {self.n_normal} normal and {self.n_pseudo} pseudo-anomalous windows "
               f"(pseudo-AUC, 0.5 = blind):",
               "  " + f"{'candidate':<14}{'weight':>7}{'mean':>7}  " + "  ".join(short[k] for k in kinds)]
        for m in self.members:
            out.append("  " + f"{m.name:<14}{m.weight:>7.2f}{m.figure:>7.3f}  "
                       + "  ".join(f"{m.figures[k]:>{len(short[k])}.2f}" for k in kinds))
        if self.fused_figures:
            out.append("  " + f"{'fused':<14}{'':>7}{self.fused_figure:>7.3f}  "
                       + "  ".join(f"{self.fused_figures.get(k, float('nan')):>{len(short[k])}.2f}" for k in kinds))
        if self.fallback:
            out.append(f"  weights: the default ensemble's ({self.fallback})")
        return out

    def to_dict(self) -> dict[str, object]:
        return {"method": "pseudo-anomalies", "n_normal": self.n_normal, "n_pseudo": self.n_pseudo,
                "seed": self.seed, "min_figure": MIN_FIGURE, "weight_step": WEIGHT_STEP, "floor": FLOOR,
                "detectable": DETECTABLE,
                **({"fallback": self.fallback} if self.fallback else {}),
                "members": [m.to_dict() for m in self.members],
                "fused": {"pseudo_auc": round(self.fused_figure, 4),
                          "pseudo_auc_by_kind": {k: round(v, 4) for k, v in self.fused_figures.items()}}} | self.extra

    @classmethod
    def from_dict(cls, data: object) -> Selection:
        if not isinstance(data, dict) or not isinstance(data.get("members"), list):
            raise ValueError("'selection' must be an object with a 'members' list")
        fused = data.get("fused") or {}
        known = ("method", "n_normal", "n_pseudo", "seed", "min_figure", "weight_step", "floor", "detectable",
                 "fallback", "members", "fused")
        return cls(tuple(MemberEvidence.from_dict(m) for m in data["members"]),
                   {str(k): float(v) for k, v in (fused.get("pseudo_auc_by_kind") or {}).items()},
                   int(data.get("n_normal", 0)), int(data.get("n_pseudo", 0)), int(data.get("seed", 0)),
                   str(data.get("fallback") or ""), {k: v for k, v in data.items() if k not in known})


def _grid(n: int, step: float) -> list[np.ndarray]:
    """Every weight vector of ``n`` non-negative multiples of ``step`` that sums to 1."""
    k = int(round(1.0 / step))
    return [np.array(c, dtype=np.float64) / k for c in itertools.product(range(k + 1), repeat=n) if sum(c) == k]


def _fused_figures(z_normal: np.ndarray, z_pseudo: np.ndarray, kinds: np.ndarray, w: np.ndarray,
                   order: Sequence[str]) -> dict[str, float]:
    normal = weighted_power_mean(z_normal, w)
    pseudo = weighted_power_mean(z_pseudo, w)
    return {k: auc(normal, pseudo[kinds == k]) for k in order}


def choose(normal: Mapping[str, np.ndarray], pseudo: Mapping[str, np.ndarray], kinds: np.ndarray,
           descriptions: Mapping[str, str] | None = None, *, n_pseudo_sources: int = 0,
           seed: int = 0) -> tuple[Selection, dict[str, NormalStats]]:
    """Weights for the candidates from their normal and pseudo-anomaly scores (see the module docstring).

    Args:
        normal: candidate name -> ``(n,)`` out-of-fold scores of the normal windows (same windows for all).
        pseudo: candidate name -> ``(m,)`` out-of-fold scores of the pseudo-anomalous windows.
        kinds: ``(m,)`` each pseudo-anomalous window's kind.
        descriptions: candidate name -> a few words (stored with the evidence).
        n_pseudo_sources: recorded only (how many normal windows the pseudo-anomalies came from).
        seed: recorded only (the pseudo-anomaly draws).

    Returns:
        ``(selection, stats)``: the evidence with the weights, and every
        candidate's :meth:`NormalStats.robust_log` (the fusion standardises with these).

    Raises:
        ValueError: no candidate, or no candidate that sees the pseudo-anomalies at all.
    """
    names = list(normal)
    if not names:
        raise ValueError("no candidate detector to choose from")
    kinds = np.asarray(kinds)
    order = [k for k in KINDS if np.any(kinds == k)] + sorted(set(kinds.tolist()) - set(KINDS))
    stats = {n: NormalStats.robust_log(normal[n]) for n in names}
    figures = {n: {k: auc(normal[n], np.asarray(pseudo[n])[kinds == k]) for k in order} for n in names}
    mean_fig = {n: float(np.mean(list(figures[n].values()))) for n in names}
    able = [n for n in names if mean_fig[n] >= MIN_FIGURE]
    if not able:
        # Nothing tells pseudo-anomalies from normal: keep the least blind one, so the bundle still works.
        able = [max(names, key=lambda n: mean_fig[n])]
    z_normal = np.stack([np.asarray(normal[n], dtype=np.float64) for n in able])
    z_pseudo = np.stack([np.asarray(pseudo[n], dtype=np.float64) for n in able])
    for i, n in enumerate(able):
        st = stats[n]
        z_normal[i] = (np.log(np.maximum(z_normal[i], 1e-12)) - st.mean) / st.std
        z_pseudo[i] = (np.log(np.maximum(z_pseudo[i], 1e-12)) - st.mean) / st.std
    own = np.array([mean_fig[n] for n in able])
    judged = [k for k in order if max(figures[n][k] for n in names) >= DETECTABLE]
    fallback = ""
    if judged:
        grid = [w for w in _grid(len(able), WEIGHT_STEP) if w.min() >= min(FLOOR, 1.0 / len(able)) - 1e-9]
    else:
        # No kind is seen by anyone: the figures' differences are noise; the default ensemble decides.
        fallback = f"no pseudo-anomaly kind reaches a pseudo-AUC of {DETECTABLE:g} with any candidate"
        grid = [default_weights(able)]
    best_w, best_key, best_figs = grid[0], -np.inf, {}
    for w in grid:
        figs = _fused_figures(z_normal, z_pseudo, kinds, w, order)
        # Ties (common with few windows) go to the weights on the individually better members.
        key = float(np.mean([figs[k] for k in judged or order])) + 1e-6 * float(w @ own)
        if key > best_key:
            best_w, best_key, best_figs = w, key, figs
    weights = dict(zip(able, best_w.tolist()))
    desc = descriptions or {}
    members = tuple(MemberEvidence(n, desc.get(n, ""), figures[n], float(weights.get(n, 0.0))) for n in names)
    return (Selection(members, best_figs, n_normal=int(next(iter(normal.values())).size), n_pseudo=int(kinds.size),
                      seed=seed, fallback=fallback,
                      extra={"pseudo_sources": n_pseudo_sources} if n_pseudo_sources else {}),
            stats)


def default_weights(names: Sequence[str]) -> np.ndarray:
    """:data:`DEFAULT_WEIGHTS` of ``names`` (:data:`FLOOR` for one not named there), summing to 1."""
    w = np.array([DEFAULT_WEIGHTS.get(n, FLOOR) for n in names], dtype=np.float64)
    out: np.ndarray = w / w.sum()
    return out
