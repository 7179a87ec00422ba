#!/usr/bin/env python3
"""The baseline: what a user would write to score audio without Edge Monitor's runtime.

    .venv/bin/python bench/naive_tf_monitor.py BUNDLE_DIR a.wav b.wav ...

It imports TensorFlow, loads the trained Keras model (``model.keras``), reads
each WAV with librosa, cuts it into back-to-back windows of the model's
length, computes the log-mel with librosa (the same parameters, from
``model.json``), scales it with the bundle's per-band min/max and scores each
window as the reconstruction MSE through ``model.predict`` (or ``model(x)``
with ``--call``). One line per window on stdout (flushed), so a caller can
time the first window.

It is deliberately plain -- no ring buffer, no MQTT, no decision -- so it
measures less work than the daemon does; the daemon still has to beat it.
Benchmark-only: the runtime never imports TensorFlow or librosa.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv: list[str] | None = None) -> int:
    t_start = time.perf_counter()
    parser = argparse.ArgumentParser(description="Naive TensorFlow + librosa window scorer (benchmark baseline).")
    parser.add_argument("bundle", type=Path, help="bundle directory with model.keras and model.json")
    parser.add_argument("wavs", nargs="+", type=Path, help="WAV files, scored back to back")
    parser.add_argument("--call", action="store_true", help="model(x) instead of model.predict(x)")
    parser.add_argument("--features", choices=("librosa", "edge_monitor"), default="librosa",
                        help="front end (default librosa, what a user would reach for)")
    parser.add_argument("--quiet", action="store_true", help="print only the summary line")
    args = parser.parse_args(argv)

    import librosa
    import numpy as np
    import tensorflow as tf  # noqa: F401  (the point of the baseline)

    meta = json.loads((args.bundle / "model.json").read_text())
    fp = meta["features"]
    sr, n_fft, hop, n_mels = fp["sample_rate"], fp["n_fft"], fp["hop_length"], fp["n_mels"]
    window = int(round(fp["window_seconds"] * sr))
    n_mels_in, frames = meta["input_shape"]
    lo = np.asarray(meta["normalisation"]["lo"], dtype=np.float32)[:, None]
    hi = np.asarray(meta["normalisation"]["hi"], dtype=np.float32)[:, None]
    # The clip bounds training used (model.json; bundles without them: [0, 1]; null: no bound).
    clip_lo = meta["normalisation"].get("clip_lo", 0.0)
    clip_hi = meta["normalisation"].get("clip_hi", 1.0)
    from trainer.model import load_keras_model  # registers the custom layers
    model = load_keras_model(args.bundle / "model.keras")

    if args.features == "edge_monitor":
        from edge_monitor.features.frontend import FeatureParams, logmel

        params = FeatureParams.from_dict(fp)

        def features(x: np.ndarray) -> np.ndarray:
            return logmel(x, params)
    else:
        def features(x: np.ndarray) -> np.ndarray:
            s = librosa.feature.melspectrogram(y=x, sr=sr, n_fft=n_fft, hop_length=hop, n_mels=n_mels,
                                               fmin=fp["f_min"], fmax=fp["f_max"], power=fp["power"])
            return librosa.power_to_db(s, ref=fp["ref"], amin=fp["amin"], top_db=None)

    windows = 0
    scores = []
    for path in args.wavs:
        y, _ = librosa.load(path, sr=sr, mono=True)
        for start in range(0, len(y) - window + 1, window):
            db = features(y[start:start + window])[:n_mels_in, :frames]
            x = np.clip((db - lo) / (hi - lo), clip_lo, clip_hi).astype(np.float32)[None, :, :, None]
            recon = model(x, training=False).numpy() if args.call else model.predict(x, verbose=0)
            score = float(np.mean((recon - x) ** 2))
            scores.append(score)
            windows += 1
            if not args.quiet:
                print(f"window {windows} {time.perf_counter() - t_start:.4f} {score:.6g}", flush=True)
    print(json.dumps({"windows": windows, "seconds": time.perf_counter() - t_start,
                      "mean_score": float(np.mean(scores)) if scores else None}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
