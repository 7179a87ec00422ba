"""A single-producer, single-consumer ring of audio samples cut into windows.

The producer is the PortAudio callback (or the WAV replay thread); it only
copies samples into a preallocated array and advances a counter. The consumer
(the scoring loop) takes a window of ``window`` samples every ``hop`` samples:
window ``i`` covers absolute sample indices ``[i * hop, i * hop + window)``
counted from the first sample written (or from the last :meth:`RingBuffer.reset`),
so consecutive windows neither lose nor duplicate a sample (with ``hop ==
window`` they tile the stream; with ``hop < window`` they overlap by exactly
``window - hop``).

Timestamps. Each write may carry the wall-clock time (Unix seconds) of its
first sample. The ring keeps the latest such anchor ``(index, time)`` and
dates sample ``j`` as ``anchor_time + (j - anchor_index) / sample_rate``, so a
window's times follow the audio clock between anchors and re-align to the
wall clock on every block (no drift over months). Without a time the ring
extrapolates from the previous anchor (the replay source does that: its stream
time is the start time plus the samples played).

Thread safety. Python's GIL makes the copy and the counter update atomic
enough for one producer and one consumer; the only lock is inside
:class:`threading.Event`, held for a few instructions. The consumer detects
that the producer overwrote the window while it was being copied (a consumer
more than ``capacity - window`` samples behind) and counts it as an overrun
instead of returning torn data.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

__all__ = ["Window", "RingBuffer", "Windowing"]


@dataclass(frozen=True)
class Window:
    """One scored window.

    Attributes:
        samples: float32 raw audio as captured, shape ``(window, channels)``
            at ``sample_rate`` (the scoring loop checks the raw channels for
            sensor faults, then downmixes and resamples).
        index: window number since the stream (re)started (0, 1, ...).
        start_sample: absolute index of the first sample.
        sample_rate: Hz.
        start_time: wall-clock time of the first sample (Unix s).
        end_time: wall-clock time just after the last sample (Unix s).
        xruns: input overflows the source reported while this window's
            newest ``hop`` samples arrived.
        epoch: increments on every :meth:`RingBuffer.reset` (device restart).
        bad: ``(window,)`` bool, True for samples that are not the machine's
            sound (a dropout's exact zeros); set by the sensor check
            (``dataclasses.replace``), ``None`` (all good) as the ring cuts it.
            The model leaves the frames they touch out of the score.
    """

    samples: np.ndarray
    index: int
    start_sample: int
    sample_rate: int
    start_time: float
    end_time: float
    xruns: int = 0
    epoch: int = 0
    bad: np.ndarray | None = None


@dataclass(frozen=True)
class Windowing:
    """How a stream is cut into windows: ``window_seconds`` long, one every ``hop_seconds``.

    A source builds its own ring from it once it knows the device's rate and
    channel count (:meth:`ring`).
    """

    window_seconds: float
    hop_seconds: float

    def ring(self, sample_rate: int, channels: int) -> RingBuffer:
        """A ring for a stream at ``sample_rate`` Hz with ``channels`` channels (hop capped at the window)."""
        window = int(round(self.window_seconds * sample_rate))
        hop = min(window, max(1, int(round(self.hop_seconds * sample_rate))))
        return RingBuffer(window, hop, sample_rate, channels)


class RingBuffer:
    """Last ``capacity`` samples of a stream, read as windows every ``hop`` samples.

    Args:
        window: samples per window (the model's window length).
        channels: channels per sample frame.
        hop: samples between window starts, ``1 <= hop <= window``.
        sample_rate: Hz, for timestamps.
        capacity: ring length in samples; default ``window + max(hop, 30 s)``:
            the slack is how far the scoring loop may fall behind before
            samples are overwritten (a slow window on a loaded Pi).
    """

    def __init__(self, window: int, hop: int, sample_rate: int, channels: int = 1, capacity: int | None = None):
        if window <= 0 or not 1 <= hop <= window:
            raise ValueError(f"need window > 0 and 1 <= hop <= window, got window={window}, hop={hop}")
        self.window, self.hop, self.sample_rate = int(window), int(hop), int(sample_rate)
        slack = max(self.hop, 30 * self.sample_rate)
        self.capacity = int(capacity) if capacity is not None else self.window + slack
        if self.capacity < self.window + self.hop:
            raise ValueError(f"capacity {self.capacity} must hold window + hop = {self.window + self.hop} samples")
        self.channels = int(channels)
        self._buf = np.zeros((self.capacity, self.channels), dtype=np.float32)
        self._data_ready = threading.Event()   # producer -> consumer
        self._space_free = threading.Event()   # consumer -> blocking producer (replay --fast)
        self._closed = False
        self.epoch = 0
        self.overruns = 0  # windows lost because the consumer fell behind
        self.xruns = 0  # total input overflows reported by the source
        self._reset_counters(0.0)

    def _reset_counters(self, now: float | None) -> None:
        self._written = 0  # absolute index of the next sample to write
        self._next_start = 0  # absolute index where the next window starts
        self._next_index = 0
        self._anchor_index = 0
        self._anchor_time = time.time() if now is None else now
        self._anchored = False
        self._xruns_at_last_window = self.xruns

    # --- producer side ------------------------------------------------------------

    def write(self, samples: np.ndarray, first_sample_time: float | None = None) -> None:
        """Append float32 ``samples`` of shape ``(n, channels)`` (or ``(n,)`` when mono).

        Never blocks and never allocates: the audio callback calls this.

        ``first_sample_time``: wall-clock time of ``samples[0]`` (Unix s), or
        ``None`` to continue the current time line.
        """
        n = samples.shape[0]
        if n == 0:
            return
        if samples.ndim == 1:
            samples = samples[:, None]
        w = self._written
        if first_sample_time is not None:
            self._anchor_index, self._anchor_time, self._anchored = w, first_sample_time, True
        elif not self._anchored:
            self._anchor_index, self._anchor_time, self._anchored = w, time.time(), True
        if n >= self.capacity:  # absurdly large block: keep its newest part
            samples = samples[n - self.capacity:]
            w += n - self.capacity
            n = self.capacity
        pos = w % self.capacity
        first = min(n, self.capacity - pos)
        self._buf[pos:pos + first] = samples[:first]
        if first < n:
            self._buf[: n - first] = samples[first:]
        self._written = w + n  # publish after the copy
        self._data_ready.set()

    def write_blocking(self, samples: np.ndarray, first_sample_time: float | None = None,
                       stop: threading.Event | None = None) -> bool:
        """Like :meth:`write` but waits while the consumer is behind (replay as fast as possible).

        Returns ``False`` when the ring was closed or ``stop`` was set while waiting.
        """
        n = samples.shape[0]
        if n > self.capacity - self.window:
            raise ValueError(f"block of {n} samples is larger than the ring's slack")
        while not self._closed and not (stop is not None and stop.is_set()):
            self._space_free.clear()
            if self._written + n - self._next_start <= self.capacity:
                self.write(samples, first_sample_time)
                return True
            self._space_free.wait(0.5)
        return False

    def note_xrun(self, count: int = 1) -> None:
        """Record input overflows reported by the source (callback-safe)."""
        self.xruns += count

    def close(self) -> None:
        """End of stream: :meth:`read` returns ``None`` once no full window is left."""
        self._closed = True
        self._data_ready.set()
        self._space_free.set()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def exhausted(self) -> bool:
        """Closed, and no full window left to read: the stream has ended."""
        return self._closed and self._written < self._next_start + self.window

    # --- consumer side --------------------------------------------------------------

    def reset(self, now: float | None = None) -> None:
        """Drop everything: the next window starts with the next sample written.

        Call only while the producer is stopped (after a device restart), so
        that no window straddles the gap.
        """
        self.epoch += 1
        self._reset_counters(now)

    def pending(self) -> int:
        """Samples written but not yet covered by a returned window's hop."""
        return self._written - self._next_start

    def time_of(self, index: int) -> float:
        """Wall-clock time (Unix s) of absolute sample ``index``."""
        return self._anchor_time + (index - self._anchor_index) / self.sample_rate

    def read(self, timeout: float | None = None) -> Window | None:
        """The next window, waiting up to ``timeout`` s (``None`` = forever).

        Returns ``None`` on timeout or at the end of a closed
        stream. A window that the producer overwrote before it could be read is
        skipped (counted in :attr:`overruns`) and the next complete one returned.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self._data_ready.clear()
            win = self._take()
            if win is not None:
                return win
            if self._closed:
                return None
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return None
            if not self._data_ready.wait(remaining):
                return None

    def _take(self) -> Window | None:
        start = self._next_start
        end = start + self.window
        written = self._written
        if written < end:
            return None
        if written - start > self.capacity:
            # The producer lapped us: jump to the newest complete window on the hop grid.
            behind = (written - self.window - start + self.hop - 1) // self.hop
            self.overruns += behind
            self._next_index += behind
            start += behind * self.hop
            end = start + self.window
        out = np.empty((self.window, self.channels), dtype=np.float32)
        pos = start % self.capacity
        first = min(self.window, self.capacity - pos)
        out[:first] = self._buf[pos:pos + first]
        if first < self.window:
            out[first:] = self._buf[: self.window - first]
        if self._written - start > self.capacity:  # overwritten while copying
            self.overruns += 1
            self._next_start = start + self.hop
            self._next_index += 1
            return self._take()
        xruns = self.xruns - self._xruns_at_last_window
        self._xruns_at_last_window = self.xruns
        win = Window(samples=out, index=self._next_index, start_sample=start, sample_rate=self.sample_rate,
                     start_time=self.time_of(start), end_time=self.time_of(end), xruns=xruns, epoch=self.epoch)
        self._next_start = start + self.hop
        self._next_index += 1
        self._space_free.set()
        return win
