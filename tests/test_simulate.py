"""``edge-monitor simulate --fast`` from the command line: alerts on stdout, exactly as the rule implies."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge_monitor.audio import audio_io

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_daemon import (  # noqa: E402
    bundle_and_profile,
    clear_level_of,
    reference_events,
    separating_rule,
    synth_clips,
    write_clips,
)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model(request: pytest.FixtureRequest) -> dict[str, Any]:
    bundle_dir, seed, mid = bundle_and_profile(request)
    from edge_monitor.model.bundle import load_bundle
    from edge_monitor.model.scorer import Scorer

    return {"dir": bundle_dir, "seed": seed, "mid": mid, "scorer": Scorer(load_bundle(bundle_dir))}


def simulate(tmp_path: Path, model_dir: Path, inputs: list[Path], **decision: float) -> subprocess.CompletedProcess:
    import yaml

    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"device_id": "sim", "model": str(model_dir), "state_dir": str(tmp_path / "state"),
                                   "decision": {"cooldown_seconds": 0, **decision}}))
    return subprocess.run([sys.executable, "-m", "edge_monitor", "simulate", "--config", str(cfg), "--fast",
                           "--no-mqtt", "--log-format", "json", *map(str, inputs)],
                          capture_output=True, text=True, cwd=REPO, timeout=300)


def events(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def _clip_info(model: dict, kind: str, i: int, severity: float, salt: int) -> Any:
    """The generation parameters (``trainer.synth.ClipInfo``) of ``synth_clips(...)[i]``."""
    from trainer.synth import FactoryProfile, MachineProfile, synthesize_clip

    prof = MachineProfile.from_seed(model["seed"], model["mid"])
    code = {None: 0, "rail_damage": 1, "loose_belt": 2, "missing_grease": 3}[kind]
    return synthesize_clip(prof, np.random.default_rng([4242, salt, code, i]), kind, severity=severity,
                           factory=FactoryProfile.from_seed(model["seed"]))[1]


def test_normal_then_anomalous_raises_exactly_the_rule_s_alerts(model: dict, tmp_path: Path) -> None:
    normals = write_clips(tmp_path / "normal", synth_clips(model["seed"], model["mid"], None, 6, salt=11), "n")
    anomalies = write_clips(tmp_path / "anomalous", synth_clips(model["seed"], model["mid"], "missing_grease", 4,
                                                                severity=5.0, salt=11), "a")
    rule = separating_rule(model["scorer"], normals, anomalies)
    # Folders expand to their sorted *.wav files: all normal clips, then all anomalous ones, then normal again.
    res = simulate(tmp_path, model["dir"], [tmp_path / "normal", tmp_path / "anomalous", *normals[:3]], **rule)
    assert res.returncode == 0, res.stderr[-2000:]
    order = normals + anomalies + normals[:3]
    scores = [model["scorer"].score_file(p).score for p in order]
    expected = reference_events(scores, rule["threshold"], 2, 3, 3, clear_level_of(rule, model["scorer"]))
    assert expected == [(7, "start"), (12, "end")]
    got = [e for e in events(res.stdout) if e["topic"] == "alert"]
    assert [e["event"] for e in got] == ["start", "end"]
    assert got[0]["event_id"] == got[1]["event_id"]
    assert got[0]["score"] == pytest.approx(scores[7], rel=1e-6)
    assert got[1]["score"] == pytest.approx(scores[12], rel=1e-6)
    assert got[1]["peak_score"] == pytest.approx(max(scores[6:13]), rel=1e-6)
    assert Path(got[0]["evidence"]).is_file()
    # The alert says what changed: the squeal of its strongest window (6 and 7 raised it), as a tone (issue 10).
    peak = max((6, 7), key=lambda i: scores[i])
    assert got[0]["peak_score"] == pytest.approx(scores[peak], rel=1e-6)
    squeal_hz = _clip_info(model, "missing_grease", peak - len(normals), severity=5.0, salt=11).squeal_hz
    ex = got[0]["explanation"]
    assert ex["kind"] == "tonal" and ex["freq_lo_hz"] <= squeal_hz <= ex["freq_hi_hz"], (ex, squeal_hz)
    assert ex["text"] and ex["level_change_db"] > 0
    # The end explains (and records) only a window that beat the start's peak.
    assert (got[1]["explanation"] is not None) == (max(scores[8:13]) > scores[peak])
    assert (got[1]["evidence"] is not None) == (max(scores[8:13]) > scores[peak])


def test_normal_only_is_silent_and_bad_files_are_skipped(model: dict, tmp_path: Path) -> None:
    normals = write_clips(tmp_path / "n", synth_clips(model["seed"], model["mid"], None, 5, salt=12), "n")
    anomalies = write_clips(tmp_path / "a", synth_clips(model["seed"], model["mid"], "loose_belt", 2, salt=12), "a")
    rule = separating_rule(model["scorer"], normals, anomalies)
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk")
    # A 44.1 kHz stereo copy of a normal clip: any rate and channel count is accepted (resampled).
    x = audio_io.read_wav(normals[0])
    from edge_monitor.audio.audio_io import resample

    stereo = np.stack([resample(x, 16000, 44100)] * 2, axis=1)
    odd = audio_io.write_wav(tmp_path / "odd_44k1_stereo.wav", stereo, 44100)
    res = simulate(tmp_path, model["dir"], [normals[0], broken, *normals[1:], odd], **rule)
    assert res.returncode == 0, res.stderr[-2000:]
    assert events(res.stdout) == []
    assert "broken.wav" in res.stderr and "skipping unreadable file" in res.stderr
    assert '"windows": 6' in res.stderr.replace('"windows":6', '"windows": 6')


def test_only_unreadable_files_is_an_error(model: dict, tmp_path: Path) -> None:
    broken = tmp_path / "broken.wav"
    broken.write_text("not a wav")
    res = simulate(tmp_path, model["dir"], [broken])
    assert res.returncode == 66
    assert "none of the files could be read" in res.stderr


# --- microphone faults: a sensor event, never a machine alert (issue 10) ---------------------------

def _faulty_clip(kind: str, clip: np.ndarray) -> np.ndarray:
    """A 10 s window of ``clip`` with one input-chain fault (shape (n,) or (n, 8))."""
    sr = 16000
    if kind == "dead_input":  # digital silence: a pulled cable
        return np.zeros_like(clip)
    if kind == "clipping":  # a preamp driven 4x past full scale: ~25 % of the samples at +-1
        return np.clip(clip * (4.0 / np.max(np.abs(clip))), -1.0, 1.0)
    if kind == "dropout":  # 20 ms runs of exact zeros inside sound, every 0.5 s (lost USB packets)
        x = clip.copy()
        for start in range(sr // 4, x.size - sr // 4, sr // 2):
            x[start:start + sr * 20 // 1000] = 0.0
        return x
    if kind == "dead_channel":  # an 8-channel array with one dead capsule (channel 3)
        x = np.stack([clip * (0.8 + 0.05 * c) for c in range(8)], axis=1)
        x[:, 3] = 0.0
        return x
    raise ValueError(kind)


@pytest.mark.parametrize("kind", ["dead_input", "clipping", "dropout", "dead_channel"])
def test_sensor_fault_raises_a_sensor_event_and_no_machine_alert(model: dict, tmp_path: Path, kind: str) -> None:
    normal = synth_clips(model["seed"], model["mid"], None, 3, salt=13)
    bad = audio_io.write_wav(tmp_path / f"0_{kind}.wav", _faulty_clip(kind, normal[0]))
    raw = audio_io.read_wav_raw(bad)
    assert raw.samples.shape[1] == (8 if kind == "dead_channel" else 1)
    good = write_clips(tmp_path / "n", normal[1:], "n")
    # threshold ~0 with k = n = 3: every scored window is "above", so the two normal windows alone
    # (2 of 3) open nothing, while the faulty window, had it been scored, would make it 3 of 3.
    # The 8-channel file comes first, so the stream keeps 8 channels (the normal clips are repeated
    # across them) and the sensor check sees the dead channel before any downmix.
    res = simulate(tmp_path, model["dir"], [bad, *good], threshold=1e-9, k=3, n=3, clear_windows=1)
    assert res.returncode == 0, res.stderr[-2000:]
    got = events(res.stdout)
    assert [e for e in got if e["topic"] == "alert"] == []
    sensor = [e for e in got if e["topic"] == "sensor"]
    assert [(e["event"], e["kind"]) for e in sensor] == [("start", kind), ("end", kind)], sensor
    assert sensor[0]["event_id"] == sensor[1]["event_id"] and sensor[0]["since"] == sensor[1]["since"]
    stopped = next(json.loads(line) for line in res.stderr.splitlines()
                   if line.startswith("{") and json.loads(line).get("event") == "stopped")
    assert (stopped["scored"], stopped["sensor_faulty"], stopped["alerts"]) == (2, 1, 0)


def test_a_replay_neither_ends_nor_leaves_the_daemon_s_open_fault_notes(model: dict, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    live = {"dead_input": {"event": "start", "kind": "dead_input", "event_id": "live-1", "since": "t", "at": "t"}}
    (state / "open-sensor-events.json").write_text(json.dumps(live))  # what a running daemon noted
    normal = synth_clips(model["seed"], model["mid"], None, 1, salt=14)
    clips = write_clips(tmp_path / "n", normal, "n") + [audio_io.write_wav(tmp_path / "z.wav", np.zeros(160_000))]
    res = simulate(tmp_path, model["dir"], clips)  # ends with its own fault still open
    assert res.returncode == 0, res.stderr[-2000:]
    sensor = [e for e in events(res.stdout) if e["topic"] == "sensor"]
    assert [(e["event"], e["kind"]) for e in sensor] == [("start", "dead_input")]  # the live one was not ended
    assert json.loads((state / "open-sensor-events.json").read_text()) == live  # nor was the note touched


def _mqtt_config(tmp_path: Path, model_dir: Path, port: int, rule: dict[str, float]) -> Path:
    import yaml

    cfg = tmp_path / "mq.yaml"
    cfg.write_text(yaml.safe_dump({
        "device_id": "sim-mq", "model": str(model_dir), "state_dir": str(tmp_path / "state"),
        "decision": {"k": 2, "n": 3, "cooldown_seconds": 0, **rule},
        "mqtt": {"host": "127.0.0.1", "port": port, "discovery": False, "status_interval_s": 1,
                 "connect_timeout_s": 1, "reconnect_min_s": 0.1, "reconnect_max_s": 0.5}}))
    return cfg


def _simulate_mqtt(cfg: Path, inputs: list[Path]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge_monitor", "simulate", "-c", str(cfg), "--fast",
                           "--log-format", "json", *map(str, inputs)],
                          capture_output=True, text=True, cwd=REPO, timeout=180)


def test_start_carries_the_strongest_window_that_raised_it(model: dict, tmp_path: Path) -> None:
    """k of n completes on a weaker window after a stronger one: START's peak, evidence and explanation
    are the stronger window's (issue 23), received from a real mosquitto."""
    from conftest import require_binary
    from mqtt_helpers import Mosquitto, Subscriber

    from edge_monitor.decide.explain import Explainer

    mosquitto = require_binary("mosquitto")
    seed, mid = model["seed"], model["mid"]
    normals = write_clips(tmp_path / "n", synth_clips(seed, mid, None, 5, salt=41), "n")
    strong = write_clips(tmp_path / "s", synth_clips(seed, mid, "missing_grease", 1, severity=8.0, salt=41), "s")
    weak = write_clips(tmp_path / "w", synth_clips(seed, mid, "missing_grease", 1, severity=2.5, salt=42), "w")
    rule = separating_rule(model["scorer"], normals, strong + weak)
    sequence = normals[:3] + strong + weak + normals[3:] + normals[:2]
    scores = [model["scorer"].score_file(p).score for p in sequence]
    assert scores[3] > scores[4] > rule["threshold"], f"the early window must score highest: {scores[3:5]}"
    expected = reference_events(scores, rule["threshold"], 2, 3, 3, clear_level_of(rule, model["scorer"]))
    assert expected[0] == (4, "start")  # opens on the weaker window, which completes 2 of 3
    with Mosquitto(tmp_path / "broker", mosquitto) as broker, \
            Subscriber(broker.port, "edge-monitor/sim-mq/alert", persistent=False) as sub:
        res = _simulate_mqtt(_mqtt_config(tmp_path, model["dir"], broker.port, rule), sequence)
        assert res.returncode == 0, res.stderr[-3000:]
        start = sub.wait_topic("edge-monitor/sim-mq/alert", 1)[0].json()
    assert start["event"] == "start"
    assert start["score"] == pytest.approx(scores[4], rel=1e-6)  # the window that completed k of n
    assert start["peak_score"] == pytest.approx(scores[3], rel=1e-6)  # the strongest one
    assert start["peak_window_start"] < start["window_start"]
    np.testing.assert_allclose(audio_io.read_wav(start["evidence"]), audio_io.read_wav(strong[0]), atol=1.5 / 32768)
    x = audio_io.read_wav(strong[0])
    explained = Explainer.from_bundle(model["scorer"].bundle)(model["scorer"].score_window(x), samples=x).to_dict()
    assert start["explanation"] == json.loads(json.dumps({**explained, "detector": "autoencoder"}))
    assert start["source"] == "replay"


def test_a_replay_delivers_only_its_own_messages(model: dict, tmp_path: Path) -> None:
    """A replay whose broker is down leaves nothing for the next replay to send (issue 23)."""
    from conftest import require_binary
    from mqtt_helpers import Mosquitto, Subscriber, free_port

    mosquitto = require_binary("mosquitto")
    seed, mid = model["seed"], model["mid"]
    normals = write_clips(tmp_path / "n", synth_clips(seed, mid, None, 4, salt=43), "n")
    anomalies = write_clips(tmp_path / "a", synth_clips(seed, mid, "loose_belt", 2, salt=43), "a")
    rule = separating_rule(model["scorer"], normals, anomalies)
    sequence = normals[:2] + anomalies + normals[2:] + normals[:1]
    port = free_port()
    cfg = _mqtt_config(tmp_path, model["dir"], port, rule)
    first = _simulate_mqtt(cfg, sequence)  # no broker on that port yet
    assert first.returncode == 0, first.stderr[-3000:]
    first_ids = {e["event_id"] for e in events(first.stdout) if e["topic"] == "alert"}
    assert len(first_ids) == 1
    assert "replay message(s) not delivered to the broker, discarded" in first.stderr
    with Mosquitto(tmp_path / "broker", mosquitto, port=port), \
            Subscriber(port, "edge-monitor/sim-mq/alert", persistent=False) as sub:
        second = _simulate_mqtt(cfg, sequence)
        assert second.returncode == 0, second.stderr[-3000:]
        own = [e for e in events(second.stdout) if e["topic"] == "alert"]
        assert [e["event"] for e in own] == ["start", "end"]
        sub.wait_topic("edge-monitor/sim-mq/alert", 2)
    got = [m.json() for m in sub.messages]
    assert [(m["event_id"], m["event"]) for m in got] == [(e["event_id"], e["event"]) for e in own]
    assert not first_ids & {m["event_id"] for m in got}
    assert all(m["source"] == "replay" for m in got)
    assert "not delivered" not in second.stderr
    # The daemon's own outbox in state_dir was never touched by either replay.
    assert not (tmp_path / "state" / "outbox.sqlite").exists()
