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

#: Threshold rule: ``budget`` (false alerts per day, edge_monitor.model.threshold) with the
#: weighted fusion; the quantile is that of the ``gamma`` / ``percentile`` rules.
DEFAULT_THRESHOLD_RULE = "budget"
THRESHOLD_RULES: tuple[str, ...] = ("budget", "gamma", "percentile")
DEFAULT_THRESHOLD_QUANTILE = 0.99
#: The false-alarm budget of rule ``budget`` (= edge_monitor.model.threshold.DEFAULT_FALSE_ALARMS_PER_DAY).
DEFAULT_FALSE_ALARMS_PER_DAY = 1.0

#: The detectors a bundle can hold (edge_monitor.model.detectors).
DETECTOR_KINDS: tuple[str, ...] = ("autoencoder", "profile", "frames", "frames_mean", "subspace")

#: The candidates ``train`` chooses among when none are asked for (docs/model.md,
#: "Which detectors"): the level profile, the frame Gaussian pooled over the worst
#: frames and over the whole window, and the subspace of 5-frame runs. Each
#: machine's own normal clips and pseudo-anomalies made from them decide which of
#: them its bundle holds and with what weight (edge_monitor.model.select); the
#: autoencoder joins the candidates with ``--detectors autoencoder profile frames
#: frames_mean subspace``.
DEFAULT_DETECTORS: tuple[str, ...] = ("profile", "frames", "frames_mean", "subspace")

#: Fewer normal clips than this are too few for an autoencoder to learn from
#: (``train`` says so when one is asked for).
MIN_AUTOENCODER_CLIPS = 30

#: Fusion of the detectors' scores (edge_monitor.model.fusion): ``weighted``, the
#: weights chosen per machine; ``max`` and ``mean`` keep every detector asked for.
DEFAULT_FUSION = "weighted"
FUSION_RULES: tuple[str, ...] = ("weighted", "max", "mean")


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
    from edge_monitor.model.fit import DEFAULT_FRAMES, DEFAULT_FRAMES_MEAN, DEFAULT_PROFILE, DEFAULT_SUBSPACE

    out = []
    for kind in kinds:
        if kind == "autoencoder":
            out.append(DetectorSpec("autoencoder", "autoencoder", pooling=ae_pooling or DEFAULT_AE_POOLING))
        elif kind == "profile":
            out.append(DEFAULT_PROFILE)
        elif kind == "frames":
            out.append(DEFAULT_FRAMES)
        elif kind == "frames_mean":
            out.append(DEFAULT_FRAMES_MEAN)
        elif kind == "subspace":
            out.append(DEFAULT_SUBSPACE)
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
