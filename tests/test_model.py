"""Classifier builders: the uint8-in / 4-probabilities-out contract, the ordinal head,
multi-sign models, save/load, and TFLite conversion with built-in ops only."""

from __future__ import annotations

import numpy as np
import pytest

from device.core.vocab import MODEL_SIGNS, Sign
from trainer.model import (
    BACKBONE_LAYER,
    Head,
    build_classifier,
    build_multi_sign,
    loss_for_head,
    model_signs,
    split_multi_sign,
)

SIZE = 32
BACKBONE = "mobilenet_v3_small"  # the cheapest registered backbone to build


def _images(n: int = 2, size: int = SIZE, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


@pytest.fixture(scope="module")
def ordinal_model():
    return build_classifier(BACKBONE, image_size=SIZE, head="ordinal")


@pytest.fixture(scope="module")
def tiny_backbone():
    """A two-convolution backbone registered for this module only: the real builders'
    code paths at a fraction of the build, train and conversion time."""
    from trainer import backbones

    def build(input_shape, *, weights=None, name=None, width=None):
        import keras

        inputs = keras.Input(input_shape)
        x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(inputs)
        x = keras.layers.Conv2D(16, 3, strides=2, activation="relu")(x)
        return keras.Model(inputs, x, name=name or "tiny")

    spec = backbones.register(backbones.BackboneSpec(
        "tiny_test", "test", 2024, build, 16, 32, 3 * 3 * 3 * 8 + 8 + 3 * 3 * 8 * 16 + 16, "caffe"))
    yield spec.name
    backbones._REGISTRY.pop(spec.name)


@pytest.fixture(scope="module")
def multi_model():
    return build_multi_sign(BACKBONE, image_size=SIZE, head="ordinal")


def _ordinal_layer(seed: int, dim: int = 8):
    from trainer.nets.heads import OrdinalHead

    rng = np.random.default_rng(seed)
    layer = OrdinalHead(4)
    layer.build((None, dim))
    # Arbitrary weights, including gaps whose softplus underflows towards 0.
    layer.kernel.assign(rng.normal(0, 3, (dim, 1)).astype("float32"))
    layer.first_bias.assign(rng.normal(0, 3, (1,)).astype("float32"))
    layer.gaps.assign(rng.choice([-30.0, -2.0, 0.5, 4.0], size=(2,)).astype("float32"))
    return layer


@pytest.mark.parametrize("seed", range(5))
def test_ordinal_head_gives_valid_ordered_probabilities(seed):
    layer = _ordinal_layer(seed)
    x = np.random.default_rng(100 + seed).normal(0, 2, (64, 8)).astype("float32")
    probs = np.asarray(layer(x))
    cum = np.asarray(layer.cumulative_probs(x))
    biases = np.asarray(layer.biases())
    assert probs.shape == (64, 4)
    assert np.all(probs >= 0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert np.all(np.diff(biases) <= 0)
    assert np.all(np.diff(cum, axis=1) <= 1e-7)  # P(>0) >= P(>1) >= P(>2)
    # Independent reference: sigmoid(x.w + b_k), differenced.
    ref_cum = _sigmoid(x @ np.asarray(layer.kernel) + biases[None, :])
    np.testing.assert_allclose(cum, ref_cum, atol=1e-5)
    ref = np.concatenate([1 - ref_cum[:, :1], -np.diff(ref_cum, axis=1), ref_cum[:, -1:]], axis=1)
    np.testing.assert_allclose(probs, ref, atol=1e-5)
    # A larger score along w never lowers P(grade > k).
    w = np.asarray(layer.kernel)[:, 0]
    line = np.outer(np.linspace(-3, 3, 13), w / np.linalg.norm(w)).astype("float32")
    assert np.all(np.diff(np.asarray(layer.cumulative_probs(line)), axis=0) >= -1e-7)


def test_coral_loss_matches_reference_and_prefers_the_right_grade():
    from trainer.nets.heads import coral_loss

    probs = np.array([[0.7, 0.2, 0.05, 0.05], [0.1, 0.2, 0.3, 0.4]], "float32")
    y = np.array([0, 3])
    tail = np.stack([probs[:, 1:].sum(1), probs[:, 2:].sum(1), probs[:, 3]], axis=1)
    events = (y[:, None] > np.arange(3)[None, :]).astype("float32")
    ref = -(events * np.log(tail) + (1 - events) * np.log(1 - tail)).mean(axis=1)
    np.testing.assert_allclose(np.asarray(coral_loss(y, probs)), ref, rtol=1e-5)
    wrong = np.asarray(coral_loss(np.array([3, 0]), probs))
    assert np.all(wrong > ref)
    assert loss_for_head("ordinal") is coral_loss
    assert loss_for_head(Head.SOFTMAX).__class__.__name__ == "SparseCategoricalCrossentropy"


def test_coral_loss_keeps_its_gradient_when_saturated():
    """A confidently wrong head (all logits ~ +400) must still learn: under tf.function
    (as in fit) the loss uses the head's logits, not clipped probabilities."""
    import tensorflow as tf

    from trainer.nets.heads import OrdinalHead, coral_loss

    layer = OrdinalHead(4)
    layer.build((None, 4))
    layer.kernel.assign(np.full((4, 1), 100.0, "float32"))
    x = tf.ones((4, 4))
    y = tf.zeros((4,), "int32")

    @tf.function
    def loss_and_grad():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(coral_loss(y, layer(x)))
        return loss, tape.gradient(loss, layer.kernel)

    loss, grad = loss_and_grad()
    assert float(loss) > 100  # softplus(400)-ish, not a clipped -log(eps)
    assert float(tf.norm(grad)) > 1.0


def test_classifier_contract(ordinal_model):
    model = ordinal_model
    assert model.input.name == "image" or model.layers[0].name == "image"
    assert model.input.dtype == "uint8"
    assert model.input_shape == (None, SIZE, SIZE, 3)
    assert model.output_names == ["grades"]
    assert model.output_shape == (None, 4)
    assert model.get_layer("preprocess").mode == "none"
    assert model.get_layer(BACKBONE_LAYER).count_params() == 939_120
    probs = np.asarray(model(_images(3), training=False))
    assert probs.shape == (3, 4) and np.all(probs >= 0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_bad_arguments_say_what_to_do():
    with pytest.raises(ValueError, match="minimum input of 75"):
        build_classifier("inception_v3", image_size=64)
    with pytest.raises(ValueError, match="unknown head"):
        build_classifier(BACKBONE, image_size=SIZE, head="bogus")
    with pytest.raises(ValueError, match="no width option"):
        build_classifier("vgg16", image_size=SIZE, width=0.5)
    with pytest.raises(KeyError, match="did you mean"):
        build_classifier("mobilenet", image_size=SIZE)


def test_multi_sign_build_and_split(multi_model):
    model = multi_model
    assert model_signs(model) == list(MODEL_SIGNS)
    images = _images(2)
    outputs = model(images, training=False)
    assert sorted(outputs) == sorted(s.value for s in MODEL_SIGNS)
    for sign in MODEL_SIGNS:
        single = split_multi_sign(model, sign)
        assert single.input.dtype == "uint8" and single.input_shape == (None, SIZE, SIZE, 3)
        assert single.output_names == ["grades"]
        np.testing.assert_allclose(np.asarray(single(images, training=False)),
                                   np.asarray(outputs[sign.value]), atol=1e-6)
        # Shared, not copied: the split model uses the very same variables.
        assert single.get_layer(BACKBONE_LAYER) is model.get_layer(BACKBONE_LAYER)
        assert single.get_layer(sign.value).kernel is model.get_layer(sign.value).kernel
    with pytest.raises(ValueError, match="no head for papulation"):
        split_multi_sign(model, Sign.PAPULATION)


def test_multi_sign_subset_and_bad_signs(tiny_backbone):
    model = build_multi_sign(tiny_backbone, image_size=SIZE, signs=[Sign.ERYTHEMA],
                             head="softmax")
    assert model_signs(model) == [Sign.ERYTHEMA]
    assert split_multi_sign(model, "erythema").output_shape == (None, 4)
    with pytest.raises(ValueError, match="it has: erythema"):
        split_multi_sign(model, "excoriation")
    with pytest.raises(ValueError, match="without repeats"):
        build_multi_sign(BACKBONE, image_size=SIZE, signs=[Sign.ERYTHEMA, Sign.ERYTHEMA])


def _round_trip(model, tmp_path, images):
    import keras

    from trainer.model import CUSTOM_OBJECTS

    path = tmp_path / f"{model.name}.keras"
    model.save(path)
    loaded = keras.models.load_model(path, custom_objects=CUSTOM_OBJECTS)
    before, after = model(images, training=False), loaded(images, training=False)
    if isinstance(before, dict):
        assert sorted(before) == sorted(after)
        for key in before:
            np.testing.assert_allclose(np.asarray(after[key]), np.asarray(before[key]), atol=1e-6)
    else:
        np.testing.assert_allclose(np.asarray(after), np.asarray(before), atol=1e-6)
    return loaded


def test_save_load_round_trip_ordinal(ordinal_model, tmp_path):
    loaded = _round_trip(ordinal_model, tmp_path, _images(2))
    assert type(loaded.get_layer("grades")).__name__ == "OrdinalHead"
    assert loaded.get_layer("preprocess").mode == "none"


def test_save_load_round_trip_softmax_and_multi(tiny_backbone, tmp_path):
    images = _images(2)
    loaded = _round_trip(build_classifier(tiny_backbone, image_size=SIZE), tmp_path, images)
    assert loaded.output_names == ["grades"]
    assert loaded.get_layer("preprocess").mode == "caffe"
    multi = build_multi_sign(tiny_backbone, image_size=SIZE, head="ordinal")
    loaded = _round_trip(multi, tmp_path, images)
    # A split of the reloaded model still works (layer names survive the round trip).
    np.testing.assert_allclose(
        np.asarray(split_multi_sign(loaded, Sign.LICHENIFICATION)(images, training=False)),
        np.asarray(multi(images, training=False)["lichenification"]), atol=1e-6)


@pytest.mark.parametrize("head", ["softmax", "ordinal"])
def test_multi_sign_trains_with_a_loss_per_sign(tiny_backbone, head):
    import keras

    model = build_multi_sign(tiny_backbone, image_size=SIZE, head=head)
    model.compile(optimizer="sgd", loss={s.value: loss_for_head(head) for s in MODEL_SIGNS})
    y = {s.value: np.array([0, 1, 2, 3]) for s in MODEL_SIGNS}
    keras.utils.set_random_seed(7)
    before = [np.array(w) for w in model.get_layer("erythema").get_weights()]
    history = model.fit(_images(4), y, epochs=2, batch_size=4, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    after = model.get_layer("erythema").get_weights()
    assert any(not np.allclose(a, b) for a, b in zip(before, after, strict=True))


@pytest.mark.parametrize("mode", ["float32", "int8"])
def test_ordinal_classifier_converts_to_tflite_builtins(tiny_backbone, mode, tmp_path):
    """build_classifier's graph (uint8 input, caffe preprocessing, ordinal head) converts
    with built-in ops only and runs in ai_edge_litert (XNNPACK delegate included) through
    the device's own GradeModel."""
    from ai_edge_litert.interpreter import Interpreter
    from factories import to_tflite

    from device.grading.interpreter import GradeModel

    model = build_classifier(tiny_backbone, image_size=SIZE, head="ordinal")
    content = to_tflite(model, mode)
    ops = {op["op_name"] for op in Interpreter(model_content=content)._get_ops_details()}
    assert not any(op.startswith(("Flex", "CUSTOM")) for op in ops), ops
    path = tmp_path / f"ordinal_{mode}.tflite"
    path.write_bytes(content)
    grade_model = GradeModel(path, threads=2)
    images = _images(6, seed=3)
    expected = np.asarray(model(images, training=False))
    got = np.stack([grade_model.predict(image) for image in images])
    tol = 0.05 if mode == "int8" else 1e-5
    assert np.all(got >= 0)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=tol)
    np.testing.assert_allclose(got, expected, atol=tol)


def test_mean_max_pool_is_each_channels_mean_then_its_maximum():
    from trainer.nets.heads import MeanMaxPool

    x = np.random.default_rng(4).normal(size=(3, 5, 7, 6)).astype("float32")
    got = np.asarray(MeanMaxPool()(x))
    assert got.shape == (3, 12)
    np.testing.assert_allclose(got[:, :6], x.mean(axis=(1, 2)), atol=1e-6)
    np.testing.assert_allclose(got[:, 6:], x.max(axis=(1, 2)), atol=1e-6)


@pytest.mark.parametrize("mode", ["float32", "int8"])
def test_mean_max_multi_sign_splits_saves_and_converts_with_its_features(tiny_backbone, mode,
                                                                        tmp_path):
    """The mobile recipe's graph (mirror views, mean and max pooling, a head per sign): each
    sign's split model grades as the multi-sign one, survives saving, exposes features twice
    the backbone's width (what the feature space is fitted on) and converts with built-in ops
    that the device's GradeModel runs."""
    import keras
    from ai_edge_litert.interpreter import Interpreter
    from factories import to_tflite

    from device.grading.interpreter import GradeModel
    from trainer.model import CUSTOM_OBJECTS, Pooling, with_pooled_features

    keras.utils.set_random_seed(7)
    model = build_multi_sign(tiny_backbone, image_size=SIZE, mirror_views=True,
                             pooling=Pooling.MEAN_MAX)
    images = _images(4, seed=5)
    outputs = model(images, training=False)
    single = split_multi_sign(model, Sign.EXCORIATION)
    np.testing.assert_allclose(np.asarray(single(images, training=False)),
                               np.asarray(outputs["excoriation"]), atol=1e-6)
    single.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras", custom_objects=CUSTOM_OBJECTS)
    np.testing.assert_allclose(np.asarray(loaded(images, training=False)),
                               np.asarray(outputs["excoriation"]), atol=1e-6)
    exported = with_pooled_features(loaded)
    assert exported.outputs[1].shape[-1] == 2 * 16  # the tiny backbone ends on 16 channels
    content = to_tflite(exported, mode)
    ops = {op["op_name"] for op in Interpreter(model_content=content)._get_ops_details()}
    assert "REDUCE_MAX" in ops and not any(op.startswith(("Flex", "CUSTOM")) for op in ops), ops
    path = tmp_path / f"mm_{mode}.tflite"
    path.write_bytes(content)
    grade_model = GradeModel(path, threads=2)
    got = np.stack([grade_model.predict(image) for image in images])
    np.testing.assert_allclose(got, np.asarray(outputs["excoriation"]),
                               atol=0.05 if mode == "int8" else 1e-5)
