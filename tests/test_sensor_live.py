"""Live microphone health: playback into a PulseAudio null sink pauses or glitches, capture goes on.

Real parts only (issue 10): our own PulseAudio server with a 16 kHz null sink
``rail`` (``tests/test_capture.py``'s ``PulseServer``), ``paplay`` playing normal
machine sound into it, the daemon capturing the sink's monitor through
PortAudio/sounddevice (device ``pulse``). Pausing ``paplay`` (SIGSTOP) starves
the sink: its monitor then delivers digital silence, exactly what a pulled
cable or a stalled USB microphone gives. The daemon must report that as a
``<base>/sensor`` event that starts and, once playback resumes, ends, carry it
in the health JSON, and never page anyone about the rail.

Clips played one ``paplay`` at a time leave ~0.2 s of digital silence between
them, as a USB microphone that drops packets does: the daemon reports the
dropouts and still scores every window on the rest of its frames, so an
anomaly in the stream still raises its alert.
"""

from __future__ import annotations

import io
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import test_capture  # noqa: E402
from test_capture import model, pulse, start_daemon, wait_for  # noqa: E402,F401 - fixtures
from test_daemon import separating_rule, synth_clips  # noqa: E402

from edge_monitor.audio import audio_io  # noqa: E402
from edge_monitor.audio.sensor_health import check_window  # noqa: E402
from edge_monitor.features.model_input import valid_frames  # noqa: E402

PAUSE_S = 15.0
HOP_S = 1.0


def test_paused_playback_raises_a_sensor_event_that_ends_and_no_alert(pulse: Any, model: dict,
                                                                       tmp_path: Path) -> None:
    played = np.concatenate(synth_clips(model["seed"], model["mid"], None, 3, salt=41))  # 30 s of normal sound
    wav = audio_io.write_wav(tmp_path / "normal.wav", played)

    # A threshold of ~0 makes every scored window "above"; with k = n = 5 the 2-3 clean windows
    # scored after playback resumes open nothing, while scoring any 3 of the ~20 windows the pause
    # touches would make 5 of 5 and page someone about the rail.
    threshold, k = 1e-9, 5
    player = pulse.play(wav)  # sound is already flowing when capture starts
    log = io.StringIO()
    daemon, thread, pub, rec = start_daemon(
        tmp_path, model, hop=HOP_S, log_stream=log,
        decision={"threshold": threshold, "k": k, "n": k, "cooldown_seconds": 0},
        mqtt={"status_interval_s": 1})
    paused_status: list[dict] = []
    try:
        wait_for(lambda: '"capture started"' in log.getvalue(), 20, "capture to start")
        time.sleep(3.0)
        os.kill(player.pid, signal.SIGSTOP)  # pause: the sink's monitor now delivers digital silence
        paused_at = time.monotonic()
        try:
            wait_for(lambda: any(s["event"] == "start" for s in pub.sensors), PAUSE_S, "a sensor start event")
            time.sleep(max(0.0, paused_at + PAUSE_S - time.monotonic()))
            paused_status = [s for s in pub.statuses if s.get("sensor") and not s["sensor"]["ok"]]
        finally:
            os.kill(player.pid, signal.SIGCONT)  # resume playback
        wait_for(lambda: pub.sensors and all(any(e["event"] == "end" and e["event_id"] == s["event_id"]
                                                 for e in pub.sensors)
                                             for s in pub.sensors if s["event"] == "start"),
                 40, "every sensor event to end after playback resumed")
    finally:
        daemon.request_stop()
        thread.join(timeout=10)
        player.kill()
        player.wait()
    assert not thread.is_alive()

    starts = [s for s in pub.sensors if s["event"] == "start"]
    ends = [s for s in pub.sensors if s["event"] == "end"]
    print("sensor events:", [(s["event"], s["kind"], s["detail"]) for s in pub.sensors])
    # The pause: windows partly silent are dropouts (exact zeros inside sound), wholly silent ones
    # a dead input; nothing else (no clipping, no xrun burst, no dead channel).
    assert {s["kind"] for s in starts} <= {"dead_input", "dropout"} and starts
    assert sorted(s["kind"] for s in ends) == sorted(s["kind"] for s in starts)
    for s in pub.sensors:
        assert s["device_id"] == "live" and s["since"] and s["event_id"]
    # No window of the pause was scored beyond its edges (a window whose silence touches at most
    # audio.max_dropout_fraction of its frames is scored on the rest), so no machine alert.
    assert pub.alerts == [] and daemon.counters.alerts == 0
    assert daemon.counters.sensor_faulty >= PAUSE_S / HOP_S - 1
    assert 2 <= daemon.counters.scored < k and len(rec.windows) == daemon.counters.scored
    for samples, _ in rec.windows:
        assert _fault_share(samples, daemon) <= daemon.cfg.audio.max_dropout_fraction
    # The health JSON on <base>/status carried the fault while it lasted, and is clean again.
    assert paused_status, "no status message showed the sensor fault"
    assert {f["kind"] for f in paused_status[-1]["sensor"]["faults"]} <= {"dead_input", "dropout"}
    final = daemon.health()["sensor"]
    assert final["ok"] and final["faults"] == [] and final["windows_faulty"] == daemon.counters.sensor_faulty


def _fault_share(samples: np.ndarray, daemon: Any) -> float:
    """Share of a window's frames touched by dropouts (0 for a clean window)."""
    status = check_window(samples, daemon.model_rate, bits=16)
    if status.bad is None:
        return 0.0
    return 1.0 - float(valid_frames(status.bad, daemon.bundle.features).mean())


class _MaskRecordingScorer(test_capture.RecordingScorer):
    """The recording scorer of test_capture, passing the valid-frame mask through."""

    def __init__(self, scorer: Any) -> None:
        super().__init__(scorer)
        self.masked = 0

    def predict(self, window: Any, channel: int | None = None, max_invalid: float = 1.0) -> Any:
        ws = self.inner.predict(window, channel, max_invalid)
        self.masked += ws.valid is not None
        self.windows.append((ws.samples.copy(), ws.score))
        return ws


def test_clips_played_one_at_a_time_are_scored_through_the_gaps_and_alert(
        pulse: Any, model: dict, tmp_path: Path, monkeypatch: Any) -> None:
    seed, mid = model["seed"], model["mid"]
    normal = [audio_io.write_wav(tmp_path / f"normal_{i}.wav", x)
              for i, x in enumerate(synth_clips(seed, mid, None, 3, salt=51))]
    anomaly = [audio_io.write_wav(tmp_path / f"anomaly_{i}.wav", x)
               for i, x in enumerate(synth_clips(seed, mid, "loose_belt", 2, salt=52))]
    from edge_monitor.model.scorer import Scorer

    rule = separating_rule(Scorer(model["bundle"]), normal, anomaly)
    monkeypatch.setattr(test_capture, "RecordingScorer", _MaskRecordingScorer)
    log = io.StringIO()
    daemon, thread, pub, rec = start_daemon(
        tmp_path, model, hop=HOP_S, log_stream=log,
        decision={**rule, "k": 2, "n": 3, "cooldown_seconds": 0}, mqtt={"status_interval_s": 1})
    playlist = [normal[0], normal[1], anomaly[0], anomaly[1]]  # 40 s
    played: list[tuple[str, float, float]] = []  # (file, wall-clock start, end)
    try:
        wait_for(lambda: '"capture started"' in log.getvalue(), 20, "capture to start")
        for wav in playlist:  # one paplay per clip: digital silence between them
            t0 = time.time()
            pulse.play(wav).wait(timeout=60)
            played.append((wav.name, t0, time.time()))
        time.sleep(1.5)
    finally:
        daemon.request_stop()
        thread.join(timeout=10)
    assert not thread.is_alive()

    c = daemon.counters
    print(f"windows {c.windows}, scored {c.scored} (on valid frames: {c.scored_partial}), "
          f"skipped {c.sensor_faulty - c.scored_partial}, alerts {c.alerts}; sensor events:",
          [(s["event"], s["kind"], s["detail"]) for s in pub.sensors])
    # The gaps are real dropouts, reported as sensor events ...
    assert any(s["event"] == "start" and s["kind"] == "dropout" for s in pub.sensors)
    # ... and the windows holding them are scored anyway, on their other frames.
    assert c.scored >= 10 and rec.masked >= 10 and c.scored_partial == rec.masked
    assert daemon.health()["windows_scored_partial"] == c.scored_partial
    # The alert opens during the anomalous stretch: its window is mostly anomalous sound.
    starts = [a for a in pub.alerts if a["event"] == "start"]
    assert len(starts) == 1, pub.alerts
    a_from, a_to = played[2][1], played[3][2]
    from datetime import datetime

    w0 = datetime.fromisoformat(starts[0]["window_start"].replace("Z", "+00:00")).timestamp()
    w1 = datetime.fromisoformat(starts[0]["window_end"].replace("Z", "+00:00")).timestamp()
    overlap = max(0.0, min(w1, a_to) - max(w0, a_from))
    assert overlap >= 0.5 * (w1 - w0), (w0, w1, played)
