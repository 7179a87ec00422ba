"""Microphone capture through PortAudio (sounddevice), kept alive for months.

:class:`MicrophoneSource` opens an ``InputStream`` whose callback only copies
the block into a :class:`~edge_monitor.audio.ring_buffer.RingBuffer` (no
allocation-heavy work, no logging, no long locks) and counts input overflows
(xruns). Everything else happens in :meth:`MicrophoneSource.poll`, which the
scoring loop calls between windows:

* a stream that reports an error, finishes on its own, or delivers no audio
  for ``audio.stall_seconds`` is declared lost and reported once;
* reconnect attempts follow with exponential back-off (1 s, 2 s, 4 s, ...
  up to ``audio.retry_max_seconds``). Each attempt re-scans the devices
  (PortAudio keeps its device list from start-up, so ``sounddevice._terminate()``
  then ``_initialize()``) and finds the device again **by name**, since a
  re-plugged USB microphone often gets another index;
* on success the ring is reset (no window straddles the gap) and recovery is
  reported with the downtime.

Rate. The stream runs at the model's rate (16 kHz) when the device accepts it,
else at the device's default rate; the scoring loop resamples each window as a
whole (``audio_io.resample``), as ``read_wav`` does for files, so the model
sees what it saw in training, and the ring still holds every native sample
(no loss or duplication between windows).
"""

from __future__ import annotations

import importlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Protocol

import numpy as np
from numpy.typing import NDArray
from structlog.typing import FilteringBoundLogger

from edge_monitor.audio.ring_buffer import RingBuffer, Window, Windowing
from edge_monitor.config.schema import AudioConfig
from edge_monitor.util.backoff import Backoff

__all__ = ["DeviceError", "InputDevice", "list_input_devices", "find_input_device", "MicrophoneSource"]


class DeviceError(Exception):
    """No usable input device; the message says which and why."""


@dataclass(frozen=True)
class InputDevice:
    """One PortAudio input device."""

    index: int
    name: str
    hostapi: str
    max_input_channels: int
    default_samplerate: float
    is_default: bool = False


class _InputStream(Protocol):
    """What the capture uses of a ``sounddevice.InputStream`` (the package has no type information)."""

    @property
    def active(self) -> bool: ...

    def abort(self) -> None: ...

    def close(self) -> None: ...


class _TimeInfo(Protocol):
    """The callback's ``time`` argument: PortAudio stream times, in seconds."""

    currentTime: float
    inputBufferAdcTime: float


class _CallbackFlags(Protocol):
    """The callback's ``status`` argument (``sounddevice.CallbackFlags``)."""

    @property
    def input_overflow(self) -> bool: ...


def _sd() -> ModuleType:
    # Imported on first use: PortAudio loads only when audio is used.
    return importlib.import_module("sounddevice")


def rescan_devices() -> None:
    """Make PortAudio enumerate the devices again (a re-plugged USB microphone)."""
    sd = _sd()
    try:
        sd._terminate()
    except Exception:  # noqa: BLE001 - PortAudio may already be down
        pass
    sd._initialize()


def list_input_devices() -> list[InputDevice]:
    """Every device with at least one input channel, in PortAudio order."""
    sd = _sd()
    try:
        default_in = sd.default.device[0]
    except Exception:  # noqa: BLE001
        default_in = -1
    if default_in is None or default_in < 0:
        try:
            default_in = sd.query_devices(kind="input")["index"]
        except Exception:  # noqa: BLE001
            default_in = -1
    apis = [a["name"] for a in sd.query_hostapis()]
    out = []
    for d in sd.query_devices():
        if d["max_input_channels"] > 0:
            out.append(InputDevice(d["index"], d["name"], apis[d["hostapi"]], d["max_input_channels"],
                                   float(d["default_samplerate"]), d["index"] == default_in))
    return out


def find_input_device(spec: int | str | None) -> InputDevice:
    """The input device for the config's ``audio.device``.

    ``None``: the system default input. ``int``: that PortAudio index. ``str``:
    the first device whose name contains it (case-insensitive; an exact name
    wins). Raises :class:`DeviceError` naming what was looked for and what exists.
    """
    devices = list_input_devices()
    if not devices:
        raise DeviceError("no audio input devices found (is the microphone plugged in?)")
    names = "; ".join(f"{d.index}: {d.name}" for d in devices)
    if spec is None:
        for d in devices:
            if d.is_default:
                return d
        return devices[0]
    if isinstance(spec, int):
        for d in devices:
            if d.index == spec:
                return d
        raise DeviceError(f"no input device with index {spec} (inputs: {names})")
    wanted = spec.lower()
    exact = [d for d in devices if d.name.lower() == wanted]
    if exact:
        return exact[0]
    matches = [d for d in devices if wanted in d.name.lower()]
    if matches:
        return matches[0]
    raise DeviceError(f"no input device whose name contains {spec!r} (inputs: {names})")


def choose_sample_rate(device: InputDevice, channels: int, wanted: int) -> int:
    """``wanted`` when the device accepts it, else the device's default rate."""
    sd = _sd()
    try:
        sd.check_input_settings(device=device.index, channels=channels, samplerate=wanted, dtype="float32")
        return wanted
    except Exception:  # noqa: BLE001 - PortAudio says "Invalid sample rate" in several ways
        return int(round(device.default_samplerate))


class MicrophoneSource:
    """A PortAudio input stream feeding its own ring buffer, with loss detection and reconnects.

    The reader takes windows with :meth:`read`; the ring is rebuilt on every
    (re)start because a different device may run at another rate.

    Args:
        audio: the ``audio:`` config.
        target_rate: the model's sample rate (Hz), preferred capture rate.
        windowing: window length and hop (s) of the windows :meth:`read` returns.
        log: a structlog logger.
        clock: monotonic clock (s), replaceable in tests.
    """

    kind = "microphone"

    def __init__(self, audio: AudioConfig, target_rate: int, windowing: Windowing,
                 log: FilteringBoundLogger, clock: Callable[[], float] = time.monotonic) -> None:
        self.audio = audio
        self.model_rate = int(target_rate)
        self.target_rate = int(audio.sample_rate or target_rate)
        self.windowing = windowing
        self.log = log
        self.clock = clock
        self.ring: RingBuffer | None = None
        self.device: InputDevice | None = None
        self.sample_rate: int | None = None
        self.stream: _InputStream | None = None
        self.running = False
        self.restarts = 0
        self.failures = 0
        self.last_error: str | None = None
        self._last_callback = 0.0
        self._callback_error: str | None = None
        # 1, 2, 4 ... s up to retry_max_seconds; no jitter: one local device, nobody to spread out from.
        self._retry = Backoff(1.0, audio.retry_max_seconds, jitter=False)
        self._next_attempt = 0.0
        self._down_since: float | None = None
        self._stopped = False
        self._halt = threading.Event()  # set by stop(): a read waiting for a stream returns at once

    # --- the audio thread ----------------------------------------------------------------

    def _callback(self, indata: NDArray[np.float32], frames: int, time_info: _TimeInfo,
                  status: _CallbackFlags) -> None:
        # Runs on PortAudio's thread: copy, count, timestamp; nothing else.
        now = time.time()
        ring = self.ring
        rate = self.sample_rate
        if ring is None or rate is None:  # not opened yet: nothing to write into
            return
        if status.input_overflow:
            ring.note_xrun()
        try:
            # Wall-clock time of the block's first sample: now minus how long ago the ADC took it.
            lag = time_info.currentTime - time_info.inputBufferAdcTime
            if not 0.0 <= lag < 1.0:
                lag = frames / rate
        except Exception:  # noqa: BLE001
            lag = frames / rate
        ring.write(indata, now - lag)
        self._last_callback = self.clock()

    def _finished(self) -> None:
        if not self._stopped:
            self._callback_error = "the audio stream stopped on its own"

    # --- control (scoring thread) ----------------------------------------------------------

    def start(self) -> bool:
        """First start. Returns ``True`` when capture runs; on failure it is reported and retried by :meth:`poll`."""
        self._stopped = False
        self._halt.clear()
        ok = self._open(rescan=False)
        if not ok:
            self._down_since = self.clock()
            self._schedule_retry()
        return ok

    def _open(self, rescan: bool) -> bool:
        sd = _sd()
        try:
            if rescan:
                rescan_devices()
            dev = find_input_device(self.audio.device)
            channels = self.audio.channels
            if channels > dev.max_input_channels:
                raise DeviceError(f"{dev.name!r} has {dev.max_input_channels} input channel(s), "
                                  f"audio.channels asks for {channels}")
            rate = choose_sample_rate(dev, channels, self.target_rate)
            ring = self.windowing.ring(rate, channels)
            self.ring, self.device, self.sample_rate = ring, dev, rate
            self._callback_error = None
            stream = sd.InputStream(device=dev.index, channels=channels, samplerate=rate, dtype="float32",
                                    blocksize=max(1, int(round(self.audio.block_seconds * rate))),
                                    callback=self._callback, finished_callback=self._finished)
            self._last_callback = self.clock()
            stream.start()
        except Exception as exc:  # noqa: BLE001 - PortAudioError, DeviceError, OSError...
            self.last_error = f"{type(exc).__name__}: {exc}"
            self.failures += 1
            self.running = False
            self.log.warning("audio device unavailable", device=self.audio.device, error=self.last_error,
                             retry_in_s=round(self._retry.upcoming_cap(), 1))
            return False
        self.stream = stream
        self.running = True
        self.log.info("capture started", device=dev.name, index=dev.index, hostapi=dev.hostapi,
                      sample_rate=rate, channels=channels,
                      resampling=rate != self.model_rate)
        return True

    def _schedule_retry(self) -> None:
        self._next_attempt = self.clock() + self._retry.next_delay()

    def _close(self) -> None:
        stream, self.stream = self.stream, None
        self.running = False
        if stream is None:
            return
        try:
            stream.abort()
        except Exception:  # noqa: BLE001 - the device may be gone
            pass
        try:
            stream.close()
        except Exception:  # noqa: BLE001
            pass

    def health_problem(self) -> str | None:
        """Why the running stream is considered lost, or ``None`` when it is fine."""
        if not self.running:
            return None
        if self._callback_error:
            return self._callback_error
        if self.stream is not None and not self.stream.active:
            return "the audio stream is no longer active"
        silent_for = self.clock() - self._last_callback
        if silent_for > self.audio.stall_seconds:
            return f"no audio from the device for {silent_for:.1f} s"
        return None

    def poll(self) -> None:
        """Detect a lost device and reconnect with back-off; call often from the scoring loop."""
        if self._stopped:
            return
        problem = self.health_problem()
        if problem is not None:
            self.last_error = problem
            self.log.error("audio device lost", device=self.device.name if self.device else self.audio.device,
                           reason=problem)
            self._close()
            self._down_since = self.clock()
            self._retry.reset()
            self._schedule_retry()
            return
        if self.running or self.clock() < self._next_attempt:
            return
        if self._open(rescan=True):
            down = self.clock() - (self._down_since or self.clock())
            self.restarts += 1
            self._retry.reset()
            self._down_since = None
            self.log.info("audio device recovered", device=self.device.name if self.device else None,
                          down_s=round(down, 1), restarts=self.restarts)
        else:
            self._schedule_retry()

    def read(self, timeout: float) -> Window | None:
        """The next window, waiting at most ``timeout`` s; ``None`` when none came (device down, stopped)."""
        ring = self.ring
        if ring is None:  # no stream yet: poll() opens it on its back-off schedule
            self._halt.wait(timeout)
            return None
        return ring.read(timeout=timeout)

    @property
    def finished(self) -> bool:
        """A microphone never runs out of windows; only :meth:`stop` ends it."""
        return self._stopped

    @property
    def xruns(self) -> int:
        """Input overflows of the current stream."""
        return self.ring.xruns if self.ring is not None else 0

    @property
    def overruns(self) -> int:
        """Windows the reader lost by falling behind (current stream)."""
        return self.ring.overruns if self.ring is not None else 0

    def stop(self) -> None:
        """Stop capturing (shutdown); the ring is closed so the reader ends."""
        self._stopped = True
        self._halt.set()
        self._close()
        if self.ring is not None:
            self.ring.close()

    def stats(self) -> dict[str, object]:
        return {
            "source": self.kind,
            "device": self.device.name if self.device else None,
            "sample_rate": self.sample_rate,
            "running": self.running,
            "restarts": self.restarts,
            "failures": self.failures,
            "last_error": self.last_error,
        }
