"""Recording a fixed number of windows from the configured microphone: shared by ``record`` and ``learn``.

Both commands take the config's ``audio.*`` settings (``--device`` wins),
resolve the device before anything is written (a wrong name is one line that
lists the inputs that exist), capture through
:class:`edge_monitor.audio.capture.MicrophoneSource` (which reconnects by name), and
give up with exit status 3 when the device stays gone past ``--give-up-after``.
Errors are :class:`RecordError` with the exit status and one readable line;
the command prints it.

Each window comes back raw, as captured (the sensor checks must see every
channel before a downmix hides a dead one); the caller conditions it for the
model the way the daemon does (:func:`edge_monitor.model.conditioning.to_model_audio`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from structlog.typing import FilteringBoundLogger

from edge_monitor.audio.ring_buffer import Windowing
from edge_monitor.config.schema import EX_CONFIG, AudioConfig, Config

__all__ = [
    "EX_DEVICE",
    "EX_DEVICE_GONE",
    "DeviceGone",
    "RecordError",
    "Recorded",
    "Recorder",
    "check_device",
    "load_audio",
]

EX_DEVICE = 1  # device not found, cannot be opened, too little audio
EX_DEVICE_GONE = 3  # the device stayed gone past --give-up-after


class RecordError(Exception):
    """A problem that ends a recording command: ``str(exc)`` is the one line to print, ``status`` the exit status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class DeviceGone(RecordError):
    """The input device stayed gone longer than the give-up time.

    Attributes:
        device: the device's name (or the configured spec).
        gone_s: how long it has been gone (s).
        give_up_after: the limit (s).
        error: the last error the capture reported.
    """

    def __init__(self, device: str, gone_s: float, give_up_after: float, error: str) -> None:
        self.device, self.gone_s, self.give_up_after, self.error = device, gone_s, give_up_after, error
        super().__init__(f"the input device {device!r} has been gone for {gone_s:.0f} s "
                         f"(--give-up-after {give_up_after:g}): {error}", EX_DEVICE_GONE)


def load_audio(config: str | None, device: int | str | None) -> tuple[Config | None, AudioConfig]:
    """The config (``None`` without ``--config``) and its ``audio:`` section with ``--device`` applied.

    Raises:
        RecordError: status 78 (EX_CONFIG) for a config error.
    """
    from edge_monitor.config.loader import load_config
    from edge_monitor.config.schema import ConfigError

    cfg: Config | None = None
    audio = AudioConfig()
    if config:
        try:
            cfg = load_config(config)
        except ConfigError as exc:
            raise RecordError(f"config error: {exc}", EX_CONFIG) from None
        audio = cfg.audio
    if device is not None:
        audio = dataclasses.replace(audio, device=device)
    return cfg, audio


def check_device(audio: AudioConfig) -> str:
    """Resolve ``audio.device`` now; its name.

    A wrong name is one clear line (which inputs exist), not a capture warning
    promising a retry that a recording command never makes; and nothing is
    written for a device that does not exist.

    Raises:
        RecordError: status 1, no such device or PortAudio unusable.
    """
    from edge_monitor.audio.capture import DeviceError, find_input_device

    try:
        return find_input_device(audio.device).name
    except DeviceError as exc:
        raise RecordError(str(exc), EX_DEVICE) from None
    except Exception as exc:  # noqa: BLE001 - PortAudio missing or broken
        raise RecordError(f"cannot list audio devices: {exc}", EX_DEVICE) from None


@dataclass(frozen=True)
class Recorded:
    """One recorded window, as captured.

    Attributes:
        index: its position in the recording (0-based; windows are consecutive).
        raw: the samples as captured, ``(m, channels)`` float32 at ``sample_rate``.
        sample_rate: the capture rate (Hz).
        xruns: input overflows during the window.
    """

    index: int
    raw: np.ndarray
    sample_rate: int
    xruns: int


class Recorder:
    """Consecutive windows of ``window_seconds`` from the microphone, as captured.

    Typical use (always stop, also after an error or Ctrl-C)::

        rec = Recorder(audio, 16000, 10.0, log)
        rec.start()
        try:
            for w in rec.windows(6, give_up_after=60):
                ...
        finally:
            rec.stop()

    Args:
        audio: the ``audio:`` config (device, channels, channel, ...).
        rate: the preferred capture rate (Hz).
        window_seconds: window length (s).
        log: a structlog logger (capture start, losses, reconnects).
    """

    def __init__(self, audio: AudioConfig, rate: int, window_seconds: float, log: FilteringBoundLogger) -> None:
        from edge_monitor.audio.capture import MicrophoneSource

        self.audio = audio
        self.rate = int(rate)
        self.window_seconds = float(window_seconds)
        # hop = window: consecutive windows, no overlap
        self.source = MicrophoneSource(audio, self.rate, Windowing(self.window_seconds, self.window_seconds), log)

    def start(self) -> None:
        """Open the stream. Raises :class:`RecordError` (status 1) when it cannot be opened."""
        if not self.source.start():
            raise RecordError(f"cannot open the input device: {self.source.last_error}", EX_DEVICE)

    def stop(self) -> None:
        self.source.stop()

    @property
    def device_name(self) -> str:
        """The open device's name (or the configured spec before it opened)."""
        return self.source.device.name if self.source.device is not None else str(self.audio.device)

    @property
    def sample_rate(self) -> int | None:
        """The capture rate in Hz (``None`` before the stream opened)."""
        return self.source.sample_rate

    @property
    def xruns(self) -> int:
        """Input overflows of the current stream."""
        return self.source.xruns

    def windows(self, count: int, give_up_after: float) -> Iterator[Recorded]:
        """Yield ``count`` consecutive windows, reconnecting a lost device.

        Raises:
            DeviceGone: the device stayed gone longer than ``give_up_after`` seconds.
        """
        source = self.source
        got = 0
        gone_since: float | None = None
        while got < count:
            win = source.read(timeout=0.5)  # returns after at most 0.5 s, also while no stream is open
            source.poll()
            now = time.monotonic()
            if source.running:
                gone_since = None
            elif gone_since is None:
                gone_since = now
            elif now - gone_since > give_up_after:
                raise DeviceGone(self.device_name, now - gone_since, give_up_after,
                                 source.last_error or "no audio")
            if win is None:
                continue
            yield Recorded(got, win.samples, win.sample_rate, win.xruns)
            got += 1
