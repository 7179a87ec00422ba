#!/usr/bin/env python3
"""Make docs/examples/status-page-2min.png and status-page-1h.png: the status page after 2 minutes and an hour.

    .venv/bin/python docs/examples/status_page_screenshot.py BUNDLE_DIR [--out-dir docs/examples]

Synthesises the bundle's machine (``trainer.synth``, so the training extra is
needed): a normal clip and one with missing grease (a squeal). The daemon, with
its ``http:`` server on, processes windows of these clips back to back in
synthetic window time ending now (``tests/status_feed.py``: an hour of windows
takes seconds, nobody waits an hour); the score numbers follow a script around
a threshold of twice the bundle's typical normal score (normal windows at
0.4-0.62 of it, around that typical level; an anomaly whose first window
scores 20x the threshold), so the picture shows what the chart does with a
real spread. Then it photographs ``/`` with headless Chromium
(selenium, as the tests do).
"""

from __future__ import annotations

import argparse
import io
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))


def scripted(minutes: float, hop: float, seed: int = 7) -> tuple[list[float], list[bool]]:
    """``(scores as multiples of the threshold, is-anomalous per window)`` for ``minutes`` of windows.

    Normal windows wander between 0.4 and 0.62; an anomaly two thirds of the
    way in opens with its strongest window (20x), then fades over five windows.
    """
    import numpy as np

    n = int(round(minutes * 60 / hop))
    rng = np.random.default_rng(seed)
    scores = list(0.5 + 0.05 * np.sin(np.arange(n) / 9.0) + rng.normal(0, 0.03, n))
    bad = [False] * n
    at = int(n * 0.66)
    for i, f in enumerate((20.0, 6.5, 9.0, 3.2, 1.6)):
        if at + i < n:
            scores[at + i], bad[at + i] = f, True
    return [float(min(max(s, 0.4), 0.62)) if not b else s for s, b in zip(scores, bad)], bad


def shoot(bundle_dir: Path, minutes: float, hop: float, out: Path) -> str:
    from PIL import Image
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait
    from status_feed import feed, page_of, scripted_daemon
    from test_daemon import synth_clips

    from edge_monitor.model.bundle import load_bundle

    bundle = load_bundle(bundle_dir)
    mid = bundle.machine_ids[0] if bundle.machine_ids else "id_00"
    normal = synth_clips(1, mid, None, 1, salt=3)[0]
    squeal = synth_clips(1, mid, "missing_grease", 1, severity=5.0, salt=3)[0]
    factors, bad = scripted(minutes, hop)
    th = 2 * float(bundle.doc.typical_normal_score() or bundle.threshold / 2)
    with tempfile.TemporaryDirectory() as tmp:
        daemon = scripted_daemon(Path(tmp), bundle_dir, [f * th for f in factors], hop, threshold=th)
        feed(daemon, [squeal if b else normal for b in bad], hop)
        opts = webdriver.ChromeOptions()
        opts.binary_location = shutil.which("chromium") or ""  # the system's: selenium downloads nothing
        for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--window-size=1100,1000", f"--user-data-dir={tmp}/chromium", "--hide-scrollbars"):
            opts.add_argument(a)
        driver = webdriver.Chrome(service=Service(executable_path=shutil.which("chromedriver")), options=opts)
        try:
            driver.get(page_of(daemon).url)
            WebDriverWait(driver, 30).until(lambda d: d.execute_script(
                "return document.body.dataset.loaded === '1' && document.querySelectorAll('#alerts audio').length > 0"
                " && Array.from(document.querySelectorAll('#alerts audio')).every(a => a.readyState >= 1)"))
            # The window size includes the (headless) browser frame: grow until the page fits.
            for _ in range(3):
                inner, height = driver.execute_script(
                    "return [window.innerHeight, document.documentElement.scrollHeight]")
                if height <= inner:
                    break
                driver.set_window_size(1100, min(driver.get_window_size()["height"] + height - inner + 8, 1600))
            png = driver.get_screenshot_as_png()
        finally:
            driver.quit()
            daemon._observe("stop", None)
    img = Image.open(io.BytesIO(png)).convert("RGB")
    img = img.resize((img.width * 3 // 4, img.height * 3 // 4), Image.LANCZOS)
    img = img.quantize(colors=64, method=Image.MEDIANCUT)
    out.parent.mkdir(parents=True, exist_ok=True)
    img.save(out, optimize=True)
    return f"{out}: {img.width}x{img.height}, {out.stat().st_size // 1024} KiB; threshold {th:.4g}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle", type=Path)
    ap.add_argument("--out-dir", type=Path, default=REPO / "docs" / "examples")
    args = ap.parse_args()
    print(shoot(args.bundle, 2.0, 2.0, args.out_dir / "status-page-2min.png"))
    print(shoot(args.bundle, 60.0, 5.0, args.out_dir / "status-page-1h.png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
