"""Ring buffer: every window's content and timestamps from a ramp, no loss, no duplication."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from edge_monitor.audio.ring_buffer import RingBuffer

SR = 100  # samples per second: small numbers keep the arithmetic readable


def ramp(start: int, n: int) -> np.ndarray:
    """Samples whose value is their absolute index (exact in float32 below 2**24)."""
    return np.arange(start, start + n, dtype=np.float32)


@pytest.mark.parametrize("window,hop,block", [(1000, 1000, 37), (1000, 200, 37), (1000, 200, 1), (1000, 333, 512),
                                              (1000, 1, 64)])
def test_ramp_every_window_exact(window: int, hop: int, block: int) -> None:
    ring = RingBuffer(window, hop, SR, capacity=window + max(hop, 600))
    t0 = 1_700_000_000.0
    total = 10 * window + 123
    got = []
    written = 0
    while written < total:
        n = min(block, total - written)
        # Each block carries the wall time of its first sample, as the PortAudio callback does.
        ring.write(ramp(written, n), first_sample_time=t0 + written / SR)
        written += n
        while (w := ring.read(timeout=0)) is not None:
            got.append(w)
    expected_count = (total - window) // hop + 1
    assert len(got) == expected_count
    for i, w in enumerate(got):
        assert w.index == i
        assert w.start_sample == i * hop
        assert w.samples.shape == (window, 1)
        np.testing.assert_array_equal(w.samples[:, 0], ramp(i * hop, window))
        assert w.start_time == pytest.approx(t0 + i * hop / SR, abs=1e-6)
        assert w.end_time == pytest.approx(t0 + (i * hop + window) / SR, abs=1e-6)
    assert ring.overruns == 0
    # Union of the hops covers the stream once: consecutive windows overlap by exactly window - hop.
    for a, b in zip(got, got[1:]):
        assert b.start_sample - a.start_sample == hop


def test_timestamps_extrapolate_without_anchor_and_follow_new_anchor() -> None:
    ring = RingBuffer(10, 10, SR, capacity=40)
    ring.write(ramp(0, 10), first_sample_time=50.0)
    ring.write(ramp(10, 10))  # no time: continues the time line
    w0, w1 = ring.read(timeout=0), ring.read(timeout=0)
    assert (w0.start_time, w0.end_time) == pytest.approx((50.0, 50.1))
    assert (w1.start_time, w1.end_time) == pytest.approx((50.1, 50.2))
    ring.write(ramp(20, 10), first_sample_time=60.0)  # the wall clock jumped (drift correction)
    w2 = ring.read(timeout=0)
    assert w2.start_time == pytest.approx(60.0)


def test_multichannel_frames_stay_together() -> None:
    ring = RingBuffer(50, 25, SR, channels=3, capacity=200)
    x = np.stack([ramp(0, 300), -ramp(0, 300), ramp(0, 300) * 2], axis=1)
    wins = []
    for i in range(0, 300, 7):
        ring.write(x[i:i + 7])
        while (w := ring.read(timeout=0)) is not None:
            wins.append(w)
    assert len(wins) == (300 - 50) // 25 + 1
    for w in wins:
        np.testing.assert_array_equal(w.samples, x[w.start_sample:w.start_sample + 50])


def test_consumer_too_slow_counts_overruns_and_skips_to_newest_full_window() -> None:
    ring = RingBuffer(100, 50, SR, capacity=200)
    ring.write(ramp(0, 1000))  # far more than the ring holds, nobody reading
    w = ring.read(timeout=0)
    assert w is not None
    # The newest complete window on the hop grid that the ring still holds.
    assert w.start_sample % 50 == 0
    assert 1000 - 200 <= w.start_sample <= 1000 - 100
    np.testing.assert_array_equal(w.samples[:, 0], ramp(w.start_sample, 100))
    assert ring.overruns == w.start_sample // 50
    assert w.index == w.start_sample // 50


def test_reset_starts_windows_at_next_sample_and_bumps_epoch() -> None:
    ring = RingBuffer(10, 10, SR, capacity=40)
    ring.write(ramp(0, 15))
    assert ring.read(timeout=0).start_sample == 0
    ring.reset(now=100.0)
    ring.write(ramp(1000, 10), first_sample_time=100.0)
    w = ring.read(timeout=0)
    assert w.epoch == 1 and w.index == 0 and w.start_sample == 0
    np.testing.assert_array_equal(w.samples[:, 0], ramp(1000, 10))  # nothing of the old stream


def test_xruns_are_attributed_to_the_window_they_arrived_in() -> None:
    ring = RingBuffer(10, 10, SR, capacity=40)
    ring.write(ramp(0, 10))
    ring.note_xrun()
    ring.note_xrun()
    assert ring.read(timeout=0).xruns == 2
    ring.write(ramp(10, 10))
    assert ring.read(timeout=0).xruns == 0
    assert ring.xruns == 2


def test_blocking_producer_in_a_thread_loses_nothing_and_close_ends_the_stream() -> None:
    ring = RingBuffer(400, 100, SR, capacity=600)
    total = 20_000

    def produce() -> None:
        for i in range(0, total, 50):
            assert ring.write_blocking(ramp(i, 50))
        ring.close()

    t = threading.Thread(target=produce)
    t.start()
    got = []
    while (w := ring.read(timeout=5)) is not None:
        got.append(w)
    t.join()
    assert len(got) == (total - 400) // 100 + 1
    for i, w in enumerate(got):
        np.testing.assert_array_equal(w.samples[:, 0], ramp(i * 100, 400))
    assert ring.overruns == 0


def test_invalid_geometry_is_refused() -> None:
    with pytest.raises(ValueError):
        RingBuffer(100, 101, SR)
    with pytest.raises(ValueError):
        RingBuffer(100, 0, SR)
    with pytest.raises(ValueError):
        RingBuffer(100, 50, SR, capacity=120)


def test_windowing_builds_the_ring_and_a_closed_ring_is_exhausted_after_its_last_window() -> None:
    from edge_monitor.audio.ring_buffer import Windowing

    ring = Windowing(window_seconds=2.0, hop_seconds=5.0).ring(SR, 3)
    assert (ring.window, ring.hop, ring.channels) == (2 * SR, 2 * SR, 3)  # the hop never exceeds the window
    ring.write(np.zeros((5 * SR, 3), np.float32), 0.0)
    ring.close()
    assert not ring.exhausted  # two full windows are still there
    assert ring.read(timeout=0) is not None and ring.read(timeout=0) is not None
    assert ring.exhausted and ring.read(timeout=0) is None
