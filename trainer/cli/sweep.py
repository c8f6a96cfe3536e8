"""``python -m trainer sweep``: train every (sign, backbone) pair and write a report
shaped like the paper's Table 3, plus best.json (best backbone per sign)."""

from __future__ import annotations

import argparse

from device.core.cliutil import UserError
from trainer.cli.train import add_common, check_numbers, config_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common(parser, required=False)  # not with --report
    parser.set_defaults(quiet=True, recipe="paper")  # Table 3 is trained the paper's way
    parser.add_argument("--backbones", default="paper",
                        help="paper (the 14 of Table 3), mobile, all, or NAME,NAME,...")
    parser.add_argument("--signs", default="all", help="all or erythema,excoriation,...")
    parser.add_argument("--out", help="sweep directory: OUT/<sign>/<backbone>/ per pair")
    parser.add_argument("--shard", help="i/n: train only every n-th pair starting at i (0-based); "
                        "default: from SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT in a Slurm array")
    parser.add_argument("--report", metavar="SWEEPDIR",
                        help="train nothing: merge the finished pairs of every shard in SWEEPDIR "
                             "into report.md/.csv and best.json, and name the missing pairs")
    parser.add_argument("--metric", choices=["accuracy", "qwk", "macro_f1"], default="accuracy",
                        help="how best.json picks the best backbone per sign")


def run(args: argparse.Namespace) -> int:
    if args.report:
        return _report(args.report)
    if not args.data or not args.out:
        raise UserError("--data and --out are needed to train a sweep (or --report SWEEPDIR)")
    return _sweep(args)


def _report(sweep_dir: str) -> int:
    from pathlib import Path

    from trainer.report import REPORT_MD
    from trainer.sweep import SweepError, report_sweep

    try:
        best, missing = report_sweep(Path(sweep_dir))
    except SweepError as exc:
        raise UserError(str(exc)) from exc
    print(Path(sweep_dir, REPORT_MD).read_text(encoding="utf-8"))
    if missing:
        print(f"missing {len(missing)} pair(s): {', '.join(missing)}")
    return 0


def _sweep(args: argparse.Namespace) -> int:
    import os
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
        shard_from_env,
    )

    check_numbers(args)
    try:
        cfg = SweepConfig(data=args.data, out=args.out, backbones=resolve_backbone_names(args.backbones),
                          signs=resolve_signs(args.signs),
                          shard=parse_shard(args.shard) if args.shard
                          else shard_from_env(os.environ) or (0, 1),
                          metric=args.metric)
    except SweepError as exc:
        raise UserError(str(exc)) from exc
    cfg.base = config_from_args(args, out=args.out)
    best = run_sweep(cfg)
    print(Path(args.out, REPORT_MD).read_text(encoding="utf-8"))
    if best.get("synthetic"):
        print(f"NOTE: {SYNTHETIC_NOTE}")
    return 0
