"""The per-machine choice of detectors, the weighted fusion, the false-alarm budget, old bundles unchanged."""

from __future__ import annotations

import json
import math
import shutil
import statistics
from pathlib import Path

import numpy as np
import pytest

from edge_monitor.audio import audio_io
from edge_monitor.features.frontend import FeatureParams, logmel, model_frames
from edge_monitor.model.bundle import MODEL_JSON, load_bundle
from edge_monitor.model.fit import NUMPY_CANDIDATES, write_numpy_bundle
from edge_monitor.model.fusion import POWER, Fusion, NormalStats
from edge_monitor.model.model_json import ModelJson
from edge_monitor.model.scorer import Scorer
from edge_monitor.model.select import DEFAULT_WEIGHTS, DETECTABLE, Selection, auc, choose
from edge_monitor.model.threshold import fit_budget_threshold, window_rate
from trainer.datasets import find_clips

KINDS = np.array(["tone"] * 40 + ["clicks"] * 40)


def test_auc_is_the_mann_whitney_statistic_with_ties_half() -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    neg, pos = rng.integers(0, 5, 30).astype(float), rng.integers(1, 7, 20).astype(float)
    assert auc(neg, pos) == pytest.approx(roc_auc_score([0] * 30 + [1] * 20, np.r_[neg, pos]))
    assert auc([1.0, 2.0], [3.0]) == 1.0 and auc([1.0], [1.0]) == 0.5


def test_a_member_blind_to_every_pseudo_anomaly_gets_no_weight() -> None:
    rng = np.random.default_rng(1)
    normal = {"seer": rng.lognormal(0.0, 0.2, 60), "blind": rng.lognormal(0.0, 0.2, 60)}
    # The seer's pseudo-anomalies score well above its normals; the blind one's like its normals.
    pseudo = {"seer": rng.lognormal(1.0, 0.2, 80), "blind": rng.lognormal(0.0, 0.2, 80)}
    selection, stats = choose(normal, pseudo, KINDS)
    weights = {m.name: m.weight for m in selection.members}
    assert weights == {"seer": 1.0, "blind": 0.0} and selection.weights == {"seer": 1.0}
    blind = next(m for m in selection.members if m.name == "blind")
    assert all(abs(v - 0.5) < 0.15 for v in blind.figures.values())  # its evidence is kept
    assert set(stats) == {"seer", "blind"} and selection.fused_figure > 0.95


def test_the_member_that_sees_the_pseudo_anomalies_dominates() -> None:
    rng = np.random.default_rng(2)
    normal = {"sharp": rng.lognormal(0.0, 0.2, 60), "dull": rng.lognormal(0.0, 0.2, 60)}
    pseudo = {"sharp": rng.lognormal(0.8, 0.2, 80), "dull": rng.lognormal(0.15, 0.2, 80)}
    selection, _ = choose(normal, pseudo, KINDS)
    assert selection.weights["sharp"] >= 0.7 and selection.weights.get("dull", 0.0) <= 0.3


def test_members_that_see_different_kinds_share_the_weight() -> None:
    rng = np.random.default_rng(3)
    normal = {"tones": rng.lognormal(0.0, 0.2, 60), "clicks": rng.lognormal(0.0, 0.2, 60)}
    tones_sees = np.r_[rng.lognormal(1.0, 0.2, 40), rng.lognormal(0.0, 0.2, 40)]
    clicks_sees = np.r_[rng.lognormal(0.0, 0.2, 40), rng.lognormal(1.0, 0.2, 40)]
    selection, _ = choose(normal, {"tones": tones_sees, "clicks": clicks_sees}, KINDS)
    assert 0.2 <= selection.weights["tones"] <= 0.8 and 0.2 <= selection.weights["clicks"] <= 0.8
    assert min(selection.fused_figures.values()) > 0.9


def test_when_no_kind_is_detectable_the_default_ensemble_decides_and_says_so() -> None:
    rng = np.random.default_rng(4)
    names = ("profile", "frames", "subspace", "frames_mean")
    normal = {n: rng.lognormal(0.0, 0.2, 60) for n in names}
    # Every candidate but one sees a little of each kind (pseudo-AUC about 0.6-0.7, below DETECTABLE);
    # frames_mean is blind (below MIN_FIGURE).
    shift = {"profile": 0.08, "frames": 0.1, "subspace": 0.15, "frames_mean": -0.1}
    pseudo = {n: rng.lognormal(shift[n], 0.2, 80) for n in names}
    selection, _ = choose(normal, pseudo, KINDS)
    figures = {m.name: m.figures for m in selection.members}
    assert max(v for f in figures.values() for v in f.values()) < DETECTABLE
    able = ("profile", "frames", "subspace")
    total = sum(DEFAULT_WEIGHTS[n] for n in able)
    assert selection.weights == pytest.approx({n: DEFAULT_WEIGHTS[n] / total for n in able})
    assert "frames_mean" not in selection.weights  # blind: still out
    assert selection.fallback and any("default ensemble" in line for line in selection.lines())
    again = Selection.from_dict(json.loads(json.dumps(selection.to_dict())))
    assert again.fallback == selection.fallback and again.weights == pytest.approx(selection.weights, abs=1e-4)
    # With one kind that a candidate sees well, the figures decide again.
    pseudo["subspace"][:40] = rng.lognormal(1.0, 0.2, 40)
    chosen, _ = choose(normal, pseudo, KINDS)
    assert not chosen.fallback and chosen.weights["subspace"] > 0.5


def test_weighted_fusion_one_window_and_many_agree_and_round_trip() -> None:
    fusion = Fusion("weighted", {"a": NormalStats(0.0, 1.0), "b": NormalStats(1.0, 0.5)}, {"a": 0.7, "b": 0.3})
    scores = {"a": np.array([1.0, math.e**2, 0.5]), "b": np.array([math.e**2, math.e, 1.0])}
    many = fusion.fuse_many(scores)
    for i in range(3):
        one = fusion.fuse({n: float(v[i]) for n, v in scores.items()})
        assert one.score == pytest.approx(many[i])
    # z(a) = 2 for the second window, z(b) = 0: (0.7 * 2^p / 1)^(1/p); a fired.
    second = fusion.fuse({"a": math.e**2, "b": math.e})
    assert second.score == pytest.approx((0.7 * 2**POWER) ** (1 / POWER)) and second.fired == "a"
    assert many[2] == 0.0  # nothing above normal in either view
    assert Fusion.from_dict(json.loads(json.dumps(fusion.to_dict())), ("a", "b")) == fusion
    with pytest.raises(ValueError, match="positive weight"):
        Fusion("weighted", {"a": NormalStats(0.0, 1.0)}, {"a": 0.0})


def test_the_budget_maps_to_the_threshold_as_documented() -> None:
    # k of n windows every hop s: alerts/day = (86400/hop) * C(n-1, k-1) * p^k.
    p = window_rate(1.0, k=2, n=3, hop_seconds=10.0)
    assert p == pytest.approx(math.sqrt(1.0 / (8640 * 2)))
    assert window_rate(6.0, k=1, n=1, hop_seconds=60.0) == pytest.approx(6.0 / 1440)
    # Hand-made normal fused scores: half at 0, the positive half with median 0.6745, i.e. a
    # half-normal of scale 1 -> the threshold is where N(0, 1)'s upper tail holds p / (2 * 0.5).
    positive = np.linspace(0.1, 1.2490, 51)  # median 0.6745
    scores = np.r_[np.zeros(51), positive]
    fit = fit_budget_threshold(scores, 1.0, k=2, n=3, hop_seconds=10.0)
    assert fit.rule == "budget" and fit.budget is not None
    assert fit.budget.sigma == pytest.approx(1.0, rel=1e-3) and fit.budget.share_positive == 0.5
    assert fit.value == pytest.approx(statistics.NormalDist().inv_cdf(1 - p), rel=1e-3)
    # A larger budget lowers it; the tail model gives back the budget at each threshold.
    assert fit.budget.threshold_for(10.0) < fit.value < fit.budget.threshold_for(0.1)
    for f in (0.1, 1.0, 10.0):
        assert fit.budget.alarms_per_day(fit.budget.threshold_for(f)) == pytest.approx(f, rel=1e-6)
    assert "1 false alert(s) per day at 2 of 3 windows every 10 s" in fit.describe()
    with pytest.raises(ValueError, match="at least 2 normal scores above 0"):
        fit_budget_threshold(np.zeros(20))


# --- bundles ----------------------------------------------------------------------------------


def _windows(paths: list[Path]) -> tuple[np.ndarray, list[np.ndarray]]:
    params = FeatureParams()
    waves = [audio_io.read_wav(p, sample_rate=16000)[:160000].astype(np.float32) for p in paths]
    return np.stack([logmel(w, params)[:, : model_frames(params.window_frames)] for w in waves]), waves


@pytest.fixture(scope="module")
def weighted_bundle(synth_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``write_numpy_bundle`` with its defaults (what ``edge-monitor learn`` writes) on the synthetic train clips."""
    train = sorted(c.path for c in find_clips(synth_dataset) if c.split == "train")
    db, waves = _windows(train)
    out = tmp_path_factory.mktemp("weighted") / "b"
    write_numpy_bundle(out, db, np.arange(len(db)), FeatureParams(), waves=waves, wave_index=range(len(db)))
    return out


def test_the_default_bundle_holds_the_chosen_detectors_and_its_evidence(weighted_bundle: Path,
                                                                       synth_dataset: Path) -> None:
    meta = json.loads((weighted_bundle / MODEL_JSON).read_text())
    bundle = load_bundle(weighted_bundle)
    doc = bundle.doc
    assert doc is not None and doc.selection is not None and bundle.fusion.rule == "weighted"
    candidates = [m["name"] for m in meta["selection"]["members"]]
    assert candidates == [s.name for s in NUMPY_CANDIDATES]
    chosen = {m["name"]: m["weight"] for m in meta["selection"]["members"] if m["weight"] > 0}
    assert list(bundle.detector_names) == list(chosen) and meta["fusion"]["weights"] == pytest.approx(chosen)
    assert sum(chosen.values()) == pytest.approx(1.0)
    for m in meta["selection"]["members"]:
        assert set(m["pseudo_auc_by_kind"]) <= {"tone", "clicks", "band_noise", "level_step", "event_removed",
                                                "speed", "other_machine"}
    assert meta["threshold"]["rule"] == "budget" and meta["threshold"]["budget"]["false_alarms_per_day"] == 1.0
    test = sorted((c for c in find_clips(synth_dataset) if c.split == "test"), key=lambda c: c.path)
    scorer = Scorer(bundle)
    scores = np.array([scorer.score_file(c.path).score for c in test])
    y = np.array([c.label == "anomaly" for c in test])
    assert auc(scores[~y], scores[y]) > 0.85 and np.all(scores >= 0)


def test_calibrate_moves_a_budget_threshold_without_recordings(weighted_bundle: Path, tmp_path: Path) -> None:
    from trainer.threshold import move_to_budget

    b = tmp_path / "b"
    shutil.copytree(weighted_bundle, b)
    old = load_bundle(b).doc
    assert old is not None and old.threshold.budget is not None
    result = move_to_budget(b, 0.1)
    new = load_bundle(b)
    assert new.threshold == pytest.approx(old.threshold.budget.threshold_for(0.1))
    assert new.threshold > old.threshold.value
    assert result.new.budget is not None and result.new.budget.false_alarms_per_day == 0.1
    assert json.loads((b / MODEL_JSON).read_text())["threshold_history"][0]["value"] == old.threshold.value


def test_a_bundle_written_before_the_choice_scores_exactly_as_before(numpy_bundle: Path, synth_dataset: Path,
                                                                     tmp_path: Path) -> None:
    """The old writer's model.json (fusion max, gamma threshold, no selection) reads, scores, writes back as it was."""
    meta = json.loads((numpy_bundle / MODEL_JSON).read_text())
    assert meta["fusion"]["rule"] == "max" and "selection" not in meta and "budget" not in meta["threshold"]
    # Written back by this version, the document is unchanged: nothing new is added to an old bundle.
    assert json.loads(json.dumps(ModelJson.from_dict(meta).to_dict())) == {
        k: v for k, v in meta.items() if k not in ("sha256",)}
    bundle = load_bundle(numpy_bundle)
    scorer = Scorer(bundle)
    clip = sorted(c.path for c in find_clips(synth_dataset) if c.split == "test")[0]
    ws = scorer.score_file(clip).windows[0]
    normal = meta["fusion"]["normal"]
    z = {n: (s - normal[n]["mean"]) / normal[n]["std"] for n, s in ws.detector_scores.items()}
    assert ws.score == max(z.values()) and ws.detector == max(z, key=z.get)
    assert bundle.threshold == meta["threshold"]["value"]


def test_operating_points_show_recall_and_false_alarms_at_each_threshold(weighted_bundle: Path) -> None:
    from trainer.operating import operating_html, operating_points

    doc = load_bundle(weighted_bundle).doc
    assert doc is not None and doc.threshold.budget is not None
    scores = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0]
    labels = ["normal"] * 4 + ["anomaly"] * 4
    rows = {p.label: p for p in operating_points(scores, labels, 1.2, doc)}
    assert rows["bundle"].recall == 1.0 and rows["bundle"].false_positive_rate == 0.25
    assert rows["bundle"].alarms_per_day == pytest.approx(doc.threshold.budget.alarms_per_day(1.2))
    assert rows["budget 0.1/day"].threshold == pytest.approx(doc.threshold.budget.threshold_for(0.1))
    # The lowest threshold that flags none of these normals is the highest normal score.
    assert rows["normals flagged <= 0%"].threshold == 1.5 and rows["normals flagged <= 0%"].false_positive_rate == 0
    html = operating_html(list(rows.values()), doc)
    assert 'id="detector-choice"' in html and 'id="operating-points"' in html and "frames_mean" in html
    assert "default ensemble" not in html
    import dataclasses

    assert doc.selection is not None
    fell_back = dataclasses.replace(doc, selection=dataclasses.replace(doc.selection, fallback="no kind seen"))
    assert "The weights are the default ensemble's: no kind seen." in operating_html([], fell_back)


def test_the_autoencoder_as_a_candidate_is_judged_on_its_validation_clips(synth_dataset: Path,
                                                                         tmp_path: Path) -> None:
    """The workstation path: the autoencoder's figures come from its validation clips; unchosen, it leaves."""
    from trainer.train import TrainConfig, train_bundle

    config = TrainConfig(epochs=2, seed=0, channels=(4, 8, 16), batch_size=4, val_split=0.25, score_test=False,
                         detectors=("autoencoder", "profile", "frames", "frames_mean"))
    result = train_bundle(synth_dataset, tmp_path / "b", config, progress=None)
    members = {m["name"]: m for m in result.meta["selection"]["members"]}
    assert set(members) == {"autoencoder", "profile", "frames", "frames_mean"}
    assert all(0.0 <= v <= 1.0 for m in members.values() for v in m["pseudo_auc_by_kind"].values())
    bundle = load_bundle(tmp_path / "b")
    chosen = [n for n, m in members.items() if m["weight"] > 0]
    assert sorted(bundle.detector_names) == sorted(chosen)
    assert (tmp_path / "b" / "model.tflite").exists() == ("autoencoder" in chosen) == bundle.has_autoencoder
    # Four validation windows are too few for a tail fit: the budget rule was asked for, the percentile used.
    thr = result.meta["threshold"]
    assert thr["source"] == "validation" and thr["requested_rule"] == "budget" and "too few" in thr["note"]
