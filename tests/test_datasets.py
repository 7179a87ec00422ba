"""datasets.find_clips on DCASE, MIMII and flat folders that the tests lay out themselves."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_monitor.datasets import ClipRef, DatasetError, find_clips, normalize_machine_id, summarize


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIFF")  # the loader only looks at names; reading is audio_io's job
    return path


@pytest.fixture()
def dcase(tmp_path: Path) -> Path:
    root = tmp_path / "dev_data" / "slider"
    for mid in ("00", "02"):
        for i in range(3):
            touch(root / "train" / f"normal_id_{mid}_{i:08d}.wav")
        touch(root / "test" / f"normal_id_{mid}_{0:08d}.wav")
        touch(root / "test" / f"anomaly_id_{mid}_{0:08d}.wav")
        touch(root / "test" / f"anomaly_id_{mid}_{1:08d}.wav")
    (root / "train" / "readme.txt").write_text("not audio")  # ignored: not a WAV
    return root


@pytest.fixture()
def mimii(tmp_path: Path) -> Path:
    root = tmp_path / "6_dB_fan" / "fan"
    for mid in ("id_00", "id_04"):
        for i in range(2):
            touch(root / mid / "normal" / f"{i:08d}.wav")
        touch(root / mid / "abnormal" / f"{0:08d}.wav")
    return root


def test_dcase_layout(dcase: Path) -> None:
    clips = find_clips(dcase)
    assert len(clips) == 12
    assert clips == sorted(clips, key=lambda c: c.path)
    assert {c.machine for c in clips} == {"slider"}
    assert {c.machine_id for c in clips} == {"id_00", "id_02"}
    train = [c for c in clips if c.split == "train"]
    assert len(train) == 6 and {c.label for c in train} == {"normal"}
    test = find_clips(dcase, split="test")
    assert [(c.machine_id, c.label) for c in test] == [
        ("id_00", "anomaly"), ("id_00", "anomaly"), ("id_02", "anomaly"), ("id_02", "anomaly"),
        ("id_00", "normal"), ("id_02", "normal"),
    ]  # sorted by path: anomaly_* before normal_*
    assert all(c.split == "test" and c.path.parent.name == "test" for c in test)
    one = find_clips(dcase, split="train", machine_ids=["02"])
    assert len(one) == 3 and all(c.machine_id == "id_02" for c in one)
    assert find_clips(dcase, machine_ids=[2]) == find_clips(dcase, machine_ids=["id_02"])


def test_dcase_clipref_fields(dcase: Path) -> None:
    c = find_clips(dcase, split="test", machine_ids=["id_00"])[-1]
    assert c == ClipRef(dcase / "test" / "normal_id_00_00000000.wav", "normal", "slider", "id_00", "test")


def test_mimii_layout(mimii: Path) -> None:
    clips = find_clips(mimii)
    assert len(clips) == 6
    assert {(c.machine, c.split) for c in clips} == {("fan", None)}
    assert sorted((c.machine_id, c.label) for c in clips) == [
        ("id_00", "anomaly"), ("id_00", "normal"), ("id_00", "normal"),
        ("id_04", "anomaly"), ("id_04", "normal"), ("id_04", "normal"),
    ]
    assert all((c.label == "anomaly") == (c.path.parent.name == "abnormal") for c in clips)
    assert [c.machine_id for c in find_clips(mimii, machine_ids=["4"])] == ["id_04"] * 3
    with pytest.raises(DatasetError, match="split='train' requested, but this MIMII layout"):
        find_clips(mimii, split="train")


def test_one_part_of_a_machine_folder(dcase: Path, mimii: Path) -> None:
    """<machine>/train, <machine>/test or MIMII <machine>/id_XX given on their own."""
    train = find_clips(dcase / "train")
    assert train == find_clips(dcase, split="train")
    assert {(c.machine, c.split) for c in train} == {("slider", "train")}
    with pytest.raises(DatasetError, match="split='test' requested from a 'train' folder"):
        find_clips(dcase / "train", split="test")
    one_id = find_clips(mimii / "id_04")
    assert one_id == find_clips(mimii, machine_ids=["id_04"])
    assert {(c.machine, c.machine_id) for c in one_id} == {("fan", "id_04")}


def test_flat_folder_and_parent_of_machines(tmp_path: Path) -> None:
    root = tmp_path / "real-samples"
    touch(root / "slider" / "normal_id_02_00000000.wav")
    touch(root / "slider" / "anomaly_id_04_00000170.wav")
    touch(root / "ToyCar" / "normal_id_01_00000000.wav")
    slider = find_clips(root / "slider")
    assert [(c.label, c.machine, c.machine_id, c.split) for c in slider] == [
        ("anomaly", "slider", "id_04", None), ("normal", "slider", "id_02", None),
    ]
    both = find_clips(root)
    assert [c.machine for c in both] == ["ToyCar", "slider", "slider"]
    # A parent of a DCASE machine folder works too.
    touch(tmp_path / "dev" / "valve" / "train" / "normal_id_00_00000000.wav")
    assert [c.machine for c in find_clips(tmp_path / "dev", split="train")] == ["valve"]


def test_real_samples_folder(real_samples: Path) -> None:
    clips = find_clips(real_samples / "slider")
    assert len(clips) == len(list((real_samples / "slider").glob("*.wav")))
    assert {c.label for c in clips} == {"normal", "anomaly"}
    assert {c.machine for c in clips} == {"slider"}
    assert all(c.machine_id in c.path.name for c in clips)
    counts = summarize(find_clips(real_samples))
    assert {k[0] for k in counts} >= {"slider", "fan", "pump", "valve", "ToyCar", "ToyConveyor"}
    assert sum(counts.values()) == len(list(real_samples.glob("*/*.wav")))


def test_summarize(dcase: Path) -> None:
    counts = summarize(find_clips(dcase))
    assert counts[("slider", "id_00", "train", "normal")] == 3
    assert counts[("slider", "id_02", "test", "anomaly")] == 2
    assert list(counts) == sorted(counts, key=lambda k: tuple("" if v is None else v for v in k))


def test_errors(tmp_path: Path, dcase: Path) -> None:
    with pytest.raises(DatasetError, match=r"nowhere: no such folder"):
        find_clips(tmp_path / "nowhere")
    f = touch(tmp_path / "file.wav")
    with pytest.raises(DatasetError, match=r"file\.wav: not a folder"):
        find_clips(f)
    other = tmp_path / "other"
    touch(other / "stuff" / "a.txt")
    with pytest.raises(DatasetError, match=r"other: neither DCASE layout .* nor MIMII layout"):
        find_clips(other)
    empty = tmp_path / "empty_machine"
    (empty / "train").mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"empty_machine: no WAV files"):
        find_clips(empty)
    with pytest.raises(DatasetError, match=r"no WAV files in split 'test'"):
        find_clips(empty, split="test")
    with pytest.raises(DatasetError, match=r"no clips for machine id\(s\) id_07; available: id_00, id_02"):
        find_clips(dcase, machine_ids=["id_07"])
    with pytest.raises(DatasetError, match=r"machine id 'pump' is not of the form"):
        find_clips(dcase, machine_ids=["pump"])
    with pytest.raises(DatasetError, match=r"split must be"):
        find_clips(dcase, split="eval")  # type: ignore[arg-type]
    touch(dcase / "test" / "id_00_00000099.wav")  # DCASE eval naming: no label in the name
    with pytest.raises(DatasetError, match=r"test: 1 WAV file\(s\) not named .* e\.g\. id_00_00000099\.wav"):
        find_clips(dcase)


def test_normalize_machine_id() -> None:
    assert [normalize_machine_id(v) for v in ("id_04", "04", "4", 4, "ID_4")] == ["id_04"] * 5
