"""``python -m device bench``: time each scan stage on the installed pack."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from device.cli.scan import load_models
from device.config import load_config_arg
from device.core.cliutil import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=None,
                        help="device config YAML (default: the packaged default config)")
    parser.add_argument("--n", type=int, default=50, help="number of timed scans (default 50)")
    parser.add_argument("--image", type=Path, default=None,
                        help="scan this image each time (default: frames from the camera)")
    parser.add_argument("--pack", type=Path, default=None,
                        help="use this extracted pack folder instead of the installed one")
    parser.add_argument("--threads", type=int, default=None,
                        help="interpreter threads (default: the config's grading.threads)")
    parser.add_argument("--crop", choices=["guide", "auto"], default=None,
                        help="crop mode (default: the config's crop.mode)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args: argparse.Namespace) -> int:
    from device.cameras import CameraError, make_camera
    from device.config import CropMode
    from device.scan.pipeline import ScanError, Scanner, load_image_file
    from device.tools.bench import format_bench, run_bench

    if args.n < 1:
        raise UserError("--n must be at least 1")
    config = load_config_arg(args.config)
    if args.threads:
        config.grading.threads = args.threads
    if args.crop:
        config.crop.mode = CropMode(args.crop)
    start = time.perf_counter()
    models = load_models(config, args.pack)
    load_ms = (time.perf_counter() - start) * 1000.0
    camera = make_camera(config.camera)
    try:
        image = load_image_file(args.image) if args.image else None
        scanner = Scanner(config, camera, models)
        start = time.perf_counter()
        scanner.scan(image)
        first_ms = (time.perf_counter() - start) * 1000.0
        report = run_bench(scanner, args.n, image=image)
    except (ScanError, CameraError) as exc:
        raise UserError(str(exc)) from exc
    finally:
        camera.close()
    report["startup_ms"] = {"load_models": load_ms, "first_scan": first_ms}
    print(json.dumps(report, indent=2) if args.json else format_bench(report))
    return 0
