"""Checkpoint and resume: the best model so far, the last weights with their
optimizer, and the run's progress (``ResumeState``), written atomically after each
evaluation so that the same command continues an interrupted run."""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

from device.core.atomic import atomic_path
from trainer.run import CKPT_DIR, MODEL_FILE, read_json, write_json

log = logging.getLogger(__name__)

STATE_FILE = "state.json"
LAST_FILE = "last.keras"


@dataclass
class ResumeState:
    """A run's progress, saved as RUNDIR/ckpt/state.json after each evaluation."""

    steps_per_epoch: int
    epoch: int = 0
    step: int = 0
    best: list[float] | None = None  # the best score so far (see ``score_of``)
    best_step: int = 0
    wait: int = 0  # evaluations since the best one
    train_seconds: float = 0.0
    stopped_early: bool = False
    done: bool = False
    weights_sha256: str | None = None  # the final weights (equal on every worker of a cluster)

    @classmethod
    def load(cls, path: Path) -> ResumeState | None:
        if not path.exists():
            return None
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in read_json(path).items() if k in known})

    def save(self, path: Path) -> None:
        write_json(path, dataclasses.asdict(self))


def save_model(model, path: Path) -> None:
    """``model.save`` through the one atomic writer (the temp name keeps ``.keras``)."""
    with atomic_path(path) as tmp:
        model.save(tmp)


def score_of(logs: dict) -> tuple[float, float]:
    """(mean validation accuracy over outputs, -val_loss): higher is better."""
    accs = [float(v) for k, v in logs.items() if k.startswith("val_") and k.endswith("accuracy")]
    return (sum(accs) / len(accs) if accs else 0.0, -float(logs.get("val_loss", math.inf)))


def make_checkpointer(rundir: Path, state: ResumeState, patience: int):
    import keras

    class Checkpointer(keras.callbacks.Callback):
        """Best model + resume state after each evaluation (runs before CSVLogger)."""

        def on_train_begin(self, logs=None):
            self._t = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            logs = logs if logs is not None else {}
            step = (epoch + 1) * state.steps_per_epoch
            logs["step"] = step
            score = score_of(logs)
            if state.best is None or score > tuple(state.best):
                save_model(self.model, rundir / MODEL_FILE)
                state.best, state.best_step, state.wait = list(score), step, 0
            else:
                state.wait += 1
            now = time.perf_counter()
            state.train_seconds += now - self._t
            self._t = now
            state.epoch, state.step = epoch + 1, step
            if state.wait >= patience:
                self.model.stop_training = True
                state.stopped_early = True
            save_model(self.model, rundir / CKPT_DIR / LAST_FILE)
            state.save(rundir / CKPT_DIR / STATE_FILE)

    return Checkpointer()
