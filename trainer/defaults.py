"""Training defaults and choices, importable without TensorFlow or Keras.

The CLI's ``add_arguments`` (``edge-monitor-train train --help``) reads these;
importing :mod:`trainer.model` would load Keras (~10 s). The values are chosen
from the held-out measurements in docs/model.md (``bench/bench_model_choice.py``).
"""

from __future__ import annotations

#: The architectures of :mod:`trainer.model`.
ARCHITECTURES: tuple[str, ...] = ("conv", "dense")

#: Default architecture (docs/model.md, "Choosing the defaults").
DEFAULT_ARCH = "dense"

#: Channel widths of the conv model's three encoder blocks (~144 MMAC per window).
DEFAULT_CHANNELS: tuple[int, int, int] = (8, 16, 32)

#: Clip bounds of the normalised input (:class:`edge_monitor.features.MinMaxNorm`):
#: each band's training range maps to 0..1 and one more range of headroom is kept
#: on either side, so sound louder (or quieter) than anything in training raises
#: the error, which the sigmoid output cannot follow, instead of being flattened
#: onto the training range. Bounded, so one extreme event cannot dominate a
#: window's score without limit. Stored in model.json (bundles without the keys: [0, 1]).
DEFAULT_CLIP_LO: float | None = -1.0
DEFAULT_CLIP_HI: float | None = 2.0

#: Threshold rule and quantile of the validation (normal) scores.
DEFAULT_THRESHOLD_RULE = "gamma"
DEFAULT_THRESHOLD_QUANTILE = 0.99

#: The detectors a bundle can hold (edge_monitor.detectors).
DETECTOR_KINDS: tuple[str, ...] = ("autoencoder", "profile", "frames")

#: With fewer normal training clips than this, ``train`` leaves the autoencoder out
#: (docs/model.md: with 10 clips it has too little to learn from; the NumPy
#: detectors, fitted with out-of-fold thresholds, do better).
MIN_AUTOENCODER_CLIPS = 30

#: Fusion of the detectors' standardised scores (edge_monitor.fusion).
DEFAULT_FUSION = "max"


def _pooling(kind: str, fraction: float = 0.01):  # noqa: ANN202 - avoids importing numpy-heavy modules at --help
    from edge_monitor.detectors import Pooling

    return Pooling(kind, fraction)


#: The autoencoder's frame pooling: the mean squared error over the window.
DEFAULT_AE_POOLING = _pooling("mean")


def default_detectors(n_clips: int) -> tuple[str, ...]:
    """The detectors ``train`` uses for ``n_clips`` normal training clips (docs/model.md)."""
    if n_clips >= MIN_AUTOENCODER_CLIPS:
        return ("autoencoder", "profile", "frames")
    return ("profile", "frames")


def detector_specs(kinds: tuple[str, ...], ae_pooling=None):  # noqa: ANN001, ANN201
    """:class:`edge_monitor.bundle.DetectorSpec` for each kind, with the defaults of docs/model.md."""
    from edge_monitor.bundle import DetectorSpec
    from edge_monitor.fit import DEFAULT_FRAMES, DEFAULT_PROFILE

    out = []
    for kind in kinds:
        if kind == "autoencoder":
            out.append(DetectorSpec("autoencoder", "autoencoder", pooling=ae_pooling or DEFAULT_AE_POOLING))
        elif kind == "profile":
            out.append(DEFAULT_PROFILE)
        elif kind == "frames":
            out.append(DEFAULT_FRAMES)
        else:
            raise ValueError(f"unknown detector {kind!r}; choose from {', '.join(DETECTOR_KINDS)}")
    return out
