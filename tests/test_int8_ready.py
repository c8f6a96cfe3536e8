"""What makes the demo's graders pass the int8 gate: the model's test-time mirror
views (trainer.nets.heads.MirrorViews/MirrorMean) and kernels rounded onto int8's grid
(trainer.model_setup.snap_to_int8_grid), checked against TensorFlow Lite itself."""

from __future__ import annotations

import numpy as np
import pytest

SIZE = 32


@pytest.fixture(scope="module")
def mirror_model():
    import keras

    from trainer.model import build_multi_sign

    keras.utils.set_random_seed(3)
    return build_multi_sign("strided_cnn", image_size=SIZE, mirror_views=True)


def _images(n=3, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, SIZE, SIZE, 3), dtype=np.uint8)


def test_mirror_views_average_the_four_mirror_images(mirror_model):
    import keras

    from trainer.model import VIEW_POOL_LAYER

    x = _images()
    pooled = mirror_model.get_layer("pool").output
    features = keras.Model(mirror_model.input, pooled).predict(x, verbose=0)
    # Each view's pooled features, computed one view at a time through the same layers.
    per_view = keras.Model(mirror_model.input, mirror_model.get_layer(VIEW_POOL_LAYER).output)
    views = [x, x[:, :, ::-1], x[:, ::-1], x[:, ::-1, ::-1]]
    singles = [per_view.predict(v, verbose=0) for v in views]  # inference: 4 views each
    # With mirror views the per-view model stacks 4 views per image: take the first block.
    manual = np.mean([s[:len(x)] for s in singles], axis=0)
    np.testing.assert_allclose(features, manual, rtol=1e-4, atol=1e-5)
    assert features.shape == (len(x), 128)


def test_mirror_views_make_the_grade_mirror_invariant_and_pass_training_batches(mirror_model):
    x = _images(seed=1)
    probs = mirror_model.predict(x, verbose=0)
    for flipped in (x[:, :, ::-1], x[:, ::-1], x[:, ::-1, ::-1]):
        again = mirror_model.predict(np.ascontiguousarray(flipped), verbose=0)
        for sign, p in probs.items():
            np.testing.assert_allclose(again[sign], p, atol=2e-3)
    # Training: the batch passes as it is (no 4x stacking inside).
    out = mirror_model(x, training=True)
    assert {k: tuple(v.shape) for k, v in out.items()} == {k: (len(x), 4) for k in probs}


def test_mirror_model_splits_saves_and_converts(mirror_model, tmp_path):
    import keras

    from convert.tflite import convert_keras
    from device.grading.interpreter import GradeModel
    from trainer.model import CUSTOM_OBJECTS, split_multi_sign, with_pooled_features

    x = _images(seed=2)
    single = split_multi_sign(mirror_model, "excoriation")
    np.testing.assert_allclose(single.predict(x, verbose=0),
                               mirror_model.predict(x, verbose=0)["excoriation"], atol=1e-6)
    single.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras", custom_objects=CUSTOM_OBJECTS,
                                     compile=False)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), single.predict(x, verbose=0),
                               atol=1e-6)
    exported = with_pooled_features(loaded)
    flat = convert_keras(exported, "float32")
    (tmp_path / "m.tflite").write_bytes(flat)
    got = GradeModel(tmp_path / "m.tflite").predict(x[0])
    np.testing.assert_allclose(got, single.predict(x[:1], verbose=0)[0], atol=1e-4)


def _int8_weights(flat: bytes) -> dict[tuple, np.ndarray]:
    """Dequantized int8 weight tensors of a TFLite model, by shape."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=flat)
    interp.allocate_tensors()
    out = {}
    for t in interp.get_tensor_details():
        q = t["quantization_parameters"]
        if t["dtype"] == np.int8 and len(q["scales"]) > 1:
            w = interp.get_tensor(t["index"]).astype(np.float64)
            axis = q["quantized_dimension"]
            shape = [1] * w.ndim
            shape[axis] = -1
            out[tuple(t["shape"])] = w * q["scales"].reshape(shape)
    return out


@pytest.mark.filterwarnings("ignore:Statistics for quantized inputs")
def test_snapped_kernels_are_exactly_the_int8_weights():
    import keras
    import tensorflow as tf

    from trainer.model_setup import snap_to_int8_grid

    keras.utils.set_random_seed(4)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(5, 3, name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(4, name="dense")(x))
    kernel = model.get_layer("conv").kernel.numpy().copy()
    kernel[..., 0] *= 40.0  # one channel far larger: per-channel steps must differ
    model.get_layer("conv").kernel.assign(kernel)

    def quantized():
        conv = tf.lite.TFLiteConverter.from_keras_model(model)
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        rng = np.random.default_rng(0)
        conv.representative_dataset = lambda: ([rng.normal(size=(1, 8, 8, 3)).astype(np.float32)]
                                               for _ in range(8))
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        return _int8_weights(conv.convert())

    before = quantized()
    assert snap_to_int8_grid(model) == 2
    snapped = {n: model.get_layer(n).kernel.numpy().copy() for n in ("conv", "dense")}
    assert snap_to_int8_grid(model) == 2  # rounding again changes nothing
    for n in ("conv", "dense"):
        np.testing.assert_array_equal(model.get_layer(n).kernel.numpy(), snapped[n])
    after = quantized()
    conv_tfl = np.transpose(snapped["conv"], (3, 0, 1, 2))  # TFLite: (out, kh, kw, in)
    dense_tfl = snapped["dense"].T  # TFLite: (out, in)
    np.testing.assert_allclose(after[conv_tfl.shape], conv_tfl, rtol=0, atol=1e-6)
    np.testing.assert_allclose(after[dense_tfl.shape], dense_tfl, rtol=0, atol=1e-6)
    # Without the rounding, int8 moved the weights (what the gate would have measured).
    assert np.abs(before[conv_tfl.shape] - np.transpose(kernel, (3, 0, 1, 2))).max() > 1e-4


def test_the_mobile_recipe_asks_for_both():
    from trainer.recipe import RECIPES, RecipeName

    mobile, paper = RECIPES[RecipeName.MOBILE], RECIPES[RecipeName.PAPER]
    assert mobile.mirror_views and mobile.int8_grid
    assert not paper.mirror_views and not paper.int8_grid


def test_temperature_is_fitted_and_folded_into_the_head():
    import keras

    from trainer.model import build_classifier
    from trainer.model_setup import fit_temperatures, snap_to_int8_grid

    keras.utils.set_random_seed(5)
    model = build_classifier("strided_cnn", image_size=SIZE)
    rng = np.random.default_rng(0)
    # Flat colours: pooled features (and so logits) that differ a lot between images.
    colours = rng.integers(0, 256, (400, 1, 1, 3))
    images = np.clip(colours + rng.normal(0, 8, (400, SIZE, SIZE, 3)), 0, 255).astype(np.uint8)
    head = model.get_layer("grades")
    head.bias.assign(np.zeros(4, np.float32))
    pooled = keras.Model(model.input, model.get_layer("pool").output).predict(images, verbose=0)

    def logits():
        return pooled @ head.kernel.numpy() + head.bias.numpy()

    spread = 3.0 / (logits() - logits().mean(0)).std()  # a useful spread between images
    head.kernel.assign(head.kernel.numpy() * spread)
    head.bias.assign(-logits().mean(0))  # every grade about as likely
    snap_to_int8_grid(model)
    # Grades drawn from softmax(2 * logits): the model is half as sure as it should be.
    sharp = np.exp(2 * logits() - (2 * logits()).max(1, keepdims=True))
    sharp /= sharp.sum(1, keepdims=True)
    labels = np.array([rng.choice(4, p=p) for p in sharp])
    before = model.predict(images, verbose=0)
    snapped = head.kernel.numpy().copy()
    temps = fit_temperatures(model, images, {"grades": labels})
    assert 0.35 < temps["grades"] < 0.7, temps  # about 1/2
    after = model.predict(images, verbose=0)
    np.testing.assert_array_equal(after.argmax(1), before.argmax(1))  # grades unchanged
    assert after.max(1).mean() > before.max(1).mean() + 0.05  # surer
    # The kernel was divided by T: still on its int8 grid (the same integers).
    def units(k):
        return k / (np.abs(k).max(0) / 127)

    np.testing.assert_allclose(units(head.kernel.numpy()), units(snapped), atol=1e-3)
    np.testing.assert_allclose(np.round(units(snapped)), units(snapped), atol=1e-3)
    # Too few graded images: the head is left alone.
    assert fit_temperatures(model, images[:10], {"grades": labels[:10]}) == {}
