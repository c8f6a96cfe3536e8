"""Fit a converted model's abstention statistics (device.abstain) and calibrate its
threshold: features of the training split fit the Gaussians, features of the
held-out split set the threshold. Both are read from the converted .tflite through
the device's own interpreter wrapper, so the device scores exactly these features.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from device.abstain import DEFAULT_ACCEPT, METHOD, STATS_SUFFIX, calibrate_threshold, fit_stats
from device.card import AbstentionInfo
from device.interpreter import GradeModel
from device.packs.manifest import sha256_file

log = logging.getLogger(__name__)


class AbstentionFitError(ValueError):
    """The model returns no pooled features, or there are too few images to fit on."""


def stats_path_for(tflite_path: Path) -> Path:
    """``DIR/erythema.tflite`` -> ``DIR/erythema.ood.npz``."""
    tflite_path = Path(tflite_path)
    return tflite_path.with_name(tflite_path.stem + STATS_SUFFIX)


def model_features(model: GradeModel, images: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
    """Pooled features (N, D) of uint8 images at the model's input size."""
    if not model.has_features:
        raise AbstentionFitError(f"{model.path}: returns no pooled features; convert it again "
                                 "with this software (the model contract's second output)")
    rows = []
    for image in images:
        _, feats = model.predict_with_features(np.asarray(image, np.uint8))
        rows.append(feats)
    return np.stack(rows) if rows else np.zeros((0, model.feature_dim or 0), np.float32)


def fit_abstention(tflite: Path, train_images: np.ndarray, train_grades: Sequence[int],
                   val_images: np.ndarray, *, accept: float = DEFAULT_ACCEPT,
                   threads: int = 2) -> AbstentionInfo:
    """Write ``<sign>.ood.npz`` beside ``tflite`` and return the card's section for it."""
    if len(train_images) < 2 or len(val_images) < 1:
        raise AbstentionFitError(f"abstention needs training and held-out images; got "
                                 f"{len(train_images)} and {len(val_images)}")
    model = GradeModel(tflite, threads=threads)
    stats, shrink = fit_stats(model_features(model, train_images), np.asarray(train_grades))
    val_dist = stats.distances(model_features(model, val_images))
    threshold, accepted = calibrate_threshold(val_dist, accept)
    stats = stats.with_threshold(threshold)
    path = stats_path_for(tflite)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(stats.to_bytes())
    tmp.replace(path)
    log.info("%s: abstention threshold %.3f accepts %.1f %% of %d held-out images", tflite.name,
             threshold, 100 * accepted, len(val_images))
    return AbstentionInfo(
        method=METHOD, stats_file=path.name, stats_sha256=sha256_file(path),
        feature_dim=stats.dim, classes=list(stats.classes), n_fit=len(train_images),
        shrinkage=round(float(shrink), 6), threshold=threshold, target_accept=accept,
        heldout_accepted=accepted, n_heldout=len(val_images),
        how=(f"Mahalanobis distance to the nearest grade mean (shared Ledoit-Wolf covariance, "
             f"fitted on {len(train_images)} training images through this .tflite); the "
             f"threshold is the smallest distance accepting at least {accept:.0%} of the "
             f"{len(val_images)} held-out images"))


def fit_for_run(run: Any, tflite: Path, val_images: np.ndarray, *, threads: int = 2) -> AbstentionInfo:
    """``fit_abstention`` on a trainer.run.Run's own training split (one sign)."""
    from trainer.run import load_images

    train = [s for s in run.train_samples() if s.grades.get(run.sign) is not None]
    images = load_images([s.path for s in train], run.image_size)
    return fit_abstention(tflite, images, [int(s.grades[run.sign]) for s in train], val_images,
                          threads=threads)
