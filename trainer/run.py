"""A training run directory, and THE image preprocessing every later step reuses.

Layout of RUNDIR (``convert`` and ``python -m trainer evaluate`` read it alone):

    model.keras       best checkpoint (uint8 RGB in, 4 grade probabilities out)
    config.json       resolved training config: sign, backbone, image_size, head, steps, lr,
                      batch, weights, seed, data (absolute data root), split (file name), ...
    split.json        the train/held-out split (trainer.split.Split JSON)
    metrics.json      trainer.evaluate metrics on the held-out split
    history.csv       one row per evaluation (step, loss, val_loss, val_accuracy, ...)
    logs/             TensorBoard event files
    confusion.png     confusion matrix plot; confusion.json the same numbers
    ckpt/             resume state: last.keras (weights + optimizer) and state.json

A multi-sign run holds the joint model in RUNDIR and one per-sign run directory in
RUNDIR/<sign>/ with the same layout, which convert takes like any single-sign run.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from device.core.atomic import atomic_write_json, json_default
from device.core.ceiling import LabelSource
from device.core.errors import validation_problems
from device.core.imageio import read_image
from device.core.vocab import NUM_GRADES, Sign

log = logging.getLogger(__name__)

MODEL_FILE = "model.keras"
CONFIG_FILE = "config.json"
SPLIT_FILE = "split.json"
METRICS_FILE = "metrics.json"
HISTORY_FILE = "history.csv"
LOGS_DIR = "logs"
CKPT_DIR = "ckpt"
CONFUSION_PNG = "confusion.png"
CONFUSION_JSON = "confusion.json"

#: Files whose presence in the data root marks a generated (never clinical) data set.
SYNTHETIC_MARKERS = ("SYNTHETIC", "synthetic.json", "synth.json", "SYNTHETIC.txt")


class RunError(ValueError):
    """A run directory is missing a file or holds one that cannot be read."""


def load_image(path: Path | str, image_size: int | tuple[int, int],
               box: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """Decode an image file to uint8 RGB of ``image_size`` (int for square, or (H, W)).

    The one preprocessing for training, evaluation, calibration and the gate:
    ``device.core.imageio.read_image`` (RGB, EXIF orientation applied, as on the device),
    optional lesion ``box`` crop (x, y, w, h; full photos
    of the manifest layout), resize with INTER_AREA (the device resizes its crops the
    same way, so train and device pixels agree).
    """
    import cv2

    h, w = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if isinstance(path, bytes):  # from tf.numpy_function
        path = path.decode("utf-8")
    rgb = read_image(Path(path))  # an ImageError (a ValueError) names the file
    if box is not None and box[2] > 0 and box[3] > 0:
        x, y, bw, bh = (int(v) for v in box)
        x, y = max(x, 0), max(y, 0)
        rgb = rgb[y:y + bh, x:x + bw]
        if rgb.size == 0:
            raise ValueError(f"{path}: lesion box {tuple(box)} lies outside the image; fix the manifest")
    if rgb.shape[:2] != (h, w):
        rgb = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(rgb, dtype=np.uint8)


def load_images(samples, image_size: int) -> np.ndarray:
    """Stack of load_image results for trainer.data.Sample objects (or bare paths),
    shape (N, size, size, 3) uint8."""
    out = np.zeros((len(samples), image_size, image_size, 3), np.uint8)
    for i, s in enumerate(samples):
        if hasattr(s, "path"):
            out[i] = load_image(s.path, image_size, s.box)
        else:
            out[i] = load_image(s, image_size)
    return out


def is_synthetic(data_root: Path) -> bool:
    root = Path(data_root)
    return any((root / name).exists() for name in SYNTHETIC_MARKERS)


def write_json(path: Path, obj: Any) -> None:
    """Atomic JSON write (a killed run never leaves half a file)."""
    atomic_write_json(path, obj, default=json_default)


def read_json(path: Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise RunError(f"{path}: missing; is this a finished training run directory?") from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise RunError(f"{path}: unreadable JSON ({exc})") from exc


def grade_counts(samples, sign: Sign) -> list[int]:
    counts = [0] * NUM_GRADES
    for s in samples:
        g = s.grades.get(sign)
        if g is not None:
            counts[int(g)] += 1
    return counts


class RunConfig(BaseModel):
    """RUNDIR/config.json as the run reads it back. The trainer writes more (the whole
    TrainConfig, optimizer, strategy, versions); those keys are kept, unread."""

    model_config = ConfigDict(extra="allow")

    backbone: str
    image_size: int
    sign: Sign | None = None
    signs: list[Sign] = Field(default_factory=list)
    multi_sign: bool = False
    head: str = "softmax"
    data: str | None = None
    data_roots: list[str] = Field(default_factory=list)
    synthetic: bool = False
    split: str = SPLIT_FILE
    seed: int = 0
    labels: LabelSource = LabelSource.CONSENSUS  # a run from before --labels: the consensus


@dataclass
class Run:
    dir: Path
    config: RunConfig
    data_root: Path | list[Path] | None = None  # overrides config["data"] (data moved)
    _split: Any = field(default=None, repr=False)
    _samples: Any = field(default=None, repr=False)

    @property
    def sign(self) -> Sign | None:
        return self.config.sign

    @property
    def signs(self) -> list[Sign]:
        if self.config.multi_sign:
            return list(self.config.signs)
        return [self.sign]

    @property
    def backbone(self) -> str:
        return self.config.backbone

    @property
    def image_size(self) -> int:
        return self.config.image_size

    @property
    def head(self) -> str:
        return self.config.head

    @property
    def data(self) -> Path:
        return self.data_roots[0]

    @property
    def data_roots(self) -> list[Path]:
        """Every data root the run trained on (several with ``--data A --data B``)."""
        if self.data_root:
            return [Path(p) for p in self.data_root] if isinstance(self.data_root, list) else [
                Path(self.data_root)]
        return [Path(p) for p in self.config.data_roots or [self.config.data or "."]]

    @property
    def synthetic(self) -> bool:
        return self.config.synthetic

    def load_model(self):
        import keras

        from trainer.model import CUSTOM_OBJECTS

        path = self.dir / MODEL_FILE
        if not path.exists():
            raise RunError(f"{path}: no model; the run did not finish a single evaluation")
        return keras.models.load_model(path, custom_objects=CUSTOM_OBJECTS, compile=False)

    def split(self):
        from trainer.split import load_split

        if self._split is None:
            self._split = load_split(self.dir / self.config.split)
        return self._split

    def _train_val(self):
        if self._samples is None:
            from trainer.data import DataError
            from trainer.roots import load_roots
            from trainer.split import apply_split

            try:
                report = load_roots(self.data_roots, check_images=False)
            except DataError as exc:
                raise RunError(f"{self.dir}: cannot read its data at {self.data} ({exc}); "
                               "pass --data DIR if the data set moved") from exc
            self._samples = apply_split(report, self.split())
        return self._samples

    def _for_sign(self, samples):
        if self.config.multi_sign:
            return list(samples)
        from trainer.data import samples_for_sign

        return samples_for_sign(samples, self.sign)

    def train_samples(self) -> list:
        return self._for_sign(self._train_val()[0])

    def val_samples(self) -> list:
        return self._for_sign(self._train_val()[1])

    def data_summary(self):
        import hashlib

        from device.core.card import TrainingDataSummary

        sign = self.sign or self.signs[0]
        train, val = self.train_samples(), self.val_samples()
        split_file = self.dir / self.config.split
        digest = hashlib.sha256(split_file.read_bytes()).hexdigest() if split_file.exists() else None
        return TrainingDataSummary(
            source="synthetic" if self.synthetic else " + ".join(str(r) for r in self.data_roots),
            synthetic=self.synthetic,
            n_train=len(train),
            n_val=len(val),
            per_grade_train=grade_counts(train, sign),
            per_grade_val=grade_counts(val, sign),
            split_sha256=digest,
            labels=self.config.labels,
        )

    def metrics(self) -> dict:
        return read_json(self.dir / METRICS_FILE)


def load_run(rundir: Path | str, *,
             data_root: Path | str | list[Path | str] | None = None) -> Run:
    """Reload a run from its directory alone (``data_root``: where its data root, or
    roots in the order trained on, are now, if they moved)."""
    rundir = Path(rundir).resolve()
    if not rundir.is_dir():
        raise RunError(f"{rundir}: not a directory; pass the --out folder of a training run")
    try:
        config = RunConfig.model_validate(read_json(rundir / CONFIG_FILE))
    except ValidationError as exc:
        problems = "; ".join(map(str, validation_problems(exc)))
        raise RunError(f"{rundir / CONFIG_FILE}: {problems}") from exc
    if isinstance(data_root, (list, tuple)):
        moved: Path | list[Path] | None = [Path(p).resolve() for p in data_root] or None
        if moved is not None and len(moved) == 1:
            moved = moved[0]
    else:
        moved = Path(data_root).resolve() if data_root else None
    return Run(dir=rundir, config=config, data_root=moved)
