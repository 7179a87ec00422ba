"""The alert rule as a table: scores in, events out."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest

from edge_monitor.decide.decision import Decider, DecisionRule

T = 1.0  # threshold; clear level = clear_ratio * T


def run(rule: DecisionRule, scores: list[float], hop: float = 10.0) -> list[tuple[int, str, str]]:
    """``(window index, event, event id)`` for each event; windows are ``hop`` s apart, 10 s long."""
    ids = (f"e{i}" for i in itertools.count(1))
    d = Decider(rule, id_factory=lambda: next(ids))
    out = []
    for i, s in enumerate(scores):
        ev = d.update(s, i * hop, i * hop + 10.0)
        if ev is not None:
            out.append((i, ev.event, ev.event_id))
    return out


HI, MID, LO = 1.5, 0.95, 0.5  # above T; between clear level 0.9 and T; below the clear level

CASES = [
    # (name, rule kwargs, scores, expected events)
    ("all normal", {}, [LO] * 10, []),
    ("one spike never opens with k=2", {}, [LO, HI, LO, LO, HI, LO, LO], []),
    ("2 of 3 opens on the second high", {}, [LO, HI, LO, HI, LO, LO, LO], [(3, "start", "e1"), (6, "end", "e1")]),
    ("2 consecutive opens", {}, [HI, HI, LO, LO, LO], [(1, "start", "e1"), (4, "end", "e1")]),
    ("k=1 opens on the first high", {"k": 1, "n": 1}, [LO, HI, LO, LO, LO], [(1, "start", "e1"), (4, "end", "e1")]),
    ("hysteresis: between clear level and T does not close", {},
     [HI, HI, MID, MID, MID, MID, LO, LO, LO], [(1, "start", "e1"), (8, "end", "e1")]),
    ("a high window restarts the clear count", {},
     [HI, HI, LO, LO, HI, LO, LO, LO], [(1, "start", "e1"), (7, "end", "e1")]),
    ("clear_windows=1 closes on the first clear window", {"clear_windows": 1},
     [HI, HI, LO], [(1, "start", "e1"), (2, "end", "e1")]),
    ("cooldown blocks a re-open inside it", {"cooldown_seconds": 25.0},
     # closes at window 4 (ends 50 s); windows 5, 6 end at 60, 70 s < 75 s: blocked; 7 ends 80 s: allowed
     [HI, HI, LO, LO, LO, HI, HI, HI, HI], [(1, "start", "e1"), (4, "end", "e1"), (7, "start", "e2")]),
    ("no cooldown: history restarts empty after a close", {"cooldown_seconds": 0.0},
     [HI, HI, LO, LO, LO, HI, LO, HI], [(1, "start", "e1"), (4, "end", "e1"), (7, "start", "e2")]),
    ("exactly at threshold is not above", {}, [T, T, T, T], []),
    ("3 of 5", {"k": 3, "n": 5}, [HI, LO, HI, LO, LO, HI, HI, LO, LO, LO],
     [(6, "start", "e1"), (9, "end", "e1")]),
]


@pytest.mark.parametrize("name,kwargs,scores,expected", CASES, ids=[c[0] for c in CASES])
def test_rule_table(name: str, kwargs: dict, scores: list[float], expected: list) -> None:
    # The table is written for a clear level of 0.9 T (no baseline).
    rule = DecisionRule(threshold=T, **{"cooldown_seconds": 0.0, "clear_ratio": 0.9, **kwargs})
    assert run(rule, scores) == expected


def test_events_carry_scores_peak_and_times() -> None:
    d = Decider(DecisionRule(threshold=T, cooldown_seconds=0), id_factory=lambda: "x")
    evs = [d.update(s, i * 10.0, i * 10.0 + 10.0) for i, s in enumerate([1.2, 3.0, 2.0, 0.1, 0.1, 0.2])]
    start, end = evs[1], evs[5]
    assert start.event == "start" and start.score == 3.0 and start.peak_score == 3.0 and start.windows == 1
    assert (start.peak_window_start, start.peak_window_end) == (10.0, 20.0)
    assert (start.window_start, start.window_end) == (10.0, 20.0)
    assert end.event == "end" and end.event_id == start.event_id
    assert end.peak_score == 3.0 and end.score == 0.2 and end.windows == 5
    assert end.opened_at == 20.0 and end.window_end == 60.0
    assert [e for e in evs if e is not None] == [start, end]


def test_start_names_the_strongest_window_that_raised_it_and_later_peaks_update_it() -> None:
    d = Decider(DecisionRule(threshold=T, k=2, n=3, clear_windows=2, clear_ratio=0.5, cooldown_seconds=0),
                id_factory=lambda: "x")
    # Window 1 scores highest; window 2 completes 2 of 3 and opens; window 4 beats window 1 later.
    scores = [0.2, 7.0, 1.5, 3.0, 9.0, 0.1, 0.1]
    evs = [d.update(s, i * 10.0, i * 10.0 + 10.0) for i, s in enumerate(scores)]
    start, end = evs[2], evs[6]
    assert start is not None and start.event == "start"
    assert start.score == 1.5 and (start.window_start, start.window_end) == (20.0, 30.0)
    assert start.peak_score == 7.0 and (start.peak_window_start, start.peak_window_end) == (10.0, 20.0)
    assert end is not None and end.event == "end"
    assert end.peak_score == 9.0 and (end.peak_window_start, end.peak_window_end) == (40.0, 50.0)
    # Below the threshold never counts, however high the window before the history: the peak is
    # one of the windows above T in the last n.
    d2 = Decider(DecisionRule(threshold=T, k=2, n=2, clear_windows=1, cooldown_seconds=0), id_factory=lambda: "y")
    evs2 = [d2.update(s, i * 10.0, i * 10.0 + 10.0) for i, s in enumerate([5.0, 0.1, 2.0, 1.1])]
    assert evs2[3] is not None and evs2[3].peak_score == 2.0 and evs2[3].peak_window_start == 20.0


def test_candidate_windows_keep_the_last_n() -> None:
    from edge_monitor.decide.candidates import CandidateWindows

    c: CandidateWindows[str] = CandidateWindows(3)
    for i in range(5):
        c.push(float(i), i * 10.0, i * 10.0 + 10.0, f"w{i}")
    assert len(c) == 3
    found = c.find(30.0)
    assert found is not None and found.data == "w3" and found.score == 3.0 and found.window_end == 40.0
    assert c.find(10.0) is None  # window 1 fell out of the last 3
    with pytest.raises(ValueError):
        CandidateWindows(0)


def test_default_ids_are_unique_uuids() -> None:
    rule = DecisionRule(threshold=T, k=1, n=1, clear_windows=1, clear_ratio=0.9, cooldown_seconds=0)
    d = Decider(rule)
    ids = set()
    for i in range(10):
        d.update(HI, 2 * i * 10.0, 2 * i * 10.0 + 10)
        ev = d.update(LO, (2 * i + 1) * 10.0, (2 * i + 1) * 10.0 + 10)
        ids.add(ev.event_id)
    assert len(ids) == 10 and all(len(i) == 36 for i in ids)


@pytest.mark.parametrize("kwargs", [{"threshold": 0}, {"threshold": 1, "k": 4, "n": 3}, {"threshold": 1, "k": 0},
                                    {"threshold": 1, "clear_ratio": 1.5}, {"threshold": 1, "clear_windows": 0},
                                    {"threshold": 1, "cooldown_seconds": -1}])
def test_invalid_rules_are_refused(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        DecisionRule(**kwargs)


def test_clear_level_is_measured_from_the_typical_normal_score() -> None:
    # Normal scores sit on a floor near the threshold: a level that is a fraction of the threshold
    # alone would lie below them and the alert would never close.
    rule = DecisionRule(threshold=0.0222, clear_ratio=0.5, baseline=0.0204, cooldown_seconds=0)
    assert abs(rule.clear_level - 0.0213) < 1e-9
    normal, anomalous = 0.0206, 0.030
    events = run(rule, [normal] * 3 + [anomalous] * 3 + [normal] * 3)
    assert [e[1] for e in events] == ["start", "end"]
    assert DecisionRule(threshold=1.0, clear_ratio=0.5).clear_level == 0.5  # no baseline: a fraction of T


def test_typical_normal_score_prefers_calibration() -> None:
    from edge_monitor.decide.decision import typical_normal_score
    from edge_monitor.features.frontend import FeatureParams
    from edge_monitor.features.model_input import MinMaxNorm
    from edge_monitor.model.fusion import Fusion
    from edge_monitor.model.model_json import DetectorSpec, ModelJson, ScoreStats
    from edge_monitor.model.threshold import ThresholdFit

    doc = ModelJson(features=FeatureParams(), input_shape=(128, 312),
                    normalisation=MinMaxNorm(tuple([0.0] * 128), tuple([1.0] * 128)),
                    detectors=(DetectorSpec("autoencoder", "autoencoder"),), fusion=Fusion(),
                    threshold=ThresholdFit(0.04, "gamma", 0.99, 10),
                    validation_scores=ScoreStats.of(np.array([0.01, 0.02, 0.03])))
    assert doc.typical_normal_score() == 0.02
    calibrated = dataclasses.replace(doc, calibration_scores=ScoreStats.of(np.array([0.03, 0.03, 0.03])))
    assert calibrated.typical_normal_score() == 0.03
    assert typical_normal_score(calibrated.typical_normal_score(), 0.04) == 0.03
    assert typical_normal_score(None, 0.04) == 0.0
    assert typical_normal_score(0.03, 0.025) == 0.0  # a median above an overridden threshold: ignore it
    assert typical_normal_score(-0.2, 2.5) == 0.0  # a fused (standardised) median below zero: relative to zero
