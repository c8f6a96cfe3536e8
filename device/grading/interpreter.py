"""The LiteRT interpreter wrapper: one interpreter per model, created once.

Tries ``ai_edge_litert`` (the maintained LiteRT wheel), then ``tflite_runtime``
(older Pi images), then ``tf.lite`` (a workstation with TensorFlow). The model
contract (docs/ARCHITECTURE.md): one uint8 RGB image of the card's input size in, four
grade probabilities out, and optionally the pooled features as a second output
(for abstention, ``device.grading.abstain``); normalisation lives inside the graph.
"""

from __future__ import annotations

import importlib
import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np

from device.core.vocab import NUM_GRADES

log = logging.getLogger(__name__)

#: Where an Interpreter class may be found, in order of preference.
BACKENDS: tuple[tuple[str, str], ...] = (
    ("ai_edge_litert.interpreter", "Interpreter"),
    ("tflite_runtime.interpreter", "Interpreter"),
    ("tensorflow.lite", "Interpreter"),
)


class InterpreterError(RuntimeError):
    """A model file could not be loaded or run."""


def interpreter_class(backends: tuple[tuple[str, str], ...] = BACKENDS) -> tuple[type, str]:
    """Return the first importable Interpreter class and the module it came from."""
    tried = []
    for module_name, attr in backends:
        try:
            module = importlib.import_module(module_name)
            return getattr(module, attr), module_name
        except (ImportError, AttributeError) as exc:
            tried.append(f"{module_name} ({exc.__class__.__name__})")
    raise InterpreterError(
        "no TFLite interpreter is installed; tried " + ", ".join(tried)
        + ". Install one: pip install ai-edge-litert"
    )


class GradeModel:
    """A loaded .tflite grading model.

    ``predict`` is thread-safe (a lock around invoke): the dashboard and the
    scan loop may share one model, and a TFLite interpreter must not be invoked
    from two threads at once.
    """

    def __init__(self, path: Path | str, *, threads: int = 2, backend: type | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise InterpreterError(f"{self.path}: model file not found")
        cls, self.backend = (backend, backend.__module__) if backend else interpreter_class()
        try:
            self._interp: Any = cls(model_path=str(self.path), num_threads=threads)
            self._interp.allocate_tensors()
        except Exception as exc:  # the interpreters raise ValueError/RuntimeError variously
            raise InterpreterError(f"{self.path}: not a loadable TFLite model ({exc})") from exc
        self.threads = threads
        inp = self._interp.get_input_details()
        out = self._interp.get_output_details()
        if len(inp) != 1 or len(out) not in (1, 2):
            raise InterpreterError(
                f"{self.path}: expected 1 input and 1 or 2 outputs (grades, pooled features), "
                f"found {len(inp)} and {len(out)}"
            )
        self._in = inp[0]
        self._out, self._feat = _grades_and_features(self.path, out)
        shape = tuple(int(d) for d in self._in["shape"])
        if len(shape) != 4 or shape[-1] != 3:
            raise InterpreterError(f"{self.path}: input shape {shape} is not (1, H, W, 3)")
        self.input_size: tuple[int, int] = (shape[1], shape[2])
        self.input_dtype = np.dtype(self._in["dtype"])
        self._lock = threading.Lock()
        log.debug("loaded %s with %s (%d threads), input %s %s", self.path, self.backend,
                  threads, self.input_size, self.input_dtype)

    def _prepare(self, image: np.ndarray) -> np.ndarray:
        image = np.asarray(image)
        if image.shape != (*self.input_size, 3):
            raise ValueError(
                f"image shape {image.shape} does not match the model input {(*self.input_size, 3)}; "
                "resize the crop first"
            )
        if image.dtype != np.uint8:
            raise ValueError(f"image dtype {image.dtype} is not uint8 RGB")
        if self.input_dtype == np.uint8:
            batch = image[None]
        elif self.input_dtype == np.int8:
            scale, zero = self._in["quantization"]
            batch = np.clip(np.round(image / scale + zero), -128, 127).astype(np.int8)[None]
        else:
            batch = image.astype(self.input_dtype)[None]
        return batch

    @property
    def has_features(self) -> bool:
        """True when the model also returns its pooled features."""
        return self._feat is not None

    @property
    def feature_dim(self) -> int | None:
        return int(np.prod(self._feat["shape"][1:])) if self._feat is not None else None

    def predict(self, image: np.ndarray) -> np.ndarray:
        """Grade probabilities (float32, shape (4,), summing to ~1) for one uint8 RGB crop."""
        return self.predict_with_features(image)[0]

    def predict_with_features(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Grade probabilities and the pooled features (float32, (D,)); None for a model
        without the features output."""
        batch = self._prepare(image)
        with self._lock:
            self._interp.set_tensor(self._in["index"], batch)
            self._interp.invoke()
            raw = self._interp.get_tensor(self._out["index"])[0]
            feats = (self._interp.get_tensor(self._feat["index"])[0]
                     if self._feat is not None else None)
        probs = _dequantize(raw, self._out).reshape(NUM_GRADES)
        return probs, None if feats is None else _dequantize(feats, self._feat).reshape(-1)

    def invoke_only(self) -> None:
        """Invoke on the tensors already set; for latency benchmarks."""
        with self._lock:
            self._interp.invoke()


def _dequantize(raw: np.ndarray, detail: dict) -> np.ndarray:
    if np.issubdtype(raw.dtype, np.integer):
        scale, zero = detail["quantization"]
        return (raw.astype(np.float32) - zero) * scale
    return raw.astype(np.float32)


def _grades_and_features(path: Path, outputs: list[dict]) -> tuple[dict, dict | None]:
    """Which output gives the 4 grades and which (if any) the pooled features. TFLite
    does not keep Keras' output order, so they are told apart by size."""
    sizes = [int(np.prod(o["shape"][1:])) for o in outputs]
    if len(outputs) == 1:
        if sizes[0] != NUM_GRADES:
            raise InterpreterError(f"{path}: output shape {tuple(outputs[0]['shape'])} does not "
                                   f"give {NUM_GRADES} grades")
        return outputs[0], None
    grades = [i for i, n in enumerate(sizes) if n == NUM_GRADES]
    if len(grades) != 1:
        raise InterpreterError(f"{path}: outputs of sizes {sizes}: expected one of "
                               f"{NUM_GRADES} grades and one of pooled features")
    return outputs[grades[0]], outputs[1 - grades[0]]
