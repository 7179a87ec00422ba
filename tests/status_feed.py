"""Hours of status-page data in seconds: the real daemon and page, fed windows with synthetic times.

The daemon (with its ``http:`` server and status board) processes real
``Window`` objects built from a few real clips, back to back in synthetic
window time that ends now, so the chart shows what an hour of monitoring
looks like without waiting an hour. Only the score *numbers* come from a
script (:class:`ScriptedScorer`: the real scorer's ``WindowScore`` of the
clip, with its ``score`` replaced), so a page test can put normal windows,
the threshold and a 20x anomaly exactly where it needs them. Used by
``tests/test_http_browser.py`` and ``docs/examples/status_page_screenshot.py``.
"""

from __future__ import annotations

import dataclasses
import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from edge_monitor.audio.ring_buffer import Window
from edge_monitor.commands.run import serve_status_page
from edge_monitor.config.loader import parse_config
from edge_monitor.model.scorer import Scorer, WindowScore
from edge_monitor.service import logs
from edge_monitor.service.daemon import Daemon, NullPublisher
from edge_monitor.web.server import HttpService


class ScriptedScorer:
    """A :class:`Scorer` whose window scores are the next numbers of ``scores``.

    Everything else in the ``WindowScore`` (band errors, log-mel, the fired
    detector) is the real scorer's for that window's audio, computed once per
    distinct clip, so explanations and evidence stay those of real sound.
    """

    def __init__(self, inner: Scorer, scores: Iterator[float]) -> None:
        self.inner = inner
        self.scores = scores
        self._cache: dict[bytes, WindowScore] = {}

    @property
    def bundle(self) -> Any:
        return self.inner.bundle

    @property
    def window_samples(self) -> int:
        return self.inner.window_samples

    def predict(self, window: Window, channel: int | None = None, max_invalid: float = 1.0) -> WindowScore:
        samples = window.samples
        key = samples[:: max(1, samples.size // 64)].tobytes()
        ws = self._cache.get(key)
        if ws is None:
            ws = self._cache[key] = self.inner.predict(window, channel, max_invalid)
        return dataclasses.replace(ws, score=float(next(self.scores)))


def scripted_daemon(tmp: Path, bundle_dir: Path, scores: list[float], hop: float,
                    threshold: float | None = None, device_id: str = "rail-07") -> Daemon:
    """A daemon with the ``http:`` page on 127.0.0.1 (a free port) that will score ``scores`` in order."""
    cfg = parse_config(yaml.safe_dump({
        "device_id": device_id, "model": str(bundle_dir), "state_dir": str(tmp / "state"),
        "mqtt": {"enabled": False}, "audio": {"hop_seconds": hop},
        "http": {"listen": "127.0.0.1:0", "history_seconds": 3600},
        "decision": {"k": 2, "n": 3, "clear_windows": 3, "cooldown_seconds": 0,
                     **({"threshold": threshold} if threshold is not None else {})}}), str(tmp / "c.yaml"))
    from edge_monitor.model.bundle import load_bundle

    logs.configure("warning", "json", stream=io.StringIO())
    scorer = ScriptedScorer(Scorer(load_bundle(bundle_dir)), iter(scores))
    daemon = Daemon(cfg, scorer, NullPublisher(), logs.get_logger("status-feed"), notifier=_NoNotify())
    serve_status_page(daemon, cfg, daemon.log)  # as `run` and `simulate` attach the page
    return daemon


def page_of(daemon: Daemon) -> HttpService:
    """The status page :func:`scripted_daemon` attached (its server and board)."""
    return next(o for o in daemon.observers if isinstance(o, HttpService))


def feed(daemon: Daemon, clips: list[np.ndarray], hop: float, end: float | None = None, start: bool = True) -> None:
    """Process one window per clip (mono, the model's rate), ``hop`` s apart, the last ending at ``end``.

    The same array may appear many times (it is never copied); window times
    are synthetic: ``end`` (default now) minus the stream's length. ``start``:
    tell the observers the loop starts (the page's server binds): the first
    call only.
    """
    rate = daemon.model_rate
    end = time.time() if end is None else end
    first = end - daemon.window_seconds - hop * (len(clips) - 1)
    if start:
        daemon._observe("start", None)
    for i, clip in enumerate(clips):
        t = first + i * hop
        win = Window(samples=clip.reshape(-1, 1), index=i, start_sample=round(i * hop * rate), sample_rate=rate,
                     start_time=t, end_time=t + daemon.window_seconds)
        daemon.process(win)
        daemon._observe("window", win)
    daemon._observe("tick", None)


class _NoNotify:
    """No systemd here: every message is "not sent"."""

    def ready(self, status_text: str | None = None) -> bool:
        return False

    def status(self, text: str) -> bool:
        return False

    def watchdog(self) -> bool:
        return False

    def stopping(self, status_text: str | None = None) -> bool:
        return False
