"""Keras -> TFLite conversion with a fixed batch size of 1.

Keras 3 models with ``UpSampling2D`` fail to convert, or convert to a broken
model, when the batch dimension is dynamic; the runtime scores one window at a
time anyway. So the trained model is cloned with an input of batch size 1
(same weights) and that clone is converted.
Always check the TFLite output against Keras (``tests/test_trainer.py`` does).
"""

from __future__ import annotations

import contextlib
import io

import numpy as np

__all__ = ["QUANTIZE_MODES", "to_tflite", "tflite_predict"]

#: ``none``: float32 weights and activations. ``dynamic``: dynamic-range
#: quantisation (int8 weights, float activations; ~4x smaller file).
QUANTIZE_MODES = ("none", "dynamic")


def to_tflite(model, quantize: str = "none") -> bytes:
    """Convert a Keras autoencoder to a TFLite flatbuffer with batch size 1.

    Args:
        model: a Keras model with input ``(None|1, n_mels, frames, 1)``.
        quantize: one of :data:`QUANTIZE_MODES`.

    Returns:
        The ``.tflite`` file contents.
    """
    import tensorflow as tf

    if quantize not in QUANTIZE_MODES:
        raise ValueError(f"quantize must be one of {', '.join(QUANTIZE_MODES)}, got {quantize!r}")
    fixed = with_batch_size_one(model)
    converter = tf.lite.TFLiteConverter.from_keras_model(fixed)
    if quantize == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    # The converter prints its intermediate artifacts to stdout; keep the CLI output readable.
    with contextlib.redirect_stdout(io.StringIO()):
        return converter.convert()


def with_batch_size_one(model):
    """A copy of a functional Keras model whose input has batch size 1, with the same weights.

    (A ``tf.function`` with a batch-1 input signature converts too, but the
    resulting TFLite model outputs NaN with Keras 3 + TF 2.21: it is the
    Keras model itself that must have the fixed batch dimension.)
    """
    import keras

    if model.input_shape[0] == 1:
        return model
    inp = keras.Input(batch_shape=(1, *model.input_shape[1:]), name=model.inputs[0].name)
    clone = keras.models.clone_model(model, input_tensors=inp)
    clone.set_weights(model.get_weights())
    return clone


def tflite_predict(tflite_bytes: bytes, inputs: np.ndarray) -> np.ndarray:
    """Run ``inputs`` of shape ``(n, n_mels, frames)`` through a TFLite model, one at a time.

    Returns ``(n, n_mels, frames)``. Uses the runtime's interpreter loader.
    """
    from edge_monitor.model.tflite_backend import TFLiteModel

    runner = TFLiteModel.from_bytes(tflite_bytes)
    return np.stack([runner.run(x) for x in np.asarray(inputs, dtype=np.float32)])
