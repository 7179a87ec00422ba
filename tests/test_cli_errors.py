"""What a user reads when something is wrong or slow: one error form, the likely key, the config line of a
missing model, `--model` in `check-config --help`, and the time left on long work."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from edge_monitor.config.loader import key_location, load_config, parse_config
from edge_monitor.config.schema import EX_CONFIG, ConfigError
from edge_monitor.util.progress import progress_text, time_left

REPO = Path(__file__).resolve().parents[1]
#: ``edge-monitor <command>: [<what> error: ]<detail>``: the one form (edge_monitor/commands/common.py).
ERROR_LINE = re.compile(r"^edge-monitor(-train)? [a-z-]+: (?:(?:config|model|audio) error: )?\S")


def _cli(*args: str, module: str = "edge_monitor") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, cwd=REPO,
                          timeout=120)


def _one_error_line(res: subprocess.CompletedProcess, command: str) -> str:
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    assert ERROR_LINE.match(lines[0]) and f" {command}: " in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize(("yaml_text", "key", "guess"), [
    ("device_id: r\nmodel: m\naudio:\n  hop_secnds: 5\n", "audio.hop_secnds", "audio.hop_seconds"),
    ("devce_id: r\nmodel: m\n", "devce_id", "device_id"),
    ("device_id: r\nmodel: m\nmqtt:\n  usename: bob\n", "mqtt.usename", "mqtt.username"),
])
def test_unknown_key_suggests_the_likely_one(yaml_text: str, key: str, guess: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config(yaml_text, "c.yaml")
    assert exc.value.key == key
    assert f"unknown key; did you mean {guess}? (known here: " in str(exc.value)


def test_unrelated_unknown_key_gets_no_guess() -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config("device_id: r\nmodel: m\ncolour: red\n", "c.yaml")
    assert "did you mean" not in str(exc.value) and "unknown key (known here: " in str(exc.value)


def test_key_location_names_the_file_and_line(tmp_path: Path) -> None:
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("# the rail\ndevice_id: r\n\nmodel: ./nowhere\n")
    assert key_location(load_config(cfg_file), "model") == f"{cfg_file}:4: model"
    assert key_location(parse_config("device_id: r\nmodel: m\n"), "model") == "model"  # no file: the key alone


@pytest.mark.parametrize("command", ["check-config", "run"])
def test_missing_model_names_the_config_line(tmp_path: Path, command: str) -> None:
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("device_id: r\nmqtt: {enabled: false}\nmodel: ./no-such-bundle\n")
    args = [command, str(cfg_file)] if command == "check-config" else [command, "--config", str(cfg_file)]
    res = _cli(*args)
    assert res.returncode == EX_CONFIG
    line = _one_error_line(res, command)
    assert line.startswith(f"edge-monitor {command}: model error: {cfg_file}:3: model: ")
    assert str(tmp_path / "no-such-bundle") in line


def test_check_config_help_shows_model() -> None:
    res = _cli("check-config", "--help")
    assert res.returncode == 0 and "--model" in res.stdout


def test_every_command_fails_in_the_same_form(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("device_id: r\nmodel: m\naudio:\n  hop_secnds: 5\n")
    for args, command in [(["run", "--config", str(bad)], "run"),
                          (["simulate", "--config", str(bad), "x.wav"], "simulate"),
                          (["check-config", str(bad)], "check-config"),
                          (["score", str(tmp_path / "none"), "x.wav"], "score"),
                          (["record", "--out", str(tmp_path), "--seconds", "0"], "record"),
                          (["learn", "--minutes", "1", "--config", str(bad)], "learn")]:
        res = _cli(*args)
        assert res.returncode != 0, args
        line = _one_error_line(res, command)
        if str(bad) in args:
            assert "did you mean audio.hop_seconds?" in line, line
    res = _cli("synth", str(tmp_path / "d"), "--seed", "0", "--seconds", "0", module="trainer")
    assert res.returncode == 2 and _one_error_line(res, "synth").startswith("edge-monitor-train synth: --seconds")


def test_progress_says_the_time_left() -> None:
    assert progress_text(0, 120, 0.0, "clips") == "0/120 clips (0 %)"
    assert progress_text(30, 120, 10.0, "clips") == "30/120 clips (25 %) ~30 s left"
    assert progress_text(6, 60, 60.0) == "6/60 (10 %) ~9 min left"
    assert progress_text(1, 1000, 36.0) == "1/1000 (0 %) ~10.0 h left"
    assert progress_text(120, 120, 99.0) == "120/120 (100 %)"  # done: nothing left to say
    assert time_left(10, 40, 5.0) == pytest.approx(15.0)
