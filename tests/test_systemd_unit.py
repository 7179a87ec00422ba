"""systemd/edge-monitor.service: verifies cleanly and stays hardened.

`systemd-analyze verify` runs against a temporary root holding the unit, a stub
ExecStart binary and a copy of the host's stock units (sysinit.target & co), so
the check does not depend on what is installed on this machine.
`systemd-analyze security --offline=yes` must report an exposure <= 2.0; the
score is printed (run pytest with -s to see it, or .ci/check-deploy.sh).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import require, require_binary

REPO = Path(__file__).resolve().parents[1]
UNIT = REPO / "systemd" / "edge-monitor.service"
MAX_EXPOSURE = 2.0
STOCK_UNITS = [Path("/usr/lib/systemd/system"), Path("/lib/systemd/system")]


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """Sections -> key -> every value in order (systemd allows repeated keys)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, _, value = line.partition("=")
        assert current is not None, f"key outside a section: {raw!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


@pytest.fixture(scope="module")
def service() -> dict[str, list[str]]:
    return parse_unit(UNIT.read_text())["Service"]


def make_verify_root(tmp: Path, unit_text: str, exec_start: str) -> Path:
    """A root with the unit in /etc/systemd/system, an executable stub at
    ``exec_start`` and the stock units the dependency check walks into."""
    stock = next((p for p in STOCK_UNITS if (p / "sysinit.target").exists()), None)
    require(stock is not None, "systemd's stock units (sysinit.target) are not installed")
    root = tmp / "root"
    dest = root / "usr/lib/systemd/system"
    shutil.copytree(stock, dest, symlinks=True)
    (root / "etc/systemd/system").mkdir(parents=True)
    (root / "etc/systemd/system/edge-monitor.service").write_text(unit_text)
    stub = root / exec_start.lstrip("/")
    stub.parent.mkdir(parents=True, exist_ok=True)
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    return root


def verify(root: Path) -> subprocess.CompletedProcess:
    tool = require_binary("systemd-analyze")
    return subprocess.run(
        [tool, "verify", f"--root={root}", "--man=no",
         str(root / "etc/systemd/system/edge-monitor.service")],
        capture_output=True, text=True, timeout=120)


def security_exposure(unit_path: Path) -> tuple[float, str]:
    tool = require_binary("systemd-analyze")
    proc = subprocess.run([tool, "security", "--offline=yes", "--no-pager", str(unit_path)],
                          capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", out)
    assert match, f"no exposure score in systemd-analyze output (rc={proc.returncode}):\n{out}"
    return float(match.group(1)), out


def exec_binary(service: dict[str, list[str]]) -> str:
    return service["ExecStart"][-1].split()[0]


def test_unit_verifies_without_warnings(tmp_path, service):
    root = make_verify_root(tmp_path, UNIT.read_text(), exec_binary(service))
    proc = verify(root)
    assert proc.returncode == 0, proc.stderr
    # Unknown keys or bad values are only warnings with rc 0: treat any output as failure.
    assert proc.stderr.strip() == "", proc.stderr
    assert proc.stdout.strip() == "", proc.stdout


def test_verify_catches_a_broken_unit(tmp_path, service):
    """The verify harness must be able to fail: a typo'd key and a missing binary are reported."""
    text = UNIT.read_text().replace("NotifyAccess=main", "NotifyAcess=main")
    root = make_verify_root(tmp_path, text, exec_binary(service))
    assert "NotifyAcess" in verify(root).stderr
    (root / exec_binary(service).lstrip("/")).unlink()
    assert verify(root).returncode != 0


def test_security_exposure_at_most_2(capsys):
    score, out = security_exposure(UNIT)
    with capsys.disabled():
        print(f"\nsystemd-analyze security --offline=yes {UNIT.name}: exposure {score}")
    assert score <= MAX_EXPOSURE, out


def test_security_score_reacts_to_weakening(tmp_path):
    """The parser reads the real score: dropping the sandbox raises it well above 2."""
    weak = "\n".join(line for line in UNIT.read_text().splitlines()
                     if not line.startswith(("Protect", "Private", "Restrict", "SystemCall",
                                             "CapabilityBoundingSet", "NoNewPrivileges", "User=")))
    path = tmp_path / "edge-monitor.service"
    path.write_text(weak)
    score, _ = security_exposure(path)
    assert score > 5.0
    assert score > security_exposure(UNIT)[0]


def test_notify_watchdog_and_restart_policy(service):
    assert service["Type"] == ["notify"]
    assert service["NotifyAccess"] == ["main"]
    assert service["Restart"] == ["on-failure"]
    assert "78" in service["RestartPreventExitStatus"][-1].split()
    watchdog = service["WatchdogSec"][-1]
    match = re.fullmatch(r"(\d+)s", watchdog)
    assert match, f"WatchdogSec should be plain seconds, got {watchdog!r}"
    # The loop pings once per hop (10 s default): leave room for several slow windows.
    assert 30 <= int(match.group(1)) <= 300


def test_exec_start_runs_the_venv_daemon_with_json_logs(service):
    argv = service["ExecStart"][-1].split()
    assert argv[:2] == ["/opt/edge-monitor/venv/bin/edge-monitor", "run"]
    assert argv[argv.index("--config") + 1] == "/etc/edge-monitor/config.yaml"
    assert argv[argv.index("--log-format") + 1] == "json"
    assert service["StandardOutput"] == ["journal"]


def test_hardening_settings(service):
    expect = {
        "User": "edge-monitor", "SupplementaryGroups": "audio",
        "StateDirectory": "edge-monitor", "ConfigurationDirectory": "edge-monitor",
        "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
        "NoNewPrivileges": "yes", "CapabilityBoundingSet": "", "UMask": "0077",
        "DevicePolicy": "closed", "DeviceAllow": "char-alsa rw", "PrivateDevices": "no",
    }
    for key, value in expect.items():
        assert service.get(key, [None])[-1] == value, key
    assert "@system-service" in service["SystemCallFilter"]
    families = set(service["RestrictAddressFamilies"][-1].split())
    assert {"AF_UNIX", "AF_INET", "AF_INET6"} <= families
    assert "AF_PACKET" not in families
    # cffi callbacks (sounddevice) can break under MemoryDenyWriteExecute=yes.
    assert service.get("MemoryDenyWriteExecute", ["no"])[-1] != "yes"


def test_exec_start_options_exist_in_the_cli():
    """The unit's command line must match the daemon's real `run` options."""
    import argparse

    from edge_monitor.commands import run as run_cmd

    parser = argparse.ArgumentParser()
    run_cmd.add_arguments(parser)
    args = parser.parse_args(["--config", "/etc/edge-monitor/config.yaml", "--log-format", "json"])
    assert str(args.config) == "/etc/edge-monitor/config.yaml"
    assert args.log_format == "json"
