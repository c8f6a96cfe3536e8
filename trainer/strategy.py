"""Which tf.distribute strategy and precision a training run uses.

``plan_strategy`` is pure (tests hand in fake GPU lists and TF_CONFIG strings);
``make_strategy`` builds the TensorFlow object from a plan.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from trainer.train_config import TrainError

log = logging.getLogger(__name__)


class StrategyKind(str, Enum):
    DEFAULT = "default"  # one device (CPU or a single GPU without mirroring)
    MIRRORED = "mirrored"  # every visible GPU of this machine
    MULTI_WORKER = "multi_worker"  # several machines, from TF_CONFIG

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class StrategyPlan:
    kind: StrategyKind
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
        kind = StrategyKind.MULTI_WORKER
    elif n >= 1:
        kind = StrategyKind.MIRRORED
    else:
        kind = StrategyKind.DEFAULT
    mp = (n >= 1) if mixed_precision is None else bool(mixed_precision and n >= 1)
    return StrategyPlan(kind=kind, mixed_precision=mp, n_gpus=n)


def make_strategy(plan: StrategyPlan):
    import tensorflow as tf

    if plan.kind is StrategyKind.MULTI_WORKER:
        return tf.distribute.MultiWorkerMirroredStrategy()
    if plan.kind is StrategyKind.MIRRORED:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def visible_gpus() -> list:
    import tensorflow as tf

    return tf.config.list_physical_devices("GPU")
