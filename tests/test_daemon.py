"""The daemon pipeline in process: replay -> ring -> score -> decision -> publisher; shutdown; notify.

Also holds helpers the other daemon tests import (bundle, synthetic clips, recording publisher).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest


def bundle_and_profile(request: pytest.FixtureRequest, _unused: Any = None) -> tuple[Path, int, str]:
    """``(bundle_dir, synth seed, machine id)`` of the session's ``tiny_bundle`` (conftest).

    The second argument is ignored (test_capture.py still passes ``tmp_path_factory``).
    """
    bundle_dir = Path(request.getfixturevalue("tiny_bundle"))
    data = Path(request.getfixturevalue("synth_dataset"))
    profiles = next(iter(sorted(data.rglob("profiles.json"))))
    seed = int(json.loads(profiles.read_text())["seed"])
    from edge_monitor.model.bundle import load_bundle

    return bundle_dir, seed, load_bundle(bundle_dir).machine_ids[0]


def synth_clips(seed: int, machine_id: str, kind: str | None, count: int, severity: float = 4.0,
                salt: int = 0) -> list[np.ndarray]:
    """``count`` fresh 10 s clips of the machine (never in the training set: their own RNG streams)."""
    from trainer.synth import KIND_CODE, FactoryProfile, MachineProfile, synthesize_clip

    prof, fac = MachineProfile.from_seed(seed, machine_id), FactoryProfile.from_seed(seed)
    code = KIND_CODE[kind]
    return [synthesize_clip(prof, np.random.default_rng([4242, salt, code, i]), kind, severity=severity,
                            factory=fac)[0] for i in range(count)]


@dataclass
class RecordingPublisher:
    """The publisher interface, recording what the daemon publishes (a real sink, not a mock)."""

    alerts: list[dict] = field(default_factory=list)
    sensors: list[dict] = field(default_factory=list)
    scores: list[dict] = field(default_factory=list)
    statuses: list[dict] = field(default_factory=list)
    states: list[str] = field(default_factory=list)
    microphone: list[str] = field(default_factory=list)
    started: bool = False
    stopped: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        self.started = True

    def publish_alert(self, payload: dict) -> None:
        with self.lock:
            self.alerts.append(payload)

    def publish_sensor(self, payload: dict) -> None:
        with self.lock:
            self.sensors.append(payload)

    def publish_score(self, payload: dict) -> None:
        with self.lock:
            self.scores.append(payload)

    def publish_status(self, payload: dict) -> None:
        self.statuses.append(payload)

    def set_state(self, state: str) -> None:
        self.states.append(state)

    def set_microphone(self, state: str) -> None:
        self.microphone.append(state)

    def stats(self) -> dict[str, Any]:
        return {"connected": True, "queue_depth": 0}

    def stop(self, timeout: float = 5.0) -> None:
        self.stopped = True


class Notes:
    """Records sd_notify calls (the daemon takes the notifier as a parameter)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def ready(self, text: str | None = None) -> bool:
        self.calls.append(("ready", text))
        return True

    def status(self, text: str) -> bool:
        self.calls.append(("status", text))
        return True

    def watchdog(self) -> bool:
        self.calls.append(("watchdog", None))
        return True

    def stopping(self, text: str | None = None) -> bool:
        self.calls.append(("stopping", text))
        return True


def reference_events(scores: list[float], threshold: float, k: int, n: int, clear: int, clear_level: float) -> list[tuple[int, str]]:
    """The rule written out plainly (no cooldown): ``(window index, "start"|"end")``."""
    events, history, open_, run = [], [], False, 0
    for i, s in enumerate(scores):
        if not open_:
            history = (history + [s > threshold])[-n:]
            if sum(history) >= k:
                open_, run = True, 0
                events.append((i, "start"))
        else:
            run = run + 1 if s < clear_level else 0
            if run >= clear:
                open_, history = False, []
                events.append((i, "end"))
    return events


# --- the tests ---------------------------------------------------------------------------------

import os  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

from edge_monitor.audio import audio_io  # noqa: E402
from edge_monitor.config.loader import parse_config  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model(request: pytest.FixtureRequest) -> dict[str, Any]:
    bundle_dir, seed, mid = bundle_and_profile(request)
    from edge_monitor.model.bundle import load_bundle
    from edge_monitor.model.scorer import Scorer

    bundle = load_bundle(bundle_dir)
    return {"dir": bundle_dir, "seed": seed, "mid": mid, "bundle": bundle, "scorer": Scorer(bundle)}


def write_clips(folder: Path, clips: list[np.ndarray], prefix: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return [audio_io.write_wav(folder / f"{prefix}_{i:02d}.wav", c) for i, c in enumerate(clips)]


from edge_monitor.decide.decision import typical_normal_score  # noqa: E402


def separating_rule(scorer: Any, normals: list[Path], anomalies: list[Path]) -> dict[str, float]:
    """A threshold between the normal and the anomalous clips, and a clear level above every normal.

    The tiny test model separates these strong synthetic faults, but its own
    calibrated threshold rests on two validation windows; an explicit
    threshold (``decision.threshold`` overrides the bundle's) makes "no alert
    on normal audio" a property of the rule, not of a coin toss.
    """
    n = [scorer.score_file(p).score for p in normals]
    a = [scorer.score_file(p).score for p in anomalies]
    assert min(a) > max(n), f"the test model does not separate the clips: normal {n}, anomalous {a}"
    threshold = (max(n) + min(a)) / 2
    clear_level = max(n) + 0.25 * (threshold - max(n))
    # The daemon measures the clear level from the bundle's typical normal score.
    baseline = typical_normal_score(scorer.bundle.doc.typical_normal_score(), threshold)
    return {"threshold": threshold, "clear_ratio": (clear_level - baseline) / (threshold - baseline)}


def clear_level_of(rule: dict[str, float], scorer: Any) -> float:
    """The clear level the daemon derives from ``rule`` and the bundle."""
    from edge_monitor.decide.decision import DecisionRule

    baseline = typical_normal_score(scorer.bundle.doc.typical_normal_score(), rule["threshold"])
    return DecisionRule(rule["threshold"], clear_ratio=rule["clear_ratio"], baseline=baseline).clear_level


def make_config(tmp_path: Path, model_dir: Path, **decision: float) -> Any:
    import yaml

    text = yaml.safe_dump({"device_id": "rail-t", "model": str(model_dir), "state_dir": str(tmp_path / "state"),
                           "mqtt": {"enabled": False},
                           "decision": {"k": 2, "n": 3, "clear_windows": 3, "cooldown_seconds": 0, **decision}})
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return parse_config(text, str(path))


def run_daemon(cfg: Any, scorer: Any, paths: list[Path], fast: bool = True) -> tuple[RecordingPublisher, Notes, Any]:
    from edge_monitor.audio.replay import ReplaySource
    from edge_monitor.service import logs
    from edge_monitor.service.daemon import Daemon

    logs.configure("warning", "json")
    pub, notes = RecordingPublisher(), Notes()
    daemon = Daemon(cfg, scorer, pub, logs.get_logger("test"), notifier=notes)
    source = ReplaySource(paths, daemon.model_rate, daemon.windowing, logs.get_logger("test"), fast=fast)
    assert daemon.run(source) == 0
    return pub, notes, daemon


def test_pipeline_scores_equal_score_file_and_alerts_follow_the_rule(model: dict, tmp_path: Path) -> None:
    normals = write_clips(tmp_path / "n", synth_clips(model["seed"], model["mid"], None, 8), "normal")
    anomalies = write_clips(tmp_path / "a", synth_clips(model["seed"], model["mid"], "loose_belt", 5), "anomaly")
    rule = separating_rule(model["scorer"], normals, anomalies)
    cfg = make_config(tmp_path, model["dir"], **rule)
    sequence = normals[:5] + anomalies + normals[5:] + normals[:2]
    pub, notes, daemon = run_daemon(cfg, model["scorer"], sequence)

    # 10 s files, 10 s hop: window i is file i exactly, so the scores are score_file's (same Scorer path).
    expected_scores = [model["scorer"].score_file(p).score for p in sequence]
    got_scores = [s["score"] for s in pub.scores]
    np.testing.assert_allclose(got_scores, expected_scores, rtol=1e-6)

    expected = reference_events(expected_scores, rule["threshold"], 2, 3, 3, clear_level_of(rule, model["scorer"]))
    assert expected == [(6, "start"), (12, "end")]  # second anomaly opens; third normal after them closes
    got = [(pub.scores.index(next(s for s in pub.scores if s["window_start"] == a["window_start"])), a["event"])
           for a in pub.alerts]
    assert got == expected
    start, end = pub.alerts
    assert start["event_id"] == end["event_id"] and len(start["event_id"]) == 36
    for key in ("event_id", "device_id", "machine", "event", "time", "window_start", "window_end", "score",
                "threshold", "peak_score", "model", "evidence"):
        assert key in start and key in end
    assert start["device_id"] == "rail-t" and start["model"]["sha256"] == model["bundle"].sha256
    assert start["threshold"] == pytest.approx(rule["threshold"])
    # The alert is raised by windows 5 and 6 (2 of 3 above the threshold); its peak is the stronger.
    peak = max((5, 6), key=lambda i: expected_scores[i])
    assert start["peak_score"] == pytest.approx(expected_scores[peak])
    assert end["peak_score"] == pytest.approx(max(expected_scores[5:13]))
    assert pub.states == ["anomaly", "normal"]
    # Evidence: the strongest window that raised the alert, as a WAV under state_dir, equal to the clip played.
    ev = Path(start["evidence"])
    assert ev.parent == tmp_path / "state" / "evidence" and ev.is_file()
    np.testing.assert_allclose(audio_io.read_wav(ev), audio_io.read_wav(sequence[peak]), atol=1.5 / 32768)
    # The end carries a recording only of a window stronger than the start's (its own test below).
    stronger_later = max(expected_scores[7:13]) > expected_scores[peak]
    assert (end["evidence"] is not None) == stronger_later
    # The explanation is worked out from the window's own samples (exact levels, reliable impacts),
    # not only from the clipped model input: the same as explaining the played clip directly.
    from edge_monitor.decide.explain import Explainer

    x = audio_io.read_wav(sequence[peak])
    ex = Explainer.from_bundle(model["bundle"])
    # From the view of the detector that fired (the bundle's only one, which the explanation names).
    assert start["explanation"] == {**ex(model["scorer"].score_window(x), samples=x).to_dict(),
                                    "detector": "autoencoder"}
    assert start["explanation"]["kind"] in ("broadband", "impact")  # a loose belt
    assert (end["explanation"] is not None) == stronger_later
    # Windows are back to back in stream time.
    starts = [s["window_start"] for s in pub.scores]
    assert len(set(starts)) == len(starts)
    # systemd: READY first, a watchdog ping per loop turn, STOPPING last; the publisher was flushed.
    kinds = [c[0] for c in notes.calls]
    assert kinds[0] == "ready" and kinds[-1] == "stopping"
    assert kinds.count("watchdog") >= len(sequence)
    assert pub.started and pub.stopped
    assert pub.statuses and pub.statuses[-1]["windows_scored"] == len(sequence)


def test_a_window_stronger_than_the_start_described_is_recorded_at_the_end(model: dict, tmp_path: Path) -> None:
    seed, mid = model["seed"], model["mid"]
    normals = write_clips(tmp_path / "n", synth_clips(seed, mid, None, 6, salt=21), "normal")
    mild = write_clips(tmp_path / "m", synth_clips(seed, mid, "loose_belt", 3, severity=3.0, salt=21), "mild")
    [strong] = write_clips(tmp_path / "s", synth_clips(seed, mid, "loose_belt", 1, severity=12.0, salt=22), "strong")
    rule = separating_rule(model["scorer"], normals, mild)
    score = {p: model["scorer"].score_file(p).score for p in [*normals, *mild, strong]}
    assert score[strong] > max(score[p] for p in mild)  # the worst moment comes after the alert opened
    sequence = normals[:2] + mild[:2] + [strong, mild[2]] + normals[2:6]
    pub, _, _ = run_daemon(make_config(tmp_path, model["dir"], **rule), model["scorer"], sequence)

    start, end = pub.alerts
    assert start["peak_score"] == pytest.approx(max(score[p] for p in mild[:2]))
    assert end["peak_score"] == pytest.approx(score[strong])
    assert end["peak_window_start"] == pub.scores[4]["window_start"]
    # The end's evidence is the strong window, a second file next to the start's; its explanation is its own.
    ev_start, ev_end = Path(start["evidence"]), Path(end["evidence"])
    assert ev_end.parent == ev_start.parent and ev_end != ev_start and ev_start.is_file()
    np.testing.assert_allclose(audio_io.read_wav(ev_end), audio_io.read_wav(strong), atol=1.5 / 32768)
    from edge_monitor.decide.explain import Explainer

    x = audio_io.read_wav(strong)
    assert end["explanation"] == {**Explainer.from_bundle(model["bundle"])(model["scorer"].score_window(x),
                                                                          samples=x).to_dict(),
                                  "detector": "autoencoder"}
    assert "detectors" not in end  # the start names the detectors; the end only adds the recording


def test_normal_audio_raises_nothing(model: dict, tmp_path: Path) -> None:
    normals = write_clips(tmp_path / "n", synth_clips(model["seed"], model["mid"], None, 8, salt=7), "normal")
    anomalies = write_clips(tmp_path / "a", synth_clips(model["seed"], model["mid"], "loose_belt", 2, salt=7), "a")
    rule = separating_rule(model["scorer"], normals, anomalies)
    pub, _, _ = run_daemon(make_config(tmp_path, model["dir"], **rule), model["scorer"], normals)
    assert len(pub.scores) == len(normals)
    assert pub.alerts == [] and pub.sensors == []


def test_overlapping_hop_gives_window_per_hop(model: dict, tmp_path: Path) -> None:
    clips = synth_clips(model["seed"], model["mid"], None, 3, salt=3)
    (path,) = write_clips(tmp_path, [np.concatenate(clips)], "long")
    cfg = make_config(tmp_path, model["dir"])
    import dataclasses

    cfg = dataclasses.replace(cfg, audio=dataclasses.replace(cfg.audio, hop_seconds=2.5))
    pub, _, _ = run_daemon(cfg, model["scorer"], [path])
    # 30 s of audio, 10 s windows every 2.5 s: (30 - 10) / 2.5 + 1 = 9 windows.
    assert len(pub.scores) == 9
    x = audio_io.read_wav(path)
    sr = model["bundle"].features.sample_rate
    for i in (0, 3, 8):
        w = x[int(i * 2.5 * sr): int(i * 2.5 * sr) + 10 * sr]
        assert pub.scores[i]["score"] == pytest.approx(model["scorer"].score_window(w).score, rel=1e-6)


def test_sensor_fault_is_reported_not_scored(model: dict, tmp_path: Path) -> None:
    normals = synth_clips(model["seed"], model["mid"], None, 4, salt=5)
    silence = [np.zeros(160_000, dtype=np.float32)] * 3
    paths = write_clips(tmp_path, normals[:2] + silence + normals[2:], "clip")
    pub, _, daemon = run_daemon(make_config(tmp_path, model["dir"], threshold=1e-9), model["scorer"], paths)
    # With a threshold that every scored window exceeds, digital silence would alert if it were scored:
    # it is not. Normal windows 0, 1 open an alert; the silent ones neither close nor feed it.
    assert len(pub.scores) == 4
    assert [(s["event"], s["kind"]) for s in pub.sensors] == [("start", "dead_input"), ("end", "dead_input")]
    assert pub.sensors[0]["event_id"] == pub.sensors[1]["event_id"]
    # The daemon sets <base>/microphone from its SensorMonitor (the publisher derives nothing).
    import itertools

    assert [state for state, _ in itertools.groupby(pub.microphone)] == ["ok", "problem", "ok"]
    assert daemon.counters.sensor_faulty == 3
    assert [a["event"] for a in pub.alerts] == ["start"]
    # The health JSON (<base>/status) carries the sensor state: clean again at the end.
    last = pub.statuses[-1]
    assert last["sensor"]["ok"] is True and last["sensor"]["faults"] == []
    assert last["sensor"]["windows_faulty"] == last["windows_sensor_fault"] == 3


def test_health_json_carries_a_current_sensor_fault(model: dict, tmp_path: Path) -> None:
    normals = synth_clips(model["seed"], model["mid"], None, 1, salt=6)
    paths = write_clips(tmp_path, normals + [np.zeros(160_000, dtype=np.float32)] * 2, "clip")
    pub, _, daemon = run_daemon(make_config(tmp_path, model["dir"]), model["scorer"], paths)
    assert [(s["event"], s["kind"]) for s in pub.sensors] == [("start", "dead_input")]
    assert pub.microphone[-1] == "problem"
    sensor = pub.statuses[-1]["sensor"]  # the last status, sent on shutdown: the fault is still on
    assert sensor["ok"] is False
    assert [f["kind"] for f in sensor["faults"]] == ["dead_input"] and sensor["faults"][0]["since"]
    assert sensor["windows_faulty"] == pub.statuses[-1]["windows_sensor_fault"] == 2
    assert "sensor: dead_input" in daemon.status_line()


def test_a_fault_open_when_the_daemon_stopped_is_ended_interrupted_on_the_next_start(model: dict,
                                                                                      tmp_path: Path) -> None:
    normals = synth_clips(model["seed"], model["mid"], None, 2, salt=6)
    silent = write_clips(tmp_path / "s", [np.zeros(160_000, dtype=np.float32)] * 2, "silent")
    cfg = make_config(tmp_path, model["dir"])
    first, _, _ = run_daemon(cfg, model["scorer"], write_clips(tmp_path / "a", normals[:1], "n") + silent)
    [start] = first.sensors  # the run ends (a plain stop) with the microphone fault still open
    assert start["event"] == "start"
    note = tmp_path / "state" / "open-sensor-events.json"
    assert json.loads(note.read_text())["dead_input"]["event_id"] == start["event_id"]

    second, _, _ = run_daemon(cfg, model["scorer"], write_clips(tmp_path / "b", normals[1:], "n"))
    # Before any window of the new run: the old episode's end, same id, marked interrupted.
    [end] = second.sensors
    assert end["event"] == "end" and end["interrupted"] is True and end["event_id"] == start["event_id"]
    assert (end["kind"], end["since"], end["at"]) == (start["kind"], start["since"], start["at"])
    assert len(second.scores) == 1 and not note.exists()
    third, _, _ = run_daemon(cfg, model["scorer"], write_clips(tmp_path / "c", normals[1:], "n"))
    assert third.sensors == []  # ended once, never again


def test_hop_longer_than_window_is_a_config_error(model: dict, tmp_path: Path) -> None:
    import dataclasses

    from edge_monitor.config.schema import ConfigError
    from edge_monitor.service import logs
    from edge_monitor.service.daemon import Daemon

    cfg = make_config(tmp_path, model["dir"])
    cfg = dataclasses.replace(cfg, audio=dataclasses.replace(cfg.audio, hop_seconds=20))
    with pytest.raises(ConfigError, match="audio.hop_seconds"):
        Daemon(cfg, model["scorer"], RecordingPublisher(), logs.get_logger("t"), notifier=Notes())


def test_evidence_quota_deletes_oldest_first(tmp_path: Path) -> None:
    from edge_monitor.decide.evidence import EvidenceStore

    x = np.zeros(16000, dtype=np.float32)  # 1 s: 32 044 bytes as 16-bit WAV
    store = EvidenceStore(tmp_path / "ev", max_bytes=100_000)
    paths = [store.save(f"id{i}", x, 16000, 1_700_000_000 + 60 * i) for i in range(5)]
    left = store.files()
    assert left == paths[-3:]  # 3 x 32 044 fits, 4 does not
    assert store.deleted == 2
    assert sum(p.stat().st_size for p in left) <= 100_000


def test_sigterm_exits_0_within_5_s_and_flushes(model: dict, tmp_path: Path) -> None:
    clips = write_clips(tmp_path / "n", synth_clips(model["seed"], model["mid"], None, 2, salt=9), "n")
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(f"device_id: t\nmodel: {model['dir']}\nstate_dir: {tmp_path / 'state'}\n"
                        "mqtt: {enabled: false}\n")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "edge_monitor", "simulate", "-c", str(cfg_path), "--loop",
                             "--no-mqtt", "--log-format", "json", *map(str, clips)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        # Wait until it is monitoring (real-time replay: it would run forever with --loop).
        deadline = time.monotonic() + 60
        seen = ""
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            seen += line
            if '"monitoring"' in line:
                break
        assert '"monitoring"' in seen, seen
        time.sleep(1.0)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=10)
        elapsed = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
    rest = proc.stderr.read()
    assert rc == 0, rest
    assert elapsed < 5.0
    assert '"stopped"' in rest and "stop requested" in rest


def test_end_to_end_through_a_real_mosquitto(model: dict, tmp_path: Path) -> None:
    """simulate --fast with MQTT on: a real subscriber receives the alerts, state, scores and health."""
    from conftest import require_binary
    from mqtt_helpers import Mosquitto, Subscriber

    mosquitto = require_binary("mosquitto")
    normals = write_clips(tmp_path / "n", synth_clips(model["seed"], model["mid"], None, 5, salt=31), "n")
    anomalies = write_clips(tmp_path / "a", synth_clips(model["seed"], model["mid"], "loose_belt", 3, salt=31), "a")
    rule = separating_rule(model["scorer"], normals, anomalies)
    sequence = normals[:3] + anomalies + normals[3:] + normals[:1]
    with Mosquitto(tmp_path / "broker", mosquitto) as broker:
        import yaml

        cfg = tmp_path / "mq.yaml"
        cfg.write_text(yaml.safe_dump({
            "device_id": "rail-e2e", "model": str(model["dir"]), "state_dir": str(tmp_path / "state"),
            "decision": {"cooldown_seconds": 0, **rule},
            "mqtt": {"host": "127.0.0.1", "port": broker.port, "discovery": False, "status_interval_s": 1}}))
        with Subscriber(broker.port, "edge-monitor/#", persistent=False) as sub:
            # --outbox: a file this test can open afterwards (a replay's own outbox is removed at exit).
            res = subprocess.run([sys.executable, "-m", "edge_monitor", "simulate", "-c", str(cfg), "--fast",
                                  "--outbox", str(tmp_path / "state" / "outbox.sqlite"),
                                  "--log-format", "json", *map(str, sequence)],
                                 capture_output=True, text=True, cwd=REPO, timeout=180)
            assert res.returncode == 0, res.stderr[-3000:]
            alerts = sub.wait_topic("edge-monitor/rail-e2e/alert", 2)
            sub.wait_for(lambda ms: any(m.topic.endswith("/availability") and m.text == "offline" for m in ms),
                         what="offline on shutdown")
    scores = [model["scorer"].score_file(p).score for p in sequence]
    expected = reference_events(scores, rule["threshold"], 2, 3, 3, clear_level_of(rule, model["scorer"]))
    assert [e for _, e in expected] == [a.json()["event"] for a in alerts] == ["start", "end"]
    assert all(a.qos == 1 and not a.retain for a in alerts)
    start, end = (a.json() for a in alerts)
    assert start["event_id"] == end["event_id"] and start["device_id"] == "rail-e2e"
    assert start["score"] == pytest.approx(scores[expected[0][0]], rel=1e-6)
    states = [m for m in sub.messages if m.topic == "edge-monitor/rail-e2e/state"]
    # The publisher keeps the latest state (retained); in --fast mode "anomaly" may be superseded
    # by "normal" before it goes out, but the last word is the current state.
    assert states and states[-1].text == "normal" and all(m.retain for m in states)
    score_msgs = [m.json() for m in sub.messages if m.topic == "edge-monitor/rail-e2e/score"]
    assert len(score_msgs) >= 1  # QoS 0, best effort
    status = [m.json() for m in sub.messages if m.topic == "edge-monitor/rail-e2e/status"]
    assert status and status[-1]["windows_scored"] == len(sequence) and "xruns" in status[-1]
    assert status[-1]["sensor"]["ok"] is True and status[-1]["sensor"]["windows_faulty"] == 0
    # The outbox is empty: everything was acknowledged before exit.
    import sqlite3

    with sqlite3.connect(tmp_path / "state" / "outbox.sqlite") as db:
        tables = [r[0] for r in db.execute("select name from sqlite_master where type='table'")]
        assert all(db.execute(f"select count(*) from {t}").fetchone()[0] == 0 for t in tables if t == "outbox")


def test_logs_never_show_a_password_and_pick_the_format() -> None:
    import io

    from edge_monitor.service import logs

    out = io.StringIO()
    logs.configure("info", "json", stream=out)
    logs.get_logger("t").info("connecting", password="hunter2", mqtt={"username": "u", "password": "hunter2"})
    logs.get_logger("t").debug("window", score=1.0)  # below the level: not written
    line = json.loads(out.getvalue().strip())
    assert "hunter2" not in out.getvalue()
    assert line["password"] == "***" and line["mqtt"] == {"username": "u", "password": "***"}
    assert line["event"] == "connecting" and line["level"] == "info"
    console = io.StringIO()
    logs.configure("debug", "console", stream=console)
    logs.get_logger("t").debug("window", score=1.0)
    assert "window" in console.getvalue() and not console.getvalue().startswith("{")


def test_broker_down_normal_windows_write_nothing_to_the_outbox(model: dict, tmp_path: Path) -> None:
    """12 normal windows while the broker is unreachable: scores stay in memory, no outbox row is written."""
    import sqlite3

    import yaml
    from mqtt_helpers import free_port

    clips = write_clips(tmp_path / "n", synth_clips(model["seed"], model["mid"], None, 3, salt=41), "n")
    cfg = tmp_path / "down.yaml"
    cfg.write_text(yaml.safe_dump({
        "device_id": "rail-down", "model": str(model["dir"]), "state_dir": str(tmp_path / "state"),
        "decision": {"threshold": 1e9},  # normal windows: no alert, so nothing durable either
        "mqtt": {"host": "127.0.0.1", "port": free_port(), "reconnect_min_s": 0.1, "reconnect_max_s": 0.2}}))
    res = subprocess.run([sys.executable, "-m", "edge_monitor", "simulate", "-c", str(cfg), "--fast",
                          "--outbox", str(tmp_path / "state" / "outbox.sqlite"),
                          "--log-format", "json", *map(str, clips * 4)],
                         capture_output=True, text=True, cwd=REPO, timeout=180)
    assert res.returncode == 0, res.stderr[-3000:]
    stopped = next(json.loads(line) for line in res.stdout.splitlines() + res.stderr.splitlines()
                   if '"stopped"' in line)
    assert stopped["windows"] == stopped["scored"] == 12
    with sqlite3.connect(tmp_path / "state" / "outbox.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 0
        # AUTOINCREMENT's high-water mark: no row was ever inserted (not written and deleted again).
        assert db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone() is None
