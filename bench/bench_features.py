#!/usr/bin/env python3
"""Time one 10 s window through the log-mel front end, on one thread, against librosa.

    .venv/bin/python bench/bench_features.py --out bench/results/features.json

Prints a markdown table (median and 10th/90th percentile per call, in ms)
and writes the same numbers as JSON. Targets (issue 2): under 5 ms per
window, and at least 3x faster than librosa doing the same computation.

librosa is run twice: with float64 input (the parity reference in
tests/test_features.py) and with float32 input, the usual case, since audio
arrives as float32. Both are the same computation in practice: librosa
multiplies float32 frames by its float64 window, so its FFT runs in float64
either way; float32 input only stores the spectrum as complex64. The speed-up
target is checked against both. Ours runs in float32 throughout, its FFT on
SciPy's compiled pocketfft (``fft_backend`` in the JSON; ``numpy.fft`` is the
slower fallback: NumPy 2.x's float32 FFT is slower than its float64 one). The two implementations take turns call by
call, but a machine busy with other work still inflates librosa more than us
(it allocates ~10 MB per call): compare the p10 column when the load is high.
librosa is a test/bench-only dependency.
"""

from __future__ import annotations

import os

# One core: set before NumPy loads its BLAS/OpenMP pools.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from edge_monitor.features import frontend as _features  # noqa: E402
from edge_monitor.features.frontend import FeatureParams, logmel  # noqa: E402

TARGET_MS = 5.0
TARGET_SPEEDUP = 3.0


def timeit(fns: dict[str, Callable[[], object]], runs: int, warmup: int = 5) -> dict[str, dict[str, float]]:
    """Per-call wall time in ms (median, p10, p90, min) of each function.

    The functions take turns call by call, so a busy machine slows them all
    alike and the ratios stay fair.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {name: np.empty(runs) for name in fns}
    for i in range(runs):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name][i] = time.perf_counter() - t0
    out = {}
    for name, t in times.items():
        ms = t * 1e3
        out[name] = {
            "median_ms": float(np.median(ms)),
            "p10_ms": float(np.percentile(ms, 10)),
            "p90_ms": float(np.percentile(ms, 90)),
            "min_ms": float(ms.min()),
            "runs": runs,
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Benchmark edge_monitor.features.frontend.logmel on one 10 s window (one thread) against librosa.",
    )
    parser.add_argument("--out", type=Path, help="write the results as JSON to this file")
    parser.add_argument("--runs", type=int, default=300, help="timed calls of each implementation (default 300)")
    args = parser.parse_args(argv)

    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:
        pass

    params = FeatureParams()
    rng = np.random.default_rng(0)
    x32 = (0.1 * rng.standard_normal(params.window_samples)).astype(np.float32)
    x64 = x32.astype(np.float64)

    fns: dict[str, Callable[[], object]] = {"edge_monitor.features.frontend.logmel": lambda: logmel(x32, params)}
    result: dict[str, object] = {
        "window_samples": params.window_samples,
        "frames": params.window_frames,
        "params": params.to_dict(),
        "threads": 1,
        "fft_backend": "scipy pocketfft (float32)" if _features._POCKETFFT is not None else "numpy.fft (float32)",
        "machine": {"python": platform.python_version(), "numpy": np.__version__,
                    "processor": platform.processor() or platform.machine(), "cpus": os.cpu_count()},
    }
    try:
        import librosa
    except ImportError:
        librosa = None
        print("librosa not installed: timing our front end only", file=sys.stderr)

    if librosa is not None:
        def ref(x: np.ndarray) -> np.ndarray:
            s = librosa.feature.melspectrogram(
                y=x, sr=params.sample_rate, n_fft=params.n_fft, hop_length=params.hop_length,
                n_mels=params.n_mels, fmin=params.f_min, fmax=params.f_max, power=params.power,
                center=True, pad_mode="constant", htk=False, norm="slaney",
            )
            return librosa.power_to_db(s, ref=params.ref, amin=params.amin, top_db=None)

        fns["librosa, float64 input (parity reference)"] = lambda: ref(x64)
        fns["librosa, float32 input (usual case)"] = lambda: ref(x32)
        result["librosa"] = librosa.__version__
        result["parity_max_abs_db"] = float(np.max(np.abs(logmel(x32, params) - ref(x64))))

    print(f"timing {len(fns)} implementation(s), {args.runs} calls each ...", file=sys.stderr)
    rows = timeit(fns, args.runs)
    ours = rows["edge_monitor.features.frontend.logmel"]["median_ms"]
    for row in rows.values():
        row["ours_speedup"] = row["median_ms"] / ours
    result["results"] = rows

    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; our FFT: {result['fft_backend']}")
    print(f"One {params.window_seconds:g} s window ({params.window_samples} samples -> "
          f"{params.n_mels} x {params.window_frames}), one thread\n")
    print("| implementation | median ms | p10 ms | p90 ms | ours is faster by |")
    print("|---|---:|---:|---:|---:|")
    for name, row in rows.items():
        print(f"| {name} | {row['median_ms']:.3f} | {row['p10_ms']:.3f} | {row['p90_ms']:.3f} | "
              f"{row['ours_speedup']:.2f}x |")
    if "parity_max_abs_db" in result:
        print(f"\nmax |ours - librosa(float64)| on this window: {result['parity_max_abs_db']:.2e} dB")
    checks = {f"median under {TARGET_MS:g} ms": ours < TARGET_MS}
    for name, row in rows.items():
        if name.startswith("librosa"):
            checks[f"at least {TARGET_SPEEDUP:g}x faster than {name} (median)"] = row["ours_speedup"] >= TARGET_SPEEDUP
    result["load_average"] = os.getloadavg()
    result["targets_met"] = checks
    print()
    for name, ok in checks.items():
        print(f"- {'met' if ok else 'MISSED'}: {name}")

    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
