"""Small real models for tests: built with TensorFlow in the test session, then
used from the device side (where TensorFlow may be absent).

The tiny model grades by colour statistics with fixed, seeded weights, so two
builds with the same seed give the same file's behaviour; it is a stand-in for a
trained model, not one.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np

import device
from device.core.card import ModelCard, TrainingDataSummary
from device.core.vocab import Sign
from device.packs.manifest import sha256_file


def tiny_keras_model(size: int = 32, seed: int = 0):
    import keras

    keras.utils.set_random_seed(seed)
    inp = keras.Input((size, size, 3), dtype="uint8", name="image")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0)(keras.ops.cast(inp, "float32"))
    x = keras.layers.Conv2D(4, 3, strides=2, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(4, activation="softmax", name="grades")(x)
    return keras.Model(inp, out)


def to_tflite(model, mode: str = "int8", seed: int = 0) -> bytes:
    """The real converter (convert.tflite), calibrated on seeded random images for int8."""
    from convert.tflite import convert_keras

    size = model.input_shape[1]
    rng = np.random.default_rng(seed)
    calibration = ([rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(16)]
                   if mode == "int8" else None)
    return convert_keras(model, mode, calibration=calibration)


def tiny_tflite(path: Path, *, size: int = 32, mode: str = "int8", seed: int = 0) -> Path:
    path = Path(path)
    path.write_bytes(to_tflite(tiny_keras_model(size, seed), mode, seed))
    return path


def tiny_card(sign: Sign, tflite_path: Path, *, size: int = 32, mode: str = "int8") -> ModelCard:
    metrics = {"accuracy": 0.25, "n": 0, "note": "untrained test model"}
    return ModelCard(
        sign=sign,
        input_size=(size, size),
        quantization=mode,
        backbone="tiny_test",
        training_data=TrainingDataSummary(source="none (test model)", synthetic=True, n_train=0, n_val=0),
        metrics_keras=metrics,
        metrics_tflite=metrics,
        sha256=sha256_file(tflite_path),
        file_size=Path(tflite_path).stat().st_size,
        created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        software_version=device.__version__,
    )
