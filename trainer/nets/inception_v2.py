"""Inception V2 (BN-Inception), after Ioffe & Szegedy 2015, "Batch Normalization:
Accelerating Deep Network Training by Reducing Internal Covariate Shift", Figure 5.

GoogLeNet with batch normalisation after every convolution, each 5x5 replaced by two
stacked 3x3 (the "double 3x3" branch), average pooling in most modules, and stride-2
modules (3c, 4e) that reduce the grid with a pass-through max pool instead of separate
pooling layers. Widths are Figure 5's columns. Figure 5 prints 576 output channels for
4c and 4d but its own columns add up to 608 there, and to 1056 after 4e; we follow the
columns (which is also what the released model has).
"""

from __future__ import annotations

import logging
from typing import Any

from trainer.nets._layers import conv_bn, finish, googlenet_stem

log = logging.getLogger(__name__)

#: Published figure compared by tests/test_backbones.py: 11.3M parameters for
#: BN-Inception with its 1000-way classifier, the figure given for the released
#: ImageNet model (Caffe "bn_inception" port, e.g. Cadene's pretrained-models
#: ``bninception``). The paper itself prints no total.
PUBLISHED_PARAMS = 11_300_000
CANONICAL_INPUT = 224

# Figure 5: (#1x1, #3x3 reduce, #3x3, double #3x3 reduce, double #3x3, pool, proj)
# proj 0 with pool "max_pass" marks a stride-2 module (pass-through pooling).
_MODULES: dict[str, tuple[int, int, int, int, int, str, int]] = {
    "3a": (64, 64, 64, 64, 96, "avg", 32),
    "3b": (64, 64, 96, 64, 96, "avg", 64),
    "3c": (0, 128, 160, 64, 96, "max_pass", 0),
    "4a": (224, 64, 96, 96, 128, "avg", 128),
    "4b": (192, 96, 128, 96, 128, "avg", 128),
    "4c": (160, 128, 160, 128, 160, "avg", 128),
    "4d": (96, 128, 192, 160, 192, "avg", 128),
    "4e": (0, 128, 192, 192, 256, "max_pass", 0),
    "5a": (352, 192, 320, 160, 224, "avg", 128),
    "5b": (352, 192, 320, 192, 224, "max", 128),
}


def _inception(x: Any, spec: tuple[int, int, int, int, int, str, int], name: str) -> Any:
    from keras import layers

    n1, r3, n3, rd, nd, pool, proj = spec
    stride = 2 if pool == "max_pass" else 1
    branches = []
    if n1:
        branches.append(conv_bn(x, n1, 1, name=f"{name}_1x1"))
    b = conv_bn(x, r3, 1, name=f"{name}_3x3r")
    branches.append(conv_bn(b, n3, 3, strides=stride, name=f"{name}_3x3"))
    b = conv_bn(x, rd, 1, name=f"{name}_d3x3r")
    b = conv_bn(b, nd, 3, name=f"{name}_d3x3a")
    branches.append(conv_bn(b, nd, 3, strides=stride, name=f"{name}_d3x3b"))
    if pool == "avg":
        p = layers.AveragePooling2D(3, strides=1, padding="same", name=f"{name}_pool")(x)
    else:
        p = layers.MaxPooling2D(3, strides=stride, padding="same", name=f"{name}_pool")(x)
    branches.append(conv_bn(p, proj, 1, name=f"{name}_proj") if proj else p)
    return layers.Concatenate(name=f"{name}_concat")(branches)


def build(input_shape: tuple[int, int, int] = (CANONICAL_INPUT, CANONICAL_INPUT, 3), *,
          include_top: bool = False, classes: int = 1000, name: str = "inception_v2") -> Any:
    """BN-Inception; input float in [-1, 1]. Headless output: (H/32, W/32, 1024)."""
    import keras

    inputs = keras.Input(input_shape, name="input")
    x = googlenet_stem(inputs)
    for key, spec in _MODULES.items():
        x = _inception(x, spec, f"inc{key}")
    return finish(inputs, x, include_top=include_top, classes=classes, name=name)
