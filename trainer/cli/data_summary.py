"""``python -m trainer data-summary DIR [DIR ...] [--split FILE]``: counts per sign x grade
x split, and each root's share when several roots are read together.

Without ``--split`` the default split is made in memory (seed 0, 30 % validation, per sign).
With ``--split FILE``: an existing file is read and applied; a missing one is made (from
``--seed``/``--val-fraction``/``--sign``) and written there.
"""

from __future__ import annotations

import argparse
import logging
from collections import Counter
from pathlib import Path

from device.core.cliutil import UserError
from device.core.vocab import MODEL_SIGNS, NUM_GRADES, Grade, Sign, parse_sign

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", type=Path, metavar="DIR", nargs="+",
                        help="data set root (either layout); several are read as one set")
    parser.add_argument("--split", type=Path, metavar="FILE",
                        help="split JSON to apply (made and written there if it does not exist)")
    parser.add_argument("--sign", default=None,
                        help="sign for a new split file (default: all signs, stratified jointly)")
    parser.add_argument("--seed", type=int, default=0, help="seed for a new split (default 0)")
    parser.add_argument("--val-fraction", type=float, default=0.3,
                        help="validation share for a new split (default 0.3)")
    parser.add_argument("--no-check-images", action="store_true",
                        help="do not decode every image (faster; bad files then go unnoticed)")


def run(args: argparse.Namespace) -> int:
    from trainer.data import DataError, samples_for_sign
    from trainer.roots import format_shares, load_roots
    from trainer.split import apply_split, load_split, make_split, save_split

    try:
        sign = parse_sign(args.sign, model_only=True) if args.sign else None
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if not 0.0 < args.val_fraction < 1.0:
        raise UserError(f"--val-fraction must lie between 0 and 1, got {args.val_fraction}")
    try:
        report = load_roots(args.data, check_images=not args.no_check_images)
        print(report.summary())
        if len(report.roots) > 1:
            print(format_shares(report))
        print()
        if args.split and args.split.exists():
            split = load_split(args.split)
            sides = apply_split(report, split)
            splits = {s: sides for s in _signs_of(split.sign)}
            print(f"split file {args.split} (seed {split.seed}, sha256 {split.sha256()[:12]})")
        elif args.split:
            split = make_split(report.samples, sign, seed=args.seed,
                               val_fraction=args.val_fraction, root=report.key_root)
            save_split(split, args.split)
            sides = apply_split(report, split)
            splits = {s: sides for s in _signs_of(sign)}
            print(f"wrote a new split to {args.split} (seed {args.seed})")
        else:
            splits = {}
            for s in MODEL_SIGNS:
                pool = samples_for_sign(report.samples, s)
                if pool:
                    one = make_split(pool, s, seed=args.seed, val_fraction=args.val_fraction,
                                     root=report.key_root)
                    splits[s] = apply_split(report, one)
            print(f"default split (seed {args.seed}, {args.val_fraction:.0%} validation, per sign;"
                  " not saved: pass --split FILE to keep one)")
    except DataError as exc:
        raise UserError(str(exc)) from None
    print(format_table(splits))
    return 0


def _signs_of(sign: Sign | None) -> tuple[Sign, ...]:
    return (sign,) if sign is not None else MODEL_SIGNS


def format_table(splits) -> str:
    """One row per sign x grade: train, val, total and the val share."""
    head = f"{'sign':<16}{'grade':<12}{'train':>7}{'val':>7}{'total':>7}{'val %':>8}"
    lines = [head, "-" * len(head)]
    for sign, (train, val) in splits.items():
        n_tr = Counter(s.grades[sign] for s in train if sign in s.grades)
        n_va = Counter(s.grades[sign] for s in val if sign in s.grades)
        for g in range(NUM_GRADES):
            a, b = n_tr.get(g, 0), n_va.get(g, 0)
            share = f"{100 * b / (a + b):.1f}" if a + b else "-"
            lines.append(f"{sign.value:<16}{f'{g} {Grade(g).label}':<12}{a:>7}{b:>7}{a + b:>7}"
                         f"{share:>8}")
        a, b = sum(n_tr.values()), sum(n_va.values())
        lines.append(f"{sign.value:<16}{'all':<12}{a:>7}{b:>7}{a + b:>7}"
                     f"{(f'{100 * b / (a + b):.1f}' if a + b else '-'):>8}")
    return "\n".join(lines)
