"""Inception V4, after Szegedy, Ioffe, Vanhoucke & Alemi 2016, "Inception-v4,
Inception-ResNet and the Impact of Residual Connections on Learning", Figures 3-9.

Stem (Fig. 3) -> 4 x Inception-A (Fig. 4) -> Reduction-A (Fig. 7, k=192, l=224, m=256,
n=384) -> 7 x Inception-B (Fig. 5) -> Reduction-B (Fig. 8) -> 3 x Inception-C (Fig. 6).
Convolutions the paper marks "V" use valid padding, so the smallest input that keeps a
non-empty grid is 75 px (as for keras.applications.InceptionV3).
"""

from __future__ import annotations

import logging
from typing import Any

from trainer.nets._layers import conv_bn, finish

log = logging.getLogger(__name__)

#: Published figure compared by tests/test_backbones.py: 42.7M parameters with the
#: 1000-way classifier, the model card of the Google-trained Inception-v4 weights as
#: ported to timm (``inception_v4.tf_in1k``). The paper prints no total.
PUBLISHED_PARAMS = 42_700_000
CANONICAL_INPUT = 299


def _stem(x: Any) -> Any:
    from keras import layers

    x = conv_bn(x, 32, 3, strides=2, padding="valid", name="stem1")
    x = conv_bn(x, 32, 3, padding="valid", name="stem2")
    x = conv_bn(x, 64, 3, name="stem3")
    a = layers.MaxPooling2D(3, strides=2, padding="valid", name="stem4_pool")(x)
    b = conv_bn(x, 96, 3, strides=2, padding="valid", name="stem4_conv")
    x = layers.Concatenate(name="stem4_concat")([a, b])
    a = conv_bn(x, 64, 1, name="stem5a_1x1")
    a = conv_bn(a, 96, 3, padding="valid", name="stem5a_3x3")
    b = conv_bn(x, 64, 1, name="stem5b_1x1")
    b = conv_bn(b, 64, (7, 1), name="stem5b_7x1")
    b = conv_bn(b, 64, (1, 7), name="stem5b_1x7")
    b = conv_bn(b, 96, 3, padding="valid", name="stem5b_3x3")
    x = layers.Concatenate(name="stem5_concat")([a, b])
    a = conv_bn(x, 192, 3, strides=2, padding="valid", name="stem6_conv")
    b = layers.MaxPooling2D(3, strides=2, padding="valid", name="stem6_pool")(x)
    return layers.Concatenate(name="stem6_concat")([a, b])


def _avg_proj(x: Any, filters: int, name: str) -> Any:
    from keras import layers

    p = layers.AveragePooling2D(3, strides=1, padding="same", name=f"{name}_pool")(x)
    return conv_bn(p, filters, 1, name=f"{name}_proj")


def _block_a(x: Any, name: str) -> Any:
    from keras import layers

    b1 = _avg_proj(x, 96, name)
    b2 = conv_bn(x, 96, 1, name=f"{name}_1x1")
    b3 = conv_bn(conv_bn(x, 64, 1, name=f"{name}_3x3r"), 96, 3, name=f"{name}_3x3")
    b4 = conv_bn(x, 64, 1, name=f"{name}_d3x3r")
    b4 = conv_bn(conv_bn(b4, 96, 3, name=f"{name}_d3x3a"), 96, 3, name=f"{name}_d3x3b")
    return layers.Concatenate(name=f"{name}_concat")([b1, b2, b3, b4])


def _reduction_a(x: Any, k: int = 192, l: int = 224, m: int = 256, n: int = 384) -> Any:  # noqa: E741
    from keras import layers

    name = "red_a"
    b1 = layers.MaxPooling2D(3, strides=2, padding="valid", name=f"{name}_pool")(x)
    b2 = conv_bn(x, n, 3, strides=2, padding="valid", name=f"{name}_3x3")
    b3 = conv_bn(x, k, 1, name=f"{name}_d3x3r")
    b3 = conv_bn(b3, l, 3, name=f"{name}_d3x3a")
    b3 = conv_bn(b3, m, 3, strides=2, padding="valid", name=f"{name}_d3x3b")
    return layers.Concatenate(name=f"{name}_concat")([b1, b2, b3])


def _block_b(x: Any, name: str) -> Any:
    from keras import layers

    b1 = _avg_proj(x, 128, name)
    b2 = conv_bn(x, 384, 1, name=f"{name}_1x1")
    b3 = conv_bn(x, 192, 1, name=f"{name}_7r")
    b3 = conv_bn(b3, 224, (1, 7), name=f"{name}_7a")
    b3 = conv_bn(b3, 256, (7, 1), name=f"{name}_7b")
    b4 = conv_bn(x, 192, 1, name=f"{name}_d7r")
    for i, (f, k) in enumerate([(192, (1, 7)), (224, (7, 1)), (224, (1, 7)), (256, (7, 1))]):
        b4 = conv_bn(b4, f, k, name=f"{name}_d7{'abcd'[i]}")
    return layers.Concatenate(name=f"{name}_concat")([b1, b2, b3, b4])


def _reduction_b(x: Any) -> Any:
    from keras import layers

    name = "red_b"
    b1 = layers.MaxPooling2D(3, strides=2, padding="valid", name=f"{name}_pool")(x)
    b2 = conv_bn(x, 192, 1, name=f"{name}_3x3r")
    b2 = conv_bn(b2, 192, 3, strides=2, padding="valid", name=f"{name}_3x3")
    b3 = conv_bn(x, 256, 1, name=f"{name}_7r")
    b3 = conv_bn(b3, 256, (1, 7), name=f"{name}_1x7")
    b3 = conv_bn(b3, 320, (7, 1), name=f"{name}_7x1")
    b3 = conv_bn(b3, 320, 3, strides=2, padding="valid", name=f"{name}_3x3b")
    return layers.Concatenate(name=f"{name}_concat")([b1, b2, b3])


def _block_c(x: Any, name: str) -> Any:
    from keras import layers

    b1 = _avg_proj(x, 256, name)
    b2 = conv_bn(x, 256, 1, name=f"{name}_1x1")
    b3 = conv_bn(x, 384, 1, name=f"{name}_3r")
    b3 = [conv_bn(b3, 256, (1, 3), name=f"{name}_3a"), conv_bn(b3, 256, (3, 1), name=f"{name}_3b")]
    b4 = conv_bn(x, 384, 1, name=f"{name}_d3r")
    b4 = conv_bn(b4, 448, (1, 3), name=f"{name}_d3a")
    b4 = conv_bn(b4, 512, (3, 1), name=f"{name}_d3b")
    b4 = [conv_bn(b4, 256, (3, 1), name=f"{name}_d3c"), conv_bn(b4, 256, (1, 3), name=f"{name}_d3d")]
    return layers.Concatenate(name=f"{name}_concat")([b1, b2, *b3, *b4])


def build(input_shape: tuple[int, int, int] = (CANONICAL_INPUT, CANONICAL_INPUT, 3), *,
          include_top: bool = False, classes: int = 1000, name: str = "inception_v4") -> Any:
    """Inception-v4; input float in [-1, 1]. Headless output at 299 px: (8, 8, 1536)."""
    import keras

    inputs = keras.Input(input_shape, name="input")
    x = _stem(inputs)
    for i in range(4):
        x = _block_a(x, f"inc_a{i + 1}")
    x = _reduction_a(x)
    for i in range(7):
        x = _block_b(x, f"inc_b{i + 1}")
    x = _reduction_b(x)
    for i in range(3):
        x = _block_c(x, f"inc_c{i + 1}")
    # The paper keeps 0.8 of the activations before its softmax.
    return finish(inputs, x, include_top=include_top, classes=classes, name=name, dropout=0.2)
