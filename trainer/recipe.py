"""Training recipes: the optimizer, schedule, loss and defaults a run is trained with.

Two are registered:

``mobile`` (the default): the recipe the demo's graders are trained with, meant for a
small backbone trained from random weights in a couple of minutes on a laptop-class
CPU; with a shared backbone and a head per sign (``--multi-sign``) the three graders
train in the time of one.

* ``strided_cnn`` (four stride-2 3x3 convolutions and two at stride 1 where the map is
  small, trainer/nets/strided_cnn.py) at 96 px, 1,000 steps of batch 64 (1,200 graded
  about as well, and left the demo's build no margin under its 180 s): dense
  convolutions train faster per image on a CPU than the MobileNets' depthwise ones, and
  shallow ReLU6 layers quantize with little loss.
* AdamW with a short linear warm-up then cosine decay to 1 % of the peak learning rate,
  label smoothing 0.1, flips and right-angle turns (lossless; the generator's lesions
  have no up or left), batch-norm statistics that follow training within tens of steps.
* Pooling: each channel's mean and its maximum (trainer.nets.heads.MeanMaxPool), so the
  worst part of a crop that is half plain skin is not averaged away (``--pooling mean``:
  the mean alone). On the demo's device-cut crops, same split, the deeper net graded
  77.2 / 66.0 / 68.9 % with the mean and 78.4 / 70.4 / 68.3 % with both, in the same
  88 s of training for 1,200 steps (docs/recipe-log.md).
* Mirror views: in inference the model grades the image and its three mirror images and
  averages them (trainer.nets.heads.MirrorViews), which averages away part of int8's
  activation rounding, and a little of the grades' dependence on where texture falls.
* int8 grid: the final kernels are rounded onto the grid int8 conversion puts them on
  (trainer.model_setup.snap_to_int8_grid) before the held-out evaluation, so every
  figure is of the rounded model and its int8 copy differs from it only in activations.
* Temperature: label smoothing and the averaged views leave the probabilities less sure
  than the grades are right (a third of held-out crops under the device's 0.55 review
  line); one temperature per head, fitted on training crops, is folded into the head.

``paper``: Yoon et al. 2017 as published: SGD with momentum 0.9 at a constant
learning rate of 0.01 for up to 10,000 steps, plain cross-entropy. The Table-3
sweep (``python -m trainer sweep``) uses it by default.

A recipe fills in what the command line leaves unset (``--lr``, ``--steps``,
``--backbone``, ``--image-size``...); anything given explicitly wins.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from trainer.input_pipeline import Augment
from trainer.model import Pooling

log = logging.getLogger(__name__)


class RecipeName(str, Enum):
    MOBILE = "mobile"
    PAPER = "paper"

    def __str__(self) -> str:
        return self.value


class Optimizer(str, Enum):
    SGD = "sgd"
    ADAMW = "adamw"


class Schedule(str, Enum):
    CONSTANT = "constant"
    COSINE = "cosine"  # linear warm-up, then cosine decay


DEFAULT_RECIPE = RecipeName.MOBILE


@dataclass(frozen=True)
class Recipe:
    name: RecipeName
    optimizer: Optimizer
    lr: float
    schedule: Schedule
    steps: int
    backbone: str
    image_size: int
    batch: int = 32
    momentum: float = 0.9  # SGD only
    weight_decay: float = 0.0  # AdamW's decoupled decay
    warmup_fraction: float = 0.0  # of the steps, cosine only
    final_lr_fraction: float = 0.01  # cosine decays to this fraction of lr
    label_smoothing: float = 0.0
    eval_every: int = 200
    augment: Augment = field(default_factory=Augment)
    #: average the image and its three mirror images in inference (trainer.model._trunk)
    mirror_views: bool = False
    #: how the backbone's feature map is pooled (trainer.model._trunk)
    pooling: Pooling = Pooling.MEAN
    #: round the final kernels onto int8's grid (trainer.model_setup.snap_to_int8_grid)
    int8_grid: bool = False
    #: fold a temperature fitted on training images into each head (fit_temperatures)
    temperature: bool = False

    def describe(self) -> str:
        sched = (f"warm-up {self.warmup_fraction:.0%} then cosine to {self.final_lr_fraction:g}x"
                 if self.schedule is Schedule.COSINE else "constant")
        return (f"recipe {self.name.value}: {self.optimizer.value} lr {self.lr:g} ({sched}), "
                f"label smoothing {self.label_smoothing:g}, {self.steps} steps, batch {self.batch}")


RECIPES: dict[RecipeName, Recipe] = {
    RecipeName.MOBILE: Recipe(
        name=RecipeName.MOBILE, optimizer=Optimizer.ADAMW, lr=5e-3, schedule=Schedule.COSINE,
        steps=1000, backbone="strided_cnn", image_size=96, batch=64,
        weight_decay=1e-4, warmup_fraction=0.1, label_smoothing=0.1, eval_every=500,
        pooling=Pooling.MEAN_MAX,
        # Flips and right-angle turns only: lossless, free, and the generator's lesions have
        # no up or left; crops and brightness jitter slowed learning in a short run.
        augment=Augment(max_rotation_deg=0.0, min_crop=1.0, brightness=0.0, contrast=0.0),
        mirror_views=True, int8_grid=True, temperature=True),
    RecipeName.PAPER: Recipe(
        name=RecipeName.PAPER, optimizer=Optimizer.SGD, lr=0.01, schedule=Schedule.CONSTANT,
        steps=10_000, backbone="resnet101_v1", image_size=224, batch=32, momentum=0.9),
}


def parse_recipe(name: str | RecipeName) -> Recipe:
    if isinstance(name, RecipeName):
        return RECIPES[name]
    try:
        return RECIPES[RecipeName(str(name).strip().lower())]
    except ValueError:
        choices = ", ".join(r.value for r in RecipeName)
        raise ValueError(f"unknown recipe {name!r}: expected one of {choices}") from None


def learning_rate(recipe: Recipe, lr: float, steps: int) -> Any:
    """The learning rate (a float or a Keras schedule) for a run of ``steps`` steps."""
    if recipe.schedule is Schedule.CONSTANT:
        return lr
    import keras

    warmup = int(round(recipe.warmup_fraction * steps))
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=lr * 0.1 if warmup else lr, decay_steps=max(1, steps - warmup),
        alpha=recipe.final_lr_fraction, warmup_target=lr if warmup else None,
        warmup_steps=warmup)


def make_optimizer(recipe: Recipe, lr: float, steps: int, *, momentum: float | None = None) -> Any:
    import keras

    rate = learning_rate(recipe, lr, steps)
    if recipe.optimizer is Optimizer.ADAMW:
        return keras.optimizers.AdamW(learning_rate=rate, weight_decay=recipe.weight_decay)
    return keras.optimizers.SGD(learning_rate=rate,
                                momentum=recipe.momentum if momentum is None else momentum)
