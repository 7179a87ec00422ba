"""Training defaults and choices, importable without TensorFlow or Keras.

The CLI's ``add_arguments`` (``edge-monitor-train train --help``) reads these;
importing :mod:`trainer.model` would load Keras (~10 s). The values are chosen
from the held-out measurements in docs/model.md (``bench/bench_model_choice.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

#: The architectures of :mod:`trainer.model`.
ARCHITECTURES: tuple[str, ...] = ("conv", "dense")

#: Default architecture (docs/model.md, "Choosing the defaults").
DEFAULT_ARCH = "dense"

#: Channel widths of the conv model's three encoder blocks (~144 MMAC per window).
DEFAULT_CHANNELS: tuple[int, int, int] = (8, 16, 32)

#: Clip bounds of the normalised input (:class:`edge_monitor.features.model_input.MinMaxNorm`):
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

#: The detectors a bundle can hold (edge_monitor.model.detectors).
DETECTOR_KINDS: tuple[str, ...] = ("autoencoder", "profile", "frames")

#: The detectors ``train`` uses when none are asked for. Chosen by the table in
#: docs/model.md ("Which detectors", ``bench/bench_model_choice.py``): the level
#: profile and the frame Gaussian, fused, beat or match the autoencoder on every
#: dataset measured (real valve with 60 and 10 clips, the synthetic rail at default
#: and at hard settings), alone or added to them, at a third of the cost per
#: window and without TensorFlow; the autoencoder stays one ``--detectors`` away.
DEFAULT_DETECTORS: tuple[str, ...] = ("profile", "frames")

#: Fewer normal clips than this are too few for an autoencoder to learn from
#: (``train`` says so when one is asked for).
MIN_AUTOENCODER_CLIPS = 30

#: Fusion of the detectors' standardised scores (edge_monitor.model.fusion).
DEFAULT_FUSION = "max"


def _pooling(kind: str, fraction: float = 0.01):  # noqa: ANN202 - avoids importing numpy-heavy modules at --help
    from edge_monitor.model.detectors import Pooling

    return Pooling(kind, fraction)


#: The autoencoder's frame pooling: the mean squared error over the window.
DEFAULT_AE_POOLING = _pooling("mean")


def default_detectors(n_clips: int) -> tuple[str, ...]:
    """The detectors ``train`` uses for ``n_clips`` normal training clips (docs/model.md).

    The same for every amount of data measured (10 to 120 clips): :data:`DEFAULT_DETECTORS`.
    """
    return DEFAULT_DETECTORS


def detector_specs(kinds: tuple[str, ...], ae_pooling=None):  # noqa: ANN001, ANN201
    """:class:`edge_monitor.model.bundle.DetectorSpec` for each kind, with the defaults of docs/model.md."""
    from edge_monitor.model.bundle import DetectorSpec
    from edge_monitor.model.fit import DEFAULT_FRAMES, DEFAULT_PROFILE

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


def parse_channels(text: str | Sequence[int]) -> tuple[int, int, int]:
    """``"8,16,32"`` -> ``(8, 16, 32)``; exactly three positive integers."""
    if isinstance(text, str):
        try:
            values = tuple(int(v) for v in text.replace(" ", "").split(",") if v)
        except ValueError:
            raise ValueError(f"channels must be three comma-separated integers, got {text!r}") from None
    else:
        values = tuple(int(v) for v in text)
    if len(values) != 3 or any(v <= 0 for v in values):
        raise ValueError(f"channels must be three positive integers, got {text!r}")
    return values[0], values[1], values[2]
