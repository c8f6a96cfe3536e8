"""``python -m device packs``: list installed model packs (current and previous marked).

Also holds the options the three pack commands share (flash, rollback, packs):
where the packs folder is, from ``--config`` (packs.dir, packs.public_key,
grading.threads) or ``--packs-dir``.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

from device.config import load_config_arg
from device.core.cliutil import UserError


@dataclass(frozen=True)
class PackLocation:
    packs_dir: Path
    public_key: Path | None
    threads: int


def add_location_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="device config (YAML): packs.dir, packs.public_key")
    parser.add_argument("--packs-dir", type=Path, help="packs folder (overrides the config's packs.dir)")


def resolve_location(args: argparse.Namespace) -> PackLocation:
    public_key, threads, packs_dir = None, 2, args.packs_dir
    if args.config is not None:
        config = load_config_arg(args.config)
        packs_dir = packs_dir or config.packs.dir
        public_key, threads = config.packs.public_key, config.grading.threads
    if getattr(args, "public_key", None) is not None:
        public_key = args.public_key
    if packs_dir is None:
        raise UserError("say where the packs live: --config FILE (packs.dir) or --packs-dir DIR")
    return PackLocation(Path(packs_dir).expanduser(), public_key, threads)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_location_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    from device.packs.install import list_packs

    where = resolve_location(args)
    packs = list_packs(where.packs_dir)
    if args.json:
        print(json.dumps([p.to_dict() for p in packs], indent=2))
        return 0
    if not packs:
        print(f"no packs installed in {where.packs_dir}; install one with `python -m device flash PACK`")
        return 0
    for pack in packs:
        mark = "current " if pack.current else "previous" if pack.previous else "        "
        print(f"{mark}  {pack.version or '?':<16} {pack.id:<32} installed {pack.installed or '?'}")
        for sign, model in pack.models.items():
            print(f"            {sign.value:<16} {model['backbone']} {model['quantization']} "
                  f"{model['input_size'][0]}x{model['input_size'][1]}")
        if pack.problem:
            print(f"            problem: {pack.problem}")
    return 0
