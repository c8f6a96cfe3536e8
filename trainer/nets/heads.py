"""Keras layers and losses that travel inside saved models: the in-graph image
preprocessing and the ordinal (CORAL / cumulative-link) grade head.

Everything here converts to TFLite with built-in ops only (CAST, MUL, ADD, SUB,
REVERSE_V2, FULLY_CONNECTED, LOGISTIC, MAXIMUM): the device has no custom ops.
Registered with Keras under the package "atopiscan" so ``keras.models.load_model``
finds them (``trainer.model.CUSTOM_OBJECTS`` lists them as well).
"""

from __future__ import annotations

import logging
import math
from typing import Any

import keras
from keras import ops

log = logging.getLogger(__name__)

#: How uint8 RGB becomes the float input a backbone was trained on, named as in
#: keras.applications.imagenet_utils.preprocess_input's ``mode``:
#:   caffe: RGB -> BGR, minus the ImageNet mean per channel, no scaling (ResNet v1, VGG);
#:   tf:    x / 127.5 - 1, i.e. [-1, 1] (Inception, ResNet v2, MobileNetV2);
#:   torch: x / 255, minus mean, divided by std per channel (RGB);
#:   none:  float 0-255 as is: the network rescales itself (MobileNetV3, EfficientNet).
PREPROCESS_MODES = ("caffe", "tf", "torch", "none")
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
_TORCH_MEAN = (0.485, 0.456, 0.406)
_TORCH_STD = (0.229, 0.224, 0.225)


@keras.saving.register_keras_serializable(package="atopiscan")
class ImagePreprocess(keras.layers.Layer):
    """uint8 (or float 0-255) RGB -> the backbone's float input convention."""

    def __init__(self, mode: str = "tf", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if mode not in PREPROCESS_MODES:
            raise ValueError(f"unknown preprocess mode {mode!r}: expected one of {PREPROCESS_MODES}")
        self.mode = mode

    def call(self, inputs: Any) -> Any:
        x = ops.cast(inputs, self.compute_dtype)
        if self.mode == "tf":
            return x / 127.5 - 1.0
        if self.mode == "caffe":
            mean = ops.convert_to_tensor(_CAFFE_MEAN_BGR, dtype=self.compute_dtype)
            return ops.flip(x, axis=-1) - mean
        if self.mode == "torch":
            mean = ops.convert_to_tensor(_TORCH_MEAN, dtype=self.compute_dtype)
            std = ops.convert_to_tensor(_TORCH_STD, dtype=self.compute_dtype)
            return (x / 255.0 - mean) / std
        return x

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "mode": self.mode}


def _inverse_softplus(y: float) -> float:
    return math.log(math.expm1(y))


@keras.saving.register_keras_serializable(package="atopiscan")
class OrdinalHead(keras.layers.Layer):
    """CORAL head (Cao, Mirjalili & Raschka 2020): one shared weight vector w and K-1
    ordered biases give P(grade > k) = sigmoid(x.w + b_k), k = 0..K-2.

    The biases are kept ordered (b_0 > b_1 > ...) by construction: b_k = b_0 minus a
    running sum of softplus(gap) terms, so P(grade > k) never rises with k whatever the
    weights are. The layer outputs the K grade probabilities
    p_0 = 1 - P(>0), p_k = P(>k-1) - P(>k), p_{K-1} = P(>K-2): non-negative, summing
    to 1, so the rest of the project treats it exactly like a softmax head. The
    differences are one constant matrix product, which converts to TFLite's
    FULLY_CONNECTED and quantizes like any dense layer.
    """

    def __init__(self, num_grades: int = 4, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if num_grades < 2:
            raise ValueError(f"an ordinal head needs at least 2 grades, got {num_grades}")
        self.num_grades = num_grades

    def build(self, input_shape: Any) -> None:
        k = self.num_grades - 1
        self.kernel = self.add_weight(shape=(input_shape[-1], 1), initializer="glorot_uniform",
                                      name="kernel")
        # Start with thresholds 1.5 apart around 0: near-uniform grades for a zero score.
        self.first_bias = self.add_weight(
            shape=(1,), initializer=keras.initializers.Constant(0.75 * (k - 1)), name="first_bias")
        self.gaps = self.add_weight(
            shape=(k - 1,), initializer=keras.initializers.Constant(_inverse_softplus(1.5)),
            name="gaps")

    def biases(self) -> Any:
        """The K-1 ordered thresholds, strictly decreasing."""
        steps = ops.cumsum(ops.softplus(ops.cast(self.gaps, "float32")))
        first = ops.cast(self.first_bias, "float32")
        return ops.concatenate([first, first - steps], axis=0)

    def cumulative_probs(self, x: Any) -> Any:
        """P(grade > k) for k = 0..K-2, shape (batch, K-1), non-increasing along k."""
        score = ops.matmul(ops.cast(x, "float32"), ops.cast(self.kernel, "float32"))
        return ops.sigmoid(score + self.biases())

    def call(self, inputs: Any) -> Any:
        cum = self.cumulative_probs(inputs)
        k = self.num_grades
        diff = [[(1.0 if col == row + 1 else -1.0 if col == row else 0.0) for col in range(k)]
                for row in range(k - 1)]
        first = [1.0] + [0.0] * (k - 1)
        probs = ops.matmul(cum, ops.convert_to_tensor(diff, "float32")) + ops.convert_to_tensor(
            first, "float32")
        # Exact arithmetic gives p >= 0; the clamp only absorbs float rounding.
        return ops.maximum(probs, 0.0)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return (*input_shape[:-1], self.num_grades)

    def get_config(self) -> dict:
        return {**super().get_config(), "num_grades": self.num_grades}


@keras.saving.register_keras_serializable(package="atopiscan")
def coral_loss(y_true: Any, y_pred: Any) -> Any:
    """CORAL loss for the ordinal head: mean binary cross-entropy over the K-1 events
    "grade > k", with P(grade > k) recovered from the K output probabilities as
    sum_{j > k} p_j. y_true: integer grades (batch,) or (batch, 1)."""
    eps = 1e-7
    k = ops.shape(y_pred)[-1]
    probs = ops.cast(y_pred, "float32")
    # tail[:, k] = sum_{j > k} p_j for k = 0..K-2
    tail = ops.flip(ops.cumsum(ops.flip(probs, axis=-1), axis=-1), axis=-1)[:, 1:]
    tail = ops.clip(tail, eps, 1.0 - eps)
    grades = ops.cast(ops.reshape(y_true, (-1, 1)), "float32")
    events = ops.cast(grades > ops.cast(ops.arange(k - 1), "float32")[None, :], "float32")
    bce = -(events * ops.log(tail) + (1.0 - events) * ops.log(1.0 - tail))
    return ops.mean(bce, axis=-1)
