"""``edge-monitor check-mic`` and ``edge-monitor run`` with the HTTP server, on a real PulseAudio null sink.

As for ``record`` (tests/test_record_devices.py): our own PulseAudio server,
``paplay`` into a 16 kHz mono null sink, PortAudio capturing its monitor
through ALSA's ``pulse`` device, the CLI in a subprocess. The pure analysis
(:mod:`edge_monitor.audio.mic_check`) is checked on synthetic signals first.
"""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import test_capture
from test_capture import PulseServer
from test_daemon import bundle_and_profile
from test_record_devices import cli, start_playing, stop, tone_with_noise

from edge_monitor.audio import audio_io
from edge_monitor.audio.mic_check import analyse

pulse = test_capture.pulse  # the private PulseAudio server fixture, shared with the capture tests

REPO = Path(__file__).resolve().parents[1]
RATE = 16000


# --- the analysis ----------------------------------------------------------------------------------


def tone(amplitude: float, hz: float = 1000.0, seconds: float = 4.0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def test_analysis_levels_bands_and_verdicts() -> None:
    ok = analyse(tone(0.4), RATE)
    assert ok.verdict == "ok" and ok.advice == "OK"
    assert ok.rms_dbfs == pytest.approx(20 * np.log10(0.4 / np.sqrt(2)), abs=0.1)  # -11.0 dBFS
    assert ok.peak_dbfs == pytest.approx(20 * np.log10(0.4), abs=0.1)
    assert ok.bands[0].centre_hz == 1000.0 and ok.bands[0].level_dbfs == pytest.approx(ok.rms_dbfs, abs=0.2)
    assert ok.clip_fraction == 0.0 and ok.noise_floor_dbfs == pytest.approx(ok.rms_dbfs, abs=0.2)
    # A tone that plays half the time: the floor is the quiet half (the noise), not the tone.
    half = tone(0.4) + np.random.default_rng(0).normal(0, 0.001, 4 * RATE).astype(np.float32)
    half[: 2 * RATE] = np.random.default_rng(1).normal(0, 0.001, 2 * RATE)
    assert analyse(half, RATE).noise_floor_dbfs == pytest.approx(-60.0, abs=1.0)
    assert analyse(tone(0.001), RATE).advice == "too quiet: move closer or raise gain"
    assert analyse(np.clip(tone(2.0), -1, 1), RATE).advice == "clipping: lower the gain"
    assert analyse(tone(0.95), RATE).verdict == "too_loud"
    silent = analyse(np.zeros(RATE, np.float32), RATE)
    assert silent.verdict == "no_signal" and silent.rms_dbfs is None and silent.bands == []
    # Two channels: judged on the louder one; a 4 kHz tone shows up as the 4 kHz band.
    stereo = np.stack([tone(0.01, 4000.0), tone(0.2, 4000.0)], axis=1)
    both = analyse(stereo, RATE)
    assert both.rms_dbfs == pytest.approx(20 * np.log10(0.2 / np.sqrt(2)), abs=0.1)
    assert both.bands[0].centre_hz == 4000.0


# --- check-mic on the null sink ----------------------------------------------------------------------


def check_mic(server: PulseServer, wav: Path | None, *args: str) -> subprocess.CompletedProcess:
    player = start_playing(server, wav) if wav is not None else None
    try:
        return cli(server, "check-mic", "--device", "pulse", "--seconds", "3", *args, timeout=60)
    finally:
        if player is not None:
            stop(player)


def test_check_mic_reports_the_played_tone_and_says_ok(pulse: Any, tmp_path: Path) -> None:
    wav = audio_io.write_wav(tmp_path / "tone.wav", tone_with_noise(8.0, seed=5))
    proc = check_mic(pulse, wav, "--json")
    assert proc.returncode == 0, proc.stderr
    rep = json.loads(proc.stdout)
    # 0.4 sine + 0.05 white noise: RMS sqrt(0.08 + 0.0025) = -10.8 dBFS.
    assert rep["rms_dbfs"] == pytest.approx(-10.8, abs=0.5), rep
    assert rep["verdict"] == "ok" and rep["advice"] == "OK" and rep["clip_fraction"] == 0.0
    assert rep["bands"][0]["centre_hz"] == 1000.0
    assert rep["device"] == "pulse" and rep["seconds"] == 3.0 and rep["sample_rate"] == RATE
    table = check_mic(pulse, wav)
    assert table.returncode == 0, table.stderr
    lines = dict(line.split(None, 1) for line in table.stdout.splitlines() if line.strip() and " " in line)
    assert set(lines) >= {"device", "level", "peak", "clipping", "noise", "strongest", "verdict"}, table.stdout
    assert lines["verdict"].strip() == "OK"
    assert "1 kHz" in lines["strongest"]


@pytest.mark.parametrize("amplitude, advice", [
    (0.001, "too quiet: move closer or raise gain"),
    (4.0, "clipping: lower the gain"),
])
def test_check_mic_verdicts_on_the_null_sink(pulse: Any, tmp_path: Path, amplitude: float, advice: str) -> None:
    wav = audio_io.write_wav(tmp_path / "t.wav", np.clip(tone(amplitude, seconds=8.0), -1.0, 1.0))
    proc = check_mic(pulse, wav)
    assert proc.returncode == 4, (proc.returncode, proc.stdout, proc.stderr)
    assert f"verdict      {advice}" in proc.stdout, proc.stdout


def test_check_mic_with_nothing_playing_says_no_signal(pulse: Any) -> None:
    proc = check_mic(pulse, None, "--json")
    assert proc.returncode == 4, proc.stderr
    assert json.loads(proc.stdout)["verdict"] == "no_signal"


def test_check_mic_unknown_device_is_one_line(pulse: Any) -> None:
    proc = cli(pulse, "check-mic", "--device", "no-such-mic", "--seconds", "1", timeout=30)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edge-monitor check-mic:") and "no-such-mic" in lines[0]


# --- run, with the HTTP server, capturing from the null sink ----------------------------------------------


def test_run_serves_metrics_that_count_live_windows(pulse: Any, tmp_path: Path, request: pytest.FixtureRequest,
                                                    tmp_path_factory: pytest.TempPathFactory) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    bundle_dir, _, _ = bundle_and_profile(request, tmp_path_factory)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"device_id": "rail-live", "model": str(bundle_dir),
                                   "state_dir": str(tmp_path / "state"), "mqtt": {"enabled": False},
                                   "audio": {"device": "pulse", "hop_seconds": 1.0},
                                   "http": {"listen": "127.0.0.1:0"}}))
    wav = audio_io.write_wav(tmp_path / "tone.wav", tone_with_noise(40.0, seed=9))
    player = start_playing(pulse, wav)
    proc = subprocess.Popen([sys.executable, "-m", "edge_monitor", "run", "--config", str(cfg), "--log-format",
                             "json"], cwd=REPO, env=pulse.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    lines: queue.Queue[str] = queue.Queue()
    out: list[str] = []

    def pump() -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            out.append(line)
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    try:
        url = None
        deadline = time.monotonic() + 60
        while url is None and time.monotonic() < deadline:  # `run` logs to stdout (journald)
            try:
                rec = json.loads(lines.get(timeout=1.0))
            except (queue.Empty, ValueError):
                assert proc.poll() is None, "".join(out)
                continue
            if rec.get("event") == "http server listening":
                url = rec["url"]
        assert url, "".join(out)

        def scraped() -> dict[str, float]:
            with urllib.request.urlopen(url + "metrics", timeout=10) as r:
                text = r.read().decode()
            return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples
                    if not s.labels}

        def wait_scored(n: float, timeout: float) -> dict[str, float]:
            end = time.monotonic() + timeout
            while True:
                m = scraped()
                if m["edge_monitor_windows_scored_total"] >= n:
                    return m
                assert time.monotonic() < end, (m, "".join(out)[-3000:])
                time.sleep(0.5)

        first = wait_scored(1, 40)  # the first 10 s window, then one per second
        second = wait_scored(first["edge_monitor_windows_scored_total"] + 3, 20)
        with urllib.request.urlopen(url + "api/status", timeout=10) as r:
            st = json.loads(r.read())
    finally:
        stop(player)
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
    assert rc == 0, "".join(out)[-3000:]
    assert second["edge_monitor_windows_total"] >= second["edge_monitor_windows_scored_total"]
    assert -20 < second["edge_monitor_input_level_dbfs"] < -5  # the tone (-10.8 dBFS), live
    assert st["device_id"] == "rail-live" and st["source"]["device"] == "pulse"
    assert st["mic"]["verdict"] == "ok" and st["mic"]["bands"][0]["centre_hz"] == 1000.0
