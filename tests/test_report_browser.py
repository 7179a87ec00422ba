"""The evaluation report renders in a real browser: headless Chromium via Selenium and chromedriver.

Checks what a person would see: every figure decodes and is laid out with a
size, the metrics table is there, and the page makes no network requests.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from tests.conftest import require, require_binary


def _chromium_options(user_data_dir: Path):
    from selenium import webdriver

    opts = webdriver.ChromeOptions()
    opts.binary_location = require_binary("chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--window-size=1280,2000", f"--user-data-dir={user_data_dir}"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    return opts


@pytest.fixture(scope="module")
def report_dir(tiny_bundle, synth_dataset, tmp_path_factory) -> Path:
    from trainer.cli import main

    out = tmp_path_factory.mktemp("browser-report")
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
        rc = main(["evaluate", str(tiny_bundle), str(synth_dataset), "--out", str(out), "--quiet"])
    assert rc == 0, err.getvalue()
    return out


@pytest.fixture()
def browser(tmp_path):
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        require(False, "selenium is not installed (pip install selenium)")
    opts = _chromium_options(tmp_path / "chromium-profile")
    service = Service(executable_path=require_binary("chromedriver"), log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=opts)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def test_index_html_renders_with_every_image(report_dir: Path, browser, tmp_path: Path) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    index = report_dir / "index.html"
    # Copy the page alone: a self-contained report must not need the PNGs next to it.
    alone = tmp_path / "alone" / "index.html"
    alone.parent.mkdir()
    alone.write_bytes(index.read_bytes())
    browser.get(alone.as_uri())
    WebDriverWait(browser, 30).until(lambda d: d.execute_script(
        "return document.readyState === 'complete' && Array.from(document.images).every(i => i.complete)"))

    images = browser.execute_script(
        "return Array.from(document.images).map(i => {const r = i.getBoundingClientRect();"
        " return {alt: i.alt, w: i.naturalWidth, h: i.naturalHeight, shownW: r.width, shownH: r.height}; })")
    n_png = len(list(report_dir.glob("*.png")))
    assert len(images) == n_png == 7
    for img in images:
        assert img["w"] > 300 and img["h"] > 200, img  # decoded: naturalWidth > 0
        assert img["shownW"] > 100 and img["shownH"] > 50, img  # laid out on the page

    metrics = json.loads((report_dir / "metrics.json").read_text())
    table = browser.execute_script(
        "return Array.from(document.querySelectorAll('#metrics-table tr'))"
        ".map(r => Array.from(r.cells).map(c => c.innerText))")
    assert table[0][1:4] == ["normal", "anomalous", "AUC"]
    pooled = next(row for row in table if row[0] == "all clips")
    assert pooled[3] == f"{metrics['auc']:.3f}"
    assert len(table) == 1 + len(metrics["per_id"]) + (1 if len(metrics["per_id"]) > 1 else 0) + 1

    # No request left the page (self-contained), and nothing failed to load.
    # (chrome:// pages are the browser's own start page before our page loads.)
    events = [json.loads(e["message"])["message"] for e in browser.get_log("performance")]
    urls = [m["params"]["request"]["url"] for m in events if m.get("method") == "Network.requestWillBeSent"]
    page_urls = [u for u in urls if not u.startswith("chrome")]
    assert alone.as_uri() in page_urls
    assert all(u.startswith(("file:", "data:")) for u in page_urls), page_urls
    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert severe == []

    shot = tmp_path / "page.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000


@pytest.fixture(scope="module")
def dcase_report_dir(tiny_bundle, synth_dataset, tmp_path_factory) -> Path:
    """A report on the synthetic test clips renamed to DCASE 2022-2025 names (two domains, one section)."""
    import shutil

    from trainer.cli import main
    from trainer.datasets import find_clips

    data = tmp_path_factory.mktemp("dcase2023") / "slider"
    clips = find_clips(synth_dataset, split="test")
    first = min(c.machine_id for c in clips)
    for i, c in enumerate(clips):
        domain = "source" if c.machine_id == first else "target"
        dst = data / "test" / f"section_00_{domain}_test_{c.label}_{i:04d}_pat_0{i % 2}.wav"
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(c.path, dst)
    out = tmp_path_factory.mktemp("browser-dcase-report")
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
        rc = main(["evaluate", str(tiny_bundle), str(data), "--out", str(out), "--quiet"])
    assert rc == 0, err.getvalue()
    return out


def test_index_html_shows_domain_aucs_and_official_score(dcase_report_dir: Path, browser) -> None:
    browser.get((dcase_report_dir / "index.html").as_uri())
    metrics = json.loads((dcase_report_dir / "metrics.json").read_text())
    table = browser.execute_script(
        "return Array.from(document.querySelectorAll('#metrics-table tr'))"
        ".map(r => Array.from(r.cells).map(c => c.innerText))")
    header = table[0]
    assert header[1:8] == ["normal", "anomalous", "AUC", "pAUC", "AUC source", "AUC target", "official"]
    section = next(row for row in table if row[0] == "section_00")
    sec = metrics["per_id"]["section_00"]
    assert section[5:8] == [f"{sec['auc_source']:.3f}", f"{sec['auc_target']:.3f}", f"{sec['official_score']:.3f}"]
    shown = browser.execute_script(
        "const e = document.getElementById('official-score'); const r = e.getBoundingClientRect();"
        " return {text: e.innerText, h: r.height};")
    assert shown["h"] > 0 and f"DCASE official score {metrics['official_score']:.3f}" in shown["text"]
    assert f"official score {metrics['official_score']:.3f}" in browser.title


def test_index_html_shows_the_kind_table_and_the_misses(report_dir: Path, browser) -> None:
    """The review after the metrics: one row per fault kind, the misses and false alarms, inside the page width."""
    browser.get((report_dir / "index.html").as_uri())
    metrics = json.loads((report_dir / "metrics.json").read_text())
    rows = browser.execute_script(
        "return Array.from(document.querySelectorAll('#kind-table tbody tr'))"
        ".map(r => Array.from(r.cells).map(c => c.innerText))")
    assert [r[0] for r in rows] == [k["name"] for k in metrics["by_kind"]]
    assert {k["name"] for k in metrics["by_kind"]} > {"normal"}  # the synthetic kinds, from metadata.csv
    headings = browser.execute_script("return Array.from(document.querySelectorAll('#wrong h3')).map(h => h.innerText)")
    assert headings[0].startswith(f"Missed anomalies: {metrics['n_misses']}")
    assert headings[1].startswith(f"False alarms: {metrics['n_false_alarms']}")
    listed = browser.execute_script("return document.querySelectorAll('#misses tbody tr').length")
    assert listed == len(metrics["misses"])
    # Laid out, and no wider than the page: nothing cut off at the right.
    box = browser.execute_script(
        "const r = document.getElementById('kind-table').getBoundingClientRect();"
        " return {w: r.width, h: r.height, right: r.right, page: document.documentElement.clientWidth};")
    assert box["h"] > 0 and box["right"] <= box["page"], box


def test_index_html_shows_results_by_domain(dcase_report_dir: Path, browser) -> None:
    """DCASE names: a row per domain, and the name attributes (pat=0X) as the kinds."""
    browser.get((dcase_report_dir / "index.html").as_uri())
    metrics = json.loads((dcase_report_dir / "metrics.json").read_text())
    rows = browser.execute_script(
        "return Array.from(document.querySelectorAll('#domain-table tbody tr'))"
        ".map(r => Array.from(r.cells).map(c => c.innerText))")
    assert [r[0] for r in rows] == ["source", "target"]
    for row, d in zip(rows, ("source", "target")):
        assert row[1] == str(metrics[f"n_normal_{d}"]) and row[3] == str(metrics[f"n_anomaly_{d}"])
    kinds = browser.execute_script(
        "return Array.from(document.querySelectorAll('#kind-table tbody tr')).map(r => r.cells[0].innerText)")
    assert kinds == ["pat=00", "pat=01"]
