"""``detectors.npz`` checked before any array is read: a decompression bomb is refused without inflating it.

At most :data:`MAX_NPZ_BYTES` on disk and :data:`MAX_NPZ_MEMBERS` arrays; each
member's uncompressed size (the zip directory) at most :data:`MAX_ARRAY_BYTES`,
and its ``.npy`` header (read alone, a few hundred bytes) a float array whose
shape accounts for exactly that size; every NumPy detector finds its arrays with
the shapes its bands need. Called by :func:`edge_monitor.model.bundle.load_bundle`.
"""

from __future__ import annotations

import math
import zipfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edge_monitor.model.validate import ValidationError

if TYPE_CHECKING:
    from edge_monitor.model.model_json import DetectorSpec

__all__ = ["MAX_ARRAY_BYTES", "MAX_NPZ_BYTES", "MAX_NPZ_MEMBERS", "check_arrays_file", "expected_arrays"]

#: ``detectors.npz`` on disk; a real one is ~50 kB.
MAX_NPZ_BYTES = 64 * 1024 * 1024
#: Arrays in ``detectors.npz`` (three per NumPy detector).
MAX_NPZ_MEMBERS = 64
#: One array's uncompressed size: a 1024 x 1024 float64 precision matrix.
MAX_ARRAY_BYTES = 8 * 1024 * 1024
#: Longest ``.npy`` header read from a member.
_MAX_NPY_HEADER = 4096


def expected_arrays(detectors: Iterable[DetectorSpec]) -> dict[str, tuple[int, ...]]:
    """``{member name: shape}`` the NumPy detectors need.

    Gaussians (``profile``, ``frames``): ``<name>.mean``, ``.precision``, ``.std``;
    ``subspace``: ``<name>.mean``, ``.scale`` ``(d,)`` and ``.basis`` ``(components, d)``,
    ``d = context * n_bands``. ``detectors``:
    :class:`edge_monitor.model.model_json.DetectorSpec` s (kind, name, n_bands, ...).
    """
    out: dict[str, tuple[int, ...]] = {}
    for spec in detectors:
        if spec.kind == "subspace":
            d = spec.context * spec.n_bands
            out.update({f"{spec.name}.mean": (d,), f"{spec.name}.scale": (d,),
                        f"{spec.name}.basis": (spec.components, d)})
            continue
        if spec.kind not in ("profile", "frames"):
            continue
        d = 2 * spec.n_bands if spec.kind == "profile" else spec.n_bands
        out.update({f"{spec.name}.mean": (d,), f"{spec.name}.precision": (d, d), f"{spec.name}.std": (d,)})
    return out


def _npy_header(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[tuple[int, ...], np.dtype[np.generic], int]:
    """``(shape, dtype, header bytes)`` of one ``.npy`` member, reading only its header."""
    with zf.open(info) as fh:
        version = np.lib.format.read_magic(fh)
        read: Callable[..., tuple[tuple[int, ...], bool, np.dtype[np.generic]]] = (
            np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0)
        shape, _fortran, dtype = read(fh, max_header_size=_MAX_NPY_HEADER)
        return tuple(int(n) for n in shape), dtype, fh.tell()


def check_arrays_file(path: Path, expected: Mapping[str, tuple[int, ...]]) -> None:
    """Check ``detectors.npz`` without reading its arrays: sizes, headers, shapes (see the module docstring).

    Raises:
        ValidationError: ``"<path>: <member>: <what is wrong>"``.
    """
    size = path.stat().st_size
    if size > MAX_NPZ_BYTES:
        raise ValidationError(f"{path}: {size} bytes, more than the {MAX_NPZ_BYTES} accepted")
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            if len(infos) > MAX_NPZ_MEMBERS:
                raise ValidationError(f"{path}: {len(infos)} members, more than {MAX_NPZ_MEMBERS}")
            names = {}
            for info in infos:
                name = info.filename.removesuffix(".npy")
                if info.file_size > MAX_ARRAY_BYTES:
                    raise ValidationError(f"{path}: {name}: {info.file_size} bytes uncompressed, more than the "
                                          f"{MAX_ARRAY_BYTES} an array may have")
                shape, dtype, header = _npy_header(zf, info)
                if dtype.kind != "f" or dtype.itemsize > 8:
                    raise ValidationError(f"{path}: {name}: dtype {dtype} (expected float)")
                if header + math.prod(shape) * dtype.itemsize != info.file_size:
                    raise ValidationError(f"{path}: {name}: shape {shape} does not match its {info.file_size} "
                                          f"bytes")
                names[name] = shape
    except ValidationError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise ValidationError(f"{path}: unreadable ({exc})") from None
    for name, shape in expected.items():
        if name not in names:
            raise ValidationError(f"{path}: {name}: missing")
        if names[name] != shape:
            raise ValidationError(f"{path}: {name}: shape {names[name]}, the detector's bands need {shape}")
