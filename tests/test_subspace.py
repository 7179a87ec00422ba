"""The subspace detector: runs of frames outside the principal subspace of normal runs (a linear autoencoder)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge_monitor.features.frontend import FeatureParams
from edge_monitor.model.bundle import DETECTORS_NPZ, MODEL_JSON, BundleError, load_bundle, sha256_file
from edge_monitor.model.detectors import Pooling, SubspaceDetector
from edge_monitor.model.fit import DEFAULT_FRAMES_MEAN, DEFAULT_SUBSPACE, fit_detector, write_numpy_bundle
from edge_monitor.model.scorer import Scorer
from edge_monitor.model.subspace import SubspaceModel, patches

N_MELS, FRAMES = 128, 312


def _smooth_windows(n: int, seed: int) -> np.ndarray:
    """Normal windows ``(n, 128, 312)`` dB: a random spectrum per frame that changes slowly in time.

    Each frame on its own is an ordinary draw; what is normal is how one frame
    follows the last (a low-passed random walk per band).
    """
    rng = np.random.default_rng(seed)
    raw = rng.normal(size=(n, N_MELS, FRAMES + 16))
    kernel = np.hanning(17)
    kernel /= np.sqrt(np.sum(kernel**2))  # unit variance after smoothing
    smooth = np.apply_along_axis(lambda x: np.convolve(x, kernel, mode="valid"), -1, raw)[..., :FRAMES]
    return -40.0 + 6.0 * smooth


def test_patches_are_runs_of_frames_frame_major() -> None:
    bands = np.arange(2 * 6, dtype=float).reshape(2, 6)  # 2 bands x 6 frames
    p = patches(bands, 3)
    assert p.shape == (4, 6)
    np.testing.assert_array_equal(p[0], [0, 6, 1, 7, 2, 8])  # frame 0's bands, frame 1's, frame 2's
    assert patches(bands, 7).shape == (0, 14)


def test_subspace_keeps_the_normal_directions_and_scores_what_is_outside() -> None:
    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.normal(size=(20, 3)))[0]  # a 3-dimensional plane in 20 dimensions
    normal = rng.normal(size=(2000, 3)) * 5.0 @ basis.T + 0.05 * rng.normal(size=(2000, 20))
    m = SubspaceModel.fit_patches(np.array_split(normal, 7), variance=0.9)
    assert m.components == 3 and m.dim == 20
    inside = m.residual(normal[:200]).mean()
    off = normal[:200] + 0.5 * rng.normal(size=(200, 20))  # the same points, pushed out of the plane
    assert m.residual(off).mean() > 20 * inside
    # The fast residual (||z||^2 - ||Vz||^2) is the explicit one.
    np.testing.assert_allclose(m.residual(off), np.mean(m.residual_values(off).astype(np.float64) ** 2, axis=1),
                               rtol=1e-4)
    # Scoring in float32 is the float64 result to 1e-4.
    z = (off - m.mean) / m.scale
    exact = np.mean((z - (z @ m.basis.T) @ m.basis) ** 2, axis=1)
    np.testing.assert_allclose(m.residual(off), exact, rtol=1e-4)
    # Round trip through the arrays a bundle holds.
    again = SubspaceModel.from_arrays(m.to_arrays("s."), "s.")
    np.testing.assert_array_equal(again.residual(off), m.residual(off))


def test_subspace_fit_survives_a_constant_band_and_caps_its_dimension() -> None:
    x = np.random.default_rng(1).normal(size=(500, 40))
    x[:, 5] = -100.0  # digital silence in one value
    m = SubspaceModel.fit_patches([x], variance=0.99, max_components=8)
    assert m.components == 8 and np.all(np.isfinite(m.residual(x)))
    with pytest.raises(ValueError, match="at least 2 patches"):
        SubspaceModel.fit_patches([x[:1]])


def test_a_changed_time_pattern_is_seen_by_the_subspace_not_by_the_frame_gaussian() -> None:
    """Shuffle a window's frames in time: every frame is as normal as before, only their order changed."""
    train = _smooth_windows(12, seed=2)
    test = _smooth_windows(8, seed=3)
    rng = np.random.default_rng(4)
    shuffled = np.stack([w[:, rng.permutation(FRAMES)] for w in test])
    sub = fit_detector(DEFAULT_SUBSPACE, train)
    frames = fit_detector(DEFAULT_FRAMES_MEAN, train)
    assert isinstance(sub, SubspaceDetector)

    def gap(det: object) -> float:  # the lowest shuffled score over the highest normal one
        s_norm = [det.score(w).score for w in test]  # type: ignore[attr-defined]
        s_shuf = [det.score(w).score for w in shuffled]  # type: ignore[attr-defined]
        return min(s_shuf) / max(s_norm)

    assert gap(sub) > 1.5  # every shuffled window above every normal one, by a margin
    assert gap(frames) < 1.1  # the frame Gaussian cannot tell (each frame is a normal draw)


def test_invalid_frames_do_not_count_and_a_cut_window_still_gets_a_score() -> None:
    train = _smooth_windows(6, seed=5)
    det = fit_detector(DEFAULT_SUBSPACE, train)
    w = _smooth_windows(1, seed=6)[0]
    spoiled = w.copy()
    spoiled[:, 100:140] = 30.0  # a sensor fault: loud garbage in frames 100..139
    valid = np.ones(FRAMES, dtype=bool)
    valid[100:140] = False
    clean = det.score(w)
    masked = det.score(spoiled, valid)
    assert det.score(spoiled).score > 5 * clean.score  # unmasked, the garbage dominates
    assert masked.score < 1.5 * clean.score
    assert np.isnan(masked.frame_scores[100:140]).all() and masked.band_share.shape == (N_MELS,)
    # Every other frame invalid: no run of 5 valid frames; runs centred on a valid frame are scored.
    alternate = np.zeros(FRAMES, dtype=bool)
    alternate[::2] = True
    assert np.isfinite(det.score(w, alternate).score)


def test_a_subspace_bundle_round_trips_and_a_wrong_basis_is_refused(tmp_path: Path) -> None:
    db = _smooth_windows(12, seed=7)
    groups = np.arange(len(db))
    meta = write_numpy_bundle(tmp_path / "b", db, groups, FeatureParams(), specs=(DEFAULT_SUBSPACE,),
                              fusion_rule="max", threshold_rule="gamma")
    (spec,) = meta["detectors"]
    assert spec["kind"] == "subspace" and spec["context"] == 5 and spec["n_bands"] == 64
    k = spec["components"]
    assert 1 <= k <= 128
    # Band averaging, then per run of 320 values: standardise, project on k vectors and back.
    assert meta["model"]["macs_per_window"] == N_MELS * FRAMES + (FRAMES - 4) * (320 + 2 * 320 * k)
    bundle = load_bundle(tmp_path / "b")
    fitted = fit_detector(DEFAULT_SUBSPACE, db.astype(np.float32))  # what the writer fits on
    w = _smooth_windows(1, seed=8)[0]
    assert Scorer(bundle).score_db(w).detector_scores["subspace"] == pytest.approx(fitted.score(w).score, rel=1e-12)

    # A basis of the wrong shape (the checksum updated to match) is refused before it is read.
    path = tmp_path / "b" / DETECTORS_NPZ
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["subspace.basis"] = arrays["subspace.basis"][:-1]
    np.savez(path, **arrays)  # type: ignore[arg-type]
    doc = json.loads((tmp_path / "b" / MODEL_JSON).read_text())
    doc["arrays"]["sha256"] = sha256_file(path)
    (tmp_path / "b" / MODEL_JSON).write_text(json.dumps(doc))
    with pytest.raises(BundleError, match=r"subspace\.basis: shape"):
        load_bundle(tmp_path / "b")


@pytest.mark.parametrize("field, value, expected", [
    ("context", 0, "context"),
    ("components", 320, "components"),
    ("variance", 1.5, "variance"),
])
def test_bad_subspace_settings_in_model_json_are_refused(tmp_path: Path, field: str, value: object,
                                                         expected: str) -> None:
    db = _smooth_windows(4, seed=9)
    write_numpy_bundle(tmp_path / "b", db, np.arange(4), FeatureParams(),
                       specs=(DEFAULT_SUBSPACE,), fusion_rule="max", threshold_rule="gamma")
    doc = json.loads((tmp_path / "b" / MODEL_JSON).read_text())
    doc["detectors"][0][field] = value
    (tmp_path / "b" / MODEL_JSON).write_text(json.dumps(doc))
    with pytest.raises(BundleError, match=expected):
        load_bundle(tmp_path / "b")


def test_top_pooling_of_runs_is_accepted() -> None:
    det = fit_detector(DEFAULT_SUBSPACE.__class__("sub_top", "subspace", pooling=Pooling("top", 0.05), n_bands=32,
                                                  context=3), _smooth_windows(4, seed=10))
    w = _smooth_windows(1, seed=11)[0]
    out = det.score(w)
    finite = out.frame_scores[np.isfinite(out.frame_scores)]
    assert out.score == pytest.approx(np.sort(finite)[-round(0.05 * finite.size):].mean())
