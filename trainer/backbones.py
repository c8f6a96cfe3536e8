"""The backbone registry: one name per network, each with the facts needed to build
and feed it (timm-style; see STYLE.md).

A builder returns a *headless* ``keras.Model`` taking float images in the convention
named by ``preprocess`` (see ``trainer.nets.heads.PREPROCESS_MODES``) and returning its
last feature map; ``trainer.model`` adds the uint8 input, the in-graph preprocessing,
pooling and the grade head. ``params`` is the parameter count of that headless
backbone as built here (independent of input size); the five networks we build from
their papers are checked against the published figures in tests/test_backbones.py.
"""

from __future__ import annotations

import difflib
import fnmatch
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    family: str
    year: int
    builder: Callable[..., Any]  # (input_shape, *, weights=None, name=..., **options) -> keras.Model
    min_input: int
    default_input: int
    params: int
    preprocess: str  # caffe | tf | torch | none


_REGISTRY: dict[str, BackboneSpec] = {}


def register(spec: BackboneSpec) -> BackboneSpec:
    """Add a backbone; a name may be registered once only."""
    if spec.name in _REGISTRY:
        raise ValueError(f"backbone {spec.name!r} is already registered "
                         f"({_REGISTRY[spec.name].family}); pick another name")
    _REGISTRY[spec.name] = spec
    return spec


def list_backbones(pattern: str = "*") -> list[str]:
    """Registered names matching a shell-style pattern, e.g. ``"resnet*_v2"``."""
    return sorted(n for n in _REGISTRY if fnmatch.fnmatchcase(n, pattern))


def get_backbone(name: str) -> BackboneSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        pass
    key = name.strip().lower().replace("-", "_")
    if key in _REGISTRY:
        return _REGISTRY[key]
    names = list(_REGISTRY)
    close = difflib.get_close_matches(key, names, n=5, cutoff=0.5)
    close += [n for n in names if key and (n.startswith(key) or key in n) and n not in close]
    hint = f"; did you mean {', '.join(close[:6])}?" if close else ""
    raise KeyError(f"unknown backbone {name!r}{hint} (`python -m trainer backbones` lists all "
                   f"{len(names)})")


def resolve_backbones(text: str) -> list[str]:
    """A group name ("paper", "mobile", "all") or comma-separated backbone names -> names."""
    if text in BACKBONE_GROUPS:
        return list(BACKBONE_GROUPS[text])
    return [get_backbone(part.strip()).name for part in text.split(",") if part.strip()]


# ---------------------------------------------------------------- builders

def _check_weights(weights: str | None, name: str) -> None:
    if weights in (None, "imagenet"):
        return
    if not Path(weights).is_file():
        raise FileNotFoundError(f"weights file {weights} for backbone {name!r} does not exist: "
                                "pass None, 'imagenet' or the path of a .weights.h5 file")


def _keras_app(app: str, *, width_arg: str | None = None) -> Callable[..., Any]:
    """A builder around ``keras.applications.<app>`` (include_top=False)."""

    def build(input_shape: tuple[int, int, int], *, weights: str | None = None,
              name: str | None = None, width: float | None = None, **options: Any) -> Any:
        import keras

        _check_weights(weights, app)
        if width is not None:
            if width_arg is None:
                raise ValueError(f"{app} has no width option; leave width unset")
            options[width_arg] = width
        if name:
            options["name"] = name
        fn = getattr(keras.applications, app)
        return fn(include_top=False, weights=weights, input_shape=tuple(input_shape), **options)

    build.__name__ = f"build_{app}"
    return build


def _ours(module: str, function: str = "build") -> Callable[..., Any]:
    """A builder around one of trainer.nets (no published Keras weights exist)."""

    def build(input_shape: tuple[int, int, int], *, weights: str | None = None,
              name: str | None = None, width: float | None = None, **options: Any) -> Any:
        import importlib

        if weights == "imagenet":
            raise ValueError(f"no ImageNet weights are published for our {module} build: use "
                             "weights=None (train from scratch) or the path of a .weights.h5 "
                             "file saved from this backbone")
        if width is not None:
            raise ValueError(f"{module} has no width option; leave width unset")
        _check_weights(weights, module)
        fn = getattr(importlib.import_module(f"trainer.nets.{module}"), function)
        model = fn(tuple(input_shape), **({"name": name} if name else {}), **options)
        if weights is not None:
            model.load_weights(weights)
        return model

    build.__name__ = f"build_{module}_{function}"
    return build


# name, family, year, builder, min_input, default_input, params (headless), preprocess.
# keras.applications' preprocess_input modes: ResNet v1 and VGG "caffe"; InceptionV3,
# ResNet v2 and MobileNetV2 "tf"; MobileNetV3 and EfficientNet rescale inside the model
# (their preprocess_input is the identity) -> "none". Our own nets take [-1, 1] ("tf"),
# except ResNet-200 v1, which follows its family ("caffe").
for _spec in (
    BackboneSpec("inception_v1", "inception", 2014, _ours("inception_v1"), 32, 224, 5_995_392, "tf"),
    BackboneSpec("inception_v2", "inception", 2015, _ours("inception_v2"), 32, 224, 10_280_256, "tf"),
    BackboneSpec("inception_v3", "inception", 2015, _keras_app("InceptionV3"), 75, 299, 21_802_784, "tf"),
    BackboneSpec("inception_v4", "inception", 2016, _ours("inception_v4"), 75, 299, 41_205_984, "tf"),
    BackboneSpec("resnet50_v1", "resnet_v1", 2015, _keras_app("ResNet50"), 32, 224, 23_587_712, "caffe"),
    BackboneSpec("resnet101_v1", "resnet_v1", 2015, _keras_app("ResNet101"), 32, 224, 42_658_176, "caffe"),
    BackboneSpec("resnet152_v1", "resnet_v1", 2015, _keras_app("ResNet152"), 32, 224, 58_370_944, "caffe"),
    BackboneSpec("resnet200_v1", "resnet_v1", 2015, _ours("resnet_deep", "build_v1"), 32, 224, 62_800_832, "caffe"),
    BackboneSpec("resnet50_v2", "resnet_v2", 2016, _keras_app("ResNet50V2"), 32, 224, 23_564_800, "tf"),
    BackboneSpec("resnet101_v2", "resnet_v2", 2016, _keras_app("ResNet101V2"), 32, 224, 42_626_560, "tf"),
    BackboneSpec("resnet152_v2", "resnet_v2", 2016, _keras_app("ResNet152V2"), 32, 224, 58_331_648, "tf"),
    BackboneSpec("resnet200_v2", "resnet_v2", 2016, _ours("resnet_deep", "build_v2"), 32, 224, 62_785_728, "tf"),
    BackboneSpec("vgg16", "vgg", 2014, _keras_app("VGG16"), 32, 224, 14_714_688, "caffe"),
    BackboneSpec("vgg19", "vgg", 2014, _keras_app("VGG19"), 32, 224, 20_024_384, "caffe"),
    BackboneSpec("mobilenet_v2", "mobilenet", 2018, _keras_app("MobileNetV2", width_arg="alpha"), 32, 224, 2_257_984, "tf"),
    BackboneSpec("mobilenet_v3_small", "mobilenet", 2019, _keras_app("MobileNetV3Small", width_arg="alpha"), 32, 224, 939_120, "none"),
    BackboneSpec("mobilenet_v3_large", "mobilenet", 2019, _keras_app("MobileNetV3Large", width_arg="alpha"), 32, 224, 2_996_352, "none"),
    BackboneSpec("efficientnet_b0", "efficientnet", 2019, _keras_app("EfficientNetB0"), 32, 224, 4_049_571, "none"),
):
    register(_spec)
del _spec

#: The 14 backbones of Yoon et al. 2017, Table 3, in the table's order, and the edge ones.
BACKBONE_GROUPS: dict[str, tuple[str, ...]] = {
    "paper": (
        "inception_v1", "inception_v2", "inception_v3", "inception_v4",
        "resnet50_v1", "resnet101_v1", "resnet152_v1", "resnet200_v1",
        "resnet50_v2", "resnet101_v2", "resnet152_v2", "resnet200_v2",
        "vgg16", "vgg19",
    ),
    "mobile": ("mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0"),
}
BACKBONE_GROUPS["all"] = BACKBONE_GROUPS["paper"] + BACKBONE_GROUPS["mobile"]
