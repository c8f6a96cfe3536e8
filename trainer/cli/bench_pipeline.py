"""``python -m trainer bench-pipeline DIR``: the tf.data input pipeline's images/s, and
training fed by it against training on the same images already in memory."""

from __future__ import annotations

import argparse
from pathlib import Path

from device.core.cliutil import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", type=Path, help="data set to read")
    parser.add_argument("--sign", default="erythema")
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=30, help="timed training steps per figure")
    parser.add_argument("--backbone", default="mobilenet_v3_small")


def run(args: argparse.Namespace) -> int:
    from device.core.vocab import parse_sign
    from trainer.input_pipeline import bench

    if not args.data.is_dir():
        raise UserError(f"{args.data}: no such data folder")
    r = bench(args.data, parse_sign(args.sign, model_only=True), image_size=args.image_size,
              batch=args.batch, steps=args.steps, backbone=args.backbone)
    print(f"{r['n_images']} images at {r['image_size']} px, batch {r['batch']}, {r['backbone']}")
    print(f"pipeline alone, first pass (decode):  {r['pipeline_first_pass_img_s']:8.1f} images/s")
    print(f"pipeline alone, cached + augmented:   {r['pipeline_cached_img_s']:8.1f} images/s")
    print(f"training fed by the tf.data pipeline: {r['train_tfdata_img_s']:8.1f} images/s")
    print(f"training on the images in memory:     {r['train_in_memory_img_s']:8.1f} images/s")
    ratio = r["train_tfdata_img_s"] / r["train_in_memory_img_s"]
    print(f"pipeline/in-memory training ratio:    {ratio:8.2f}")
    return 0
