"""Microphone health checks on real and synthetic audio written to and read back from WAV files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_monitor.audio.audio_io import read_wav, read_wav_raw, write_wav
from edge_monitor.audio.sensor_health import (
    FAULT_KINDS,
    Fault,
    SensorLimits,
    SensorMonitor,
    SensorStatus,
    check_window,
)

SR = 16000


def _slider_clips(real_samples: Path) -> list[Path]:
    clips = sorted((real_samples / "slider").glob("*.wav"))
    assert clips, f"no slider clips under {real_samples}"
    return clips


def _check_file(path: Path, xruns: int = 0) -> SensorStatus:
    raw = read_wav_raw(path)
    return check_window(raw.samples, raw.sample_rate, xruns=xruns, bits=raw.bits if raw.fmt == "int" else None)


def _machine_like(seconds: float = 10.0, seed: int = 0) -> np.ndarray:
    """Rumble + hum + noise at about -30 dBFS, never exactly zero for long."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    x = 0.02 * rng.standard_normal(t.size) + 0.03 * np.sin(2 * np.pi * 120 * t) + 0.01 * np.sin(2 * np.pi * 1700 * t)
    return x.astype(np.float32)


@pytest.fixture(scope="module")
def slider_clip(real_samples: Path) -> np.ndarray:
    return read_wav(_slider_clips(real_samples)[0])


# --- normal audio gives no fault ----------------------------------------------------


def test_real_slider_clips_are_healthy(real_samples: Path) -> None:
    for path in _slider_clips(real_samples):
        status = _check_file(path)
        assert status.ok, f"{path.name}: {status.faults}"
        assert status.faults == []
        assert -80.0 < status.rms_dbfs < 0.0


def test_every_real_clip_is_healthy(real_samples: Path) -> None:
    # Fans, pumps, valves (quiet, with silent gaps between clicks) and toys too.
    clips = sorted(real_samples.glob("*/*.wav"))
    assert len(clips) >= 20
    statuses = {p.parent.name + "/" + p.name: _check_file(p) for p in clips}
    assert {name: st.faults for name, st in statuses.items() if not st.ok} == {}


def test_synthetic_rail_clips_are_healthy(tmp_path: Path) -> None:
    from trainer.synth import ANOMALY_KINDS, FactoryProfile, MachineProfile, clip_rng, synthesize_clip

    machine, factory = MachineProfile.from_seed(0, "id_00"), FactoryProfile.from_seed(0)
    for kind in (None, *ANOMALY_KINDS):
        samples, _ = synthesize_clip(machine, clip_rng(0, "id_00", "test", kind, 0), kind, severity=3.0, factory=factory)
        path = write_wav(tmp_path / f"{kind or 'normal'}.wav", samples)
        status = _check_file(path)
        # Machine anomalies, even loud ones, are not sensor faults.
        assert status.ok, f"synthetic {kind or 'normal'}: {status.faults}"


def test_machine_like_signal_is_healthy_in_int16_and_float() -> None:
    x = _machine_like()
    assert check_window(x, SR, bits=None).ok
    pcm = np.round(x * 32767).astype(np.int16)
    assert check_window(pcm, SR).ok
    stereo = np.stack([x, 0.5 * x], axis=1)
    assert check_window(stereo, SR).ok


# --- each fault, from a file -----------------------------------------------------------


def test_digital_silence_is_a_dead_input(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "silence.wav", np.zeros(10 * SR))
    status = _check_file(path)
    assert not status.ok
    assert status.kinds == {"dead_input"}
    assert "digital silence" in status.faults[0].detail
    assert status.rms_dbfs == float("-inf")


def test_constant_level_is_a_dead_input(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "dc.wav", np.full(10 * SR, 0.25))
    status = _check_file(path)
    assert status.kinds == {"dead_input"}
    assert "constant" in status.faults[0].detail


def test_clipped_file_is_clipping(tmp_path: Path, slider_clip: np.ndarray) -> None:
    gain = 0.99 / np.percentile(np.abs(slider_clip), 97.0)  # ~3 % of samples pinned at full scale
    path = write_wav(tmp_path / "clipped.wav", np.clip(slider_clip * gain, -1.0, 1.0))
    status = _check_file(path)
    assert status.kinds == {"clipping"}, status.faults
    share = float(status.faults[0].detail.split("%")[0])
    assert 1.0 < share < 6.0


def test_loud_but_unclipped_file_is_not_clipping(tmp_path: Path, slider_clip: np.ndarray) -> None:
    path = write_wav(tmp_path / "loud.wav", 0.95 * slider_clip / np.max(np.abs(slider_clip)))
    assert _check_file(path).ok


def test_zero_runs_of_20_ms_inside_sound_are_dropouts(tmp_path: Path, slider_clip: np.ndarray) -> None:
    x = slider_clip.copy()
    run = int(0.020 * SR)
    for start_s in (1.3, 4.0, 7.7):
        i = int(start_s * SR)
        x[i : i + run] = 0.0
    path = write_wav(tmp_path / "dropouts.wav", x)
    status = _check_file(path)
    assert status.kinds == {"dropout"}, status.faults
    assert status.faults[0].detail.startswith("3 runs of exact zeros (longest 20 ms")


def test_zero_runs_shorter_than_5_ms_are_not_dropouts(tmp_path: Path, slider_clip: np.ndarray) -> None:
    x = slider_clip.copy()
    for start_s in (1.3, 4.0, 7.7):
        i = int(start_s * SR)
        x[i : i + int(0.004 * SR)] = 0.0  # 4 ms: natural zero crossings never get near this, but it is allowed
    assert _check_file(write_wav(tmp_path / "short.wav", x)).ok


def test_eight_channel_file_with_one_dead_channel(tmp_path: Path, slider_clip: np.ndarray) -> None:
    rng = np.random.default_rng(1)
    chans = [np.roll(slider_clip, 37 * c) * (0.8 + 0.05 * c) + 0.002 * rng.standard_normal(slider_clip.size) for c in range(8)]
    array = np.stack(chans, axis=1)
    array[:, 5] = 0.0
    path = write_wav(tmp_path / "array8.wav", array)
    raw = read_wav_raw(path)
    assert raw.channels == 8
    status = _check_file(path)
    assert status.kinds == {"dead_channel"}, status.faults
    assert "channel 6 of 8" in status.faults[0].detail
    # The same array with every channel alive is healthy; all dead is a dead input.
    array[:, 5] = chans[5]
    assert _check_file(write_wav(tmp_path / "array8_ok.wav", array)).ok
    assert _check_file(write_wav(tmp_path / "array8_dead.wav", np.zeros_like(array))).kinds == {"dead_input"}


def test_dead_channel_does_not_hide_dropouts_on_the_others(slider_clip: np.ndarray) -> None:
    x = np.stack([slider_clip, slider_clip, np.zeros_like(slider_clip)], axis=1)
    x[SR : SR + int(0.01 * SR), :] = 0.0
    assert check_window(x, SR, bits=None).kinds == {"dead_channel", "dropout"}


def test_xrun_bursts(slider_clip: np.ndarray) -> None:
    assert check_window(slider_clip, SR, xruns=1).ok
    status = check_window(slider_clip, SR, xruns=5)
    assert status.kinds == {"xrun"}
    assert status.faults[0].detail == "5 capture over-/underruns in the window"
    assert check_window(slider_clip, SR, xruns=1, limits=SensorLimits(xrun_burst=1)).kinds == {"xrun"}


def test_float_format_clips_at_one(slider_clip: np.ndarray) -> None:
    x = np.clip(slider_clip * 200.0, -1.0, 1.0)
    assert "clipping" in check_window(x, SR, bits=None).kinds
    # 24-bit: the clip level is one 24-bit LSB under full scale, so 0.9999 is not clipped.
    y = np.clip(slider_clip, -0.9999, 0.9999) * (0.9999 / max(np.max(np.abs(slider_clip)), 1e-9))
    assert check_window(y, SR, bits=24).ok


def test_bad_shapes_are_errors() -> None:
    with pytest.raises(ValueError, match="shape"):
        check_window(np.zeros((2, 3, 4)), SR)
    with pytest.raises(ValueError, match="empty"):
        check_window(np.zeros(0), SR)
    with pytest.raises(ValueError, match="sample_rate"):
        check_window(np.zeros(10), 0)


def test_nan_samples_do_not_break_the_check() -> None:
    x = _machine_like(1.0)
    x[100:200] = np.nan
    status = check_window(x, SR, bits=None)
    assert status.kinds == {"dropout"}  # NaN is read as 0: 100 samples = 6 ms of nothing


# --- the monitor: events with hysteresis ----------------------------------------------------


def _st(*kinds: str) -> SensorStatus:
    return SensorStatus(ok=not kinds, faults=[Fault(k, f"{k} detail") for k in kinds])


def test_monitor_start_and_end_with_hysteresis() -> None:
    mon = SensorMonitor(start_after=2, end_after=2)
    assert mon.update(_st(), 0.0) == []
    assert mon.update(_st("dead_input"), 10.0) == []  # one window is not enough
    ev = mon.update(_st("dead_input"), 20.0)
    assert [(e.event, e.kind, e.since, e.at, e.windows) for e in ev] == [("start", "dead_input", 10.0, 20.0, 2)]
    assert mon.active == {"dead_input": 10.0}
    assert not mon.ok
    assert mon.update(_st(), 30.0) == []  # one clean window is not enough
    assert mon.update(_st("dead_input"), 40.0) == []  # back: the episode continues, no new start
    assert mon.update(_st(), 50.0) == []
    ev = mon.update(_st(), 60.0)
    assert [(e.event, e.kind, e.since, e.at, e.windows) for e in ev] == [("end", "dead_input", 10.0, 60.0, 3)]
    assert mon.ok and mon.active == {}
    assert ev[0].to_dict() == {
        "event": "end", "kind": "dead_input", "since": 10.0, "at": 60.0, "detail": "dead_input detail", "windows": 3,
    }


def test_a_dropout_that_becomes_total_silence_is_one_episode() -> None:
    # A paused stream: partly silent window, wholly silent windows, partly silent, clean.
    mon = SensorMonitor(start_after=1, end_after=2)
    seq = [_st("dropout"), _st("dead_input"), _st("dead_input"), _st("dead_input"), _st("dropout"), _st(), _st()]
    events = [(e.event, e.kind) for i, s in enumerate(seq) for e in mon.update(s, float(i))]
    assert events == [("start", "dropout"), ("start", "dead_input"), ("end", "dead_input"), ("end", "dropout")]


def test_monitor_forgets_a_blip_shorter_than_start_after() -> None:
    mon = SensorMonitor(start_after=2, end_after=1)
    assert mon.update(_st("xrun"), 0.0) == []
    assert mon.update(_st(), 5.0) == []
    assert mon.update(_st("xrun"), 10.0) == []  # a new first window, not the second of an episode
    assert [e.event for e in mon.update(_st("xrun"), 15.0)] == ["start"]


def test_monitor_tracks_kinds_independently_and_reports_state() -> None:
    mon = SensorMonitor()  # start at once, end after 2 clean windows
    ev = mon.update(_st("clipping", "dropout"), 1.0)
    assert [(e.event, e.kind) for e in ev] == [("start", "clipping"), ("start", "dropout")]
    assert mon.update(_st("clipping"), 2.0) == []
    ev = mon.update(_st("clipping"), 3.0)
    assert [(e.event, e.kind) for e in ev] == [("end", "dropout")]
    state = mon.state()
    assert state["ok"] is False
    assert state["faults"] == [{"kind": "clipping", "since": 1.0, "detail": "clipping detail"}]
    assert state["windows_checked"] == 3 and state["windows_faulty"] == 3
    mon.update(_st(), 4.0)
    mon.update(_st(), 5.0)
    assert mon.state()["ok"] is True
    assert mon.state()["windows_checked"] == 5


def test_monitor_end_to_end_with_real_windows(slider_clip: np.ndarray) -> None:
    """A cable pulled for three windows: one start, one end, since = the first dead window."""
    mon = SensorMonitor(start_after=1, end_after=2)
    silence = np.zeros_like(slider_clip)
    events = []
    for i, w in enumerate([slider_clip, silence, silence, silence, slider_clip, slider_clip, slider_clip]):
        events += mon.update(check_window(w, SR), t=100.0 + 10 * i)
    assert [(e.event, e.kind, e.since, e.at) for e in events] == [
        ("start", "dead_input", 110.0, 110.0),
        ("end", "dead_input", 110.0, 150.0),
    ]


def test_fault_kinds_are_documented() -> None:
    import edge_monitor.audio.sensor_health as sh

    for kind in FAULT_KINDS:
        assert f"``{kind}``" in (sh.__doc__ or "")


def test_a_window_that_goes_silent_halfway_is_a_dropout(slider_clip: np.ndarray) -> None:
    """Playback paused mid-window (the live-capture pause): the zero tail must not be scored."""
    x = slider_clip.copy()
    x[x.size // 2 :] = 0.0
    status = check_window(x, SR, bits=None)
    assert status.kinds == {"dropout"}
    assert "longest 5000 ms" in status.faults[0].detail


def test_one_lsb_of_noise_is_still_a_dead_input() -> None:
    rng = np.random.default_rng(0)
    pcm = rng.integers(-1, 2, size=10 * SR).astype(np.int16)  # a disconnected ADC's last bit
    assert check_window(pcm, SR).kinds == {"dead_input"}


# --- short dropouts are scored on their valid frames -------------------------------------


def test_dropout_status_carries_the_bad_samples() -> None:
    x = _machine_like()
    x[20_000:23_200] = 0.0  # 0.2 s
    x[90_000:90_040] = 0.0  # 2.5 ms: too short to count
    status = check_window(x, SR, bits=None)
    assert status.kinds == {"dropout"} and status.bad is not None
    assert status.bad.shape == (x.size,) and int(status.bad.sum()) == 3200
    assert status.bad[20_000:23_200].all() and not status.bad[90_000:90_040].any()
    assert check_window(_machine_like(), SR, bits=None).bad is None


def test_a_short_dropout_is_scored_on_its_valid_frames_like_the_clean_window(tiny_bundle: Path,
                                                                               synth_dataset: Path) -> None:
    from edge_monitor.decide.explain import Explainer
    from edge_monitor.features.model_input import valid_frames
    from edge_monitor.model.bundle import load_bundle
    from edge_monitor.model.scorer import Scorer

    scorer = Scorer(load_bundle(tiny_bundle))
    clips = sorted((synth_dataset / "test").glob("normal_id_00_*.wav"))[:3]
    rel_masked, rel_unmasked = [], []
    for clip in clips:
        x = read_wav(clip)
        gapped = x.copy()
        gapped[70_000:73_200] = 0.0  # the 0.2 s of digital silence between two paplay calls
        status = check_window(gapped, SR, bits=16)
        assert status.kinds == {"dropout"}
        valid = valid_frames(status.bad, scorer.features)
        clean = scorer.score_window(x)
        masked = scorer.score_window(gapped, valid=valid)
        unmasked = scorer.score_window(gapped)
        rel_masked.append(abs(masked.score - clean.score) / clean.score)
        rel_unmasked.append((unmasked.score - clean.score) / clean.score)
        assert masked.valid is not None and masked.valid.shape == (scorer.frames,)
        assert np.isnan(masked.frame_error[~masked.valid]).all()
        assert np.isfinite(masked.frame_error[masked.valid]).all() and np.isfinite(masked.band_error).all()
        # All valid is the unmasked path, bit for bit.
        assert scorer.score_window(x, valid=np.ones(313, bool)).score == clean.score
        ex = Explainer.from_bundle(scorer.bundle)(masked, samples=gapped)
        assert ex.kind in {"none", "tonal", "impact", "broadband", "level_shift"}
        assert all(not (4.3 <= t <= 4.6) for t in ex.event_times_s)  # nothing "found" inside the dropout
    print("relative score change: masked", np.round(rel_masked, 4).tolist(), "unmasked", np.round(rel_unmasked, 4).tolist())
    # Masked, the window scores as its clean self (the model's own spread between windows is
    # larger); unmasked, the dropout's floor-level frames add to the score.
    assert max(rel_masked) < 0.03
    assert min(rel_unmasked) > 3 * max(rel_masked)
