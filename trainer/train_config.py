"""What a training run is asked to do (``TrainConfig``), and its input error type."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from device.core.ceiling import LabelSource, parse_label_source
from device.core.vocab import Sign, parse_sign
from trainer.model import Head, Pooling, parse_head
from trainer.recipe import RecipeName, parse_recipe

log = logging.getLogger(__name__)

#: Keys that must match for the same command to continue an existing run.
IDENTITY_KEYS = ("sign", "backbone", "image_size", "head", "multi_sign", "mirror_views", "labels",
                 "pooling")
#: What a config.json written before a key existed meant by it.
IDENTITY_DEFAULTS = {"mirror_views": False, "labels": LabelSource.CONSENSUS.value,
                     "pooling": Pooling.MEAN.value}


class TrainError(ValueError):
    """Bad training input a person can fix (wrong layout, clashing run directory...)."""


@dataclass
class TrainConfig:
    data: str | list[str]  # one data root, or several read together (trainer.roots)
    out: str
    sign: Sign | None = Sign.ERYTHEMA  # None with multi_sign
    backbone: str = "resnet101_v1"
    image_size: int = 224
    steps: int = 10_000
    lr: float = 0.01
    momentum: float = 0.9
    batch: int = 32
    #: trainer.recipe: optimizer, schedule, loss and augmentation (the fields above are
    #: the paper's, so a TrainConfig built with its defaults follows the paper).
    recipe: RecipeName = RecipeName.PAPER
    weights: str = "none"  # none | imagenet | PATH (.weights.h5 or a .keras to copy from)
    head: Head = Head.SOFTMAX
    multi_sign: bool = False
    #: average the image and its mirror images in inference (part of the model's graph)
    mirror_views: bool = False
    #: how the backbone's feature map is pooled (trainer.model.Pooling)
    pooling: Pooling = Pooling.MEAN
    #: round the final model's kernels onto the int8 grid before it is evaluated
    int8_grid: bool = False
    #: fold a temperature fitted on training images into each softmax head (after int8_grid)
    temperature: bool = False
    #: consensus: one grade per image; raters: the distribution of the raters' grades
    #: (soft labels, categorical cross-entropy; trainer.input_pipeline.soft_label_arrays)
    labels: LabelSource = LabelSource.CONSENSUS
    seed: int = 0
    split: str | None = None  # reuse this split file instead of making one
    val_fraction: float = 0.3
    patience: int = 10  # evaluations without improvement before stopping
    eval_every: int = 200
    augment: bool = True
    class_weights: bool = True
    mixed_precision: bool | None = None  # None: on when a GPU is used
    jit_compile: bool | None = None  # XLA; None: on when a GPU is used
    cpu_devices: int = 0  # >1: MirroredStrategy over this many logical CPU devices
    verbose: int = 1

    def __post_init__(self) -> None:
        # Strings from the CLI or an old config become the typed values.
        if self.sign is not None:
            self.sign = parse_sign(self.sign, model_only=True)
        self.head = parse_head(self.head)
        self.pooling = Pooling(str(self.pooling))
        try:
            self.labels = parse_label_source(self.labels)
        except ValueError as exc:
            raise TrainError(f"--labels: {exc}") from exc
        if self.labels is LabelSource.RATERS and self.head is Head.ORDINAL:
            raise TrainError("--labels raters needs --head softmax: the ordinal head learns "
                             "from one grade per image, not from the raters' distribution")
        try:
            self.recipe = parse_recipe(self.recipe).name
        except ValueError as exc:
            raise TrainError(f"--recipe: {exc}") from exc
