"""Classifiers: a registered backbone plus a grade head, uint8 RGB in, 4 grade
probabilities out (the model contract in docs/ARCHITECTURE.md).

Graph: Input((S, S, 3), uint8, name="image") -> ImagePreprocess (cast + the backbone's
own normalisation) -> backbone (a nested model named "backbone", so training can freeze
it with ``model.get_layer("backbone").trainable = False``) -> GlobalAveragePooling2D
("pool") -> Dropout -> head -> "grades".

Heads: ``softmax`` (Dense(4) + softmax) or ``ordinal`` (CORAL, see
``trainer.nets.heads.OrdinalHead``). Both output grade probabilities, so metrics,
conversion and the device never need to know which head a model has. Train the
ordinal head with ``loss_for_head("ordinal")`` (``coral_loss``: binary cross-entropy
over the cumulative events P(grade > k)); plain sparse categorical cross-entropy on
its probabilities also works, but CORAL is what the head was designed for.

``build_multi_sign`` shares one backbone between a head per sign (as EczemaNet does);
``split_multi_sign`` cuts one sign's single-output model out of it for conversion.

``with_pooled_features`` adds the pooled features as a second output ("features"),
which the model contract allows: convert exports that model so the device can score
how unlike the training images a crop is (device.grading.abstain).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from enum import Enum
from typing import Any

from device.core.vocab import MODEL_SIGNS, NUM_GRADES, Sign, parse_sign
from trainer.backbones import get_backbone

log = logging.getLogger(__name__)

INPUT_NAME = "image"
OUTPUT_NAME = "grades"
BACKBONE_LAYER = "backbone"
PREPROCESS_LAYER = "preprocess"
POOL_LAYER = "pool"
MIRROR_LAYER = "mirror_views"  # test-time mirror averaging (trainer.nets.heads.MirrorViews)
VIEW_POOL_LAYER = "view_pool"  # with mirror views: each view's pooling, before "pool" averages
FEATURES_NAME = "features"


class Head(str, Enum):
    SOFTMAX = "softmax"
    ORDINAL = "ordinal"

    def __str__(self) -> str:
        return self.value


class Pooling(str, Enum):
    """How the backbone's feature map becomes the features the heads read."""

    MEAN = "mean"          # global average pooling
    MEAN_MAX = "mean_max"  # each channel's mean and maximum (trainer.nets.heads.MeanMaxPool)

    def __str__(self) -> str:
        return self.value


def parse_head(head: str | Head) -> Head:
    try:
        return Head(str(head).strip().lower())
    except ValueError:
        choices = ", ".join(h.value for h in Head)
        raise ValueError(f"unknown head {head!r}: expected one of {choices}") from None


def __getattr__(name: str) -> Any:
    # CUSTOM_OBJECTS needs Keras; built on first use so `import trainer.model` stays light.
    if name == "CUSTOM_OBJECTS":
        from trainer.nets.heads import (
            ImagePreprocess,
            MeanMaxPool,
            MirrorMean,
            MirrorViews,
            OrdinalHead,
            SmoothedSparseCrossentropy,
            coral_loss,
        )

        return {"ImagePreprocess": ImagePreprocess, "OrdinalHead": OrdinalHead,
                "coral_loss": coral_loss, "SmoothedSparseCrossentropy": SmoothedSparseCrossentropy,
                "MirrorViews": MirrorViews, "MirrorMean": MirrorMean, "MeanMaxPool": MeanMaxPool}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def loss_for_head(head: str | Head, *, label_smoothing: float = 0.0, soft: bool = False) -> Any:
    """The loss to compile a model of this head with (labels: integer grades; with ``soft``,
    grade distributions: the raters' soft labels, softmax head only).
    ``label_smoothing`` applies to the softmax head; CORAL's binary events are left sharp."""
    import keras

    if soft:
        if parse_head(head) is Head.ORDINAL:
            raise ValueError("soft labels (--labels raters) need the softmax head; the "
                             "ordinal head learns from one grade per image")
        return keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing)
    if parse_head(head) is Head.ORDINAL:
        from trainer.nets.heads import coral_loss

        return coral_loss
    if label_smoothing > 0:
        from trainer.nets.heads import SmoothedSparseCrossentropy

        return SmoothedSparseCrossentropy(label_smoothing)
    return keras.losses.SparseCategoricalCrossentropy()


def _grade_head(x: Any, head: Head, dropout: float, name: str, dropout_name: str) -> Any:
    from keras import layers

    from trainer.nets.heads import OrdinalHead

    x = layers.Dropout(dropout, name=dropout_name)(x)
    # float32 heads keep probabilities exact under a mixed_float16 policy.
    if head is Head.ORDINAL:
        return OrdinalHead(NUM_GRADES, name=name, dtype="float32")(x)
    return layers.Dense(NUM_GRADES, activation="softmax", name=name, dtype="float32")(x)


def _trunk(backbone: str, image_size: int, weights: str | None,
           width: float | None, mirror_views: bool = False,
           pooling: Pooling = Pooling.MEAN) -> tuple[Any, Any]:
    """uint8 input -> preprocessing -> backbone -> pooled features. With ``mirror_views``
    the model averages the pooled features of the image and its three mirror images in
    inference (MirrorViews before the preprocessing, MirrorMean after the pooling).
    ``pooling``: each channel's mean (global average pooling), or its mean and maximum
    (trainer.nets.heads.MeanMaxPool)."""
    import keras
    from keras import layers

    from trainer.nets.heads import ImagePreprocess, MeanMaxPool, MirrorMean, MirrorViews

    def pool(name: str) -> Any:
        if Pooling(pooling) is Pooling.MEAN_MAX:
            return MeanMaxPool(name=name)
        return layers.GlobalAveragePooling2D(name=name)

    spec = get_backbone(backbone)
    if image_size < spec.min_input:
        raise ValueError(f"image_size {image_size} is below {spec.name}'s minimum input of "
                         f"{spec.min_input} px; use --image-size {spec.min_input} or more "
                         f"(its usual size is {spec.default_input})")
    shape = (image_size, image_size, 3)
    inputs = keras.Input(shape, dtype="uint8", name=INPUT_NAME)
    x = MirrorViews(name=MIRROR_LAYER)(inputs) if mirror_views else inputs
    x = ImagePreprocess(spec.preprocess, name=PREPROCESS_LAYER)(x)
    net = spec.builder(shape, weights=weights, name=BACKBONE_LAYER, width=width)
    x = net(x)
    if mirror_views:
        x = pool(VIEW_POOL_LAYER)(x)
        return inputs, MirrorMean(name=POOL_LAYER)(x)
    x = pool(POOL_LAYER)(x)
    return inputs, x


def build_classifier(backbone: str, *, image_size: int, head: str | Head = Head.SOFTMAX,
                     weights: str | None = None, dropout: float = 0.2,
                     width: float | None = None, mirror_views: bool = False,
                     pooling: Pooling = Pooling.MEAN) -> Any:
    """One sign's classifier. ``weights``: None (random), "imagenet" (keras.applications
    backbones only; downloads) or a backbone .weights.h5 path. ``width``: MobileNet alpha.
    ``mirror_views``: average the image and its mirror images in inference; ``pooling``: see
    ``_trunk``."""
    import keras

    head = parse_head(head)
    inputs, x = _trunk(backbone, image_size, weights, width, mirror_views, pooling)
    out = _grade_head(x, head, dropout, OUTPUT_NAME, "dropout")
    log.debug("built %s classifier (%s head) at %d px", backbone, head, image_size)
    return keras.Model(inputs, out, name=f"{backbone}_{head}")


def build_multi_sign(backbone: str, *, image_size: int, signs: Iterable[Sign] = MODEL_SIGNS,
                     head: str | Head = Head.SOFTMAX, weights: str | None = None,
                     dropout: float = 0.2, width: float | None = None,
                     mirror_views: bool = False, pooling: Pooling = Pooling.MEAN) -> Any:
    """One shared backbone, one head per sign; outputs {sign.value: (batch, 4) probs}.

    Compile with a dict of losses keyed the same way (``loss_for_head`` per sign); for a
    sample not graded for a sign, give that output a zero sample weight."""
    import keras

    head = parse_head(head)
    signs = [parse_sign(s) if isinstance(s, str) else s for s in signs]
    if not signs or len(set(signs)) != len(signs):
        raise ValueError(f"signs must be a non-empty list without repeats, got {signs}")
    inputs, x = _trunk(backbone, image_size, weights, width, mirror_views, pooling)
    outputs = {s.value: _grade_head(x, head, dropout, s.value, f"{s.value}_dropout") for s in signs}
    return keras.Model(inputs, outputs, name=f"{backbone}_{head}_multi")


def model_signs(model: Any) -> list[Sign]:
    """The signs a multi-sign model grades, in its output order."""
    names = {layer.name for layer in model.layers}
    return [s for s in Sign if s.value in names]


def split_multi_sign(model: Any, sign: Sign | str) -> Any:
    """A single-sign model (uint8 "image" in, 4 probabilities "grades" out) sharing the
    multi-sign model's layers and weights."""
    import keras

    sign = parse_sign(sign) if isinstance(sign, str) else sign
    available = model_signs(model)
    if sign not in available:
        have = ", ".join(s.value for s in available) or "none"
        raise ValueError(f"model {model.name!r} has no head for {sign.value} (it has: {have})")
    size = tuple(model.input_shape[1:])
    inputs = keras.Input(size, dtype="uint8", name=INPUT_NAME)
    x = inputs
    present = {layer.name for layer in model.layers}
    chain = (MIRROR_LAYER, PREPROCESS_LAYER, BACKBONE_LAYER, VIEW_POOL_LAYER, POOL_LAYER,
             f"{sign.value}_dropout", sign.value)
    optional = {MIRROR_LAYER, VIEW_POOL_LAYER}  # only in models with mirror views
    for name in (n for n in chain if n in present or n not in optional):
        x = model.get_layer(name)(x)
    out = keras.layers.Identity(name=OUTPUT_NAME)(x)
    return keras.Model(inputs, out, name=f"{model.name}_{sign.value}")


def with_pooled_features(model: Any) -> Any | None:
    """``model`` (uint8 image in, grades out) with its pooled features as a second
    output ("features"), sharing its layers and weights; None when it has no pooling
    layer (then it cannot abstain). The pool layer is the one named "pool", else the
    last global average pooling layer. Its output inside ``model`` is used as it is,
    so the grades are exactly those of ``model``."""
    import keras

    names = [layer.name for layer in model.layers]
    if POOL_LAYER in names:
        pool = model.get_layer(POOL_LAYER)
    else:
        pools = [la for la in model.layers if isinstance(la, keras.layers.GlobalAveragePooling2D)]
        if not pools:
            log.warning("model %r has no pooling layer: it is converted without features "
                        "and cannot abstain", model.name)
            return None
        pool = pools[-1]
    feats = keras.layers.Identity(name=FEATURES_NAME)(pool.output)
    return keras.Model(model.inputs, [model.outputs[0], feats], name=f"{model.name}_features")
