"""The NumPy detectors, their fusion and bundles of every detector kind: fitted, written, loaded, scored."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edge_monitor.audio import audio_io
from edge_monitor.features.frontend import FeatureParams, logmel, model_frames
from edge_monitor.model.bundle import DETECTORS_NPZ, MODEL_JSON, MODEL_TFLITE, BundleError, load_bundle, sha256_file
from edge_monitor.model.detectors import Pooling, coarse_bands, profile_vector, top_count
from edge_monitor.model.fit import cross_fit_scores, fit_detector, write_numpy_bundle
from edge_monitor.model.fusion import Fusion, NormalStats
from edge_monitor.model.gaussian import GaussianModel, ledoit_wolf
from edge_monitor.model.scorer import Scorer
from trainer.datasets import find_clips

FRAMES = model_frames(FeatureParams().window_frames)


# --- Gaussian -------------------------------------------------------------------------------


@pytest.mark.parametrize("n, d", [(8, 32), (60, 32), (5000, 16)])
def test_ledoit_wolf_equals_scikit_learn(n: int, d: int) -> None:
    from sklearn.covariance import LedoitWolf

    x = np.random.default_rng(n).normal(size=(n, d)) @ np.random.default_rng(d).normal(size=(d, d))
    mean, cov, shrink = ledoit_wolf(x)
    ref = LedoitWolf().fit(x)
    np.testing.assert_allclose(mean, ref.location_, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(cov, ref.covariance_, rtol=1e-9, atol=1e-12)
    assert shrink == pytest.approx(ref.shrinkage_, rel=1e-9)


def test_mahalanobis_distance_and_contributions() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4000, 3)) * np.array([1.0, 2.0, 4.0])
    g = GaussianModel.fit(x)
    # A point one standard deviation out along each axis: squared distance ~3.
    probe = g.mean + np.array([1.0, 2.0, 4.0])
    assert float(g.sq_distance(probe)) == pytest.approx(3.0, rel=0.05)
    assert g.contributions(probe).sum() == pytest.approx(float(g.sq_distance(probe)))
    # Far out on the third axis only: that axis carries the distance.
    far = g.mean + np.array([0.0, 0.0, 40.0])
    assert int(np.argmax(g.contributions(far))) == 2


def test_gaussian_survives_constant_dimensions() -> None:
    """Digital silence in a band (a constant dimension) must not make the precision infinite."""
    x = np.random.default_rng(2).normal(size=(50, 4))
    x[:, 1] = -100.0
    g = GaussianModel.fit(x)
    assert np.all(np.isfinite(g.precision)) and np.isfinite(g.sq_distance(x[:3])).all()


# --- pooling and features -------------------------------------------------------------------


def test_top_pooling_keeps_a_short_event_that_the_mean_drowns() -> None:
    frames = np.ones(312)
    frames[100:103] = 50.0  # a 50 ms event
    assert top_count(312, 0.01) == 3
    assert Pooling("top", 0.01).apply(frames) == pytest.approx(50.0)
    assert Pooling("mean").apply(frames) == pytest.approx((309 + 150) / 312)
    valid = np.ones(312, dtype=bool)
    valid[100:103] = False  # the event's frames were a dropout: left out
    assert Pooling("top", 0.01).apply(frames, valid) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        Pooling("median")


def test_profile_vector_is_median_and_loudest_frames_per_band() -> None:
    db = np.full((128, 312), -60.0)
    db[:8, 10:13] = -20.0  # three loud frames in the lowest coarse band
    bands = coarse_bands(db, 16)
    assert bands.shape == (16, 312)
    vec = profile_vector(bands, None, 0.01)
    assert vec.shape == (32,)
    assert vec[0] == pytest.approx(-60.0) and vec[16] == pytest.approx(-20.0)
    assert np.allclose(vec[1:16], -60.0) and np.allclose(vec[17:], -60.0)
    with pytest.raises(ValueError):
        coarse_bands(db, 15)


# --- fusion ---------------------------------------------------------------------------------


def test_fusion_standardises_and_names_the_detector_that_fired() -> None:
    f = Fusion("max", {"ae": NormalStats(0.02, 0.001), "profile": NormalStats(5.0, 1.0)})
    out = f.fuse({"ae": 0.023, "profile": 6.0})
    assert out.z == pytest.approx({"ae": 3.0, "profile": 1.0})
    assert out.fired == "ae" and out.score == pytest.approx(3.0)
    assert Fusion("mean", f.stats).fuse({"ae": 0.023, "profile": 6.0}).score == pytest.approx(2.0)
    np.testing.assert_allclose(f.fuse_many({"ae": np.array([0.02, 0.023]), "profile": np.array([9.0, 5.0])}),
                               [4.0, 3.0])
    assert Fusion("none").fuse({"ae": 0.5}).score == 0.5
    with pytest.raises(ValueError):
        Fusion("none").fuse({"a": 1.0, "b": 2.0})
    with pytest.raises(ValueError):
        NormalStats.of(np.array([1.0]))


# --- fitting --------------------------------------------------------------------------------


def _windows(paths: list[Path]) -> np.ndarray:
    p = FeatureParams()
    return np.stack([logmel(audio_io.clip_windows(audio_io.read_wav(f, sample_rate=p.sample_rate),
                                                  p.window_samples)[0], p)[:, :FRAMES] for f in paths])


@pytest.fixture(scope="module")
def synth_windows(synth_dataset: Path) -> dict[str, np.ndarray]:
    clips = find_clips(synth_dataset)
    train = sorted(c.path for c in clips if c.split == "train")
    test = sorted(clips, key=lambda c: c.path)
    test = [c for c in test if c.split == "test"]
    return {"train": _windows(train), "test": _windows([c.path for c in test]),
            "labels": np.array([c.label == "anomaly" for c in test])}


def test_numpy_detectors_separate_synthetic_anomalies(synth_windows: dict[str, np.ndarray]) -> None:
    from sklearn.metrics import roc_auc_score

    from edge_monitor.model.fit import DEFAULT_FRAMES, DEFAULT_PROFILE

    for spec in (DEFAULT_PROFILE, DEFAULT_FRAMES):
        det = fit_detector(spec, synth_windows["train"])
        scores = [det.score(w).score for w in synth_windows["test"]]
        assert roc_auc_score(synth_windows["labels"], scores) > 0.9, spec.name


def test_out_of_fold_scores_are_higher_than_in_sample(synth_windows: dict[str, np.ndarray]) -> None:
    """Out-of-fold scores are what unseen normals get: higher than the scores of the fitted windows."""
    from edge_monitor.model.fit import DEFAULT_PROFILE

    db = synth_windows["train"]
    oof = cross_fit_scores(DEFAULT_PROFILE, db, np.arange(len(db)))
    inside = [fit_detector(DEFAULT_PROFILE, db).score(w).score for w in db]
    assert oof.shape == (len(db),) and np.median(oof) > np.median(inside)


# --- bundles of each kind -------------------------------------------------------------------


def test_numpy_bundle_round_trips_with_training_time_scores(numpy_bundle: Path,
                                                           synth_windows: dict[str, np.ndarray]) -> None:
    meta = json.loads((numpy_bundle / MODEL_JSON).read_text())
    assert not (numpy_bundle / MODEL_TFLITE).exists()
    assert meta["schema_version"] == 2 and [d["kind"] for d in meta["detectors"]] == ["profile", "frames"]
    assert meta["arrays"]["sha256"] == sha256_file(numpy_bundle / DETECTORS_NPZ)
    bundle = load_bundle(numpy_bundle)
    assert bundle.sha256 == meta["arrays"]["sha256"] and not bundle.has_autoencoder
    scorer = Scorer(bundle)
    assert scorer.backend == "numpy"
    # The detectors fitted at training time (on every normal clip) score exactly as the loaded ones.
    from edge_monitor.model.fit import DEFAULT_FRAMES, DEFAULT_PROFILE

    fitted = {s.name: fit_detector(s, synth_windows["train"]) for s in (DEFAULT_PROFILE, DEFAULT_FRAMES)}
    for w in synth_windows["test"][:4]:
        ws = scorer.score_db(w)
        for name, det in fitted.items():
            assert ws.detector_scores[name] == pytest.approx(det.score(w).score, rel=1e-12)
        z = {n: (ws.detector_scores[n] - bundle.fusion.stats[n].mean) / bundle.fusion.stats[n].std for n in fitted}
        assert ws.score == pytest.approx(max(z.values())) and ws.detector == max(z, key=z.get)
        assert ws.reference == "mean" and ws.band_error.shape == (128,) and ws.frame_error.shape == (FRAMES,)


def test_fused_bundle_scores_every_detector(fused_bundle: Path, synth_dataset: Path) -> None:
    from sklearn.metrics import roc_auc_score

    bundle = load_bundle(fused_bundle)
    assert bundle.detector_names == ("autoencoder", "profile", "frames") and bundle.fusion.rule == "max"
    scorer = Scorer(bundle)
    test = sorted((c for c in find_clips(synth_dataset) if c.split == "test"), key=lambda c: c.path)
    clips = [scorer.score_file(c.path) for c in test]
    ws = clips[0].windows[0]
    assert set(ws.detector_scores) == {"autoencoder", "profile", "frames"}
    if ws.detector == "autoencoder":
        assert ws.reference == "recon"
    y = [c.label == "anomaly" for c in test]
    assert roc_auc_score(y, [c.score for c in clips]) > 0.85


def test_schema_1_bundle_scores_exactly_as_trained(tiny_bundle: Path, tmp_path: Path) -> None:
    """A bundle written before detectors (schema 1: no detectors, no fusion) loads as one autoencoder."""
    old = tmp_path / "old"
    shutil.copytree(tiny_bundle, old)
    meta = json.loads((old / MODEL_JSON).read_text())
    for key in ("detectors", "fusion"):
        meta.pop(key)
    meta["schema_version"] = 1
    (old / MODEL_JSON).write_text(json.dumps(meta))
    b_old, b_new = load_bundle(old), load_bundle(tiny_bundle)
    assert b_old.doc.schema_version == 1 and b_old.detector_names == ("autoencoder",) and b_old.fusion.rule == "none"
    x = (np.random.default_rng(3).normal(size=160000) * 0.05).astype(np.float32)
    a, b = Scorer(b_old).score_window(x), Scorer(b_new).score_window(x)
    assert a.score == b.score
    # The score is the reconstruction MSE, as before detectors.
    assert a.score == pytest.approx(float(np.mean((a.recon.astype(np.float64) - a.input) ** 2)), rel=1e-12)


def test_tampered_or_missing_detector_arrays_are_refused(numpy_bundle: Path, tmp_path: Path) -> None:
    b = tmp_path / "b"
    shutil.copytree(numpy_bundle, b)
    with np.load(b / DETECTORS_NPZ) as npz:
        arrays = {k: npz[k].copy() for k in npz.files}
    arrays["profile.mean"][0] += 1.0
    np.savez(b / DETECTORS_NPZ, **arrays)
    with pytest.raises(BundleError, match="checksum mismatch"):
        load_bundle(b)
    (b / DETECTORS_NPZ).unlink()
    with pytest.raises(BundleError, match="missing"):
        load_bundle(b)


def test_write_numpy_bundle_alone(synth_windows: dict[str, np.ndarray], tmp_path: Path) -> None:
    """The runtime's own writer (``edge-monitor learn``): no trainer, no TensorFlow."""
    db = synth_windows["train"]
    meta = write_numpy_bundle(tmp_path / "b", db, np.arange(len(db)), FeatureParams(), source={"minutes": 1},
                              fusion_rule="max", threshold_rule="gamma")
    bundle = load_bundle(tmp_path / "b")
    assert bundle.threshold == meta["threshold"]["value"] and meta["training"]["minutes"] == 1
    assert meta["validation_scores"]["source"] == "out-of-fold"
    scores = np.array([Scorer(bundle).score_db(w).score for w in synth_windows["test"]])
    assert scores[synth_windows["labels"]].mean() > scores[~synth_windows["labels"]].mean()


# --- explanations from the detector that fired ----------------------------------------------


def _normal_window(synth_dataset: Path) -> np.ndarray:
    clip = sorted(c.path for c in find_clips(synth_dataset) if c.split == "test" and c.label == "normal")[0]
    return audio_io.read_wav(clip, sample_rate=16000)[:160000].astype(np.float32)


@pytest.fixture(scope="module")
def subspace_bundle(synth_windows: dict[str, np.ndarray], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bundle of the subspace detector alone on the synthetic rail (it fires every alert)."""
    from edge_monitor.model.fit import DEFAULT_SUBSPACE

    out = tmp_path_factory.mktemp("bundle") / "subspace"
    db = synth_windows["train"]
    write_numpy_bundle(out, db, np.arange(len(db)), FeatureParams(), specs=(DEFAULT_SUBSPACE,), fusion_rule="max",
                       threshold_rule="gamma")
    return out


def test_a_subspace_bundle_scores_through_the_runtime(subspace_bundle: Path,
                                                      synth_windows: dict[str, np.ndarray]) -> None:
    from sklearn.metrics import roc_auc_score

    bundle = load_bundle(subspace_bundle)
    assert [d.kind for d in bundle.detectors] == ["subspace"] and bundle.fusion.rule == "none"
    scores = [Scorer(bundle).score_db(w) for w in synth_windows["test"]]
    assert {ws.detector for ws in scores} == {"subspace"}
    assert roc_auc_score(synth_windows["labels"], [ws.score for ws in scores]) > 0.9


@pytest.mark.parametrize("bundle_fixture", ["numpy_bundle", "fused_bundle", "subspace_bundle"])
def test_explanations_come_from_the_detector_that_fired(bundle_fixture: str, synth_dataset: Path,
                                                        request: pytest.FixtureRequest) -> None:
    from edge_monitor.decide.explain import BundleExplainer

    bundle = load_bundle(request.getfixturevalue(bundle_fixture))
    scorer, explain = Scorer(bundle), BundleExplainer.from_bundle(bundle)
    x = _normal_window(synth_dataset)
    t = np.arange(x.size) / 16000.0
    tone = x + (0.05 * np.sin(2 * np.pi * 3000.0 * t)).astype(np.float32)
    ws = scorer.score_window(tone)
    assert ws.score > scorer.threshold
    ex = explain(ws, samples=tone)
    assert ex.detector == ws.detector and ex.to_dict()["detector"] == ws.detector
    assert ex.kind == "tonal" and ex.freq_lo_hz <= 3000.0 <= ex.freq_hi_hz, ex.text
    # Clicks once a second: an impact with its period, whoever fired.
    clicks = x.copy()
    for k in range(10):
        clicks[k * 16000 + 4000: k * 16000 + 4080] += 0.5 * np.random.default_rng(k).normal(size=80)
    ws = scorer.score_window(clicks)
    ex = explain(ws, samples=clicks)
    assert ws.score > scorer.threshold and ex.detector == ws.detector
    assert ex.kind == "impact" and ex.period_s == pytest.approx(1.0, rel=0.1), ex.text
