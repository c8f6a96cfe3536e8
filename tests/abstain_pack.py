"""A tiny pack whose models return pooled features and carry abstention statistics
fitted (convert.abstention) on synthetic skin crops: the device-side abstention
tests use it. Built once per test session; TensorFlow only to build it."""

from __future__ import annotations

import functools
from pathlib import Path

import cv2
import numpy as np

from device.cameras.synthetic import render_skin_frame
from device.core.vocab import MODEL_SIGNS

PACK_VERSION = "0.0.2-abstain"
SIZE = 32


def skin_crops(n: int, seed: int) -> np.ndarray:
    """The guide-square crops the scanner cuts from 320x240 synthetic skin frames (the
    tests' frames), at the model's input size."""
    from device.vision.crop import cut, guide_box

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        frame, _ = render_skin_frame(rng, 320, 240)
        patch = cut(frame, guide_box(240, 320, 0.5))
        out.append(cv2.resize(patch, (SIZE, SIZE), interpolation=cv2.INTER_AREA))
    return np.stack(out)


def tiny_pooled_model(seed: int = 0):
    import keras

    from trainer.model import POOL_LAYER

    keras.utils.set_random_seed(seed)
    inp = keras.Input((SIZE, SIZE, 3), dtype="uint8", name="image")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0)(keras.ops.cast(inp, "float32"))
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D(name=POOL_LAYER)(x)
    out = keras.layers.Dense(4, activation="softmax", name="grades")(x)
    return keras.Model(inp, out)


@functools.cache
def abstain_pack_dir() -> Path:
    """An extracted pack (``.../current``) whose three models can abstain."""
    from device_pack import extract_as_current, session_dir
    from factories import tiny_card

    from convert.abstention import fit_abstention
    from convert.packer import write_pack
    from convert.tflite import convert_keras
    from trainer.model import with_pooled_features

    root = session_dir("atopiscan-abstainpack-")
    train, val = skin_crops(200, 1), skin_crops(100, 2)
    flat = convert_keras(with_pooled_features(tiny_pooled_model()), "float32")
    models = {}
    for k, sign in enumerate(MODEL_SIGNS):
        path = root / f"{sign.value}.tflite"
        path.write_bytes(flat)
        info = fit_abstention(path, train, [(i + k) % 4 for i in range(len(train))], val, threads=1)
        card = tiny_card(sign, path, size=SIZE, mode="float32").model_copy(update={"abstention": info})
        models[sign] = (path, card)
    pack = write_pack(models, root / "abstain.atopack", pack_version=PACK_VERSION, threads=1)
    return extract_as_current(pack, root / "packs", PACK_VERSION)


def abstain_pack_file() -> Path:
    return abstain_pack_dir().parents[1] / "abstain.atopack"
