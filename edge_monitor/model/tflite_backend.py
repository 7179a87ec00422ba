"""Load and run a TFLite model without TensorFlow when possible.

Interpreter sources, in order of preference:

1. ``ai_edge_litert.interpreter`` (the maintained LiteRT wheel; works with NumPy 2),
2. ``tflite_runtime.interpreter`` (the old wheel; 2.14 crashes with NumPy 2,
   so it is only tried when NumPy is older than 2),
3. ``tensorflow.lite`` (workstation fallback; ~500 MB of RSS).

:attr:`TFLiteModel.backend` says which one was used.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np

__all__ = ["BACKENDS", "TFLiteError", "TFLiteModel", "load_interpreter_class"]

BACKENDS = ("ai_edge_litert", "tflite_runtime", "tensorflow")


#: What the interpreter's C++ code prints on stderr when it opens a model; it
#: would break the daemon's one-JSON-object-per-line logs (journald).
_CHATTER = ("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",)


_STDERR_LOCK = threading.Lock()


@contextlib.contextmanager
def _filtered_stderr() -> Iterator[None]:
    """Capture what native code writes to file descriptor 2, pass on all but :data:`_CHATTER`.

    Other threads' stderr output during the capture is delayed, not lost.
    """
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # pytest capture, embedded interpreters
        yield
        return
    with _STDERR_LOCK, _redirect_fd(fd):
        yield


@contextlib.contextmanager
def _redirect_fd(fd: int) -> Iterator[None]:
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), fd)
        try:
            yield
        finally:
            os.dup2(saved, fd)
            os.close(saved)
            tmp.seek(0)
            text = tmp.read().decode("utf-8", "replace")
            rest = [line for line in text.splitlines() if line.strip() and line.strip() not in _CHATTER]
            if rest:
                sys.stderr.write("\n".join(rest) + "\n")
                sys.stderr.flush()


class TFLiteError(Exception):
    """No interpreter could be loaded, or the model could not be opened."""


def _numpy_major() -> int:
    return int(np.__version__.split(".")[0])


def load_interpreter_class(prefer: str | None = None) -> tuple[type, str]:
    """The ``Interpreter`` class of the first importable backend and its name.

    Args:
        prefer: force one backend of :data:`BACKENDS` (tests and benchmarks).
    """
    order = [prefer] if prefer else list(BACKENDS)
    errors = []
    for name in order:
        try:
            if name == "ai_edge_litert":
                return importlib.import_module("ai_edge_litert.interpreter").Interpreter, name
            if name == "tflite_runtime":
                if _numpy_major() >= 2:
                    errors.append("tflite_runtime: skipped (crashes with NumPy 2)")
                    continue
                return importlib.import_module("tflite_runtime.interpreter").Interpreter, name
            if name == "tensorflow":
                return importlib.import_module("tensorflow").lite.Interpreter, name
            errors.append(f"{name}: unknown backend")
        except ImportError as exc:
            errors.append(f"{name}: {exc}")
    raise TFLiteError("no TFLite interpreter available (pip install ai-edge-litert): " + "; ".join(errors))


class TFLiteModel:
    """One TFLite model with one input and one output, run one sample at a time.

    The interpreter, its tensors and a preallocated float32 input buffer are
    created once and reused for every call.
    """

    def __init__(self, model_path: str | Path | None = None, *, model_content: bytes | None = None,
                 num_threads: int = 1, prefer: str | None = None) -> None:
        if (model_path is None) == (model_content is None):
            raise ValueError("give exactly one of model_path and model_content")
        cls, self.backend = load_interpreter_class(prefer)
        kwargs: dict[str, object] = {"num_threads": max(1, int(num_threads))}
        where = str(model_path) if model_path is not None else "<bytes>"
        try:
            with _filtered_stderr():
                if model_path is not None:
                    self.interpreter = cls(model_path=str(model_path), **kwargs)
                else:
                    self.interpreter = cls(model_content=model_content, **kwargs)
                self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise TFLiteError(f"{where}: cannot open TFLite model: {exc}") from exc
        inputs = self.interpreter.get_input_details()
        outputs = self.interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise TFLiteError(f"{where}: expected one input and one output, got {len(inputs)} and {len(outputs)}")
        self._in_index = inputs[0]["index"]
        self._out_index = outputs[0]["index"]
        self.input_shape: tuple[int, ...] = tuple(int(v) for v in inputs[0]["shape"])
        self.output_shape: tuple[int, ...] = tuple(int(v) for v in outputs[0]["shape"])
        self.num_threads = kwargs["num_threads"]
        self._buffer = np.zeros(self.input_shape, dtype=np.float32)

    @classmethod
    def from_bytes(cls, content: bytes, num_threads: int = 1, prefer: str | None = None) -> TFLiteModel:
        return cls(model_content=content, num_threads=num_threads, prefer=prefer)

    def run(self, x: np.ndarray) -> np.ndarray:
        """Run one sample; ``x`` has the input shape without its batch (and channel) axes.

        Returns the output with the same leading axes dropped, e.g. ``(128, 312)``
        for a ``(1, 128, 312, 1)`` model.
        """
        self._buffer.reshape(-1)[:] = np.asarray(x, dtype=np.float32).reshape(-1)
        self.interpreter.set_tensor(self._in_index, self._buffer)
        self.interpreter.invoke()
        out: np.ndarray = self.interpreter.get_tensor(self._out_index)
        return out.reshape(np.asarray(x).shape)
