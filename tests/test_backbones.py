"""The backbone registry: names, errors, preprocessing, and every backbone building."""

from __future__ import annotations

import numpy as np
import pytest

from trainer.backbones import (
    BACKBONE_GROUPS,
    BackboneSpec,
    get_backbone,
    list_backbones,
    register,
    resolve_backbones,
)

# Building a backbone takes 2-15 s on the shared 2-core machine, so the default suite
# builds one of each kind (keras "none"/"caffe"/"tf" preprocessing, one of ours); the
# rest run with -m slow.
FAST = {"mobilenet_v3_small", "vgg16", "resnet50_v2", "inception_v1", "strided_cnn"}

# Which keras.applications module's preprocess_input each keras backbone is fed by.
KERAS_PREPROCESS = {
    "inception_v3": "inception_v3", "resnet50_v1": "resnet", "resnet101_v1": "resnet",
    "resnet152_v1": "resnet", "resnet50_v2": "resnet_v2", "resnet101_v2": "resnet_v2",
    "resnet152_v2": "resnet_v2", "vgg16": "vgg16", "vgg19": "vgg19",
    "mobilenet_v2": "mobilenet_v2", "mobilenet_v3_small": "mobilenet_v3",
    "mobilenet_v3_small_minimal": "mobilenet_v3",
    "mobilenet_v3_large": "mobilenet_v3", "efficientnet_b0": "efficientnet",
}
OURS = {"inception_v1", "inception_v2", "inception_v4", "resnet200_v1", "resnet200_v2",
        "strided_cnn"}


def test_registry_holds_the_paper_and_mobile_backbones():
    assert len(BACKBONE_GROUPS["paper"]) == 14
    assert BACKBONE_GROUPS["paper"][0] == "inception_v1"
    assert BACKBONE_GROUPS["paper"][-1] == "vgg19"
    assert BACKBONE_GROUPS["mobile"] == ("mobilenet_v2", "mobilenet_v3_small",
                                         "mobilenet_v3_small_minimal", "strided_cnn",
                                         "mobilenet_v3_large", "efficientnet_b0")
    assert set(list_backbones()) == set(BACKBONE_GROUPS["all"])
    assert len(BACKBONE_GROUPS["all"]) == 20
    assert set(KERAS_PREPROCESS) | OURS == set(list_backbones())


def test_list_backbones_pattern():
    assert list_backbones("resnet*_v2") == ["resnet101_v2", "resnet152_v2", "resnet200_v2",
                                            "resnet50_v2"]
    assert list_backbones("nothing*") == []


def test_specs_are_frozen_and_sane():
    for name in list_backbones():
        spec = get_backbone(name)
        assert spec.name == name
        assert spec.min_input <= spec.default_input
        assert spec.params > 90_000  # the smallest: our strided_cnn, 283k
        assert spec.preprocess in ("caffe", "tf", "torch", "none")
    with pytest.raises(AttributeError):
        get_backbone("vgg16").params = 1  # type: ignore[misc]


def test_duplicate_registration_is_an_error():
    before = list_backbones()
    spec = get_backbone("vgg16")
    with pytest.raises(ValueError, match="already registered"):
        register(BackboneSpec(spec.name, "other", 2020, spec.builder, 32, 224, 1, "tf"))
    assert list_backbones() == before
    assert get_backbone("vgg16").family == "vgg"


def test_unknown_name_lists_close_names():
    with pytest.raises(KeyError) as err:
        get_backbone("resnet50")
    assert "resnet50_v1" in str(err.value) and "resnet50_v2" in str(err.value)
    with pytest.raises(KeyError, match="inception_v3"):
        get_backbone("inceptoin_v3")
    assert get_backbone("ResNet50-V1").name == "resnet50_v1"


def test_resolve_backbones():
    assert resolve_backbones("mobile") == list(BACKBONE_GROUPS["mobile"])
    assert resolve_backbones("vgg16, mobilenet_v2") == ["vgg16", "mobilenet_v2"]
    with pytest.raises(KeyError):
        resolve_backbones("vgg16,vgg17x")


@pytest.mark.parametrize("name", sorted(KERAS_PREPROCESS))
def test_preprocess_matches_keras_preprocess_input(name):
    import importlib

    from trainer.nets.heads import ImagePreprocess

    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    module = importlib.import_module(f"keras.applications.{KERAS_PREPROCESS[name]}")
    expected = module.preprocess_input(image.astype(np.float32).copy())
    got = np.asarray(ImagePreprocess(get_backbone(name).preprocess)(image))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)


def test_torch_preprocess_matches_keras_densenet():
    import keras

    from trainer.nets.heads import ImagePreprocess

    image = np.random.default_rng(2).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    expected = keras.applications.densenet.preprocess_input(image.astype(np.float32))
    np.testing.assert_allclose(np.asarray(ImagePreprocess("torch")(image)), expected, atol=1e-5)


def test_backbones_cli_prints_table(capsys):
    from trainer.__main__ import main

    assert main(["backbones", "--group", "paper"]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.split() and line.split()[0] in
             BACKBONE_GROUPS["paper"]]
    assert [line.split()[0] for line in lines] == list(BACKBONE_GROUPS["paper"])
    assert "mobilenet_v2" not in out
    assert "62.8M" in out  # resnet200_v1 from the spec, nothing built


def _forward(name: str) -> None:
    from trainer.model import BACKBONE_LAYER, build_classifier

    spec = get_backbone(name)
    model = build_classifier(name, image_size=spec.min_input, weights=None)
    assert model.input.dtype == "uint8" and model.input_shape == (None, spec.min_input,
                                                                  spec.min_input, 3)
    assert model.output_names == ["grades"]
    backbone = model.get_layer(BACKBONE_LAYER)
    assert backbone.count_params() == spec.params, f"{name}: update its spec.params"
    if spec.preprocess == "none":  # the network must rescale 0-255 itself
        assert any(type(layer).__name__ == "Rescaling" for layer in backbone.layers)
    image = np.random.default_rng(0).integers(0, 256, (1, spec.min_input, spec.min_input, 3),
                                              dtype=np.uint8)
    probs = np.asarray(model(image, training=False))
    assert probs.shape == (1, 4)
    assert np.all(np.isfinite(probs)) and np.all(probs >= 0)
    assert probs.sum() == pytest.approx(1.0, abs=1e-5)
    # model_setup walks layers through the public Model.layers: it must reach every
    # layer Keras itself tracks (batch norms inside the backbone included).
    from trainer.model_setup import walk_layers

    assert {id(x) for x in walk_layers(model)} == {
        id(x) for x in model._flatten_layers(include_self=False)}


@pytest.mark.parametrize("name", [
    n if n in FAST else pytest.param(n, marks=pytest.mark.slow) for n in list_backbones()
])
def test_every_backbone_builds_and_runs_at_its_minimum_input(name):
    _forward(name)


def test_our_resnet_matches_keras_resnet50():
    """Our bottleneck ResNet with ResNet-50's blocks has keras' ResNet50 parameter count
    (keras' convs carry biases, ours do not: 26,560 fewer, 0.11 %)."""
    from trainer.nets import resnet_deep

    ours = resnet_deep.build((32, 32, 3), blocks=(3, 4, 6, 3)).count_params()
    keras_r50 = get_backbone("resnet50_v1").params
    assert abs(ours / keras_r50 - 1) < 0.002


# Our five from-paper builds: registry name -> (module, feature channels of the last map).
PUBLISHED = {
    "inception_v1": ("inception_v1", 1024), "inception_v2": ("inception_v2", 1024),
    "inception_v4": ("inception_v4", 1536), "resnet200_v1": ("resnet_deep", 2048),
    "resnet200_v2": ("resnet_deep", 2048),
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_param_counts_match_published_figures(name):
    """Headless count (spec.params, which the forward test checks equals the built
    model) plus the 1000-way classifier the published figures include, within 5 % of
    the published count (figure and source: each module's PUBLISHED_PARAMS). These
    backbones are all-convolutional, so the count is the same at every input size;
    test_canonical_builds checks that at the canonical size."""
    import importlib

    module, features = PUBLISHED[name]
    mod = importlib.import_module(f"trainer.nets.{module}")
    with_top = get_backbone(name).params + features * 1000 + 1000
    assert abs(with_top / mod.PUBLISHED_PARAMS - 1) < 0.05, (name, with_top, mod.PUBLISHED_PARAMS)


@pytest.mark.slow
@pytest.mark.parametrize("name, grid", [("inception_v1", 7), ("inception_v2", 7),
                                        ("inception_v4", 8)])
def test_canonical_builds(name, grid):
    """At the canonical input (224 / 299 px), with the 1000-class top, the counts are
    those of test_param_counts_match_published_figures, and the last grid is the
    paper's (7x7, or 8x8 for Inception-v4). The ResNet-200s (15 s each to build here)
    are covered by the minimum-input forward test's exact count."""
    import importlib

    module, features = PUBLISHED[name]
    mod = importlib.import_module(f"trainer.nets.{module}")
    size = mod.CANONICAL_INPUT
    headless = mod.build((size, size, 3))
    assert headless.output_shape == (None, grid, grid, features)
    assert headless.count_params() == get_backbone(name).params
    with_top = mod.build((size, size, 3), include_top=True, classes=1000).count_params()
    assert abs(with_top / mod.PUBLISHED_PARAMS - 1) < 0.05


def test_custom_backbone_rejects_imagenet_and_missing_files(tmp_path):
    from trainer.model import build_classifier

    with pytest.raises(ValueError, match="no ImageNet weights"):
        build_classifier("inception_v1", image_size=32, weights="imagenet")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_classifier("vgg16", image_size=32, weights=str(tmp_path / "missing.weights.h5"))
