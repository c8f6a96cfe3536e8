"""``python -m trainer evaluate RUNDIR``: re-evaluate a run on its held-out split from
the run directory alone (rewrites metrics.json, confusion.json, confusion.png).

``--data EXPORT`` naming a device export (``python -m device export-dataset``)
evaluates the run on the clinic's reviewed scans instead, with the staff's grades as
truth, beside the pack that graded them on the device (trainer/field_eval.py; written
to RUNDIR/field-eval/). Any other ``--data`` says where the run's data roots moved.
"""

from __future__ import annotations

import argparse

from device.core.cliutil import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("rundir", help="a training run directory (the --out of `trainer train`)")
    parser.add_argument("--data", action="append", metavar="DIR",
                        help="a device export to evaluate on; or the data root(s), in the order "
                        "trained on, if they moved since training")


def run(args: argparse.Namespace) -> int:
    from trainer.data import DataError
    from trainer.evaluate import evaluate_run, print_run_metrics
    from trainer.field_eval import evaluate_on_export, is_device_export, print_field_eval
    from trainer.run import METRICS_FILE, RunError, load_run, read_json

    try:
        if args.data and len(args.data) == 1 and is_device_export(args.data[0]):
            r = load_run(args.rundir)
            print_field_eval(evaluate_on_export(r, args.data[0]), r.backbone)
            return 0
        r = load_run(args.rundir, data_root=args.data)
        old = read_json(r.dir / METRICS_FILE) if (r.dir / METRICS_FILE).exists() else {}
        keep = {k: old[k] for k in ("steps_done", "best_step", "stopped_early", "train_seconds",
                                    "params", "multi_sign_parent") if k in old}
        metrics = evaluate_run(r, extra=keep)
    except (RunError, DataError, ValueError) as exc:
        raise UserError(str(exc)) from exc
    print_run_metrics(metrics, r.backbone)
    return 0
