"""Live microphone health: playback into a PulseAudio null sink pauses for 15 s, capture goes on.

Real parts only (issue 10): our own PulseAudio server with a 16 kHz null sink
``rail`` (``tests/test_capture.py``'s ``PulseServer``), ``paplay`` playing normal
machine sound into it, the daemon capturing the sink's monitor through
PortAudio/sounddevice (device ``pulse``). Pausing ``paplay`` (SIGSTOP) starves
the sink: its monitor then delivers digital silence, exactly what a pulled
cable or a stalled USB microphone gives. The daemon must report that as a
``<base>/sensor`` event that starts and, once playback resumes, ends, carry it
in the health JSON, and never page anyone about the rail.
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
from test_capture import model, pulse, start_daemon, wait_for  # noqa: E402,F401 - fixtures
from test_daemon import synth_clips  # noqa: E402

from edge_monitor import audio_io  # noqa: E402

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
    # Not one window of the pause was scored, so no machine alert; normal windows were scored.
    assert pub.alerts == [] and daemon.counters.alerts == 0
    assert daemon.counters.sensor_faulty >= PAUSE_S / HOP_S - 1
    assert 2 <= daemon.counters.scored < k and len(rec.windows) == daemon.counters.scored
    # The health JSON on <base>/status carried the fault while it lasted, and is clean again.
    assert paused_status, "no status message showed the sensor fault"
    assert {f["kind"] for f in paused_status[-1]["sensor"]["faults"]} <= {"dead_input", "dropout"}
    final = daemon.health()["sensor"]
    assert final["ok"] and final["faults"] == [] and final["windows_faulty"] == daemon.counters.sensor_faulty
