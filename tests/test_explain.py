"""Explanations: the rules on constructed error maps, then on the generator's anomalies with a trained model."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from edge_monitor.decide.explain import KINDS, NOTHING_STANDS_OUT, Explainer, Explanation, explain_window
from edge_monitor.features.frontend import FeatureParams, mel_band_edges_hz
from edge_monitor.features.model_input import MinMaxNorm
from edge_monitor.model.scorer import WindowScore

PARAMS = FeatureParams()
N_MELS, FRAMES = PARAMS.n_mels, 312
FRAME_S = PARAMS.hop_length / PARAMS.sample_rate  # 32 ms
# Every band spans -80..-40 dB: 0.1 of model input = 4 dB.
NORM = MinMaxNorm(lo=(-80.0,) * N_MELS, hi=(-40.0,) * N_MELS)
CENTRES = mel_band_edges_hz(PARAMS)[1:-1]


def _window(x: np.ndarray, recon: np.ndarray) -> WindowScore:
    err = (x - recon) ** 2
    return WindowScore(float(err.mean()), err.mean(axis=1), err.mean(axis=0), x, recon)


def _normal_input(rng: np.random.Generator) -> np.ndarray:
    """A steady machine: every band at mid-range with frame-to-frame noise (model input units)."""
    return np.clip(0.5 + 0.05 * rng.standard_normal((N_MELS, FRAMES)), 0.0, 1.0)


RECON = np.full((N_MELS, FRAMES), 0.5)  # a model that expects the steady machine


@pytest.fixture(scope="module")
def explainer() -> Explainer:
    rng = np.random.default_rng(0)
    val = np.array([_window(_normal_input(rng), RECON).band_error for _ in range(30)])
    stats = {"mean": val.mean(axis=0), "p99": np.percentile(val, 99, axis=0)}
    threshold = float(np.max([(_normal_input(rng) - RECON).__pow__(2).mean() for _ in range(10)]) * 1.02)
    return Explainer(PARAMS, NORM, stats, threshold=threshold)


# --- the rules, on constructed maps (exact, no model) ------------------------------------------


def test_normal_window_says_nothing_stands_out(explainer: Explainer) -> None:
    rng = np.random.default_rng(11)
    for _ in range(5):
        ex = explainer(_window(_normal_input(rng), RECON))
        assert ex.kind == "none"
        assert ex.text == NOTHING_STANDS_OUT
        assert ex.to_dict() == {
            "kind": "none", "freq_lo_hz": None, "freq_hi_hz": None, "period_s": None,
            "level_change_db": None, "text": NOTHING_STANDS_OUT,
        }


def test_a_sustained_narrow_band_is_tonal(explainer: Explainer) -> None:
    rng = np.random.default_rng(1)
    x = _normal_input(rng)
    on = (np.arange(FRAMES) // 20) % 3 != 0  # the tone comes and goes: on 2/3 of the time
    x[70, on] += 0.3  # +12 dB in band 70
    x[71, on] += 0.15
    ex = explainer(_window(np.clip(x, 0, 1), RECON))
    assert ex.kind == "tonal"
    assert ex.freq_lo_hz <= CENTRES[70] <= ex.freq_hi_hz
    assert np.log2(ex.freq_hi_hz / ex.freq_lo_hz) <= 0.5
    assert ex.peak_hz is not None and abs(np.log2(ex.peak_hz / CENTRES[70])) < 0.05
    assert ex.period_s is None
    assert 8.0 < ex.level_change_db < 14.0
    assert ex.text.startswith("A new tone near ")
    assert f"{ex.level_change_db:.0f} dB above normal." in ex.text


def test_a_tone_with_harmonics_is_reported_at_its_fundamental(explainer: Explainer) -> None:
    rng = np.random.default_rng(2)
    x = _normal_input(rng)
    f0 = 1500.0
    b1 = int(np.argmin(np.abs(CENTRES - f0)))
    b2 = int(np.argmin(np.abs(CENTRES - 2 * f0)))
    x[b1] += 0.15  # the fundamental is weaker than its 2nd harmonic, as a squeal can be
    x[b2] += 0.3
    ex = explainer(_window(np.clip(x, 0, 1), RECON))
    assert ex.kind == "tonal"
    assert ex.freq_lo_hz <= f0 <= ex.freq_hi_hz
    assert "with harmonics" in ex.text


def test_repeating_short_broadband_bursts_are_impacts_with_their_period(explainer: Explainer) -> None:
    rng = np.random.default_rng(3)
    x = _normal_input(rng)
    hits = np.arange(7, FRAMES, 25)  # every 25 frames = 0.8 s
    x[60:, hits] += 0.4
    ex = explainer(_window(np.clip(x, 0, 1), RECON))
    assert ex.kind == "impact"
    assert ex.period_s == pytest.approx(25 * FRAME_S, rel=0.02)
    assert ex.freq_hi_hz > 4000 and ex.freq_lo_hz < 3000
    assert np.allclose(ex.event_times_s, hits * FRAME_S)
    assert ex.text.startswith("An impact about every 0.8 s, broadband ")
    assert ex.level_change_db > 10


def test_a_single_burst_is_an_impact_without_period(explainer: Explainer) -> None:
    rng = np.random.default_rng(4)
    x = _normal_input(rng)
    x[40:, 150] += 0.5
    ex = explainer(_window(np.clip(x, 0, 1), RECON))
    assert ex.kind == "impact"
    assert ex.period_s is None
    assert ex.event_times_s == pytest.approx((150 * FRAME_S,))
    assert ex.text.startswith("An impact, ")


def test_a_wide_sustained_rise_is_broadband(explainer: Explainer) -> None:
    rng = np.random.default_rng(5)
    x = _normal_input(rng)
    x[50:100] += 0.15 + 0.03 * rng.standard_normal((50, FRAMES))  # +6 dB, rougher
    ex = explainer(_window(np.clip(x, 0, 1), RECON))
    assert ex.kind == "broadband"
    assert ex.freq_lo_hz <= CENTRES[55] and ex.freq_hi_hz >= CENTRES[95]
    assert 4.0 < ex.level_change_db < 9.0
    assert ex.text.startswith("Louder running across ")


def test_the_same_shift_in_every_band_is_a_level_shift(explainer: Explainer) -> None:
    rng = np.random.default_rng(6)
    ex = explainer(_window(np.clip(_normal_input(rng) + 0.2, 0, 1), RECON))  # +8 dB everywhere
    assert ex.kind == "level_shift"
    assert ex.level_change_db == pytest.approx(8.0, abs=1.0)
    assert "edge-monitor-train calibrate" in ex.text
    assert "louder" in ex.text
    quieter = explainer(_window(np.clip(_normal_input(rng) - 0.15, 0, 1), RECON))
    assert quieter.kind == "level_shift" and quieter.level_change_db == pytest.approx(-6.0, abs=1.0)


def test_unclipped_db_gives_the_true_level(explainer: Explainer) -> None:
    rng = np.random.default_rng(7)
    x = _normal_input(rng)
    db = -80.0 + 40.0 * x
    db[70] += 30.0  # a tone far above the training range: the model input clips at 1
    x = np.clip((db + 80.0) / 40.0, 0, 1)
    clipped = explainer(_window(x, RECON))
    exact = explainer(_window(x, RECON), db=db)
    assert clipped.kind == exact.kind == "tonal"
    assert "at least" in clipped.text
    assert exact.level_change_db == pytest.approx(30.0, abs=2.0)
    assert "at least" not in exact.text


def _explainer_with(norm: MinMaxNorm, like: Explainer) -> Explainer:
    stats = {"mean": like.err_mean, "p99": like.err_mean + like.err_spread}
    return Explainer(PARAMS, norm, stats, threshold=like.threshold)


@pytest.mark.parametrize(
    ("clip_lo", "clip_hi", "rise_db", "at_least"),
    [
        (-1.0, 2.0, 30.0, False),  # x ~ 1.25: above the training range, inside the headroom: exact
        (-1.0, 2.0, 70.0, True),  # x ~ 2.25 pinned at 2: a lower bound
        (None, None, 70.0, False),  # no clip: never a bound
        (0.0, 1.0, 30.0, True),  # an old [0, 1] bundle: pinned at 1
    ],
)
def test_at_least_only_when_the_input_hit_the_bundle_s_clip(
    explainer: Explainer, clip_lo: float | None, clip_hi: float | None, rise_db: float, at_least: bool
) -> None:
    norm = MinMaxNorm(lo=NORM.lo, hi=NORM.hi, clip_lo=clip_lo, clip_hi=clip_hi)
    ex_er = _explainer_with(norm, explainer)
    db = -80.0 + 40.0 * _normal_input(np.random.default_rng(7))
    db[70] += rise_db  # a tone above the training range
    ex = ex_er(_window(norm.apply(db).astype(np.float64), RECON))
    assert ex.kind == "tonal"
    assert ("at least" in ex.text) is at_least
    if not at_least:  # the model input still holds the true level
        assert ex.level_change_db == pytest.approx(rise_db, abs=2.0)


def test_old_bundles_without_clip_keys_keep_the_0_1_cap(explainer: Explainer) -> None:
    old = MinMaxNorm.from_dict({"kind": "minmax", "lo": list(NORM.lo), "hi": list(NORM.hi)})
    assert (old.clip_lo, old.clip_hi) == (0.0, 1.0)
    db = -80.0 + 40.0 * _normal_input(np.random.default_rng(7))
    db[70] += 30.0
    ex = _explainer_with(old, explainer)(_window(old.apply(db).astype(np.float64), RECON))
    assert ex.kind == "tonal" and "at least" in ex.text


def test_a_level_shift_in_the_headroom_is_exact(explainer: Explainer) -> None:
    norm = MinMaxNorm(lo=NORM.lo, hi=NORM.hi, clip_lo=-1.0, clip_hi=2.0)
    db = -80.0 + 40.0 * _normal_input(np.random.default_rng(6)) + 20.0  # +20 dB everywhere: x ~ 1.0
    ex = _explainer_with(norm, explainer)(_window(norm.apply(db).astype(np.float64), RECON))
    assert ex.kind == "level_shift" and "at least" not in ex.text
    assert ex.level_change_db == pytest.approx(20.0, abs=1.0)
    # The same shift under an old [0, 1] clip pins the top of many bands: a lower bound.
    old = MinMaxNorm(lo=NORM.lo, hi=NORM.hi)
    ex_old = _explainer_with(old, explainer)(_window(old.apply(db).astype(np.float64), RECON))
    assert ex_old.kind == "level_shift" and "at least" in ex_old.text


def test_to_dict_is_the_alert_payload(explainer: Explainer) -> None:
    rng = np.random.default_rng(8)
    x = _normal_input(rng)
    x[70] += 0.3
    d = explainer(_window(np.clip(x, 0, 1), RECON)).to_dict()
    assert list(d) == ["kind", "freq_lo_hz", "freq_hi_hz", "period_s", "level_change_db", "text"]
    assert d["kind"] in KINDS
    json.dumps(d)  # plain JSON types only
    assert isinstance(d["freq_lo_hz"], float) and d["freq_lo_hz"] == round(d["freq_lo_hz"])


def test_bad_inputs_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="mean"):
        Explainer(PARAMS, NORM, {"p99": [0.0] * N_MELS})
    with pytest.raises(ValueError, match="expected 128"):
        Explainer(PARAMS, NORM, {"mean": [0.0] * 3, "p99": [0.0] * 3})
    ex = Explainer(PARAMS, NORM, {"mean": [0.01] * N_MELS, "p99": [0.02] * N_MELS})
    with pytest.raises(ValueError, match="input/recon"):
        ex(_window(np.zeros((64, 312)), np.zeros((64, 312))))

    @dataclass
    class NoStatsDoc:
        band_error: None = None

    @dataclass
    class NoStats:
        path: str = "bundle"
        doc: NoStatsDoc = field(default_factory=NoStatsDoc)

    with pytest.raises(ValueError, match="no band_error"):
        Explainer.from_bundle(NoStats())  # type: ignore[arg-type]


def test_explanation_is_frozen_and_kinds_are_documented() -> None:
    import edge_monitor.decide.explain as mod

    ex = Explanation("none", None, None, None, None, NOTHING_STANDS_OUT)
    with pytest.raises(AttributeError):
        ex.kind = "tonal"  # type: ignore[misc]
    for kind in KINDS:
        assert f"``{kind}``" in (mod.__doc__ or "")


# --- the generator's anomalies through the tiny trained bundle (tests/conftest.py) ----------------
#
# Fresh clips of machine id_00 of the fixture's dataset (seed 0), scored by the
# runtime Scorer; the explanation gets the window's samples (unclipped levels),
# as the daemon gives them. The tiny model (default architecture and clip) sees a
# squeal at the default severity; a rail-damage click train at severity 3 (at
# severity 1 the tiny model scores most such windows below its threshold).

SYNTH_SEED, SYNTH_ID = 0, "id_00"  # conftest.synth_dataset


@pytest.fixture(scope="module")
def tiny(tiny_bundle: Path):
    from edge_monitor.model.bundle import load_bundle
    from edge_monitor.model.scorer import Scorer

    bundle = load_bundle(tiny_bundle)
    return Scorer(bundle), Explainer.from_bundle(bundle)


def _clips(kind: str | None, severity: float, n: int = 3):
    from trainer.synth import FactoryProfile, MachineProfile, clip_rng, synthesize_clip

    machine = MachineProfile.from_seed(SYNTH_SEED, SYNTH_ID)
    factory = FactoryProfile.from_seed(SYNTH_SEED)
    for i in range(n):
        # Indices far above the fixture's, so these clips are not in its dataset.
        rng = clip_rng(SYNTH_SEED, SYNTH_ID, "test", kind, 1000 + i)
        yield synthesize_clip(machine, rng, kind, severity=severity, factory=factory)


def _explained(tiny, kind: str | None, severity: float, n: int = 3):
    scorer, explainer = tiny
    for samples, info in _clips(kind, severity, n):
        ws = scorer.score_window(samples)
        yield ws, explainer(ws, samples=samples), info


def test_missing_grease_is_a_tone_at_the_squeal_frequency(tiny) -> None:
    for ws, ex, info in _explained(tiny, "missing_grease", 1.0):
        assert ex.kind == "tonal", (info.squeal_hz, ws.score, ex.text)
        assert ex.freq_lo_hz <= info.squeal_hz <= ex.freq_hi_hz, (info.squeal_hz, ex.text)
        assert abs(np.log2(ex.peak_hz / info.squeal_hz)) < 0.1
        assert ex.level_change_db > 6.0
        assert "tone near" in ex.text


def test_rail_damage_is_an_impact_once_per_pass(tiny) -> None:
    for ws, ex, info in _explained(tiny, "rail_damage", 3.0):
        assert ex.kind == "impact", (ws.score, ex.text)
        assert ex.period_s == pytest.approx(info.pass_period_s, rel=0.10), (info.pass_period_s, ex.text)
        assert f"every {ex.period_s:.1f} s" in ex.text
        # The impacts found are the carriage's passes over the damage.
        damage = np.asarray(info.damage_times_s)
        near = [np.min(np.abs(damage - t)) <= 2 * FRAME_S for t in ex.event_times_s]
        assert np.mean(near) >= 0.8


def test_loose_belt_is_broadband_or_impacts(tiny) -> None:
    explained = [(ws, ex) for ws, ex, _ in _explained(tiny, "loose_belt", 3.0)]
    scorer, _ = tiny
    alerts = [(ws, ex) for ws, ex in explained if ws.score > scorer.threshold]
    assert len(alerts) >= 2
    for ws, ex in alerts:
        assert ex.kind in ("broadband", "impact"), ex.text


def test_normal_windows_below_threshold_say_nothing_stands_out(tiny) -> None:
    scorer, explainer = tiny
    quiet = [(ws, explainer(ws, samples=x)) for x, _ in _clips(None, 1.0, 6) for ws in [scorer.score_window(x)]]
    below = [ex for ws, ex in quiet if ws.score <= scorer.threshold]
    assert below, "the tiny model scored every normal window above its threshold"
    assert all(ex.kind == "none" and ex.text == NOTHING_STANDS_OUT for ex in below)


def test_a_re_gained_microphone_is_a_level_shift(tiny) -> None:
    scorer, explainer = tiny
    for samples, _ in _clips(None, 1.0, 2):
        louder = samples * 10 ** (9 / 20)  # +9 dB: the same sound, more gain
        ex = explainer(scorer.score_window(louder), samples=louder)
        assert ex.kind == "level_shift", ex.text
        assert ex.level_change_db == pytest.approx(9.0, abs=2.0)
        assert "calibrate" in ex.text


def test_explain_window_matches_the_explainer(tiny, tiny_bundle: Path) -> None:
    from edge_monitor.model.bundle import load_bundle

    scorer, explainer = tiny
    samples, _ = next(_clips("missing_grease", 1.0, 1))
    ws = scorer.score_window(samples)
    assert explain_window(ws, load_bundle(tiny_bundle), samples=samples) == explainer(ws, samples=samples)


def test_score_explain_uses_the_worst_window_s_samples(tiny, tiny_bundle: Path, tmp_path: Path) -> None:
    """``edge-monitor score --explain`` explains the highest-scoring window from its own samples."""
    import contextlib
    import io

    from edge_monitor.audio import audio_io
    from edge_monitor.cli import main

    scorer, explainer = tiny[0], tiny[1]
    clip = np.concatenate([next(_clips("rail_damage", 3.0, n=1))[0], next(_clips(None, 1.0, n=1))[0][:80_000]])
    path = audio_io.write_wav(tmp_path / "long.wav", clip)  # 15 s: windows at 0 s and 5 s
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["score", str(tiny_bundle), str(path), "--json", "--explain"]) == 0
    row = json.loads(out.getvalue())
    x = audio_io.read_wav(path)
    windows = audio_io.clip_windows(x, scorer.window_samples)
    scores = [scorer.score_window(w) for w in windows]
    k = int(np.argmax([w.score for w in scores]))
    assert row["windows"] == len(windows) == 2
    # Explained from the view of the detector that fired (the bundle's only one), which it names.
    assert row["explanation"] == {**explainer(scores[k], samples=windows[k]).to_dict(), "detector": "autoencoder"}
