"""Metric values on hand-made score sets whose answers are worked out by hand below."""

from __future__ import annotations

import pytest

from trainer.metrics import Scored, binary_metrics, evaluate_scores, partial_auc_raw

# Ten normals and five anomalies. Sorted by score, highest first:
#   A.95 N.90 A.85 N.80 A.75 N.70 N.60 N.50 N.40 A.35 N.30 N.20 A.15 N.10 N.05
NORMAL = [0.90, 0.80, 0.70, 0.60, 0.50, 0.40, 0.30, 0.20, 0.10, 0.05]
ANOMALY = [0.95, 0.85, 0.75, 0.35, 0.15]
Y = [0] * len(NORMAL) + [1] * len(ANOMALY)
S = NORMAL + ANOMALY

# AUC = share of (anomaly, normal) pairs ranked correctly. Normals below each anomaly:
#   0.95 -> 10, 0.85 -> 9, 0.75 -> 8, 0.35 -> 4, 0.15 -> 2: 33 of 10 * 5 = 50 pairs.
AUC = 33 / 50
# ROC near the origin: A.95 lifts TPR to 1/5 at FPR 0, then N.90 moves FPR to 1/10.
# Area under the ROC for FPR in [0, 0.1] = 0.1 * 0.2 = 0.02.
PAUC_RAW = 0.02 / 0.1
# McClish: 0.5 * (1 + (A - min) / (max - min)), min = 0.1**2 / 2 = 0.005, max = 0.1.
PAUC = 0.5 * (1 + (0.02 - 0.005) / (0.1 - 0.005))  # = 11/19
# Threshold 0.5, decided anomalous when score > 0.5:
#   A.95 A.85 A.75 (tp = 3), N.90 N.80 N.70 N.60 (fp = 4); A.35 A.15 missed (fn = 2); N.50 is not above.
THRESHOLD = 0.5
PRECISION = 3 / 7
RECALL = 3 / 5
F1 = 2 * 3 / (2 * 3 + 4 + 2)  # 2tp / (2tp + fp + fn) = 0.5


def test_hand_made_scores() -> None:
    m = binary_metrics(Y, S, THRESHOLD)
    assert m["auc"] == pytest.approx(AUC, abs=1e-12)
    assert m["pauc"] == pytest.approx(PAUC, abs=1e-12)
    assert m["pauc"] == pytest.approx(11 / 19, abs=1e-12)
    assert m["pauc_raw"] == pytest.approx(PAUC_RAW, abs=1e-12)
    assert m["precision"] == pytest.approx(PRECISION, abs=1e-12)
    assert m["recall"] == pytest.approx(RECALL, abs=1e-12)
    assert m["f1"] == pytest.approx(F1, abs=1e-12)
    assert (m["tp"], m["fp"], m["tn"], m["fn"]) == (3, 4, 6, 2)
    assert (m["n_normal"], m["n_anomaly"], m["threshold"]) == (10, 5, 0.5)
    assert m["notes"] == []


def test_partial_auc_interpolates_a_tied_segment() -> None:
    # A tie between the top anomaly and the top normal draws one diagonal ROC segment
    # from (0, 0) to (FPR 1/4, TPR 1/2); at FPR 0.1 it has reached TPR 0.2.
    y = [1, 0, 0, 1, 0, 0]
    s = [0.9, 0.9, 0.6, 0.5, 0.3, 0.2]
    area = 0.5 * 0.1 * 0.2  # the triangle under the diagonal up to FPR 0.1
    assert partial_auc_raw(y, s) == pytest.approx(area / 0.1, abs=1e-12)
    m = binary_metrics(y, s, threshold=0.55)
    assert m["pauc"] == pytest.approx(0.5 * (1 + (area - 0.005) / 0.095), abs=1e-12)  # 10/19
    # Pairs: A.9 beats N.6, N.3, N.2 and ties N.9 (counts 1/2); A.5 beats N.3, N.2: 5.5 of 8.
    assert m["auc"] == pytest.approx(5.5 / 8, abs=1e-12)
    # Above 0.55: A.9, N.9, N.6 -> tp 1, fp 2; A.5 missed.
    assert m["precision"] == pytest.approx(1 / 3) and m["recall"] == pytest.approx(1 / 2)
    assert m["f1"] == pytest.approx(2 * 1 / (2 * 1 + 2 + 1))


def test_perfect_and_inverted_scorers() -> None:
    y = [0, 0, 0, 1, 1]
    perfect = binary_metrics(y, [0.1, 0.2, 0.3, 0.8, 0.9], threshold=0.5)
    assert perfect["auc"] == 1.0 and perfect["pauc"] == 1.0 and perfect["pauc_raw"] == 1.0
    assert perfect["precision"] == perfect["recall"] == perfect["f1"] == 1.0
    inverted = binary_metrics(y, [0.9, 0.8, 0.7, 0.2, 0.1], threshold=0.5)
    assert inverted["auc"] == 0.0 and inverted["pauc_raw"] == 0.0
    # McClish maps the worst partial area (0) below chance: 0.5 * (1 - 0.005 / 0.095).
    assert inverted["pauc"] == pytest.approx(0.5 * (1 - 0.005 / 0.095))
    assert inverted["precision"] == 0.0 and inverted["recall"] == 0.0
    assert inverted["f1"] == 0.0  # 2tp / (2tp + fp + fn) = 0 / 5: defined, and zero


def test_undefined_metrics_are_null_with_a_note() -> None:
    only_normal = binary_metrics([0, 0, 0], [0.1, 0.2, 0.3], threshold=0.5)
    assert only_normal["auc"] is None and only_normal["pauc"] is None and only_normal["pauc_raw"] is None
    assert only_normal["precision"] is None and only_normal["recall"] is None
    assert any("only normal" in n for n in only_normal["notes"])
    assert any("precision" in n for n in only_normal["notes"])
    only_anomaly = binary_metrics([1, 1], [0.9, 0.1], threshold=0.5)
    assert only_anomaly["auc"] is None and only_anomaly["recall"] == 0.5 and only_anomaly["precision"] == 1.0
    empty = binary_metrics([], [], threshold=0.5)
    assert empty["auc"] is None and empty["n_normal"] == 0 and empty["notes"]


def test_per_id_and_dcase_mean() -> None:
    clips = [Scored("00", "anomaly" if yy else "normal", ss) for yy, ss in zip(Y, S)]
    # id 02: a perfect separation (AUC 1).
    clips += [Scored("02", "normal", 0.1), Scored("02", "normal", 0.2), Scored("02", "anomaly", 0.9)]
    # id 04: normals only, so AUC is undefined there; one normal is flagged (precision 0 of 1).
    clips += [Scored("04", "normal", 0.3), Scored("04", "normal", 0.6)]
    m = evaluate_scores(clips, THRESHOLD)
    assert set(m["per_id"]) == {"00", "02", "04"}
    assert m["per_id"]["00"]["auc"] == pytest.approx(AUC)
    assert m["per_id"]["02"]["auc"] == 1.0
    assert m["per_id"]["04"]["auc"] is None and m["per_id"]["04"]["notes"]
    mean = m["mean_over_ids"]
    assert mean["auc"] == pytest.approx((AUC + 1.0) / 2)
    assert mean["pauc"] == pytest.approx((PAUC + 1.0) / 2)
    assert mean["pauc_raw"] == pytest.approx((PAUC_RAW + 1.0) / 2)
    assert mean["ids_used"]["auc"] == ["00", "02"]
    assert mean["recall"] == pytest.approx((RECALL + 1.0) / 2)  # id 04 has no anomalies
    assert m["per_id"]["04"]["precision"] == 0.0 and m["per_id"]["04"]["recall"] is None
    # id 04 has one class only: none of its metrics enters the mean, not even that precision of 0.
    assert mean["precision"] == pytest.approx((PRECISION + 1.0) / 2)
    assert mean["f1"] == pytest.approx((F1 + 1.0) / 2)
    assert all(ids == ["00", "02"] for ids in mean["ids_used"].values())
    assert "04" in mean["notes"][0]
    # Pooled over all ids: 15 + 3 + 2 clips.
    assert (m["n_normal"], m["n_anomaly"]) == (14, 6)


def test_rejects_unknown_labels() -> None:
    with pytest.raises(ValueError, match="unknown label"):
        evaluate_scores([Scored("00", "abnormal", 1.0)], 0.5)


# --- DCASE 2022-2025: AUC per domain, pAUC over both, official score ---------------------------
# One section, two domains. Scores:
#   source normals  .10 .20 .30 .40 .50      source anomalies  .60 .90
#   target normals  .35 .45 .55 .65 .75      target anomalies  .70 .25
SRC_N, TGT_N = [0.10, 0.20, 0.30, 0.40, 0.50], [0.35, 0.45, 0.55, 0.65, 0.75]
SRC_A, TGT_A = [0.60, 0.90], [0.70, 0.25]
# AUC source: the 5 source normals against all 4 anomalies (both domains), as the evaluators do.
#   .90 beats 5, .70 beats 5, .60 beats 5, .25 beats .10 and .20: 17 of 20 pairs.
AUC_SOURCE = 17 / 20
# AUC target: the 5 target normals against all 4 anomalies.
#   .90 beats 5, .70 beats .35 .45 .55 .65 (4), .60 beats .35 .45 .55 (3), .25 beats none: 12 of 20.
AUC_TARGET = 12 / 20
# pAUC over all 10 normals and 4 anomalies. Highest first: A.90 (TPR 1/4 at FPR 0), then N.75 moves
# FPR to 1/10: area up to FPR 0.1 = 0.1 * 0.25 = 0.025; McClish: 0.5 * (1 + 0.020 / 0.095) = 23/38.
SECTION_PAUC = 23 / 38
# Official score: harmonic mean of the three = 3 / (20/17 + 5/3 + 38/23) = 3 * 1173 / 5273.
OFFICIAL = 3519 / 5273  # 0.66736...


def _section(mid: str, src_n, tgt_n, src_a, tgt_a) -> list[Scored]:
    return ([Scored(mid, "normal", v, "source") for v in src_n] + [Scored(mid, "normal", v, "target") for v in tgt_n]
            + [Scored(mid, "anomaly", v, "source") for v in src_a] + [Scored(mid, "anomaly", v, "target") for v in tgt_a])


def test_dcase_official_score_by_hand() -> None:
    m = evaluate_scores(_section("section_00", SRC_N, TGT_N, SRC_A, TGT_A), THRESHOLD)
    sec = m["per_id"]["section_00"]
    assert sec["auc_source"] == pytest.approx(AUC_SOURCE, abs=1e-12)
    assert sec["auc_target"] == pytest.approx(AUC_TARGET, abs=1e-12)
    assert sec["pauc"] == pytest.approx(SECTION_PAUC, abs=1e-12)
    assert sec["official_score"] == pytest.approx(OFFICIAL, abs=1e-12)
    # Not the "anomalies of that domain only" rule, which would give source 10/10 = 1.0 here.
    assert sec["auc_source"] != 1.0
    assert (sec["n_normal_source"], sec["n_anomaly_source"], sec["n_normal_target"], sec["n_anomaly_target"]) == (
        5, 2, 5, 2)
    assert m["domains"] == ["source", "target"]
    # One section: pooled, per section and DCASE's official score agree.
    assert m["official_score"] == m["mean_over_ids"]["official_score"] == sec["official_score"]
    assert m["mean_over_ids"]["official_ids_used"] == ["section_00"]
    assert sec["notes"] == []


def test_dcase_official_score_over_sections_is_one_harmonic_mean() -> None:
    clips = _section("section_00", SRC_N, TGT_N, SRC_A, TGT_A)
    clips += _section("section_01", [0.1], [0.2], [0.9], [0.8])  # perfect: 1, 1, 1
    mean = evaluate_scores(clips, THRESHOLD)["mean_over_ids"]
    assert mean["auc_source"] == pytest.approx((AUC_SOURCE + 1) / 2)
    assert mean["auc_target"] == pytest.approx((AUC_TARGET + 1) / 2)
    # 6 / (20/17 + 5/3 + 38/23 + 3) = 6 * 1173 / 8792: all six values in one harmonic mean,
    # not the mean of the two sections' scores ((OFFICIAL + 1) / 2 = 0.8337).
    assert mean["official_score"] == pytest.approx(3519 / 4396, abs=1e-12)
    assert mean["official_ids_used"] == ["section_00", "section_01"]


def test_official_score_floor_and_undefined_domains() -> None:
    from trainer.metrics import official_score

    assert official_score([0.0, 1.0, 1.0]) == pytest.approx(0.0, abs=1e-14)  # floored, no division by zero
    assert official_score([0.5, None, 0.5]) is None
    # Without domains (DCASE 2020, MIMII): the keys are there, null, and no note is added.
    plain = evaluate_scores([Scored("id_00", "anomaly" if yy else "normal", ss) for yy, ss in zip(Y, S)], THRESHOLD)
    assert plain["auc_source"] is None and plain["auc_target"] is None and plain["official_score"] is None
    assert plain["domains"] == [] and plain["notes"] == []
    assert plain["mean_over_ids"]["official_score"] is None
    # A section without target normals: AUC target undefined, said once.
    only_src = evaluate_scores(_section("section_00", SRC_N, [], SRC_A, TGT_A), THRESHOLD)["per_id"]["section_00"]
    assert only_src["auc_source"] == pytest.approx(AUC_SOURCE) and only_src["auc_target"] is None
    assert only_src["official_score"] is None
    assert only_src["notes"] == ["no normal target-domain clips: AUC target and the official score are undefined"]
    with pytest.raises(ValueError, match="unknown domain"):
        evaluate_scores([Scored("s", "normal", 0.1, "eval")], 0.5)
