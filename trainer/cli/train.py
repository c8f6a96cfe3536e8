"""``python -m trainer train``: train one sign's classifier into a run directory
(re-running the same command resumes an interrupted run)."""

from __future__ import annotations

import argparse
import logging

from device.core.cliutil import UserError

log = logging.getLogger(__name__)


def add_common(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    """Arguments shared with ``python -m trainer sweep``."""
    from trainer.model import Pooling
    from trainer.recipe import DEFAULT_RECIPE, RecipeName

    parser.add_argument("--data", required=required, action="append", metavar="DIR",
                        help="data root (folder layout or manifest.csv); repeat it to train on "
                        "several roots together (e.g. a device export and synthetic data)")
    parser.add_argument("--recipe", choices=[r.value for r in RecipeName], default=DEFAULT_RECIPE.value,
                        help="training recipe (see README): mobile (AdamW, cosine, label smoothing; "
                             "strided_cnn at 96 px, mirror views, int8-grid weights) or paper (SGD lr 0.01, "
                             "10,000 steps, "
                             "resnet101_v1 at 224 px); it fills in the options below left unset")
    parser.add_argument("--image-size", type=int, default=None, help="square input size in pixels")
    parser.add_argument("--steps", type=int, default=None, help="most training iterations (paper: 10,000)")
    parser.add_argument("--lr", type=float, default=None, help="peak learning rate (paper: 0.01)")
    parser.add_argument("--batch", type=int, default=None, help="global batch size")
    parser.add_argument("--weights", default="none",
                        help="none, imagenet (needs the file cached by Keras), or a .keras/.weights.h5 PATH")
    parser.add_argument("--head", choices=["softmax", "ordinal"], default="softmax")
    parser.add_argument("--labels", choices=["consensus", "raters"], default="consensus",
                        help="consensus: one grade per image (default); raters: learn the "
                             "distribution of the raters' grades (soft labels; needs the "
                             "manifest's per-rater columns from `label export` or `synth --raters`)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--patience", type=int, default=10,
                        help="stop after this many evaluations without improvement")
    parser.add_argument("--eval-every", type=int, default=None, help="evaluate/checkpoint every N steps")
    parser.add_argument("--no-augment", action="store_true", help="train without augmentation")
    parser.add_argument("--no-class-weights", action="store_true", help="do not reweight rare grades")
    parser.add_argument("--quiet", action="store_true",
                        help="one log line per evaluation, no progress bar (the default when the "
                             "output is not a terminal)")
    parser.add_argument("--mixed-precision", action=argparse.BooleanOptionalAction, default=None,
                        help="float16 compute on GPUs (default: on with a GPU, never on CPU)")
    parser.add_argument("--jit-compile", action=argparse.BooleanOptionalAction, default=None,
                        help="compile the training step with XLA (default: on with a GPU)")
    parser.add_argument("--mirror-views", action=argparse.BooleanOptionalAction, default=None,
                        help="the model grades the image and its three mirror images and "
                             "averages them (4x the inference work; default: the recipe's)")
    parser.add_argument("--pooling", choices=[p.value for p in Pooling], default=None,
                        help="pool the feature map by each channel's mean, or its mean and "
                             "maximum (default: the recipe's)")
    parser.add_argument("--int8-grid", action=argparse.BooleanOptionalAction, default=None,
                        help="round the final weights onto the grid int8 conversion uses, before "
                             "the held-out evaluation (default: the recipe's)")
    parser.add_argument("--temperature", action=argparse.BooleanOptionalAction, default=None,
                        help="fit one temperature per head on training images and fold it into "
                             "the head, so probabilities match how often grades are right "
                             "(default: the recipe's)")
    parser.add_argument("--cpu-devices", type=int, default=0, metavar="N",
                        help="without GPUs, split the CPU into N logical devices and train with "
                             "MirroredStrategy over them (tests the several-device path)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common(parser)
    parser.add_argument("--sign", default="erythema", help="erythema, excoriation or lichenification")
    parser.add_argument("--backbone", default=None,
                        help="see `python -m trainer backbones` (default: the recipe's)")
    parser.add_argument("--out", required=True, help="run directory (created; reused to resume)")
    parser.add_argument("--multi-sign", action="store_true",
                        help="one shared backbone, a head per sign (manifest layout); also writes OUT/<sign>/")
    parser.add_argument("--split", help="reuse this split file (default: make one, saved to OUT/split.json)")
    parser.add_argument("--val-fraction", type=float, default=0.3)


def config_from_args(args: argparse.Namespace, **over):
    """The TrainConfig for these arguments, the recipe filling in what was left unset."""
    import sys

    from trainer.recipe import parse_recipe
    from trainer.train import TrainConfig

    recipe = parse_recipe(args.recipe)

    def pick(value, default):
        return default if value is None else value

    progress = sys.stdout.isatty() and not args.quiet  # a log file gets one line per evaluation
    options = dict(data=args.data, recipe=recipe.name.value,
                   image_size=pick(args.image_size, recipe.image_size),
                   steps=pick(args.steps, recipe.steps),
                   lr=pick(args.lr, recipe.lr), batch=pick(args.batch, recipe.batch),
                   momentum=recipe.momentum, weights=args.weights, head=args.head, seed=args.seed,
                   patience=args.patience, eval_every=pick(args.eval_every, recipe.eval_every),
                   augment=not args.no_augment, class_weights=not args.no_class_weights,
                   verbose=1 if progress else 2,
                   backbone=pick(getattr(args, "backbone", None), recipe.backbone),
                   mixed_precision=args.mixed_precision, jit_compile=args.jit_compile,
                   cpu_devices=args.cpu_devices,
                   mirror_views=pick(args.mirror_views, recipe.mirror_views),
                   pooling=pick(args.pooling, recipe.pooling),
                   int8_grid=pick(args.int8_grid, recipe.int8_grid),
                   temperature=pick(args.temperature, recipe.temperature),
                   labels=getattr(args, "labels", "consensus"))
    options.update(over)
    return TrainConfig(**options)


def check_numbers(args: argparse.Namespace) -> None:
    if args.cpu_devices < 0:
        raise UserError("--cpu-devices must be >= 0")
    small = [n for n in ("steps", "batch", "eval_every") if getattr(args, n) is not None
             and getattr(args, n) < 1]
    if small or (args.image_size is not None and args.image_size < 16):
        raise UserError("--steps, --batch and --eval-every must be >= 1 and --image-size >= 16")
    if args.lr is not None and not args.lr > 0:
        raise UserError("--lr must be positive")


def run(args: argparse.Namespace) -> int:
    from device.core.vocab import parse_sign
    from trainer.evaluate import print_run_metrics
    from trainer.run import RunError
    from trainer.train import TrainError, WorkerResult, train

    check_numbers(args)
    try:
        sign = None if args.multi_sign else parse_sign(args.sign, model_only=True).value
    except ValueError as exc:
        raise UserError(f"--sign: {exc}") from exc
    cfg = config_from_args(args, out=args.out, sign=sign,
                           multi_sign=args.multi_sign, split=args.split,
                           val_fraction=args.val_fraction)
    try:
        metrics = train(cfg)
    except (TrainError, RunError) as exc:
        raise UserError(str(exc)) from exc
    if isinstance(metrics, WorkerResult):  # not the chief: the chief reports the run
        print(f"worker {metrics.worker} finished at step {metrics.steps_done}; "
              f"weights sha256 {metrics.weights_sha256}; the chief writes {cfg.out}")
        return 0
    print_run_metrics(metrics, cfg.backbone)
    print(f"run directory: {args.out}")
    return 0
