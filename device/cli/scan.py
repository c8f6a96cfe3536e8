"""``python -m device scan``: grade one image (or one camera frame) and print the
result as JSON. Exit 0 graded, 1 the quality check asked for a retake, 2 bad input."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from device.config import load_config_arg
from device.core.cliutil import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=None,
                        help="device config YAML (default: the packaged default config)")
    parser.add_argument("--image", type=Path, default=None,
                        help="image file to grade (default: take a frame from the camera)")
    parser.add_argument("--crop", choices=["guide", "auto", "box"], default=None,
                        help="crop mode (default: the config's crop.mode)")
    parser.add_argument("--box", default=None, metavar="X,Y,W,H",
                        help="crop box in pixels (implies --crop box)")
    parser.add_argument("--pack", type=Path, default=None,
                        help="use this extracted pack folder instead of the installed one")


def load_models(config, pack: Path | None):
    from device.grading.models import ModelSet, ModelSetError
    from device.packs.install import current_pack_dir

    pack_dir = pack or current_pack_dir(config.packs.dir)
    if pack_dir is None:
        raise UserError(f"no model pack is installed in {config.packs.dir}; install one with "
                        "python -m device flash PACK (or give --pack DIR)")
    try:
        return ModelSet.from_pack_dir(pack_dir, config.grading.threads)
    except ModelSetError as exc:
        raise UserError(str(exc)) from exc


def parse_box(text: str) -> tuple[float, float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 4:
        raise UserError(f"--box {text!r}: expected four numbers X,Y,W,H")
    return values  # type: ignore[return-value]


def run(args: argparse.Namespace) -> int:
    from device.cameras import CameraError, make_camera
    from device.config import CropMode
    from device.scan.pipeline import ScanError, Scanner, load_image_file

    config = load_config_arg(args.config)
    box = parse_box(args.box) if args.box else None
    mode = CropMode(args.crop) if args.crop else (CropMode.BOX if box else None)
    if mode is CropMode.BOX and box is None:
        raise UserError("--crop box needs --box X,Y,W,H")
    camera = None
    try:
        image = load_image_file(args.image) if args.image else None
        models = load_models(config, args.pack)
        camera = make_camera(config.camera) if image is None else None
        result = Scanner(config, camera, models).scan(image, box=box, mode=mode)
    except (ScanError, CameraError) as exc:
        raise UserError(str(exc)) from exc
    finally:
        if camera is not None:
            camera.close()
    print(json.dumps(result.to_dict(), indent=2))
    if not result.quality.ok:
        for reason in result.quality.reasons:
            print(f"retake: {reason}", file=sys.stderr)
        return 1
    return 0
