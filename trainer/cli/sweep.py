"""``python -m trainer sweep``: train every (sign, backbone) pair and write a report
shaped like the paper's Table 3, plus best.json (best backbone per sign)."""

from __future__ import annotations

import argparse

from device.cliutil import UserError
from trainer.cli.train import add_common, check_numbers, config_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common(parser)
    parser.set_defaults(quiet=True)
    parser.add_argument("--backbones", default="paper",
                        help="paper (the 14 of Table 3), mobile, all, or NAME,NAME,...")
    parser.add_argument("--signs", default="all", help="all or erythema,excoriation,...")
    parser.add_argument("--out", required=True, help="sweep directory: OUT/<sign>/<backbone>/ per pair")
    parser.add_argument("--shard", help="i/n: train only every n-th pair starting at i (0-based)")
    parser.add_argument("--metric", choices=["accuracy", "qwk", "macro_f1"], default="accuracy",
                        help="how best.json picks the best backbone per sign")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from trainer.evaluate import SYNTHETIC_NOTE
    from trainer.report import REPORT_MD
    from trainer.sweep import (
        SweepConfig,
        SweepError,
        parse_shard,
        resolve_backbone_names,
        resolve_signs,
        run_sweep,
    )

    check_numbers(args)
    try:
        cfg = SweepConfig(data=args.data, out=args.out, backbones=resolve_backbone_names(args.backbones),
                          signs=resolve_signs(args.signs), shard=parse_shard(args.shard),
                          metric=args.metric)
    except SweepError as exc:
        raise UserError(str(exc)) from exc
    cfg.base = config_from_args(args, out=args.out)
    best = run_sweep(cfg)
    print(Path(args.out, REPORT_MD).read_text(encoding="utf-8"))
    if best.get("synthetic"):
        print(f"NOTE: {SYNTHETIC_NOTE}")
    return 0
