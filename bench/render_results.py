#!/usr/bin/env python3
"""Render bench/RESULTS.md from the JSON files the benchmarks wrote.

    .venv/bin/python bench/render_results.py --out-dir bench/out --results bench/RESULTS.md

Reads ``prepare.json``, ``features.json``, ``inference.json``, ``rss.json``,
``startup.json``, ``quantize.json``, ``soak.json``, ``cost_model.json`` and
``disk_writes.json`` (plus ``disk_writes_before.json`` when present) from
``--out-dir`` (a missing one is reported as "not run") and writes one markdown
file: the machine, a summary table of every ratio with its target, the
details, and the Raspberry Pi 4 cost model (counted work per window at cited
Cortex-A72 rates, ``bench/cost_model.py``; not a Pi measurement).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cost_model  # noqa: E402 - bench/ is not a package

# The Raspberry Pi 4 section comes from bench/cost_model.py (counted work at cited A72 rates).
HOP_SECONDS = 10.0


def load(out_dir: Path, name: str) -> dict[str, Any] | None:
    path = out_dir / f"{name}.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        print(f"render_results: {path}: not valid JSON ({exc}); treated as not run", file=sys.stderr)
        return None


def f(v: Any, digits: int = 2, unit: str = "") -> str:
    if v is None:
        return "n/a"
    if isinstance(v, (int, float)):
        return f"{v:,.{digits}f}{unit}"
    return str(v)


def met(ok: bool | None) -> str:
    return "n/a" if ok is None else ("**met**" if ok else "**missed**")


DISK_BEGIN, DISK_END = "<!-- disk-writes -->", "<!-- /disk-writes -->"
PAGE = 4096  # write_bytes moves in whole pages


def _kb(v: float) -> str:
    return f"{v / 1000:,.1f} kB"


def disk_writes_section(out_dir: Path) -> list[str]:
    """The "bytes written per hour" section (between markers, so ``--section disk_writes`` can replace it)."""
    data = load(out_dir, "disk_writes")
    L = [DISK_BEGIN, "## 6. Disk writes per hour of monitoring (`bench/bench_disk_writes.py`)", ""]
    if not data:
        return L + ["Not available: `bench/bench_disk_writes.py` did not run.", "", DISK_END]
    runs = data["runs"]
    span_s = runs["broker_up_long"]["audio_s"] - runs["broker_up_short"]["audio_s"]
    resolution = PAGE * 3600.0 / span_s  # one page more or less between the two runs
    method = (f"`edge-monitor simulate --fast` with MQTT on, a real {data.get('broker', 'mosquitto')} on 127.0.0.1 "
              f"(up, then unreachable for the whole run), {f(data['hours_long'], 1)} h of normal audio "
              f"({runs['broker_up_long']['windows']} windows of 10 s); the daemon process's own `/proc/self/io` "
              f"read as it exits. Per hour = the slope between a {f(data['minutes_short'], 0)} min and the "
              f"{f(data['hours_long'], 1)} h run, so the one-off start-up writes (creating the SQLite outbox and "
              f"its WAL) are counted apart; `write_bytes` moves in {PAGE} B pages, so the slope resolves "
              f"{_kb(resolution)} per hour. State directory on {data.get('filesystem', '?')} (`stat -f`); measured "
              f"{str(data.get('machine', {}).get('date', '?'))[:10]} on {data.get('machine', {}).get('cpus', '?')} "
              f"{data.get('machine', {}).get('cpu_model', '?')} cores. The threshold is out "
              "of reach, so no alert opens: each alert adds one evidence WAV (~320 kB) and two outbox rows.")
    header = ("| code | broker | written to disk per hour of audio (`write_bytes`) | start-up writes | "
              "outbox rows written in the long run | `wchar` per hour (pipes, logs; not disk) |")
    L += [method, "", header, "|---|---|---:|---:|---:|---:|"]
    before = load(out_dir, "disk_writes_before")
    for label, d in (("this", data), ("before: scores spooled to SQLite", before)):
        if not d:
            continue
        for case, name in (("broker_up", "up"), ("broker_down", "down")):
            rate = d["per_hour"][case]["write_bytes"]
            # A negative slope is start-up writes that differ between the two runs (page flush timing), not
            # writes taken back: like a slope under one page per run, it reads as nothing measurable.
            shown = f"**{_kb(rate)}**" if rate >= resolution else f"**0** (< {_kb(resolution)})"
            L.append(f"| {label} | {name} | {shown} | {_kb(d['startup'][case]['write_bytes'])} | "
                     f"{d['runs'][case + '_long']['outbox_rows_ever']} | {_kb(d['per_hour'][case]['wchar'])} |")
    how = ("Reproduce: `.venv/bin/python bench/bench_disk_writes.py` (then "
           "`.venv/bin/python bench/render_results.py --section disk_writes`); the \"before\" rows: the same with "
           "`--code-dir` pointing at a checkout of the older code and `--out bench/out/disk_writes_before.json`.")
    L += ["", how, "", DISK_END]
    return L


def detector_cost_section(out_dir: Path) -> list[str]:
    """Cost per window of each detector set (``bench/bench_detector_cost.py``)."""
    data = load(out_dir, "detector_cost")
    L = ["## 8. Cost per window by detector set (`bench/bench_detector_cost.py`)", ""]
    if not data:
        return L + ["Not available: `bench/bench_detector_cost.py` did not run.", ""]
    L += [f"`Scorer.score_window` on one 10 s window (log-mel, every detector of the set, fusion, the "
          f"explanation's per-band errors), one thread, {data['runs']} calls each, taking turns; the sets are "
          "the bench bundle with its `detectors` cut down.", "",
          "| detectors | median ms | p10 ms | p90 ms | target |", "|---|---:|---:|---:|---|"]
    for name, r in data["sets"].items():
        ok = "**met**" if r["median_ms"] <= data["target_ms"] else "**missed**"
        L.append(f"| {name} | {f(r['median_ms'])} | {f(r['p10_ms'])} | {f(r['p90_ms'])} | "
                 f"<= {f(data['target_ms'], 0)} ms: {ok} |")
    L += ["", f"- The explanation runs only on the window that opens an alert: {f(data['explanation_ms'], 1)} ms "
              f"({data['explanation_view']} view).", ""]
    return L


def http_section(out_dir: Path) -> list[str]:
    """Scoring cost per window with the status page server on and a page polling, against off."""
    data = load(out_dir, "http")
    L = ["## 7. Scoring with the status page open (`bench/bench_http.py`)", ""]
    if not data:
        return L + ["Not available: `bench/bench_http.py` did not run.", ""]
    L += [f"Two daemons in one process from the bench bundle, `http:` off and on (`127.0.0.1:0`), "
          f"{data['windows_per_arm']} timed windows each in blocks of {data['block']}, taking turns; time runs "
          f"{f(data['speedup'], 0)}x faster than on site (a window every {f(data['window_period_s'], 2)} s, the "
          f"page polling `/api/status` and `/metrics` every {f(data['poll_s'], 2)} s: {data['page_requests']} "
          "requests). Each step: `process(window)` plus the observer calls, as in the loop.", "",
          "| server | median ms | p10 ms | p90 ms | mean ms |", "|---|---:|---:|---:|---:|"]
    for arm in ("off", "on"):
        a = data[arm]
        L.append(f"| {arm} | {f(a['median_ms'])} | {f(a['p10_ms'])} | {f(a['p90_ms'])} | {f(a['mean_ms'])} |")
    ok = "**met**" if data.get("within_5pct") else "**missed**"
    L += ["", f"- on / off: {f(data['ratio_median'], 3)} (median), {f(data['ratio_mean'], 3)} (mean); "
              f"target within 5 %: {ok}.", ""]
    return L


def replace_section(text: str, section: list[str]) -> str:
    """``text`` with its disk-writes section replaced (or inserted before "## Reproduce")."""
    block = "\n".join(section)
    if DISK_BEGIN in text and DISK_END in text:
        head, rest = text.split(DISK_BEGIN, 1)
        return head + block + rest.split(DISK_END, 1)[1]
    marker = "## Reproduce"
    if marker in text:
        head, rest = text.split(marker, 1)
        return head + block + "\n\n" + marker + rest
    return text.rstrip("\n") + "\n\n" + block + "\n"


def render(out_dir: Path, total_seconds: float | None = None, orig_env: str | None = None) -> str:
    prep = load(out_dir, "prepare")
    feat = load(out_dir, "features")
    inf = load(out_dir, "inference")
    rss = load(out_dir, "rss")
    start = load(out_dir, "startup")
    quant = load(out_dir, "quantize")
    soak = load(out_dir, "soak")
    machine = next((d["machine"] for d in (inf, rss, quant, start, prep) if d and "machine" in d), {})

    L: list[str] = []
    L += ["# Benchmark results", "",
          "Generated by `bench/run.sh` (`make bench`) from the JSON files in `bench/out/`; do not edit by hand.",
          "Every number is a median over many runs unless marked otherwise, and every comparison is against a",
          "baseline run in the same process (interleaved call by call) or in the same run. The machine was shared",
          "with other work while this ran (see the load average): absolute times are noisy, ratios less so; p10",
          "columns show what an unloaded machine gets closer to.", ""]
    if machine:
        blas = ", ".join(f"{b.get('internal_api')} {b.get('version')} kernel {b.get('architecture')}"
                         for b in machine.get("blas", [])) or "n/a"
        load_avg = machine.get("load_average")
        L += ["## Machine", "",
              "| | |", "|---|---|",
              f"| date (UTC) | {machine.get('date')} |",
              f"| CPU | {machine.get('cpu_model')}, {machine.get('cpus')} cores |",
              f"| OS | {machine.get('platform')} |",
              f"| Python / NumPy / SciPy | {machine.get('python')} / {machine.get('numpy')} / {machine.get('scipy')} |",
              f"| TensorFlow / Keras | {machine.get('tensorflow')} / {machine.get('keras')} |",
              f"| ai-edge-litert / librosa | {machine.get('ai_edge_litert')} / {machine.get('librosa')} |",
              f"| NumPy BLAS (threadpoolctl) | {blas} |",
              f"| OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE during the run | "
              f"{(machine.get('openblas_env') or {}).get('OPENBLAS_CORETYPE')} / "
              f"{(machine.get('openblas_env') or {}).get('OPENBLAS_L2_SIZE')}"
              + (f" (unset by run.sh; the shell had {orig_env})" if orig_env else "") + " |",
              f"| load average (1 min) at the end | {f(load_avg[0]) if load_avg else 'n/a'} |"]
        if total_seconds:
            made = ""
            if prep and prep.get("train_seconds") is not None:
                made = (f" (of which synthesising the dataset {f(prep.get('dataset_seconds'), 0)} s and training the "
                        f"bench bundle {f(prep.get('train_seconds'), 0)} s)")
            elif prep:
                made = " (dataset and bundle reused from an earlier run)"
            L.append(f"| whole `bench/run.sh` | {total_seconds / 60:.1f} min{made} |")
        L.append("")

    model = (inf or {}).get("model") or {}
    macs = model.get("macs_per_window") or (prep or {}).get("macs_per_window")
    if prep or model:
        ch = model.get("channels") or (prep or {}).get("channels")
        arch = model.get("arch") or (prep or {}).get("arch") or "conv"
        desc = (f"Conv autoencoder, channels {'/'.join(map(str, ch)) if ch else 'n/a'}" if arch == "conv"
                else "Dense autoencoder on 5 stacked frames (DCASE-baseline style)")
        L += ["## The bench model", "",
              f"{desc}, "
              f"{f(model.get('parameters') or (prep or {}).get('parameters'), 0)} parameters, "
              f"**{f(macs / 1e6 if macs else None, 1)} MMAC per 10 s window** (128 x 312 input), "
              f"TFLite float32 {f(model.get('tflite_bytes') or (prep or {}).get('tflite_bytes'), 0)} bytes. "
              f"Trained by `bench/common.py prepare` on the synthetic dataset (3 machine ids, 150 normal training "
              f"clips, 150 held-out test clips: 60 normal, 90 anomalous), default `TrainConfig`; held-out test AUC "
              f"{f((prep or {}).get('test_auc'), 4)}.", ""]

    # --- summary ----------------------------------------------------------------------------------
    L += ["## Summary", "", "| measurement | Edge Monitor | baseline | ratio | target |", "|---|---:|---:|---:|---|"]
    if feat:
        rows = feat["results"]
        ours = rows["edge_monitor.features.frontend.logmel"]
        for name, row in rows.items():
            if not name.startswith("librosa"):
                continue
            L.append(f"| log-mel, one 10 s window, 1 thread | {f(ours['median_ms'])} ms | {name}: "
                     f"{f(row['median_ms'])} ms | **{f(row['ours_speedup'])}x** faster | >= 3x: "
                     f"{met(row['ours_speedup'] >= 3.0)} |")
        L.append(f"| log-mel, one 10 s window, 1 thread | {f(ours['median_ms'])} ms (p10 {f(ours['p10_ms'])}) | | | "
                 f"< 5 ms: {met(ours['median_ms'] < 5.0)} |")
    else:
        L.append("| log-mel vs librosa | not run | | | |")
    feat_env = load(out_dir, "features_shell_env")
    if feat_env:
        rows = feat_env["results"]
        ours_env = rows["edge_monitor.features.frontend.logmel"]
        for name, row in rows.items():
            if name.startswith("librosa, float32"):
                L.append(f"| same, with the shell's {orig_env or 'OPENBLAS_* settings'} | {f(ours_env['median_ms'])} ms | "
                         f"{name}: {f(row['median_ms'])} ms | **{f(row['ours_speedup'])}x** faster | >= 3x: "
                         f"{met(row['ours_speedup'] >= 3.0)} |")
    if inf:
        for t, r in inf["by_threads"].items():
            rows = r["results"]
            tfl = rows["tflite (ai-edge-litert)"]
            for name in ("keras model.predict", "keras model(x)"):
                row = rows[name]
                L.append(f"| model inference per window, {t} thread{'s' if t != '1' else ''} | TFLite {f(tfl['median_ms'])} ms | {name}: "
                         f"{f(row['median_ms'])} ms | **{f(row['vs_tflite'], 1)}x** faster | |")
        whole = inf["by_threads"].get("1", {}).get("results", {}).get(
            "whole window: Scorer.score_window (log-mel + every detector + fusion)")
        if whole:
            L.append(f"| whole window (log-mel + every detector + fusion), 1 thread | {f(whole['median_ms'])} ms "
                     f"(p10 {f(whole['p10_ms'])}) | | {f(HOP_SECONDS * 1e3 / whole['median_ms'], 0)}x real time "
                     f"at 10 s per window | |")
    else:
        L.append("| model inference | not run | | | |")
    if rss:
        d, n = rss["runs"]["daemon"], rss["runs"]["naive TensorFlow script"]
        hours = rss["audio_seconds"] / 3600
        L += [f"| end to end, {f(hours, 2)} h of audio: windows/s | {f(d['windows_per_s'], 1)} | "
              f"naive TF script: {f(n['windows_per_s'], 1)} | **{f(d['windows_per_s'] / n['windows_per_s'], 1)}x** | |",
              f"| end to end: real-time factor | {f(d['realtime_factor'], 0)}x | {f(n['realtime_factor'], 0)}x | | |",
              f"| end to end: CPU s per hour of audio | {f(d['cpu_s_per_audio_hour'], 1)} s | "
              f"{f(n['cpu_s_per_audio_hour'], 1)} s | **{f(rss['ratios']['cpu_naive_over_daemon'], 1)}x** less | |",
              f"| peak RSS of the process | {f(d['peak_rss_mb'], 1)} MiB | {f(n['peak_rss_mb'], 1)} MiB | "
              f"**{f(rss['ratios']['peak_rss_naive_over_daemon'], 1)}x** less | < 150 MB: "
              f"{met(d['peak_rss_mb'] * 1.048576 < 150)} |"]
    else:
        L.append("| end to end / RSS | not run | | | |")
    if start:
        s = start["summary"]
        L.append(f"| start-up: process start to first window scored | "
                 f"{f(s['daemon']['first_window']['median_s'])} s | "
                 f"{f(s['naive TensorFlow script']['first_window']['median_s'])} s | "
                 f"**{f(start['ratio_naive_over_daemon'], 1)}x** faster | |")
    else:
        L.append("| start-up | not run | | | |")
    if quant:
        fl, q = quant["results"]["float32"], quant["results"]["int8 dynamic range"]
        L += [f"| model file: float32 vs int8 dynamic range | {f(q['bytes'], 0)} B (int8) | {f(fl['bytes'], 0)} B "
              f"(float32) | {f(quant['ratios']['bytes_float_over_int8'], 1)}x smaller | |",
              f"| ms per window, int8 vs float32 (1 thread) | {f(q['median_ms'])} ms | {f(fl['median_ms'])} ms | "
              f"{f(quant['ratios']['ms_int8_over_float'], 2)}x the time | |",
              f"| held-out test AUC, int8 vs float32 | {f(q['auc'], 4)} | {f(fl['auc'], 4)} | "
              f"{f(q['auc'] - fl['auc'], 4)} | |"]
    else:
        L.append("| float32 vs int8 | not run | | | |")
    L.append("")

    # --- details ----------------------------------------------------------------------------------
    if feat:
        L += ["## 1. Log-mel front end vs librosa (`bench/bench_features.py`)", "",
              f"One 10 s window ({feat['window_samples']} samples -> 128 x {feat['frames']}), one thread, "
              f"{feat['results']['edge_monitor.features.frontend.logmel']['runs']} calls each, taking turns. Max |ours - "
              f"librosa| on the window: {f(feat.get('parity_max_abs_db'), 6)} dB. Load average during the run: "
              f"{f((feat.get('load_average') or [None])[0])}.", "",
              "| implementation | median ms | p10 ms | p90 ms | ours is faster by |", "|---|---:|---:|---:|---:|"]
        for name, row in feat["results"].items():
            L.append(f"| {name} | {f(row['median_ms'], 3)} | {f(row['p10_ms'], 3)} | {f(row['p90_ms'], 3)} | "
                     f"{f(row['ours_speedup'])}x |")
        L.append("")
        for name, ok in feat.get("targets_met", {}).items():
            L.append(f"- {name}: {met(ok)}")
        L.append("")
    if inf:
        L += ["## 2. Model inference per window (`bench/bench_inference.py`)", "",
              "The same trained model three ways, on one real window, taking turns call by call; one child "
              "process per thread count (TensorFlow fixes its thread pools at start). TFLite runs the bundle's "
              f"`model.tflite` through `{inf['by_threads']['1'].get('backend')}` (XNNPACK); Keras runs "
              f"`model.keras`. Max |TFLite - Keras| output difference: "
              f"{f(inf['by_threads']['1'].get('max_abs_diff_tflite_vs_keras'), 7)}.", "",
              "| way | threads | median ms | p10 ms | p90 ms | time / TFLite time |", "|---|---:|---:|---:|---:|---:|"]
        for t, r in inf["by_threads"].items():
            for name, row in r["results"].items():
                L.append(f"| {name} | {t} | {f(row['median_ms'])} | {f(row['p10_ms'])} | {f(row['p90_ms'])} | "
                         f"{f(row['vs_tflite'])} |")
        L.append("")
        for t, r in inf["by_threads"].items():
            if r.get("tflite_gmac_per_s"):
                L.append(f"- TFLite throughput, {t} thread(s): {f(r['tflite_gmac_per_s'], 1)} GMAC/s "
                         f"({f(macs / 1e6 if macs else None, 1)} MMAC per window).")
        L += ["- On 2 busy cores a second thread buys little or nothing: the model is small and the other core "
              "is shared with whatever else runs. The daemon's default is `num_threads: 1`.", ""]
    if rss:
        d = rss["runs"]["daemon"]
        L += ["## 3. End to end and memory (`bench/bench_rss.py`)", "",
              f"{rss['audio_files']} ten-second WAV files ({f(rss['audio_seconds'] / 3600, 2)} h of audio: the "
              "normal test clips, repeated) through `edge-monitor simulate --fast --no-mqtt` (ring buffer, sensor "
              "checks, log-mel, TFLite, decision, evidence) and through `bench/naive_tf_monitor.py` (TensorFlow, "
              "librosa features, Keras `model.predict` per window, nothing else). Each is a child process; wall "
              "time and CPU time (user + system) come from `wait4`, peak RSS from the child's own `VmHWM` (polled every 5 ms; `ru_maxrss` would include the parent's RSS at fork time); start-up is "
              "included in both.", "",
              "| process | peak RSS MiB | wall s | CPU s | windows/s | real-time factor | CPU s per audio hour |",
              "|---|---:|---:|---:|---:|---:|---:|"]
        for name, r in rss["runs"].items():
            if r.get("windows"):
                L.append(f"| {name} | {f(r['peak_rss_mb'], 1)} | {f(r['wall_s'], 1)} | {f(r['cpu_s'], 1)} | "
                         f"{f(r['windows_per_s'], 1)} | {f(r['realtime_factor'], 0)}x | "
                         f"{f(r['cpu_s_per_audio_hour'], 1)} |")
            else:
                L.append(f"| {name} | {f(r['peak_rss_mb'], 1)} | {f(r['wall_s'], 1)} | {f(r['cpu_s'], 1)} | | | |")
        L += ["", f"Daemon peak RSS {f(d['peak_rss_mb'], 1)} MiB = {f(d['peak_rss_mb'] * 1.048576, 1)} MB "
              f"(target < 150 MB: {met(d['peak_rss_mb'] * 1.048576 < 150)}).", ""]
    if soak:
        L += ["### Soak (`bench/bench_soak.py`)", "", "| key | value |", "|---|---|"]
        for k, v in soak.items():
            if k == "machine" or isinstance(v, (dict, list)):
                continue
            L.append(f"| {k} | {f(v, 3) if isinstance(v, float) else v} |")
        L.append("")
    if start:
        L += ["## 4. Start-up (`bench/bench_startup.py`)", "",
              "From `Popen` to the first scored window's log line, one 10 s clip replayed with `--fast` (the 10 s "
              f"of listening is not counted), {start['repeats']} runs each, alternating.", "",
              "| process | first window, median s | min s | `model loaded`, median s |", "|---|---:|---:|---:|"]
        for name, s in start["summary"].items():
            L.append(f"| {name} | {f(s['first_window']['median_s'])} | {f(s['first_window']['min_s'])} | "
                     f"{f(s.get('model_loaded', {}).get('median_s'))} |")
        L.append("")
    if quant:
        L += ["## 5. float32 vs dynamic-range int8 (`bench/bench_quantize.py`)", "",
              f"The bench model's `model.keras` converted both ways; all {quant['test_clips']['normal']} normal + "
              f"{quant['test_clips']['anomaly']} anomalous held-out test clips scored by each (1 thread). Scores move "
              f"by {f(quant['score_rel_change']['mean'] * 100, 3)} % on average (max "
              f"{f(quant['score_rel_change']['max'] * 100, 3)} %).", "",
              "| model | bytes | median ms/window | p10 ms | p90 ms | test AUC |", "|---|---:|---:|---:|---:|---:|"]
        for name, r in quant["results"].items():
            L.append(f"| {name} | {f(r['bytes'], 0)} | {f(r['median_ms'])} | {f(r['p10_ms'])} | {f(r['p90_ms'])} | "
                     f"{f(r['auc'], 4)} |")
        L.append("")

    # --- what the numbers say, misses included ---------------------------------------------------
    notes: list[str] = []
    if feat:
        rows = feat["results"]
        ours = rows["edge_monitor.features.frontend.logmel"]
        for name, row in rows.items():
            if name.startswith("librosa") and row["ours_speedup"] < 3.0:
                notes.append(f"**Missed:** the log-mel is {f(row['ours_speedup'])}x faster than {name}, not the 3x "
                             f"target (median; p10 ratio {f(row['p10_ms'] / ours['p10_ms'])}x). Both spend "
                             "most of a window in the same NumPy FFT; see `bench/bench_features.py` for what librosa "
                             "does differently (float64 FFT, ~10 MB allocated per call).")
        if ours["median_ms"] >= 5.0:
            notes.append(f"**Missed:** the log-mel takes {f(ours['median_ms'])} ms per window (median), over the 5 ms "
                         "target, on this loaded machine.")
    if inf:
        one = inf["by_threads"].get("1", {}).get("results", {}).get("tflite (ai-edge-litert)")
        many = [r for t, r in inf["by_threads"].items() if t != "1"]
        if one and many:
            m = many[0]["results"]["tflite (ai-edge-litert)"]
            notes.append(f"TFLite with all threads: {f(m['median_ms'])} ms vs {f(one['median_ms'])} ms with one "
                         "(medians). On 2 cores shared with other work, extra threads buy little and cost "
                         "predictability; the daemon's default `num_threads: 1` stands.")
    if quant:
        fl, q = quant["results"]["float32"], quant["results"]["int8 dynamic range"]
        notes.append(f"Dynamic-range int8: {f(quant['ratios']['bytes_float_over_int8'], 1)}x smaller file, "
                     f"AUC {f(fl['auc'], 4)} -> {f(q['auc'], 4)}, {f(q['median_ms'])} vs {f(fl['median_ms'])} ms per "
                     f"window (p10 {f(q['p10_ms'])} vs {f(fl['p10_ms'])}). Both files are under 100 kB; the trainer's "
                     "default stays float32 (`--quantize dynamic` is one flag away).")
    if rss:
        d, n = rss["runs"]["daemon"], rss["runs"]["naive TensorFlow script"]
        busy = n["wall_s"] / max(n["cpu_s"], 1e-9)
        why = ("it waited for busy CPUs and for TensorFlow's libraries to load from disk" if busy > 1.2 else
               "TensorFlow spreads its work over both cores" if busy < 0.9 else "")
        notes.append(f"The naive script's wall time ({f(n['wall_s'], 0)} s) is {f(busy, 1)}x its CPU time"
                     + (f" ({why})" if why else "") + f"; the daemon's is {f(d['wall_s'] / max(d['cpu_s'], 1e-9), 1)}x. "
                     f"The CPU ratio ({f(rss['ratios']['cpu_naive_over_daemon'], 1)}x) is the fairer comparison "
                     "of work done.")
    if notes:
        L += ["## Notes, misses included", ""] + [f"- {n}" for n in notes] + [""]

    # --- the model's cost ---------------------------------------------------------------------------
    widths = ((inf or {}).get("by_threads", {}).get("1", {}) or {}).get("widths")
    cost = load(out_dir, "cost_model")
    factor = cost_model.PI4_MODEL_GMACS if cost else None
    if widths:
        L += ["## Model cost versus width", "",
              "The conv autoencoder at four widths (random weights; time does not depend on them), converted to "
              "TFLite and timed on one thread, taking turns. 32/64/128 is the paper's full-size model. The AUC of "
              "each width on held-out synthetic data is measured by the trainer work: see "
              "[docs/model.md](../docs/model.md).", "",
              "| channels | MMAC / window | parameters | TFLite bytes | ms / window here (median) | GMAC/s here |"
              + (" Pi 4, 1 core: ms / window (MACs at the rate below) |" if factor else ""),
              "|---|---:|---:|---:|---:|---:|" + ("---:|" if factor else "")]
        for w in widths:
            est = (f" {f(w['macs'] / (factor[1] * 1e6), 0)}-{f(w['macs'] / (factor[0] * 1e6), 0)} |" if factor else "")
            L.append(f"| {'/'.join(map(str, w['channels']))} | {f(w['macs'] / 1e6, 1)} | {f(w['parameters'], 0)} | "
                     f"{f(w['tflite_bytes'], 0)} | {f(w['median_ms'])} | {f(w['gmac_per_s'], 1)} |" + est)
        L.append("")

    # --- Raspberry Pi 4: counted cost (bench/cost_model.py) ------------------------------------------
    if cost:
        L += cost_model.markdown(cost)
    else:
        L += ["## Raspberry Pi 4: counted cost per window", "", "Not available: `bench/cost_model.py` did not run.", ""]

    L += disk_writes_section(out_dir) + [""]
    L += http_section(out_dir)
    L += detector_cost_section(out_dir)
    L += ["## Reproduce", "", "```", "make bench          # or: bash bench/run.sh", "```", "",
          "The first run synthesises the dataset and trains the bench bundle into `bench/out/` (git-ignored, "
          "1-2.5 min here); later runs reuse them. Every script also runs alone with `--out FILE.json`, and "
          "`--quick` for a smoke run.", ""]
    return "\n".join(L)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write bench/RESULTS.md from the benchmark JSON files.")
    parser.add_argument("--out-dir", type=Path, default=Path(__file__).resolve().parent / "out",
                        help="where the JSON files are (default bench/out)")
    parser.add_argument("--results", type=Path, default=Path(__file__).resolve().parent / "RESULTS.md",
                        help="the markdown file to write (default bench/RESULTS.md)")
    parser.add_argument("--total-seconds", type=float, help="duration of the whole run, for the record")
    parser.add_argument("--orig-openblas-env", help="OPENBLAS_* settings of the calling shell, for the record")
    parser.add_argument("--section", choices=["disk_writes"],
                        help="only (re)write this section of the existing --results file, from its JSON")
    args = parser.parse_args(argv)
    if args.section == "disk_writes":
        text = replace_section(args.results.read_text(), disk_writes_section(args.out_dir))
    else:
        text = render(args.out_dir, args.total_seconds, args.orig_openblas_env)
    args.results.write_text(text)
    print(f"wrote {args.results}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
