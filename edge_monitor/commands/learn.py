"""``edge-monitor learn``: record normal sound on the Pi and fit a model from it, without TensorFlow."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    import numpy as np

    from edge_monitor.config.schema import AudioConfig
    from edge_monitor.model.learn import WindowSet
    from edge_monitor.util.jsonutil import JsonObject

HELP = "record N minutes of normal sound and fit a model on the Pi (no TensorFlow)"
DESCRIPTION = """\
Learn what NORMAL sounds like, on the Pi itself: record --minutes of the
machine running normally from the configured microphone (the config's audio.*
settings, as `run` captures), cut it into consecutive 10 s windows, drop the
windows with sensor faults (dead input, clipping, dropouts, capture overruns),
choose and fit the NumPy detectors (level profile, frame Gaussian over the
worst frames and over the window, subspace of 5-frame runs: weighted by how
well each tells pseudo-anomalies made from the recording from normal sound; no
TensorFlow) with a threshold from a false-alarm budget, and write a model
bundle that `edge-monitor run` loads like one from `edge-monitor-train`.
It then prints what to run next.

  sudo systemctl stop edge-monitor        # the daemon may hold the microphone
  sudo edge-monitor learn --config /etc/edge-monitor/config.yaml --minutes 10 --update-config
  sudo edge-monitor check-config /etc/edge-monitor/config.yaml --model
  sudo systemctl start edge-monitor

The bundle goes to <state_dir>/models/learned-<UTC time> unless --out says
otherwise. --update-config rewrites the value of the config's `model:` to point at it
(nothing else changes; the new file is validated first); without it, the
command prints the line to set. Run as root, the bundle is handed to the
owner of state_dir (the service user). Ten minutes is a good start (fitting them takes a few
seconds); at least 0.5 minute (3 windows) is needed, and under 5 minutes the
threshold is rough. Recording while the machine does something unusual
teaches the model that this is normal. Ctrl-C ends the recording early and
fits what was recorded.

--from-wav fits from existing recordings of normal sound instead (WAV files
or folders of them, any rate; each file is cut into 10 s windows; files are
the out-of-fold groups), e.g. clips from `edge-monitor record`:

  edge-monitor learn --from-wav /data/rail/train --out /tmp/rail-model

Exit status: 0 bundle written; 1 device not found or cannot be opened, or
too few usable windows; 2 bad arguments; 3 the device stayed gone past
--give-up-after (nothing written); 66 a WAV is missing or unreadable; 73 the
bundle folder (or, with --update-config, the config) cannot be written;
78 config error.
"""

MAX_MINUTES = 120.0  # ~115 MB of log-mels; the frame Gaussian subsamples beyond ~107 minutes anyway
EX_NOINPUT = 66
EX_CANTCREAT = 73


def _device(text: str) -> int | str:
    return int(text) if text.isdigit() else text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", default=None, metavar="C.yaml",
                        help="the daemon's config: audio.* for the microphone, state_dir for the bundle")
    # Not an argparse mutually exclusive group: its error is a usage block, not one line.
    parser.add_argument("--minutes", type=float, default=None,
                        help="minutes of normal sound to record (fractions allowed; at least 0.5, 10 is a good start)")
    parser.add_argument("--from-wav", nargs="+", default=None, metavar="WAV_OR_DIR",
                        help="fit from these normal recordings instead of the microphone")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="bundle folder, new or empty (default <state_dir>/models/learned-<UTC time>)")
    parser.add_argument("--device", type=_device, default=None,
                        help="input device: name substring or index (default: the config's, else the system default)")
    parser.add_argument("--update-config", action="store_true",
                        help="point the config's `model:` line at the new bundle (the file is rewritten in place)")
    parser.add_argument("--give-up-after", type=float, default=60.0, metavar="SECONDS",
                        help="stop (exit status 3) when the device stays gone this long (default 60 s)")


def _fail(message: str, status: int) -> int:
    from edge_monitor.commands.common import fail

    return fail("learn", message, status)


def _check_args(args: argparse.Namespace) -> str | None:
    """What is wrong with the arguments alone (exit status 2), or ``None``."""
    from edge_monitor.features.frontend import FeatureParams
    from edge_monitor.model.learn import MIN_WINDOWS

    if (args.minutes is None) == (args.from_wav is None):
        return "need either --minutes N (record from the microphone) or --from-wav PATH... (not both)"
    if args.minutes is not None:
        window_s = FeatureParams().window_seconds
        least = MIN_WINDOWS * window_s / 60
        if not least <= args.minutes <= MAX_MINUTES:
            return (f"need {least:g} <= --minutes <= {MAX_MINUTES:g} ({window_s:g} s windows, at least "
                    f"{MIN_WINDOWS}), got {args.minutes:g}")
        if not args.give_up_after > 0:
            return "need --give-up-after > 0"
    if args.from_wav is not None and args.device is not None:
        return "--device is for recording; --from-wav reads files"
    if args.config is None and args.out is None:
        return "need --config (the bundle goes under its state_dir) or --out DIR"
    if args.update_config and args.config is None:
        return "--update-config needs --config"
    return None


class ProgressLine:
    """Recording progress: an updating line on a terminal, else a line every 10 %.

    Args:
        total: windows expected.
        window_seconds: window length (s).
        stream: where to write (stdout).
    """

    def __init__(self, total: int, window_seconds: float, stream: TextIO | None = None) -> None:
        self.total = total
        self.window_seconds = window_seconds
        self.stream = stream if stream is not None else sys.stdout
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._tenth = 0
        self._open = False

    def update(self, done: int, dropped: int) -> None:
        """``done`` of :attr:`total` windows recorded, ``dropped`` of them with sensor faults."""
        from edge_monitor.util.progress import progress_text

        minutes = done * self.window_seconds / 60
        # Recording runs in real time: the time so far is the audio recorded, the time left the audio to come.
        line = (f"recording: {progress_text(done, self.total, done * self.window_seconds, 'windows')} "
                f"({minutes:.1f} of {self.total * self.window_seconds / 60:.1f} min)"
                + (f", {dropped} dropped for sensor faults" if dropped else ""))
        if self.tty:
            self.stream.write("\r" + line + "\x1b[K")
            self._open = done < self.total
            if not self._open:
                self.stream.write("\n")
        else:
            tenth = 10 * done // self.total
            if tenth > self._tenth or done == self.total:
                self._tenth = tenth
                self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        """End an unfinished updating line (interrupted)."""
        if self._open:
            self.stream.write("\n")
            self.stream.flush()
            self._open = False


def _record(args: argparse.Namespace, audio: AudioConfig, windows: WindowSet) -> tuple[JsonObject, str | None]:
    """Record ``--minutes`` into ``windows``; ``(source metadata, why it ended early or None)``.

    Raises:
        RecordError: the device cannot be opened (1) or stayed gone (3).
    """
    from edge_monitor.audio.recorder import Recorder
    from edge_monitor.model.conditioning import to_model_audio
    from edge_monitor.service import logs

    params = windows.params
    want = int(round(args.minutes * 60 / params.window_seconds, 6))
    logs.configure("info", "auto")
    log = logs.get_logger("edge_monitor.model.learn")
    recorder = Recorder(audio, params.sample_rate, params.window_seconds, log)
    recorder.start()
    print(f"recording {args.minutes:g} min ({want} windows of {params.window_seconds:g} s) from "
          f"{recorder.device_name!r} at {recorder.sample_rate} Hz: keep the machine running NORMALLY "
          f"(Ctrl-C stops early and fits what was recorded)", flush=True)
    progress = ProgressLine(want, params.window_seconds)
    done, early = 0, None
    try:
        for w in recorder.windows(want, args.give_up_after):
            mono = to_model_audio(w.raw, w.sample_rate, params.sample_rate, params.window_samples, audio.channel)
            windows.add(mono, w.raw, w.sample_rate, position=w.index, xruns=w.xruns)
            done += 1
            progress.update(done, windows.n_dropped)
    except KeyboardInterrupt:
        early = f"interrupted after {done} of {want} windows"
    finally:
        progress.close()
        recorder.stop()
    source: JsonObject = {"source": "microphone", "device": recorder.device_name, "capture_rate": recorder.sample_rate,
              "minutes": round(done * params.window_seconds / 60, 3), "windows_recorded": done}
    return source, early


def _read_wavs(args: argparse.Namespace, channel: int | None, windows: WindowSet) -> JsonObject:
    """Read ``--from-wav`` into ``windows``; the source metadata. Raises LearnError (66)."""
    from edge_monitor.audio.replay import expand_paths
    from edge_monitor.model.learn import LearnError, wav_windows

    paths = expand_paths(args.from_wav)
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise LearnError(f"no such file: {missing[0]}")
    if not paths:
        raise LearnError("no WAV files found in " + " ".join(args.from_wav))
    n = 0
    for i, j, w in wav_windows(paths, windows.params, channel):
        windows.add(w, w, windows.params.sample_rate, position=j, source=i)
        n += 1
    print(f"read {len(paths)} file(s): {n} windows of {windows.params.window_seconds:g} s", flush=True)
    return {"source": "wav", "files": len(paths), "windows_read": n}


def _groups(windows: WindowSet) -> tuple[np.ndarray, str]:
    """Files when there are two or more, else ~1-minute blocks of the recording."""
    import numpy as np

    from edge_monitor.model.learn import block_groups

    files = np.asarray(windows.sources)
    if np.unique(files).size >= 2:
        return files, f"{np.unique(files).size} groups (one per file)"
    return block_groups(windows.positions, windows.params.window_seconds)


def _summary(meta: JsonObject, out: Path, windows: WindowSet, groups_text: str, seconds: float) -> list[str]:
    """What was fitted, in a few lines."""
    from edge_monitor.model.model_json import ModelJson
    from edge_monitor.util.jsonutil import to_float

    doc = ModelJson.from_dict(meta)
    dets = [d.describe() for d in doc.detectors]
    thr = doc.threshold
    fused = f", fused by {doc.fusion.rule}" if doc.fusion.rule != "none" else ""
    lines = [f"fitted: {'; '.join(dets)}{fused}",
             (f"  from {len(windows)} windows of {windows.params.window_seconds:g} s "
              f"({len(windows) * windows.params.window_seconds / 60:.1f} min; {windows.dropped_text()}); "
              f"out-of-fold: {groups_text}"),
             f"  threshold {thr.value:.4g} ({thr.describe()})" + (f"; {thr.note}" if thr.note else ""),
             (f"  fit {seconds:.1f} s (detectors {to_float(doc.training['fit_seconds']):.1f} s); "
              f"log-mels {windows.feature_seconds:.1f} s"),
             f"bundle: {out}"]
    if doc.selection is not None:
        lines[1:1] = doc.selection.lines()
    if len(windows) < 30:
        lines.append(f"note: {len(windows)} windows give a rough threshold; 10 minutes (60 windows) are better")
    return lines


def _next_steps(config: str | None, out: Path, updated: bool) -> list[str]:
    """What to run next, in order."""
    if config is None:
        return ["next: set `model: " + str(out) + "` in the daemon's config, then",
                "  edge-monitor check-config C.yaml --model",
                "  edge-monitor run --config C.yaml     (or: sudo systemctl restart edge-monitor)"]
    first = (f"  (done) {config}: model: {out}" if updated else
             f"  1. in {config} set:  model: {out}   (or rerun with --update-config)")
    return ["next:", first,
            f"  {'1' if updated else '2'}. edge-monitor check-config {config} --model",
            (f"  {'2' if updated else '3'}. edge-monitor run --config {config}"
             "     (as a service: sudo systemctl restart edge-monitor)")]


def _preflight(args: argparse.Namespace, out: Path) -> tuple[str, int] | None:
    """``(why, exit status)`` when the bundle folder or the config to update cannot be written, else ``None``.

    Checked before recording: nobody should record ten minutes to hear then
    that the result cannot be saved.
    """
    from edge_monitor.config.schema import EX_CONFIG
    from edge_monitor.model.learn import LearnError, rewrite_model, writable_dir

    why = writable_dir(out)
    if why:
        return why, EX_CANTCREAT
    if args.update_config:
        config = Path(args.config).resolve()
        try:
            rewrite_model(config.read_text(encoding="utf-8"), config, out)  # a dry run; written after the fit
        except LearnError as exc:
            return f"--update-config: {args.config}: {exc}; set `model:` by hand", EX_CONFIG
        if not os.access(config, os.W_OK):
            return f"--update-config: {args.config} is not writable (run with sudo?)", EX_CANTCREAT
    return None


def _collect(args: argparse.Namespace, audio: AudioConfig, windows: WindowSet) -> JsonObject:
    """Fill ``windows`` from the microphone or ``--from-wav``; the source metadata.

    Raises:
        RecordError: device problems (1, 3).
        LearnError: a missing or unreadable WAV (66).
    """
    from edge_monitor.audio.recorder import check_device

    if args.minutes is None:
        return _read_wavs(args, audio.channel, windows)
    check_device(audio)
    source, early = _record(args, audio, windows)
    if early:
        print(f"{early}: fitting what was recorded", flush=True)
    return source


def run(args: argparse.Namespace) -> int:
    from edge_monitor.audio.recorder import EX_DEVICE, RecordError, load_audio
    from edge_monitor.config.schema import EX_CONFIG
    from edge_monitor.features.frontend import FeatureParams
    from edge_monitor.model.learn import (
        LearnError,
        WindowSet,
        default_out_dir,
        fit,
        hand_over,
        set_config_model,
    )

    problem = _check_args(args)
    if problem:
        return _fail(problem, 2)
    try:
        cfg, audio = load_audio(args.config, args.device)
    except RecordError as exc:
        return _fail(str(exc), exc.status)
    out = Path(args.out) if args.out else default_out_dir(cfg.state_dir if cfg else Path("."))
    refused = _preflight(args, out)
    if refused:
        return _fail(*refused)
    windows = WindowSet(FeatureParams())
    try:
        source = _collect(args, audio, windows)
    except RecordError as exc:
        if exc.status == EX_DEVICE:
            return _fail(str(exc), exc.status)
        return _fail(f"{exc}; recorded {len(windows) + windows.n_dropped} window(s), nothing written", exc.status)
    except LearnError as exc:
        return _fail(str(exc), EX_NOINPUT)
    groups, groups_text = _groups(windows)
    source.update({"windows_dropped": dict(windows.dropped), "groups": groups_text, "command": "edge-monitor learn"})
    t0 = time.monotonic()
    try:
        meta = fit(windows, out, groups=groups, machine=cfg.device_id if cfg else "",
                   machine_ids=[cfg.device_id] if cfg else [], source=source)
    except (LearnError, ValueError) as exc:  # ValueError: data the detectors cannot be fitted on
        return _fail(f"cannot fit: {exc}" if isinstance(exc, ValueError) else str(exc), EX_DEVICE)
    except OSError as exc:
        return _fail(f"cannot write {out}: {exc.strerror or exc}", EX_CANTCREAT)
    try:
        hand_over(out, cfg.state_dir if cfg else None)
    except OSError as exc:
        print(f"warning: the daemon may not be able to read {out}: {exc}", file=sys.stderr, flush=True)
    print("\n".join(_summary(meta, out.resolve(), windows, groups_text, time.monotonic() - t0)), flush=True)
    updated = False
    if args.update_config:
        try:
            set_config_model(args.config, out)
            updated = True
        except LearnError as exc:
            print("\n".join(_next_steps(args.config, out.resolve(), False)), flush=True)
            return _fail(f"--update-config: {exc}", EX_CONFIG)
    print("\n".join(_next_steps(args.config, out.resolve(), updated)), flush=True)
    return 0
