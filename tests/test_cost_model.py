"""The Pi cost model counts what the front end and the bundle really do, and RESULTS.md shows it.

Counts only, no timing assertions (the times are bench/ figures).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import cost_model  # noqa: E402
import render_results  # noqa: E402


def test_counts_follow_the_bundle_and_the_filterbank(tiny_bundle: Path) -> None:
    from edge_monitor.features.frontend import mel_filterbank
    from edge_monitor.model.bundle import load_bundle

    bundle = load_bundle(tiny_bundle)
    work, model = cost_model.count(tiny_bundle)
    p = bundle.features
    n_bins = p.n_fft // 2 + 1
    assert work.frames == p.window_frames == 313
    assert work.fft_flops == work.frames * (2.5 * p.n_fft * math.log2(p.n_fft) + p.n_fft + 3 * n_bins)
    fb = mel_filterbank(p)
    assert work.mel_dense_macs == work.frames * fb.size
    # The blocked product skips most zeros but covers every non-zero weight.
    assert work.frames * (fb != 0).sum() <= work.mel_macs < work.mel_dense_macs / 5
    assert work.model_macs == json.loads((tiny_bundle / "model.json").read_text())["model"]["macs_per_window"]
    assert work.model_cells == bundle.input_shape[0] * bundle.input_shape[1]
    assert model["input_shape"] == list(bundle.input_shape)


def test_pi_estimate_is_work_over_the_stated_rates(tiny_bundle: Path) -> None:
    work, _ = cost_model.count(tiny_bundle)
    est = cost_model.pi_estimate(work, ghz=1.5)
    fast, slow = est["model"]
    assert math.isclose(fast, work.model_macs / (max(cost_model.PI4_MODEL_GMACS) * 1e9) * 1e3)
    assert math.isclose(slow, work.model_macs / (min(cost_model.PI4_MODEL_GMACS) * 1e9) * 1e3)
    assert all(est[k][0] <= est[k][1] for k in est)
    assert math.isclose(est["window"][1], est["features"][1] + est["model"][1] + est["detector"][1])
    # A faster clock scales every stage.
    assert cost_model.pi_estimate(work, ghz=1.8)["window"][0] < est["window"][0]


def test_script_writes_json_that_results_md_renders(tiny_bundle: Path, tmp_path: Path) -> None:
    out = tmp_path / "cost_model.json"
    res = subprocess.run([sys.executable, str(REPO / "bench" / "cost_model.py"), "--bundle", str(tiny_bundle),
                          "--measure", "--runs", "3", "--out", str(out)],
                         capture_output=True, text=True, cwd=REPO, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    data = json.loads(out.read_text())
    assert set(data["measured"]) >= {"features (log-mel)", "whole window (Scorer.score_window)"}
    section = render_results.render(tmp_path).split("## Raspberry Pi 4: counted cost", 1)[1]
    assert "not Pi measurements" in section
    assert f"{data['work']['model_macs'] / 1e6:,.2f} MMAC" in section
    assert "wlog.flatlib.jp" in section and "XNNPACK README" in section
