"""Where a training run executes: one device, several devices of one machine
(MirroredStrategy) or several machines (MultiWorkerMirroredStrategy), and which
worker writes the run directory.

``plan_strategy`` is pure (tests hand in fakes); the rest touches TensorFlow and is
imported lazily by the trainer.

Batch and learning rate: ``--batch`` is the GLOBAL batch. Each step the strategy
splits it across all replicas (devices x workers), so a run keeps the same
optimisation whatever it runs on. To use more devices for more throughput, raise
``--batch`` by the replica factor k and the learning rate by the same k (the linear
scaling rule of Goyal et al. 2017), with a warm-up for large k.
"""

from __future__ import annotations

import enum
import hashlib
import json
import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from trainer.train_config import TrainError

log = logging.getLogger(__name__)


class StrategyError(TrainError):
    """A cluster description or device request a person has to fix."""


class StrategyKind(str, enum.Enum):
    DEFAULT = "default"  # one device (CPU or a single GPU without mirroring)
    MIRRORED = "mirrored"  # every visible GPU of this machine, or --cpu-devices N
    MULTI_WORKER = "multi_worker"  # several machines, from TF_CONFIG

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Worker:
    """This process's place in a multi-worker cluster (TF_CONFIG's task)."""

    task_type: str
    index: int
    count: int
    has_chief: bool = False  # the cluster names a "chief" task

    @property
    def is_chief(self) -> bool:
        # Without a "chief" task, worker 0 plays the chief (TensorFlow's convention).
        if self.has_chief:
            return self.task_type == "chief"
        return self.task_type == "worker" and self.index == 0


SINGLE = Worker(task_type="worker", index=0, count=1)


@dataclass(frozen=True)
class StrategyPlan:
    kind: StrategyKind
    mixed_precision: bool
    n_gpus: int
    jit_compile: bool = False
    worker: Worker = SINGLE
    cpu_devices: int = 0  # >1: split the CPU into this many logical devices (mirrored)

    @property
    def is_chief(self) -> bool:
        return self.worker.is_chief


def parse_tf_config(tf_config: str) -> Worker:
    try:
        spec = json.loads(tf_config)
        cluster, task = spec.get("cluster", {}), spec.get("task", {})
    except (json.JSONDecodeError, AttributeError) as exc:
        raise StrategyError(f"TF_CONFIG is not valid JSON ({exc}); fix or unset it") from exc
    if not cluster.get("worker") and not cluster.get("chief"):
        raise StrategyError("TF_CONFIG has no cluster.worker list; fix or unset it")
    task_type, index = task.get("type", "worker"), task.get("index", 0)
    members = cluster.get(task_type)
    if not isinstance(index, int) or not members or not 0 <= index < len(members):
        raise StrategyError(f"TF_CONFIG task {task!r} is not in its cluster {cluster!r}; "
                            "task.type must name a cluster list and task.index a place in it")
    count = len(cluster.get("worker", [])) + len(cluster.get("chief", []))
    return Worker(task_type=task_type, index=index, count=count, has_chief=bool(cluster.get("chief")))


def plan_strategy(gpus: Sequence, tf_config: str | None, *, mixed_precision: bool | None = None,
                  jit_compile: bool | None = None, cpu_devices: int = 0) -> StrategyPlan:
    """Which strategy, precision and compilation to use, from the visible GPUs, the
    TF_CONFIG environment variable and the options (None: the default for the hardware).

    TF_CONFIG set -> MultiWorkerMirroredStrategy; any GPU, or ``cpu_devices`` > 1 ->
    MirroredStrategy over all of them; otherwise the default strategy. Mixed float16
    and XLA default to on with GPUs only (on CPU both are slower)."""
    n = len(gpus)
    worker = SINGLE
    if tf_config and tf_config.strip():
        worker = parse_tf_config(tf_config)
        kind = StrategyKind.MULTI_WORKER
    elif n >= 1 or cpu_devices > 1:
        kind = StrategyKind.MIRRORED
    else:
        kind = StrategyKind.DEFAULT
    mp = (n >= 1) if mixed_precision is None else bool(mixed_precision and n >= 1)
    jit = (n >= 1) if jit_compile is None else bool(jit_compile)
    return StrategyPlan(kind=kind, mixed_precision=mp, n_gpus=n, jit_compile=jit, worker=worker,
                        cpu_devices=cpu_devices if n == 0 else 0)


def visible_gpus() -> list:
    import tensorflow as tf

    return tf.config.list_physical_devices("GPU")


def split_cpu(n: int) -> None:
    """Split the CPU into ``n`` logical devices (before TensorFlow initialises), so the
    several-device path runs on a machine without GPUs."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(n)])
    except RuntimeError as exc:  # TensorFlow already initialised its devices
        raise StrategyError(f"--cpu-devices {n}: TensorFlow's devices are already set up "
                            f"in this process ({exc}); start a new process") from exc


def make_strategy(plan: StrategyPlan):
    import tensorflow as tf

    if plan.kind is StrategyKind.MULTI_WORKER:
        _mend_keras_multi_worker_mean()
        return tf.distribute.MultiWorkerMirroredStrategy()
    if plan.kind is StrategyKind.MIRRORED:
        if plan.cpu_devices > 1:
            split_cpu(plan.cpu_devices)
            names = [d.name for d in tf.config.list_logical_devices("CPU")]
            return tf.distribute.MirroredStrategy(devices=names)
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def synchronize_batch_norm(model) -> int:
    """Compute batch-norm statistics over the global batch (all replicas) rather than
    each replica's slice: training then matches one device with the same batch, and
    every replica keeps the same moving averages (without it each worker's differ, and
    the chief's model would describe only its own share of the data)."""
    import keras

    from trainer.model_setup import walk_layers

    n = 0
    for layer in walk_layers(model):
        if isinstance(layer, keras.layers.BatchNormalization) and not layer.synchronized:
            layer.synchronized = True
            n += 1
    return n


def write_dir(rundir: Path, plan: StrategyPlan) -> Path:
    """Where this worker writes: the run directory for the chief; a private temporary
    folder for the other workers, which must still save (saving a distributed model
    runs collective operations on every worker) but whose copies nobody reads."""
    if plan.is_chief:
        return rundir
    tmp = Path(tempfile.mkdtemp(prefix=f"atopiscan-worker{plan.worker.index}-"))
    log.info("worker %d is not the chief: it reads %s and writes to %s", plan.worker.index,
             rundir, tmp)
    return tmp


def weights_digest(model) -> str:
    """sha256 over every weight of ``model``: equal on all workers of one run."""
    h = hashlib.sha256()
    for w in model.weights:
        h.update(w.path.encode())
        h.update(memoryview(w.numpy()).cast("B"))
    return h.hexdigest()


def build_before_fit(model, dataset) -> None:
    """Create the model's, loss's and metrics' state from one local batch before fit.

    Keras 3's fit builds them from the first batch of the distributed dataset, which
    under MultiWorkerMirroredStrategy is a PerReplica value it cannot turn into a
    tensor (keras-team/keras#20585: "Attempt to convert a value (PerReplica...)").
    Built beforehand, fit has nothing left to build. ``test_on_batch`` runs on every worker, so
    its collective operations match up."""
    for x, y, *_ in dataset.take(1):
        model.test_on_batch(x, y)
    if _collective(model):
        # fit still reads one distributed batch to build from, and averaging it across
        # workers fails in TensorFlow's collective reduce; everything is built already.
        model._maybe_symbolic_build = _already_built


def _already_built(iterator=None, data_batch=None) -> None:
    return None


def _collective(model) -> bool:
    import tensorflow as tf

    return isinstance(model.distribute_strategy, tf.distribute.MultiWorkerMirroredStrategy)


def _mend_keras_multi_worker_mean() -> None:
    """Keras 3 (up to at least 3.15) reduces each step's scalar logs across workers with
    ``strategy.reduce("MEAN", v, axis=0)``, which fails on a scalar ("Invalid reduction
    dimension 0 for input with 0 dimensions"), so fit and evaluate cannot run under
    MultiWorkerMirroredStrategy at all (keras-team/keras#20585, open). Keras has no
    public hook for this reduction, so its module function is wrapped once: scalar
    logs are averaged over all workers' replicas (so every worker sees the same loss
    and accuracy, and stops at the same evaluation); anything else goes to Keras."""
    import tensorflow as tf
    from keras.src.backend.tensorflow import trainer as keras_tf_trainer

    original = keras_tf_trainer.reduce_per_replica
    if getattr(original, "_atopiscan_mended", False):
        return

    def all_workers_mean(t):
        return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.MEAN, t)

    def reduce_per_replica(values, strategy, reduction):
        if reduction not in ("auto", "mean") or not isinstance(
                strategy, tf.distribute.MultiWorkerMirroredStrategy):
            return original(values, strategy, reduction)

        def mean(v):
            local = (strategy.experimental_local_results(v)[0]
                     if isinstance(v, tf.distribute.DistributedValues) else v)
            if not tf.is_tensor(local) or local.shape.rank != 0:
                return original(v, strategy, reduction)
            # With one device per worker a step's logs are plain tensors, local to the
            # worker: all workers must agree on them (early stopping decides on them).
            return strategy.experimental_local_results(strategy.run(all_workers_mean, args=(v,)))[0]

        return tf.nest.map_structure(mean, values)

    reduce_per_replica._atopiscan_mended = True
    keras_tf_trainer.reduce_per_replica = reduce_per_replica
