"""The runtime scorer and TFLite backend: shapes, the score definition, errors, no TensorFlow."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge_monitor.audio import audio_io
from edge_monitor.features.model_input import to_model_input
from edge_monitor.model.bundle import load_bundle
from edge_monitor.model.scorer import Scorer
from edge_monitor.model.tflite_backend import TFLiteError, load_interpreter_class

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def scorer(tiny_bundle: Path) -> Scorer:
    return Scorer(load_bundle(tiny_bundle))


def _clip(synth_dataset: Path, kind: str = "normal") -> Path:
    return sorted((synth_dataset / "test").glob(f"{kind}_id_00_*.wav"))[0]


def test_score_window_is_the_reconstruction_mse(scorer: Scorer, synth_dataset: Path) -> None:
    samples = audio_io.read_wav(_clip(synth_dataset))
    ws = scorer.score_window(samples)
    assert ws.input.shape == ws.recon.shape == (128, 312)
    assert ws.band_error.shape == (128,) and ws.frame_error.shape == (312,)
    np.testing.assert_array_equal(ws.input, to_model_input(samples, scorer.features, scorer.norm, 312))
    assert 0.0 <= ws.recon.min() and ws.recon.max() <= 1.0  # sigmoid output, like the input
    mse = float(np.mean((ws.recon.astype(np.float64) - ws.input) ** 2))
    assert ws.score == pytest.approx(mse, rel=1e-9)
    assert ws.band_error.mean() == pytest.approx(ws.score, rel=1e-9)
    assert ws.frame_error.mean() == pytest.approx(ws.score, rel=1e-9)
    # The interpreter and its buffers are reused: the same window scores the same.
    assert scorer.score_window(samples).score == ws.score


def test_score_clip_uses_the_clip_window_rule(scorer: Scorer, synth_dataset: Path) -> None:
    samples = audio_io.read_wav(_clip(synth_dataset))
    long = np.concatenate([samples, samples, samples[:80000]])  # 25 s -> windows at 0, 10 and 15 s
    cs = scorer.score_clip(long)
    assert len(cs.windows) == 3
    assert cs.score == pytest.approx(np.mean([w.score for w in cs.windows]))
    assert cs.windows[0].score == scorer.score_window(samples).score
    assert scorer.score_file(_clip(synth_dataset)).score == pytest.approx(cs.windows[0].score)


def test_the_bundles_clip_bounds_are_what_the_runtime_applies(tiny_bundle: Path, synth_dataset: Path,
                                                               tmp_path: Path) -> None:
    import json
    import shutil

    # A rail 20 dB louder than anything in training (a new, much louder noise source).
    loud = np.clip(audio_io.read_wav(_clip(synth_dataset)) * 10.0, -1.0, 1.0)
    variants = {}
    for name, (lo, hi) in {"unit": (0.0, 1.0), "headroom": (-1.0, 2.0)}.items():
        dest = tmp_path / name
        shutil.copytree(tiny_bundle, dest)
        meta = json.loads((dest / "model.json").read_text())
        meta["normalisation"].update(clip_lo=lo, clip_hi=hi)  # model.tflite (and its checksum) unchanged
        (dest / "model.json").write_text(json.dumps(meta))
        sc = Scorer(load_bundle(dest))
        assert (sc.norm.clip_lo, sc.norm.clip_hi) == (lo, hi)
        variants[name] = sc.score_window(loud)
    unit, head = variants["unit"], variants["headroom"]
    assert unit.input.max() == 1.0 and head.input.max() == 2.0
    # Where the input is inside the training range both see the same value; above it, only
    # the headroom keeps the excess, which the sigmoid cannot follow: a larger error.
    inside = unit.input < 1.0
    np.testing.assert_array_equal(head.input[inside & (head.input >= 0)], unit.input[inside & (head.input >= 0)])
    assert head.score > unit.score


def test_bad_input_is_refused_clearly(scorer: Scorer, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="160000 samples"):
        scorer.score_window(np.zeros(1000, dtype=np.float32))
    with pytest.raises(audio_io.ClipTooShortError):
        scorer.score_clip(np.zeros(16000, dtype=np.float32))
    short = audio_io.write_wav(tmp_path / "short.wav", np.zeros(8000, dtype=np.float32))
    with pytest.raises(audio_io.AudioFileError, match="short.wav"):
        scorer.score_file(short)
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"this is no wav")
    with pytest.raises(audio_io.AudioFileError, match="junk.wav"):
        scorer.score_file(junk)


def test_threads_do_not_change_the_score(tiny_bundle: Path, scorer: Scorer, synth_dataset: Path) -> None:
    samples = audio_io.read_wav(_clip(synth_dataset, "anomaly"))
    two = Scorer(load_bundle(tiny_bundle), num_threads=2)
    assert two.score_window(samples).score == pytest.approx(scorer.score_window(samples).score, rel=1e-5)


def test_backend_order_and_report(scorer: Scorer) -> None:
    assert scorer.backend == "ai_edge_litert"
    cls, name = load_interpreter_class()
    assert name == "ai_edge_litert" and cls.__module__.startswith("ai_edge_litert")
    # tflite-runtime 2.14 crashes with NumPy 2: never picked with NumPy 2.
    if int(np.__version__.split(".")[0]) >= 2:
        with pytest.raises(TFLiteError, match="NumPy 2"):
            load_interpreter_class(prefer="tflite_runtime")


def test_runtime_scoring_never_imports_tensorflow(tiny_bundle: Path, synth_dataset: Path) -> None:
    code = (
        "import sys\n"
        "from edge_monitor.model.bundle import load_bundle\n"
        "from edge_monitor.model.scorer import Scorer\n"
        f"s = Scorer(load_bundle({str(tiny_bundle)!r}))\n"
        f"print(s.backend, s.score_file({str(_clip(synth_dataset))!r}).score)\n"
        "bad = sorted(m for m in ('tensorflow', 'keras', 'matplotlib', 'sklearn', 'librosa', 'scipy.signal')"
        " if m in sys.modules)\n"
        "assert not bad, bad\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    # The interpreter's native "Created TensorFlow Lite XNNPACK delegate" line would
    # break the daemon's JSON log lines.
    assert "XNNPACK" not in out.stderr
    backend, score = out.stdout.split()
    assert backend == "ai_edge_litert" and float(score) > 0


def test_a_model_file_that_is_no_tflite_model_is_a_bundle_error(tiny_bundle: Path, tmp_path: Path) -> None:
    import json
    import shutil

    from edge_monitor.model.bundle import BundleError, write_model_json

    dest = tmp_path / "b"
    shutil.copytree(tiny_bundle, dest)
    (dest / "model.tflite").write_bytes(b"\0" * 64)
    write_model_json(dest, json.loads((dest / "model.json").read_text()))  # checksum matches the junk
    with pytest.raises(BundleError, match="model.tflite: cannot open TFLite model"):
        Scorer(load_bundle(dest))


def test_predict_conditions_a_raw_window_the_one_way(scorer: Scorer, synth_dataset: Path) -> None:
    """Scorer.predict: a 44.1 kHz stereo window with a dropout scores as its conditioned mono on the valid frames."""
    from edge_monitor.audio.ring_buffer import Window
    from edge_monitor.features.model_input import valid_frames
    from edge_monitor.model.conditioning import TooFewValidFrames, to_model_audio

    mono = audio_io.read_wav(_clip(synth_dataset))
    raw = np.stack([audio_io.resample(mono, 16000, 44100), 0.5 * audio_io.resample(mono, 16000, 44100)], axis=1)
    bad = np.zeros(raw.shape[0], dtype=bool)
    bad[44100:44100 + 4410] = True  # 0.1 s lost at 1 s
    win = Window(samples=raw, index=0, start_sample=0, sample_rate=44100, start_time=0.0, end_time=10.0, bad=bad)
    ws = scorer.predict(win, channel=None, max_invalid=0.5)
    expected_audio = to_model_audio(raw, 44100, 16000, scorer.window_samples)
    np.testing.assert_array_equal(ws.samples, expected_audio)
    valid = valid_frames(bad, scorer.features, sample_rate=44100)
    assert ws.valid is not None and 0 < int((~ws.valid).sum()) < 20
    assert ws.score == scorer.score_window(expected_audio, valid=valid).score
    # Channel 1 is the quieter one: another window, another score.
    assert scorer.predict(win, channel=1, max_invalid=0.5).score != ws.score
    # More invalid frames than allowed: not scored at all.
    with pytest.raises(TooFewValidFrames):
        scorer.predict(win, max_invalid=0.01)
    clean = scorer.predict(Window(samples=mono[:, None], index=0, start_sample=0, sample_rate=16000,
                                  start_time=0.0, end_time=10.0))
    assert clean.valid is None and clean.score == scorer.score_window(mono).score
