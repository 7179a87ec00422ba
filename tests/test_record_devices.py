"""``edge-monitor devices`` and ``edge-monitor record`` against a real PulseAudio null sink.

The CLI runs in a subprocess (``python -m edge_monitor``) with our private
PulseAudio server's environment; PortAudio reaches it through ALSA's ``pulse``
device. ``record`` captures the sink's monitor while ``paplay`` plays a known
WAV into the 16 kHz mono sink, so the clips carry the file's own samples.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_capture import PulseServer, locate, pulse  # noqa: E402,F401 - `pulse` is a fixture

from edge_monitor.audio import audio_io  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RATE = 16000
TONE_HZ = 1000.0


def cli(server: PulseServer, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """``edge-monitor ARGS`` in a subprocess talking to ``server``."""
    return subprocess.run([sys.executable, "-m", "edge_monitor", *args], cwd=REPO, env=server.env,
                          capture_output=True, text=True, timeout=timeout)


def tone_with_noise(seconds: float, seed: int) -> np.ndarray:
    """A 1 kHz tone (amplitude 0.4) plus seeded white noise (std 0.05): the tone sets the spectral
    peak, the noise makes every position in the file unique so a clip can be located exactly."""
    t = np.arange(int(seconds * RATE)) / RATE
    noise = np.random.default_rng(seed).normal(0.0, 0.05, t.size)
    return (0.4 * np.sin(2 * np.pi * TONE_HZ * t) + noise).astype(np.float32)


def start_playing(server: PulseServer, wav: Path) -> subprocess.Popen:
    """``paplay`` into the sink, returning once its stream is connected (audio reaches the monitor)."""
    player = server.play(wav)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        inputs = subprocess.run(["pactl", "list", "short", "sink-inputs"], env=server.env,
                                capture_output=True, text=True, timeout=10).stdout
        if inputs.strip():
            time.sleep(0.2)  # let the first blocks reach the sink
            return player
        assert player.poll() is None, "paplay exited before playing"
        time.sleep(0.05)
    player.kill()
    raise AssertionError("paplay never connected to the sink")


def stop(player: subprocess.Popen) -> None:
    player.kill()
    player.wait(timeout=10)


def peak_frequency(x: np.ndarray) -> float:
    """Frequency (Hz) of the largest magnitude in the spectrum of ``x`` (Hann window)."""
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    return float(np.fft.rfftfreq(x.size, 1 / RATE)[int(np.argmax(spectrum))])


def clips_in(folder: Path, machine_id: str) -> list[Path]:
    return sorted(folder.glob(f"normal_id_{machine_id}_*.wav"))


# --- devices -----------------------------------------------------------------------------


def test_devices_lists_the_pulse_input_with_its_default_rate(pulse: Any) -> None:
    import sounddevice as sd

    table = cli(pulse, "devices")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert re.search(r"\bidx\b.*\bname\b.*\brate\b.*ok16k", lines[0]), lines[0]
    rows = {}
    for line in lines[1:]:
        m = re.match(r"^([* ])\s+(\d+)\s+(.+?)\s+(\S+)\s+(\d+)\s+(\d+)\s+(yes|no)$", line)
        assert m, f"unparsable row: {line!r}"
        rows[m.group(3)] = m
    assert "pulse" in rows, table.stdout
    assert int(rows["pulse"].group(6)) > 0  # the default-rate column
    assert rows["pulse"].group(7) == "yes"  # the ALSA pulse plugin takes 16 kHz directly
    assert sum(m.group(1) == "*" for m in rows.values()) == 1, "exactly one default input is starred"

    listing = cli(pulse, "devices", "--json")
    assert listing.returncode == 0, listing.stderr
    devices = json.loads(listing.stdout)
    assert {d["name"] for d in devices} == set(rows)
    assert sum(d["default"] for d in devices) == 1
    by_name = {d["name"]: d for d in devices}
    assert by_name["pulse"]["default_samplerate"] > 0 and by_name["pulse"]["ok16k"] is True
    # The same devices PortAudio itself reports (this process sees the same server).
    for d in devices:
        info = sd.query_devices(d["index"])
        assert info["name"] == d["name"]
        assert info["max_input_channels"] == d["channels"] > 0
        assert info["default_samplerate"] == d["default_samplerate"]
        assert int(rows[d["name"]].group(2)) == d["index"]
        assert int(rows[d["name"]].group(6)) == round(d["default_samplerate"])


# --- record -------------------------------------------------------------------------------


def test_record_writes_a_10_s_16_khz_clip_of_what_plays(pulse: Any, tmp_path: Path) -> None:
    wav = audio_io.write_wav(tmp_path / "tone.wav", tone_with_noise(14.0, seed=1))
    out = tmp_path / "train"
    player = start_playing(pulse, wav)
    try:
        # Defaults: 10 s clips at 16 kHz.
        proc = cli(pulse, "record", "--seconds", "10", "--out", str(out), "--device", "pulse",
                   "--machine-id", "07")
    finally:
        stop(player)
    assert proc.returncode == 0, proc.stderr
    clips = clips_in(out, "07")
    assert [p.name for p in out.iterdir()] == [p.name for p in clips] and len(clips) == 1, list(out.iterdir())
    assert re.fullmatch(r"normal_id_07_\d{8}T\d{6}Z_0000\.wav", clips[0].name)
    raw = audio_io.read_wav_raw(clips[0])
    assert (raw.sample_rate, raw.samples.shape, raw.bits, raw.fmt) == (RATE, (10 * RATE, 1), 16, "int")
    x = audio_io.read_wav(clips[0])
    # Audio throughout: every 0.5 s of the clip carries the tone (no silent start, no gap).
    seg_rms = np.sqrt(np.mean(x.reshape(20, -1) ** 2, axis=1))
    assert seg_rms.min() > 0.2, seg_rms  # tone alone: 0.4 / sqrt(2) = 0.28
    assert abs(peak_frequency(x) - TONE_HZ) <= 1.0
    assert "[1/1]" in proc.stdout and "saved 1 clip(s) of 10 s" in proc.stdout, proc.stdout


def test_record_clips_are_consecutive_and_a_partial_clip_is_dropped(pulse: Any, tmp_path: Path) -> None:
    played = tone_with_noise(10.0, seed=2)
    wav = audio_io.write_wav(tmp_path / "played.wav", played)
    played = audio_io.read_wav(wav)  # as quantised to 16 bits
    out = tmp_path / "clips"
    player = start_playing(pulse, wav)
    try:
        proc = cli(pulse, "record", "--seconds", "5", "--clip-seconds", "2", "--out", str(out),
                   "--device", "pulse")
    finally:
        stop(player)
    assert proc.returncode == 0, proc.stderr
    clips = clips_in(out, "00")
    assert [p.name[-9:] for p in clips] == ["_0000.wav", "_0001.wav"]  # 5 s -> two 2 s clips, 1 s dropped
    xs = [audio_io.read_wav(p) for p in clips]
    assert all(x.size == 2 * RATE for x in xs)
    where = [locate(x, played) for x in xs]
    for (_, corr), x in zip(where, xs):
        assert corr > 0.999, where  # the file's own samples (16 kHz s16 sink: no resampling)
        assert abs(peak_frequency(x) - TONE_HZ) <= 8.0  # 2 s clip: 0.5 Hz bins
    # No sample lost or repeated between clips: the second starts right where the first ended.
    assert where[1][0] - where[0][0] == 2 * RATE, where
    o = where[0][0]
    np.testing.assert_allclose(np.concatenate(xs), played[o:o + 4 * RATE], atol=2 / 32768)


def test_record_unknown_device_is_one_clear_error(pulse: Any, tmp_path: Path) -> None:
    out = tmp_path / "never"
    for device, what in (("no-such-mic", "'no-such-mic'"), ("99", "index 99")):
        proc = cli(pulse, "record", "--seconds", "10", "--out", str(out), "--device", device, timeout=30)
        assert proc.returncode != 0
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, proc.stderr
        assert lines[0].startswith("edge-monitor record: ") and what in lines[0], lines[0]
        assert "pulse" in lines[0], "the error lists the inputs that do exist"
        assert not out.exists(), "nothing is written for a device that does not exist"


def test_record_rejects_seconds_shorter_than_a_clip(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "edge_monitor", "record", "--seconds", "5", "--out",
                           str(tmp_path / "x")], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "--seconds >= --clip-seconds" in proc.stderr
    assert not (tmp_path / "x").exists()


def pull_the_device(proc: subprocess.Popen, player: Any, pulse: Any) -> tuple[str, str, float]:
    """Stop playing and kill the audio server under a running command: its stdout, stderr and seconds to exit."""
    stop(player)
    pulse.kill()  # the audio server, and with it the device, goes away for good
    killed = time.monotonic()
    stdout, stderr = proc.communicate(timeout=60)
    return stdout, stderr, time.monotonic() - killed


def test_record_gives_up_with_one_line_when_the_device_stays_gone(pulse: Any, tmp_path: Path) -> None:
    wav = audio_io.write_wav(tmp_path / "tone.wav", tone_with_noise(30.0, seed=3))
    out = tmp_path / "gone"
    player = start_playing(pulse, wav)
    proc = subprocess.Popen([sys.executable, "-m", "edge_monitor", "record", "--seconds", "60", "--clip-seconds",
                             "1", "--out", str(out), "--device", "pulse", "--give-up-after", "3"],
                            cwd=REPO, env=pulse.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not clips_in(out, "00") and time.monotonic() < deadline:  # recording is under way
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.1)
        assert clips_in(out, "00"), "no clip was recorded before the device went away"
        stdout, stderr, took = pull_the_device(proc, player, pulse)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 3, (proc.returncode, stderr)
    last = stderr.strip().splitlines()[-1]
    assert re.match(r"edge-monitor record: the input device '.*pulse.*' has been gone for \d+ s "
                    r"\(--give-up-after 3\): .+; saved \d+ of 60 clip\(s\) in ", last), last
    # Loss detection (the stream error, or audio.stall_seconds = 5 s of no audio) plus the 3 s limit.
    assert took < 3 + 5 + 10, took
    saved = int(re.search(r"saved (\d+) of", last).group(1))
    assert saved >= 1 and len(clips_in(out, "00")) == saved  # what was recorded stays
    assert "saved" not in stdout.splitlines()[-1] or "clip(s) of" not in stdout.splitlines()[-1]


def test_record_rejects_a_non_positive_give_up_time(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "edge_monitor", "record", "--seconds", "10", "--out",
                           str(tmp_path / "x"), "--give-up-after", "0"], cwd=REPO, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2 and "--give-up-after > 0" in proc.stderr
    assert not (tmp_path / "x").exists()
