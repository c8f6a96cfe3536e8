"""``python -m trainer evaluate RUNDIR``: re-evaluate a run on its held-out split from
the run directory alone (rewrites metrics.json, confusion.json, confusion.png)."""

from __future__ import annotations

import argparse

from device.cliutil import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("rundir", help="a training run directory (the --out of `trainer train`)")
    parser.add_argument("--data", help="data root, if it moved since training")


def run(args: argparse.Namespace) -> int:
    from trainer.data import DataError
    from trainer.evaluate import evaluate_run, print_run_metrics
    from trainer.run import METRICS_FILE, RunError, load_run, read_json

    try:
        r = load_run(args.rundir, data_root=args.data)
        old = read_json(r.dir / METRICS_FILE) if (r.dir / METRICS_FILE).exists() else {}
        keep = {k: old[k] for k in ("steps_done", "best_step", "stopped_early", "train_seconds",
                                    "params", "multi_sign_parent") if k in old}
        metrics = evaluate_run(r, extra=keep)
    except (RunError, DataError) as exc:
        raise UserError(str(exc)) from exc
    print_run_metrics(metrics, r.backbone)
    return 0
