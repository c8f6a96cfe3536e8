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
