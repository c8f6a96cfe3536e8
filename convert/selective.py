"""Selective int8: full-integer quantization except for the few layers that lose the
most to it, which stay in float.

TensorFlow Lite's quantization debugger (``tf.lite.experimental.QuantizationDebugger``)
runs the calibrated model on the calibration images with every quantized op's
output compared with its float counterpart, and reports per layer the RMSE of that
difference divided by the layer's quantization scale (``rmse/scale``): about 0.29
(1/sqrt(12)) for a layer whose error is plain rounding, far more for one whose range
the int8 grid cannot hold (a wide activation, an unusual channel). The layers with the
largest ratio are kept in float (the debugger's ``denylisted_nodes``); the rest stays
int8. The names of the float layers are recorded in the model card.

The input keeps the model's own uint8 and the output is float32 probabilities (the
device's interpreter wrapper reads both kinds).
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

#: A layer is a candidate for float when its error exceeds this many quantization
#: steps (rmse/scale); plain rounding gives ~0.29.
RMSE_SCALE_THRESHOLD = 0.7
#: At most this many layers stay float (each float island costs two conversions).
MAX_FLOAT_LAYERS = 8
#: Images the debugger runs (its per-op comparison is slow in Python).
DEBUG_IMAGES = 16


@dataclass(frozen=True)
class LayerError:
    name: str  # the tensor name of the op's output, as the debugger reports it
    rmse_scale: float


@dataclass(frozen=True)
class SelectiveResult:
    flatbuffer: bytes
    float_layers: tuple[str, ...]
    worst: tuple[LayerError, ...]  # the largest errors measured, float ones first


def rank_layers(dump_csv: str) -> list[LayerError]:
    """Layers by quantization error, worst first. ``dump_csv``: the debugger's
    ``layer_statistics_dump`` (one row per quantized op with its output tensor's name,
    ``mean_squared_error`` against float, and quantization ``scale``)."""
    out = []
    for row in csv.DictReader(io.StringIO(dump_csv)):
        try:
            ratio = math.sqrt(float(row["mean_squared_error"])) / float(row["scale"])
        except (KeyError, TypeError, ValueError, ZeroDivisionError):
            continue
        if math.isfinite(ratio) and row.get("tensor_name"):
            out.append(LayerError(row["tensor_name"], ratio))
    return sorted(out, key=lambda e: -e.rmse_scale)


def pick_float_layers(ranked: Sequence[LayerError], *, threshold: float = RMSE_SCALE_THRESHOLD,
                      max_layers: int = MAX_FLOAT_LAYERS) -> tuple[str, ...]:
    """The worst layers above ``threshold``, at most ``max_layers``; at least the worst one
    (a model that failed the int8 gate has some layer to blame)."""
    chosen = [e.name for e in ranked if e.rmse_scale > threshold][:max_layers]
    if not chosen and ranked:
        chosen = [ranked[0].name]
    return tuple(chosen)


def convert_selective(model: Any, images: Sequence[np.ndarray], *,
                      debug_images: int = DEBUG_IMAGES) -> SelectiveResult:
    """Selective-int8 flatbuffer of a Keras ``model``, calibrated on ``images`` (uint8,
    the model's input size)."""
    import tensorflow as tf

    from convert.tflite import ConversionError

    if not len(images):
        raise ValueError("selective int8 needs calibration images (a sample of the training split)")
    dtype = np.dtype(model.inputs[0].dtype)
    calib = [np.asarray(x)[None].astype(dtype) for x in images]

    def representative():
        for x in calib:
            yield [x]

    def debug_set():
        for x in calib[:debug_images]:
            yield [x]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    debugger_cls = tf.lite.experimental.QuantizationDebugger
    options_cls = tf.lite.experimental.QuantizationDebugOptions
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            debugger = debugger_cls(converter=conv, debug_dataset=debug_set)
            debugger.run()
            dump = io.StringIO()
            debugger.layer_statistics_dump(dump)
            ranked = rank_layers(dump.getvalue())
            chosen = pick_float_layers(ranked)
            selective = debugger_cls(converter=conv, debug_dataset=debug_set,
                                     debug_options=options_cls(denylisted_nodes=list(chosen)))
            flat = selective.get_nondebug_quantized_model()
    except Exception as exc:  # the converter raises ConverterError, ValueError, RuntimeError...
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConversionError(f"selective int8 conversion failed: {first}") from exc
    log.debug("selective int8: %d layers kept in float (%s)", len(chosen), ", ".join(chosen))
    return SelectiveResult(flatbuffer=flat, float_layers=chosen, worst=tuple(ranked[:10]))
