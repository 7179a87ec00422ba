#!/usr/bin/env python3
"""Make docs/examples/status-page.png: the status page after a normal -> anomalous -> normal replay.

    .venv/bin/python docs/examples/status_page_screenshot.py BUNDLE_DIR [--out docs/examples/status-page.png]

Synthesises an hour-ish of the bundle's machine (``trainer.synth``, so the
training extra is needed): normal clips, a stretch with missing grease (a
squeal), normal again; scores them through the daemon's own ``process`` with
the ``http:`` server on (window times end now, so the chart's last hour shows
them), then photographs ``/`` with headless Chromium (selenium, as the tests
do). The threshold sits between the normal and the anomalous scores, as
``tests/test_daemon.py::separating_rule`` puts it.
"""

from __future__ import annotations

import argparse
import io
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle", type=Path)
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "examples" / "status-page.png")
    ap.add_argument("--hop", type=float, default=10.0)
    args = ap.parse_args()

    import numpy as np
    import yaml
    from PIL import Image
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait
    from test_daemon import Notes, RecordingPublisher, synth_clips

    from edge_monitor.service import logs
    from edge_monitor.model.bundle import load_bundle
    from edge_monitor.config.loader import parse_config
    from edge_monitor.service.daemon import Daemon
    from edge_monitor.audio.ring_buffer import RingBuffer
    from edge_monitor.model.scorer import Scorer

    bundle = load_bundle(args.bundle)
    scorer = Scorer(bundle)
    mid = bundle.machine_ids[0] if bundle.machine_ids else "id_00"
    seed = 1
    normal = synth_clips(seed, mid, None, 24, salt=3)
    bad = synth_clips(seed, mid, "missing_grease", 4, severity=5.0, salt=3)
    n_scores = [scorer.score_window(c).score for c in normal]
    a_scores = [scorer.score_window(c).score for c in bad]
    threshold = (max(n_scores) + min(a_scores)) / 2 if min(a_scores) > max(n_scores) else float(np.percentile(n_scores, 99))
    audio = np.concatenate(normal[:16] + bad + normal[16:]).astype(np.float32)
    rate = int(bundle.features.sample_rate)

    with tempfile.TemporaryDirectory() as tmp:
        cfg = parse_config(yaml.safe_dump({
            "device_id": "rail-07", "model": str(args.bundle), "state_dir": tmp, "mqtt": {"enabled": False},
            "audio": {"hop_seconds": args.hop}, "http": {"listen": "127.0.0.1:0"},
            "decision": {"threshold": threshold, "k": 2, "n": 3, "clear_windows": 2, "cooldown_seconds": 0}}),
            f"{tmp}/c.yaml")
        logs.configure("warning", "json", stream=io.StringIO())
        daemon = Daemon(cfg, scorer, RecordingPublisher(), logs.get_logger("shot"), notifier=Notes())
        window = round(daemon.window_seconds * rate)
        ring = RingBuffer(window, round(args.hop * rate), rate, 1, capacity=audio.size + window)
        ring.write(audio[:, None], first_sample_time=time.time() - audio.size / rate)
        daemon._observe("start", None)
        while (win := ring.read(timeout=0)) is not None:
            daemon.process(win)
            daemon._observe("window", win)
        daemon._observe("tick", None)
        opts = webdriver.ChromeOptions()
        opts.binary_location = shutil.which("chromium") or ""  # the system's: selenium downloads nothing
        for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--window-size=1100,1000", f"--user-data-dir={tmp}/chromium", "--hide-scrollbars"):
            opts.add_argument(a)
        service = Service(executable_path=shutil.which("chromedriver"))
        driver = webdriver.Chrome(service=service, options=opts)
        try:
            driver.get(daemon.http.url)
            WebDriverWait(driver, 30).until(lambda d: d.execute_script(
                "return document.body.dataset.loaded === '1' && document.querySelectorAll('#alerts audio').length > 0"
                " && Array.from(document.querySelectorAll('#alerts audio')).every(a => a.readyState >= 1)"))
            height = driver.execute_script("return document.body.scrollHeight")
            driver.set_window_size(1100, min(height + 20, 1400))
            png = driver.get_screenshot_as_png()
        finally:
            driver.quit()
            daemon._observe("stop", None)
    img = Image.open(io.BytesIO(png)).convert("RGB")
    img = img.resize((img.width * 3 // 4, img.height * 3 // 4), Image.LANCZOS)
    img = img.quantize(colors=64, method=Image.MEDIANCUT)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    img.save(args.out, optimize=True)
    print(f"{args.out}: {img.width}x{img.height}, {args.out.stat().st_size // 1024} KiB; threshold {threshold:.4g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
