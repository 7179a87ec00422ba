"""The status page of a running ``edge-monitor simulate``, rendered by headless Chromium (selenium).

The CLI runs in a subprocess with ``http.listen: 127.0.0.1:0``; its JSON log
line ``http server listening`` gives the URL. A threshold far below any score
with k = n = 1 makes the first window open an alert, so the page must show
the alert with an ``<audio>`` element whose WAV loads from ``/evidence/``.

Set ``EDGE_MONITOR_SCREENSHOT=path.png`` to keep a screenshot of the page.
The chart test feeds the daemon two hours of windows in synthetic time
(``tests/status_feed.py``, as docs/examples/status_page_screenshot.py does for
the screenshots in docs/raspberry-pi.md).
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_daemon import bundle_and_profile, synth_clips
from test_report_browser import _chromium_options

from edge_monitor.audio import audio_io
from tests.conftest import require, require_binary

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def browser(tmp_path: Path) -> Any:
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        require(False, "selenium is not installed (pip install selenium)")
    opts = _chromium_options(tmp_path / "chromium-profile")
    opts.add_argument("--autoplay-policy=no-user-gesture-required")
    service = Service(executable_path=require_binary("chromedriver"), log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=opts)
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


class Simulate:
    """``edge-monitor simulate --loop`` with the HTTP server on, until :meth:`stop`."""

    def __init__(self, cfg: Path, inputs: list[Path], fast: bool = False) -> None:
        cmd = [sys.executable, "-m", "edge_monitor", "simulate", "--config", str(cfg), "--no-mqtt", "--loop",
               "--log-format", "json", *(["--fast"] if fast else []), *map(str, inputs)]
        self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[dict] = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()  # type: ignore[union-attr]

    def _pump(self) -> None:
        for line in self.proc.stderr:  # type: ignore[union-attr]
            self.stderr.append(line)
            if line.startswith("{"):
                try:
                    self.lines.put(json.loads(line))
                except ValueError:
                    pass

    def wait_log(self, event: str, timeout: float) -> dict:
        """The first JSON log line whose ``event`` is ``event`` (blocks on the pipe, no polling)."""
        import time

        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None and self.lines.empty():
                raise AssertionError(f"no {event!r} log line; stderr:\n{''.join(self.stderr)[-3000:]}")
            try:
                rec = self.lines.get(timeout=min(left, 1.0))
            except queue.Empty:
                continue
            if rec.get("event") == event:
                return rec

    def stop(self) -> int:
        import time

        self.stop_s = 0.0
        t0 = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=20)
            self.stop_s = time.monotonic() - t0
            return rc
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise


def write_config(tmp_path: Path, model_dir: Path, **decision: float) -> Path:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"device_id": "rail-page", "model": str(model_dir),
                                   "state_dir": str(tmp_path / "state"), "mqtt": {"enabled": False},
                                   "http": {"listen": "127.0.0.1:0"}, "decision": decision}))
    return cfg


def test_simulate_serves_a_page_chromium_renders_with_an_alert_and_its_audio(
        request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, browser: Any) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    bundle_dir, seed, mid = bundle_and_profile(request, tmp_path_factory)
    clips = [audio_io.write_wav(tmp_path / f"n{i}.wav", c) for i, c in enumerate(synth_clips(seed, mid, None, 2,
                                                                                             salt=61))]
    # Every window scores above this threshold: the first window (10 s of real-time replay) opens an alert.
    cfg = write_config(tmp_path, bundle_dir, threshold=1e-9, k=1, n=1)
    sim = Simulate(cfg, clips)
    try:
        url = sim.wait_log("http server listening", 120)["url"]
        sim.wait_log("alert start", 120)
        browser.get(url)
        WebDriverWait(browser, 30).until(lambda d: d.execute_script(
            "return document.body.dataset.loaded === '1' && document.querySelectorAll('#alerts audio').length > 0"))
        page = browser.execute_script("""
            const a = document.querySelector('#alerts audio');
            return {device: document.getElementById('device').textContent,
                    state: document.getElementById('state').textContent,
                    points: document.querySelectorAll('#chart circle.pt').length,
                    threshold: !!document.getElementById('thline'),
                    explanation: document.querySelector('#alerts .explanation').textContent,
                    verdict: document.getElementById('verdict').textContent,
                    link: document.getElementById('link').textContent,
                    src: a.currentSrc || a.src};""")
        # The evidence loads: wait for its metadata (or an error) inside the page.
        audio = browser.execute_async_script("""
            const done = arguments[arguments.length - 1];
            const a = document.querySelector('#alerts audio');
            const report = () => done({ready: a.readyState, error: a.error && a.error.code, duration: a.duration});
            if (a.readyState >= 1 || a.error) { report(); return; }
            a.addEventListener('loadedmetadata', report, {once: true});
            a.addEventListener('error', report, {once: true});
            a.load();""")
        shot = os.environ.get("EDGE_MONITOR_SCREENSHOT")
        if shot:
            browser.save_screenshot(shot)
        logs = browser.get_log("performance")
    finally:
        rc = sim.stop()
    assert rc == 0, "".join(sim.stderr)[-3000:]
    assert sim.stop_s < 5.0, sim.stop_s  # SIGTERM: still within the daemon's 5 s with the server on
    assert page["device"] == "rail-page"
    assert page["state"] == "anomaly"
    assert page["points"] >= 1 and page["threshold"]
    assert page["explanation"] and page["verdict"] and page["verdict"] != "waiting for the first window"
    assert "replay of WAV files" in page["link"] and "files_played" not in page["link"], page["link"]
    assert "/evidence/" in page["src"] and page["src"].endswith(".wav")
    assert audio["error"] is None and audio["ready"] >= 1, audio
    assert abs(audio["duration"] - 10.0) < 0.1, audio  # the 10 s window that raised the alert
    # Nothing but the monitor itself was contacted (no CDN).
    hosts, schemes = set(), set()
    for entry in logs:
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") == "Network.requestWillBeSent":
            req = msg["params"]["request"]["url"]
            schemes.add(req.split(":", 1)[0])
            if req.startswith(("http:", "https:", "ws:", "wss:")):
                hosts.add(req.split("/")[2])
    assert hosts == {url.split("/")[2]}, hosts
    assert schemes <= {"http", "data", "about", "chrome"}, schemes  # chrome: the built-in media controls


CHART_JS = """
const svg = document.getElementById('chart'), rect = svg.querySelector('rect');
const num = (el, a) => Number(el.getAttribute(a));
const box = (el) => { const b = el.getBBox(); return [b.x, b.y, b.x + b.width, b.y + b.height]; };
return {floor: Number(svg.dataset.floor), top: num(rect, 'y'), left: num(rect, 'x'),
        right: num(rect, 'x') + num(rect, 'width'),
        th: num(document.getElementById('thline'), 'y1'),
        pts: Array.from(svg.querySelectorAll('circle.pt')).map((c) => [num(c, 'cx'), num(c, 'cy'),
             Number(c.textContent)]),
        logpart: !!document.getElementById('logpart'),
        labels: Array.from(svg.querySelectorAll('text')).map((t) => [t.textContent, ...box(t)]),
        title: document.getElementById('charttitle').textContent};
"""


def test_chart_keeps_threshold_and_normal_windows_readable_next_to_a_20x_anomaly(
        request: pytest.FixtureRequest, tmp_path: Path, browser: Any) -> None:
    """Two hours of windows (scores scripted around threshold 1, one 20x anomaly), fed in synthetic time."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    from status_feed import feed, page_of, scripted_daemon

    bundle_dir, seed, mid = bundle_and_profile(request)
    normal = synth_clips(seed, mid, None, 1, salt=62)[0]
    hop, n = 10.0, 720
    scores = [0.5 + 0.3 * ((i * 7) % 11) / 10 for i in range(n)]  # 0.5 ... 0.8 of the threshold
    scores[n - 40:n - 36] = [20.0, 8.0, 12.0, 3.0]
    daemon = scripted_daemon(tmp_path, bundle_dir, scores, hop, threshold=1.0)
    feed(daemon, [normal] * n, hop)
    try:
        browser.get(page_of(daemon).url)
        WebDriverWait(browser, 30).until(lambda d: d.execute_script(
            "return document.body.dataset.loaded === '1' && document.querySelectorAll('#chart circle.pt').length"))
        hour = browser.execute_script(CHART_JS)
        views = {}
        for span in ("24 h", "10 min"):
            browser.find_element(By.XPATH, f"//div[@id='spans' or @class='charthead']//button[text()='{span}']").click()
            views[span] = browser.execute_script(CHART_JS)
    finally:
        daemon._observe("stop", None)
    height = hour["floor"] - hour["top"]
    # The threshold line and the normal windows stand well clear of the floor, although the
    # anomaly scores 20x the threshold: the range above 2x the threshold is compressed (log).
    assert hour["logpart"]
    assert hour["floor"] - hour["th"] > 0.25 * height, hour["th"]
    normals = [p for p in hour["pts"] if p[2] < 1.0]
    assert normals and all(hour["floor"] - cy > 0.1 * height for _, cy, _ in normals)
    assert all(cy - hour["th"] > 5 for _, cy, _ in normals)  # below the threshold line, visibly
    peak = min(cy for _, cy, _ in hour["pts"])
    assert hour["top"] <= peak < hour["th"]  # the 20x window is on the chart, near its top
    # The span follows the data: the first window of the hour at the left edge, the last at the right.
    xs = [cx for cx, _, _ in hour["pts"]]
    assert min(xs) - hour["left"] < 3 and hour["right"] - max(xs) < 3
    assert "last 60 min" in hour["title"] or "last 1 h" in hour["title"], hour["title"]
    # 24 h: the per-minute summary of the two hours; 10 min: the last 60 windows.
    assert "highest per minute" in views["24 h"]["title"] and "2 h" in views["24 h"]["title"], views["24 h"]["title"]
    assert len(views["24 h"]["pts"]) == pytest.approx(120, abs=2)
    assert len(views["10 min"]["pts"]) == pytest.approx(60, abs=1)
    for v in (hour, *views.values()):
        # Every label fits inside the drawing (no "0 mi").
        for text, x0, _y0, x1, _y1 in v["labels"]:
            assert 0 <= x0 and x1 <= 1000, (text, x0, x1)
