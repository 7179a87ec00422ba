"""``edge-monitor learn``: a bundle fitted on the Pi from normal sound, without TensorFlow.

Real parts only: ``--from-wav`` on the synthetic slide rail (the session's
``synth_dataset``), and the microphone path on our private PulseAudio server
(``tests/test_capture.py``'s ``PulseServer``): ``paplay`` plays normal clips
into the 16 kHz null sink while ``learn`` captures its monitor through
PortAudio, as ``record`` is tested (``tests/test_record_devices.py``).
"""

from __future__ import annotations

import io
import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import test_capture
from test_capture import PulseServer
from test_record_devices import pull_the_device, start_playing, stop, tone_with_noise

from edge_monitor.audio import audio_io
from edge_monitor.model.learn import (
    LearnError,
    WindowSet,
    block_groups,
    default_out_dir,
    hand_over,
    set_config_model,
    writable_dir,
)

pulse = test_capture.pulse  # the private PulseAudio server fixture, shared with the capture tests

REPO = Path(__file__).resolve().parents[1]
#: Imported by learn in a subprocess, this prints the heavy modules it loaded, then exits with learn's status.
LEARN_AND_LIST_MODULES = (
    "import json, sys\n"
    "from edge_monitor.cli import main\n"
    "rc = main(sys.argv[1:])\n"
    "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'sklearn', 'matplotlib', 'librosa', 'tflite_runtime',"
    " 'ai_edge_litert'))\n"
    "print('MODULES ' + json.dumps(heavy))\n"
    "sys.exit(rc)\n"
)


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """``edge-monitor ARGS`` in a subprocess (PYTHONPATH from the environment: a worktree's code wins)."""
    return subprocess.run([sys.executable, "-m", "edge_monitor", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)


def write_config(tmp_path: Path, **audio: Any) -> Path:
    """A daemon config whose model does not exist yet (a Pi before its first model), MQTT off."""
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        "# the rail monitor\n"
        "device_id: rail-1\n"
        f"model: {tmp_path / 'no-model-yet'}   # set by learn --update-config\n"
        f"state_dir: {tmp_path / 'state'}\n"
        + (("audio:\n" + "".join(f"  {k}: {v}\n" for k, v in audio.items())) if audio else "")
        + "mqtt:\n  enabled: false\n")
    return cfg


def scores(bundle_dir: Path, files: list[Path]) -> np.ndarray:
    """The Scorer's score of each file's first window."""
    from edge_monitor.model.bundle import load_bundle
    from edge_monitor.model.scorer import Scorer

    scorer = Scorer(load_bundle(bundle_dir))
    return np.array([scorer.score_window(audio_io.read_wav(p)[: scorer.window_samples]).score for p in files])


# --- the pieces -----------------------------------------------------------------------------


def test_block_groups_are_minutes_of_recording_or_single_windows_when_short() -> None:
    groups, text = block_groups(list(range(13)), 10.0)  # 130 s: blocks 0-5, 6-11, 12
    assert groups.tolist() == [0] * 6 + [1] * 6 + [2] and "3 groups of 60 s" in text
    # Dropped windows leave gaps; a window keeps the block of its time, not of its rank.
    groups, _ = block_groups([0, 1, 2, 7, 8, 12], 10.0)
    assert groups.tolist() == [0, 0, 0, 1, 1, 2]
    for n in (3, 11):  # under 2 minutes: too few blocks, every window is its own group
        groups, text = block_groups(list(range(n)), 10.0)
        assert groups.tolist() == list(range(n)) and "each window its own group" in text


def test_window_set_drops_sensor_faults_and_says_why() -> None:
    ws = WindowSet()
    rng = np.random.default_rng(0)
    n = ws.params.window_samples
    normal = (0.1 * rng.standard_normal(n)).astype(np.float32)
    clipped = np.clip(normal * 40, -1, 1).astype(np.float32)
    dead = np.zeros(n, np.float32)
    for i, (x, xruns) in enumerate([(normal, 0), (clipped, 0), (dead, 0), (normal, 5)]):
        ws.add(x, x, ws.params.sample_rate, position=i, xruns=xruns)
    assert len(ws) == 1 and ws.positions == [0] and ws.n_dropped == 3
    assert ws.array().shape == (1, ws.params.n_mels, 312)
    assert ws.dropped_text() == "3 dropped for sensor faults (clipping 1, dead_input 1, xrun 1)"


@pytest.mark.parametrize("rate, channels, channel", [(16000, 1, None), (48000, 2, None), (44100, 2, 1)])
def test_recorded_windows_are_converted_as_the_daemon_converts_them(rate: int, channels: int,
                                                                     channel: int | None) -> None:
    from edge_monitor.model.conditioning import fit_length, to_model_audio

    raw = np.random.default_rng(rate).normal(0, 0.1, (10 * rate, channels)).astype(np.float32)
    expected = audio_io.downmix(raw, channel)  # downmix, resample the whole window, crop or pad
    if rate != 16000:
        expected = fit_length(audio_io.resample(expected, rate, 16000), 160000)
    # The one conditioning function: `record` and `learn` call it, Scorer.predict (the daemon) too.
    got = to_model_audio(raw, rate, 16000, 160000, channel)
    assert got.shape == (160000,) and got.dtype == np.float32
    np.testing.assert_array_equal(got, expected)


def test_default_out_dir_and_writable_checks(tmp_path: Path) -> None:
    out = default_out_dir(tmp_path / "state", now=0.0)
    assert out == tmp_path / "state" / "models" / "learned-19700101T000000Z"
    assert writable_dir(out) is None and not (tmp_path / "state").exists()  # checks, creates nothing
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "model.json").write_text("{}")
    assert "not empty" in (writable_dir(tmp_path / "full") or "")
    (tmp_path / "file").write_text("")
    assert "not a folder" in (writable_dir(tmp_path / "file") or "")


def test_hand_over_makes_the_bundle_readable_like_any_file(tmp_path: Path) -> None:
    out = tmp_path / "b"
    out.mkdir()
    (out / "model.json").write_text("{}")
    os.chmod(out / "model.json", 0o600)  # what the bundle writer's mkstemp leaves
    old = os.umask(0o022)
    try:
        hand_over(out, None)
    finally:
        os.umask(old)
    assert (out / "model.json").stat().st_mode & 0o777 == 0o644


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="only root can hand files to another user")
def test_hand_over_as_root_gives_the_bundle_to_the_state_dir_owner(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    os.chown(state, 65534, 65534)  # the service user (here: nobody) owns its state folder
    out = default_out_dir(state)
    out.mkdir(parents=True)  # models/ and the bundle, created by root
    (out / "model.json").write_text("{}")
    hand_over(out, state)
    for p in (state / "models", out, out / "model.json"):
        assert (p.stat().st_uid, p.stat().st_gid) == (65534, 65534), p
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "model.json").write_text("{}")
    hand_over(elsewhere, state)
    assert (elsewhere / "model.json").stat().st_uid == 0  # --out outside state_dir: left as it is


def test_set_config_model_rewrites_only_the_model_line(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, device="pulse")
    os.chmod(cfg, 0o640)
    before = cfg.read_text()
    bundle = tmp_path / "odd name: #1"  # needs quoting in YAML
    set_config_model(cfg, bundle)
    after = cfg.read_text()
    changed = [(a, b) for a, b in zip(before.splitlines(), after.splitlines()) if a != b]
    assert len(changed) == 1 and len(before.splitlines()) == len(after.splitlines())
    assert changed[0][1] == f"model: {json.dumps(str(bundle))}   # set by learn --update-config"
    from edge_monitor.config.loader import load_config

    assert load_config(cfg).model == bundle
    assert cfg.stat().st_mode & 0o777 == 0o640
    set_config_model(cfg, tmp_path / "plain")
    assert "\nmodel: " + str(tmp_path / "plain") + "   # set" in cfg.read_text()
    assert not list(tmp_path.glob(".*.tmp"))

    # Flow style and quoting are the YAML parser's business: it says where the value is.
    flow = tmp_path / "flow.yaml"
    flow.write_text("{device_id: x, model: 'old, quoted', state_dir: /s}  # one line\n")
    set_config_model(flow, bundle)
    assert flow.read_text() == f"{{device_id: x, model: {json.dumps(str(bundle))}, state_dir: /s}}  # one line\n"
    assert load_config(flow).model == bundle

    # Validated before it is written: an alias to the old value would dangle.
    anchored = tmp_path / "anchored.yaml"
    anchored.write_text("device_id: x\nmodel: &m /old\nstate_dir: *m\n")
    with pytest.raises(LearnError, match="would not validate"):
        set_config_model(anchored, bundle)
    assert anchored.read_text() == "device_id: x\nmodel: &m /old\nstate_dir: *m\n"


def test_progress_prints_a_line_every_10_percent_off_a_terminal() -> None:
    from edge_monitor.commands.learn import ProgressLine

    buf = io.StringIO()
    p = ProgressLine(60, 10.0, buf)
    for i in range(1, 61):
        p.update(i, dropped=1 if i > 30 else 0)
    lines = buf.getvalue().splitlines()
    assert len(lines) == 10, lines
    assert lines[0] == "recording: 6/60 windows (10 %) ~9 min left (1.0 of 10.0 min)"
    assert lines[5] == "recording: 36/60 windows (60 %) ~4 min left (6.0 of 10.0 min), 1 dropped for sensor faults"
    assert lines[-1] == "recording: 60/60 windows (100 %) (10.0 of 10.0 min), 1 dropped for sensor faults"


def test_progress_updates_one_line_on_a_terminal() -> None:
    from edge_monitor.commands.learn import ProgressLine

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    buf = Tty()
    p = ProgressLine(3, 10.0, buf)
    p.update(1, 0)
    p.close()  # interrupted: the line is ended
    assert buf.getvalue() == "\rrecording: 1/3 windows (33 %) ~20 s left (0.2 of 0.5 min)\x1b[K\n"
    buf = Tty()
    p = ProgressLine(3, 10.0, buf)
    for i in (1, 2, 3):
        p.update(i, 0)
    p.close()
    shown = buf.getvalue()
    assert shown.count("\r") == 3 and shown.count("\n") == 1 and shown.endswith("(100 %) (0.5 of 0.5 min)\x1b[K\n")


# --- --from-wav -----------------------------------------------------------------------------


def test_learn_from_wav_writes_a_bundle_that_scores_anomalies_higher_without_tensorflow(
        synth_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "learned"
    proc = subprocess.run([sys.executable, "-c", LEARN_AND_LIST_MODULES, "learn", "--from-wav",
                           str(synth_dataset / "train"), "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    heavy = json.loads(proc.stdout.splitlines()[-1].removeprefix("MODULES "))
    assert heavy == [], f"learn imported {heavy}"
    assert "read 16 file(s): 16 windows of 10 s" in proc.stdout
    assert re.search(r"fitted: (level profile|frame Gaussian).*, fused by weighted", proc.stdout), proc.stdout
    # The choice and its evidence: every candidate with its weight and pseudo-anomaly figures.
    assert re.search(r"detector choice from 16 normal and \d+ pseudo-anomalous windows", proc.stdout), proc.stdout
    assert all(re.search(rf"^  {name} +[0-9.]+ +[0-9.]+ ", proc.stdout, re.M) for name in
               ("profile", "frames", "frames_mean", "subspace")), proc.stdout
    budget = r"threshold [0-9.e+-]+ \(1 false alert\(s\) per day .*out-of-fold scores"
    assert re.search(budget, proc.stdout), proc.stdout
    assert re.search(r"fit [0-9.]+ s \(detectors [0-9.]+ s", proc.stdout)
    assert f"bundle: {out.resolve()}" in proc.stdout and "16 groups (one per file)" in proc.stdout
    assert "next: set `model: " in proc.stdout and "edge-monitor check-config" in proc.stdout

    assert sorted(p.name for p in out.iterdir()) == ["detectors.npz", "model.json"]
    meta = json.loads((out / "model.json").read_text())
    assert meta["training"]["source"] == "wav" and meta["training"]["windows"] == 16
    assert meta["training"]["clips"] == 16 and meta["training"]["windows_dropped"] == {}
    test = synth_dataset / "test"
    normal = scores(out, sorted(test.glob("normal_*.wav")))
    anomalous = scores(out, sorted(test.glob("anomaly_*.wav")))
    assert anomalous.mean() > normal.mean(), (normal, anomalous)
    assert np.median(anomalous) > np.median(normal)


def test_learn_from_one_long_wav_groups_minutes_of_it(synth_dataset: Path, tmp_path: Path) -> None:
    clips = sorted((synth_dataset / "train").glob("normal_id_00_*.wav"))[:3]
    long = audio_io.write_wav(tmp_path / "long.wav", np.concatenate([audio_io.read_wav(p) for p in clips]))
    out = tmp_path / "b"
    proc = cli("learn", "--from-wav", str(long), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "each window its own group (under 2 minutes" in proc.stdout
    assert "note: 3 windows give a rough threshold" in proc.stdout
    meta = json.loads((out / "model.json").read_text())
    assert meta["training"]["clips"] == 3 and meta["threshold"]["rule"] == "percentile"


# --- bad arguments and configs: one line, the right status ----------------------------------


@pytest.mark.parametrize("args, status, words", [
    ([], 2, "need either --minutes N"),
    (["--minutes", "1", "--from-wav", "x.wav", "--out", "o"], 2, "not both"),
    (["--minutes", "0.2", "--out", "o"], 2, "need 0.5 <= --minutes <= 120"),
    (["--minutes", "200", "--out", "o"], 2, "got 200"),
    (["--minutes", "1"], 2, "need --config"),
    (["--minutes", "1", "--out", "o", "--give-up-after", "0"], 2, "--give-up-after > 0"),
    (["--from-wav", "x.wav", "--out", "o", "--update-config"], 2, "--update-config needs --config"),
    (["--from-wav", "x.wav", "--out", "o", "--device", "pulse"], 2, "--device is for recording"),
    (["--from-wav", "{tmp}/missing.wav", "--out", "o"], 66, "no such file"),
    (["--from-wav", "{tmp}/full", "--out", "o"], 66, "no WAV files found"),
    (["--from-wav", "{tmp}/bad.wav", "--out", "o"], 66, "bad.wav"),
    (["--minutes", "1", "--config", "{tmp}/missing.yaml"], 78, "config error: {tmp}/missing.yaml: no such file"),
    (["--minutes", "1", "--config", "{tmp}/broken.yaml"], 78, "config error: {tmp}/broken.yaml"),
    (["--minutes", "1", "--config", "{tmp}/anchored.yaml", "--update-config"], 78, "set `model:` by hand"),
    (["--from-wav", "x.wav", "--out", "{tmp}/full"], 73, "is not empty"),
])
def test_bad_arguments_are_one_line_and_the_right_status(tmp_path: Path, args: list[str], status: int,
                                                         words: str) -> None:
    (tmp_path / "broken.yaml").write_text("device_id: [\n")
    (tmp_path / "anchored.yaml").write_text(f"device_id: x\nmodel: &m {tmp_path / 's'}\nstate_dir: *m\n")
    (tmp_path / "bad.wav").write_bytes(b"RIFF....WAVEjunk")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "model.json").write_text("{}")
    before = sorted(p.name for p in tmp_path.iterdir())
    proc = cli("learn", *[a.replace("{tmp}", str(tmp_path)) for a in args], timeout=60)
    assert proc.returncode == status, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edge-monitor learn: "), proc.stderr
    assert words.replace("{tmp}", str(tmp_path)) in lines[0], lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == before, "nothing is written"
    assert not (REPO / "o").exists()


def test_help_explains_with_an_example() -> None:
    proc = cli("learn", "--help", timeout=60)
    assert proc.returncode == 0
    assert "edge-monitor learn --config /etc/edge-monitor/config.yaml --minutes 10 --update-config" in proc.stdout
    assert "--from-wav" in proc.stdout and "Exit status" in proc.stdout


# --- the microphone, through PulseAudio ---------------------------------------------------------


def normal_audio(synth_dataset: Path, tmp_path: Path, n: int) -> Path:
    """``n`` normal training clips of machine id_00, back to back in one WAV (one paplay stream: no gaps)."""
    clips = sorted((synth_dataset / "train").glob("normal_id_00_*.wav"))[:n]
    return audio_io.write_wav(tmp_path / "normal.wav", np.concatenate([audio_io.read_wav(p) for p in clips]))


def test_learn_from_the_microphone_end_to_end(pulse: PulseServer, synth_dataset: Path, tmp_path: Path) -> None:
    cfg = write_config(tmp_path, device="pulse")
    wav = normal_audio(synth_dataset, tmp_path, 6)  # 60 s: learn's start-up plus 30 s of recording fit in it
    player = start_playing(pulse, wav)
    try:
        proc = cli("learn", "--config", str(cfg), "--minutes", "0.5", "--update-config", env=pulse.env)
    finally:
        stop(player)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert re.search(r"recording 0\.5 min \(3 windows of 10 s\) from '.*pulse.*' at 16000 Hz", out), out
    # Off a terminal, a line per 10 %: with 3 windows, one per window.
    assert [ln.split(" (")[0] for ln in out.splitlines() if ln.startswith("recording: ")] == [
        "recording: 1/3 windows", "recording: 2/3 windows", "recording: 3/3 windows"], out
    assert "from 3 windows of 10 s (0.5 min; none dropped for sensor faults)" in out, out
    assert "each window its own group (under 2 minutes" in out
    bundles = list((tmp_path / "state" / "models").glob("learned-*"))
    assert len(bundles) == 1 and re.fullmatch(r"learned-\d{8}T\d{6}Z", bundles[0].name)
    bundle = bundles[0]
    assert f"bundle: {bundle.resolve()}" in out and f"(done) {cfg}: model: {bundle.resolve()}" in out
    assert f"edge-monitor check-config {cfg} --model" in out and f"edge-monitor run --config {cfg}" in out
    umask = os.umask(0)
    os.umask(umask)
    assert all(f.stat().st_mode & 0o777 == 0o666 & ~umask for f in bundle.iterdir())  # not mkstemp's 0600
    meta = json.loads((bundle / "model.json").read_text())
    training = meta["training"]
    assert training["source"] == "microphone" and "pulse" in training["device"]
    assert (training["windows"], training["windows_recorded"], training["capture_rate"]) == (3, 3, 16000)
    assert meta["machine"] == "rail-1"

    # The config now points at the bundle, and the daemon's own checks accept it.
    assert yaml.safe_load(cfg.read_text())["model"] == str(bundle.resolve())
    assert "# the rail monitor" in cfg.read_text() and "# set by learn --update-config" in cfg.read_text()
    check = cli("check-config", str(cfg), "--model", timeout=60)
    assert check.returncode == 0, check.stderr

    # What the microphone heard is what the machine sounds like: its own normal clips score
    # low, its faults high, through exactly the daemon's pipeline.
    test = synth_dataset / "test"
    normal = sorted(test.glob("normal_id_00_*.wav"))
    anomalous = sorted(test.glob("anomaly_id_00_*.wav"))
    sim = cli("simulate", "--config", str(cfg), "--fast", "--no-mqtt", "--log-format", "json", "--log-level",
              "debug", *map(str, normal + anomalous), timeout=120)
    assert sim.returncode == 0, sim.stderr
    windows = [json.loads(ln) for ln in sim.stderr.splitlines() if ln.startswith("{") and '"window"' in ln]
    windows = [w for w in windows if w.get("event") == "window"]
    assert len(windows) == len(normal) + len(anomalous), sim.stderr[-2000:]
    s = np.array([w["score"] for w in windows])
    assert s[len(normal):].mean() > s[: len(normal)].mean(), s
    alerts = [json.loads(ln) for ln in sim.stdout.splitlines() if ln.startswith('{"')]
    assert any(a["topic"] == "alert" and a["event"] == "start" and a["model"]["name"] == bundle.name
               for a in alerts), sim.stdout  # the faults raise an alert, explained by the detector that fired


def test_learn_unknown_device_is_one_line_and_writes_nothing(pulse: PulseServer, tmp_path: Path) -> None:
    cfg = write_config(tmp_path, device="no-such-mic")
    proc = cli("learn", "--config", str(cfg), "--minutes", "1", env=pulse.env, timeout=60)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edge-monitor learn: "), proc.stderr
    assert "'no-such-mic'" in lines[0] and "pulse" in lines[0], "the error lists the inputs that do exist"
    assert not (tmp_path / "state").exists()


def test_learn_gives_up_with_one_line_when_the_device_stays_gone(pulse: PulseServer, tmp_path: Path) -> None:
    wav = audio_io.write_wav(tmp_path / "tone.wav", tone_with_noise(30.0, seed=3))
    cfg = write_config(tmp_path, device="pulse")
    out = tmp_path / "never"
    player = start_playing(pulse, wav)
    proc = subprocess.Popen([sys.executable, "-m", "edge_monitor", "learn", "--config", str(cfg), "--minutes", "1",
                             "--out", str(out), "--give-up-after", "3"],
                            cwd=REPO, env=pulse.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # The first stdout line is printed once the stream is open: recording is under way.
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        assert ready, "learn never started recording"
        first = proc.stdout.readline()
        assert first.startswith("recording 1 min (6 windows"), first
        _, stderr, took = pull_the_device(proc, player, pulse)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 3, (proc.returncode, stderr)
    last = stderr.strip().splitlines()[-1]
    assert re.match(r"edge-monitor learn: the input device '.*pulse.*' has been gone for \d+ s "
                    r"\(--give-up-after 3\): .+; recorded \d window\(s\), nothing written$", last), last
    assert took < 3 + 5 + 10, took  # loss detection (stream error or 5 s stall) plus the 3 s limit
    assert not out.exists()


def test_ctrl_c_ends_the_recording_and_fits_what_was_recorded(pulse: PulseServer, synth_dataset: Path,
                                                              tmp_path: Path) -> None:
    cfg = write_config(tmp_path, device="pulse")
    player = start_playing(pulse, normal_audio(synth_dataset, tmp_path, 6))
    out = tmp_path / "early"
    # A user's Ctrl-C reaches a foreground process; a suite started in the background (`nohup ... &`)
    # would hand its ignored SIGINT down to learn, which then could not be interrupted.
    proc = subprocess.Popen([sys.executable, "-m", "edge_monitor", "learn", "--config", str(cfg), "--minutes", "1",
                             "--out", str(out)],
                            cwd=REPO, env=pulse.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    raw = b""
    try:
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        deadline = time.monotonic() + 90
        # Raw reads, not readline(): a text stream may hold several lines in its buffer while
        # select() on the pipe waits for the next one.
        while b"\nrecording: 3/6" not in raw:
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            assert ready and proc.poll() is None, (raw, proc.poll())
            raw += os.read(fd, 65536)
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        stdout, stderr = proc.communicate(timeout=60)
        stdout = raw.decode(errors="replace") + stdout
    finally:
        stop(player)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr
    assert "interrupted after 3 of 6 windows: fitting what was recorded" in stdout, stdout
    meta = json.loads((out / "model.json").read_text())
    assert (meta["training"]["windows"], meta["training"]["windows_recorded"]) == (3, 3)
    assert meta["training"]["minutes"] == 0.5
