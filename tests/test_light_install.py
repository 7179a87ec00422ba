"""`make demo` installs only what its steps run; the steps import no TensorFlow at default settings."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from tests.conftest import require

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("tensorflow", "keras", "librosa", "numba", "selenium", "pytest", "ruff", "mypy")


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=!;\[ ]", r, maxsplit=1)[0].strip().lower() for r in requirements}


def test_demo_extra_holds_what_the_demo_runs_and_nothing_heavy() -> None:
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    demo = _names(extras["demo"])
    assert {"matplotlib", "scikit-learn", "amqtt"} <= demo
    assert not any(name.startswith(HEAVY) for name in demo), demo
    everything = _names(extras["train"]) | _names(extras["dev"]) | _names(extras["demo"])
    assert demo <= everything and {"tensorflow-cpu", "pytest", "selenium", "librosa"} <= everything
    assert _names(extras["train"]) == _names(extras["report"]) | _names(extras["autoencoder"])


def test_make_installs_the_demo_set_for_demo_and_everything_for_test(tmp_path: Path) -> None:
    require(shutil.which("make") is not None, "make is not installed")
    venv = tmp_path / "venv"

    def dry(target: str) -> str:
        return subprocess.run(["make", "-n", target, f"VENV={venv}"], cwd=REPO, capture_output=True, text=True,
                              timeout=30, check=True).stdout

    demo, test = dry("demo"), dry("test")
    assert "-e '.[demo]'" in demo and "[train" not in demo and "devtools.demo" in demo
    assert "-e '.[train,dev,demo]'" in test and "pytest" in test
    assert "--quiet" not in demo + test and "--progress-bar on" in demo  # pip's progress is shown


def test_default_training_imports_no_tensorflow_or_matplotlib(synth_dataset: Path, tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "from trainer.cli import main\n"
        f"rc = main(['train', {str(synth_dataset)!r}, '--out', {str(tmp_path / 'model')!r}, '--quiet'])\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'keras', 'matplotlib', 'librosa'})\n"
        "print('HEAVY', heavy, rc)\n"
    )
    res = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert "HEAVY [] 0" in res.stdout, (res.stdout, res.stderr)
    assert (tmp_path / "model" / "model.json").is_file()
