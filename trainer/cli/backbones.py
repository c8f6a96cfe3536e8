"""``python -m trainer backbones [--group paper|mobile|all] [--pattern GLOB]``: list the
registered backbones as a table, from the registry's facts (nothing is built)."""

from __future__ import annotations

import argparse
import logging

from device.core.cliutil import UserError
from trainer.backbones import BACKBONE_GROUPS, get_backbone, list_backbones

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--group", choices=sorted(BACKBONE_GROUPS), default="all",
                        help="which backbones: the paper's Table 3, the mobile ones, or all "
                             "(default: all)")
    parser.add_argument("--pattern", default="*",
                        help="only names matching this shell pattern, e.g. 'resnet*'")


def format_table(names: list[str]) -> str:
    header = ("name", "family", "year", "min input", "default input", "parameters", "preprocess")
    rows = [header]
    for name in names:
        spec = get_backbone(name)
        rows.append((spec.name, spec.family, str(spec.year), f"{spec.min_input} px",
                     f"{spec.default_input} px", f"{spec.params / 1e6:.1f}M", spec.preprocess))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    right = {2, 3, 4, 5}
    lines = []
    for n, row in enumerate(rows):
        cells = [c.rjust(w) if i in right else c.ljust(w)
                 for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    wanted = set(list_backbones(args.pattern))
    names = [n for n in BACKBONE_GROUPS[args.group] if n in wanted]
    if not names:
        raise UserError(f"no backbone in group {args.group!r} matches {args.pattern!r}; "
                        f"registered: {', '.join(list_backbones())}")
    print(format_table(names))
    print(f"\n{len(names)} backbones; parameters: the headless backbone (no grade head).")
    return 0
