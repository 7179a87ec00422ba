"""Values made strict-JSON-safe: the one conversion that ``model.json`` and ``metrics.json`` share."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

__all__ = ["jsonable"]


def jsonable(value: object) -> object:
    """``value`` with NumPy scalars and arrays, tuples and paths turned into plain JSON types.

    Dict keys become strings; non-finite floats (NaN, +-inf) become ``None``, so that
    ``json.dumps(..., allow_nan=False)`` writes strict JSON (an undefined metric is ``null``).
    """
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [jsonable(v) for v in value.tolist()]
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return v if math.isfinite(v) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, Path):
        return str(value)
    return value
