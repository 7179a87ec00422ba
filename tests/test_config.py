"""Config: the example loads; every kind of error names the key path and the line; exit 78."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edge_monitor.config.loader import load_config, parse_config
from edge_monitor.config.schema import EX_CONFIG, Config, ConfigError

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "deploy" / "config.example.yaml"
MINIMAL = "device_id: rail-1\nmodel: model\n"


def test_example_config_loads() -> None:
    cfg = load_config(EXAMPLE)
    assert isinstance(cfg, Config)
    assert cfg.device_id == "rail-1"
    assert cfg.model == Path("/var/lib/edge-monitor/model")
    assert cfg.audio.device is None and cfg.audio.hop_seconds == 10
    assert (cfg.decision.threshold, cfg.decision.k, cfg.decision.n, cfg.decision.clear_windows) == (None, 2, 3, 3)
    assert cfg.mqtt.host == "127.0.0.1" and cfg.mqtt.port == 1883 and cfg.mqtt.discovery is True
    assert cfg.mqtt.topic_base(cfg.device_id) == "edge-monitor/rail-1"
    assert cfg.evidence.enabled is True and cfg.evidence.max_mb == 200
    # Every key of the example is commented: no key line without a comment somewhere above it in its block.
    text = EXAMPLE.read_text()
    assert text.count("#") > 40


def test_the_original_key_names_load(tmp_path: Path) -> None:
    """The first published config shape (every key spelled out) keeps loading."""
    original_yaml = """\
device_id: rail-1            # used in topics and HA unique ids
model: /var/lib/edge-monitor/model   # a bundle directory
state_dir: /var/lib/edge-monitor     # outbox, evidence
audio:
  device: null               # name substring or index; null = system default
  hop_seconds: 10            # how often a 10 s window is scored
decision:
  threshold: null            # null = the bundle's
  k: 2                       # alert when k of the last n windows exceed it
  n: 3
  clear_windows: 3
mqtt:
  host: 127.0.0.1
  port: 1883
  base_topic: edge-monitor/rail-1
  username: null
  password_file: null
  tls: {ca_file: null, cert_file: null, key_file: null}
  discovery: true
evidence: {enabled: true, max_mb: 200}
"""
    p = tmp_path / "c.yaml"
    p.write_text(original_yaml)
    cfg = load_config(p)
    assert cfg.mqtt.base_topic == "edge-monitor/rail-1"
    assert cfg.mqtt.tls is not None and cfg.mqtt.tls.ca_file is None


def test_defaults_and_relative_paths(tmp_path: Path) -> None:
    p = tmp_path / "sub" / "c.yaml"
    p.parent.mkdir()
    p.write_text(MINIMAL + "state_dir: state\naudio: {device: USB}\n")
    cfg = load_config(p)
    assert cfg.model == p.parent / "model"  # relative to the config file, not the working directory
    assert cfg.state_dir == p.parent / "state"
    assert cfg.evidence_dir == p.parent / "state" / "evidence"
    assert cfg.audio.device == "USB"
    assert cfg.decision.clear_ratio == 0.5 and cfg.decision.cooldown_seconds == 60
    assert load_config(_write(tmp_path, MINIMAL + "audio: {device: 3}\n")).audio.device == 3


def test_mqtt_defaults_are_the_publishers(tmp_path: Path) -> None:
    """One set of MQTT defaults, whether the section is absent, empty or given as a mapping."""
    from tests.mqtt_helpers import mqtt_config

    absent = parse_config(MINIMAL).mqtt
    empty = parse_config(MINIMAL + "mqtt: {}\n").mqtt
    assert absent == empty == mqtt_config(None)
    assert (absent.host, absent.port, absent.qos, absent.keepalive, absent.outbox_max_messages) == (
        "localhost", 1883, 1, 30, 10000)
    tls_on = parse_config(MINIMAL + "mqtt: {tls: true}\n").mqtt
    assert tls_on.tls is not None and tls_on.tls.ca_file is None and tls_on.port == 8883
    assert parse_config(MINIMAL + "mqtt: {tls: false}\n").mqtt.tls is None
    assert parse_config(MINIMAL + "mqtt: {tls: true, port: 1884}\n").mqtt.port == 1884
    assert parse_config(MINIMAL + "mqtt: {protocol: 5.0, base_topic: /a/b/}\n").mqtt.protocol == "5"
    assert parse_config(MINIMAL + "mqtt: {base_topic: /a/b/}\n").mqtt.base_topic == "a/b"


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    return p


ERRORS = [
    # (yaml, line, key path, words in the reason)
    (MINIMAL + "audio:\n  hop_seconds: 2\n  hopp: 3\n", 5, "audio.hopp", "unknown key"),
    (MINIMAL + "colour: red\n", 3, "colour", "unknown key"),
    (MINIMAL + "decision:\n  k: two\n", 4, "decision.k", "must be an integer"),
    (MINIMAL + "decision:\n  k: 1.5\n", 4, "decision.k", "must be an integer"),
    (MINIMAL + "evidence:\n  enabled: yes please\n", 4, "evidence.enabled", "true or false"),
    (MINIMAL + "audio:\n  hop_seconds: [1]\n", 4, "audio.hop_seconds", "got a list"),
    (MINIMAL + "audio:\n  hop_seconds: 0\n", 4, "audio.hop_seconds", "greater than 0"),
    (MINIMAL + "\ndecision:\n  k: 0\n", 5, "decision.k", "between 1 and 1000"),
    (MINIMAL + "decision:\n  n: 3\n  k: 4\n", 5, "decision.k", "must not exceed decision.n"),
    (MINIMAL + "decision:\n  clear_ratio: 1.5\n", 4, "decision.clear_ratio", "at most 1.0"),
    (MINIMAL + "evidence: {max_mb: -1}\n", 3, "evidence.max_mb", "greater than 0"),
    (MINIMAL + "logging: {level: loud}\n", 3, "logging.level", "must be one of"),
    (MINIMAL + "audio:\n  channels: 2\n  channel: 2\n", 5, "audio.channel", "below audio.channels"),
    ("device_id: rail 1\nmodel: m\n", 1, "device_id", "must match"),
    ("model: m\n", 1, "device_id", "required key is missing"),
    (MINIMAL + "mqtt:\n  host: h\n  port: 70000\n", 5, "mqtt.port", "between 1 and 65535"),
    (MINIMAL + "mqtt:\n  host: h\n  usename: bob\n", 5, "mqtt.usename", "unknown key"),
    (MINIMAL + "mqtt:\n  tls:\n    ca_file: /nonexistent/ca.pem\n", 5, "mqtt.tls.ca_file", "file not found"),
    (MINIMAL + "audio: 5\n", 3, "audio", "must be a mapping"),
    # The mqtt: section goes through the same walker: same form, real line numbers.
    (MINIMAL + "mqtt:\n  qos: 0\n", 4, "mqtt.qos", "between 1 and 2"),
    (MINIMAL + "mqtt:\n  keepalive: 0\n", 4, "mqtt.keepalive", "between 1 and 65535"),
    (MINIMAL + "mqtt:\n  outbox_max_messages: 5\n", 4, "mqtt.outbox_max_messages", "between 10 and 10000000"),
    (MINIMAL + "mqtt:\n  host: h\n  password: hunter2\n", 5, "mqtt.password", "EDGE_MONITOR_MQTT_PASSWORD"),
    (MINIMAL + "mqtt:\n  protocol: 4\n", 4, "mqtt.protocol", "3.1.1 or 5"),
    (MINIMAL + "mqtt:\n  discovery: maybe\n", 4, "mqtt.discovery", "true or false"),
    (MINIMAL + "mqtt:\n  base_topic: a/+/b\n", 4, "mqtt.base_topic", "may not contain"),
    (MINIMAL + "mqtt:\n  host: '  '\n", 4, "mqtt.host", "non-empty string"),
    (MINIMAL + "mqtt:\n  reconnect_min_s: 5\n  reconnect_max_s: 2\n", 5, "mqtt.reconnect_max_s", "smaller than"),
    (MINIMAL + "mqtt:\n  password_file: bad.yaml\n", 4, "mqtt.password_file", "without mqtt.username"),
    (MINIMAL + "mqtt:\n  tls:\n    key_file: bad.yaml\n", 5, "mqtt.tls.key_file", "without mqtt.tls.cert_file"),
    (MINIMAL + "mqtt:\n  tls: 1\n", 4, "mqtt.tls", "must be a mapping"),
    (MINIMAL + "audio:\n  device: null\n  device: 1\n", 5, "audio.device", "duplicate key"),
]


@pytest.mark.parametrize("text,line,key,words", ERRORS, ids=[e[2] + ":" + e[3] for e in ERRORS])
def test_errors_name_key_path_and_line(tmp_path: Path, text: str, line: int, key: str, words: str) -> None:
    p = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(p)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(f"{p}:{line}: {key}: "), msg
    assert words in msg
    assert (info.value.line, info.value.key) == (line, key)


@pytest.mark.parametrize("text,line", [
    (MINIMAL + "audio:\n  device: [unclosed\n", 5),
    (MINIMAL + "audio:\n hop: 1\n  x: 2\n", 5),
    (MINIMAL + "\tdecision: 1\n", 3),
])
def test_bad_yaml_names_the_line(tmp_path: Path, text: str, line: int) -> None:
    p = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(p)
    assert str(info.value).startswith(f"{p}:{line}: invalid YAML"), str(info.value)


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="empty"):
        load_config(_write(tmp_path, "# only a comment\n"))


def test_config_is_frozen() -> None:
    cfg = parse_config(MINIMAL)
    with pytest.raises(AttributeError):
        cfg.device_id = "x"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        cfg.decision.k = 5  # type: ignore[misc]


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge_monitor", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=60, env=env)


def _example_with_model(tmp_path: Path, model: Path | str) -> Path:
    text = EXAMPLE.read_text().replace("model: /var/lib/edge-monitor/model", f"model: {model}")
    assert f"model: {model}" in text
    return _write(tmp_path, text)


def _one_line_78(res: subprocess.CompletedProcess) -> str:
    assert res.returncode == EX_CONFIG, (res.stdout, res.stderr)
    assert res.stderr.strip().count("\n") == 0 and "Traceback" not in res.stderr, res.stderr  # one line
    return res.stderr


def test_check_config_cli_exit_status(tmp_path: Path, tiny_bundle: Path) -> None:
    ok = _cli("check-config", str(_example_with_model(tmp_path, tiny_bundle)))
    assert ok.returncode == 0, ok.stderr
    assert "OK" in ok.stdout and tiny_bundle.name in ok.stdout
    bad = _one_line_78(_cli("check-config", str(_write(tmp_path, MINIMAL + "decision:\n  k: 0\n"))))
    assert f"{tmp_path / 'bad.yaml'}:4: decision.k: must be between 1 and 1000" in bad


def test_check_config_fails_on_a_model_that_run_would_refuse(tmp_path: Path, tiny_bundle: Path) -> None:
    """What `run` would stop on at start-up, check-config stops on first: exit 78, one line."""
    missing = _one_line_78(_cli("check-config", str(_example_with_model(tmp_path, "/nowhere"))))
    assert "/nowhere" in missing and "model" in missing
    tampered = tmp_path / "tampered"
    shutil.copytree(tiny_bundle, tampered)
    data = bytearray((tampered / "model.tflite").read_bytes())
    data[len(data) // 2] ^= 0x01  # one byte
    (tampered / "model.tflite").write_bytes(bytes(data))
    assert "model.tflite" in _one_line_78(_cli("check-config", str(_example_with_model(tmp_path, tampered))))
    long_hop = _example_with_model(tmp_path, tiny_bundle)
    long_hop.write_text(long_hop.read_text().replace("hop_seconds: 10", "hop_seconds: 30"))
    assert "audio.hop_seconds: must not exceed" in _one_line_78(_cli("check-config", str(long_hop)))


def test_check_config_device_check_names_the_device(tmp_path: Path, tiny_bundle: Path) -> None:
    cfg = _example_with_model(tmp_path, tiny_bundle)
    cfg.write_text(cfg.read_text().replace("  device: null", "  device: no-such-microphone-xyz"))
    assert _cli("check-config", str(cfg)).returncode == 0  # the device is only looked up when asked
    res = _one_line_78(_cli("check-config", "--device-check", str(cfg)))
    assert "audio.device" in res


@pytest.mark.parametrize("command", ["run", "simulate"])
def test_run_and_simulate_exit_78_on_bad_config(tmp_path: Path, command: str) -> None:
    p = _write(tmp_path, MINIMAL + "audio:\n  bogus: 1\n")
    args = [command, "--config", str(p)] + (["x.wav"] if command == "simulate" else [])
    res = _cli(*args)
    assert res.returncode == EX_CONFIG, res.stderr
    assert "audio.bogus: unknown key" in res.stderr and ":4:" in res.stderr


def test_missing_model_is_exit_78(tmp_path: Path) -> None:
    p = _write(tmp_path, "device_id: r\nmodel: no-such-bundle\nmqtt: {enabled: false}\n")
    res = _cli("run", "--config", str(p), "--log-format", "json")
    assert res.returncode == EX_CONFIG
    assert "no-such-bundle" in res.stderr
