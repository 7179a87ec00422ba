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
