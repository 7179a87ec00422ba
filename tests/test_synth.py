"""The synthetic slide-rail generator: layout, determinism, metadata, CLI and physical sanity."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import scipy.signal

from trainer import synth
from trainer.synth import (
    ANOMALY_KINDS,
    FactoryProfile,
    MachineProfile,
    generate_dataset,
    level_dbfs,
    read_metadata,
    render_clip,
    synthesize_clip,
)

SR = synth.SAMPLE_RATE
NAME = re.compile(r"^(normal|anomaly)_(id_\d\d)_(\d{8})\.wav$")


def _tiny(out: Path, seed: int = 0, **kw) -> synth.DatasetSummary:
    args = dict(machine_ids=("id_00", "id_02"), n_train=2, n_test_normal=1, n_test_anomaly=3, seconds=3.0)
    args.update(kw)
    return generate_dataset(out, seed, **args)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _pair(kind: str, seed: int = 0, machine_id: str = "id_00", severity: float = 1.0, clip_seed: int = 5):
    """An anomalous clip and the normal clip of the same take (same clip RNG seed)."""
    machine, factory = MachineProfile.from_seed(seed, machine_id), FactoryProfile.from_seed(seed)
    a, info = synthesize_clip(machine, np.random.default_rng(clip_seed), kind, severity=severity, factory=factory)
    n, _ = synthesize_clip(machine, np.random.default_rng(clip_seed), None, factory=factory)
    return a.astype(np.float64), n.astype(np.float64), info


# --- determinism -------------------------------------------------------------------------


def test_same_seed_writes_bit_identical_files(tmp_path: Path) -> None:
    first, second = _tiny(tmp_path / "a", seed=7), _tiny(tmp_path / "b", seed=7)
    files_a, files_b = _files(first.root), _files(second.root)
    assert len(files_a) == 2 * (2 + 1 + 3) + 2  # clips + metadata.csv + profiles.json
    assert files_a == files_b


def test_different_seeds_differ(tmp_path: Path) -> None:
    a, b = _files(_tiny(tmp_path / "a", seed=1).root), _files(_tiny(tmp_path / "b", seed=2).root)
    assert a.keys() == b.keys()
    wavs = [k for k in a if k.endswith(".wav")]
    assert all(a[k] != b[k] for k in wavs)
    # different machine character too, not only different noise
    assert MachineProfile.from_seed(1, "id_00").cycle_s != MachineProfile.from_seed(2, "id_00").cycle_s


def test_a_clip_does_not_depend_on_the_other_ids_or_counts(tmp_path: Path) -> None:
    both = _tiny(tmp_path / "both", seed=3)
    alone = _tiny(tmp_path / "alone", seed=3, machine_ids=("id_02",), n_train=1, n_test_anomaly=1)
    name = "train/normal_id_02_00000000.wav"
    assert (both.root / name).read_bytes() == (alone.root / name).read_bytes()
    name = "test/anomaly_id_02_00000000.wav"
    assert (both.root / name).read_bytes() == (alone.root / name).read_bytes()


def test_render_clip_is_the_dataset_clip(tmp_path: Path) -> None:
    from edge_monitor.audio.audio_io import read_wav

    summary = _tiny(tmp_path, seed=6, machine_ids=("id_02",), n_train=0, n_test_normal=0, n_test_anomaly=4)
    x, info = render_clip("rail_damage", seed=6, machine_id="id_02", index=3, seconds=3.0)  # kinds cycle: 3 % 3 = 0
    np.testing.assert_allclose(read_wav(summary.root / "test/anomaly_id_02_00000003.wav"), x, atol=1 / 32767)
    assert read_metadata(summary.root)[3]["anomaly_kind"] == info.anomaly_kind == "rail_damage"


# --- layout, loader, metadata ----------------------------------------------------------------


def test_dcase_layout_names_and_format(tmp_path: Path) -> None:
    from edge_monitor.audio.audio_io import read_wav_raw

    summary = _tiny(tmp_path, machine="slider")
    root = tmp_path / "slider"
    assert summary.root == root
    train = sorted(p.name for p in (root / "train").iterdir())
    test = sorted(p.name for p in (root / "test").iterdir())
    assert train == [f"normal_id_0{i}_0000000{j}.wav" for i in (0, 2) for j in (0, 1)]
    assert test == sorted([f"anomaly_id_0{i}_0000000{j}.wav" for i in (0, 2) for j in range(3)]
                          + [f"normal_id_0{i}_00000000.wav" for i in (0, 2)])
    for path in (root / "test").iterdir():
        assert NAME.match(path.name)
        raw = read_wav_raw(path)
        assert (raw.sample_rate, raw.bits, raw.samples.shape) == (16000, 16, (3 * SR, 1))


def test_loader_reads_the_dataset_back_with_labels_and_ids(tmp_path: Path) -> None:
    from trainer.datasets import find_clips

    summary = _tiny(tmp_path)
    rows = {r["file"]: r for r in read_metadata(summary.root)}
    clips = find_clips(summary.root)
    assert len(clips) == len(rows) == summary.total == 12
    for clip in clips:
        row = rows[f"{clip.split}/{clip.path.name}"]
        assert (clip.label, clip.machine_id, clip.machine, clip.split) == (row["label"], row["machine_id"],
                                                                           "slider", row["split"])
    assert {c.label for c in find_clips(summary.root, split="train")} == {"normal"}
    assert len(find_clips(summary.root, split="test", machine_ids=["id_02"])) == 4


def test_metadata_records_each_clips_generation_parameters(tmp_path: Path) -> None:
    summary = _tiny(tmp_path, seed=5, n_test_anomaly=6)
    rows = read_metadata(summary.root)
    assert list(rows[0]) == list(synth.METADATA_COLUMNS)
    anomalies = [r for r in rows if r["label"] == "anomaly"]
    # kinds cycle, so each is represented equally
    assert sorted(r["anomaly_kind"] for r in anomalies) == sorted(list(ANOMALY_KINDS) * 4)
    for r in rows:
        machine = MachineProfile.from_seed(5, r["machine_id"])
        assert float(r["cycle_s"]) == pytest.approx(machine.cycle_s, abs=1e-4)
        assert 1.0 <= float(r["cycle_s"]) <= 3.0
        assert float(r["pass_period_s"]) == pytest.approx(float(r["cycle_s"]) / 2, abs=1e-4)
        assert float(r["snr_db"]) == 6.0 and float(r["seconds"]) == 3.0
        kind = r["anomaly_kind"]
        assert (r["squeal_hz"] != "") == (kind == "missing_grease")
        assert (r["damage_position"] != "") == (kind == "rail_damage")
        assert float(r["severity"]) == (1.0 if kind else 0.0)
        if kind == "missing_grease":
            assert 1000 < float(r["squeal_hz"]) < 5000
        if kind == "rail_damage":
            assert 0.47 <= float(r["damage_position"]) <= 0.53
            assert int(r["n_damage_clicks"]) >= 2
    cycles = {r["machine_id"]: r["cycle_s"] for r in rows}
    assert cycles["id_00"] != cycles["id_02"]  # machine character differs per id


def test_bad_parameters_are_refused_with_a_clear_message(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="machine id 'pump' is not of the form id_NN"):
        _tiny(tmp_path, machine_ids=("pump",))
    with pytest.raises(ValueError, match="unknown anomaly kind 'rust'"):
        _tiny(tmp_path, kinds=("rust",))
    with pytest.raises(ValueError, match="severity must be >= 0"):
        render_clip("rail_damage", severity=-1.0, seconds=1.0)


# --- the command line ------------------------------------------------------------------


def test_cli_writes_what_it_says(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from trainer import cli

    rc = cli.main(["synth", str(tmp_path / "out"), "--seed", "4", "--machine-ids", "id_04", "2",
                   "--train", "2", "--test-normal", "1", "--test-anomaly", "2", "--kinds", "loose_belt",
                   "missing_grease", "--seconds", "2", "--machine", "rail"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    root = tmp_path / "out" / "rail"
    assert f"wrote 10 clips to {root}" in captured.out
    assert "synthesising" in captured.err and "10/10" in captured.err
    # every line of the summary table matches the files on disk
    table = {}
    for line in captured.out.splitlines():
        parts = line.split()
        if len(parts) == 5 and parts[0].startswith("id_"):
            table[tuple(parts[:4])] = int(parts[4])
    on_disk: dict[tuple[str, str, str, str], int] = {}
    for r in read_metadata(root):
        key = (r["machine_id"], r["split"], r["label"], r["anomaly_kind"] or "normal")
        on_disk[key] = on_disk.get(key, 0) + 1
        assert (root / r["file"]).is_file()
    assert table == on_disk
    assert table[("id_02", "test", "anomaly", "loose_belt")] == 1
    assert table[("id_04", "test", "anomaly", "missing_grease")] == 1
    assert sum(1 for _ in root.rglob("*.wav")) == 10


def test_cli_rejects_a_bad_machine_id(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from trainer import cli

    rc = cli.main(["synth", str(tmp_path), "--seed", "0", "--machine-ids", "slider"])
    assert rc == 2
    assert "edge-monitor-train synth: machine id 'slider' is not of the form id_NN" in capsys.readouterr().err
    assert not list(tmp_path.rglob("*.wav"))


# --- physical sanity -----------------------------------------------------------------------


def test_severity_zero_sounds_exactly_normal() -> None:
    for kind in ANOMALY_KINDS:
        a, n, _ = _pair(kind, severity=0.0)
        np.testing.assert_array_equal(a, n)


def test_anomaly_component_grows_with_severity() -> None:
    for kind in ("rail_damage", "missing_grease"):
        energies = []
        for severity in (0.3, 1.0, 2.0):
            a, n, _ = _pair(kind, severity=severity)
            energies.append(np.sum((a - n) ** 2))
        assert energies[0] < energies[1] < energies[2]
        # the component's amplitude goes with severity ** 1.5: energy with severity ** 3
        assert energies[2] / energies[1] == pytest.approx(8.0, rel=0.1)


def _psd_db(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    f, p = scipy.signal.welch(x, SR, nperseg=4096)
    return f, 10 * np.log10(p + 1e-20)


@pytest.mark.parametrize("machine_id", ["id_00", "id_02", "id_04"])
def test_squeal_frequency_is_a_spectral_peak_only_when_grease_is_missing(machine_id: str) -> None:
    a, n, info = _pair("missing_grease", seed=1, machine_id=machine_id)
    f, pa = _psd_db(a)
    _, pn = _psd_db(n)
    at = np.abs(f - info.squeal_hz) <= 2 * (f[1] - f[0])
    around = (np.abs(f - info.squeal_hz) > 150) & (np.abs(f - info.squeal_hz) < 400)
    assert pa[at].max() - np.median(pa[around]) > 10.0, "no squeal peak in the missing-grease clip"
    assert pn[at].max() - np.median(pn[around]) < 4.0, "a peak at the squeal frequency in the normal clip"
    assert pa[at].max() - pn[at].max() > 10.0
    # its 2nd harmonic is there too (when below Nyquist)
    if 2 * info.squeal_hz < 7600:
        at2 = np.abs(f - 2 * info.squeal_hz) <= 4 * (f[1] - f[0])
        assert pa[at2].max() - pn[at2].max() > 6.0


@pytest.mark.parametrize("machine_id", ["id_00", "id_04"])
def test_rail_damage_clicks_repeat_at_the_pass_period(machine_id: str) -> None:
    a, n, info = _pair("rail_damage", seed=2, machine_id=machine_id)
    period = info.pass_period_s
    # the recorded click times are one pass apart
    assert len(info.damage_times_s) >= int(10.0 / period) - 1
    np.testing.assert_allclose(np.diff(info.damage_times_s), period, rtol=0.1)
    # and the sound agrees: the envelope of what the damage adds repeats at the pass period
    hop = 512  # 32 ms, the log-mel hop
    d = (a - n)[: len(a) // hop * hop].reshape(-1, hop)
    env = np.sqrt(np.mean(d ** 2, axis=1))
    env -= env.mean()
    ac = np.correlate(env, env, "full")[len(env) - 1:]
    ac /= ac[0]
    lo, hi = int(0.5 * period * SR / hop), int(1.5 * period * SR / hop) + 1
    lag = (lo + int(np.argmax(ac[lo:hi]))) * hop / SR
    assert lag == pytest.approx(period, rel=0.1)
    assert ac[int(round(lag * SR / hop))] > 0.4
    # each recorded click is where the added energy is
    frames = (np.asarray(info.damage_times_s) * SR / hop).astype(int)
    assert np.all(np.maximum(env[frames], env[np.minimum(frames + 1, len(env) - 1)]) > np.percentile(env, 80))


def test_loose_belt_changes_the_timing_of_the_strokes() -> None:
    machine = MachineProfile.from_seed(0, "id_00")
    stops = []
    for kind in (None, "loose_belt"):
        _, info = synthesize_clip(machine, np.random.default_rng(9), kind)
        stops.append(np.diff(info.stop_times_s))
    assert np.std(stops[1]) > 3 * np.std(stops[0])


def test_clip_is_float32_mono_of_the_asked_length_and_never_clips() -> None:
    for kind in (None, *ANOMALY_KINDS):
        x, info = render_clip(kind, seed=0, machine_id="id_02", seconds=4.0)
        assert x.dtype == np.float32 and x.shape == (4 * SR,)
        assert np.max(np.abs(x)) < 0.6  # the default severity stays below the soft limiter's knee
        assert info.level_dbfs == pytest.approx(level_dbfs(x))
        # even very strong anomalies stay off digital full scale (the sensor checks would call it clipping)
        loud, _ = render_clip(kind, seed=0, machine_id="id_02", severity=6.0, seconds=4.0)
        assert np.max(np.abs(loud)) <= 0.95


def _band_levels(x: np.ndarray) -> np.ndarray:
    """Mean Welch PSD (dB) in octave bands from 44 Hz to 8 kHz."""
    edges = [44, 88, 177, 355, 710, 1420, 2840, 5680, 8000]
    f, p = scipy.signal.welch(x, SR, nperseg=2048)
    return np.array([10 * np.log10(p[(f >= lo) & (f < hi)].mean()) for lo, hi in zip(edges[:-1], edges[1:])])


def test_level_and_spectrum_are_close_to_the_real_slider_clips(real_samples: Path) -> None:
    from edge_monitor.audio.audio_io import read_wav

    real = [read_wav(p) for p in sorted((real_samples / "slider").glob("normal_*.wav"))]
    assert real, "no real slider clips"
    fake = [render_clip(None, seed=0, machine_id=mid, index=i)[0] for mid in ("id_00", "id_02", "id_04")
            for i in range(2)]
    real_level = np.mean([level_dbfs(x) for x in real])
    fake_level = np.mean([level_dbfs(x) for x in fake])
    assert abs(real_level - fake_level) < 2.0, (real_level, fake_level)
    diff = np.mean([_band_levels(x) for x in fake], axis=0) - np.mean([_band_levels(x) for x in real], axis=0)
    assert np.max(np.abs(diff)) < 5.0, f"octave band differences (dB): {np.round(diff, 1)}"


def test_summary_table_counts_clips() -> None:
    summary = synth.DatasetSummary(root=Path("x"), machine="slider", seed=0,
                                   counts={("id_00", "train", "normal", "normal"): 3,
                                           ("id_00", "test", "anomaly", "loose_belt"): 2})
    text = summary.table()
    assert summary.total == 5
    assert re.search(r"id_00\s+test\s+anomaly\s+loose_belt\s+2", text)
    assert re.search(r"id_00\s+train\s+normal\s+normal\s+3", text)
    assert re.search(r"total\s+5", text)
