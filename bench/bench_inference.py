#!/usr/bin/env python3
"""Model inference per window: the TFLite bundle (ai-edge-litert) vs the same model in Keras.

    .venv/bin/python bench/bench_inference.py --out bench/out/inference.json [--bundle bench/out/bundle]

For 1 thread and for all threads (one child process each, because
TensorFlow's thread pools are fixed once it starts), on one real window of
the bench dataset, the three ways take turns call by call:

* ``tflite``: ``edge_monitor.model.tflite_backend.TFLiteModel`` on the bundle's
  ``model.tflite`` through ai-edge-litert (what the daemon runs);
* ``keras predict``: ``model.predict(x, verbose=0)`` on ``model.keras``;
* ``keras call``: ``model(x, training=False)``.

The 1-thread child also times the whole window as the daemon scores it
(``Scorer.score_window``: log-mel, every detector of the bench bundle, fusion) and a reference
network for the Raspberry Pi 4 estimate: MobileNet v1 1.0 (224x224, random
weights, 569 MMAC), the network of XNNPACK's published Raspberry Pi table,
converted to TFLite and run through the same interpreter with 1 and all threads.
Median, p10 and p90 per call in ms; speed-ups are ratios of medians.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, bundle_dir, finish, interleaved, log, normal_test_clips  # noqa: E402

MOBILENET_V1_MACS = 569_000_000  # Howard et al. 2017, Table 8 (1.0 MobileNet-224: 569 million mult-adds)


def _set_tf_threads(n: int) -> None:
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(n)
    tf.config.threading.set_inter_op_parallelism_threads(n)


def child(args: argparse.Namespace) -> dict:
    """Measure everything for one thread count (runs in its own process)."""
    import numpy as np

    n = args.threads
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(n)
    except ImportError:
        pass
    _set_tf_threads(n)

    from edge_monitor.audio import audio_io
    from edge_monitor.features.model_input import to_model_input
    from edge_monitor.model.bundle import load_bundle
    from edge_monitor.model.scorer import Scorer
    from edge_monitor.model.tflite_backend import TFLiteModel

    bundle = load_bundle(args.bundle)
    clips = normal_test_clips(args.data_out)
    samples = audio_io.read_wav(clips[0], sample_rate=bundle.features.sample_rate)[:bundle.features.window_samples]
    _, frames = bundle.input_shape
    x = to_model_input(samples, bundle.features, bundle.norm, frames)
    xb = x[None, :, :, None]

    tfl = TFLiteModel(bundle.tflite_path, num_threads=n, prefer="ai_edge_litert")
    from trainer.model import load_keras_model  # registers the custom layers
    model = load_keras_model(bundle.path / "model.keras")
    scorer = Scorer(bundle, num_threads=n)

    out_tfl = tfl.run(x)
    out_keras = np.asarray(model(xb, training=False))[0, :, :, 0]
    fns = {
        "tflite (ai-edge-litert)": lambda: tfl.run(x),
        "keras model.predict": lambda: model.predict(xb, verbose=0),
        "keras model(x)": lambda: model(xb, training=False),
    }
    if n == 1:
        fns["whole window: Scorer.score_window (log-mel + every detector + fusion)"] = lambda: scorer.score_window(samples)
    log(f"[{n} thread(s)] timing {len(fns)} ways, {args.runs} rounds ...")
    rows = interleaved(fns, args.runs, warmup=5, budget_s=args.budget)
    result = {
        "threads": n,
        "backend": tfl.backend,
        "max_abs_diff_tflite_vs_keras": float(np.max(np.abs(out_tfl - out_keras))),
        "results": rows,
    }
    if args.reference:
        result["reference"] = reference_network(n, args.runs, args.budget)
        result["widths"] = width_sweep(bundle.input_shape, args.runs, args.budget)
    return result


#: Channel widths timed for the cost curve (random weights: time does not depend on them).
WIDTHS = ((4, 8, 16), (8, 16, 32), (16, 32, 64), (32, 64, 128))


def width_sweep(input_shape: tuple[int, int], runs: int, budget: float) -> list[dict]:
    """MACs, TFLite bytes and 1-thread ms per window of the conv autoencoder at several widths."""
    import numpy as np

    from edge_monitor.model.tflite_backend import TFLiteModel
    from trainer.convert import to_tflite
    from trainer.model import build_conv_autoencoder, count_macs

    log(f"cost of the conv autoencoder at widths {', '.join('/'.join(map(str, w)) for w in WIDTHS)} ...")
    x = np.random.default_rng(0).random(input_shape, dtype=np.float32)
    models, rows = {}, []
    for w in WIDTHS:
        model = build_conv_autoencoder(input_shape, w, batch_size=1)
        content = to_tflite(model)
        name = "/".join(map(str, w))
        models[name] = TFLiteModel.from_bytes(content, num_threads=1, prefer="ai_edge_litert")
        rows.append({"channels": list(w), "macs": count_macs(model), "parameters": int(model.count_params()),
                     "tflite_bytes": len(content)})
    timing = interleaved({k: (lambda m=m: m.run(x)) for k, m in models.items()}, max(20, runs // 3),
                         warmup=3, budget_s=budget)
    for row in rows:
        t = timing["/".join(map(str, row["channels"]))]
        row.update(t)
        row["gmac_per_s"] = row["macs"] / (t["median_ms"] * 1e-3) / 1e9
    return rows


def reference_network(n: int, runs: int, budget: float) -> dict:
    """MobileNet v1 1.0 (random weights) through the same TFLite interpreter, 1 and ``n`` threads."""
    import keras
    import numpy as np
    import tensorflow as tf

    from edge_monitor.model.tflite_backend import TFLiteModel

    log("converting MobileNet v1 1.0 (random weights) to TFLite for the Raspberry Pi reference ...")
    net = keras.applications.MobileNet(input_shape=(224, 224, 3), alpha=1.0, weights=None, classes=1000)
    inp = keras.Input(batch_shape=(1, 224, 224, 3))
    fixed = keras.Model(inp, net(inp))
    converter = tf.lite.TFLiteConverter.from_keras_model(fixed)
    content = converter.convert()
    x = np.random.default_rng(0).random((224, 224, 3), dtype=np.float32)
    out = {"network": "MobileNet v1 1.0 224x224 fp32", "macs": MOBILENET_V1_MACS, "tflite_bytes": len(content)}
    threads = sorted({1, os.cpu_count() or 1})
    models = {t: TFLiteModel.from_bytes(content, num_threads=t, prefer="ai_edge_litert") for t in threads}
    def invoke(m: TFLiteModel) -> None:
        # TFLiteModel.run reshapes the output like the input (autoencoders); a classifier needs the raw calls.
        m.interpreter.set_tensor(m._in_index, x[None])
        m.interpreter.invoke()
        m.interpreter.get_tensor(m._out_index)

    rows = interleaved({f"{t} thread(s)": (lambda m=m: invoke(m)) for t, m in models.items()},
                       max(20, runs // 3), warmup=3, budget_s=budget)
    out["results"] = rows
    return out


def parent(args: argparse.Namespace) -> dict:
    threads = sorted({1, os.cpu_count() or 1})
    result: dict = {"bundle": str(args.bundle), "thread_counts": threads, "by_threads": {}}
    meta = json.loads((args.bundle / "model.json").read_text())
    result["model"] = {k: meta["model"].get(k) for k in ("arch", "channels", "parameters", "macs_per_window",
                                                         "tflite_bytes", "quantize")}
    result["input_shape"] = meta["input_shape"]
    for t in threads:
        cmd = [sys.executable, __file__, "--child", "--threads", str(t), "--bundle", str(args.bundle),
               "--data-out", str(args.data_out), "--runs", str(args.runs), "--budget", str(args.budget)]
        if t == 1 and not args.no_reference:
            cmd.append("--reference")
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
        sys.stderr.write("".join(line + "\n" for line in proc.stderr.splitlines() if line.startswith("[bench")))
        if proc.returncode != 0:
            raise SystemExit(f"bench_inference child ({t} threads) failed:\n{proc.stderr[-3000:]}")
        result["by_threads"][str(t)] = json.loads(proc.stdout.strip().splitlines()[-1])

    # Ratios: how much faster TFLite is than each Keras way, per thread count.
    macs = result["model"]["macs_per_window"]
    for t, r in result["by_threads"].items():
        rows = r["results"]
        tfl = rows["tflite (ai-edge-litert)"]["median_ms"]
        for name, row in rows.items():
            row["vs_tflite"] = row["median_ms"] / tfl
        r["tflite_gmac_per_s"] = macs / (tfl * 1e-3) / 1e9 if macs else None

    print_table(result)
    return result


def print_table(result: dict) -> None:
    print(f"Model: {result['model']}")
    print("| way | threads | median ms | p10 ms | p90 ms | x TFLite time |")
    print("|---|---:|---:|---:|---:|---:|")
    for t, r in result["by_threads"].items():
        for name, row in r["results"].items():
            print(f"| {name} | {t} | {row['median_ms']:.2f} | {row['p10_ms']:.2f} | {row['p90_ms']:.2f} | "
                  f"{row['vs_tflite']:.2f} |")
    ref = result["by_threads"].get("1", {}).get("reference")
    if ref:
        for name, row in ref["results"].items():
            print(f"| reference {ref['network']} | {name} | {row['median_ms']:.2f} | {row['p10_ms']:.2f} | "
                  f"{row['p90_ms']:.2f} | |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="TFLite (ai-edge-litert) vs Keras predict / call, per window.")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--bundle", type=Path, default=None, help="bundle directory (default <data-out>/bundle)")
    parser.add_argument("--data-out", type=Path, default=REPO / "bench" / "out",
                        help="the prepared bench folder (dataset + bundle), default bench/out")
    parser.add_argument("--runs", type=int, default=150, help="timed rounds per thread count (default 150)")
    parser.add_argument("--budget", type=float, default=45.0, help="seconds of timed rounds per child (default 45)")
    parser.add_argument("--no-reference", action="store_true", help="skip the MobileNet reference (Pi estimate)")
    parser.add_argument("--quick", action="store_true", help="few rounds, no reference (smoke test)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--reference", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.bundle is None:
        args.bundle = bundle_dir(args.data_out)
    if args.quick:
        args.runs, args.budget, args.no_reference = 8, 5.0, True
    if args.child:
        print(json.dumps(child(args)))
        return 0
    result = parent(args)
    return finish(result, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
