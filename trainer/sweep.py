"""Train every (sign, backbone) pair into SWEEPDIR/<sign>/<backbone>/ and write the
Table-3 style report (trainer.report).

A pair whose metrics.json exists is done and skipped, so a rerun finishes an
interrupted sweep (and a half-trained pair resumes from its checkpoint). ``shard``
(i, n) takes every n-th pair starting at i, so n machines can share one sweep
directory (or merge theirs) and any of them can rewrite the report; in a Slurm job
array the shard comes from the array variables. ``report_sweep`` merges whatever
the shards finished and names the pairs still missing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from device.core.vocab import MODEL_SIGNS, Sign, parse_sign
from trainer.run import METRICS_FILE, read_json, write_json

log = logging.getLogger(__name__)

PLAN_FILE = "sweep.json"


class SweepError(ValueError):
    """Bad sweep arguments (unknown backbone or sign, malformed shard)."""


@dataclass
class SweepConfig:
    data: str | list[str]  # one data root or several (trainer.roots)
    out: str
    backbones: list[str]
    signs: list[Sign] = field(default_factory=lambda: list(MODEL_SIGNS))
    shard: tuple[int, int] = (0, 1)
    metric: str = "accuracy"
    base: object = None  # a trainer.train.TrainConfig holding the shared training settings


def parse_shard(text: str | None) -> tuple[int, int]:
    """"i/n" with 0 <= i < n (0-based: the first of two machines is 0/2)."""
    if not text:
        return (0, 1)
    try:
        i, n = (int(p) for p in text.split("/"))
    except ValueError as exc:
        raise SweepError(f"--shard {text!r}: expected i/n, e.g. 0/2 and 1/2 for two machines") from exc
    if n < 1 or not 0 <= i < n:
        raise SweepError(f"--shard {text!r}: need 0 <= i < n (0-based), e.g. 0/2 and 1/2")
    return (i, n)


def shard_from_env(environ: Mapping[str, str]) -> tuple[int, int] | None:
    """The shard of a Slurm job array task (SLURM_ARRAY_TASK_ID among
    SLURM_ARRAY_TASK_COUNT tasks, counted from SLURM_ARRAY_TASK_MIN), or None outside
    an array. ``--array=0-41`` gives 42 shards of one pair each for the paper's table."""
    task, count = environ.get("SLURM_ARRAY_TASK_ID"), environ.get("SLURM_ARRAY_TASK_COUNT")
    if task is None or count is None:
        return None
    try:
        i = int(task) - int(environ.get("SLURM_ARRAY_TASK_MIN", "0"))
        n = int(count)
    except ValueError as exc:
        raise SweepError(f"SLURM_ARRAY_TASK_ID={task!r} / SLURM_ARRAY_TASK_COUNT={count!r} are "
                         "not whole numbers") from exc
    if n < 1 or not 0 <= i < n:
        raise SweepError(f"Slurm array task {task} is not one of {count} tasks; submit a "
                         "contiguous --array (e.g. 0-41) or give --shard i/n")
    return (i, n)


def write_plan(cfg: SweepConfig) -> None:
    """SWEEPDIR/sweep.json: which pairs make the sweep, so ``--report`` can name the
    missing ones after the shards finish. Every shard of a sweep writes the same
    content; a later sweep into the same folder (another metric, more backbones)
    replaces it."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    plan = {"signs": [s.value for s in cfg.signs], "backbones": cfg.backbones, "metric": cfg.metric}
    write_json(out / PLAN_FILE, plan)


def report_sweep(sweep_dir: Path) -> tuple[dict, list[str]]:
    """Merge every shard's finished pairs into report.md/.csv and best.json; returns
    (best.json's dict, the pairs not finished)."""
    from trainer.report import missing_pairs, write_report

    path = Path(sweep_dir) / PLAN_FILE
    if not path.exists():
        raise SweepError(f"{sweep_dir}: no {PLAN_FILE}; is this a sweep directory written by "
                         "`python -m trainer sweep --out`?")
    plan = read_json(path)
    signs = [parse_sign(s, model_only=True) for s in plan["signs"]]
    best = write_report(Path(sweep_dir), signs, plan["backbones"], metric=plan["metric"])
    return best, missing_pairs(Path(sweep_dir), signs, plan["backbones"])


def resolve_signs(text: str) -> list[Sign]:
    if text.strip().lower() == "all":
        return list(MODEL_SIGNS)
    try:
        return [parse_sign(p, model_only=True) for p in text.split(",") if p.strip()]
    except ValueError as exc:
        raise SweepError(f"--signs: {exc}") from exc


def resolve_backbone_names(text: str) -> list[str]:
    from trainer.backbones import resolve_backbones

    try:
        names = resolve_backbones(text.strip())
    except KeyError as exc:
        raise SweepError(f"--backbones: {exc.args[0] if exc.args else exc}") from exc
    if not names:
        raise SweepError("--backbones: no backbone named; give paper, mobile, all or NAME,NAME")
    return names


def all_pairs(signs: list[Sign], backbones: list[str]) -> list[tuple[Sign, str]]:
    # backbone-major: consecutive pairs share a backbone, so shards balance model sizes
    return [(s, b) for b in backbones for s in signs]


def shard_pairs(pairs: list, shard: tuple[int, int]) -> list:
    i, n = shard
    return pairs[i::n]


def run_sweep(cfg: SweepConfig, *, train_fn=None) -> dict:
    """Train this shard's unfinished pairs, then write the report over everything found
    in the sweep directory. Returns best.json's dict. ``train_fn`` is for tests."""
    from trainer.report import write_report
    from trainer.train import TrainError, train

    train_fn = train_fn or train
    out = Path(cfg.out)
    write_plan(cfg)
    mine = shard_pairs(all_pairs(cfg.signs, cfg.backbones), cfg.shard)
    failures: dict[str, str] = {}
    for k, (sign, backbone) in enumerate(mine, 1):
        rundir = out / sign.value / backbone
        if (rundir / METRICS_FILE).exists():
            log.info("[%d/%d] %s / %s: done, skipped", k, len(mine), sign.value, backbone)
            continue
        size = _size_for(backbone, cfg.base.image_size)
        log.info("[%d/%d] %s / %s at %d px", k, len(mine), sign.value, backbone, size)
        t0 = time.perf_counter()
        try:
            train_fn(replace(cfg.base, sign=sign.value, backbone=backbone, out=str(rundir),
                             image_size=size, multi_sign=False))
        except TrainError as exc:
            failures[f"{sign.value}/{backbone}"] = str(exc)
            log.error("%s / %s failed: %s", sign.value, backbone, exc)
        finally:
            _clear_session()
        log.info("%s / %s took %.0f s", sign.value, backbone, time.perf_counter() - t0)
    return write_report(out, cfg.signs, cfg.backbones, metric=cfg.metric, failures=failures)


def _size_for(backbone: str, requested: int) -> int:
    from trainer.backbones import get_backbone

    spec = get_backbone(backbone)
    if requested < spec.min_input:
        log.warning("%s needs at least %d px; training it at %d instead of %d",
                    backbone, spec.min_input, spec.min_input, requested)
        return spec.min_input
    return requested


def _clear_session() -> None:
    import sys

    if "keras" in sys.modules:  # free the finished pair's graphs before the next one
        sys.modules["keras"].backend.clear_session()
