#!/usr/bin/env python3
"""Counted work per window and what it costs on a Raspberry Pi 4 core.

    .venv/bin/python bench/cost_model.py --bundle bench/out/bundle --out bench/out/cost_model.json
    python3 bench/cost_model.py --bundle /var/lib/edge-monitor/model --measure     # on a Pi: measure it

The counts come from the bundle (feature parameters, model input shape, the
model's MACs recorded in ``model.json``) and the front end's own filterbank
blocks, in float32 operations per 10 s window:

- FFT: one real FFT of ``n_fft`` points per frame at the usual count of
  ``2.5 * n * log2(n)`` flops (half a complex FFT's ``5 n log2 n``, the
  convention of FFTW's benchmarks), plus the Hann window (1 multiply per
  sample) and the power spectrum (3 flops per bin);
- mel: multiply-accumulates the blocked filterbank really executes (and the
  dense ``n_mels x n_bins`` product for comparison), plus one log per cell;
- model: ``macs_per_window`` of ``model.json`` (counted by the trainer from the
  layers);
- detector: normalising the input (2 flops per cell) and the squared error
  pooled over the window (1 MAC + 1 subtraction per cell).

The time on a Pi is the counted work divided by a stated sustained rate per
Cortex-A72 core (``PI4_*`` below, each with its source). ``--measure`` times
the same three stages on the machine it runs on (one thread, median of
``--runs``) and prints the rate that machine achieved next to the assumed
one, which is how the model is checked on a real Pi.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# --- Cortex-A72 (Raspberry Pi 4) rates, published --------------------------------------------------
#: Peak float32: 8 flops per cycle per core (one 4-lane FMLA per cycle). Measured by vfpbench on a
#: Cortex-A72 (MediaTek MT8173C, 2.0 GHz): 15.875 single-precision GFLOPS on one thread = 7.94 flops
#: per cycle ("8 fop per core, SIMD4 FMA"; wlog.flatlib.jp/2015/10/30/n1787/).
PI4_PEAK_FLOPS_PER_CYCLE = 8.0
PI4_PEAK_SOURCE = ("vfpbench on a Cortex-A72 (MT8173C, 2.0 GHz): 15.875 SP GFLOPS on one thread, i.e. 8 flops "
                   "per cycle (wlog.flatlib.jp/2015/10/30/n1787/)")
#: Sustained rate of dense/conv layers through XNNPACK (what LiteRT runs on the Pi). XNNPACK's README,
#: Raspberry Pi table (benchmarked 2022-02-08): FP32 MobileNet v1 1.0X (569 MMAC) on an RPi 4
#: (BCM2711, 1.5 GHz, ARM64), 4 threads: 77 ms, i.e. 7.4 GMAC/s for 4 cores. Per core that is
#: 1.85 GMAC/s if 4 threads scale perfectly and 2.46 GMAC/s if they reach 75 % -- the range used.
#: ncnn's benchmark table (github.com/Tencent/ncnn, benchmark/README.md) agrees: MobileNet on an
#: RPi 4 at 1.5 GHz, 4 threads, 72.1 ms average, 1.97 GMAC/s per core at perfect scaling.
PI4_MODEL_GMACS = (1.85, 2.46)
PI4_MODEL_SOURCE = ("XNNPACK README, Raspberry Pi table (benchmarked 2022-02-08): FP32 MobileNet v1 1.0X (569 MMAC), "
                    "RPi 4 (BCM2711, 1.5 GHz, ARM64), 4 threads: 77 ms = 7.4 GMAC/s, i.e. 1.85-2.46 GMAC/s per "
                    "core for a 4-thread scaling of 100-75 %; ncnn's table (Tencent/ncnn benchmark/README.md): "
                    "MobileNet, RPi 4 1.5 GHz, 4 threads, 72.1 ms = 1.97 GMAC/s per core")
#: FFTs and NumPy element-wise passes are load/store bound, not FMA bound: assumed 10-25 % of the
#: float32 peak (1.2-3.0 GFLOPS at 1.5 GHz). No published pocketfft figure for the A72 was found;
#: this is the number `--measure` on a Pi checks first.
PI4_STREAM_PEAK_SHARE = (0.10, 0.25)
PI4_GHZ = 1.5           # BCM2711 default; boards from 2020 (rev 1.4+) and the Pi 400 run 1.8 GHz
LOG_FLOPS = 20          # one float32 log: range reduction + polynomial, ~20 flops
HOP_SECONDS = 10.0


@dataclass(frozen=True)
class WindowWork:
    """Float32 work of one window; ``*_flops`` count every add and multiply, ``*_macs`` pairs."""

    frames: int                 # log-mel frames of one window (313 at defaults)
    n_fft: int
    n_mels: int
    model_cells: int            # n_mels x model frames (128 x 312)
    fft_flops: float            # window + real FFT + power spectrum, all frames
    mel_macs: float             # executed by the blocked filterbank
    mel_dense_macs: float       # a dense (n_mels, n_bins) product, for comparison
    log_flops: float
    model_macs: float
    detector_macs: float        # squared error accumulate
    detector_flops: float       # normalisation + error, counting a MAC as 2 flops

    @property
    def features_flops(self) -> float:
        return self.fft_flops + 2 * self.mel_macs + self.log_flops

    @property
    def total_flops(self) -> float:
        return self.features_flops + 2 * self.model_macs + self.detector_flops


def _mel_macs_per_frame(params: Any) -> tuple[int, int]:
    """(executed, dense) filterbank MACs of one frame."""
    from edge_monitor.features import frontend as features

    fb = features.mel_filterbank(params)
    dense = int(fb.size)
    blocks = getattr(features, "_filterbank_blocks", None)  # the front end's blocked product, when it has one
    if blocks is not None:
        return sum(int(b[-1].size) for b in blocks(params)), dense
    return int((fb != 0).sum()), dense


def count(bundle_dir: Path) -> tuple[WindowWork, dict[str, Any]]:
    """Counted work per window of the bundle in ``bundle_dir``, and a description of the model."""
    from edge_monitor.model.bundle import load_bundle

    b = load_bundle(bundle_dir)
    p = b.features
    frames = p.window_frames
    n_bins = p.n_fft // 2 + 1
    n_mels, model_frames = b.input_shape
    cells = n_mels * model_frames
    model_meta = b.doc.model
    get = model_meta.get if isinstance(model_meta, dict) else lambda k, d=None: getattr(model_meta, k, d)
    macs = float(get("macs_per_window") or get("macs") or 0)
    if not macs:
        raise SystemExit(f"{bundle_dir}/model.json: no macs_per_window; retrain with a current trainer")
    # Bundles with NumPy detectors record the autoencoder's own MACs apart; the rest is the detectors'.
    ae_macs = float(get("macs_autoencoder") or (macs if b.has_autoencoder else 0.0))
    numpy_macs = macs - ae_macs
    mel_exec, mel_dense = _mel_macs_per_frame(p)
    fft = frames * (2.5 * p.n_fft * math.log2(p.n_fft) + p.n_fft + 3 * n_bins)
    work = WindowWork(
        frames=frames, n_fft=p.n_fft, n_mels=n_mels, model_cells=cells,
        fft_flops=fft, mel_macs=float(frames * mel_exec), mel_dense_macs=float(frames * mel_dense),
        log_flops=float(LOG_FLOPS * n_mels * frames), model_macs=ae_macs,
        detector_macs=float(cells) + numpy_macs, detector_flops=float(2 * cells + 3 * cells) + 2 * numpy_macs)
    model = {"arch": get("arch"), "parameters": get("parameters"), "tflite_bytes": get("tflite_bytes"),
             "input_shape": [n_mels, model_frames]}
    return work, model


def pi_estimate(work: WindowWork, ghz: float = PI4_GHZ) -> dict[str, list[float]]:
    """(fast, slow) ms per window on one Pi 4 core at ``ghz``, per stage."""
    peak = PI4_PEAK_FLOPS_PER_CYCLE * ghz * 1e9
    scale = ghz / 1.5  # the sustained GMAC/s were published at 1.5 GHz
    model_rate = [r * 1e9 * scale for r in sorted(PI4_MODEL_GMACS, reverse=True)]   # MAC/s, fast first
    stream_rate = [s * peak for s in sorted(PI4_STREAM_PEAK_SHARE, reverse=True)]   # flop/s, fast first
    ms = {
        # The FFT and element-wise passes at the streaming rate; the filterbank is small matrix
        # products (NumPy/OpenBLAS), counted at the model's sustained GEMM rate.
        "fft": [work.fft_flops / r * 1e3 for r in stream_rate],
        "mel": [work.mel_macs / r * 1e3 for r in model_rate],
        "log": [work.log_flops / r * 1e3 for r in stream_rate],
        "model": [work.model_macs / r * 1e3 for r in model_rate],
        "detector": [work.detector_flops / r * 1e3 for r in stream_rate],
    }
    ms["features"] = [ms["fft"][i] + ms["mel"][i] + ms["log"][i] for i in range(2)]
    ms["window"] = [ms["features"][i] + ms["model"][i] + ms["detector"][i] for i in range(2)]
    return ms


def measure(bundle_dir: Path, runs: int) -> dict[str, dict[str, float]]:
    """Median/p10 ms of log-mel, model invoke and the whole window on this machine, one thread."""
    import numpy as np

    from edge_monitor.features.frontend import logmel
    from edge_monitor.features.model_input import to_model_input
    from edge_monitor.model.bundle import load_bundle
    from edge_monitor.model.scorer import Scorer

    b = load_bundle(bundle_dir)
    scorer = Scorer(b, num_threads=1)
    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal(b.features.window_samples)).astype(np.float32)
    try:  # the model's input, so the model can be timed alone (the signature may change with the scorer)
        inp = to_model_input(x, b.features, b.norm, b.input_shape[1])
    except TypeError:
        inp = None
    stages: dict[str, Any] = {"features (log-mel)": lambda: logmel(x, b.features),
                              "whole window (Scorer.score_window)": lambda: scorer.score_window(x)}
    if inp is not None and hasattr(scorer, "score_input") and len(getattr(scorer, "detectors", [None])) == 1:
        stages["model + detector (Scorer.score_input)"] = lambda: scorer.score_input(inp)
    times: dict[str, list[float]] = {k: [] for k in stages}
    for fn in stages.values():
        fn(); fn()  # warm up: workspaces, interpreter
    for _ in range(runs):
        for name, fn in stages.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return {k: {"median_ms": float(np.median(v) * 1e3), "p10_ms": float(np.percentile(v, 10) * 1e3),
                "runs": len(v)} for k, v in times.items()}


def _cpu_model() -> str:
    try:
        text = Path("/proc/device-tree/model").read_text().strip("\x00\n")
        if text:
            return text
    except OSError:
        pass
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# --- rendering --------------------------------------------------------------------------------------------


def _m(v: float) -> str:
    return f"{v / 1e6:,.2f}"


def markdown(data: dict[str, Any]) -> list[str]:
    """The "Raspberry Pi 4: counted cost" section of RESULTS.md, from this script's JSON."""
    w = WindowWork(**data["work"])
    est = data["pi4"]
    ghz = data["pi4_ghz"]
    peak = PI4_PEAK_FLOPS_PER_CYCLE * ghz
    model = data.get("model") or {}
    L = ["## Raspberry Pi 4: counted cost per window (`bench/cost_model.py`)", "",
         "No Raspberry Pi was available: these are **counts and published rates, not Pi measurements**. The work "
         "is counted from the bundle (feature parameters, `model.json`'s MACs, the front end's filterbank blocks); "
         "the time is that work at a stated sustained rate of one Cortex-A72 core "
         f"at {ghz:g} GHz (BCM2711's default; boards from 2020 run 1.8 GHz). Everything is float32. "
         "`edge-monitor` on an emulated Cortex-A72 (`.ci/arm64.sh`, run by `.ci/run`) shows the same code runs "
         "there and scores as on x86; emulated times say nothing about a Pi and are not used.", "",
         "| per 10 s window | counted work | float32 MFLOP | rate assumed (1 core) | Pi 4 ms (fast-slow) |",
         "|---|---|---:|---|---:|",
         f"| FFT: Hann window + {w.frames} real FFTs of {w.n_fft} + power | 2.5 n log2 n + n + 3 bins per frame | "
         f"{_m(w.fft_flops)} | streaming, {PI4_STREAM_PEAK_SHARE[0]:.0%}-{PI4_STREAM_PEAK_SHARE[1]:.0%} of peak | "
         f"{est['fft'][0]:.1f}-{est['fft'][1]:.1f} |",
         f"| mel filterbank ({w.n_mels} bands, blocked) | {_m(w.mel_macs)} MMAC (dense product: "
         f"{_m(w.mel_dense_macs)}) | {_m(2 * w.mel_macs)} | GEMM, {PI4_MODEL_GMACS[0]}-{PI4_MODEL_GMACS[1]} GMAC/s | "
         f"{est['mel'][0]:.1f}-{est['mel'][1]:.1f} |",
         f"| log to dB ({w.n_mels} x {w.frames} cells) | {LOG_FLOPS} flops per log | {_m(w.log_flops)} | streaming | "
         f"{est['log'][0]:.1f}-{est['log'][1]:.1f} |",
         f"| **features total** | | **{_m(w.features_flops)}** | | **{est['features'][0]:.1f}-"
         f"{est['features'][1]:.1f}** |",
         f"| model ({model.get('arch') or '?'}, {model.get('parameters') or 0:,} parameters, input "
         f"{' x '.join(map(str, model.get('input_shape') or []))}) | {_m(w.model_macs)} MMAC (`model.json`) | "
         f"{_m(2 * w.model_macs)} | XNNPACK, {PI4_MODEL_GMACS[0]}-{PI4_MODEL_GMACS[1]} GMAC/s | "
         f"{est['model'][0]:.1f}-{est['model'][1]:.1f} |",
         f"| detectors: normalise + squared error pooled ({w.model_cells:,} cells), level profile and frame "
         f"Gaussian (band means, Mahalanobis) | {_m(w.detector_macs)} MMAC + "
         f"{_m(w.detector_flops - 2 * w.detector_macs)} MFLOP | {_m(w.detector_flops)} | streaming | "
         f"{est['detector'][0]:.2f}-{est['detector'][1]:.2f} |",
         f"| **whole window** | | **{_m(w.total_flops)}** | | **{est['window'][0]:.0f}-{est['window'][1]:.0f}** |",
         f"| share of one core at one window per {HOP_SECONDS:g} s | | | | {est['window'][0] / HOP_SECONDS / 10:.2f}-"
         f"{est['window'][1] / HOP_SECONDS / 10:.2f} % |", "",
         "Rates and their sources:", "",
         f"- Peak: {PI4_PEAK_FLOPS_PER_CYCLE:g} float32 flops per cycle per core ({peak:g} GFLOPS at {ghz:g} GHz): "
         f"{PI4_PEAK_SOURCE}.",
         f"- Model (dense/conv layers through XNNPACK) and the filterbank's small matrix products: "
         f"{PI4_MODEL_GMACS[0]}-{PI4_MODEL_GMACS[1]} GMAC/s per core, {2 * PI4_MODEL_GMACS[0] / peak:.0%}-"
         f"{2 * PI4_MODEL_GMACS[1] / peak:.0%} of peak: {PI4_MODEL_SOURCE}. Our model's layers are smaller "
         "matrices than MobileNet's, so the slow end is the likelier one.",
         f"- FFT, log and element-wise passes (NumPy: pocketfft, ufuncs): {PI4_STREAM_PEAK_SHARE[0]:.0%}-"
         f"{PI4_STREAM_PEAK_SHARE[1]:.0%} of peak, an **assumption** (load/store bound code; no published A72 "
         "figure for NumPy's FFT was found). The FFT is most of the front end, so this is the first number to "
         "check on a Pi.",
         "- Not counted: Python and interpreter overhead per call (a few hundred microseconds on x86, more on a "
         "Pi), copying audio into the ring buffer, reading the microphone.", "",
         "Check it on a Pi (64-bit Raspberry Pi OS, the runtime installed, a bundle at hand): "
         "`python3 bench/cost_model.py --bundle /var/lib/edge-monitor/model --measure` prints these counts, "
         "the measured ms per window of the features, the model and the whole window, and the rate each "
         "implies, next to the rates above (see docs/benchmarks.md).", ""]
    meas = data.get("measured")
    if meas:
        L += [f"Measured by `--measure` on {data.get('machine', {}).get('cpu', '?')} ({data.get('machine', {}).get('arch')}):", "",
              "| stage | median ms | p10 ms | implied rate |", "|---|---:|---:|---|"]
        for name, r in meas.items():
            L.append(f"| {name} | {r['median_ms']:.2f} | {r['p10_ms']:.2f} | {r.get('implied', '')} |")
        L.append("")
    return L


def implied_rates(work: WindowWork, meas: dict[str, dict[str, float]]) -> None:
    """Add the rate each measured stage achieved (counted work / median time) to ``meas``."""
    for name, r in meas.items():
        s = r["median_ms"] / 1e3
        if name.startswith("features"):
            r["implied"] = f"{work.features_flops / s / 1e9:.2f} GFLOPS"
        elif name.startswith("model"):
            r["implied"] = f"{work.model_macs / s / 1e9:.2f} GMAC/s (model MACs only)"
        elif name.startswith("whole"):
            r["implied"] = f"{work.total_flops / s / 1e9:.2f} GFLOPS"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", type=Path, default=REPO / "bench" / "out" / "bundle",
                    help="model bundle directory (default bench/out/bundle, the bench bundle)")
    ap.add_argument("--ghz", type=float, default=PI4_GHZ, help=f"Pi 4 core clock in GHz (default {PI4_GHZ})")
    ap.add_argument("--measure", action="store_true",
                    help="also time log-mel, model and whole window here (one thread) and print the rates achieved")
    ap.add_argument("--runs", type=int, default=50, help="timed calls per stage with --measure (default 50)")
    ap.add_argument("--out", type=Path, help="write the counts (and measurements) as JSON here")
    args = ap.parse_args(argv)
    if not (args.bundle / "model.json").is_file():
        ap.error(f"{args.bundle}: no model.json (give --bundle MODEL_DIR, e.g. /var/lib/edge-monitor/model)")
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    work, model = count(args.bundle)
    data: dict[str, Any] = {"bundle": str(args.bundle), "work": asdict(work), "model": model, "pi4_ghz": args.ghz,
                            "pi4": pi_estimate(work, args.ghz),
                            "machine": {"cpu": _cpu_model(), "arch": platform.machine(),
                                        "python": platform.python_version()}}
    if args.measure:
        meas = measure(args.bundle, args.runs)
        implied_rates(work, meas)
        data["measured"] = meas
    print("\n".join(markdown(data)))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(data, indent=2))
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
