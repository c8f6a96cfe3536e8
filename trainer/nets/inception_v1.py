"""Inception V1 (GoogLeNet), after Szegedy et al. 2014, "Going deeper with convolutions",
Table 1.

Layer widths follow Table 1 exactly (true 5x5 convolutions in the 5x5 branch). Two
deliberate departures, both as in the TensorFlow-slim ``inception_v1`` that the Yoon et
al. paper's TensorFlow model list points to: batch normalisation after every
convolution instead of local response normalisation (LRN has no int8 TFLite kernel,
so a model with it could not be fully quantized for the device), and no auxiliary
classifiers (they are training-only and dropped at inference in the paper too).
"""

from __future__ import annotations

import logging
from typing import Any

from trainer.nets._layers import conv_bn, finish, googlenet_stem

log = logging.getLogger(__name__)

#: Published figure compared by tests/test_backbones.py: Szegedy et al. 2014, Table 1,
#: the sum of its "params" column (6.8M, 1000-way linear layer included, no auxiliary
#: classifiers).
PUBLISHED_PARAMS = 6_800_000
CANONICAL_INPUT = 224

# Table 1: (#1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj)
_MODULES: dict[str, tuple[int, int, int, int, int, int]] = {
    "3a": (64, 96, 128, 16, 32, 32),
    "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64),
    "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128),
    "5b": (384, 192, 384, 48, 128, 128),
}


def _inception(x: Any, widths: tuple[int, int, int, int, int, int], name: str) -> Any:
    from keras import layers

    n1, r3, n3, r5, n5, proj = widths
    b1 = conv_bn(x, n1, 1, name=f"{name}_1x1")
    b2 = conv_bn(conv_bn(x, r3, 1, name=f"{name}_3x3r"), n3, 3, name=f"{name}_3x3")
    b3 = conv_bn(conv_bn(x, r5, 1, name=f"{name}_5x5r"), n5, 5, name=f"{name}_5x5")
    b4 = layers.MaxPooling2D(3, strides=1, padding="same", name=f"{name}_pool")(x)
    b4 = conv_bn(b4, proj, 1, name=f"{name}_proj")
    return layers.Concatenate(name=f"{name}_concat")([b1, b2, b3, b4])


def build(input_shape: tuple[int, int, int] = (CANONICAL_INPUT, CANONICAL_INPUT, 3), *,
          include_top: bool = False, classes: int = 1000, name: str = "inception_v1") -> Any:
    """GoogLeNet; input float in [-1, 1]. Headless output: (H/32, W/32, 1024)."""
    import keras
    from keras import layers

    inputs = keras.Input(input_shape, name="input")
    x = googlenet_stem(inputs)
    for key in ("3a", "3b"):
        x = _inception(x, _MODULES[key], f"inc{key}")
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool3")(x)
    for key in ("4a", "4b", "4c", "4d", "4e"):
        x = _inception(x, _MODULES[key], f"inc{key}")
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool4")(x)
    for key in ("5a", "5b"):
        x = _inception(x, _MODULES[key], f"inc{key}")
    # The paper drops 40 % before its linear layer.
    return finish(inputs, x, include_top=include_top, classes=classes, name=name, dropout=0.4)
