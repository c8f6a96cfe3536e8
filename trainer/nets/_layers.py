"""Small building blocks shared by the from-scratch backbones."""

from __future__ import annotations

from typing import Any

#: Keras' own applications use this BN epsilon; matching it keeps our nets comparable.
BN_EPSILON = 1.001e-3


def conv_bn(x: Any, filters: int, kernel: int | tuple[int, int], *, strides: int = 1,
            padding: str = "same", name: str, activation: str | None = "relu") -> Any:
    """Convolution (no bias: BN follows) -> batch norm -> ReLU."""
    from keras import layers

    x = layers.Conv2D(filters, kernel, strides=strides, padding=padding, use_bias=False,
                      name=f"{name}_conv")(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_bn")(x)
    if activation:
        x = layers.Activation(activation, name=f"{name}_{activation}")(x)
    return x


def googlenet_stem(inputs: Any) -> Any:
    """The stem GoogLeNet and BN-Inception share: 7x7/2 conv, pool, 1x1 and 3x3
    convs, pool (Szegedy et al. 2014, Table 1; Ioffe & Szegedy 2015, Fig. 5)."""
    from keras import layers

    x = conv_bn(inputs, 64, 7, strides=2, name="conv1")
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool1")(x)
    x = conv_bn(x, 64, 1, name="conv2_reduce")
    x = conv_bn(x, 192, 3, name="conv2")
    return layers.MaxPooling2D(3, strides=2, padding="same", name="pool2")(x)


def classifier_top(x: Any, classes: int, *, dropout: float = 0.0) -> Any:
    """Global average pooling -> (dropout) -> dense softmax, for the param-count checks."""
    from keras import layers

    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if dropout:
        x = layers.Dropout(dropout, name="top_dropout")(x)
    return layers.Dense(classes, activation="softmax", name="predictions")(x)


def finish(inputs: Any, x: Any, *, include_top: bool, classes: int, name: str,
           dropout: float = 0.0) -> Any:
    import keras

    if include_top:
        x = classifier_top(x, classes, dropout=dropout)
    return keras.Model(inputs, x, name=name)
