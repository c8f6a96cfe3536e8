"""Keras -> TFLite, one function per quantization mode.

Only TFLite built-in ops are allowed (``TFLITE_BUILTINS``, or ``TFLITE_BUILTINS_INT8``
for full-integer): the device's LiteRT interpreter has no Flex delegate, so a model
needing ``SELECT_TF_OPS`` would load on the workstation and fail on the Pi. Every
produced file is loaded in ``ai_edge_litert`` and its op list checked before it is
accepted.

Modes (``device.core.card.QuantMode``):
  float32  no optimisation; the reference.
  float16  weights stored as float16, computed in float32 on CPU.
  dynamic  weights int8, activations quantized on the fly; float input/output.
  int8     full integer, calibrated on training images; uint8 input and output.
  int8_selective  int8 except the few layers with the largest quantization error,
           which stay float (convert.selective); uint8 input, float output.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from device.core.atomic import atomic_write_bytes
from device.core.card import QuantMode

log = logging.getLogger(__name__)

MODES: tuple[QuantMode, ...] = tuple(QuantMode)
DEFAULT_CALIB_N = 500  # 200 -> 800 gained 0.7-0.9 points of agreement; 500 -> 1,000 gained none (mirror views: 4 views each)


class ConversionError(RuntimeError):
    """The converter failed or produced a file the device could not run."""


def check_mode(mode: QuantMode | str) -> QuantMode:
    try:
        return QuantMode(mode)
    except ValueError:
        raise ValueError(f"unknown quantization mode {mode!r}; "
                         f"choose one of {', '.join(m.value for m in QuantMode)}") from None


def calibration_images(samples: Sequence[Any], image_size: int, *, n: int = DEFAULT_CALIB_N,
                       seed: int = 0, load: Any = None) -> np.ndarray:
    """A shuffled sample of ``n`` training images as the device will see them: the
    lesion crop where the manifest gives a box, resized to the model's input exactly
    as at inference (``trainer.run.load_image``), as a uint8 array (n, size, size, 3).
    ``load``: what reads the samples (default ``trainer.run.load_images``)."""
    from trainer.run import load_images

    load = load or load_images
    if not samples:
        raise ValueError("the run's training split is empty: nothing to calibrate int8 on")
    order = np.random.default_rng(seed).permutation(len(samples))[:n]
    return load([samples[i] for i in order], image_size)


def convert_keras(model: Any, mode: QuantMode | str, *, calibration: Iterable[np.ndarray] | None = None) -> bytes:
    """TFLite flatbuffer bytes of ``model`` in ``mode``.

    ``calibration`` (int8 only): uint8 images (H, W, 3) at the model's input size.
    """
    import tensorflow as tf

    mode = check_mode(mode)
    logging.getLogger("tensorflow").setLevel(logging.WARNING)  # "Assets written to ..." per call
    if mode is QuantMode.INT8_SELECTIVE:
        raise ValueError("selective int8 is made by convert.selective.convert_selective, which "
                         "also names the layers it keeps in float")
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if mode is not QuantMode.FLOAT32:
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode is QuantMode.FLOAT16:
        conv.target_spec.supported_types = [tf.float16]
    if mode is QuantMode.INT8:
        images = [np.asarray(x, np.uint8) for x in (calibration if calibration is not None else [])]
        if not images:
            raise ValueError("int8 needs calibration images (a sample of the training split)")
        dtype = np.dtype(model.inputs[0].dtype)

        def representative():
            for img in images:
                yield [img[None].astype(dtype)]

        conv.representative_dataset = representative
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.uint8
        conv.inference_output_type = tf.uint8
    try:
        # The converter prints its SavedModel export to stdout; keep the CLI output readable.
        # With uint8 input the converter warns that it has no input statistics; it needs
        # none (uint8 pixels are already the quantized values), so the warning is noise.
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Statistics for quantized inputs")
            flat = conv.convert()
    except Exception as exc:  # the converter raises ConverterError, ValueError, RuntimeError...
        raise ConversionError(
            f"TFLite conversion ({mode}) failed: {str(exc).splitlines()[0] if str(exc) else exc}; "
            "the model uses an op with no TFLite built-in kernel"
            + (" for full-integer; try --mode dynamic or --fallback" if mode == "int8" else "")
        ) from exc
    check_builtins_only(flat, mode)
    return flat


def op_names(flat: bytes) -> list[str]:
    """Op names of a TFLite flatbuffer, as ``ai_edge_litert`` reports them.

    Loaded twice: as the device loads it (default delegates: a Flex op fails here),
    and without delegates, because XNNPACK would otherwise hide the ops it takes
    over behind one ``DELEGATE`` node.
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    try:
        Interpreter(model_content=flat).allocate_tensors()
        plain = Interpreter(model_content=flat,
                            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        plain.allocate_tensors()
    except Exception as exc:
        raise ConversionError(f"the produced TFLite model does not load in ai_edge_litert ({exc})") from exc
    return [str(op["op_name"]) for op in plain._get_ops_details()]


def check_builtins_only(flat: bytes, mode: str) -> None:
    """Refuse a file with Flex/custom ops, or (int8) with non-uint8 input/output."""
    from ai_edge_litert.interpreter import Interpreter

    names = op_names(flat)
    bad = sorted({n for n in names if n.startswith("Flex") or n in ("CUSTOM", "DELEGATE")})
    if bad:
        raise ConversionError(f"the {mode} model needs ops the device lacks: {', '.join(bad)}")
    interp = Interpreter(model_content=flat)
    ins, outs = interp.get_input_details(), interp.get_output_details()
    if mode == QuantMode.INT8_SELECTIVE and np.dtype(ins[0]["dtype"]) != np.uint8:
        raise ConversionError(f"selective int8 model takes {ins[0]['dtype']}, not uint8 pixels")
    if mode == "int8":
        kinds = {np.dtype(d["dtype"]) for d in ins + outs}
        if kinds != {np.dtype(np.uint8)}:
            raise ConversionError(f"int8 model has input/output dtypes {sorted(map(str, kinds))}, not uint8")
    log.debug("%s model: %d ops (%s)", mode, len(names), ", ".join(sorted(set(names))))


def write_tflite(flat: bytes, path: Path) -> Path:
    """Atomic write (temp file + rename) so a reader never sees half a model."""
    return atomic_write_bytes(path, flat)
