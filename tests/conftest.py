"""Shared test fixtures.

Real components only: tests that need mosquitto, PulseAudio or the real DCASE
samples call :func:`require` and skip locally with the reason when the
component is absent, but fail under ``CI=true``, where ``.ci/run`` installs
everything.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REAL_SAMPLES = REPO.parent / "shared" / "data" / "real-samples"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(condition: bool, reason: str) -> None:
    """Skip the calling test when ``condition`` is false, or fail under CI=true."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI=true but a required component is missing: {reason}", pytrace=False)
    pytest.skip(reason)


def require_binary(name: str) -> str:
    """Path of executable ``name``; skip (or fail in CI) when it is not installed."""
    path = shutil.which(name)
    require(path is not None, f"{name} is not installed (Debian: see .ci/run)")
    return path  # type: ignore[return-value]


@pytest.fixture(scope="session")
def real_samples() -> Path:
    """``../shared/data/real-samples``: real DCASE 2020 clips (never copied into the repo)."""
    require(REAL_SAMPLES.is_dir(), f"real samples folder {REAL_SAMPLES} is absent")
    return REAL_SAMPLES


# --- shared synthetic data and model ------------------------------------------------
#: What the session fixtures below build; tests may read these to know the layout.
SYNTH_IDS = ("id_00", "id_02")
SYNTH_COUNTS = {"n_train": 8, "n_test_normal": 4, "n_test_anomaly": 4}


@pytest.fixture(scope="session")
def synth_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny DCASE-layout machine folder of synthetic slide-rail clips (10 s, 16 kHz).

    ``<tmp>/slider/train/normal_id_0{0,2}_*.wav`` (8 per id) and
    ``<tmp>/slider/test/{normal,anomaly}_id_0{0,2}_*.wav`` (4 + 4 per id, the
    anomalies cycling through the generator's kinds), plus ``metadata.csv``.
    Returns the machine folder (what ``edge-monitor-train train`` takes).
    Built once per test session; treat it as read-only.
    """
    from trainer.synth import generate_dataset

    out = tmp_path_factory.mktemp("synth")
    summary = generate_dataset(out, seed=0, machine_ids=SYNTH_IDS, **SYNTH_COUNTS)
    return Path(summary.root)


@pytest.fixture(scope="session")
def tiny_bundle(synth_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An autoencoder-only bundle trained on :func:`synth_dataset` with a tiny model (seconds on 2 cores).

    The default architecture (``trainer.defaults.DEFAULT_ARCH``; ``channels``
    only matters for ``arch="conv"``), float32 TFLite, seed 0, the
    autoencoder as its only detector (what every bundle was before the NumPy
    detectors; fusion ``none``: the score is the reconstruction MSE). Returns the
    bundle directory (``model.tflite``, ``model.json``, ``model.keras``,
    ``training_curve.png``). Treat it as read-only: copy it
    (``shutil.copytree``) before changing anything.
    """
    from trainer.train import TrainConfig, train_bundle

    out = tmp_path_factory.mktemp("bundle") / "tiny"
    config = TrainConfig(epochs=TINY_EPOCHS, seed=0, channels=(4, 8, 16), batch_size=2, val_split=0.25,
                         detectors=("autoencoder",))
    train_bundle(synth_dataset, out, config, progress=None)
    return out


@pytest.fixture(scope="session")
def numpy_bundle(synth_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bundle of the NumPy detectors only (level profile + frame Gaussian, fused by max) on :func:`synth_dataset`.

    What ``train`` writes by default for fewer than 30 normal clips, and what
    ``edge-monitor learn`` writes: ``model.json`` + ``detectors.npz``, no TFLite.
    Read-only.
    """
    from trainer.train import TrainConfig, train_bundle

    out = tmp_path_factory.mktemp("bundle") / "numpy"
    # Fusion max and the gamma threshold: the bundles written before the per-machine choice (issue 20).
    train_bundle(synth_dataset, out, TrainConfig(seed=0, detectors=("profile", "frames"), fusion="max",
                                                 threshold_rule="gamma"), progress=None)
    return out


@pytest.fixture(scope="session")
def fused_bundle(synth_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bundle of all three detectors (tiny autoencoder + profile + frames, fused by max). Read-only."""
    from trainer.train import TrainConfig, train_bundle

    out = tmp_path_factory.mktemp("bundle") / "fused"
    config = TrainConfig(epochs=5, seed=0, channels=(4, 8, 16), batch_size=2, val_split=0.25,
                         detectors=("autoencoder", "profile", "frames"), fusion="max", threshold_rule="gamma")
    train_bundle(synth_dataset, out, config, progress=None)
    return out


#: Epochs of the tiny bundle (early stopping may end sooner).
TINY_EPOCHS = 30
