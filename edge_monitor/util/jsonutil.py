"""Values made strict-JSON-safe: the one conversion that ``model.json`` and ``metrics.json`` share."""

from __future__ import annotations

import math
from pathlib import Path
from typing import SupportsFloat, SupportsIndex, SupportsInt

import numpy as np

__all__ = ["JsonObject", "jsonable", "to_float", "to_int"]

#: A parsed JSON object (or one about to be written): values are narrowed with ``isinstance`` where read.
JsonObject = dict[str, object]


def to_float(value: object) -> float:
    """``float(value)`` for a value read from JSON, with ``float``'s own ``TypeError`` for anything else."""
    if isinstance(value, (str, bytes, SupportsFloat, SupportsIndex)):
        return float(value)
    raise TypeError(f"float() argument must be a string or a real number, not {type(value).__name__!r}")


def to_int(value: object) -> int:
    """``int(value)`` for a value read from JSON, with ``int``'s own ``TypeError`` for anything else."""
    if isinstance(value, (str, bytes, SupportsInt, SupportsIndex)):
        return int(value)
    raise TypeError(f"int() argument must be a string, a bytes-like object or a real number, "
                    f"not {type(value).__name__!r}")


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
