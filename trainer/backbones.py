"""The backbone registry: one name per network, each with the facts needed to build
and feed it (timm-style; see STYLE.md).

A builder returns a *headless* ``keras.Model`` taking float images in the convention
named by ``preprocess`` (a ``Preprocess``) and returning its
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
from enum import Enum
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class Preprocess(str, Enum):
    """How a backbone wants its float input (``trainer.nets.heads.ImagePreprocess``)."""

    CAFFE = "caffe"
    TF = "tf"
    TORCH = "torch"
    NONE = "none"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    family: str
    year: int
    builder: Callable[..., Any]  # (input_shape, *, weights=None, name=..., **options) -> keras.Model
    min_input: int
    default_input: int
    params: int
    preprocess: Preprocess


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


def _keras_app(app: str, *, width_arg: str | None = None, **fixed: Any) -> Callable[..., Any]:
    """A builder around ``keras.applications.<app>`` (include_top=False); ``fixed``:
    options every build passes (e.g. ``minimalistic=True``)."""

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
        return fn(include_top=False, weights=weights, input_shape=tuple(input_shape),
                  **fixed, **options)

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


# params: of the headless backbone as built here.
# keras.applications' preprocess_input modes: ResNet v1 and VGG "caffe"; InceptionV3,
# ResNet v2 and MobileNetV2 "tf"; MobileNetV3 and EfficientNet rescale inside the model
# (their preprocess_input is the identity) -> "none". Our own nets take [-1, 1] ("tf"),
# except ResNet-200 v1, which follows its family ("caffe").
for _spec in (
    BackboneSpec(name="inception_v1", family="inception", year=2014,
                 builder=_ours("inception_v1"),
                 min_input=32, default_input=224, params=5_995_392, preprocess=Preprocess.TF),
    BackboneSpec(name="inception_v2", family="inception", year=2015,
                 builder=_ours("inception_v2"),
                 min_input=32, default_input=224, params=10_280_256, preprocess=Preprocess.TF),
    BackboneSpec(name="inception_v3", family="inception", year=2015,
                 builder=_keras_app("InceptionV3"),
                 min_input=75, default_input=299, params=21_802_784, preprocess=Preprocess.TF),
    BackboneSpec(name="inception_v4", family="inception", year=2016,
                 builder=_ours("inception_v4"),
                 min_input=75, default_input=299, params=41_205_984, preprocess=Preprocess.TF),
    BackboneSpec(name="resnet50_v1", family="resnet_v1", year=2015,
                 builder=_keras_app("ResNet50"),
                 min_input=32, default_input=224, params=23_587_712, preprocess=Preprocess.CAFFE),
    BackboneSpec(name="resnet101_v1", family="resnet_v1", year=2015,
                 builder=_keras_app("ResNet101"),
                 min_input=32, default_input=224, params=42_658_176, preprocess=Preprocess.CAFFE),
    BackboneSpec(name="resnet152_v1", family="resnet_v1", year=2015,
                 builder=_keras_app("ResNet152"),
                 min_input=32, default_input=224, params=58_370_944, preprocess=Preprocess.CAFFE),
    BackboneSpec(name="resnet200_v1", family="resnet_v1", year=2015,
                 builder=_ours("resnet_deep", "build_v1"),
                 min_input=32, default_input=224, params=62_800_832, preprocess=Preprocess.CAFFE),
    BackboneSpec(name="resnet50_v2", family="resnet_v2", year=2016,
                 builder=_keras_app("ResNet50V2"),
                 min_input=32, default_input=224, params=23_564_800, preprocess=Preprocess.TF),
    BackboneSpec(name="resnet101_v2", family="resnet_v2", year=2016,
                 builder=_keras_app("ResNet101V2"),
                 min_input=32, default_input=224, params=42_626_560, preprocess=Preprocess.TF),
    BackboneSpec(name="resnet152_v2", family="resnet_v2", year=2016,
                 builder=_keras_app("ResNet152V2"),
                 min_input=32, default_input=224, params=58_331_648, preprocess=Preprocess.TF),
    BackboneSpec(name="resnet200_v2", family="resnet_v2", year=2016,
                 builder=_ours("resnet_deep", "build_v2"),
                 min_input=32, default_input=224, params=62_785_728, preprocess=Preprocess.TF),
    BackboneSpec(name="vgg16", family="vgg", year=2014,
                 builder=_keras_app("VGG16"),
                 min_input=32, default_input=224, params=14_714_688, preprocess=Preprocess.CAFFE),
    BackboneSpec(name="vgg19", family="vgg", year=2014,
                 builder=_keras_app("VGG19"),
                 min_input=32, default_input=224, params=20_024_384, preprocess=Preprocess.CAFFE),
    BackboneSpec(name="mobilenet_v2", family="mobilenet", year=2018,
                 builder=_keras_app("MobileNetV2", width_arg="alpha"),
                 min_input=32, default_input=224, params=2_257_984, preprocess=Preprocess.TF),
    BackboneSpec(name="mobilenet_v3_small", family="mobilenet", year=2019,
                 builder=_keras_app("MobileNetV3Small", width_arg="alpha"),
                 min_input=32, default_input=224, params=939_120, preprocess=Preprocess.NONE),
    # The paper's "minimalistic" MobileNetV3 (Howard et al. 2019, section 6.1.4): no
    # squeeze-and-excite, no hard-swish, 3x3 kernels only. Quantizes to int8 without the
    # accuracy loss of hard-swish and SE gating, and trains faster on a CPU.
    BackboneSpec(name="mobilenet_v3_small_minimal", family="mobilenet", year=2019,
                 builder=_keras_app("MobileNetV3Small", width_arg="alpha", minimalistic=True),
                 min_input=32, default_input=224, params=441_000, preprocess=Preprocess.NONE),
    # Ours: four stride-2 3x3 convolutions and two at stride 1 on the small maps
    # (trainer/nets/strided_cnn.py), the demo's recipe's backbone: trains fast on a CPU
    # and quantizes to int8 with little loss.
    BackboneSpec(name="strided_cnn", family="plain", year=2026,
                 builder=_ours("strided_cnn"),
                 min_input=32, default_input=96, params=283_248, preprocess=Preprocess.TF),
    BackboneSpec(name="mobilenet_v3_large", family="mobilenet", year=2019,
                 builder=_keras_app("MobileNetV3Large", width_arg="alpha"),
                 min_input=32, default_input=224, params=2_996_352, preprocess=Preprocess.NONE),
    BackboneSpec(name="efficientnet_b0", family="efficientnet", year=2019,
                 builder=_keras_app("EfficientNetB0"),
                 min_input=32, default_input=224, params=4_049_571, preprocess=Preprocess.NONE),
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
    "mobile": ("mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_small_minimal",
               "strided_cnn", "mobilenet_v3_large", "efficientnet_b0"),
}
BACKBONE_GROUPS["all"] = BACKBONE_GROUPS["paper"] + BACKBONE_GROUPS["mobile"]
