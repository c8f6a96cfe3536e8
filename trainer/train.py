"""Train one sign's classifier (or one shared backbone with a head per sign) into a
run directory (layout in trainer.run).

Paper defaults: SGD with momentum 0.9, learning rate 0.01, at most 10,000
iterations. Every ``eval_every`` steps the held-out split is evaluated; the best
model so far is model.keras, and training stops after ``patience`` evaluations
without improvement. The resume state (weights + optimizer, step, best score,
wait) is written atomically to RUNDIR/ckpt after each evaluation, so the same
command continues a run that was interrupted (Ctrl-C or kill -9).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import device
from device.atomic import atomic_path
from device.vocab import MODEL_SIGNS, Sign, parse_sign
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

log = logging.getLogger(__name__)

STATE_FILE = "state.json"
LAST_FILE = "last.keras"
#: Keys that must match for the same command to continue an existing run.
IDENTITY_KEYS = ("sign", "backbone", "image_size", "head", "multi_sign")


class TrainError(ValueError):
    """Bad training input a person can fix (wrong layout, clashing run directory...)."""


@dataclass(frozen=True)
class StrategyPlan:
    kind: str  # "default" | "mirrored" | "multi_worker"
    mixed_precision: bool
    n_gpus: int


def plan_strategy(gpus: Sequence, tf_config: str | None, *,
                  mixed_precision: bool | None = None) -> StrategyPlan:
    """Which distribution strategy and precision to use, from the visible GPUs and the
    TF_CONFIG environment variable (pure: tests hand in fakes).

    TF_CONFIG set -> MultiWorkerMirroredStrategy; any GPU -> MirroredStrategy over
    all of them; otherwise the default (CPU) strategy. Mixed float16 only on GPUs
    (on CPU it is slower and numerically worse)."""
    n = len(gpus)
    if tf_config and tf_config.strip():
        try:
            cluster = json.loads(tf_config).get("cluster", {})
        except (json.JSONDecodeError, AttributeError) as exc:
            raise TrainError(f"TF_CONFIG is not valid JSON ({exc}); fix or unset it") from exc
        if not cluster.get("worker") and not cluster.get("chief"):
            raise TrainError("TF_CONFIG has no cluster.worker list; fix or unset it")
        kind = "multi_worker"
    elif n >= 1:
        kind = "mirrored"
    else:
        kind = "default"
    mp = (n >= 1) if mixed_precision is None else bool(mixed_precision and n >= 1)
    return StrategyPlan(kind=kind, mixed_precision=mp, n_gpus=n)


def make_strategy(plan: StrategyPlan):
    import tensorflow as tf

    if plan.kind == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if plan.kind == "mirrored":
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


@dataclass
class TrainConfig:
    data: str | list[str]  # one data root, or several read together (trainer.roots)
    out: str
    sign: str | None = Sign.ERYTHEMA.value  # None with multi_sign
    backbone: str = "resnet101_v1"
    image_size: int = 224
    steps: int = 10_000
    lr: float = 0.01
    momentum: float = 0.9
    batch: int = 32
    weights: str = "none"  # none | imagenet | PATH (.weights.h5 or a .keras to copy from)
    head: str = "softmax"
    multi_sign: bool = False
    seed: int = 0
    split: str | None = None  # reuse this split file instead of making one
    val_fraction: float = 0.3
    patience: int = 10  # evaluations without improvement before stopping
    eval_every: int = 200
    augment: bool = True
    class_weights: bool = True
    mixed_precision: bool | None = None  # None: on when a GPU is used
    verbose: int = 1


def _atomic_save(model, path: Path) -> None:
    with atomic_path(path) as tmp:  # the temp name keeps the .keras suffix Keras insists on
        model.save(tmp)


def _score(logs: dict) -> tuple[float, float]:
    """(mean validation accuracy over outputs, -val_loss): higher is better."""
    accs = [float(v) for k, v in logs.items() if k.startswith("val_") and k.endswith("accuracy")]
    return (sum(accs) / len(accs) if accs else 0.0, -float(logs.get("val_loss", math.inf)))


def _checkpointer(rundir: Path, state: dict, steps_per_epoch: int, patience: int):
    import keras

    class Checkpointer(keras.callbacks.Callback):
        """Best model + resume state after each evaluation (runs before CSVLogger)."""

        def on_train_begin(self, logs=None):
            self._t = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            logs = logs if logs is not None else {}
            step = (epoch + 1) * steps_per_epoch
            logs["step"] = step
            score = _score(logs)
            if state["best"] is None or score > tuple(state["best"]):
                _atomic_save(self.model, rundir / MODEL_FILE)
                state.update(best=list(score), best_step=step, wait=0)
            else:
                state["wait"] += 1
            now = time.perf_counter()
            state["train_seconds"] += now - self._t
            self._t = now
            state.update(epoch=epoch + 1, step=step)
            if state["wait"] >= patience:
                self.model.stop_training = True
                state["stopped_early"] = True
            _atomic_save(self.model, rundir / CKPT_DIR / LAST_FILE)
            write_json(rundir / CKPT_DIR / STATE_FILE, state)

    return Checkpointer()


def _load_data(cfg: TrainConfig, rundir: Path, signs: list[Sign], started: bool):
    from trainer.data import FOLDERS, DataError, samples_for_sign
    from trainer.roots import load_roots
    from trainer.split import apply_split, load_split, make_split, save_split

    try:
        report = load_roots(cfg.data)
        if len(report.roots) > 1:
            from trainer.roots import format_shares

            log.info("%s", format_shares(report))
        if cfg.multi_sign and report.layout == FOLDERS:
            raise TrainError(f"{cfg.data}: --multi-sign needs the manifest layout (manifest.csv "
                             "grading several signs per image), found the folder layout")
        pool = report.samples if cfg.multi_sign else samples_for_sign(report.samples, signs[0])
        if not pool:
            raise TrainError(f"{cfg.data}: no images graded for {signs[0].value}")
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
        save_split(split, split_path)
        train, val = apply_split(report, split)
    except DataError as exc:
        raise TrainError(str(exc)) from exc
    if not cfg.multi_sign:
        train, val = samples_for_sign(train, signs[0]), samples_for_sign(val, signs[0])
    if not train or not val:
        raise TrainError(f"{cfg.data}: the split leaves {len(train)} training and {len(val)} "
                         "held-out images; more images are needed")
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
        synthetic=all(is_synthetic(r) for r in roots), optimizer="sgd", strategy=plan.kind,
        mixed_precision=plan.mixed_precision, software_version=device.__version__)
    old_path = rundir / CONFIG_FILE
    if started and old_path.exists():  # a run with a checkpoint: only the same run continues
        old = read_json(old_path)
        clash = [k for k in IDENTITY_KEYS if old.get(k) != resolved.get(k)]
        if clash:
            raise TrainError(f"{rundir} already holds a run with different "
                             f"{', '.join(f'{k}={old.get(k)!r}' for k in clash)}; use another --out "
                             "or the same arguments to resume it")
        resolved["created"] = old.get("created")
    resolved["created"] = resolved.get("created") or dt.datetime.now(dt.timezone.utc).isoformat()
    return resolved


def _build(cfg: TrainConfig, signs: list[Sign]):
    import keras

    from trainer.model import CUSTOM_OBJECTS, build_classifier, build_multi_sign

    weights = None if cfg.weights in ("none", "", None) else cfg.weights
    if weights not in (None, "imagenet") and not Path(weights).is_file():
        raise TrainError(f"--weights {weights}: no such file (give none, imagenet, a backbone "
                         ".weights.h5 or a .keras model to start from)")
    # A .keras file (e.g. an earlier run's model.keras) is copied layer by layer after the
    # build; none/imagenet/a backbone .weights.h5 go to the backbone builder.
    path = weights if weights and weights.endswith(".keras") else None
    kw = dict(image_size=cfg.image_size, head=cfg.head, weights=None if path else weights)
    try:
        if cfg.multi_sign:
            model = build_multi_sign(cfg.backbone, signs=tuple(signs), **kw)
        else:
            model = build_classifier(cfg.backbone, **kw)
    except KeyError as exc:  # unknown backbone: the registry's message lists close names
        raise TrainError(f"--backbone: {exc.args[0] if exc.args else exc}") from exc
    except ValueError as exc:  # e.g. image size below the backbone's minimum
        raise TrainError(str(exc)) from exc
    _cap_bn_momentum(model, bn_momentum(cfg.steps))
    if path:
        src = keras.models.load_model(path, custom_objects=CUSTOM_OBJECTS, compile=False)
        copied = _copy_weights(src, model)
        if not copied:
            raise TrainError(f"--weights {path}: no layer matches {cfg.backbone} at "
                             f"{cfg.image_size} px; start from a model of the same backbone")
        log.info("copied weights of %d layers from %s", copied, path)
    return model


def bn_momentum(steps: int) -> float:
    """Batch-norm moving-average momentum for a run of ``steps`` iterations.

    keras.applications MobileNets use 0.999: after a few hundred steps their moving
    statistics are still mostly the initial ones (0.999**300 = 0.74), so the model in
    inference mode predicts one grade whatever it sees. 0.9 settles in tens of steps;
    0.99 (Keras' default) is right for the paper's 10,000."""
    return 0.9 if steps <= 2000 else 0.99


def _cap_bn_momentum(model, momentum: float) -> int:
    import keras

    n = 0
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.BatchNormalization) and layer.momentum > momentum:
            layer.momentum = momentum
            n += 1
    if n:
        log.info("batch-norm momentum capped at %s in %d layers", momentum, n)
    return n


def _copy_weights(src, dst) -> int:
    by_name = {layer.name: layer for layer in src._flatten_layers(include_self=False)}
    n = 0
    for layer in dst._flatten_layers(include_self=False):
        other = by_name.get(layer.name)
        if other is None or not layer.weights:
            continue
        ws = other.get_weights()
        if [w.shape for w in ws] == [w.shape for w in layer.get_weights()]:
            layer.set_weights(ws)
            n += 1
    return n


def _compile(model, cfg: TrainConfig, signs: list[Sign]) -> None:
    import keras

    from trainer.model import loss_for_head

    opt = keras.optimizers.SGD(learning_rate=cfg.lr, momentum=cfg.momentum)
    if cfg.multi_sign:
        loss = {s.value: loss_for_head(cfg.head) for s in signs}
        metrics = {s.value: ["accuracy"] for s in signs}
    else:
        loss, metrics = loss_for_head(cfg.head), ["accuracy"]
    model.compile(optimizer=opt, loss=loss, metrics=metrics)


def train(cfg: TrainConfig) -> dict:
    """Train (or resume, or report an already finished run); returns metrics.json's dict."""
    import keras

    from trainer.evaluate import evaluate_run
    from trainer.input_pipeline import NO_AUGMENT, class_weights, label_arrays, make_dataset
    from trainer.model import CUSTOM_OBJECTS

    rundir = Path(cfg.out).resolve()
    (rundir / CKPT_DIR).mkdir(parents=True, exist_ok=True)
    signs = list(MODEL_SIGNS) if cfg.multi_sign else [parse_sign(cfg.sign or "", model_only=True)]
    plan = plan_strategy(_gpus(), os.environ.get("TF_CONFIG"), mixed_precision=cfg.mixed_precision)
    state_path = rundir / CKPT_DIR / STATE_FILE
    state = read_json(state_path) if state_path.exists() else None
    # Before the first checkpoint nothing is worth keeping: a start that failed (bad
    # backbone, bad size) leaves no config or split that binds the next attempt.
    resolved = _resolve(cfg, rundir, signs, plan, started=state is not None)
    if state and state.get("done") and (rundir / METRICS_FILE).exists():
        log.info("%s: already finished at step %d; delete it to train again", rundir, state["step"])
        return read_json(rundir / METRICS_FILE)
    train_s, val_s = _load_data(cfg, rundir, signs, started=state is not None)
    write_json(rundir / CONFIG_FILE, resolved)

    strategy = make_strategy(plan)
    if plan.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    epochs = max(1, math.ceil(cfg.steps / max(1, min(cfg.eval_every, cfg.steps))))
    spe = math.ceil(cfg.steps / epochs)
    resuming = bool(state) and (rundir / CKPT_DIR / LAST_FILE).exists()
    if not resuming:
        state = dict(epoch=0, step=0, best=None, best_step=0, wait=0, train_seconds=0.0,
                     stopped_early=False, done=False, steps_per_epoch=spe)
    elif state.get("steps_per_epoch") != spe:
        raise TrainError(f"{rundir}: the run was started with {state.get('steps_per_epoch')} steps "
                         f"per evaluation, now {spe}; keep --steps and --eval-every as they were")
    keras.utils.set_random_seed(cfg.seed + state["epoch"])
    with strategy.scope():
        if resuming:
            log.info("resuming %s from step %d (best step %d)", rundir, state["step"], state["best_step"])
            model = keras.models.load_model(rundir / CKPT_DIR / LAST_FILE, custom_objects=CUSTOM_OBJECTS)
            if int(model.optimizer.iterations) != state["step"]:
                log.warning("optimizer state is at step %d, run state at %d",
                            int(model.optimizer.iterations), state["step"])
        else:
            model = _build(cfg, signs)
            _compile(model, cfg, signs)
    labels = label_arrays(train_s, signs)
    cw = {s: class_weights(labels[:, j]) if cfg.class_weights else None for j, s in enumerate(signs)}
    cw = {s: w for s, w in cw.items() if w is not None} or None
    multi = cfg.multi_sign
    train_ds = make_dataset(train_s, signs, cfg.image_size, cfg.batch, training=True,
                            seed=cfg.seed + 1000 * state["epoch"], weights=cw, multi_output=multi,
                            augment=None if cfg.augment else NO_AUGMENT)
    val_ds = make_dataset(val_s, signs, cfg.image_size, cfg.batch, training=False, multi_output=multi)
    callbacks = [
        _checkpointer(rundir, state, spe, cfg.patience),
        keras.callbacks.CSVLogger(str(rundir / HISTORY_FILE), append=True),
    ]
    if _have_tensorboard():
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(rundir / LOGS_DIR), write_graph=False))
    else:
        log.warning("tensorboard is not installed: no %s/ logs (pip install tensorboard)", LOGS_DIR)
    if state["epoch"] < epochs and not state.get("stopped_early"):
        model.fit(train_ds, validation_data=val_ds, epochs=epochs, initial_epoch=state["epoch"],
                  steps_per_epoch=spe, callbacks=callbacks, verbose=cfg.verbose)
    keras.mixed_precision.set_global_policy("float32")

    run = load_run(rundir)
    best = run.load_model()
    extra = {"steps_done": state["step"], "best_step": state["best_step"],
             "stopped_early": state["stopped_early"], "train_seconds": round(state["train_seconds"], 1),
             "params": int(best.count_params())}
    metrics = evaluate_run(run, model=best, extra=extra)
    if multi:
        _write_per_sign_runs(run, best, resolved, extra)
    state["done"] = True
    write_json(state_path, state)
    return metrics


def _write_per_sign_runs(run, best, resolved: dict, extra: dict) -> None:
    """One ordinary single-sign run directory per sign (RUNDIR/<sign>/) for convert."""
    import shutil

    from trainer.evaluate import evaluate_run
    from trainer.model import split_multi_sign

    for sign in run.signs:
        sub = run.dir / sign.value
        sub.mkdir(exist_ok=True)
        single = split_multi_sign(best, sign)
        _atomic_save(single, sub / MODEL_FILE)
        shutil.copyfile(run.dir / SPLIT_FILE, sub / SPLIT_FILE)
        write_json(sub / CONFIG_FILE, dict(resolved, sign=sign.value, signs=[sign.value],
                                           multi_sign=False, out=str(sub), parent=str(run.dir)))
        evaluate_run(load_run(sub, data_root=run.data_root), model=single,
                     extra=dict(extra, params=int(single.count_params()), multi_sign_parent=str(run.dir)))


def _have_tensorboard() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorboard") is not None


def _gpus() -> list:
    import tensorflow as tf

    return tf.config.list_physical_devices("GPU")
