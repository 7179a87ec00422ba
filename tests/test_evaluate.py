"""``edge-monitor-train evaluate`` and ``edge-monitor score`` on a tiny trained bundle.

The bundle and data are the session fixtures ``tiny_bundle`` / ``synth_dataset``
of tests/conftest.py: trained once per test session.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge_monitor.model.bundle import load_bundle
from edge_monitor.model.scorer import Scorer
from trainer.datasets import find_clips

REPO = Path(__file__).resolve().parents[1]
METRIC_KEYS = {"auc", "pauc", "pauc_raw", "precision", "recall", "f1", "threshold", "n_normal", "n_anomaly"}


def _run(main, argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


def _evaluate(argv: list[str]) -> tuple[int, str, str]:
    from trainer.cli import main

    return _run(main, ["evaluate", *argv])


def _score(argv: list[str]) -> tuple[int, str, str]:
    from edge_monitor.cli import main

    return _run(main, ["score", *argv])


@pytest.fixture(scope="module")
def bundle_dir(tiny_bundle: Path) -> Path:
    return tiny_bundle


@pytest.fixture(scope="module")
def data_dir(synth_dataset: Path) -> Path:
    return synth_dataset


@pytest.fixture(scope="module")
def test_clips(data_dir):
    return [c for c in find_clips(data_dir) if c.split == "test"]


@pytest.fixture(scope="module")
def report(bundle_dir, data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    rc, stdout, stderr = _evaluate([str(bundle_dir), str(data_dir), "--out", str(out)])
    return out, rc, stdout, stderr


def _png_size(path: Path) -> tuple[int, int, float]:
    """(width, height, pixel standard deviation) of a decoded PNG."""
    import matplotlib.image as mpimg

    img = mpimg.imread(path)
    return img.shape[1], img.shape[0], float(np.std(img[..., :3]))


def test_evaluate_prints_table_and_index_path(report, test_clips) -> None:
    out, rc, stdout, stderr = report
    assert rc == 0, stderr
    assert "AUC" in stdout and "pAUC" in stdout and "F1" in stdout and "all clips" in stdout
    assert stdout.strip().splitlines()[-1] == f"report: {(out / 'index.html').resolve()}"
    assert f"scoring clips: {len(test_clips)}/{len(test_clips)} (100 %)" in stderr  # progress indication


def test_metrics_json(report, test_clips, bundle_dir) -> None:
    out = report[0]
    m = json.loads((out / "metrics.json").read_text())
    assert METRIC_KEYS <= set(m)
    assert m["n_normal"] == sum(c.label == "normal" for c in test_clips)
    assert m["n_anomaly"] == sum(c.label == "anomaly" for c in test_clips)
    assert m["threshold"] == pytest.approx(load_bundle(bundle_dir).threshold)
    ids = sorted({c.machine_id for c in test_clips})
    assert sorted(m["per_id"]) == ids
    for mid, pm in m["per_id"].items():
        assert METRIC_KEYS <= set(pm)
        assert pm["n_normal"] + pm["n_anomaly"] == sum(c.machine_id == mid for c in test_clips)
        assert 0.0 <= pm["auc"] <= 1.0 and 0.0 <= pm["pauc"] <= 1.0 and 0.0 <= pm["pauc_raw"] <= 1.0
    mean = m["mean_over_ids"]
    assert mean["auc"] == pytest.approx(np.mean([pm["auc"] for pm in m["per_id"].values()]))
    assert mean["pauc"] == pytest.approx(np.mean([pm["pauc"] for pm in m["per_id"].values()]))
    assert m["n_failed"] == 0 and m["failed"] == []


def test_scores_csv_matches_runtime_scorer(report, test_clips, bundle_dir) -> None:
    out = report[0]
    with open(out / "scores.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(test_clips)
    assert list(rows[0])[:5] == ["path", "machine_id", "label", "score", "decision"]
    by_path = {Path(r["path"]): r for r in rows}
    assert set(by_path) == {c.path for c in test_clips}
    m = json.loads((out / "metrics.json").read_text())
    for c in test_clips:
        r = by_path[c.path]
        assert r["label"] == c.label and r["machine_id"] == c.machine_id
        assert r["decision"] == ("anomaly" if float(r["score"]) > m["threshold"] else "normal")
    # The report's scores are the daemon's: the same TFLite Scorer gives the same numbers.
    scorer = Scorer(load_bundle(bundle_dir))
    for c in test_clips[:: max(1, len(test_clips) // 4)]:
        assert float(by_path[c.path]["score"]) == pytest.approx(scorer.score_file(c.path).score, rel=1e-6)
    # metrics.json agrees with the CSV: TP/FP/FN from the decisions.
    tp = sum(r["decision"] == "anomaly" and r["label"] == "anomaly" for r in rows)
    fp = sum(r["decision"] == "anomaly" and r["label"] == "normal" for r in rows)
    fn = sum(r["decision"] == "normal" and r["label"] == "anomaly" for r in rows)
    assert (m["tp"], m["fp"], m["fn"]) == (tp, fp, fn)
    if m["recall"] is not None:
        assert m["recall"] == pytest.approx(tp / (tp + fn))


def test_every_plot_is_written_and_non_trivial(report) -> None:
    out = report[0]
    expected = ["roc.png", "score_distributions.png", "recon_normal_worst.png", "recon_normal_typical.png",
                "recon_anomaly_worst.png", "recon_anomaly_typical.png", "training_curve.png"]
    for name in expected:
        path = out / name
        assert path.is_file(), name
        w, h, std = _png_size(path)
        assert w >= 400 and h >= 250, (name, w, h)
        assert std > 0.02, f"{name} looks blank"
    w, h, _ = _png_size(out / "recon_anomaly_worst.png")
    assert w > 2 * h  # three panels side by side


def test_index_html_embeds_every_plot_and_the_table(report) -> None:
    import base64
    import re

    out = report[0]
    page = (out / "index.html").read_text()
    m = json.loads((out / "metrics.json").read_text())
    images = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert len(images) == len(pngs) == 7
    embedded = {base64.b64decode(b) for b in images}
    assert embedded == {(out / name).read_bytes() for name in pngs}
    assert '<table id="metrics-table">' in page and f"{m['auc']:.3f}" in page and "mean over ids" in page
    assert 'src="http' not in page  # self-contained


def test_score_cli_table_json_and_a_corrupt_file(bundle_dir, test_clips, tmp_path) -> None:
    normal = next(c.path for c in test_clips if c.label == "normal")
    anomaly = next(c.path for c in test_clips if c.label == "anomaly")
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00garbage")
    scorer = Scorer(load_bundle(bundle_dir))
    expected = {p: scorer.score_file(p).score for p in (normal, anomaly)}
    thr = scorer.threshold

    rc, stdout, stderr = _score([str(bundle_dir), str(normal), str(corrupt), str(anomaly)])
    assert rc == 1  # one file failed
    lines = stdout.splitlines()
    assert lines[0].split() == ["FILE", "SCORE", "THRESHOLD", "VERDICT", "WINDOWS"]
    assert len(lines) == 3  # the corrupt file is not in the table ...
    for line, path in zip(lines[1:], (normal, anomaly)):
        cells = line.split()
        assert cells[0] == str(path)
        assert float(cells[1]) == pytest.approx(expected[path], rel=1e-5)
        assert float(cells[2]) == pytest.approx(thr, rel=1e-5)
        assert cells[3] == ("ANOMALY" if expected[path] > thr else "NORMAL")
    err_lines = [ln for ln in stderr.splitlines() if "error" in ln]
    assert len(err_lines) == 1 and str(corrupt) in err_lines[0]  # ... but gets one clear line

    rc, stdout, _ = _score([str(bundle_dir), str(normal), str(corrupt), "--json"])
    assert rc == 1
    objs = [json.loads(ln) for ln in stdout.splitlines()]
    assert [o["file"] for o in objs] == [str(normal), str(corrupt)]
    assert objs[0]["score"] == pytest.approx(expected[normal]) and objs[0]["threshold"] == pytest.approx(thr)
    assert objs[0]["verdict"] in ("normal", "anomaly") and objs[0]["windows"] == 1
    assert "error" in objs[1] and str(corrupt) in objs[1]["error"]

    rc, stdout, _ = _score([str(bundle_dir), str(normal), str(anomaly), "--json-array"])
    assert rc == 0
    arr = json.loads(stdout)
    assert [o["file"] for o in arr] == [str(normal), str(anomaly)]


def test_score_cli_explain(bundle_dir, test_clips) -> None:
    anomaly = [c.path for c in test_clips if c.label == "anomaly"][:2]
    rc, stdout, _ = _score([str(bundle_dir), *map(str, anomaly), "--json", "--explain"])
    assert rc == 0
    for line in stdout.splitlines():
        ex = json.loads(line)["explanation"]
        assert set(ex) == {"kind", "freq_lo_hz", "freq_hi_hz", "period_s", "level_change_db", "text", "detector"}
        assert ex["kind"] in ("tonal", "impact", "broadband", "level_shift", "none") and ex["text"]
    rc, stdout, _ = _score([str(bundle_dir), str(anomaly[0]), "--explain"])
    assert rc == 0 and len(stdout.splitlines()) == 3  # header, row, the explanation sentence
    assert stdout.splitlines()[2].startswith("    ")


def test_score_cli_bad_model_dir(tmp_path) -> None:
    rc, stdout, stderr = _score([str(tmp_path), str(tmp_path / "x.wav")])
    assert rc == 1 and stdout == ""
    assert stderr.count("\n") == 1 and "model.json" in stderr


def test_score_imports_no_training_libraries(bundle_dir, test_clips) -> None:
    code = (
        "import sys\n"
        "from edge_monitor.cli import main\n"
        f"rc = main(['score', {str(bundle_dir)!r}, {str(test_clips[0].path)!r}, '--explain'])\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'keras', 'matplotlib', 'sklearn', 'librosa'})\n"
        "print('HEAVY', heavy, rc)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert "HEAVY [] 0" in res.stdout, res.stdout + res.stderr


def test_one_class_id_and_unreadable_clip(bundle_dir, test_clips, tmp_path) -> None:
    # A flat folder: id_00 with both classes, id_09 with normals only, and one corrupt clip.
    flat = tmp_path / "flat" / "slider"
    flat.mkdir(parents=True)
    ids = sorted({c.machine_id for c in test_clips})
    src = [c for c in test_clips if c.machine_id == ids[0]]
    for c in src:
        shutil.copy(c.path, flat / c.path.name)
    for i, c in enumerate([c for c in src if c.label == "normal"][:2]):
        shutil.copy(c.path, flat / f"normal_id_09_{i:08d}.wav")
    (flat / "anomaly_id_09_99999999.wav").write_bytes(b"not a wav at all")
    out = tmp_path / "report"
    rc, stdout, stderr = _evaluate([str(bundle_dir), str(flat), "--out", str(out), "-q", "--link-images"])
    assert rc == 1  # the report is written, but one clip could not be scored
    assert "anomaly_id_09_99999999.wav" in stderr and stderr.count("not scored:") == 1
    m = json.loads((out / "metrics.json").read_text())
    assert m["n_failed"] == 1 and m["failed"][0]["path"].endswith("anomaly_id_09_99999999.wav")
    assert m["per_id"]["id_09"]["auc"] is None and m["per_id"]["id_09"]["notes"]
    assert m["per_id"][ids[0]]["auc"] is not None
    assert m["mean_over_ids"]["auc"] == pytest.approx(m["per_id"][ids[0]]["auc"])
    with open(out / "scores.csv", newline="") as fh:
        assert len(list(csv.DictReader(fh))) == len(src) + 2
    page = (out / "index.html").read_text()
    assert "anomaly_id_09_99999999.wav" in page and "n/a" in page
    assert '<img src="score_distributions.png"' in page and "base64" not in page  # --link-images
    assert "report:" in stdout


def test_evaluate_clear_errors(bundle_dir, tmp_path) -> None:
    rc, _, stderr = _evaluate([str(tmp_path / "nope"), str(tmp_path), "--out", str(tmp_path / "r")])
    assert rc == 1 and "nope" in stderr and "Traceback" not in stderr
    rc, _, stderr = _evaluate([str(bundle_dir), str(tmp_path / "no-data"), "--out", str(tmp_path / "r")])
    assert rc == 1 and "no-data" in stderr and "Traceback" not in stderr


@pytest.mark.slow
def test_real_samples_flow_through_every_machine_type(real_samples, bundle_dir, tmp_path) -> None:
    """Real DCASE clips of every machine type (11 s ToyCar clips included) through evaluate; no AUC asserted."""
    from trainer.evaluate import evaluation_clips, score_clips

    machines = sorted(p.name for p in real_samples.iterdir() if p.is_dir())
    assert {"ToyCar", "ToyConveyor", "fan", "pump", "slider", "valve"} <= set(machines)
    clips, _ = evaluation_clips(real_samples)
    assert {c.machine for c in clips} == set(machines)
    results, failures = score_clips(Scorer(load_bundle(bundle_dir)), clips)
    assert failures == []
    assert len(results) == len(clips) == len(list(real_samples.glob("*/*.wav")))
    assert all(np.isfinite(r.score) and r.score > 0 for r in results)
    toycar = [r for r in results if r.clip.machine == "ToyCar"]
    assert toycar and all(r.n_windows == 2 for r in toycar)  # 11 s -> windows at 0 s and 1 s
    assert all(r.n_windows == 1 for r in results if r.clip.machine != "ToyCar")
    # Grouped per machine type and id, both labels present in every machine type.
    assert {r.group.split("/")[0] for r in results} == set(machines)
    for machine in machines:
        assert {r.clip.label for r in results if r.clip.machine == machine} == {"normal", "anomaly"}

    # And the command end to end on one machine type.
    out = tmp_path / "toycar"
    rc, stdout, stderr = _evaluate([str(bundle_dir), str(real_samples / "ToyCar"), "--out", str(out), "-q"])
    assert rc == 0, stderr
    m = json.loads((out / "metrics.json").read_text())
    assert m["n_normal"] + m["n_anomaly"] == len(toycar)
    assert (out / "index.html").is_file()


def test_layouts_without_split_skip_the_bundles_training_clips(test_clips, tmp_path) -> None:
    """A flat folder the bundle was trained on: only the clips training held out are evaluated."""
    from trainer.evaluate import evaluation_clips
    from trainer.train import data_fingerprint, select_clips

    flat = tmp_path / "slider"
    flat.mkdir()
    for c in test_clips:
        shutil.copy(c.path, flat / c.path.name)
    every = find_clips(flat)
    train, held_out = select_clips(flat, seed=3)
    assert train and held_out and len(train) + len(held_out) == len(every)
    trained_here = {"seed": 3, "data_fingerprint": data_fingerprint(train)}
    clips, which = evaluation_clips(flat, bundle_training=trained_here)
    assert sorted(c.path for c in clips) == sorted(c.path for c in held_out) and "held out" in which
    assert not {c.path for c in clips} & {c.path for c in train}
    trained_elsewhere = {"seed": 3, "data_fingerprint": {"n_files": 1, "sha256": "0" * 64}}
    clips, which = evaluation_clips(flat, bundle_training=trained_elsewhere)
    assert len(clips) == len(every) and "every clip" in which


def test_error_map_marks_the_explanation(tmp_path) -> None:
    """The report draws the explained band (dashed cyan box) and impact times on the error map."""
    import matplotlib.image as mpimg

    from edge_monitor.features.frontend import FeatureParams
    from edge_monitor.features.model_input import MinMaxNorm
    from trainer.report import ReconExample, plot_reconstruction

    params = FeatureParams(n_mels=64)
    norm = MinMaxNorm(lo=(-90.0,) * 64, hi=(-10.0,) * 64)
    rng = np.random.default_rng(0)
    x = rng.random((64, 312)).astype(np.float32) * 0.5
    recon = x.copy()
    recon[40:44] += 0.4  # the error sits in bands 40..43
    explanation = {"kind": "impact", "freq_lo_hz": 2900.0, "freq_hi_hz": 3600.0, "period_s": 0.62,
                   "level_change_db": 9.0, "text": "An impact every 0.62 s.", "bands": [40, 43],
                   "event_times_s": [1.0, 1.62, 2.24]}
    plain = ReconExample(Path("a.wav"), "anomaly", "worst", 0.02, 0, 1, x, recon)
    marked = ReconExample(Path("a.wav"), "anomaly", "worst", 0.02, 0, 1, x, recon, explanation=explanation)
    cyan = []
    for ex, name in ((plain, "plain.png"), (marked, "marked.png")):
        img = mpimg.imread(plot_reconstruction(ex, params, norm, tmp_path / name))[..., :3]
        # The marker colour #00e5ff: no red, strong green and blue; absent from the magma/inferno maps.
        cyan.append(int(((img[..., 0] < 0.15) & (img[..., 1] > 0.8) & (img[..., 2] > 0.9)).sum()))
    assert cyan[0] == 0 and cyan[1] > 500


def _dcase2023_copy(test_clips, root: Path) -> Path:
    """The synthetic test clips renamed to DCASE 2022-2025 names: one section, id_00 as the source
    domain and id_02 as the target domain, an attribute per clip."""
    machine = root / "slider"
    ids = sorted({c.machine_id for c in test_clips})
    for i, c in enumerate(test_clips):
        domain = "source" if c.machine_id == ids[0] else "target"
        pat = (0 if domain == "source" else 2) + i % 2
        dst = machine / "test" / f"section_00_{domain}_test_{c.label}_{i:04d}_pat_{pat:02d}.wav"
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(c.path, dst)
    return machine


def test_evaluate_dcase2023_domains_and_official_score(bundle_dir, test_clips, tmp_path) -> None:
    from scipy.stats import hmean
    from sklearn.metrics import roc_auc_score

    data = _dcase2023_copy(test_clips, tmp_path / "dcase2023")
    out = tmp_path / "report"
    rc, stdout, stderr = _evaluate([str(bundle_dir), str(data), "--out", str(out), "-q", "--ids", "00"])
    assert rc == 0, stderr
    assert "AUC source" in stdout and "AUC target" in stdout and "official" in stdout
    assert "DCASE official score" in stdout
    m = json.loads((out / "metrics.json").read_text())
    assert m["domains"] == ["source", "target"] and list(m["per_id"]) == ["section_00"]

    with open(out / "scores.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(test_clips)
    for r in rows:  # domain and attributes carried from the file name to the CSV
        name = Path(r["path"]).name
        assert r["domain"] == name.split("_")[2] and r["attributes"] == f"pat={name[-6:-4]}"
        assert r["machine_id"] == "section_00"
    # Recompute from scores.csv the way the DCASE 2022-2025 evaluators do.
    y = np.array([r["label"] == "anomaly" for r in rows], dtype=int)
    s = np.array([float(r["score"]) for r in rows])
    dom = np.array([r["domain"] for r in rows])
    sec = m["per_id"]["section_00"]
    for d in ("source", "target"):
        sel = (dom == d) | (y == 1)
        assert sec[f"auc_{d}"] == pytest.approx(roc_auc_score(y[sel], s[sel]), abs=1e-6)
        assert sec[f"n_normal_{d}"] == int(((dom == d) & (y == 0)).sum())
    assert sec["pauc"] == pytest.approx(roc_auc_score(y, s, max_fpr=0.1), abs=1e-6)
    official = hmean([sec["auc_source"], sec["auc_target"], sec["pauc"]])
    assert sec["official_score"] == pytest.approx(official, abs=1e-9)
    assert m["official_score"] == pytest.approx(official, abs=1e-9)
    assert m["mean_over_ids"]["official_score"] == pytest.approx(official, abs=1e-9)
    page = (out / "index.html").read_text()
    assert 'id="official-score"' in page and "AUC source" in page and "source: " in page

    # An evaluation-set clip without a label: refused in one line, nothing half-written.
    shutil.copy(test_clips[0].path, data / "test" / "section_00_0000.wav")
    rc, _, stderr = _evaluate([str(bundle_dir), str(data), "--out", str(tmp_path / "r2"), "-q"])
    assert rc == 1 and "without a label in the name" in stderr and "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1
