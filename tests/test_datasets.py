"""datasets.find_clips on DCASE, MIMII and flat folders that the tests lay out themselves."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from trainer.datasets import ClipRef, DatasetError, find_clips, normalize_machine_id, summarize


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


# --- DCASE 2021-2025: sections, domains, attributes --------------------------------------------


def wav(path: Path) -> Path:
    """A real, tiny WAV (0.1 s of quiet noise at 16 kHz): the layouts below are read back as audio too."""
    import numpy as np

    from edge_monitor.audio.audio_io import write_wav

    path.parent.mkdir(parents=True, exist_ok=True)
    return write_wav(path, np.random.default_rng(len(path.name)).normal(0, 0.01, 1600).astype(np.float32), 16000)


@pytest.fixture()
def dcase2023(tmp_path: Path) -> Path:
    """2022-2025 layout: train/ and test/, attributes in the names (like the real dev valve set)."""
    root = tmp_path / "dev_data" / "valve"
    wav(root / "train" / "section_00_source_train_normal_0000_pat_00.wav")
    wav(root / "train" / "section_00_target_train_normal_0000_pat_02.wav")
    # Training clips cut from a release's test split keep "test" in their names: the folder decides.
    wav(root / "train" / "section_00_source_test_normal_0007_pat_01.wav")
    wav(root / "test" / "section_00_source_test_normal_0000_pat_00.wav")
    wav(root / "test" / "section_00_source_test_anomaly_0001_pat_01.wav")
    wav(root / "test" / "section_00_target_test_normal_0002_pat_03.wav")
    wav(root / "test" / "section_00_target_test_anomaly_0003_vel_4_loc_A.wav")
    wav(root / "test" / "section_01_target_test_anomaly_0000_noAttribute.wav")
    return root


def test_dcase2023_layout_labels_domains_attributes(dcase2023: Path) -> None:
    from edge_monitor.audio.audio_io import read_wav

    clips = find_clips(dcase2023)
    got = [(c.path.parent.name, c.split, c.machine_id, c.domain, c.label, c.attributes) for c in clips]
    assert got == [
        ("test", "test", "section_00", "source", "anomaly", (("pat", "01"),)),
        ("test", "test", "section_00", "source", "normal", (("pat", "00"),)),
        ("test", "test", "section_00", "target", "anomaly", (("vel", "4"), ("loc", "A"))),
        ("test", "test", "section_00", "target", "normal", (("pat", "03"),)),
        ("test", "test", "section_01", "target", "anomaly", ()),
        ("train", "train", "section_00", "source", "normal", (("pat", "01"),)),  # named "..._test_..."
        ("train", "train", "section_00", "source", "normal", (("pat", "00"),)),
        ("train", "train", "section_00", "target", "normal", (("pat", "02"),)),
    ]
    assert {c.machine for c in clips} == {"valve"}
    assert all(read_wav(c.path).shape == (1600,) for c in clips)  # they are real WAVs
    # The folder, not the name, decides the split.
    assert [c.path.name for c in find_clips(dcase2023, split="train")][0] == "section_00_source_test_normal_0007_pat_01.wav"
    assert find_clips(dcase2023 / "train") == find_clips(dcase2023, split="train")
    assert summarize(clips)[("valve", "section_00", "train", "normal")] == 3


def test_section_ids_select(dcase2023: Path) -> None:
    section0 = find_clips(dcase2023, machine_ids=["section_00"])
    assert len(section0) == 7 and {c.machine_id for c in section0} == {"section_00"}
    # A bare number names the only kind of id the data has.
    assert find_clips(dcase2023, machine_ids=["00"]) == section0
    assert find_clips(dcase2023, machine_ids=[0]) == section0
    assert find_clips(dcase2023, machine_ids=["section_0"]) == section0
    assert [c.machine_id for c in find_clips(dcase2023, machine_ids=["1"])] == ["section_01"]
    with pytest.raises(DatasetError, match=r"no clips for machine id\(s\) id_00; available: section_00, section_01"):
        find_clips(dcase2023, machine_ids=["id_00"])


def test_bare_machine_id_is_ambiguous_when_both_kinds_exist(tmp_path: Path, dcase2023: Path) -> None:
    both = dcase2023.parent
    touch(both / "slider" / "train" / "normal_id_00_00000000.wav")
    with pytest.raises(DatasetError, match=r"machine id '00' is ambiguous here: .* write id_00 or section_00"):
        find_clips(both, machine_ids=["00"])
    assert [c.machine for c in find_clips(both, machine_ids=["id_00"])] == ["slider"]
    assert {c.machine for c in find_clips(both, machine_ids=["section_00"])} == {"valve"}


def test_dcase2021_split_test_folders(tmp_path: Path) -> None:
    root = tmp_path / "dev_data" / "fan"
    wav(root / "train" / "section_00_source_train_normal_0000_strength_1_ambient.wav")
    wav(root / "train" / "section_02_target_train_normal_0001_strength_2_ambient.wav")
    wav(root / "source_test" / "section_00_source_test_normal_0000.wav")
    wav(root / "source_test" / "section_00_source_test_anomaly_0000.wav")
    wav(root / "target_test" / "section_02_target_test_anomaly_0099.wav")
    clips = find_clips(root)
    got = [(c.path.parent.name, c.split, c.machine_id, c.domain, c.label, c.attributes) for c in clips]
    assert got == [
        ("source_test", "test", "section_00", "source", "anomaly", ()),
        ("source_test", "test", "section_00", "source", "normal", ()),
        ("target_test", "test", "section_02", "target", "anomaly", ()),
        # 2021 tails are not key_value pairs: kept whole.
        ("train", "train", "section_00", "source", "normal", (("attributes", "strength_1_ambient"),)),
        ("train", "train", "section_02", "target", "normal", (("attributes", "strength_2_ambient"),)),
    ]
    assert [c.path.name for c in find_clips(root, split="test")] == [c.path.name for c in clips[:3]]
    # One test folder given on its own.
    only = find_clips(root / "target_test")
    assert [(c.machine, c.split, c.domain) for c in only] == [("fan", "test", "target")]
    with pytest.raises(DatasetError, match=r"split='train' requested from a 'test' folder"):
        find_clips(root / "source_test", split="train")
    # A clip in the wrong domain folder is a mistake worth stopping for.
    wav(root / "source_test" / "section_00_target_test_normal_0005.wav")
    with pytest.raises(DatasetError, match=r"a target-domain clip in the source_test folder"):
        find_clips(root)


def test_unlabelled_evaluation_clips_are_skipped_or_refused(tmp_path: Path) -> None:
    root = tmp_path / "eval_data" / "bandsaw"
    wav(root / "train" / "section_00_source_train_normal_0000_vel_15.wav")
    wav(root / "train" / "section_00_target_train_normal_0000_vel_12.wav")
    wav(root / "test" / "section_00_0000.wav")
    wav(root / "test" / "section_00_0001.wav")
    # Default: training on an evaluation set's train/ works; the unlabelled test clips are left out.
    clips = find_clips(root)
    assert [(c.split, c.domain) for c in clips] == [("train", "source"), ("train", "target")]
    with pytest.raises(DatasetError, match=r"test: 2 clip\(s\) without a label in the name \(DCASE evaluation-set "
                                           r"names such as section_00_0000\.wav"):
        find_clips(root, unlabelled="error")
    with pytest.raises(DatasetError, match=r"no labelled WAV files in split 'test' \(2 clip\(s\) without a label"):
        find_clips(root, split="test")
    with pytest.raises(DatasetError, match=r"no labelled WAV files \(2 clip"):
        find_clips(root / "test")
    # 2021 evaluation names keep the domain but not the label.
    wav(tmp_path / "eval21" / "fan" / "source_test" / "section_03_source_test_0000.wav")
    wav(tmp_path / "eval21" / "fan" / "train" / "section_03_source_train_normal_0000_strength_1_ambient.wav")
    assert [c.split for c in find_clips(tmp_path / "eval21" / "fan")] == ["train"]
    with pytest.raises(DatasetError, match=r"source_test: 1 clip\(s\) without a label"):
        find_clips(tmp_path / "eval21" / "fan", unlabelled="error")
    # In train/, a name without a label is not an evaluation clip: an error like any odd name.
    wav(root / "train" / "section_00_0007.wav")
    with pytest.raises(DatasetError, match=r"train: 1 WAV file\(s\) not named .* e\.g\. section_00_0007\.wav"):
        find_clips(root)


def test_flat_folder_of_section_names(tmp_path: Path) -> None:
    root = tmp_path / "clips" / "valve"
    wav(root / "section_00_source_test_anomaly_0000_pat_00.wav")
    wav(root / "section_00_target_test_normal_0000_pat_02.wav")
    wav(root / "normal_id_02_00000000.wav")
    got = [(c.machine_id, c.split, c.domain, c.label) for c in find_clips(root)]
    assert got == [("id_02", None, None, "normal"), ("section_00", None, "source", "anomaly"),
                   ("section_00", None, "target", "normal")]


def test_parse_attributes() -> None:
    from trainer.datasets import parse_attributes

    assert parse_attributes("pat_01") == (("pat", "01"),)
    assert parse_attributes("volt_1.0_wt_30") == (("volt", "1.0"), ("wt", "30"))
    assert parse_attributes("noAttribute") == parse_attributes(None) == parse_attributes("") == ()
    assert parse_attributes("0_g_25_mm_2000_mV_none") == (("attributes", "0_g_25_mm_2000_mV_none"),)
    assert parse_attributes("a__b") == (("attributes", "a__b"),)


def test_real_dev_valve_original_names() -> None:
    from conftest import REPO, require

    valve = REPO.parent / "shared" / "data" / "real-dev" / "valve"
    require(valve.is_dir(), f"real dev valve set {valve} is absent")
    clips = find_clips(valve)
    counts = Counter((c.split, c.domain, c.label) for c in clips)
    # 30 + 30 training normals per domain; 20 normal + 50 anomalous test clips per domain (its README).
    assert counts == {("train", "source", "normal"): 30, ("train", "target", "normal"): 30,
                      ("test", "source", "normal"): 20, ("test", "source", "anomaly"): 50,
                      ("test", "target", "normal"): 20, ("test", "target", "anomaly"): 50}
    assert {c.machine_id for c in clips} == {"section_00"}
    assert {c.attributes for c in clips if c.domain == "source"} == {(("pat", "00"),), (("pat", "01"),)}
    assert {c.attributes for c in clips if c.domain == "target"} == {(("pat", "02"),), (("pat", "03"),)}
    assert all("_test_" in c.path.name for c in clips if c.split == "train")  # the folder decided


def test_normalize_machine_id_sections() -> None:
    assert normalize_machine_id("section_0") == normalize_machine_id("SECTION_00") == "section_00"
    with pytest.raises(DatasetError, match=r"not of the form id_XX, section_XX or XX"):
        normalize_machine_id("section_x")
