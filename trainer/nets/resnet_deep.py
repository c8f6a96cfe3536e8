"""ResNet-200 v1 and v2: the depths keras.applications stops short of.

v1 after He, Zhang, Ren & Sun 2015, "Deep Residual Learning for Image Recognition"
(bottleneck block of Fig. 5 right, post-activation, projection shortcut at the first
block of each stage). v2 after He et al. 2016, "Identity Mappings in Deep Residual
Networks" (full pre-activation block of Fig. 4e, identity shortcuts, one BN-ReLU after
the last stage). ResNet-200 stacks [3, 24, 36, 3] bottleneck blocks of widths 64, 128,
256, 512 (x4 at the block output), as in TF-slim's ``resnet_v1_200`` / ``resnet_v2_200``.
Strides sit on each stage's first 3x3 convolution. ``blocks`` is a parameter so the
tests can build a 50-layer net of ours and compare it with keras.applications.ResNet50.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from trainer.nets._layers import BN_EPSILON, conv_bn, finish

log = logging.getLogger(__name__)

#: Published figure compared by tests/test_backbones.py: 64.7M parameters for
#: ResNet-200 with its 1000-way classifier (timm ``resnet200`` / ``resnet200d`` model
#: cards; both heads and bodies match He et al.'s bottleneck layout). The papers print
#: no total. v1 and v2 differ only by a few thousand batch-norm parameters.
PUBLISHED_PARAMS = 64_700_000
CANONICAL_INPUT = 224
RESNET200_BLOCKS = (3, 24, 36, 3)
_WIDTHS = (64, 128, 256, 512)


def _bn(x: Any, name: str) -> Any:
    from keras import layers

    return layers.BatchNormalization(epsilon=BN_EPSILON, name=name)(x)


def _block_v1(x: Any, width: int, stride: int, project: bool, name: str) -> Any:
    from keras import layers

    shortcut = x
    if project:
        shortcut = conv_bn(x, 4 * width, 1, strides=stride, name=f"{name}_proj", activation=None)
    y = conv_bn(x, width, 1, name=f"{name}_1")
    y = conv_bn(y, width, 3, strides=stride, name=f"{name}_2")
    y = conv_bn(y, 4 * width, 1, name=f"{name}_3", activation=None)
    y = layers.Add(name=f"{name}_add")([shortcut, y])
    return layers.Activation("relu", name=f"{name}_out")(y)


def _block_v2(x: Any, width: int, stride: int, project: bool, name: str) -> Any:
    from keras import layers

    pre = layers.Activation("relu", name=f"{name}_preact_relu")(_bn(x, f"{name}_preact_bn"))
    shortcut = x
    if project:
        # The projection sees the pre-activated input (He et al. 2016, Sec. 4.1).
        shortcut = layers.Conv2D(4 * width, 1, strides=stride, use_bias=False,
                                 name=f"{name}_proj_conv")(pre)
    y = conv_bn(pre, width, 1, name=f"{name}_1")
    y = conv_bn(y, width, 3, strides=stride, name=f"{name}_2")
    y = layers.Conv2D(4 * width, 1, use_bias=False, name=f"{name}_3_conv")(y)
    return layers.Add(name=f"{name}_add")([shortcut, y])


def build(input_shape: tuple[int, int, int] = (CANONICAL_INPUT, CANONICAL_INPUT, 3), *,
          version: int = 1, blocks: Sequence[int] = RESNET200_BLOCKS, include_top: bool = False,
          classes: int = 1000, name: str | None = None) -> Any:
    """Bottleneck ResNet. Headless output: (H/32, W/32, 2048)."""
    import keras
    from keras import layers

    if version not in (1, 2):
        raise ValueError(f"ResNet version must be 1 or 2, not {version!r}")
    depth = 3 * sum(blocks) + 2
    name = name or f"resnet{depth}_v{version}"
    block = _block_v1 if version == 1 else _block_v2
    inputs = keras.Input(input_shape, name="input")
    x = conv_bn(inputs, 64, 7, strides=2, name="conv1")
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool1")(x)
    for stage, (count, width) in enumerate(zip(blocks, _WIDTHS, strict=True), start=2):
        for i in range(count):
            stride = 2 if i == 0 and stage > 2 else 1
            x = block(x, width, stride, i == 0, f"stage{stage}_block{i + 1}")
    if version == 2:
        x = layers.Activation("relu", name="post_relu")(_bn(x, "post_bn"))
    return finish(inputs, x, include_top=include_top, classes=classes, name=name)


def build_v1(input_shape: tuple[int, int, int] = (CANONICAL_INPUT, CANONICAL_INPUT, 3),
             **kwargs: Any) -> Any:
    return build(input_shape, version=1, **kwargs)


def build_v2(input_shape: tuple[int, int, int] = (CANONICAL_INPUT, CANONICAL_INPUT, 3),
             **kwargs: Any) -> Any:
    return build(input_shape, version=2, **kwargs)
