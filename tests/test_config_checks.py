"""``check-config`` checks what ``run`` will touch, and both stop on it the same way (issue 21 item 4).

Each bad setting is given to ``check-config`` and to ``run`` as separate
processes (bounded by a timeout): both exit 78 with the same one line, and
``run`` stops at start-up, before the microphone or the broker. The TLS files
are real PEM made by ``openssl`` next to files that only look like them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import require, require_binary

TOKEN_ENV = "EDGE_MONITOR_TEST_CHECKS_TOKEN"


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge_monitor", *args], capture_output=True, text=True,
                          timeout=60, env=env or {k: v for k, v in os.environ.items() if k != TOKEN_ENV})


def _write(tmp_path: Path, doc: dict[str, Any]) -> Path:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(doc))
    return cfg


@pytest.fixture(scope="module")
def pem(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A self-signed CA certificate and its key (PEM), and a DER copy of the certificate."""
    openssl = require_binary("openssl")
    d = tmp_path_factory.mktemp("pem")
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test",
                    "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem")], check=True, capture_output=True,
                   timeout=60)
    subprocess.run([openssl, "x509", "-in", str(d / "cert.pem"), "-outform", "DER", "-out", str(d / "cert.der")],
                   check=True, capture_output=True, timeout=60)
    (d / "garbage.pem").write_bytes(os.urandom(600))
    return {"cert": d / "cert.pem", "key": d / "key.pem", "der": d / "cert.der", "garbage": d / "garbage.pem"}


def _base(tmp_path: Path, bundle: Path) -> dict[str, Any]:
    return {"device_id": "chk-1", "model": str(bundle), "state_dir": str(tmp_path / "state"),
            "mqtt": {"enabled": False}}


def _state_is_a_file(tmp_path: Path, doc: dict[str, Any]) -> None:
    (tmp_path / "state").write_text("not a folder")


def _state_under_proc(tmp_path: Path, doc: dict[str, Any]) -> None:
    doc["state_dir"] = "/proc/self/edge-monitor"


def _evidence_is_a_file(tmp_path: Path, doc: dict[str, Any]) -> None:
    (tmp_path / "ev").write_text("x")
    doc["evidence"] = {"dir": str(tmp_path / "ev")}


def _token_unset(tmp_path: Path, doc: dict[str, Any]) -> None:
    doc["http"] = {"listen": "127.0.0.1:0", "token_env": TOKEN_ENV}


def _tls(which: str, value: str) -> Callable[[Path, dict[str, Any]], None]:
    def fn(tmp_path: Path, doc: dict[str, Any]) -> None:
        files = {"ca_file": "cert", "cert_file": "cert", "key_file": "key"}
        tls = {k: str(tmp_path / "pem" / f"{v}.pem") for k, v in files.items()}
        tls[which] = str(tmp_path / "pem" / f"{value}")
        doc["mqtt"] = {"enabled": True, "host": "127.0.0.1", "tls": tls}
    return fn


CASES = [
    ("state_dir is a file", _state_is_a_file, "state_dir: ", "is a regular file, not a folder"),
    ("state_dir under /proc", _state_under_proc, "state_dir: ", "is under /proc"),
    ("evidence.dir is a file", _evidence_is_a_file, "evidence.dir: ", "is a regular file, not a folder"),
    ("token_env unset", _token_unset, "http.token_env: ", f"{TOKEN_ENV} is unset or empty"),
    ("ca_file not PEM", _tls("ca_file", "garbage.pem"), "mqtt.tls.ca_file: ", "not a readable PEM CA certificate"),
    ("ca_file DER", _tls("ca_file", "cert.der"), "mqtt.tls.ca_file: ", "not a readable PEM CA certificate"),
    ("cert_file not PEM", _tls("cert_file", "garbage.pem"), "mqtt.tls.cert_file: ",
     "not a readable PEM certificate"),
    ("key_file not PEM", _tls("key_file", "garbage.pem"), "mqtt.tls.key_file: ", "not a readable PEM private key"),
    ("key_file is the certificate", _tls("key_file", "cert.pem"), "mqtt.tls.key_file: ",
     "not a readable PEM private key"),
]


@pytest.mark.parametrize("case, damage, key, what", CASES, ids=[c[0] for c in CASES])
def test_check_config_and_run_stop_on_the_same_line(numpy_bundle: Path, pem: dict[str, Path], tmp_path: Path,
                                                    case: str, damage: Callable[[Path, dict[str, Any]], None],
                                                    key: str, what: str) -> None:
    shutil.copytree(pem["cert"].parent, tmp_path / "pem")
    doc = _base(tmp_path, numpy_bundle)
    damage(tmp_path, doc)
    cfg = _write(tmp_path, doc)
    lines = []
    for command in (["check-config", str(cfg)], ["run", "--config", str(cfg)]):
        res = _cli(*command)
        err = res.stderr.strip().splitlines()
        assert res.returncode == 78 and len(err) == 1, (command, res.returncode, res.stderr[-2000:])
        prefix = f"edge-monitor {command[0]}: "
        assert err[0].startswith(f"{prefix}config error: {cfg}: {key}") and what in err[0], err[0]
        lines.append(err[0][len(prefix):])
    assert lines[0] == lines[1]  # one check, one line (after the command's name)


def test_good_tls_files_a_set_token_and_creatable_folders_pass(numpy_bundle: Path, pem: dict[str, Path],
                                                                tmp_path: Path) -> None:
    doc = _base(tmp_path, numpy_bundle)
    doc["state_dir"] = str(tmp_path / "not" / "yet" / "there")  # created by run; the parent is writable
    doc["mqtt"] = {"enabled": True, "host": "127.0.0.1",
                   "tls": {"ca_file": str(pem["cert"]), "cert_file": str(pem["cert"]), "key_file": str(pem["key"])}}
    doc["http"] = {"listen": "127.0.0.1:0", "token_env": TOKEN_ENV}
    res = _cli("check-config", str(_write(tmp_path, doc)), env=dict(os.environ, **{TOKEN_ENV: "s3cret"}))
    assert res.returncode == 0 and ": OK" in res.stdout, res.stderr
    assert not (tmp_path / "not").exists()  # check-config changes nothing


def test_a_folder_this_user_cannot_write_is_refused(numpy_bundle: Path, tmp_path: Path) -> None:
    """A folder without write permission; as root (CI), a read-only bind mount, since root ignores mode bits.

    A read-only mount is also what a Pi shows when its SD card is remounted read-only after errors.
    """
    locked = tmp_path / "locked"
    locked.mkdir()
    as_root = os.geteuid() == 0
    if as_root:
        try:
            subprocess.run(["mount", "--bind", str(locked), str(locked)], check=True, capture_output=True)
            subprocess.run(["mount", "-o", "remount,bind,ro", str(locked)], check=True, capture_output=True)
        except (OSError, subprocess.CalledProcessError) as exc:
            require(False, f"cannot make a read-only bind mount as root: {exc}")
    else:
        locked.chmod(0o500)
    try:
        doc = _base(tmp_path, numpy_bundle)
        doc["state_dir"] = str(locked / "state")
        res = _cli("check-config", str(_write(tmp_path, doc)))
    finally:
        if as_root:
            subprocess.run(["umount", str(locked)], check=False)
        else:
            locked.chmod(0o700)
    assert res.returncode == 78 and "is not writable by this user" in res.stderr, res.stderr
