#!/usr/bin/env python3
"""Model size and accuracy: float32 vs dynamic-range int8 TFLite, same trained model.

    .venv/bin/python bench/bench_quantize.py --out bench/out/quantize.json

The float32 model is the bench bundle's ``model.tflite``; the int8 one is the
same ``model.keras`` converted with ``trainer.convert.to_tflite(model,
"dynamic")`` (int8 weights, float activations). Both score every held-out
test clip of the bench dataset (the same model inputs, one thread, through
ai-edge-litert); reported: file bytes, ms per window (the two models take
turns call by call), the AUC of each, and how much the scores move.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, bundle_dir, finish, interleaved, log, test_clips  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="float32 vs dynamic-range int8 bundle: bytes, ms/window, AUC.")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--data-out", type=Path, default=REPO / "bench" / "out",
                        help="the prepared bench folder (dataset + bundle), default bench/out")
    parser.add_argument("--runs", type=int, default=200, help="timed rounds (default 200)")
    parser.add_argument("--quick", action="store_true", help="few rounds (smoke test)")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs = 10
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:
        pass
    import numpy as np
    import tensorflow as tf
    from sklearn.metrics import roc_auc_score

    tf.config.threading.set_intra_op_parallelism_threads(1)
    from edge_monitor.audio import audio_io
    from edge_monitor.features.model_input import to_model_input
    from edge_monitor.model.bundle import load_bundle
    from edge_monitor.model.scorer import window_errors
    from edge_monitor.model.tflite_backend import TFLiteModel
    from trainer.convert import to_tflite

    bundle = load_bundle(bundle_dir(args.data_out))
    float_bytes = bundle.tflite_path.read_bytes()
    log("converting model.keras with dynamic-range quantisation ...")
    from trainer.model import load_keras_model  # registers the custom layers
    model = load_keras_model(bundle.path / "model.keras")
    int8_bytes = to_tflite(model, "dynamic")
    qdir = Path(args.data_out) / "quantize"
    qdir.mkdir(parents=True, exist_ok=True)
    (qdir / "model_int8_dynamic.tflite").write_bytes(int8_bytes)
    models = {"float32": TFLiteModel.from_bytes(float_bytes, prefer="ai_edge_litert"),
              "int8 dynamic range": TFLiteModel.from_bytes(int8_bytes, prefer="ai_edge_litert")}

    clips = test_clips(args.data_out)
    _, frames = bundle.input_shape
    log(f"scoring {len(clips)} test clips with both models ...")
    labels, scores = [], {name: [] for name in models}
    x0 = None
    for path, label in clips:
        samples = audio_io.read_wav(path, sample_rate=bundle.features.sample_rate)
        inputs = [to_model_input(w, bundle.features, bundle.norm, frames)
                  for w in audio_io.clip_windows(samples, bundle.features.window_samples)]
        x0 = inputs[0] if x0 is None else x0
        labels.append(label)
        for name, m in models.items():
            scores[name].append(float(np.mean([window_errors(x, m.run(x))[0] for x in inputs])))
    labels_a = np.asarray(labels)
    rows: dict[str, dict] = {}
    for name in models:
        rows[name] = {"bytes": len(float_bytes if name == "float32" else int8_bytes),
                      "auc": float(roc_auc_score(labels_a, scores[name]))}
    rel = np.abs(np.asarray(scores["int8 dynamic range"]) - np.asarray(scores["float32"])) / np.maximum(
        np.asarray(scores["float32"]), 1e-12)
    log(f"timing ms per window, {args.runs} rounds ...")
    timing = interleaved({name: (lambda m=m: m.run(x0)) for name, m in models.items()}, args.runs, warmup=5,
                         budget_s=40.0)
    for name in models:
        rows[name].update(timing[name])
    result = {
        "bundle": str(bundle.path),
        "test_clips": {"normal": int((labels_a == 0).sum()), "anomaly": int(labels_a.sum())},
        "threads": 1,
        "backend": models["float32"].backend,
        "results": rows,
        "score_rel_change": {"mean": float(rel.mean()), "max": float(rel.max())},
        "ratios": {"bytes_float_over_int8": rows["float32"]["bytes"] / rows["int8 dynamic range"]["bytes"],
                   "ms_int8_over_float": rows["int8 dynamic range"]["median_ms"] / rows["float32"]["median_ms"]},
    }
    print("| model | bytes | median ms/window | p10 ms | test AUC |")
    print("|---|---:|---:|---:|---:|")
    for name, r in rows.items():
        print(f"| {name} | {r['bytes']:,} | {r['median_ms']:.2f} | {r['p10_ms']:.2f} | {r['auc']:.4f} |")
    print(f"\nscores move by {rel.mean():.2%} on average (max {rel.max():.2%})")
    return finish(result, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
