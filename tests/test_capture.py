"""Live capture: a WAV played into a PulseAudio null sink, captured through PortAudio on device ``pulse``.

Real parts only: our own PulseAudio server (own XDG_RUNTIME_DIR, killed by its
PID at the end), ``paplay`` into a null sink, sounddevice capturing the sink's
monitor, the daemon's scoring loop and a real Scorer.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import require_binary  # noqa: E402
from test_daemon import Notes, RecordingPublisher, bundle_and_profile, synth_clips  # noqa: E402

from edge_monitor.audio import audio_io  # noqa: E402


class PulseServer:
    """A private PulseAudio daemon with a null sink ``rail`` whose monitor is the default source."""

    def __init__(self, runtime_dir: Path) -> None:
        self.env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime_dir), "PULSE_RUNTIME_PATH": str(runtime_dir / "pulse")}
        self.pid: int | None = None

    def start(self) -> None:
        subprocess.run(["pulseaudio", "--daemonize=yes", "--exit-idle-time=-1", "-n",
                        "--load=module-native-protocol-unix",
                        # A 16 kHz mono sink: PulseAudio does not resample a 16 kHz WAV, so the
                        # capture carries the file's own samples (a 48 kHz sink's resampler
                        # low-passes near 8 kHz, which alone moves the scores by ~25 %).
                        "--load=module-null-sink sink_name=rail rate=16000 channels=1 format=s16le"],
                       env=self.env, check=True, capture_output=True, timeout=30)
        for _ in range(100):
            pidfile = Path(self.env["PULSE_RUNTIME_PATH"]) / "pid"
            if pidfile.is_file() and pidfile.read_text().strip():
                self.pid = int(pidfile.read_text().split()[0])
                break
            time.sleep(0.05)
        subprocess.run(["pactl", "set-default-source", "rail.monitor"], env=self.env, check=True, timeout=30)

    def kill(self) -> None:
        if self.pid is not None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            for _ in range(100):
                try:
                    os.kill(self.pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.05)
            self.pid = None
            pidfile = Path(self.env["PULSE_RUNTIME_PATH"]) / "pid"
            pidfile.unlink(missing_ok=True)

    def play(self, wav: Path) -> subprocess.Popen:
        return subprocess.Popen(["paplay", "--device=rail", str(wav)], env=self.env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.fixture()
def pulse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    for name in ("pulseaudio", "pactl", "paplay"):
        require_binary(name)
    runtime = tmp_path / "xdg"
    runtime.mkdir(mode=0o700)
    server = PulseServer(runtime)
    server.start()
    # PortAudio's ALSA "pulse" device finds the server through these, read when a stream opens.
    monkeypatch.setenv("XDG_RUNTIME_DIR", server.env["XDG_RUNTIME_DIR"])
    monkeypatch.setenv("PULSE_RUNTIME_PATH", server.env["PULSE_RUNTIME_PATH"])
    from edge_monitor.audio.capture import rescan_devices

    rescan_devices()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture(scope="module")
def model(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    bundle_dir, seed, mid = bundle_and_profile(request, tmp_path_factory)
    from edge_monitor.model.bundle import load_bundle

    return {"dir": bundle_dir, "seed": seed, "mid": mid, "bundle": load_bundle(bundle_dir)}


class RecordingScorer:
    """The real Scorer, keeping a copy of each window it scored (to align it with the file)."""

    def __init__(self, scorer: Any) -> None:
        self.inner = scorer
        self.bundle, self.window_samples = scorer.bundle, scorer.window_samples
        self.windows: list[tuple[np.ndarray, float]] = []

    def predict(self, window: Any, channel: int | None = None, max_invalid: float = 1.0) -> Any:
        ws = self.inner.predict(window, channel, max_invalid)
        self.windows.append((ws.samples.copy(), ws.score))  # the mono audio at the model's rate it scored
        return ws


def start_daemon(tmp_path: Path, model: dict, hop: float, log_stream: io.StringIO, *,
                 decision: dict | None = None, mqtt: dict | None = None,
                 **audio: Any) -> tuple[Any, threading.Thread, RecordingPublisher, RecordingScorer]:
    """The daemon capturing from device ``pulse`` on a thread (``audio``: extra ``audio.*`` keys;
    ``decision``/``mqtt``: extra keys of those sections; MQTT stays disabled)."""
    import yaml

    from edge_monitor.audio.capture import MicrophoneSource
    from edge_monitor.config.loader import parse_config
    from edge_monitor.model.scorer import Scorer
    from edge_monitor.service import logs
    from edge_monitor.service.daemon import Daemon

    cfg = parse_config(yaml.safe_dump({
        "device_id": "live", "model": str(model["dir"]), "state_dir": str(tmp_path / "state"),
        "mqtt": {"enabled": False, **(mqtt or {})}, "evidence": {"enabled": False},
        **({"decision": decision} if decision else {}),
        "audio": {"device": "pulse", "hop_seconds": hop, **audio}}), "live.yaml")
    logs.configure("debug", "json", stream=log_stream)
    log = logs.get_logger("live")
    scorer = RecordingScorer(Scorer(model["bundle"]))
    pub = RecordingPublisher()
    daemon = Daemon(cfg, scorer, pub, log, notifier=Notes())
    source = MicrophoneSource(cfg.audio, daemon.model_rate, daemon.windowing, log)
    thread = threading.Thread(target=daemon.run, args=(source,), daemon=True)
    thread.start()
    return daemon, thread, pub, scorer


def wait_for(cond: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def locate(window: np.ndarray, signal_: np.ndarray) -> tuple[int, float]:
    """Offset of ``window`` in ``signal_`` (samples) by FFT cross-correlation, and the normalised peak."""
    import scipy.signal

    c = scipy.signal.correlate(signal_, window, mode="valid", method="fft")
    i = int(np.argmax(c))
    seg = signal_[i:i + window.size]
    peak = float(c[i] / (np.linalg.norm(seg) * np.linalg.norm(window) + 1e-12))
    return i, peak


def test_live_capture_scores_match_the_file_scores(pulse: Any, model: dict, tmp_path: Path) -> None:
    from edge_monitor.model.scorer import Scorer

    scorer = Scorer(model["bundle"])
    clips = synth_clips(model["seed"], model["mid"], None, 2, salt=21)
    played = np.concatenate(clips)
    wav = audio_io.write_wav(tmp_path / "played.wav", played)
    file_scores = [w.score for w in scorer.score_file(wav).windows]  # what `edge-monitor score` computes (0 s, 10 s)

    log = io.StringIO()
    daemon, thread, pub, rec = start_daemon(tmp_path, model, hop=1.0, log_stream=log)
    try:
        wait_for(lambda: '"capture started"' in log.getvalue(), 20, "capture to start")
        player = pulse.play(wav)
        player.wait(timeout=60)
        # Windows come in order, one per second of audio: four more than when playback ended means every
        # window inside the playback has been scored, even with PulseAudio's ~2 s of latency.
        done = daemon.counters.windows + 4
        wait_for(lambda: daemon.counters.windows >= done, 30, "the windows after the playback")
    finally:
        daemon.request_stop()
        thread.join(timeout=10)
    assert not thread.is_alive()
    x = audio_io.read_wav(wav)
    inside = []  # (offset in the file, captured window, captured score)
    for samples, score in rec.windows:
        offset, peak = locate(samples, np.concatenate([np.zeros(samples.size), x, np.zeros(samples.size)]))
        offset -= samples.size
        if peak > 0.95 and 0 <= offset <= x.size - samples.size:
            inside.append((offset, samples, score))
    # 20 s played, 10 s windows every 1 s: at least 8 of the 11 possible lie wholly inside the playback.
    assert len(inside) >= 8, f"{len(rec.windows)} windows, {len(inside)} inside the playback"
    # 1. Aligned exactly (the captured window's own offset): the same audio through PulseAudio's
    #    16 kHz 16-bit sink gives the same samples, so the same score (within 0.1 %).
    aligned = [scorer.score_window(x[o:o + w.size]).score for o, w, _ in inside]
    rel = [abs(s - a) / a for (_, _, s), a in zip(inside, aligned)]
    print("live vs aligned file windows, relative differences:", np.round(rel, 4).tolist())
    assert max(rel) < 1e-3, rel
    # 2. Against `edge-monitor score` (windows at 0, 10, 20 s): live windows start wherever capture
    #    happened to be, so they straddle the two clips; for this stationary machine sound the live scores
    #    stay within 10 % of the file's mean window score (measured: under 5 %).
    ref = float(np.mean(file_scores))
    live = np.array([s for _, _, s in inside])
    print("live vs mean file score, relative differences:", np.round(np.abs(live - ref) / ref, 4).tolist())
    assert np.all(np.abs(live - ref) / ref < 0.10), (live, file_scores)


def test_device_vanishing_is_reported_and_recovered(pulse: Any, model: dict, tmp_path: Path) -> None:
    clip = synth_clips(model["seed"], model["mid"], None, 1, salt=22)[0]
    wav = audio_io.write_wav(tmp_path / "clip.wav", np.concatenate([clip, clip[:5 * 16000]]))
    log = io.StringIO()
    daemon, thread, pub, rec = start_daemon(tmp_path, model, hop=1.0, log_stream=log, stall_seconds=4.0,
                                            retry_max_seconds=2.0)
    try:
        wait_for(lambda: '"capture started"' in log.getvalue(), 20, "capture to start")
        ring = daemon.source.ring
        wait_for(lambda: ring.pending() > 0, 20, "audio to arrive")
        pulse.kill()  # the audio server (and with it the device) vanishes
        wait_for(lambda: '"audio device lost"' in log.getvalue(), 20, "the loss to be reported")
        # Reconnect attempts fail (with back-off) while it is gone.
        wait_for(lambda: '"audio device unavailable"' in log.getvalue(), 20, "a failed reconnect attempt")
        pulse.start()
        wait_for(lambda: '"audio device recovered"' in log.getvalue(), 30, "recovery")
        before = len(rec.windows)
        player = pulse.play(wav)
        wait_for(lambda: len(rec.windows) > before, 30, "windows after recovery")
        player.kill()
        player.wait()
    finally:
        daemon.request_stop()
        thread.join(timeout=10)
    assert not thread.is_alive()
    lines = [json.loads(line) for line in log.getvalue().splitlines() if line.startswith("{")]
    lost = next(entry for entry in lines if entry["event"] == "audio device lost")
    assert lost["level"] == "error" and lost["reason"]
    recovered = next(entry for entry in lines if entry["event"] == "audio device recovered")
    assert recovered["restarts"] == 1
    assert daemon.source.restarts == 1 and daemon.source.running is False  # stopped at the end
