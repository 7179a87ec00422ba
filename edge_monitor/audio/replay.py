"""WAV replay: files played into the ring buffer as if a microphone heard them.

Used by ``edge-monitor simulate``: the same ring buffer, scoring loop,
decision, evidence and publisher as live capture; only the source differs.
Files are played back to back as one continuous stream (a window may span
two files, exactly as a live window spans whatever the microphone heard), at
the model's sample rate. Each file is read raw (``audio_io.read_wav_raw``) and
resampled to the model rate if needed; its channels are kept so that the
sensor-health checks see them. A file whose channel count differs from the
stream's (set by the first readable file) is downmixed (stream mono) or
repeated across channels (file mono), or skipped with a message otherwise.
An unreadable file is reported and skipped; the run goes on.

Pacing: real time by default (the stream's clock follows the wall clock), or
``fast``: as fast as the scoring loop consumes (the producer blocks on a full
ring, nothing is dropped). Stream timestamps start at the wall-clock time of
the start and advance with the samples played, in both modes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from structlog.typing import FilteringBoundLogger

from edge_monitor.audio import audio_io
from edge_monitor.audio.ring_buffer import RingBuffer, Window, Windowing

__all__ = ["expand_paths", "ReplaySource"]


def expand_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given, folders as their ``*.wav`` files (recursively, sorted by path)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(q for q in p.rglob("*") if q.suffix.lower() == ".wav" and q.is_file()))
        else:
            out.append(p)
    return out


class ReplaySource:
    """Plays WAV files into its own ring buffer from a background thread; :meth:`read` takes the windows.

    Args:
        paths: WAV files (see :func:`expand_paths`).
        sample_rate: the model's rate (Hz); files are resampled to it.
        windowing: window length and hop (s) of the windows :meth:`read` returns.
        log: structlog logger.
        fast: do not pace in real time.
        loop: start again after the last file, until stopped.
        block_seconds: size of each write (s).
    """

    kind = "replay"

    def __init__(self, paths: list[Path], sample_rate: int, windowing: Windowing, log: FilteringBoundLogger,
                 fast: bool = False, loop: bool = False, block_seconds: float = 0.1,
                 start_time: float | None = None) -> None:
        self.paths = list(paths)
        self.sample_rate = int(sample_rate)
        self.windowing = windowing
        self.log = log
        self.fast, self.loop = fast, loop
        self.block = max(1, int(round(block_seconds * self.sample_rate)))
        self.start_time = start_time
        self.ring: RingBuffer | None = None
        self.device = None
        self.running = False
        self.files_played = 0
        self.files_skipped = 0
        self.samples_played = 0
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._channels: int | None = None
        self._ring_ready = threading.Event()

    def _load(self, path: Path) -> np.ndarray | None:
        """``(n, channels)`` float32 at the model rate, or ``None`` (reported) when unusable."""
        try:
            raw = audio_io.read_wav_raw(path)
            x = raw.samples
            if raw.sample_rate != self.sample_rate:
                x = audio_io.resample(x, raw.sample_rate, self.sample_rate)
        except (audio_io.AudioFileError, ValueError, OSError) as exc:
            msg = str(exc) if isinstance(exc, audio_io.AudioFileError) else f"{path}: {exc}"
            self._skip(path, msg)
            return None
        if x.ndim == 1:
            x = x[:, None]
        if self._channels is None:
            self._channels = x.shape[1]
        elif x.shape[1] != self._channels:
            if self._channels == 1:
                x = x.mean(axis=1, dtype=np.float32)[:, None]
            elif x.shape[1] == 1:
                x = np.repeat(x, self._channels, axis=1)
            else:
                self._skip(path, f"{path}: {x.shape[1]} channels, the stream has {self._channels}")
                return None
        return np.ascontiguousarray(x, dtype=np.float32)

    def _skip(self, path: Path, message: str) -> None:
        self.files_skipped += 1
        self.last_error = message
        self.log.error("skipping unreadable file", file=str(path), error=message)

    def start(self) -> bool:
        """Start the replay thread; returns when the ring exists (after the first readable file)."""
        self._thread = threading.Thread(target=self._run, name="replay", daemon=True)
        self._thread.start()
        self._ring_ready.wait()
        return self.ring is not None

    def _run(self) -> None:
        try:
            self._play()
        except Exception as exc:  # noqa: BLE001 - report, never hang the reader
            self.last_error = f"{type(exc).__name__}: {exc}"
            self.log.error("replay failed", error=self.last_error)
        finally:
            self.running = False
            if self.ring is None:  # nothing readable: an empty stream
                self.ring = self.windowing.ring(self.sample_rate, 1)
            self._ring_ready.set()
            self.ring.close()

    def _play(self) -> None:
        t0 = self.start_time if self.start_time is not None else time.time()
        wall0 = time.monotonic()
        self.running = True
        while not self._stop.is_set():
            played_any = False
            for path in self.paths:
                if self._stop.is_set():
                    return
                x = self._load(path)
                if x is None:
                    continue
                if self.ring is None:
                    self.ring = self.windowing.ring(self.sample_rate, x.shape[1])
                    self._ring_ready.set()
                self.log.info("replaying file", file=str(path), seconds=round(x.shape[0] / self.sample_rate, 2))
                for i in range(0, x.shape[0], self.block):
                    chunk = x[i:i + self.block]
                    if not self.fast:
                        due = wall0 + (self.samples_played + chunk.shape[0]) / self.sample_rate
                        delay = due - time.monotonic()
                        if delay > 0 and self._stop.wait(delay):
                            return
                    stamp = t0 + self.samples_played / self.sample_rate
                    if not self.ring.write_blocking(chunk, stamp, stop=self._stop):
                        return
                    self.samples_played += chunk.shape[0]
                self.files_played += 1
                played_any = True
            if not self.loop or not played_any:
                return

    def read(self, timeout: float) -> Window | None:
        """The next window, waiting at most ``timeout`` s; ``None`` on timeout or at the end (:attr:`finished`)."""
        ring = self.ring
        return ring.read(timeout=timeout) if ring is not None else None

    @property
    def finished(self) -> bool:
        """Every file played and every full window read."""
        return self.ring is not None and self.ring.exhausted

    @property
    def xruns(self) -> int:
        """Always 0: files do not overflow."""
        return self.ring.xruns if self.ring is not None else 0

    @property
    def overruns(self) -> int:
        """0 with ``fast`` (the player waits for the reader); windows lost by a slow reader otherwise."""
        return self.ring.overruns if self.ring is not None else 0

    def poll(self) -> None:
        """Nothing to supervise for files (the same interface as the microphone)."""

    def stop(self) -> None:
        self._stop.set()
        if self.ring is not None:
            self.ring.close()
        if self._thread is not None:
            self._thread.join(timeout=2.0)

    def stats(self) -> dict[str, object]:
        return {"source": self.kind, "files_played": self.files_played, "files_skipped": self.files_skipped,
                "seconds_played": round(self.samples_played / self.sample_rate, 1), "last_error": self.last_error}
