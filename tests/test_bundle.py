"""The model bundle: round trip through load_bundle and every refusal."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from edge_monitor.features.frontend import FeatureParams
from edge_monitor.model.bundle import (
    MODEL_JSON,
    MODEL_TFLITE,
    SCHEMA_VERSION,
    BundleError,
    load_bundle,
    sha256_file,
    write_model_json,
)
from trainer.train import TrainConfig


@pytest.fixture()
def bundle_copy(tiny_bundle: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, dest)
    return dest


def _edit_json(bundle: Path, fn) -> None:
    path = bundle / MODEL_JSON
    meta = json.loads(path.read_text())
    fn(meta)
    path.write_text(json.dumps(meta))


def _refused(bundle: Path, **kwargs) -> str:
    with pytest.raises(BundleError) as info:
        load_bundle(bundle, **kwargs)
    message = str(info.value)
    assert "\n" not in message, "a BundleError is one line"
    return message


def test_bundle_round_trips(tiny_bundle: Path) -> None:
    b = load_bundle(tiny_bundle, expected_features=FeatureParams())
    meta = json.loads((tiny_bundle / MODEL_JSON).read_text())
    assert b.features == FeatureParams()
    assert b.input_shape == (128, 312)
    assert b.threshold == meta["threshold"]["value"] > 0
    assert b.sha256 == sha256_file(tiny_bundle / MODEL_TFLITE) == meta["sha256"]
    assert b.machine == "slider" and b.machine_ids == ("id_00", "id_02")
    assert len(b.norm.lo) == 128 and all(h > lo for lo, h in zip(b.norm.lo, b.norm.hi))
    # Issue 10 needs per-band validation error statistics next to the threshold.
    for key in ("mean", "p95", "p99"):
        assert b.doc.band_error.as_arrays()[key].shape == (128,)
    assert np.all(b.doc.band_error.as_arrays()["p99"] >= b.doc.band_error.as_arrays()["mean"])
    for name in ("model.tflite", "model.json", "model.keras", "training_curve.png"):
        assert (tiny_bundle / name).stat().st_size > 0


def test_model_json_records_provenance(tiny_bundle: Path) -> None:
    meta = json.loads((tiny_bundle / MODEL_JSON).read_text())
    assert meta["schema_version"] == SCHEMA_VERSION
    assert meta["threshold"]["rule"] in ("gamma", "percentile") and meta["threshold"]["quantile"] == 0.99
    assert meta["threshold"]["description"]
    scores = meta["validation_scores"]
    assert scores["n"] >= 2 and scores["min"] <= scores["percentiles"]["50"] <= scores["max"]
    assert scores["std"] >= 0
    fp = meta["training"]["data_fingerprint"]
    assert fp["n_files"] == 16 and len(fp["sha256"]) == 64  # 2 ids x 8 training clips
    assert set(meta["versions"]) >= {"edge_monitor", "tensorflow", "keras"}
    assert meta["model"]["arch"] == TrainConfig().arch  # the fixture follows the default architecture
    assert meta["model"]["macs_per_window"] > 0
    assert meta["model"]["channels"] == ([4, 8, 16] if meta["model"]["arch"] == "conv" else None)
    norm = meta["normalisation"]
    assert norm["kind"] == "minmax"
    # The clip bounds training used travel with the bundle; the runtime applies exactly them.
    assert (norm["clip_lo"], norm["clip_hi"]) == (TrainConfig().clip_lo, TrainConfig().clip_hi)
    b = load_bundle(tiny_bundle)
    assert (b.norm.clip_lo, b.norm.clip_hi) == (norm["clip_lo"], norm["clip_hi"])
    # Per-band training level in dB (before scaling), for the explanations: inside each band's range.
    level = meta["band_level_db"]
    mean, std = np.array(level["mean"]), np.array(level["std"])
    assert mean.shape == std.shape == (128,) and np.all(std >= 0)
    assert np.all(np.array(norm["lo"]) - 0.01 <= mean) and np.all(mean <= np.array(norm["hi"]) + 0.01)


def test_missing_directory_and_files(tmp_path: Path, bundle_copy: Path) -> None:
    assert "does not exist" in _refused(tmp_path / "nope")
    (bundle_copy / MODEL_TFLITE).unlink()
    msg = _refused(bundle_copy)
    assert "model.tflite" in msg and "missing" in msg
    (bundle_copy / MODEL_JSON).unlink()
    msg = _refused(bundle_copy)
    assert "model.json" in msg and "missing" in msg


def test_bad_json(bundle_copy: Path) -> None:
    (bundle_copy / MODEL_JSON).write_text('{"schema_version": 1,\n  "features": {,}')
    msg = _refused(bundle_copy)
    assert str(bundle_copy / MODEL_JSON) in msg and "bad JSON at line 2" in msg
    (bundle_copy / MODEL_JSON).write_text("[1, 2]")
    assert "JSON object" in _refused(bundle_copy)


def test_wrong_schema_version(bundle_copy: Path) -> None:
    _edit_json(bundle_copy, lambda m: m.update(schema_version=SCHEMA_VERSION + 1))
    msg = _refused(bundle_copy)
    assert f"schema version {SCHEMA_VERSION + 1}" in msg and "model.json" in msg


def test_checksum_mismatch(bundle_copy: Path) -> None:
    with open(bundle_copy / MODEL_TFLITE, "ab") as fh:
        fh.write(b"\0")
    msg = _refused(bundle_copy)
    assert "checksum mismatch" in msg and "model.tflite" in msg
    # Explicitly skipping the check (never done by the daemon) loads it.
    assert load_bundle(bundle_copy, verify_checksum=False).threshold > 0


def test_feature_parameters_that_differ(bundle_copy: Path) -> None:
    msg = _refused(bundle_copy, expected_features=replace(FeatureParams(), sample_rate=22050))
    assert "feature parameters differ" in msg and "sample_rate=16000 (expected 22050)" in msg
    _edit_json(bundle_copy, lambda m: m["features"].update(n_mels=64))
    assert "input_shape" in _refused(bundle_copy)
    _edit_json(bundle_copy, lambda m: m["features"].update(bogus=1))
    assert "bad 'features'" in _refused(bundle_copy)


def test_missing_key_and_bad_threshold(bundle_copy: Path) -> None:
    _edit_json(bundle_copy, lambda m: m["threshold"].update(value=-1))
    assert "threshold.value: value must be > 0, got -1" in _refused(bundle_copy)
    _edit_json(bundle_copy, lambda m: m.pop("normalisation"))
    assert "missing key(s) normalisation" in _refused(bundle_copy)


def test_write_model_json_sets_checksum_and_version(tmp_path: Path) -> None:
    (tmp_path / MODEL_TFLITE).write_bytes(b"not really a model")
    write_model_json(tmp_path, {"a": np.float32(1.5), "b": np.arange(3), "schema_version": 99})
    meta = json.loads((tmp_path / MODEL_JSON).read_text())
    assert meta == {"a": 1.5, "b": [0, 1, 2], "schema_version": SCHEMA_VERSION,
                    "sha256": sha256_file(tmp_path / MODEL_TFLITE)}
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp file left
