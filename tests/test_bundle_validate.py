"""Bundles that cannot run are refused at load, the same way by every tool (issue 21 item 3).

Each damaged bundle is loaded in-process (the one line names the file and the
field) and given to ``check-config`` and ``run`` as separate processes under a
wall-clock timeout and an address-space limit (``RLIMIT_AS``): none may hang or
allocate its way past the limit, and each must exit 78 with one line on stderr.
``run`` stops at start-up, before it opens the microphone.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from edge_monitor.model import validate
from edge_monitor.model.bundle import BundleError, load_bundle, sha256_file, write_model_json

#: Address space a CLI process may use: far above what a valid bundle needs
#: (~0.5 GB of mapped libraries), far below what the damaged ones asked for before
#: (58 TiB, 1.8 GB, 1.16 GB).
CHILD_AS_BYTES = 1536 * 1024 * 1024
CHILD_TIMEOUT_S = 60


@pytest.fixture()
def bundle(numpy_bundle: Path, tmp_path: Path) -> Path:
    out = tmp_path / "b"
    shutil.copytree(numpy_bundle, out)
    return out


def _edit(bundle: Path, fn: Callable[[dict[str, Any]], None]) -> None:
    meta = json.loads((bundle / "model.json").read_text())
    fn(meta)
    (bundle / "model.json").write_text(json.dumps(meta))


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def fn(meta: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = meta
        for p in parents:
            node = node[p]
        node[last] = value
    return fn


def _bomb(bundle: Path) -> None:
    """A detectors.npz whose one member inflates to 1.2 GB of zeros (a few MB on disk)."""
    path = bundle / "detectors.npz"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        n = 150_000_000
        header = np.lib.format.header_data_from_array_1_0(np.zeros(1))
        header["shape"] = (n,)
        with zf.open("profile.mean.npy", "w", force_zip64=True) as fh:
            np.lib.format.write_array_header_1_0(fh, header)
            block = bytes(8 * 1_000_000)
            for _ in range(n // 1_000_000):
                fh.write(block)
    _edit(bundle, _set("arrays.sha256", sha256_file(path)))


def _nested(bundle: Path) -> None:
    (bundle / "model.json").write_text('{"schema_version": 2, "x": ' + "[" * 200_000 + "]" * 200_000 + "}")


#: (case, how to damage the bundle, what the line must name)
CASES: list[tuple[str, Callable[[Path], None], str]] = [
    ("n_fft 1024.5", lambda b: _edit(b, _set("features.n_fft", 1024.5)), "features.n_fft: must be an integer"),
    ("n_mels 128.0", lambda b: _edit(b, _set("features.n_mels", 128.0)), "features.n_mels: must be an integer"),
    ("normalisation [1,2]", lambda b: _edit(b, _set("normalisation", [1, 2])), "normalisation: must be an object"),
    ("200k nested [", _nested, "JSON nested 200001 deep, more than 32"),
    ("threshold -0.5", lambda b: _edit(b, _set("threshold.value", -0.5)), "threshold.value: value must be > 0"),
    ("hop_length 512.0", lambda b: _edit(b, _set("features.hop_length", 512.0)),
     "features.hop_length: must be an integer"),
    ("window_seconds 1e9", lambda b: _edit(b, _set("features.window_seconds", 1e9)),
     "features.window_seconds: value must be"),
    ("hop_length true", lambda b: _edit(b, _set("features.hop_length", True)),
     "features.hop_length: must be an integer, got true"),
    ("bomb npz", _bomb, "profile.mean: 1200000128 bytes uncompressed"),
]


@pytest.mark.parametrize("case, damage, expected", CASES, ids=[c[0] for c in CASES])
def test_a_damaged_bundle_is_refused_at_load_naming_file_and_field(bundle: Path, case: str,
                                                                  damage: Callable[[Path], None],
                                                                  expected: str) -> None:
    damage(bundle)
    with pytest.raises(BundleError) as exc:
        load_bundle(bundle)
    msg = str(exc.value)
    assert "\n" not in msg and expected in msg, msg
    file = "detectors.npz" if case == "bomb npz" else "model.json"
    assert msg.startswith(f"{bundle / file}: "), msg


def _limited() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (CHILD_AS_BYTES, CHILD_AS_BYTES))


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "edge_monitor", *args], capture_output=True, text=True,
                          timeout=CHILD_TIMEOUT_S, preexec_fn=_limited, env=env)


def _config(tmp_path: Path, bundle: Path) -> Path:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"device_id": "v-1", "model": str(bundle), "state_dir": str(tmp_path / "state"),
                                   "mqtt": {"enabled": False}}))
    return cfg


def test_a_valid_bundle_passes_check_config_within_the_memory_limit(bundle: Path, tmp_path: Path) -> None:
    res = _cli("check-config", str(_config(tmp_path, bundle)))
    assert res.returncode == 0 and ": OK" in res.stdout, res.stderr


@pytest.mark.parametrize("case, damage, expected", CASES, ids=[c[0] for c in CASES])
def test_check_config_and_run_exit_78_with_one_line(bundle: Path, tmp_path: Path, case: str,
                                                    damage: Callable[[Path], None], expected: str) -> None:
    damage(bundle)
    cfg = _config(tmp_path, bundle)
    for command in (["check-config", str(cfg)], ["run", "--config", str(cfg)]):
        res = _cli(*command)
        lines = res.stderr.strip().splitlines()
        assert res.returncode == 78, (command, res.returncode, res.stderr[-2000:])
        assert len(lines) == 1 and expected in lines[0], (command, res.stderr)
        # The config line that named the model comes first (file:line: model:), then the bundle's problem.
        assert lines[0].startswith(f"edge-monitor {command[0]}: model error: {cfg}:"), lines[0]


def test_shapes_in_detectors_npz_must_agree_with_the_bands(bundle: Path) -> None:
    path = bundle / "detectors.npz"
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["profile.precision"] = arrays["profile.precision"][:-1]
    np.savez(path, **arrays)  # type: ignore[arg-type]
    _edit(bundle, _set("arrays.sha256", sha256_file(path)))
    with pytest.raises(BundleError, match=r"profile\.precision: shape \(31, 32\), the detector's bands need"):
        load_bundle(bundle)


@pytest.mark.parametrize("key, value, expected", [
    ("features.n_mels", 96, "input_shape: [128, 312] does not fit features.n_mels 96"),
    ("features.n_fft", 64, "features.hop_length: 512 is more than n_fft 64"),
    ("features.hop_length", 1, "features.hop_length: 160001 frames per window"),
    ("normalisation.lo", [0.0] * 96, "normalisation.lo: 96 values, expected 128"),
    ("normalisation.hi", [-200.0] * 128, "normalisation.hi[0]: must be above lo[0]"),
    ("detectors", [{"kind": "profile", "name": "../x", "n_bands": 16}], "detectors[0].name"),
    ("fusion.normal.profile.std", 0, "fusion.normal.profile.std: value must be > 0"),
    ("model", [1], ": model: must be an object"),
])
def test_ranges_and_agreement(bundle: Path, key: str, value: Any, expected: str) -> None:
    _edit(bundle, _set(key, value))
    with pytest.raises(BundleError) as exc:
        load_bundle(bundle)
    assert expected in str(exc.value), str(exc.value)


def test_size_cap_is_checked_before_parsing(bundle: Path) -> None:
    meta = json.loads((bundle / "model.json").read_text())
    meta["training"]["padding"] = "x" * validate.MAX_MODEL_JSON_BYTES
    (bundle / "model.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match="more than the 4194304 a model.json may have"):
        load_bundle(bundle)


def test_what_the_writer_writes_reads_back(bundle: Path) -> None:
    # A round trip through write_model_json stays valid: the validator accepts the trainer's own output.
    write_model_json(bundle, load_bundle(bundle).doc)
    assert load_bundle(bundle).threshold > 0
