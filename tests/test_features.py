"""The log-mel front end against librosa (test-only reference), and its edge cases."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from edge_monitor.features import frontend as features
from edge_monitor.features import model_input
from edge_monitor.features.frontend import FeatureParams, LogMel, logmel, model_frames
from edge_monitor.features.model_input import MinMaxNorm
from tests.conftest import REPO, require

SR = 16000
PARAMS = FeatureParams()
TOL_DB = 1e-3
#: Parity on real 16-bit recordings and on tones, over the cells a 16-bit recording can hold.
REAL_TOL_DB = 0.01
REAL_FLOOR_DB = -90.0
#: Below a frame's loudest cell, the dynamic range checked on synthetic tones (16-bit audio spans 96 dB).
TONE_RANGE_DB = 90.0
REAL_DEV = REPO.parent / "shared" / "data" / "real-dev" / "valve"


def _librosa():
    try:
        import librosa
    except ImportError:
        librosa = None
    require(librosa is not None, "librosa (the test-only reference, extra [dev]) is not installed")
    return librosa


def librosa_logmel(x: np.ndarray, p: FeatureParams = PARAMS) -> np.ndarray:
    librosa = _librosa()
    # float64 input: librosa's float32 STFT is itself inaccurate 140 dB below a loud tone.
    s = librosa.feature.melspectrogram(
        y=np.asarray(x, dtype=np.float64), sr=p.sample_rate, n_fft=p.n_fft, hop_length=p.hop_length,
        n_mels=p.n_mels, fmin=p.f_min, fmax=p.f_max, power=p.power, center=True, pad_mode="constant",
        htk=False, norm="slaney",
    )
    return librosa.power_to_db(s, ref=p.ref, amin=p.amin, top_db=None)


def noise(seconds: float = 10.0, seed: int = 0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(int(SR * seconds))).astype(np.float32)


def sweep(seconds: float = 10.0, f0: float = 20.0, f1: float = 8000.0) -> np.ndarray:
    t = np.arange(int(SR * seconds)) / SR
    return (0.9 * np.sin(2 * np.pi * (f0 * t + (f1 - f0) / (2 * seconds) * t**2))).astype(np.float32)


def tone_over_quiet_noise() -> np.ndarray:
    """A full-scale tone over noise 120 dB down: float32 FFTs err by ~0.2 dB here."""
    t = np.arange(SR * 10) / SR
    rng = np.random.default_rng(1)
    return (0.999 * np.sin(2 * np.pi * 3000.3 * t) + 1e-6 * rng.standard_normal(t.size)).astype(np.float32)


#: Broadband signals: every cell, 1e-3 dB (float32 meets it with ~50x margin).
SIGNALS = {
    "noise": noise,
    "silence": lambda: np.zeros(SR * 10, dtype=np.float32),
    "quiet_noise_odd_length": lambda: (noise(3.3, seed=4) * 1e-4),
}
#: Pure tones: their Hann leakage falls >130 dB below the tone inside one frame, deeper than
#: float32's rounding noise (~140 dB below the frame's peak) and than any 16-bit recording
#: (96 dB): checked over the cells within TONE_RANGE_DB of each frame's loudest cell.
TONES = {
    "sweep": sweep,
    "tone_over_quiet_noise": tone_over_quiet_noise,
}


@pytest.mark.parametrize("name", sorted(SIGNALS))
def test_matches_librosa(name: str) -> None:
    x = SIGNALS[name]()
    ours = logmel(x, PARAMS)
    ref = librosa_logmel(x)
    assert ours.shape == ref.shape == (PARAMS.n_mels, 1 + x.size // PARAMS.hop_length)
    assert ours.dtype == np.float32
    err = float(np.max(np.abs(ours - ref)))
    assert err < TOL_DB, f"{name}: max |ours - librosa| = {err:.2e} dB"


@pytest.mark.parametrize("name", sorted(TONES))
def test_matches_librosa_on_tones_within_16_bit_range(name: str) -> None:
    x = TONES[name]()
    ours = logmel(x, PARAMS)
    ref = librosa_logmel(x)
    assert ours.shape == ref.shape
    checked = ref >= ref.max(axis=0, keepdims=True) - TONE_RANGE_DB
    # Meaningful: the checked cells span far more than a 16-bit recording's range.
    assert float(ref[checked].max() - ref[checked].min()) > 80.0
    err = float(np.max(np.abs(ours - ref)[checked]))
    assert err < REAL_TOL_DB, f"{name}: max |ours - librosa| = {err:.2e} dB within {TONE_RANGE_DB:g} dB of the frame peak"


def _real_clips(n: int = 6) -> list:
    """A few real 16-bit recordings (../shared/data/real-dev/valve), normal and anomalous, both domains."""
    require(REAL_DEV.is_dir(), f"real development data {REAL_DEV} is absent")
    picked = []
    for pattern in ("*source*normal*", "*target*normal*", "*source*anomaly*", "*target*anomaly*"):
        picked += sorted((REAL_DEV / "test").glob(pattern + ".wav"))[: max(1, n // 4)]
    require(len(picked) >= 4, f"too few WAVs in {REAL_DEV / 'test'}")
    return picked


def test_matches_librosa_on_real_16_bit_recordings() -> None:
    from edge_monitor.audio import audio_io

    worst = 0.0
    for path in _real_clips():
        x = audio_io.read_wav(path)
        ours, ref = logmel(x, PARAMS), librosa_logmel(x)
        checked = ref > REAL_FLOOR_DB
        assert checked.mean() > 0.9, f"{path.name}: the recording is mostly below {REAL_FLOOR_DB} dB"
        err = float(np.max(np.abs(ours - ref)[checked]))
        worst = max(worst, err)
        assert err <= REAL_TOL_DB, f"{path.name}: max |ours - librosa| = {err:.2e} dB over cells > {REAL_FLOOR_DB} dB"
    print(f"real recordings: max |ours - librosa| = {worst:.2e} dB")


def test_sweep_spans_a_wide_dynamic_range() -> None:
    """The tone parity is meaningful: the sweep covers ~130 dB between loud and quiet bands."""
    db = logmel(sweep(), PARAMS)
    assert db.max() - db.min() > 100


def test_matches_librosa_with_other_parameters() -> None:
    p = FeatureParams(n_mels=64, f_min=50.0, f_max=7000.0, n_fft=512, hop_length=256, window_seconds=2.0)
    x = noise(2.0, seed=3)
    assert float(np.max(np.abs(logmel(x, p) - librosa_logmel(x, p)))) < TOL_DB


def test_silence_and_clipping_are_finite() -> None:
    silence = logmel(np.zeros(SR * 10, dtype=np.float32))
    assert np.isfinite(silence).all()
    assert np.all(silence == pytest.approx(10 * np.log10(PARAMS.amin)))  # the documented floor: -100 dB
    clipped = np.clip(sweep() * 20, -1, 1)
    db = logmel(clipped)
    assert np.isfinite(db).all() and db.max() < 80  # full-scale square-ish wave stays bounded
    broken = noise()
    broken[::1000] = np.nan
    broken[5::1000] = np.inf
    assert np.isfinite(logmel(broken)).all()


def test_fixed_reference_keeps_level() -> None:
    """dB re a fixed reference: 10x the amplitude is +20 dB (no per-clip normalisation)."""
    x = noise()
    diff = logmel(10 * x) - logmel(x)
    np.testing.assert_allclose(diff, 20.0, atol=1e-3)


def test_frame_count_and_model_crop() -> None:
    assert logmel(noise()).shape == (128, 313)
    assert PARAMS.window_samples == 160000 and PARAMS.window_frames == 313
    assert model_frames(313) == 312 and model_frames(312) == 312 and model_frames(319) == 312
    with pytest.raises(ValueError):
        model_frames(7)
    norm = MinMaxNorm(lo=(0.0,) * 128, hi=(1.0,) * 128)
    inp = model_input.to_model_input(noise(), PARAMS, norm, 312)
    assert inp.shape == (128, 312) and inp.dtype == np.float32


def test_minmax_norm_fit_apply_round_trip() -> None:
    rng = np.random.default_rng(2)
    data = rng.normal(-40, 10, size=(6, 4, 50))
    data[:, 2] = -100.0  # a silent band: min span keeps it from dividing by zero
    norm = MinMaxNorm.fit(data)
    assert len(norm.lo) == 4
    assert norm.hi[2] - norm.lo[2] == pytest.approx(1.0)
    out = norm.apply(data[0].astype(np.float32))
    assert out.dtype == np.float32 and out.min() >= 0 and out.max() <= 1
    # Percentile bounds: 0.5 % of the fitted values at or below lo, 0.5 % at or above hi.
    assert np.isclose(norm.apply(np.full((4, 1), norm.lo[0], np.float32))[0, 0], 0.0)
    assert np.isclose(norm.apply(np.full((4, 1), norm.hi[0], np.float32))[0, 0], 1.0)
    mid = (np.array(norm.lo) + np.array(norm.hi)) / 2
    np.testing.assert_allclose(norm.apply(mid[:, None].astype(np.float32))[:, 0], 0.5, atol=1e-6)
    again = MinMaxNorm.from_dict(norm.to_dict())
    assert again == norm
    with pytest.raises(ValueError):
        MinMaxNorm.from_dict({"kind": "zscore", "lo": [0.0], "hi": [1.0]})
    with pytest.raises(ValueError):
        MinMaxNorm(lo=(0.0,), hi=())


def test_minmax_norm_clip_bounds_are_stored_and_applied() -> None:
    rng = np.random.default_rng(3)
    data = rng.normal(-40, 10, size=(6, 4, 50))
    loud = np.full((4, 3), 200.0, np.float32)  # far louder than anything in training
    quiet = np.full((4, 3), -300.0, np.float32)
    # The default (and every bundle written before the keys existed): [0, 1].
    old = MinMaxNorm.fit(data)
    assert (old.clip_lo, old.clip_hi) == (0.0, 1.0)
    legacy = MinMaxNorm.from_dict({"kind": "minmax", "lo": list(old.lo), "hi": list(old.hi)})
    assert legacy == old and legacy.apply(loud).max() == 1.0
    # Headroom: the training range still maps to 0..1, louder sound keeps its excess up to clip_hi.
    head = MinMaxNorm.fit(data, clip_lo=-1.0, clip_hi=2.0)
    mid = ((np.array(head.lo) + np.array(head.hi)) / 2)[:, None].astype(np.float32)
    np.testing.assert_allclose(head.apply(mid), old.apply(mid), atol=1e-6)
    assert np.all(head.apply(loud) == 2.0) and np.all(head.apply(quiet) == -1.0)
    above = (np.array(head.hi) + 0.5 * (np.array(head.hi) - np.array(head.lo)))[:, None].astype(np.float32)
    np.testing.assert_allclose(head.apply(above), 1.5, atol=1e-5)
    # No bound at all on one side; the choice round-trips through model.json's dict.
    open_top = MinMaxNorm.fit(data, clip_lo=0.0, clip_hi=None)
    assert open_top.apply(loud).min() > 2.0 and open_top.apply(quiet).max() == 0.0
    for norm in (head, open_top):
        again = MinMaxNorm.from_dict(norm.to_dict())
        assert again == norm
        np.testing.assert_array_equal(again.apply(loud), norm.apply(loud))
    with pytest.raises(ValueError):
        MinMaxNorm(lo=(0.0,), hi=(1.0,), clip_lo=1.0, clip_hi=0.5)


def test_params_round_trip_and_validation() -> None:
    p = FeatureParams(f_max=7600.0)
    assert FeatureParams.from_dict(p.to_dict()) == p
    with pytest.raises(ValueError, match="unknown"):
        FeatureParams.from_dict({**p.to_dict(), "bogus": 1})
    with pytest.raises(ValueError):
        FeatureParams(f_max=9000.0)


def test_filterbank_is_built_once() -> None:
    a = features.mel_filterbank(PARAMS)
    b = features.mel_filterbank(FeatureParams())
    assert a is b and not a.flags.writeable
    assert a.shape == (128, 513)
    ref = _librosa().filters.mel(sr=SR, n_fft=1024, n_mels=128, htk=False, norm="slaney")
    np.testing.assert_allclose(a, ref, rtol=1e-5, atol=1e-9)
    edges = features.mel_band_edges_hz(PARAMS)
    assert edges.shape == (130,) and edges[0] == 0 and edges[-1] == pytest.approx(8000)


def test_outputs_are_independent_and_threads_agree() -> None:
    """Internal buffers are reused per thread; results must never alias them."""
    x, y = noise(seed=5), sweep()
    a = logmel(x)
    b = logmel(y)
    assert not np.shares_memory(a, b)
    np.testing.assert_array_equal(a, logmel(x))
    results: dict[int, np.ndarray] = {}

    def work(i: int) -> None:
        for _ in range(5):
            results[i] = logmel(x if i % 2 else y)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, r in results.items():
        np.testing.assert_array_equal(r, a if i % 2 else b)
    assert np.array_equal(LogMel(PARAMS)(x), a)


def test_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="mono"):
        logmel(np.zeros((100, 2)))
    with pytest.raises(ValueError, match="at least"):
        logmel(np.zeros(10))


def test_numpy_fft_fallback_agrees(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without SciPy's compiled pocketfft the front end falls back to numpy.fft (same float32 maths)."""
    x = noise(seed=6)
    fast = logmel(x)
    monkeypatch.setattr(features, "_POCKETFFT", None)
    slow = logmel(x)
    assert float(np.max(np.abs(fast - slow))) < 1e-4
    if features._load_pocketfft() is None:  # noqa: SLF001
        pytest.skip("this SciPy has no pocketfft extension: only the fallback ran")


def test_valid_frames_marks_every_frame_whose_fft_span_touches_a_bad_sample() -> None:
    n = PARAMS.window_samples
    assert model_input.valid_frames(np.zeros(n, bool), PARAMS).shape == (313,)
    assert model_input.valid_frames(np.zeros(n, bool), PARAMS).all()
    bad = np.zeros(n, bool)
    start, length = 50_000, 3200  # a 0.2 s dropout
    bad[start : start + length] = True
    valid = model_input.valid_frames(bad, PARAMS)
    # Brute force: frame t spans [t*hop - n_fft/2, t*hop + n_fft/2) of the window.
    half = PARAMS.n_fft // 2
    expect = np.array([not bad[max(0, t * 512 - half) : max(0, t * 512 + half)].any() for t in range(313)])
    np.testing.assert_array_equal(valid, expect)
    assert (~valid).sum() in (8, 9)  # about L / hop + 2 frames: 3 % of the window
    # The frames a dropout invalidates are exactly the ones whose log-mel it changes.
    x = noise(seed=7)
    gapped = x.copy()
    gapped[bad] = 0.0
    changed = np.any(logmel(gapped) != logmel(x), axis=0)
    np.testing.assert_array_equal(changed, ~valid)
    # One bad sample at either edge of the window.
    edge = np.zeros(n, bool)
    edge[0] = edge[-1] = True
    v = model_input.valid_frames(edge, PARAMS)
    assert not v[0] and not v[1] and v[2] and not v[-1] and v[-3]


def test_valid_frames_at_another_sample_rate_maps_by_time() -> None:
    bad48 = np.zeros(480_000, bool)
    bad48[150_000:159_600] = True  # the same 0.2 s at 48 kHz, 3.125 s into the window
    bad16 = np.zeros(160_000, bool)
    bad16[50_000:53_200] = True
    v48 = model_input.valid_frames(bad48, PARAMS, sample_rate=48_000)
    v16 = model_input.valid_frames(bad16, PARAMS)
    assert v48.shape == v16.shape == (313,)
    assert np.all(v48 <= v16) and (~v48).sum() <= (~v16).sum() + 2  # 2 ms of resampler reach each side
    with pytest.raises(ValueError):
        model_input.valid_frames(np.zeros((10, 2), bool), PARAMS)


def test_fill_invalid_frames_uses_each_bands_median_over_valid_frames() -> None:
    rng = np.random.default_rng(8)
    inp = rng.random((4, 20)).astype(np.float32)
    valid = np.ones(21, bool)  # one more than the model's frames: the cropped frame is ignored
    assert model_input.fill_invalid_frames(inp, valid) is inp
    valid[5:8] = False
    out = model_input.fill_invalid_frames(inp, valid)
    np.testing.assert_array_equal(out[:, valid[:20]], inp[:, valid[:20]])
    np.testing.assert_allclose(out[:, 6], np.median(inp[:, valid[:20]], axis=1))
    assert out.dtype == np.float32 and not np.shares_memory(out, inp)
    with pytest.raises(ValueError, match="no valid"):
        model_input.fill_invalid_frames(inp, np.zeros(20, bool))
