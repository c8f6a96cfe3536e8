"""Abstention: refuse to grade an image unlike the pack's training images.

Each sign's model returns its pooled features beside the grade probabilities
(the model contract in docs/ARCHITECTURE.md). At conversion, ``convert.spacefit`` fits
class-conditional Gaussians with one shared covariance to the features of the
training split (Lee et al. 2018, "A simple unified framework for detecting
out-of-distribution samples"): a mean per grade and a shrunk (Ledoit-Wolf)
covariance. An image's score is its Mahalanobis distance to the nearest grade
mean. The threshold is the distance that accepts at least ``target_accept`` of
the held-out split; a scan beyond it makes the models abstain.

The statistics travel in the pack as ``models/<sign>.ood.npz`` (plain arrays,
loaded with ``allow_pickle=False``), listed and hashed in the manifest and named
with their sha256 in the model card. This module is numpy only: the device fits
nothing, it scores.
"""

from __future__ import annotations

import io
import logging
import math
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import numpy as np

from device.grading.imagestats import DESCRIPTOR_VERSION, DIM, ImageStats
from device.grading.scenestats import SCENE_DIM, SCENE_VERSION, SceneStats

log = logging.getLogger(__name__)

METHOD = "mahalanobis-shared-covariance"
#: Share of held-out images a threshold must accept (the issue: at least 99 %).
DEFAULT_ACCEPT = 0.99
STATS_SUFFIX = ".ood.npz"
_KEYS = ("means", "classes", "precision", "threshold")
#: The optional second and third spaces (device.grading.imagestats, device.grading.scenestats)
#: are in the same file as ``image_*`` and ``scene_*`` arrays; packs before them lack them.


class StatsError(ValueError):
    """Abstention statistics that cannot be read or do not fit the model."""


@dataclass(frozen=True)
class FeatureStats:
    """Grade means (C, D), the shared precision matrix (D, D) and the threshold on the
    Mahalanobis distance (not squared); ``image``: the second, model-independent space
    (device.grading.imagestats), None in packs fitted before it; ``scene``: the third, the
    whole frame's (device.grading.scenestats), None in packs fitted before it."""

    means: np.ndarray
    classes: tuple[int, ...]
    precision: np.ndarray
    threshold: float
    image: ImageStats | None = None
    scene: SceneStats | None = None

    @property
    def dim(self) -> int:
        return int(self.means.shape[1])

    def distance(self, features: np.ndarray) -> float:
        """Mahalanobis distance of one feature vector to the nearest grade mean."""
        f = np.asarray(features, np.float32).reshape(-1)
        if f.shape[0] != self.dim:
            raise StatsError(f"features have {f.shape[0]} values; the statistics expect {self.dim}")
        diff = self.means - f[None, :]
        # einsum's own loops, not BLAS: right after an interpreter invoke, OpenBLAS's
        # worker threads fight the interpreter's for the cores (measured on 2 cores:
        # 45 ms instead of 0.4, and the next scan stages slowed with it).
        sq = np.einsum("ce,ce->c", np.einsum("cd,de->ce", diff, self.precision), diff)
        return float(math.sqrt(max(float(sq.min()), 0.0)))

    def distances(self, features: np.ndarray) -> np.ndarray:
        """Distances for a batch (N, D)."""
        feats = np.asarray(features, np.float64)
        diff = feats[:, None, :] - self.means[None].astype(np.float64)
        sq = np.einsum("ncd,de,nce->nc", diff, self.precision.astype(np.float64), diff)
        return np.sqrt(np.maximum(sq.min(axis=1), 0.0))

    def with_threshold(self, threshold: float) -> FeatureStats:
        return FeatureStats(self.means, self.classes, self.precision, float(threshold), self.image,
                            self.scene)

    def with_image(self, image: ImageStats | None) -> FeatureStats:
        return FeatureStats(self.means, self.classes, self.precision, self.threshold, image,
                            self.scene)

    def with_scene(self, scene: SceneStats | None) -> FeatureStats:
        return FeatureStats(self.means, self.classes, self.precision, self.threshold, self.image,
                            scene)

    def to_bytes(self) -> bytes:
        arrays = {"means": self.means.astype(np.float32),
                  "classes": np.asarray(self.classes, np.int32),
                  "precision": self.precision.astype(np.float32),
                  "threshold": np.float64(self.threshold)}
        if self.image is not None:
            arrays.update(image_mean=self.image.mean.astype(np.float64),
                          image_precision=self.image.precision.astype(np.float64),
                          image_threshold=np.float64(self.image.threshold),
                          image_version=np.int32(self.image.version))
        if self.scene is not None:
            arrays.update(scene_mean=self.scene.mean.astype(np.float64),
                          scene_precision=self.scene.precision.astype(np.float64),
                          scene_threshold=np.float64(self.scene.threshold),
                          scene_version=np.int32(self.scene.version))
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        return buf.getvalue()


def load_stats(path: Path | str) -> FeatureStats:
    """Read a ``.ood.npz`` written by ``FeatureStats.to_bytes``; StatsError names the file."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in _KEYS if k not in data.files]
            if missing:
                raise StatsError(f"{path}: abstention statistics lack {', '.join(missing)}; "
                                 "rebuild the pack")
            means, classes = data["means"], data["classes"]
            precision, threshold = data["precision"], float(data["threshold"])
            image = _read_image_stats(path, data)
            scene = _read_scene_stats(path, data)
    except (OSError, ValueError, EOFError) as exc:
        if isinstance(exc, StatsError):
            raise
        raise StatsError(f"{path}: unreadable abstention statistics ({exc}); rebuild the pack") from exc
    d = means.shape[1] if means.ndim == 2 else -1
    if d < 1 or precision.shape != (d, d) or classes.shape != (means.shape[0],):
        raise StatsError(f"{path}: abstention statistics have inconsistent shapes "
                         f"(means {means.shape}, precision {precision.shape}); rebuild the pack")
    if not (math.isfinite(threshold) and threshold > 0):
        raise StatsError(f"{path}: abstention threshold {threshold} is not a positive number")
    return FeatureStats(means.astype(np.float32), tuple(int(c) for c in classes),
                        precision.astype(np.float32), threshold, image, scene)


def _read_gaussian(path: Path, data: np.lib.npyio.NpzFile, prefix: str, what: str,
                   version_now: int, dim: int) -> tuple[np.ndarray, np.ndarray, float, int] | None:
    """One optional Gaussian space of the file, ``<prefix>_mean``, ``_precision``,
    ``_threshold`` and ``_version`` (all four, or none: a pack fitted before it)."""
    keys = tuple(f"{prefix}_{k}" for k in ("mean", "precision", "threshold", "version"))
    present = [k for k in keys if k in data.files]
    if not present:
        return None
    if len(present) != len(keys):
        raise StatsError(f"{path}: {what} lack "
                         f"{', '.join(k for k in keys if k not in present)}; rebuild the pack")
    version, threshold = int(data[keys[3]]), float(data[keys[2]])
    if version != version_now:
        raise StatsError(f"{path}: {what} of descriptor version {version}; this software "
                         f"computes version {version_now}: rebuild the pack or update the device")
    mean, precision = data[keys[0]], data[keys[1]]
    if mean.shape != (dim,) or precision.shape != (dim, dim):
        raise StatsError(f"{path}: {what} have shapes {mean.shape} and {precision.shape}, "
                         f"expected ({dim},) and ({dim}, {dim}); rebuild the pack")
    if not (math.isfinite(threshold) and threshold > 0):
        raise StatsError(f"{path}: {what} threshold {threshold} is not a positive number")
    return mean.astype(np.float64), precision.astype(np.float64), threshold, version


def _read_image_stats(path: Path, data: np.lib.npyio.NpzFile) -> ImageStats | None:
    """The image-statistics space when the file has it."""
    found = _read_gaussian(path, data, "image", "image statistics", DESCRIPTOR_VERSION, DIM)
    return None if found is None else ImageStats(*found)


def _read_scene_stats(path: Path, data: np.lib.npyio.NpzFile) -> SceneStats | None:
    """The scene space (the whole frame) when the file has it."""
    found = _read_gaussian(path, data, "scene", "scene statistics", SCENE_VERSION, SCENE_DIM)
    return None if found is None else SceneStats(*found)


class AbstainSpace(str, Enum):
    """Which space put a scan past its threshold: the whole frame (device.grading.scenestats:
    named first whenever it is past, whatever the crop's spaces say), else the model's
    pooled features, the crop's image statistics (device.grading.imagestats), or both."""

    SCENE = "scene"
    FEATURE = "feature"
    IMAGE = "image"
    BOTH = "both"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def of(cls, feature: bool, image: bool, scene: bool = False) -> AbstainSpace | None:
        if scene:
            return cls.SCENE
        if feature and image:
            return cls.BOTH
        if feature:
            return cls.FEATURE
        return cls.IMAGE if image else None


@dataclass(frozen=True)
class SignAbstention:
    """One sign's scores: the feature space's distance and threshold, the image space's
    and the scene space's (None for packs fitted before them). Past any threshold abstains."""

    distance: float
    threshold: float
    image_distance: float | None = None
    image_threshold: float | None = None
    scene_distance: float | None = None
    scene_threshold: float | None = None

    @property
    def image_ratio(self) -> float | None:
        if self.image_distance is None or not self.image_threshold:
            return None
        return self.image_distance / self.image_threshold

    @property
    def scene_ratio(self) -> float | None:
        if self.scene_distance is None or not self.scene_threshold:
            return None
        return self.scene_distance / self.scene_threshold

    @property
    def ratio(self) -> float:
        return max(self.distance / self.threshold, self.image_ratio or 0.0, self.scene_ratio or 0.0)

    @property
    def feature_past(self) -> bool:
        return self.distance > self.threshold

    @property
    def image_past(self) -> bool:
        return (self.image_distance is not None and self.image_threshold is not None
                and self.image_distance > self.image_threshold)

    @property
    def scene_past(self) -> bool:
        return (self.scene_distance is not None and self.scene_threshold is not None
                and self.scene_distance > self.scene_threshold)

    @property
    def abstained(self) -> bool:
        return self.feature_past or self.image_past or self.scene_past

    def to_dict(self) -> dict[str, float | bool | None]:
        image, scene = self.image_ratio, self.scene_ratio
        return {"distance": round(self.distance, 4), "threshold": round(self.threshold, 4),
                "feature_score": round(self.distance / self.threshold, 4),
                "image_distance": None if self.image_distance is None else round(self.image_distance, 4),
                "image_threshold": None if self.image_threshold is None else round(self.image_threshold, 4),
                "image_score": None if image is None else round(image, 4),
                "scene_distance": None if self.scene_distance is None else round(self.scene_distance, 4),
                "scene_threshold": None if self.scene_threshold is None else round(self.scene_threshold, 4),
                "scene_score": None if scene is None else round(scene, 4),
                "score": round(self.ratio, 4), "abstained": self.abstained}


@dataclass(frozen=True)
class Abstention:
    """A scan's verdict. ``score`` is the largest distance/threshold over the signs:
    above 1 the models abstain. ``checked`` is False when the pack has no statistics."""

    checked: bool
    signs: dict[str, SignAbstention]
    pack_version: str | None = None

    @property
    def score(self) -> float | None:
        return max((s.ratio for s in self.signs.values()), default=None) if self.checked else None

    @property
    def abstained(self) -> bool:
        return self.checked and any(s.abstained for s in self.signs.values())

    @property
    def space(self) -> AbstainSpace | None:
        """Which space(s) any sign was past (None: within all, or nothing checked)."""
        if not self.checked:
            return None
        signs = self.signs.values()
        return AbstainSpace.of(any(s.feature_past for s in signs), any(s.image_past for s in signs),
                               any(s.scene_past for s in signs))

    @property
    def crop_space(self) -> AbstainSpace | None:
        """Which of the crop's spaces (feature, image, both) any sign was past, the scene aside."""
        if not self.checked:
            return None
        signs = self.signs.values()
        return AbstainSpace.of(any(s.feature_past for s in signs), any(s.image_past for s in signs))

    @property
    def scene_score(self) -> float | None:
        """The scene space's distance/threshold (None: not checked, or no scene statistics)."""
        ratios = [s.scene_ratio for s in self.signs.values() if s.scene_ratio is not None]
        return max(ratios) if self.checked and ratios else None

    def message(self) -> str:
        pack = f"pack {self.pack_version}" if self.pack_version else "the installed pack"
        if not self.checked:
            return f"{pack} carries no abstention statistics: it cannot tell unfamiliar images"
        if self.space is AbstainSpace.SCENE:
            return (f"The models were not trained on photos like this: the whole photo is unlike "
                    f"{pack}'s training photos (score {self.score:.2f}, above 1 abstains). No "
                    "model grades are given: grade it yourself.")
        if self.abstained:
            return (f"The models do not recognise this image: it is outside {pack}'s training "
                    f"data (score {self.score:.2f}, above 1 abstains). No model grades are "
                    "given: grade it yourself, or retake the photo.")
        return f"within {pack}'s training data (score {self.score:.2f}, above 1 abstains)"

    def to_dict(self) -> dict:
        score = self.score
        space = self.space
        return {"checked": self.checked, "abstained": self.abstained,
                "score": None if score is None else round(score, 4),
                "space": None if space is None else space.value,
                "signs": {k: v.to_dict() for k, v in self.signs.items()},
                "message": self.message()}
