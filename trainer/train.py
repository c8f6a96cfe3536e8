"""Train one sign's classifier (or one shared backbone with a head per sign) into a
run directory (layout in trainer.run).

The optimizer, schedule, loss and augmentation come from the run's recipe
(trainer.recipe: ``mobile``, or ``paper``: SGD with momentum 0.9, learning rate 0.01,
at most 10,000 iterations). Every ``eval_every`` steps the held-out split is evaluated; the best
model so far is model.keras, and training stops after ``patience`` evaluations
without improvement. The resume state (weights + optimizer, step, best score,
wait) is written atomically to RUNDIR/ckpt after each evaluation, so the same
command continues a run that was interrupted (Ctrl-C or kill -9).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import device
from device.core.ceiling import LabelSource
from device.core.vocab import MODEL_SIGNS, Sign, parse_sign
from trainer.checkpoint import LAST_FILE, STATE_FILE, ResumeState, make_checkpointer, save_model
from trainer.model_setup import build_model, compile_model, snap_to_int8_grid
from trainer.recipe import parse_recipe
from trainer.run import (
    CKPT_DIR,
    CONFIG_FILE,
    HISTORY_FILE,
    LOGS_DIR,
    METRICS_FILE,
    MODEL_FILE,
    SPLIT_FILE,
    is_synthetic,
    load_run,
    read_json,
    write_json,
)
from trainer.strategy import (
    StrategyKind,
    StrategyPlan,
    build_before_fit,
    make_strategy,
    plan_strategy,
    synchronize_batch_norm,
    visible_gpus,
    weights_digest,
    write_dir,
)
from trainer.train_config import IDENTITY_DEFAULTS, IDENTITY_KEYS, TrainConfig, TrainError

log = logging.getLogger(__name__)

__all__ = ["TrainConfig", "TrainError", "WorkerResult", "train"]


def _load_data(cfg: TrainConfig, rundir: Path, signs: list[Sign], started: bool, wdir: Path):
    from trainer.data import FOLDERS, DataError, samples_for_sign
    from trainer.roots import describe_roots, load_roots
    from trainer.split import apply_split, load_split, make_split, save_split

    where = describe_roots(cfg.data)
    try:
        report = load_roots(cfg.data)
        if len(report.roots) > 1:
            from trainer.roots import format_shares

            log.info("%s", format_shares(report))
        if cfg.multi_sign and report.layout == FOLDERS:
            raise TrainError(f"{where}: --multi-sign needs the manifest layout (manifest.csv "
                             "grading several signs per image), found the folder layout")
        pool = report.samples if cfg.multi_sign else samples_for_sign(report.samples, signs[0])
        if not pool:
            raise TrainError(f"{where}: no images graded for {signs[0].value}")
        split_path = rundir / SPLIT_FILE
        if cfg.split:
            split = load_split(Path(cfg.split))
            if started and load_split(split_path).sha256() != split.sha256():
                raise TrainError(f"{rundir} was trained on another split than {cfg.split}; "
                                 "use a new --out for a new split")
        elif started and split_path.exists():
            split = load_split(split_path)
        else:
            split = make_split(pool, None if cfg.multi_sign else signs[0], seed=cfg.seed,
                               val_fraction=cfg.val_fraction, root=report.key_root)
        save_split(split, wdir / SPLIT_FILE)
        train, val = apply_split(report, split)
    except DataError as exc:
        raise TrainError(str(exc)) from exc
    if not cfg.multi_sign:
        train, val = samples_for_sign(train, signs[0]), samples_for_sign(val, signs[0])
    if not train or not val:
        raise TrainError(f"{where}: the split leaves {len(train)} training and {len(val)} "
                         "held-out images; more images are needed")
    if cfg.labels is LabelSource.RATERS and not any(s.rater_grades for s in train):
        raise TrainError(f"{where}: --labels raters needs each rater's grades (the manifest's "
                         "raters and <sign>_by_rater columns, written by `trainer label export` "
                         "or `trainer synth --raters K`); this data has the consensus only: "
                         "train with --labels consensus")
    return train, val


def _resolve(cfg: TrainConfig, rundir: Path, signs: list[Sign], plan: StrategyPlan,
             started: bool) -> dict:
    from trainer.roots import as_roots

    roots = as_roots(cfg.data)
    resolved = asdict(cfg)
    resolved.update(
        data=str(roots[0].resolve()), data_roots=[str(r.resolve()) for r in roots],
        out=str(rundir), split=SPLIT_FILE,
        split_source=str(Path(cfg.split).resolve()) if cfg.split else None,
        sign=None if cfg.multi_sign else signs[0].value, signs=[s.value for s in signs],
        # Any synthetic root makes the held-out figures partly synthetic: say so.
        synthetic=any(is_synthetic(r) for r in roots),
        optimizer=parse_recipe(cfg.recipe).optimizer.value, strategy=plan.kind.value,
        mixed_precision=plan.mixed_precision, software_version=device.__version__)
    old_path = rundir / CONFIG_FILE
    if started and old_path.exists():  # a run with a checkpoint: only the same run continues
        old = read_json(old_path)
        # A run from before a key existed holds that key's default (mirror_views: False).
        clash = [k for k in IDENTITY_KEYS
                 if old.get(k, IDENTITY_DEFAULTS.get(k)) != resolved.get(k)]
        if clash:
            raise TrainError(f"{rundir} already holds a run with different "
                             f"{', '.join(f'{k}={old.get(k)!r}' for k in clash)}; use another --out "
                             "or the same arguments to resume it")
        resolved["created"] = old.get("created")
    resolved["created"] = resolved.get("created") or dt.datetime.now(dt.timezone.utc).isoformat()
    return resolved


@dataclass(frozen=True)
class WorkerResult:
    """What a non-chief worker of a cluster returns: the chief evaluates and reports."""

    worker: int
    steps_done: int
    weights_sha256: str


def train(cfg: TrainConfig) -> dict | WorkerResult:
    """Train (or resume, or report an already finished run); returns metrics.json's dict
    (on a non-chief worker of a cluster, a WorkerResult)."""
    import keras

    rundir = Path(cfg.out).resolve()
    signs = list(MODEL_SIGNS) if cfg.multi_sign else [parse_sign(cfg.sign or "", model_only=True)]
    plan = plan_strategy(visible_gpus(), os.environ.get("TF_CONFIG"), mixed_precision=cfg.mixed_precision,
                         jit_compile=cfg.jit_compile, cpu_devices=cfg.cpu_devices)
    state = ResumeState.load(rundir / CKPT_DIR / STATE_FILE)
    # Before the first checkpoint nothing is worth keeping: a start that failed (bad
    # backbone, bad size) leaves no config or split that binds the next attempt.
    resolved = _resolve(cfg, rundir, signs, plan, started=state is not None)
    if state and state.done and (rundir / METRICS_FILE).exists():
        log.info("%s: already finished at step %d; delete it to train again", rundir, state.step)
        return read_json(rundir / METRICS_FILE)
    # Every worker reads the run directory (shared by all workers of a cluster, so a
    # restarted cluster resumes from the chief's checkpoint); only the chief writes it.
    # Made only now: a worker of a finished run leaves no empty temporary folder behind.
    wdir = write_dir(rundir, plan)
    (wdir / CKPT_DIR).mkdir(parents=True, exist_ok=True)
    train_samples, val_samples = _load_data(cfg, rundir, signs, started=state is not None, wdir=wdir)
    strategy = make_strategy(plan)
    resolved["replicas"] = int(strategy.num_replicas_in_sync)
    write_json(wdir / CONFIG_FILE, resolved)
    if plan.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    epochs = max(1, math.ceil(cfg.steps / max(1, min(cfg.eval_every, cfg.steps))))
    state, resuming = _resume_state(rundir, state, math.ceil(cfg.steps / epochs))
    keras.utils.set_random_seed(cfg.seed + state.epoch)
    with strategy.scope():
        if resuming:
            model = _load_checkpoint(rundir, state)
        else:
            model = build_model(cfg, signs)
            compile_model(model, cfg, signs, jit_compile=plan.jit_compile)
    train_ds, val_ds = _datasets(cfg, signs, train_samples, val_samples, state)
    if state.epoch < epochs and not state.stopped_early:
        if plan.kind is not StrategyKind.DEFAULT:
            log.info("batch norm over the global batch in %d layers", synchronize_batch_norm(model))
            build_before_fit(model, val_ds)
        model.fit(train_ds, validation_data=val_ds, epochs=epochs, initial_epoch=state.epoch,
                  steps_per_epoch=state.steps_per_epoch, callbacks=_callbacks(wdir, state, cfg),
                  verbose=cfg.verbose, shuffle=False)  # the dataset shuffles itself
    keras.mixed_precision.set_global_policy("float32")
    state.weights_sha256 = weights_digest(model)
    log.info("training ended at step %d; weights sha256 %s", state.step, state.weights_sha256)
    if not plan.is_chief:
        return _finish_worker(plan, wdir, state)
    return _finish_chief(cfg, rundir, state, resolved)


def _resume_state(rundir: Path, state: ResumeState | None,
                  steps_per_epoch: int) -> tuple[ResumeState, bool]:
    """The state to continue from and whether a checkpoint is there to resume."""
    resuming = state is not None and (rundir / CKPT_DIR / LAST_FILE).exists()
    if state is None or not resuming:
        return ResumeState(steps_per_epoch=steps_per_epoch), False
    if state.steps_per_epoch != steps_per_epoch:
        raise TrainError(f"{rundir}: the run was started with {state.steps_per_epoch} steps "
                         f"per evaluation, now {steps_per_epoch}; keep --steps and --eval-every "
                         "as they were")
    return state, True


def _load_checkpoint(rundir: Path, state: ResumeState):
    """The checkpointed model with its optimizer (call inside the strategy's scope)."""
    import keras

    from trainer.model import CUSTOM_OBJECTS

    log.info("resuming %s from step %d (best step %d)", rundir, state.step, state.best_step)
    model = keras.models.load_model(rundir / CKPT_DIR / LAST_FILE, custom_objects=CUSTOM_OBJECTS)
    # .numpy(): under a strategy the step counter is a MirroredVariable, no int()
    if int(model.optimizer.iterations.numpy()) != state.step:
        log.warning("optimizer state is at step %d, run state at %d",
                    int(model.optimizer.iterations.numpy()), state.step)
    return model


def _callbacks(wdir: Path, state: ResumeState, cfg: TrainConfig) -> list:
    import keras

    callbacks = [
        make_checkpointer(wdir, state, cfg.patience),
        keras.callbacks.CSVLogger(str(wdir / HISTORY_FILE), append=True),
    ]
    if _have_tensorboard():
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(wdir / LOGS_DIR), write_graph=False))
    else:
        log.warning("tensorboard is not installed: no %s/ logs (pip install tensorboard)", LOGS_DIR)
    return callbacks


def _finish_chief(cfg: TrainConfig, rundir: Path, state: ResumeState, resolved: dict) -> dict:
    """Evaluate the best model on the held-out split and mark the run done."""
    from trainer.evaluate import evaluate_run, predict_samples

    run = load_run(rundir)
    best = run.load_model()
    # The run's model is the rounded and tempered one: every figure below is of it.
    if cfg.int8_grid:
        snap_to_int8_grid(best)
    temperatures = _fit_temperatures(run, best, cfg) if cfg.temperature else None
    if cfg.int8_grid or cfg.temperature:
        save_model(best, rundir / MODEL_FILE)
    extra = {"steps_done": state.step, "best_step": state.best_step,
             "stopped_early": state.stopped_early, "train_seconds": round(state.train_seconds, 1),
             "images_per_second": round(state.step * cfg.batch / max(state.train_seconds, 1e-9), 1),
             "params": int(best.count_params())}
    if temperatures is not None:
        extra["temperatures"] = temperatures
    probs = predict_samples(best, run.val_samples(), run.image_size)  # every head in one pass
    metrics = evaluate_run(run, model=best, extra=extra, probs=probs)
    if cfg.multi_sign:
        _write_per_sign_runs(run, best, resolved, extra, probs)
    state.done = True
    state.save(rundir / CKPT_DIR / STATE_FILE)
    return metrics


#: Training crops the temperatures are fitted on (a seeded sample when there are more).
TEMPERATURE_IMAGES = 1000


def _fit_temperatures(run, best, cfg: TrainConfig) -> dict[str, float]:
    """fit_temperatures on a seeded sample of the run's training crops (never held-out
    ones: those measure the result)."""
    import numpy as np

    from trainer.input_pipeline import MISSING
    from trainer.model_setup import fit_temperatures
    from trainer.run import load_images

    train = run.train_samples()
    pick = np.random.default_rng(cfg.seed).permutation(len(train))[:TEMPERATURE_IMAGES]
    sample = [train[i] for i in sorted(pick)]
    heads = {s.value: s for s in run.signs} if cfg.multi_sign else {"grades": run.signs[0]}
    images = load_images(sample, run.image_size)
    if cfg.labels is LabelSource.RATERS:
        # Fitted to every rater's grade (the images repeated once per rater slot), so the
        # temperature matches the raters' spread rather than sharpening to one grade.
        from trainer.input_pipeline import rater_label_arrays

        grades = rater_label_arrays(sample, list(heads.values()))  # (N, S, R)
        r = grades.shape[2]
        labels = {name: grades[:, j, :].T.reshape(-1).tolist() for j, name in enumerate(heads)}
        return fit_temperatures(best, np.concatenate([images] * r), labels)
    labels = {name: [MISSING if s.grades.get(sign) is None else int(s.grades[sign]) for s in sample]
              for name, sign in heads.items()}
    return fit_temperatures(best, images, labels)


def _finish_worker(plan: StrategyPlan, wdir: Path, state: ResumeState) -> WorkerResult:
    """A non-chief worker's end: its copies are not kept; the chief evaluates."""
    import shutil

    shutil.rmtree(wdir, ignore_errors=True)
    log.info("worker %d of %d finished at step %d; the chief writes the run",
             plan.worker.index, plan.worker.count, state.step)
    return WorkerResult(worker=plan.worker.index, steps_done=state.step,
                        weights_sha256=state.weights_sha256 or "")


def _datasets(cfg: TrainConfig, signs: list[Sign], train_samples, val_samples, state: ResumeState):
    """The training and held-out tf.data datasets (class weights, augmentation, seed)."""
    from trainer.input_pipeline import (
        NO_AUGMENT,
        class_weights,
        label_arrays,
        make_dataset,
        soft_label_arrays,
    )

    labels = label_arrays(train_samples, signs)
    # --labels raters: the raters' distribution in training, one-hot consensus held out
    # (the loss is then categorical cross-entropy, trainer.model.loss_for_head).
    soft = cfg.labels is LabelSource.RATERS
    weights = {s: class_weights(labels[:, j]) if cfg.class_weights else None
               for j, s in enumerate(signs)}
    weights = {s: w for s, w in weights.items() if w is not None} or None
    train_ds = make_dataset(train_samples, signs, cfg.image_size, cfg.batch, training=True,
                            seed=cfg.seed + 1000 * state.epoch, weights=weights,
                            multi_output=cfg.multi_sign,
                            soft_labels=soft_label_arrays(train_samples, signs) if soft else None,
                            augment=parse_recipe(cfg.recipe).augment if cfg.augment else NO_AUGMENT)
    val_ds = make_dataset(val_samples, signs, cfg.image_size, cfg.batch, training=False,
                          multi_output=cfg.multi_sign,
                          soft_labels=soft_label_arrays(val_samples, signs, raters=False)
                          if soft else None)
    return train_ds, val_ds


def _write_per_sign_runs(run, best, resolved: dict, extra: dict, probs: dict) -> None:
    """One ordinary single-sign run directory per sign (RUNDIR/<sign>/) for convert.
    ``probs``: the multi-sign model's held-out predictions, one array per sign (a sign's
    model is its head on the shared backbone, so they are its predictions too)."""
    import shutil

    from trainer.evaluate import evaluate_run
    from trainer.model import split_multi_sign

    for sign in run.signs:
        sub = run.dir / sign.value
        sub.mkdir(exist_ok=True)
        single = split_multi_sign(best, sign)
        save_model(single, sub / MODEL_FILE)
        shutil.copyfile(run.dir / SPLIT_FILE, sub / SPLIT_FILE)
        write_json(sub / CONFIG_FILE, dict(resolved, sign=sign.value, signs=[sign.value],
                                           multi_sign=False, out=str(sub), parent=str(run.dir)))
        evaluate_run(load_run(sub, data_root=run.data_root), model=single,
                     probs=probs[sign.value],
                     extra=dict(extra, params=int(single.count_params()), multi_sign_parent=str(run.dir)))


def _have_tensorboard() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorboard") is not None
