"""The autoencoder's part of ``train``: fit, save, convert, score with TFLite. Keras only inside the functions.

Split from :mod:`trainer.train` (which fits the NumPy detectors, chooses the
bundle's detectors and writes it): everything here needs TensorFlow or its
TFLite runtime and is only called when the autoencoder is a candidate.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edge_monitor.audio import audio_io
from edge_monitor.features.frontend import FeatureParams, logmel
from edge_monitor.features.model_input import MinMaxNorm
from edge_monitor.model.bundle import MODEL_KERAS, MODEL_TFLITE, TRAINING_CURVE
from edge_monitor.model.model_json import DetectorSpec
from edge_monitor.model.scorer import window_errors
from trainer.datasets import ClipRef

if TYPE_CHECKING:
    from trainer.train import TrainConfig

__all__ = ["keras_window_scores", "plot_training_curve", "pooled_scores", "train_autoencoder", "tflite_errors",
           "quantization_effect"]

Progress = Callable[[str], None]


def _fmt_seconds(s: float) -> str:
    s = max(0, int(round(s)))
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def _auc(labels: np.ndarray, scores: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, scores))


def _progress_callback(epochs: int, progress: Progress):
    import keras

    class EpochLine(keras.callbacks.Callback):
        """One line per epoch: loss, validation loss, time per epoch and time left."""

        def on_train_begin(self, logs=None):
            self.t0 = time.monotonic()

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            done = epoch + 1
            per_epoch = (time.monotonic() - self.t0) / done
            left = per_epoch * (epochs - done)
            progress(f"epoch {done:>3}/{epochs}  loss {logs.get('loss', float('nan')):.5f}  "
                     f"val_loss {logs.get('val_loss', float('nan')):.5f}  "
                     f"{per_epoch:.1f} s/epoch  at most {_fmt_seconds(left)} left")

    return EpochLine()


def keras_window_scores(model, inputs: np.ndarray, batch_size: int = 16) -> np.ndarray:
    """Window scores (reconstruction MSE) of ``(n, n_mels, frames)`` inputs with a Keras model."""
    x = np.asarray(inputs, dtype=np.float32)[..., None]
    recon = model.predict(x, batch_size=batch_size, verbose=0)[..., 0]
    return np.array([window_errors(a, b)[0] for a, b in zip(inputs, recon)])


def plot_training_curve(history: dict[str, list[float]], path: Path, title: str, best_epoch: int | None = None) -> None:
    """Train and validation loss (MSE) per epoch, log scale, to a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    epochs = np.arange(1, len(history["loss"]) + 1)
    ax.plot(epochs, history["loss"], marker="o", label="training loss")
    if history.get("val_loss"):
        ax.plot(epochs, history["val_loss"], marker="s", label="validation loss")
    if best_epoch:
        ax.axvline(best_epoch, color="grey", linestyle=":", label=f"best epoch ({best_epoch}, restored)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("reconstruction MSE")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def tflite_errors(tflite_bytes: bytes, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(scores (n,), band_errors (n, n_mels), frame_errors (n, frames))`` of inputs through a TFLite model."""
    from edge_monitor.model.tflite_backend import TFLiteModel

    runner = TFLiteModel.from_bytes(tflite_bytes)
    scores, bands, frames = [], [], []
    for x in inputs:
        s, b, f = window_errors(x, runner.run(x))
        scores.append(s)
        bands.append(b)
        frames.append(f)
    return np.asarray(scores), np.asarray(bands), np.asarray(frames)


def train_autoencoder(config: TrainConfig, x_train: np.ndarray, x_val: np.ndarray, input_shape: tuple[int, int],
                       out_dir: Path, machine: str, machine_ids: list[str], log: Progress) -> dict[str, Any]:
    """Fit, save and convert the autoencoder; ``{"tflite", "history", "model", "macs", "model_meta", ...}``."""
    import keras
    import tensorflow as tf

    from trainer.convert import to_tflite
    from trainer.model import build_autoencoder, count_macs

    keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()
    model = build_autoencoder(config.arch, input_shape, config.channels)
    macs = count_macs(model)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=config.learning_rate), loss="mse")
    log(f"model: {config.arch} autoencoder" + (f", channels {'/'.join(map(str, config.channels))}"
                                                if config.arch == "conv" else "")
        + f", {model.count_params():,} parameters, {macs / 1e6:.1f} MMAC per window")
    stopper = keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.patience, restore_best_weights=True)
    callbacks = [stopper, _progress_callback(config.epochs, log)]
    t_fit = time.monotonic()
    fit = model.fit(x_train[..., None], x_train[..., None], validation_data=(x_val[..., None], x_val[..., None]),
                    epochs=config.epochs, batch_size=config.batch_size, shuffle=True, callbacks=callbacks, verbose=0)
    fit_seconds = time.monotonic() - t_fit
    history = {k: [float(v) for v in vals] for k, vals in fit.history.items()}
    best_epoch = int(np.argmin(history["val_loss"])) + 1
    log(f"training: {len(history['loss'])} epochs in {fit_seconds:.1f} s; best validation loss "
        f"{min(history['val_loss']):.5f} at epoch {best_epoch} (weights restored)")
    model.save(out_dir / MODEL_KERAS)
    plot_training_curve(history, out_dir / TRAINING_CURVE,
                        f"{machine} {', '.join(machine_ids)}: autoencoder training", best_epoch)
    tflite = to_tflite(model, config.quantize)
    (out_dir / MODEL_TFLITE).write_bytes(tflite)
    return {
        "tflite": tflite,
        "history": history,
        "model": model,
        "macs": int(macs),
        "model_meta": {
            "file": MODEL_TFLITE,
            "arch": config.arch,
            "channels": list(config.channels) if config.arch == "conv" else None,
            "parameters": int(model.count_params()),
            "macs_autoencoder": int(macs),
            "quantize": config.quantize,
            "tflite_bytes": len(tflite),
            "output": "sigmoid reconstruction in (0, 1)",
            "score": "mean squared error of the window reconstruction",
        },
        "training": {
            "epochs": config.epochs,
            "epochs_run": len(history["loss"]),
            "best_epoch": best_epoch,
            "best_val_loss": min(history["val_loss"]),
            "batch_size": config.batch_size,
            "learning_rate": config.learning_rate,
            "patience": config.patience,
            "val_split": config.val_split,
            "train_windows": int(len(x_train)),
            "val_windows": int(len(x_val)),
            "fit_seconds": round(fit_seconds, 2),
            "history": history,
        },
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__},
    }


def quantization_effect(float_bytes: bytes, quant_bytes: bytes, test: Sequence[ClipRef], params: FeatureParams,
                         norm: MinMaxNorm, frames: int, quant_result: dict[str, Any]) -> dict[str, Any]:
    """AUC and score change of the float32 vs the quantised model on the test clips."""
    from edge_monitor.model.tflite_backend import TFLiteModel

    runner = TFLiteModel.from_bytes(float_bytes)
    per_clip: list[float] = []
    for clip in test:
        samples = audio_io.read_wav(clip.path, sample_rate=params.sample_rate)
        windows = audio_io.clip_windows(samples, params.window_samples)
        s = []
        for w in windows:
            x = norm.apply(logmel(w, params)[:, :frames])
            s.append(window_errors(x, runner.run(x))[0])
        per_clip.append(float(np.mean(s)))
    float_scores = np.asarray(per_clip)
    rel = np.abs(quant_result["scores"] - float_scores) / np.maximum(float_scores, 1e-12)
    return {
        "auc_float32": _auc(quant_result["labels"], float_scores),
        "auc_quantized": float(quant_result["auc"]),
        "bytes_float32": len(float_bytes),
        "bytes_quantized": len(quant_bytes),
        "score_rel_change_mean": float(rel.mean()),
        "score_rel_change_max": float(rel.max()),
        "n_clips": len(test),
    }


def pooled_scores(spec: DetectorSpec, scores: np.ndarray, frame_errors: np.ndarray) -> np.ndarray:
    """The autoencoder's window scores under ``spec.pooling`` (``mean``: the MSE as computed)."""
    return scores if spec.pooling.kind == "mean" else np.array([spec.pooling.apply(f) for f in frame_errors])
