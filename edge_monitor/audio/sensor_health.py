"""Microphone health: sensor faults are not machine faults.

Checks the RAW samples of each window (before any feature or downmix) for a
broken input chain, so that a pulled cable, a clipping preamp or a starved
capture thread is reported as a sensor problem and never scored as a rail
anomaly.

Faults (``Fault.kind``):

``dead_input``
    Every channel is digital silence or a constant (DC only): the standard
    deviation of each channel is at or below ``SensorLimits.dead_dbfs``.
``dead_channel``
    One or more channels of a multi-channel input are dead while another
    channel carries sound (a broken capsule of an array). Only reported when at
    least one channel is alive; otherwise the window is ``dead_input``.
``clipping``
    The share of samples at the format's full scale (within one LSB) is above
    ``SensorLimits.clip_fraction``.
``dropout``
    Runs of exact zeros on every channel at once, each at least
    ``SensorLimits.dropout_ms`` long, in a window that carries sound elsewhere
    (lost USB packets, a paused stream, a loose connector).
``xrun``
    The capture reported at least ``SensorLimits.xrun_burst`` over-/underruns
    during the window (samples were lost; the window is not the machine's sound).

Typical use, once per window (pure, vectorised NumPy; ~2 ms for 10 s at 16 kHz)::

    status = check_window(raw, sample_rate, xruns=n_xruns, bits=16)
    for event in monitor.update(status, t=time.time()):
        publisher.publish_sensor(event.to_dict())
    if not status.ok:
        ...  # count and log it; do NOT score the window as a machine anomaly,
             # unless its only fault is a short dropout: then score the rest
             # (model_input.valid_frames(status.bad, params); docs/audio-io.md)

:class:`SensorMonitor` turns the per-window statuses into ``start``/``end``
events per fault kind, with hysteresis (``start_after`` faulty windows to
start, ``end_after`` clean windows to end), and keeps the current state for
the health JSON (:meth:`SensorMonitor.state`).

Only NumPy and the standard library: this module runs on every window on a Pi.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "FAULT_KINDS",
    "Fault",
    "SensorStatus",
    "SensorLimits",
    "SensorEvent",
    "SensorMonitor",
    "check_window",
]

#: Every fault kind, in the order they are reported.
FAULT_KINDS: tuple[str, ...] = ("dead_input", "dead_channel", "clipping", "dropout", "xrun")


@dataclass(frozen=True)
class Fault:
    """One sensor fault found in one window.

    Attributes:
        kind: one of :data:`FAULT_KINDS`.
        detail: one plain sentence with the numbers, e.g.
            ``"3 runs of exact zeros, longest 20 ms"``.
    """

    kind: str
    detail: str

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "detail": self.detail}


@dataclass(frozen=True)
class SensorStatus:
    """The verdict on one window's raw samples.

    Attributes:
        ok: ``True`` when no fault was found (the window may be scored).
        faults: the faults found, in :data:`FAULT_KINDS` order.
        rms_dbfs: RMS level of the loudest channel in dBFS (``-inf`` for
            digital silence); handy for logs and the status JSON.
        bad: ``(n,)`` bool over the window's samples, True inside the
            dropouts found (``None`` when there are none). The scoring loop
            turns it into valid frames (``model_input.valid_frames``) and scores
            a window whose dropouts are short on the rest of it.
    """

    ok: bool
    faults: list[Fault] = field(default_factory=list)
    rms_dbfs: float = float("-inf")
    bad: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def kinds(self) -> set[str]:
        """The fault kinds present in this window."""
        return {f.kind for f in self.faults}

    def to_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "faults": [f.to_dict() for f in self.faults],
            "rms_dbfs": None if not math.isfinite(self.rms_dbfs) else round(self.rms_dbfs, 1),
        }


@dataclass(frozen=True)
class SensorLimits:
    """Thresholds of :func:`check_window` (all have working defaults).

    Attributes:
        dead_dbfs: a channel whose standard deviation (the mean removed, so a
            constant counts as dead) is at or below this level in dBFS is dead.
            -90 dBFS is below one LSB of 16-bit audio (-90.3 dBFS); a live
            microphone's self-noise stays above it.
        clip_fraction: the share of samples at full scale above which the
            window is clipped (0.001 = 0.1 %, 160 samples of a 10 s window).
        dropout_ms: shortest run of exact zeros that counts as a dropout (ms).
        xrun_burst: capture over-/underruns in one window that make a burst
            (one lost block is a click; several mean the window is not the
            machine's sound).
    """

    dead_dbfs: float = -90.0
    clip_fraction: float = 0.001
    dropout_ms: float = 5.0
    xrun_burst: int = 3

    def __post_init__(self) -> None:
        if not 0.0 < self.clip_fraction < 1.0:
            raise ValueError(f"clip_fraction must be in (0, 1), got {self.clip_fraction}")
        if self.dropout_ms <= 0:
            raise ValueError(f"dropout_ms must be positive, got {self.dropout_ms}")
        if self.xrun_burst < 1:
            raise ValueError(f"xrun_burst must be at least 1, got {self.xrun_burst}")


def _as_float_frames(samples: np.ndarray, bits: int | None) -> tuple[np.ndarray, float]:
    """Samples as float32 ``(n, channels)`` with full scale 1.0, and the clip level.

    Integer arrays are scaled by their dtype's full scale; float arrays are
    taken as already scaled (full scale 1.0). ``bits`` is the format's word
    length for the clip level (one LSB below full scale); ``None`` means a
    float format, clipped at 1.0.
    """
    x = np.asarray(samples)
    if x.ndim == 1:
        x = x[:, None]
    elif x.ndim != 2:
        raise ValueError(f"samples must have shape (n,) or (n, channels), got {x.shape}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"samples are empty: shape {x.shape}")
    if np.issubdtype(x.dtype, np.integer):
        info = np.iinfo(x.dtype)
        scale = float(-int(info.min)) if info.min < 0 else float(info.max + 1) / 2
        if info.min < 0:
            x = x.astype(np.float32) / np.float32(scale)
        else:  # unsigned PCM (8-bit WAV): centre on zero
            x = (x.astype(np.float32) - np.float32(scale)) / np.float32(scale)
        if bits is None:
            bits = info.bits
    else:
        x = x.astype(np.float32, copy=False)
        if not np.isfinite(x).all():
            x = np.nan_to_num(x, nan=0.0, posinf=1.0, neginf=-1.0)
    if bits is None:
        clip_level = 1.0 - 1e-6
    else:
        if bits < 2:
            raise ValueError(f"bits must be at least 2, got {bits}")
        half = float(2 ** (bits - 1))
        # Signed PCM reaches -1.0 but only (half - 1) / half on the positive side.
        clip_level = (half - 1.0) / half - 0.5 / half
    return x, clip_level


def _zero_runs(silent: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start indices and lengths of the runs of ``True`` in a 1-D bool array."""
    padded = np.concatenate(([False], silent, [False]))
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    starts, ends = edges[0::2], edges[1::2]
    return starts, ends - starts


def _dbfs(value: float) -> float:
    return 20.0 * math.log10(value) if value > 0 else float("-inf")


def check_window(
    samples: np.ndarray,
    sample_rate: int,
    xruns: int = 0,
    *,
    bits: int | None = 16,
    limits: SensorLimits = SensorLimits(),
) -> SensorStatus:
    """Check one window of raw capture for sensor faults.

    Args:
        samples: the raw window, shape ``(n,)`` or ``(n, channels)``; float with
            full scale 1.0 (as ``audio_io.read_wav_raw`` and sounddevice's
            float32 give), or integer PCM (int16/int32/uint8, scaled here).
            Never downmixed or resampled: a dead channel or a dropout must be
            seen before averaging hides it.
        sample_rate: samples per second of ``samples`` (Hz); sets the dropout
            length in samples.
        xruns: over-/underruns the capture reported during this window.
        bits: word length of the source format (16 for S16 WAV/capture, 24, 32)
            for the clip level, one LSB below full scale; ``None`` for float
            formats (clipped at 1.0). For integer arrays the dtype's width is
            used when ``bits`` is ``None``.
        limits: thresholds, see :class:`SensorLimits`.

    Returns:
        :class:`SensorStatus`; ``ok`` is ``False`` when any fault was found.
    """
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    x, clip_level = _as_float_frames(samples, bits)
    n, channels = x.shape
    faults: list[Fault] = []
    bad: np.ndarray | None = None

    # Channel-major copy: per-channel reductions over contiguous rows are ~4x faster.
    xt = np.ascontiguousarray(x.T) if channels > 1 else x.reshape(1, n)
    std = xt.std(axis=1, dtype=np.float64)
    dead_level = 10.0 ** (limits.dead_dbfs / 20.0)
    dead = std <= dead_level
    rms_dbfs = _dbfs(float(np.sqrt(np.max(np.einsum("ij,ij->i", xt, xt, dtype=np.float64) / n))))

    if dead.all():
        peak = float(np.max(np.abs(x)))
        what = "digital silence" if peak == 0.0 else f"a constant level (DC {float(np.mean(x)):+.4f} of full scale)"
        where = "the input carries" if channels == 1 else f"all {channels} channels carry"
        faults.append(Fault("dead_input", f"{where} {what}"))
    else:
        if dead.any():
            idx = [int(i) for i in np.flatnonzero(dead)]
            names = ", ".join(str(i + 1) for i in idx)
            faults.append(
                Fault(
                    "dead_channel",
                    f"channel{'s' if len(idx) > 1 else ''} {names} of {channels} "
                    f"{'are' if len(idx) > 1 else 'is'} silent while others carry sound",
                )
            )

        live = xt[~dead] if dead.any() else xt
        clipped = int(np.count_nonzero(np.abs(live) >= clip_level))
        share = clipped / live.size
        if share > limits.clip_fraction:
            faults.append(
                Fault("clipping", f"{100.0 * share:.2f} % of samples at full scale "
                                  f"(limit {100.0 * limits.clip_fraction:.2f} %)")
            )

        # Only the live channels: a dead channel is already reported, and its
        # zeros must not hide (or fake) dropouts on the others.
        silent = ~np.any(live != 0.0, axis=0)
        min_run = max(1, int(math.ceil(limits.dropout_ms * 1e-3 * sample_rate)))
        if np.count_nonzero(silent) >= min_run:
            starts, lengths = _zero_runs(silent)
            is_long = lengths >= min_run
            long_runs = lengths[is_long]
            if long_runs.size:
                bad = np.zeros(n, dtype=bool)
                for start, length in zip(starts[is_long].tolist(), long_runs.tolist()):
                    bad[start : start + length] = True
                total_ms = 1e3 * float(long_runs.sum()) / sample_rate
                faults.append(
                    Fault(
                        "dropout",
                        f"{long_runs.size} run{'s' if long_runs.size > 1 else ''} of exact zeros "
                        f"(longest {1e3 * float(long_runs.max()) / sample_rate:.0f} ms, "
                        f"{total_ms:.0f} ms in all)",
                    )
                )

    if xruns >= limits.xrun_burst:
        faults.append(Fault("xrun", f"{xruns} capture over-/underrun{'s' if xruns != 1 else ''} in the window"))

    return SensorStatus(ok=not faults, faults=faults, rms_dbfs=rms_dbfs, bad=bad)


@dataclass(frozen=True)
class SensorEvent:
    """A change of the sensor state, published on ``<base>/sensor``.

    Attributes:
        event: ``"start"`` or ``"end"``.
        kind: the fault kind (one of :data:`FAULT_KINDS`).
        since: when the fault started (Unix time, s): the time of the first
            faulty window of the episode, also on its ``end`` event.
        at: when this event was decided (Unix time, s): for ``start`` the
            window that confirmed the fault, for ``end`` the window that
            confirmed its end.
        detail: the last faulty window's detail sentence.
        windows: faulty windows counted in the episode so far.
    """

    event: str
    kind: str
    since: float
    at: float
    detail: str
    windows: int

    def to_dict(self) -> dict[str, object]:
        return {
            "event": self.event,
            "kind": self.kind,
            "since": self.since,
            "at": self.at,
            "detail": self.detail,
            "windows": self.windows,
        }


@dataclass
class _Episode:
    since: float
    detail: str
    faulty: int = 0  # consecutive faulty windows (before start) / faulty windows in all
    clean: int = 0  # consecutive clean windows
    started: bool = False


# A fault that keeps another one's episode open: a dropout that becomes total
# silence is still the same loss of signal, and must not end and restart.
_CONTINUES: dict[str, frozenset[str]] = {"dropout": frozenset({"dead_input"})}


class SensorMonitor:
    """Per-window :class:`SensorStatus` -> ``start``/``end`` events with hysteresis.

    A fault kind *starts* once it has been seen in ``start_after`` consecutive
    windows and *ends* once it has been absent from ``end_after`` consecutive
    windows. Each kind is tracked on its own (a dropout can end while clipping
    goes on). Not thread-safe; call from the one thread that checks windows.

    Args:
        start_after: consecutive faulty windows before a ``start`` (>= 1).
        end_after: consecutive clean windows before an ``end`` (>= 1).
    """

    def __init__(self, start_after: int = 1, end_after: int = 2) -> None:
        if start_after < 1 or end_after < 1:
            raise ValueError("start_after and end_after must be at least 1")
        self.start_after = start_after
        self.end_after = end_after
        self._episodes: dict[str, _Episode] = {}
        self.windows_checked = 0
        self.windows_faulty = 0

    def update(self, status: SensorStatus, t: float) -> list[SensorEvent]:
        """Feed one window's status, checked at time ``t`` (Unix s); return new events."""
        self.windows_checked += 1
        if not status.ok:
            self.windows_faulty += 1
        events: list[SensorEvent] = []
        present = {f.kind: f.detail for f in status.faults}
        for kind, detail in present.items():
            ep = self._episodes.get(kind)
            if ep is None:
                ep = self._episodes[kind] = _Episode(since=t, detail=detail)
            ep.detail = detail
            ep.faulty += 1
            ep.clean = 0
            if not ep.started and ep.faulty >= self.start_after:
                ep.started = True
                events.append(SensorEvent("start", kind, ep.since, t, detail, ep.faulty))
        for kind in [k for k in self._episodes if k not in present]:
            ep = self._episodes[kind]
            if not ep.started:
                del self._episodes[kind]  # a blip shorter than start_after: forget it
                continue
            if _CONTINUES.get(kind, frozenset()) & present.keys():
                ep.clean = 0
                continue
            ep.clean += 1
            if ep.clean >= self.end_after:
                del self._episodes[kind]
                events.append(SensorEvent("end", kind, ep.since, t, ep.detail, ep.faulty))
        events.sort(key=lambda e: (e.event != "end", FAULT_KINDS.index(e.kind) if e.kind in FAULT_KINDS else 99))
        return events

    @property
    def active(self) -> dict[str, float]:
        """Started, not yet ended fault kinds -> ``since`` (Unix s)."""
        return {k: ep.since for k, ep in self._episodes.items() if ep.started}

    @property
    def ok(self) -> bool:
        """``True`` while no fault episode is active."""
        return not self.active

    def state(self) -> dict[str, object]:
        """The current sensor state for the health JSON on ``<base>/status``.

        ``{"ok": bool, "faults": [{"kind", "since", "detail"}, ...],
        "windows_checked": int, "windows_faulty": int}``
        """
        faults = [
            {"kind": k, "since": ep.since, "detail": ep.detail}
            for k, ep in sorted(self._episodes.items(), key=lambda kv: kv[1].since)
            if ep.started
        ]
        return {
            "ok": not faults,
            "faults": faults,
            "windows_checked": self.windows_checked,
            "windows_faulty": self.windows_faulty,
        }
