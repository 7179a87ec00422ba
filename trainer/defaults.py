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
