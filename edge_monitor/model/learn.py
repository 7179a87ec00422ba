"""Learning a model on the Pi: normal windows in, a NumPy-detector bundle out (``edge-monitor learn``).

No TensorFlow and no scikit-learn: the detectors (level profile + frame
Gaussian, :mod:`edge_monitor.model.fit`) are fitted with NumPy (+ SciPy's gamma
fit for the threshold), so the runtime package alone can do it.

The pieces, used by :mod:`edge_monitor.commands.learn`:

* :class:`WindowSet` collects 10 s windows (from the microphone or from
  WAVs), drops those with sensor faults (a dead input, clipping, dropouts or
  an xrun burst is not the machine's normal sound) and keeps the log-mel of
  the others, cropped to the model's frames;
* :func:`block_groups` says which windows are alike for the out-of-fold
  split that sets the threshold: consecutive windows of one recording sound
  alike, so a window must not be scored by a detector fitted on its
  neighbours; blocks of about a minute are held out together;
* :func:`fit` writes the bundle (:func:`edge_monitor.model.fit.write_numpy_bundle`);
* :func:`set_config_model` rewrites the ``model:`` line of a config in place
  (``--update-config``).
"""

from __future__ import annotations

import errno
import json
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from edge_monitor.features.frontend import FeatureParams, logmel, model_frames
from edge_monitor.util.durable import replace_durably
from edge_monitor.util.jsonutil import JsonObject

__all__ = [
    "BLOCK_SECONDS",
    "MIN_WINDOWS",
    "LearnError",
    "WindowSet",
    "block_groups",
    "default_out_dir",
    "find_model_value",
    "fit",
    "hand_over",
    "rewrite_model",
    "set_config_model",
    "wav_windows",
]

#: Fewest clean windows to fit: out-of-fold scoring fits each detector without one
#: group, and a detector needs at least 2 windows.
MIN_WINDOWS = 3
#: Windows within this many seconds of recording form one out-of-fold group.
BLOCK_SECONDS = 60.0

Progress = Callable[[str], None]


class LearnError(Exception):
    """Learning cannot go on; the message is one line for the user."""


@dataclass
class WindowSet:
    """Normal windows' log-mels and where each came from; windows with sensor faults are counted, not kept.

    Attributes:
        params: the front end (the bundle's features).
        db: per kept window, its log-mel ``(n_mels, frames)`` in dB.
        positions: per kept window, its index in its recording (0, 1, ...;
            windows are consecutive, so index x window length = start time).
        sources: per kept window, which recording (file) it came from.
        dropped: fault kind -> windows dropped for it (a window with two
            faults counts under both).
        n_dropped: windows dropped.
        feature_seconds: time spent on log-mels (s).
        samples: kept window index -> its samples, for an evenly spread share
            of at most :data:`edge_monitor.model.select.MAX_PSEUDO_WINDOWS`
            windows (every ``stride``-th): what the pseudo-anomalies that choose
            the detectors are made from (10 s at 16 kHz: 640 kB each).
        stride: the spacing of the windows whose samples are kept.
    """

    params: FeatureParams = field(default_factory=FeatureParams)
    db: list[np.ndarray] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    sources: list[int] = field(default_factory=list)
    dropped: Counter[str] = field(default_factory=Counter)
    n_dropped: int = 0
    feature_seconds: float = 0.0
    samples: dict[int, np.ndarray] = field(default_factory=dict)
    stride: int = 1

    @property
    def frames(self) -> int:
        """Log-mel frames kept per window (313 -> 312, what the bundle's detectors score)."""
        return model_frames(self.params.window_frames)

    def __len__(self) -> int:
        return len(self.db)

    def add(self, mono: np.ndarray, raw: np.ndarray, sample_rate: int, *, position: int, source: int = 0,
            xruns: int = 0) -> bool:
        """Check one window and keep its log-mel when it is clean; ``True`` when kept.

        Args:
            mono: ``(window_samples,)`` float32 at ``params.sample_rate``.
            raw: the same window as captured (``(n,)`` or ``(n, channels)`` at
                ``sample_rate`` Hz): the sensor checks see every channel.
            sample_rate: the rate of ``raw`` (Hz).
            position: the window's index in its recording.
            source: the recording it came from.
            xruns: capture overflows during the window.
        """
        from edge_monitor.audio.sensor_health import check_window

        status = check_window(raw, sample_rate, xruns=xruns, bits=16)  # bits=16: as the daemon checks
        if not status.ok:
            self.n_dropped += 1
            self.dropped.update(status.kinds)
            return False
        t0 = time.monotonic()
        self.db.append(logmel(mono, self.params)[:, : self.frames])
        self.feature_seconds += time.monotonic() - t0
        self._keep_samples(len(self.db) - 1, mono)
        self.positions.append(int(position))
        self.sources.append(int(source))
        return True

    def _keep_samples(self, index: int, mono: np.ndarray) -> None:
        from edge_monitor.model.select import MAX_PSEUDO_WINDOWS

        if index % self.stride:
            return
        self.samples[index] = np.array(mono, dtype=np.float32)
        if len(self.samples) > MAX_PSEUDO_WINDOWS:
            # Twice the spacing: the kept windows stay evenly spread over the whole recording.
            self.stride *= 2
            self.samples = {i: x for i, x in self.samples.items() if i % self.stride == 0}

    def dropped_text(self) -> str:
        """E.g. ``2 dropped for sensor faults (dead_input 1, clipping 1)``, or ``none dropped``."""
        if not self.n_dropped:
            return "none dropped for sensor faults"
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.dropped.items()))
        return f"{self.n_dropped} dropped for sensor faults ({kinds})"

    def array(self) -> np.ndarray:
        """``(n, n_mels, frames)`` float32 dB."""
        return np.stack(self.db).astype(np.float32, copy=False)


def block_groups(positions: Sequence[int], window_seconds: float,
                 block_seconds: float = BLOCK_SECONDS) -> tuple[np.ndarray, str]:
    """Out-of-fold groups for consecutive windows of one recording, and a few words on them.

    Windows within the same ``block_seconds`` of recording share a group
    (neighbours sound alike, so they are held out together). With fewer than
    two blocks' worth of windows there would be too few groups: then every
    window is its own group.

    Args:
        positions: each window's index in the recording (gaps where windows were dropped).
        window_seconds: window length (s).
        block_seconds: block length (s).
    """
    pos = np.asarray(positions, dtype=np.int64)
    per_block = max(1, round(block_seconds / window_seconds))
    span = int(pos.max()) + 1 if pos.size else 0
    if span < 2 * per_block:
        return np.arange(pos.size), (f"each window its own group (under {2 * block_seconds / 60:g} minutes "
                                     f"of audio: too short for {block_seconds:g} s blocks)")
    groups = pos // per_block
    return groups, f"{np.unique(groups).size} groups of {per_block * window_seconds:g} s"


def wav_windows(paths: Sequence[Path], params: FeatureParams,
                channel: int | None = None) -> Iterator[tuple[int, int, np.ndarray]]:
    """``(file index, window index in the file, (window_samples,) float32)`` of every WAV, as the trainer cuts them.

    Each file is read with ``audio_io.read_wav`` (any rate and width,
    downmixed, resampled to ``params.sample_rate``) and cut with
    ``audio_io.clip_windows``.

    Raises:
        LearnError: an unreadable file or one shorter than half a window.
    """
    from edge_monitor.audio import audio_io

    for i, path in enumerate(paths):
        try:
            samples = audio_io.read_wav(path, params.sample_rate, channel)
            windows = audio_io.clip_windows(samples, params.window_samples)
        except audio_io.AudioFileError as exc:
            raise LearnError(str(exc)) from None
        except ValueError as exc:  # ClipTooShortError
            raise LearnError(f"{path}: {exc}") from None
        for j, w in enumerate(windows):
            yield i, j, w


def fit(windows: WindowSet, out_dir: Path, *, groups: np.ndarray, machine: str, machine_ids: Sequence[str],
        source: JsonObject, progress: Progress | None = None) -> JsonObject:
    """Choose among and fit the NumPy detectors on ``windows``, write the bundle to ``out_dir``; model.json.

    The detectors and their weights are chosen from pseudo-anomalies made from
    the kept windows' samples (:mod:`edge_monitor.model.select`); the threshold
    is the default false-alarm budget's (:mod:`edge_monitor.model.threshold`).

    Raises:
        LearnError: fewer than :data:`MIN_WINDOWS` clean windows, or fewer than 2 groups.
    """
    from edge_monitor.model.fit import write_numpy_bundle

    if len(windows) < MIN_WINDOWS:
        raise LearnError(f"only {len(windows)} usable window(s) ({windows.dropped_text()}); "
                         f"need at least {MIN_WINDOWS}")
    if np.unique(groups).size < 2:
        raise LearnError("all windows are in one group; need at least 2 for the out-of-fold threshold")
    index = sorted(windows.samples)
    return write_numpy_bundle(out_dir, windows.array(), groups, windows.params, machine=machine,
                              machine_ids=machine_ids, source=source, progress=progress,
                              waves=[windows.samples[i] for i in index], wave_index=index)


def hand_over(out: Path, state_dir: Path | None) -> None:
    """Make a written bundle readable by the daemon.

    The bundle writer's temporary files are created 0600 (``mkstemp``), which
    would ignore the umask: the files get the mode a plain ``open`` would
    give. When root writes the bundle inside the daemon's ``state_dir`` (``sudo
    edge-monitor learn``), the bundle and the folders created for it are
    handed to the owner of ``state_dir`` (the service user), as the files the
    service writes there are.
    """
    umask = os.umask(0)
    os.umask(umask)
    files = [f for f in Path(out).iterdir() if f.is_file()]
    for f in files:
        os.chmod(f, 0o666 & ~umask)
    if state_dir is None or not hasattr(os, "geteuid") or os.geteuid() != 0:
        return
    base = Path(state_dir).resolve()
    try:
        rel = Path(out).resolve().relative_to(base)
    except ValueError:
        return  # elsewhere (--out): left to whoever asked for it there
    st = base.stat()
    p = base
    for part in rel.parts:
        p = p / part
        os.chown(p, st.st_uid, st.st_gid)
    for f in files:
        os.chown(f, st.st_uid, st.st_gid)


def default_out_dir(state_dir: Path, now: float | None = None) -> Path:
    """``<state_dir>/models/learned-<UTC time>``, e.g. ``learned-20261202T061500Z``."""
    stamp = datetime.fromtimestamp(time.time() if now is None else now, UTC).strftime("%Y%m%dT%H%M%SZ")
    return Path(state_dir) / "models" / f"learned-{stamp}"


def writable_dir(path: Path) -> str | None:
    """Why ``path`` cannot be created (or written into), or ``None`` when it can; creates nothing."""
    p = Path(path).absolute()
    if p.exists():
        if not p.is_dir():
            return f"{p} exists and is not a folder"
        if any(p.iterdir()):
            return f"{p} exists and is not empty (choose a new --out; a running daemon may be using it)"
        return None if os.access(p, os.W_OK) else f"{p}: permission denied"
    parent = p.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        return f"{parent} is not a folder"
    return None if os.access(parent, os.W_OK | os.X_OK) else f"cannot create {p}: {parent} is not writable"


# --- --update-config ----------------------------------------------------------------

_PLAIN = re.compile(r"[A-Za-z0-9_./@+~-][A-Za-z0-9_./@+~:-]*")


def find_model_value(text: str) -> tuple[int, int]:
    """Where the value of the config's top-level ``model:`` key sits in ``text``: ``(start, end)`` characters.

    From the YAML parser's own marks, so quoting, comments and flow style
    (``{model: x}``) are handled exactly as the config loader reads them.

    Raises:
        LearnError: not a YAML mapping, no ``model`` key, or its value is not a plain string.
    """
    import yaml

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise LearnError(f"invalid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(root, yaml.MappingNode):
        raise LearnError("the config is not a YAML mapping")
    found = [v for k, v in root.value if isinstance(k, yaml.ScalarNode) and k.value == "model"]
    if len(found) != 1 or not isinstance(found[0], yaml.ScalarNode):
        raise LearnError(f"found {len(found)} top-level 'model' key(s) with a plain value, need exactly one")
    return found[0].start_mark.index, found[0].end_mark.index


def _yaml_scalar(path: str) -> str:
    """``path`` as a YAML scalar: plain when safe, else double-quoted (JSON strings are valid YAML)."""
    return path if _PLAIN.fullmatch(path) and not path.endswith(":") else json.dumps(path)


def rewrite_model(text: str, config: Path, bundle_dir: Path) -> str:
    """``text`` (the config at ``config``) with its ``model`` value replaced by ``bundle_dir`` (absolute).

    Every other character stays. The result is validated as a config (an
    alias to an anchor on the old value, for one, would break it).

    Raises:
        LearnError: no single ``model`` key, or the result does not validate.
    """
    from edge_monitor.config.loader import parse_config
    from edge_monitor.config.schema import ConfigError

    start, end = find_model_value(text)
    new = text[:start] + _yaml_scalar(str(Path(bundle_dir).resolve())) + text[end:]
    try:
        cfg = parse_config(new, str(config), Path(config).parent)
    except ConfigError as exc:
        raise LearnError(f"the rewritten config would not validate: {exc}") from None
    if Path(cfg.model).resolve() != Path(bundle_dir).resolve():
        raise LearnError(f"the rewritten config's model would be {cfg.model}, not {bundle_dir}")
    return new


def set_config_model(config: str | os.PathLike[str], bundle_dir: Path) -> Path:
    """Point the config's ``model`` at ``bundle_dir`` (:func:`rewrite_model`); the file written.

    The file is replaced atomically where its folder is writable (mode and
    owner kept), so a failure leaves it as it was.

    Raises:
        LearnError: see :func:`rewrite_model`; or the file cannot be written.
    """
    path = Path(config).resolve()  # a symlinked config: rewrite its target, keep the link
    _replace_text(path, rewrite_model(path.read_text(encoding="utf-8"), path, bundle_dir))
    return path


def _replace_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a synced temporary file renamed over it (durably).

    In place instead when only the folder refuses us (``EACCES``/``EPERM``: a
    config the user may edit in a folder they may not). Any other failure (a
    full disk) leaves the file as it was: rewriting it in place could leave
    half a config behind.
    """
    st = path.stat()
    tmp = path.with_name(f".{path.name}.learn.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, st.st_mode & 0o7777)
    except OSError as exc:
        if exc.errno not in (errno.EACCES, errno.EPERM):
            raise LearnError(f"cannot write {path}: {exc.strerror or exc}") from None
        fd = -1
    if fd < 0:
        try:
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise LearnError(f"cannot write {path}: {exc.strerror or exc}") from None
        return
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())  # with the folder's fsync below: a power cut leaves the old or the new config
        os.chmod(tmp, st.st_mode & 0o7777)  # os.open's mode is filtered by the umask
        try:
            os.chown(tmp, st.st_uid, st.st_gid)
        except OSError:
            pass  # not root: the file stays ours, as it was if we could write it
        replace_durably(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise LearnError(f"cannot write {path}: {exc.strerror or exc}") from None
