#!/usr/bin/env python3
"""Shared helpers for the benchmarks, and the one-time preparation step.

    .venv/bin/python bench/common.py prepare --out bench/out      # dataset + bench bundle (cached)

``prepare`` writes a synthetic DCASE-layout dataset (``trainer.synth.generate_dataset``
with its default size: 3 machine ids x 50 training + 50 test clips of 10 s) and
trains a bundle with every detector (the default autoencoder size plus the
level-profile and frame detectors: ``TrainConfig(detectors=(...all three...))``),
both under ``--out`` (git-ignored ``bench/out/``). A second call reuses them:
the dataset when its ``metadata.csv`` exists, the bundle when its
``model.json`` exists and names the same channel widths.

The timing helpers interleave the functions being compared call by call, so
a machine busy with other work slows them alike and the ratios stay fair;
they report the median and the 10th/90th percentiles.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

DATA_SEED = 1234
MACHINE = "slider"


def log(line: str) -> None:
    """Progress on stderr (stdout stays free for tables)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


# --- paths --------------------------------------------------------------------------------------


def data_root(out: Path) -> Path:
    """The machine folder of the bench dataset (``<out>/data/slider``)."""
    return Path(out) / "data" / MACHINE


def bundle_dir(out: Path) -> Path:
    return Path(out) / "bundle"


def test_clips(out: Path) -> list[tuple[Path, int]]:
    """``(path, label)`` of the held-out test clips (label 1 = anomaly), sorted by path."""
    from trainer.datasets import find_clips

    clips = find_clips(data_root(out), split="test")
    return [(c.path, int(c.label == "anomaly")) for c in sorted(clips, key=lambda c: str(c.path))]


def normal_test_clips(out: Path) -> list[Path]:
    return [p for p, label in test_clips(out) if label == 0]


# --- timing ---------------------------------------------------------------------------------------


def summarise_ms(seconds: list[float] | Any) -> dict[str, float]:
    """Median, p10, p90 and min of per-call times given in seconds, in ms."""
    import numpy as np

    ms = np.asarray(seconds, dtype=np.float64) * 1e3
    return {"median_ms": float(np.median(ms)), "p10_ms": float(np.percentile(ms, 10)),
            "p90_ms": float(np.percentile(ms, 90)), "min_ms": float(ms.min()), "runs": int(ms.size)}


def interleaved(fns: dict[str, Callable[[], object]], runs: int, warmup: int = 3,
                budget_s: float | None = None) -> dict[str, dict[str, float]]:
    """Per-call wall time of each function, the functions taking turns call by call.

    Args:
        fns: name -> zero-argument callable.
        runs: timed rounds (each round calls every function once).
        warmup: untimed calls of each function first.
        budget_s: stop after this many seconds of timed rounds (at least 5 rounds).
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    t_start = time.perf_counter()
    for i in range(runs):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
        if budget_s is not None and i >= 4 and time.perf_counter() - t_start > budget_s:
            break
    return {name: summarise_ms(t) for name, t in times.items()}


# --- the machine ----------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def blas_info() -> list[dict[str, Any]]:
    """NumPy's BLAS/OpenMP pools as threadpoolctl sees them (kernel = OpenBLAS core type)."""
    try:
        import numpy  # noqa: F401  (load its BLAS first)
        from threadpoolctl import threadpool_info
        return [{k: v for k, v in pool.items() if k in ("internal_api", "version", "num_threads",
                                                          "threading_layer", "architecture")}
                for pool in threadpool_info()]
    except Exception:  # noqa: BLE001 - informational only
        return []


def _version(module: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(module)
    except Exception:  # noqa: BLE001
        return None


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on (recorded in every JSON and in RESULTS.md)."""
    import numpy as np

    try:
        load = list(os.getloadavg())
    except OSError:
        load = None
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu_model": cpu_model(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": _version("scipy"),
        "tensorflow": _version("tensorflow-cpu") or _version("tensorflow"),
        "keras": _version("keras"),
        "ai_edge_litert": _version("ai-edge-litert"),
        "librosa": _version("librosa"),
        "openblas_env": {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")},
        "blas": blas_info(),
        "load_average": load,
    }


def finish(result: dict[str, Any], out: Path | None) -> int:
    """Stamp ``result`` with the machine it ran on, write it to ``out`` (if given); exit status 0."""
    result["machine"] = machine_info()
    if out:
        write_json(out, result)
    return 0


def write_json(path: Path, result: dict[str, Any]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    result.setdefault("machine", machine_info())
    path.write_text(json.dumps(result, indent=2, default=float) + "\n")
    log(f"wrote {path}")


# --- child processes ------------------------------------------------------------------------------


def run_measured(cmd: list[str], *, cwd: Path = REPO, env: dict[str, str] | None = None,
                 stdout: Any = subprocess.DEVNULL, stderr: Any = subprocess.PIPE,
                 timeout: float = 900.0) -> dict[str, Any]:
    """Run ``cmd`` and return its wall time, CPU time and peak RSS (``wait4`` rusage of the child).

    Returns ``{"rc", "wall_s", "user_s", "sys_s", "cpu_s", "peak_rss_mb", "ru_maxrss_mb", "stderr_tail"}``.
    ``peak_rss_mb`` is the child's own high-water mark (``VmHWM`` of ``/proc/<pid>/status``, read
    every 5 ms until it exits; it only grows, so the last read is the peak up to the last 5 ms), in
    MiB. ``ru_maxrss_mb`` from ``wait4`` is kept for the record but is not the child's own: Linux
    starts it from the RSS of the process that forked it (``subprocess`` uses vfork, so a 900 MB
    parent makes ``python -c pass`` "peak" at 900 MB).
    """
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=stdout, stderr=stderr, text=True)
    err_chunks: list[str] = []
    if stderr is subprocess.PIPE:
        # Drain stderr while the child runs so it never blocks on a full pipe.
        import threading

        def drain() -> None:
            assert proc.stderr is not None
            for line in proc.stderr:
                err_chunks.append(line)
                if len(err_chunks) > 400:
                    del err_chunks[:200]

        reader = threading.Thread(target=drain, daemon=True)
        reader.start()
    deadline = time.monotonic() + timeout
    hwm_kb = 0
    while True:
        hwm_kb = max(hwm_kb, _vm_hwm_kb(proc.pid))
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            proc.kill()
            pid, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.005)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if stderr is subprocess.PIPE:
        reader.join(timeout=5)
    return {
        "rc": proc.returncode,
        "wall_s": wall,
        "user_s": usage.ru_utime,
        "sys_s": usage.ru_stime,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_rss_mb": hwm_kb / 1024.0,
        "ru_maxrss_mb": usage.ru_maxrss / 1024.0,
        "stderr_tail": "".join(err_chunks)[-3000:],
    }


def _vm_hwm_kb(pid: int) -> int:
    """Peak resident set size (kB) of a running process, 0 when it cannot be read."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def simulate_config(path: Path, bundle: Path, state_dir: Path, **decision: Any) -> Path:
    """A minimal ``edge-monitor`` YAML config for ``simulate --no-mqtt`` runs."""
    import yaml

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cfg: dict[str, Any] = {"device_id": "bench", "model": str(Path(bundle).resolve()),
                           "state_dir": str(Path(state_dir).resolve()), "mqtt": {"enabled": False}}
    if decision:
        cfg["decision"] = decision
    path.write_text(yaml.safe_dump(cfg))
    return path


def hour_of_audio(out: Path, seconds: float = 3600.0) -> list[Path]:
    """The normal test clips repeated (in order) until they add up to ``seconds`` of audio.

    A long stream made of 10 s files: the replay reads one file at a time, as
    a microphone delivers blocks; one 1-hour WAV would put 230 MB of float32
    audio in the daemon's memory and measure the file reader, not the daemon.
    """
    clips = normal_test_clips(out)
    if not clips:
        raise SystemExit(f"no normal test clips under {data_root(out)}: run `bench/common.py prepare` first")
    import wave

    def seconds_of(path: Path) -> float:
        with wave.open(str(path), "rb") as w:
            return w.getnframes() / w.getframerate()

    lengths = [seconds_of(p) for p in clips]
    paths: list[Path] = []
    total = 0.0
    i = 0
    while total < seconds - 1e-6:
        paths.append(clips[i % len(clips)])
        total += lengths[i % len(clips)]
        i += 1
    return paths


# --- prepare --------------------------------------------------------------------------------------


def prepare(out: Path, *, n_train: int | None = None, epochs: int | None = None, force: bool = False) -> dict[str, Any]:
    """Make (or reuse) the bench dataset and bundle; returns what was made and how long it took."""
    out = Path(out)
    info: dict[str, Any] = {}
    root = data_root(out)
    t0 = time.perf_counter()
    if force or not (root / "metadata.csv").is_file():
        from trainer.synth import generate_dataset

        kwargs: dict[str, Any] = {}
        if n_train is not None:
            kwargs = {"n_train": n_train, "n_test_normal": max(2, n_train // 3), "n_test_anomaly": max(2, n_train // 2)}
        log(f"synthesising the bench dataset into {root.parent} (seed {DATA_SEED}) ...")

        def progress(done: int, total: int) -> None:
            if done == total or done % 50 == 0:
                log(f"  {done}/{total} clips")

        summary = generate_dataset(root.parent, DATA_SEED, progress=progress, **kwargs)
        info["dataset_seconds"] = round(time.perf_counter() - t0, 1)
        info["dataset_clips"] = summary.total
    else:
        log(f"reusing the dataset in {root}")
    from trainer.train import TrainConfig, train_bundle

    # Every detector on: the bundle the cost targets are about (autoencoder + profile + frames).
    every = ("autoencoder", "profile", "frames")
    config = TrainConfig(detectors=every) if epochs is None else TrainConfig(epochs=epochs, detectors=every)
    bdir = bundle_dir(out)
    meta_path = bdir / "model.json"
    reuse = False
    if not force and meta_path.is_file() and (bdir / "model.keras").is_file():
        meta = json.loads(meta_path.read_text())
        model_meta = meta.get("model", {})
        same_model = model_meta.get("arch", "conv") == config.arch and (
            config.arch != "conv" or model_meta.get("channels") == list(config.channels))
        norm = meta.get("normalisation", meta.get("norm", {}))
        same_clip = (norm.get("clip_lo", 0.0), norm.get("clip_hi", 1.0)) == (config.clip_lo, config.clip_hi)
        same_detectors = [d.get("kind") for d in meta.get("detectors", [])] == list(every)
        reuse = (same_model and same_clip and same_detectors
                 and meta.get("training", {}).get("epochs") == config.epochs)
    if reuse:
        log(f"reusing the bundle in {bdir}")
    else:
        t1 = time.perf_counter()
        log(f"training the bench bundle ({config.arch}, up to {config.epochs} epochs) ...")
        train_bundle(root.parent, bdir, config)
        info["train_seconds"] = round(time.perf_counter() - t1, 1)
    meta = json.loads(meta_path.read_text())
    info.update({
        "bundle": str(bdir),
        "arch": meta["model"].get("arch", "conv"),
        "channels": meta["model"].get("channels"),
        "macs_per_window": meta["model"].get("macs_per_window"),
        "parameters": meta["model"].get("parameters"),
        "tflite_bytes": meta["model"].get("tflite_bytes"),
        "test_auc": meta.get("test", {}).get("auc"),
        "training": {k: meta["training"].get(k) for k in ("epochs_run", "best_epoch", "train_windows",
                                                          "val_windows", "fit_seconds")},
    })
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Bench helpers. `prepare`: the synthetic dataset and the bench bundle.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare", help="synthesise the dataset and train the bench bundle (cached in --out)")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "out", help="cache folder (default bench/out)")
    p.add_argument("--quick", action="store_true", help="a tiny dataset and 2 epochs (smoke tests only)")
    p.add_argument("--force", action="store_true", help="rebuild even when cached")
    m = sub.add_parser("machine", help="print the machine description as JSON")
    m.add_argument("--out", type=Path, help="also write it to this file")
    args = parser.parse_args(argv)
    if args.cmd == "prepare":
        info = prepare(args.out, n_train=6 if args.quick else None, epochs=2 if args.quick else None,
                       force=args.force)
        write_json(args.out / "prepare.json", info)
        return 0
    if args.cmd == "machine":
        info = machine_info()
        print(json.dumps(info, indent=2))
        if args.out:
            write_json(args.out, {"machine": info})
        return 0
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
