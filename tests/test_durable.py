"""Durable writes (temp file, fsync, rename, fsync of the folder) and the open-alert note, on a real full disk."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from disk_helpers import SmallDisk  # noqa: E402

from edge_monitor.model.bundle import write_arrays, write_model_json  # noqa: E402
from edge_monitor.publish.open_alerts import FILE_NAME, OpenAlerts  # noqa: E402
from edge_monitor.publish.open_sensor_events import FILE_NAME as SENSOR_FILE_NAME  # noqa: E402
from edge_monitor.publish.open_sensor_events import OpenSensorEvents  # noqa: E402
from edge_monitor.util.durable import write_durably  # noqa: E402


def test_write_durably_replaces_whole_files_with_the_mode_asked(tmp_path: Path) -> None:
    target = tmp_path / "config.yaml"
    target.write_text("old\n")
    write_durably(target, "new: 1\n", 0o640)
    assert target.read_text() == "new: 1\n"
    assert target.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml"]  # no temporary file left


def test_a_full_disk_leaves_the_old_files_and_no_temporary_ones(tmp_path: Path) -> None:
    with SmallDisk(tmp_path / "disk", size_kb=128) as disk:
        bundle = disk.path / "bundle"
        bundle.mkdir()
        write_model_json(bundle, {"machine": "slider", "note": "old"})
        write_arrays(bundle, {"a": np.zeros(4)})
        old_json = (bundle / "model.json").read_bytes()
        old_npz = (bundle / "detectors.npz").read_bytes()
        disk.fill()
        with pytest.raises(OSError) as info:
            write_model_json(bundle, {"machine": "slider", "note": "x" * 200_000})
        assert info.value.errno == 28  # ENOSPC from the kernel
        with pytest.raises(OSError):
            write_arrays(bundle, {"a": np.zeros(100_000)})
        assert (bundle / "model.json").read_bytes() == old_json
        assert (bundle / "detectors.npz").read_bytes() == old_npz
        assert sorted(p.name for p in bundle.iterdir()) == ["detectors.npz", "model.json"]


def test_open_alert_note_is_kept_at_start_gone_at_end_and_turned_into_an_interrupted_end(tmp_path: Path) -> None:
    notes = OpenAlerts(tmp_path / "state")
    start = {"event_id": "e-1", "event": "start", "device_id": "d", "machine": "slider",
             "window_start": "2026-12-03T10:00:00.000Z", "window_end": "2026-12-03T10:00:10.000Z",
             "score": 0.5, "threshold": 0.2, "peak_score": 0.5, "model": {"name": "m"}, "windows": 1,
             "evidence": "/x.wav", "explanation": {"text": "louder"}}
    assert notes.record(start) is None
    assert json.loads((tmp_path / "state" / FILE_NAME).read_text())["event_id"] == "e-1"
    [end] = OpenAlerts(tmp_path / "state").interrupted("2026-12-03T11:00:00.000Z")  # what the next start sees
    assert end["event"] == "end" and end["interrupted"] is True and end["event_id"] == "e-1"
    assert end["opened_at"] == start["window_end"] and end["time"] == "2026-12-03T11:00:00.000Z"
    assert end["score"] is None and end["duration_s"] is None and end["evidence"] is None
    assert notes.record({**start, "event": "end"}) is None
    assert not (tmp_path / "state" / FILE_NAME).exists()
    assert notes.interrupted("t") == []
    (tmp_path / "state" / FILE_NAME).write_text("{not json")
    assert notes.interrupted("t") == []  # a garbled note is ignored (and logged), never fatal


def test_open_sensor_events_note_follows_each_fault_kind_and_ends_what_is_left_open(tmp_path: Path) -> None:
    notes = OpenSensorEvents(tmp_path / "state")
    path = tmp_path / "state" / SENSOR_FILE_NAME

    def event(event: str, kind: str, event_id: str) -> dict:
        return {"event": event, "kind": kind, "event_id": event_id, "device_id": "d", "source": "microphone",
                "since": "2026-12-03T10:00:00.000Z", "at": "2026-12-03T10:00:10.000Z", "detail": "silent",
                "windows": 1, "time": "2026-12-03T10:00:10.100Z"}

    assert notes.record(event("start", "dead_input", "s-1")) is None
    assert notes.record(event("start", "clipping", "s-2")) is None
    assert sorted(json.loads(path.read_text())) == ["clipping", "dead_input"]
    assert notes.record(event("end", "clipping", "s-2")) is None  # one ends: the other stays noted
    [end] = OpenSensorEvents(tmp_path / "state").interrupted("2026-12-03T11:00:00.000Z")
    assert end["event"] == "end" and end["interrupted"] is True and end["event_id"] == "s-1"
    assert end["kind"] == "dead_input" and end["time"] == "2026-12-03T11:00:00.000Z"
    assert end["at"] == "2026-12-03T10:00:10.000Z"  # the last known: nobody saw the fault end
    assert notes.record(event("end", "dead_input", "s-1")) is None
    assert not path.exists()  # none open: no file
    assert notes.record(event("end", "xrun", "s-9")) is None and not path.exists()  # an end never noted: nothing
    path.write_text("[1, 2]")
    assert notes.interrupted("t") == []  # a foreign note is ignored (and logged), never fatal


def test_open_event_notes_on_a_full_disk_report_instead_of_raising(tmp_path: Path) -> None:
    with SmallDisk(tmp_path / "disk", size_kb=128) as disk:
        os.mkdir(disk.path / "state")
        disk.fill()
        error = OpenAlerts(disk.path / "state").record({"event_id": "e", "event": "start", "note": "x" * 10_000})
        assert error is not None and "No space left" in error
        error = OpenSensorEvents(disk.path / "state").record({"event_id": "s", "event": "start", "kind": "xrun",
                                                              "detail": "x" * 10_000})
        assert error is not None and "No space left" in error
        assert list((disk.path / "state").iterdir()) == []


def test_config_rewrite_on_a_full_disk_leaves_the_config_as_it_was(tmp_path: Path) -> None:
    """``learn --update-config`` when no file can be created (inodes and space gone): a readable error,
    and the very same file, never an in-place rewrite that a power cut could cut in half."""
    from edge_monitor.model.learn import LearnError, set_config_model

    with SmallDisk(tmp_path / "disk", size_kb=128, inodes=64) as disk:
        cfg = disk.path / "config.yaml"
        cfg.write_text(f"device_id: x\nmodel: /old/bundle\nstate_dir: {tmp_path}\n")
        before, inode = cfg.read_bytes(), cfg.stat().st_ino
        disk.fill()
        disk.fill_inodes()
        with pytest.raises(LearnError, match="cannot write"):
            set_config_model(cfg, tmp_path / "new-bundle")
        assert cfg.read_bytes() == before and cfg.stat().st_ino == inode
        disk.free()
        set_config_model(cfg, tmp_path / "new-bundle")  # space back: replaced (a new inode), durably
        assert f"model: {tmp_path / 'new-bundle'}" in cfg.read_text() and cfg.stat().st_ino != inode
