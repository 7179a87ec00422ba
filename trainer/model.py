"""The autoencoders (Keras 3) and their analytic cost in multiply-accumulates.

Two architectures:

``conv``
    The paper's convolutional autoencoder on one whole window, input
    ``(n_mels, frames, 1)`` = ``(128, 312, 1)``, each mel band's training range
    scaled to 0..1 (:class:`edge_monitor.features.model_input.MinMaxNorm`). Encoder: three blocks of
    ``Conv2D 3x3 -> BatchNorm -> ReLU -> MaxPool 2x2``; decoder mirrors it with
    ``UpSampling2D 2x2 -> Conv2D 3x3 -> BatchNorm -> ReLU``; a final
    ``Conv2D 3x3 -> 1`` with a sigmoid gives the reconstruction in (0, 1),
    the range of normal input (docs/model.md explains why this matters).

``dense`` (default, ``trainer.defaults.DEFAULT_ARCH``; docs/model.md says why)
    A DCASE-2020-baseline-style dense autoencoder applied to every frame
    position: its input is 5 stacked frames (5 x 128 = 640 values) and it
    reconstructs them. Written as ``Conv2D`` layers whose kernels span the
    whole mel axis and 5 frames, so it runs on the same ``(128, 312, 1)``
    window, keeps the one-window-in, one-window-out contract of the runtime
    and converts to TFLite like the conv model. The reconstruction of each
    (band, frame) cell is the mean over the (up to) 5 context positions that
    contain it.

Both give the reconstruction of the whole window; the anomaly score is its
mean squared error against the input (``edge_monitor.model.scorer``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import keras
from keras import layers

from trainer.defaults import ARCHITECTURES, DEFAULT_CHANNELS, parse_channels  # Keras-free, for the CLI

__all__ = [
    "DEFAULT_CHANNELS",
    "ARCHITECTURES",
    "build_autoencoder",
    "build_conv_autoencoder",
    "build_dense_autoencoder",
    "count_macs",
    "parse_channels",
]


#: Batch-norm moving-average momentum. Keras' 0.99 needs hundreds of steps before
#: the inference statistics settle; with a few dozen windows per epoch the
#: validation loss (early stopping, threshold) would measure stale statistics.
BN_MOMENTUM = 0.9

#: Context frames and layer widths of the dense (DCASE-baseline-style) model.
DENSE_CONTEXT = 5
DENSE_UNITS = (128, 128, 8)


def build_conv_autoencoder(input_shape: tuple[int, int], channels: Sequence[int] = DEFAULT_CHANNELS,
                           batch_size: int | None = None, name: str = "conv_autoencoder") -> keras.Model:
    """The convolutional autoencoder.

    Args:
        input_shape: ``(n_mels, frames)``; both must divide by 8 (three 2x2 pools).
        channels: filters of the three encoder blocks (the decoder mirrors them).
        batch_size: fixed batch size of the input, ``None`` for training; the
            TFLite conversion needs ``1`` (Keras 3 + UpSampling2D).
    """
    n_mels, frames = input_shape
    if n_mels % 8 or frames % 8:
        raise ValueError(f"input shape {input_shape} must divide by 8 in both axes (three 2x2 pools)")
    channels = parse_channels(channels)
    inp = keras.Input(shape=(n_mels, frames, 1), batch_size=batch_size, name="logmel01")
    x = inp
    for i, c in enumerate(channels):
        x = layers.Conv2D(c, 3, padding="same", use_bias=False, name=f"enc{i}_conv")(x)
        x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"enc{i}_bn")(x)
        x = layers.ReLU(name=f"enc{i}_relu")(x)
        x = layers.MaxPooling2D(2, name=f"enc{i}_pool")(x)
    for i, c in enumerate(reversed(channels)):
        x = layers.UpSampling2D(2, name=f"dec{i}_up")(x)
        x = layers.Conv2D(c, 3, padding="same", use_bias=False, name=f"dec{i}_conv")(x)
        x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"dec{i}_bn")(x)
        x = layers.ReLU(name=f"dec{i}_relu")(x)
    out = layers.Conv2D(1, 3, padding="same", activation="sigmoid", name="recon")(x)
    return keras.Model(inp, out, name=name)


def build_dense_autoencoder(input_shape: tuple[int, int], units: Sequence[int] = DENSE_UNITS,
                            context: int = DENSE_CONTEXT, batch_size: int | None = None,
                            name: str = "dense_autoencoder") -> keras.Model:
    """DCASE-baseline-style dense autoencoder on ``context`` stacked frames, per frame position.

    The first layer is a ``Conv2D`` whose kernel covers all ``n_mels`` bands and
    ``context`` frames ("valid" padding: one position per context window), i.e.
    a dense layer on 640 stacked values; the following 1x1 convolutions are the
    dense hidden layers; the last one outputs ``n_mels * context`` values per
    position, which are overlap-averaged back onto the window.
    """
    n_mels, frames = input_shape
    inp = keras.Input(shape=(n_mels, frames, 1), batch_size=batch_size, name="logmel01")
    hidden, bottleneck = list(units[:-1]), units[-1]
    x = layers.Conv2D(hidden[0], (n_mels, context), padding="valid", name="dense_in")(inp)  # (1, P, h)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name="dense_in_bn")(x)
    x = layers.ReLU(name="dense_in_relu")(x)
    sizes = hidden[1:] + [bottleneck] + list(reversed(hidden))
    for i, u in enumerate(sizes):
        x = layers.Conv2D(u, 1, name=f"dense{i}")(x)
        x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"dense{i}_bn")(x)
        x = layers.ReLU(name=f"dense{i}_relu")(x)
    # Each position predicts its n_mels x context patch; the patches are laid
    # back onto the window (overlapping ones averaged) by _OverlapMean. (A
    # Conv2DTranspose does the same but runs ~3 s per window in TFLite.)
    x = layers.Conv2D(n_mels * context, 1, name="dense_out")(x)  # (1, P, n_mels * context)
    x = _OverlapMean(n_mels, frames, context, name="overlap_mean")(x)  # (n_mels, frames, 1)
    out = layers.Activation("sigmoid", name="recon")(x)
    return keras.Model(inp, out, name=name)


def _context_cover(frames: int, context: int) -> list[float]:
    """1 / (number of context windows that contain each frame), length ``frames``."""
    positions = frames - context + 1
    counts = [0] * frames
    for p in range(positions):
        for k in range(context):
            counts[p + k] += 1
    return [1.0 / c for c in counts]


@keras.saving.register_keras_serializable(package="edge_monitor")
class _OverlapMean(layers.Layer):
    """``(B, 1, P, n_mels * context)`` patch predictions -> ``(B, n_mels, frames, 1)``.

    Patch ``p`` covers frames ``p .. p + context - 1``; each frame is the mean
    of the patches that cover it. Only reshapes, pads and adds: cheap in TFLite.
    """

    def __init__(self, n_mels: int, frames: int, context: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.n_mels, self.frames, self.context = int(n_mels), int(frames), int(context)
        self.cover = _context_cover(self.frames, self.context)

    def call(self, x):
        ops = keras.ops
        positions = self.frames - self.context + 1
        patches = ops.reshape(x, (-1, positions, self.context, self.n_mels))
        total = None
        for k in range(self.context):
            part = ops.pad(patches[:, :, k, :], ((0, 0), (k, self.context - 1 - k), (0, 0)))
            total = part if total is None else total + part
        scale = ops.reshape(ops.convert_to_tensor(self.cover, dtype=x.dtype), (1, -1, 1))
        out = ops.transpose(total * scale, (0, 2, 1))  # (B, n_mels, frames)
        return ops.expand_dims(out, -1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.n_mels, self.frames, 1)

    def get_config(self) -> dict:
        return {**super().get_config(), "n_mels": self.n_mels, "frames": self.frames, "context": self.context}


def build_autoencoder(arch: str, input_shape: tuple[int, int], channels: Sequence[int] = DEFAULT_CHANNELS,
                      batch_size: int | None = None) -> keras.Model:
    """``arch`` is ``"conv"`` or ``"dense"`` (``channels`` applies to ``conv`` only)."""
    if arch == "conv":
        return build_conv_autoencoder(input_shape, channels, batch_size=batch_size)
    if arch == "dense":
        return build_dense_autoencoder(input_shape, batch_size=batch_size)
    raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}")


def load_keras_model(path: str | Path) -> keras.Model:
    """Load a bundle's ``model.keras`` (workstation only).

    Goes through this module so that its custom layers (the dense model's
    overlap-averaging layer) are registered before Keras deserialises them.
    """
    return keras.models.load_model(Path(path), compile=False)


def count_macs(model: keras.Model) -> int:
    """Multiply-accumulates of one forward pass of one window, counted analytically.

    Counts the convolutions (``kernel_h * kernel_w * in_channels`` MACs per
    output value, transposed convolutions per input value) and dense layers;
    batch norm, activations, pooling and upsampling are O(outputs) and left
    out (they are <1 % here, and BN folds into the convolution in TFLite).
    """
    total = 0
    for layer in model.layers:
        if isinstance(layer, layers.Conv2DTranspose):
            kh, kw = layer.kernel_size
            _, h, w, cin = layer.input.shape
            total += kh * kw * cin * layer.filters * h * w
        elif isinstance(layer, layers.Conv2D):
            kh, kw = layer.kernel_size
            cin = layer.input.shape[-1]
            _, h, w, cout = layer.output.shape
            total += kh * kw * cin * cout * h * w
        elif isinstance(layer, layers.Dense):
            cin = layer.input.shape[-1]
            total += cin * layer.units
    return int(total)
