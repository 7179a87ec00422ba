"""The report's review: kinds from metadata.csv, DCASE attribute files and names; the kind table; misses and
false alarms; the score axis with an overflow bar; which example is "worst".

The last tests evaluate the session's tiny bundle (tests/conftest.py) and read what the report says.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest

from trainer.datasets import ClipRef, find_clips
from trainer.evaluate import ClipResult, pick_examples
from trainer.review import UNKNOWN_KIND, clip_kinds, group_rows, review_html, wrong_clips


def _result(name: str, label: str, score: float, threshold: float = 1.0, domain: str | None = None,
            attributes: tuple[tuple[str, str], ...] = ()) -> ClipResult:
    clip = ClipRef(Path("/data/slider/test") / name, label, "slider", "id_00", "test",  # type: ignore[arg-type]
                   domain, attributes)
    return ClipResult(clip, "id_00", score, score, 1, "anomaly" if score > threshold else "normal")


def test_kinds_from_metadata_attribute_files_and_names(tmp_path: Path) -> None:
    synth = tmp_path / "synth" / "slider"
    (synth / "test").mkdir(parents=True)
    with open(synth / "metadata.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "label", "anomaly_kind"])
        w.writerow(["test/anomaly_id_00_00000000.wav", "anomaly", "loose_belt"])
        w.writerow(["test/normal_id_00_00000000.wav", "normal", ""])
    dcase = tmp_path / "dcase" / "valve"
    (dcase / "test").mkdir(parents=True)
    (dcase / "attributes_00.csv").write_text(
        "file_name,d1p,d1v,d2p,d2v\n"
        "valve/test/section_00_source_test_anomaly_0000_pat_01.wav,pat,01,v1pat,02\n")
    clips = [
        ClipRef(synth / "test" / "anomaly_id_00_00000000.wav", "anomaly", "slider", "id_00", "test"),
        ClipRef(synth / "test" / "normal_id_00_00000000.wav", "normal", "slider", "id_00", "test"),
        ClipRef(dcase / "test" / "section_00_source_test_anomaly_0000_pat_01.wav", "anomaly", "valve",
                "section_00", "test", "source", (("pat", "01"),)),
        ClipRef(dcase / "test" / "section_00_source_test_normal_0000_pat_03.wav", "normal", "valve",
                "section_00", "test", "source", (("pat", "03"),)),
        ClipRef(tmp_path / "flat" / "anomaly_id_00_00000007.wav", "anomaly", "flat", "id_00", None),
        ClipRef(tmp_path / "flat" / "normal_id_00_00000007.wav", "normal", "flat", "id_00", None),
    ]
    kinds = clip_kinds(clips)
    assert [kinds[c.path] for c in clips] == [
        "loose_belt", "normal",            # synthetic: metadata.csv
        "pat=01, v1pat=02",                # the DCASE attribute file wins over the name
        "pat=03",                          # not in the attribute file: the name's attributes
        UNKNOWN_KIND, "normal",            # nothing recorded
    ]


def test_kind_rows_count_detections_and_false_alarms() -> None:
    results = [_result("n1", "normal", 0.2), _result("n2", "normal", 1.5), _result("n3", "normal", -0.4),
               _result("a1", "anomaly", 5.0), _result("a2", "anomaly", 0.9), _result("b1", "anomaly", 3.0)]
    kinds = {Path("/data/slider/test/n1"): "normal", Path("/data/slider/test/n2"): "normal",
             Path("/data/slider/test/n3"): "normal", Path("/data/slider/test/a1"): "squeal",
             Path("/data/slider/test/a2"): "squeal", Path("/data/slider/test/b1"): "belt"}
    rows = {r.name: r for r in group_rows(results, lambda r: kinds[r.clip.path])}
    assert list(rows) == ["normal", "belt", "squeal"]
    assert (rows["normal"].n_normal, rows["normal"].false_alarms, rows["normal"].highest_normal) == (3, 1, 1.5)
    assert (rows["squeal"].n_anomaly, rows["squeal"].detected, rows["squeal"].lowest_anomaly) == (2, 1, 0.9)
    # A kind without normals is compared with every normal clip: 5.0 beats all three, 0.9 beats two.
    assert rows["squeal"].auc == pytest.approx((3 + 2) / 6)
    assert rows["belt"].auc == pytest.approx(1.0)


def test_misses_and_false_alarms_are_listed_in_order_and_capped() -> None:
    results = [_result(f"a{i}", "anomaly", s) for i, s in enumerate([0.5, -1.0, 0.9, 4.0])]
    results += [_result(f"n{i}", "normal", s) for i, s in enumerate([1.2, 3.0, 0.1])]
    calls: list[str] = []

    def explain(r: ClipResult) -> tuple[int, float, str, str]:
        calls.append(r.clip.path.name)
        return 0, r.score, "profile", f"why {r.clip.path.name}"

    misses, alarms, n_misses, n_alarms = wrong_clips(results, {}, explain, limit=2)
    assert (n_misses, n_alarms) == (3, 2)
    assert [w.result.score for w in misses] == [-1.0, 0.5]  # the clearest miss first, capped at 2
    assert [w.result.score for w in alarms] == [3.0, 1.2]   # the loudest false alarm first
    assert sorted(calls) == sorted(w.result.clip.path.name for w in [*misses, *alarms])  # only listed ones
    assert misses[0].explanation == "why a1" and misses[0].kind == UNKNOWN_KIND
    page = review_html([], [], misses, alarms, n_misses, n_alarms, threshold=1.0)
    assert "Missed anomalies: 3, the first 2 shown" in page and "False alarms: 2" in page
    assert page.index("a1") < page.index("a0")  # -1.0 before 0.5


def test_worst_anomalous_example_is_the_lowest_scoring_one() -> None:
    results = [_result("n1", "normal", 0.2), _result("n2", "normal", 0.9), _result("n3", "normal", 0.5),
               _result("a1", "anomaly", 9.0), _result("a2", "anomaly", 0.7), _result("a3", "anomaly", 3.0)]
    picks = {(label, kind): r.clip.path.name for label, kind, r in pick_examples(results)}
    assert picks[("normal", "worst")] == "n2"     # nearest to a false alarm
    assert picks[("anomaly", "worst")] == "a2"    # nearest to a miss (here: a miss)
    assert picks[("anomaly", "typical")] == "a3"  # the median


def test_score_axis_keeps_normals_and_threshold_visible_when_an_anomaly_scores_20x() -> None:
    from trainer.report_panels import score_scale

    rng = np.random.default_rng(0)
    normal = rng.normal(0.0, 1.0, 200)
    threshold = 3.4
    anomaly = np.array([2.0, 5.0, 8.0, 20 * threshold])
    scale = score_scale(normal, anomaly, threshold, n_bins=30)
    assert scale.cap is not None and scale.top == pytest.approx(20 * threshold)
    width = scale.bins[-1] - scale.bins[0]
    # The normals' middle 98 % take a quarter of the axis or more (a linear axis to 68: under 7 %), and the
    # threshold sits inside the visible range.
    spread = float(np.percentile(normal, 99) - np.percentile(normal, 1))
    linear = spread / (20 * threshold - normal.min())
    assert spread / width > 0.25 > 3 * linear and scale.bins[0] < threshold < scale.cap
    folded = scale.fold(anomaly)
    assert folded[-1] <= scale.bins[-1] and folded[-1] > scale.cap  # in the overflow bin
    assert list(folded[:3]) == [2.0, 5.0, 8.0]
    # When every score fits, no overflow bin.
    assert score_scale(normal, np.array([4.0, 6.0]), threshold, n_bins=30).cap is None


@pytest.fixture(scope="module")
def report(tiny_bundle: Path, synth_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from trainer.cli import main

    out = tmp_path_factory.mktemp("review-report")
    with contextlib.redirect_stdout(io.StringIO()) as stdout, contextlib.redirect_stderr(io.StringIO()) as err:
        rc = main(["evaluate", str(tiny_bundle), str(synth_dataset), "--out", str(out), "--quiet"])
    assert rc == 0, err.getvalue()
    assert "at the threshold:" in stdout.getvalue()
    return out


def test_report_tables_agree_with_scores_csv_and_metadata(report: Path, synth_dataset: Path) -> None:
    metrics = json.loads((report / "metrics.json").read_text())
    with open(report / "scores.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    meta = {Path(r["file"]).name: r["anomaly_kind"] or "normal"
            for r in csv.DictReader(open(synth_dataset / "metadata.csv", newline=""))}
    by_kind = {r["name"]: r for r in metrics["by_kind"]}
    for kind in {meta[Path(r["path"]).name] for r in rows}:
        members = [r for r in rows if meta[Path(r["path"]).name] == kind]
        flagged = sum(r["decision"] == "anomaly" for r in members)
        row = by_kind[kind]
        if kind == "normal":
            assert (row["n_normal"], row["false_alarms"]) == (len(members), flagged)
        else:
            assert (row["n_anomaly"], row["detected"]) == (len(members), flagged)
    missed = sorted((float(r["score"]), Path(r["path"]).name) for r in rows
                    if r["label"] == "anomaly" and r["decision"] == "normal")
    assert metrics["n_misses"] == len(missed)
    assert [Path(m["path"]).name for m in metrics["misses"]] == [name for _, name in missed][:25]
    alarms = [r for r in rows if r["label"] == "normal" and r["decision"] == "anomaly"]
    assert metrics["n_false_alarms"] == len(alarms)
    page = (report / "index.html").read_text()
    assert 'id="kind-table"' in page and f"Missed anomalies: {len(missed)}" in page
    assert f"False alarms: {len(alarms)}" in page
    test_clips = [c for c in find_clips(synth_dataset) if c.split == "test"]
    assert sum(r["n_normal"] + r["n_anomaly"] for r in metrics["by_kind"]) == len(test_clips)
