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
#: the training range maps to 0..1; values above 1 are kept up to ``DEFAULT_CLIP_HI``
#: (headroom for louder-than-training sound). Stored in model.json.
DEFAULT_CLIP_LO: float | None = 0.0
DEFAULT_CLIP_HI: float | None = 1.0

#: Threshold rule and quantile of the validation (normal) scores.
DEFAULT_THRESHOLD_RULE = "gamma"
DEFAULT_THRESHOLD_QUANTILE = 0.99
