"""Pseudo-anomalies: each kind changes what it should, and nothing else (edge_monitor.model.pseudo)."""

from __future__ import annotations

import numpy as np
import pytest

from edge_monitor.model import pseudo
from edge_monitor.model.pseudo import band_power

SR = 16000
N = SR * 10


def _noise(seed: int = 0) -> np.ndarray:
    """10 s of white noise at -30 dBFS: the same power in every band."""
    return (0.03 * np.random.default_rng(seed).standard_normal(N)).astype(np.float32)


def _db(x: np.ndarray, lo: float, hi: float) -> float:
    return 10 * np.log10(band_power(x, SR, lo, hi))


def _frame_db(x: np.ndarray, lo: float, hi: float, hop: int = 256) -> np.ndarray:
    part = pseudo._bandpass(x, SR, lo, hi)
    return pseudo._frame_db(part, hop)


def test_a_tone_adds_energy_in_its_band_only() -> None:
    x = _noise()
    y = pseudo.tone(x, SR, 1000.0, level_db=0.0)
    # 0 dB: the tone's power equals the noise's within +-10 % of 1 kHz, so that band doubles.
    assert _db(y, 900, 1100) - _db(x, 900, 1100) == pytest.approx(3.0, abs=0.3)
    assert abs(_db(y, 3000, 4000) - _db(x, 3000, 4000)) < 0.05
    spectrum = np.abs(np.fft.rfft(y - x))
    assert np.fft.rfftfreq(N, 1 / SR)[np.argmax(spectrum)] == pytest.approx(1000.0, abs=0.2)


def test_clicks_add_energy_at_their_times_in_their_band() -> None:
    x = _noise()
    times = np.arange(0.5, 9.5, 1.0)
    y = pseudo.clicks(x, SR, times, 2000.0, 4000.0, level_db=10.0, decay_s=0.003, rng=np.random.default_rng(1))
    before, after = _frame_db(x, 2000, 4000), _frame_db(y, 2000, 4000)
    at = (times * SR / 256).astype(int)
    assert np.all(after[at] - before[at] > 6.0)
    between = ((times + 0.5) * SR / 256).astype(int)
    assert np.all(np.abs(after[between] - before[between]) < 0.1)
    assert abs(_db(y, 200, 1000) - _db(x, 200, 1000)) < 0.05


def test_band_noise_raises_its_band_by_the_level_asked() -> None:
    x = _noise()
    y = pseudo.band_noise(x, SR, 500.0, 1000.0, level_db=0.0, rng=np.random.default_rng(2))
    assert _db(y, 550, 950) - _db(x, 550, 950) == pytest.approx(3.0, abs=0.3)
    assert abs(_db(y, 2000, 6000) - _db(x, 2000, 6000)) < 0.05


@pytest.mark.parametrize("gain", [-6.0, 4.0])
def test_a_level_step_changes_its_band_by_the_gain(gain: float) -> None:
    x = _noise()
    y = pseudo.level_step(x, SR, 1000.0, 2000.0, gain)
    assert _db(y, 1050, 1950) - _db(x, 1050, 1950) == pytest.approx(gain, abs=0.05)
    assert abs(_db(y, 3000, 6000) - _db(x, 3000, 6000)) < 0.05


def _clicking_machine() -> tuple[np.ndarray, np.ndarray]:
    """Steady noise plus a 2-4 kHz click every second (a valve); the clicks' frame indices (hop 256)."""
    x = _noise(3)
    times = np.arange(0.25, 10.0, 1.0)
    y = pseudo.clicks(x, SR, times, 2000.0, 4000.0, level_db=15.0, decay_s=0.004, rng=np.random.default_rng(4))
    return y, (times * SR / 256).astype(int)


def test_a_removed_event_removes_it_and_keeps_the_sound_around_it() -> None:
    x, at = _clicking_machine()
    y = pseudo.remove_events(x, SR, depth_db=30.0)
    assert y is not None
    before, after = _frame_db(x, 2000, 4000), _frame_db(y, 2000, 4000)
    assert np.all(before[at] - after[at] > 8.0)  # the clicks are gone ...
    # ... brought most of the way down to the steady level (they stood ~15 dB above it)
    assert np.median(after[at]) - np.median(before) < 6.0
    between = at + int(0.5 * SR / 256)
    assert np.all(np.abs(after[between] - before[between]) < 0.2)


def test_a_steady_sound_has_no_event_to_remove() -> None:
    assert pseudo.remove_events(_noise(), SR, depth_db=20.0) is None
    assert pseudo.synthesize("event_removed", _noise(), SR, np.random.default_rng(0)) is None


def test_a_speed_change_moves_a_tone_by_the_factor() -> None:
    t = np.arange(N) / SR
    x = (0.1 * np.sin(2 * np.pi * 1000.0 * t)).astype(np.float32)
    for factor in (0.97, 1.03):
        y = pseudo.speed_change(x, factor)
        assert y.shape == x.shape and y.dtype == np.float32
        peak = np.fft.rfftfreq(N, 1 / SR)[np.argmax(np.abs(np.fft.rfft(y)))]
        assert peak == pytest.approx(1000.0 * factor, rel=1e-3)


def test_another_machine_is_mixed_in_at_the_level_asked() -> None:
    x, other = _noise(5), _noise(6)
    y = pseudo.mix_in(x, 3 * other, level_db=-6.0)
    added = 10 * np.log10(np.mean((y.astype(np.float64) - x) ** 2) / np.mean(x.astype(np.float64) ** 2))
    assert added == pytest.approx(-6.0, abs=0.05)


@pytest.mark.parametrize("kind", pseudo.KINDS)
def test_every_kind_changes_the_window_and_is_deterministic(kind: str) -> None:
    x, _ = _clicking_machine()
    other = _noise(7)
    a = pseudo.synthesize(kind, x, SR, np.random.default_rng(11), other)
    b = pseudo.synthesize(kind, x, SR, np.random.default_rng(11), other)
    assert a is not None and b is not None and a.kind == kind
    assert a.samples.shape == x.shape and a.samples.dtype == np.float32
    assert np.array_equal(a.samples, b.samples) and a.detail == b.detail
    assert np.sqrt(np.mean((a.samples.astype(np.float64) - x) ** 2)) > 1e-4


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown pseudo-anomaly kind"):
        pseudo.synthesize("gremlin", _noise(), SR, np.random.default_rng(0))
