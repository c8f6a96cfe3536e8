"""Keras layers and losses that travel inside saved models: the in-graph image
preprocessing and the ordinal (CORAL / cumulative-link) grade head.

Everything here converts to TFLite with built-in ops only (CAST, MUL, ADD, SUB,
CONV_2D, FULLY_CONNECTED, LOGISTIC, MAXIMUM), all of which the XNNPACK delegate takes
in float and int8 models: the device has no custom ops.
Registered with Keras under the package "atopiscan" so ``keras.models.load_model``
finds them (``trainer.model.CUSTOM_OBJECTS`` lists them as well).
"""

from __future__ import annotations

import contextlib
import logging
import math
from typing import Any

import keras
from keras import ops

from trainer.backbones import Preprocess

log = logging.getLogger(__name__)

#: How uint8 RGB becomes the float input a backbone was trained on, named as in
#: keras.applications.imagenet_utils.preprocess_input's ``mode``:
#:   caffe: RGB -> BGR, minus the ImageNet mean per channel, no scaling (ResNet v1, VGG);
#:   tf:    x / 127.5 - 1, i.e. [-1, 1] (Inception, ResNet v2, MobileNetV2);
#:   torch: x / 255, minus mean, divided by std per channel (RGB);
#:   none:  float 0-255 as is: the network rescales itself (MobileNetV3, EfficientNet).
PREPROCESS_MODES = tuple(p.value for p in Preprocess)
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
        self.mode = Preprocess(mode).value  # a plain string in the saved config

    def call(self, inputs: Any) -> Any:
        x = ops.cast(inputs, self.compute_dtype)
        if self.mode == "tf":
            return x / 127.5 - 1.0
        if self.mode in ("caffe", "torch"):
            # Channel reorder and per-channel scale/offset as one fixed 1x1 convolution:
            # TFLite's REVERSE_V2 followed by a per-channel SUB makes the XNNPACK delegate
            # fail to prepare an int8 model, while a CONV_2D (offset folded into its
            # bias) is delegated like the rest of the network.
            kernel, offset = _affine(self.mode)
            kernel = ops.convert_to_tensor(kernel, dtype=self.compute_dtype)
            offset = ops.convert_to_tensor(offset, dtype=self.compute_dtype)
            return ops.conv(x, ops.reshape(kernel, (1, 1, 3, 3)), padding="valid") + offset
        return x

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "mode": self.mode}


@keras.saving.register_keras_serializable(package="atopiscan")
class MirrorViews(keras.layers.Layer):
    """Test-time mirror averaging, first half. In inference the batch becomes itself and
    its three mirror images (flipped left-right, up-down, and both), stacked on the batch
    axis (``VIEWS`` times the batch); ``MirrorMean`` averages them back after the pooling.
    In training the batch passes as it is: the training input is flipped at random already.

    Averaging the four views makes the grade depend a little less on where the texture
    happens to fall, and averages away part of int8's rounding noise, which differs
    between the views. Converts to TFLite's REVERSE_V2 and CONCATENATION on the uint8
    input, ahead of the preprocessing."""

    VIEWS = 4

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        if training:
            return inputs
        upside_down = ops.flip(inputs, axis=1)
        return ops.concatenate([inputs, ops.flip(inputs, axis=2), upside_down,
                                ops.flip(upside_down, axis=2)], axis=0)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return (None, *input_shape[1:])


@keras.saving.register_keras_serializable(package="atopiscan")
class MeanMaxPool(keras.layers.Layer):
    """Each channel's mean and its maximum over the feature map, side by side: (batch, H,
    W, C) -> (batch, 2C). The mean says how much of the crop shows a sign; the maximum
    says how strongly its worst part does, which an average over a crop that is half plain
    skin dilutes. Converts to TFLite's MEAN, REDUCE_MAX and CONCATENATION."""

    def call(self, inputs: Any) -> Any:
        return ops.concatenate([ops.mean(inputs, axis=(1, 2)), ops.max(inputs, axis=(1, 2))],
                               axis=-1)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return (input_shape[0], 2 * input_shape[-1])


@keras.saving.register_keras_serializable(package="atopiscan")
class MirrorMean(keras.layers.Layer):
    """Test-time mirror averaging, second half: (VIEWS x batch, C) pooled features, view
    by view as ``MirrorViews`` stacked them, to their (batch, C) mean. In training the
    features pass as they are."""

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        if training:
            return inputs
        views = ops.reshape(inputs, (MirrorViews.VIEWS, -1, inputs.shape[-1]))
        return ops.mean(views, axis=0)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape


def _affine(mode: str) -> tuple[list[list[float]], list[float]]:
    """(3x3 matrix, offset) with out = rgb @ matrix + offset, per pixel."""
    if mode == "caffe":  # out[c] = in[2 - c] - mean_bgr[c]
        matrix = [[1.0 if out == 2 - src else 0.0 for out in range(3)] for src in range(3)]
        return matrix, [-m for m in _CAFFE_MEAN_BGR]
    # torch: out[c] = (in[c] / 255 - mean[c]) / std[c]
    matrix = [[1.0 / (255.0 * _TORCH_STD[c]) if c == src else 0.0 for c in range(3)]
              for src in range(3)]
    return matrix, [-m / s for m, s in zip(_TORCH_MEAN, _TORCH_STD, strict=True)]


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

    def cumulative_logits(self, x: Any) -> Any:
        """logit P(grade > k) for k = 0..K-2, shape (batch, K-1)."""
        score = ops.matmul(ops.cast(x, "float32"), ops.cast(self.kernel, "float32"))
        return score + self.biases()

    def cumulative_probs(self, x: Any) -> Any:
        """P(grade > k) for k = 0..K-2, shape (batch, K-1), non-increasing along k."""
        return ops.sigmoid(self.cumulative_logits(x))

    def call(self, inputs: Any) -> Any:
        logits = self.cumulative_logits(inputs)
        cum = ops.sigmoid(logits)
        k = self.num_grades
        diff = [[(1.0 if col == row + 1 else -1.0 if col == row else 0.0) for col in range(k)]
                for row in range(k - 1)]
        first = [1.0] + [0.0] * (k - 1)
        probs = ops.matmul(cum, ops.convert_to_tensor(diff, "float32")) + ops.convert_to_tensor(
            first, "float32")
        # Exact arithmetic gives p >= 0; the clamp only absorbs float rounding.
        probs = ops.maximum(probs, 0.0)
        # Like Keras' softmax (``_keras_logits``): keep the logits on the output tensor so
        # coral_loss can use them while training (graph mode) and its gradient does not
        # vanish where the sigmoid saturates. Eager tensors refuse the attribute.
        with contextlib.suppress(AttributeError):
            probs._atopiscan_cumulative_logits = logits
        return probs

    def compute_output_shape(self, input_shape: Any) -> Any:
        return (*input_shape[:-1], self.num_grades)

    def get_config(self) -> dict:
        return {**super().get_config(), "num_grades": self.num_grades}


@keras.saving.register_keras_serializable(package="atopiscan")
def coral_loss(y_true: Any, y_pred: Any) -> Any:
    """CORAL loss for the ordinal head: mean binary cross-entropy over the K-1 events
    "grade > k". y_true: integer grades, (batch,) or (batch, 1); y_pred: the head's K
    probabilities. Inside ``fit`` the head's cumulative logits ride on y_pred and the
    loss is computed from them (stable, no vanishing gradient when saturated);
    otherwise P(grade > k) is recovered from the probabilities as sum_{j > k} p_j."""
    eps = 1e-7
    k = y_pred.shape[-1]
    grades = ops.cast(ops.reshape(y_true, (-1, 1)), "float32")
    events = ops.cast(grades > ops.cast(ops.arange(k - 1), "float32")[None, :], "float32")
    logits = getattr(y_pred, "_atopiscan_cumulative_logits", None)
    if logits is not None:
        bce = ops.softplus(logits) - events * logits
    else:
        probs = ops.cast(y_pred, "float32")
        # tail[:, k] = sum_{j > k} p_j for k = 0..K-2
        tail = ops.flip(ops.cumsum(ops.flip(probs, axis=-1), axis=-1), axis=-1)[:, 1:]
        tail = ops.clip(tail, 0.0, 1.0)
        bce = -(events * ops.log(tail + eps) + (1.0 - events) * ops.log(1.0 - tail + eps))
    return ops.mean(bce, axis=-1)


@keras.saving.register_keras_serializable(package="atopiscan")
class SmoothedSparseCrossentropy(keras.losses.Loss):
    """Cross-entropy on integer grades with label smoothing: the target puts
    ``1 - smoothing`` on the true grade and spreads ``smoothing`` evenly over all grades.
    (Keras' sparse cross-entropy has no smoothing; its categorical one wants one-hot
    labels.) With a softmax output Keras computes it from the logits, so it stays stable."""

    def __init__(self, smoothing: float = 0.1, name: str = "smoothed_sparse_crossentropy",
                 **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        if not 0.0 <= smoothing < 1.0:
            raise ValueError(f"label smoothing must lie in [0, 1), got {smoothing}")
        self.smoothing = float(smoothing)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        k = y_pred.shape[-1]
        target = ops.one_hot(ops.cast(ops.reshape(y_true, (-1,)), "int32"), k)
        return keras.losses.categorical_crossentropy(target, y_pred,
                                                     label_smoothing=self.smoothing)

    def get_config(self) -> dict:
        return {**super().get_config(), "smoothing": self.smoothing}
