#!/usr/bin/env python3
"""Make docs/examples/report-review.png: the evaluation report's kind table and its misses.

    .venv/bin/python docs/examples/report_screenshot.py [--out docs/examples/report-review.png]

Synthesises the slide rail at a low fault severity (``--severity 0.4``: a
loose belt is hard to hear, so the threshold misses some), fits the default
detectors, evaluates, and photographs ``index.html`` in headless Chromium
(selenium, as tests/test_report_browser.py does) from the top down to the end
of the misses and false alarms. Needs the ``[report]`` extra and selenium.
"""

from __future__ import annotations

import argparse
import base64
import io
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "examples" / "report-review.png")
    ap.add_argument("--severity", type=float, default=0.4)
    ap.add_argument("--width", type=int, default=1280)
    args = ap.parse_args()

    from PIL import Image
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    from trainer.cli import main as train_cli

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for argv in (["synth", str(work / "data"), "--seed", "0", "--train", "40", "--test-normal", "12",
                      "--test-anomaly", "12", "--severity", str(args.severity)],
                     ["train", str(work / "data" / "slider"), "--out", str(work / "model"), "--quiet"],
                     ["evaluate", str(work / "model"), str(work / "data" / "slider"), "--out", str(work / "report"),
                      "--quiet"]):
            if train_cli(argv) != 0:
                return 1
        opts = webdriver.ChromeOptions()
        opts.binary_location = shutil.which("chromium") or "chromium"
        for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
                  f"--window-size={args.width},1000", f"--user-data-dir={work / 'chromium'}"):
            opts.add_argument(a)
        driver = webdriver.Chrome(service=Service(executable_path=shutil.which("chromedriver")), options=opts)
        try:
            driver.get((work / "report" / "index.html").as_uri())
            height = int(driver.execute_script("return document.documentElement.scrollHeight"))
            # Down to the end of the misses and false alarms (the figures follow).
            bottom = int(driver.execute_script(
                "const r = document.getElementById('wrong').getBoundingClientRect(); return r.bottom + 6"))
            driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                                   {"width": args.width, "height": height, "deviceScaleFactor": 1, "mobile": False})
            shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
        finally:
            driver.quit()
    image = Image.open(io.BytesIO(base64.b64decode(shot["data"]))).convert("RGB")
    image = image.crop((0, 0, args.width, min(bottom, image.height)))
    image.quantize(colors=64).save(args.out, optimize=True)
    print(f"{args.out}: {image.width}x{image.height}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
