"""Fitting the abstention spaces, on the workstation: the feature space's class means and
shared precision, the image-statistics and scene spaces' Gaussians, and the threshold
that accepts a chosen share of held-out images. The device only loads and scores them
(device.grading.abstain, imagestats, scenestats); convert.abstention drives the fit.

The covariances are shrunk with scikit-learn's Ledoit-Wolf estimator: the sample
covariance pulled towards a multiple of the identity by the amount Ledoit and Wolf (2004)
estimate from the data, so a few hundred images still give an invertible matrix."""

from __future__ import annotations

import math
from typing import TypeVar

import numpy as np

from device.grading.abstain import DEFAULT_ACCEPT, FeatureStats, StatsError
from device.grading.imagestats import DIM, GaussianSpace, ImageStats, ImageStatsError
from device.grading.scenestats import SCENE_DIM, SceneStats, SceneStatsError

Space = TypeVar("Space", bound=GaussianSpace)

#: Floor on a descriptor's spread, as a share of the median spread: a constant column
#: must not blow up the precision.
MIN_SCALE_SHARE = 1e-3
_EPS = 1e-6


def shrunk_covariance(centred: np.ndarray) -> tuple[np.ndarray, float]:
    """Ledoit-Wolf covariance of centred rows (N, D) and the shrinkage used."""
    from sklearn.covariance import ledoit_wolf

    cov, shrink = ledoit_wolf(np.asarray(centred, np.float64), assume_centered=True)
    return cov, float(shrink)


def fit_gaussian(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Mean, precision and shrinkage of one Gaussian over rows ``x`` (N, D). The rows are
    standardised before the shrinkage (their units differ), and the scaling is folded
    into the precision. The image and scene spaces both fit with it."""
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale = np.maximum(scale, MIN_SCALE_SHARE * max(float(np.median(scale)), _EPS))
    cov, shrink = shrunk_covariance((x - mean) / scale)
    precision = np.linalg.pinv(cov, hermitian=True) / scale[:, None] / scale[None, :]
    return mean, precision, shrink


def fit_stats(features: np.ndarray, labels: np.ndarray) -> tuple[FeatureStats, float]:
    """The feature space: class means and the shared, shrunk covariance's inverse;
    threshold not yet set (infinite). Returns the statistics and the shrinkage used."""
    feats = np.asarray(features, np.float64)
    labels = np.asarray(labels).astype(int)
    if feats.ndim != 2 or feats.shape[0] != labels.shape[0] or feats.shape[0] < 2:
        raise StatsError(f"need (N, D) features with N >= 2 and one label each; got "
                         f"{feats.shape} and {labels.shape}")
    classes = tuple(int(c) for c in np.unique(labels))
    means = np.stack([feats[labels == c].mean(axis=0) for c in classes])
    centred = feats - means[np.searchsorted(classes, labels)]
    cov, shrink = shrunk_covariance(centred)
    precision = np.linalg.pinv(cov, hermitian=True)
    return FeatureStats(means.astype(np.float32), classes, precision.astype(np.float32),
                        math.inf), shrink


def _fit_space(kind: type[Space], descriptors: np.ndarray, dim: int, error: type[Exception],
               what: str) -> tuple[Space, float]:
    """A ``kind`` of GaussianSpace over ``descriptors`` (N, dim), threshold not yet set
    (infinite), and its shrinkage."""
    x = np.asarray(descriptors, np.float64)
    if x.ndim != 2 or x.shape[1] != dim or x.shape[0] < 2:
        raise error(f"need (N, {dim}) {what} with N >= 2; got {x.shape}")
    mean, precision, shrink = fit_gaussian(x)
    return kind(mean, precision, math.inf), shrink


def fit_image_stats(descriptors: np.ndarray) -> tuple[ImageStats, float]:
    """The image-statistics space (threshold not yet set: infinite) and its shrinkage."""
    return _fit_space(ImageStats, descriptors, DIM, ImageStatsError, "descriptors")


def fit_scene_stats(descriptors: np.ndarray) -> tuple[SceneStats, float]:
    """The scene space (threshold not yet set: infinite) and its shrinkage."""
    return _fit_space(SceneStats, descriptors, SCENE_DIM, SceneStatsError, "scene descriptors")


def calibrate_threshold(distances: np.ndarray, accept: float = DEFAULT_ACCEPT) -> tuple[float, float]:
    """The smallest threshold accepting at least ``accept`` of ``distances`` (held-out
    images; accepted means distance <= threshold), and the share it accepts."""
    d = np.sort(np.asarray(distances, np.float64))
    if d.size == 0:
        raise StatsError("no held-out images to calibrate the abstention threshold on")
    if not 0 < accept <= 1:
        raise StatsError(f"accept share {accept} must be in (0, 1]")
    k = min(d.size - 1, max(0, math.ceil(accept * d.size) - 1))
    threshold = float(d[k]) * (1 + 1e-6) + 1e-9  # float32 scoring on the device: a hair of room
    return threshold, float((d <= threshold).mean())
