"""Abstention's second space: low-level statistics of the crop exactly as the model is
fed (the resized crop), independent of the model.

A small model trained on rendered images can map a camera photo's crop close to its
training features: its pooled features were never asked to tell the two apart. How an
image was made shows in its pixels, though. Rendered skin is smooth noise fields,
a defocus blur and Gaussian sensor noise; a camera photo has 1/f texture (pores, hair,
creases, fabric), heavy-tailed detail, specular highlights, JPEG-smoothed chroma and
colours from real light. So each crop is described by:

- colour moments in CIE Lab: mean, standard deviation and skew per channel (9);
- band energies of the lightness at three scales (differences of Gaussians, sigma
  0.7 / 1.4 / 2.8), as logs, and the kurtosis of the two finest bands (5);
- gradient-magnitude quantiles 50 / 90 / 99 % (Sobel on the lightness), as logs (3);
- a rotation-invariant uniform LBP histogram (8 neighbours, radius 1; 10 bins, the
  last dropped since they sum to one) (9);
- saturation mean and spread, and the achromatic share (saturation < 0.1) (3).

(Version 1 also had five colour-with-lightness values. They were added after seeing
their effect on the third-party development photos, which may not select anything a
pack ships with, so version 2 leaves them out.)

At conversion (convert.spacefit) one Gaussian (Ledoit-Wolf shrunk covariance, on standardised
descriptors) is fitted to the training split's crops; the threshold is the smallest
Mahalanobis distance accepting at least 99 % of the held-out split, the same rule as
the feature space (device.grading.abstain). numpy and OpenCV only, no BLAS products on the
scan path (einsum's own loops, see device.grading.abstain).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from typing import TypeVar

import numpy as np

log = logging.getLogger(__name__)

#: Bumped when ``describe`` changes; a pack's statistics name the version they were fitted with.
DESCRIPTOR_VERSION = 2
DESCRIPTOR_NAMES: tuple[str, ...] = (
    *(f"lab_{c}_{m}" for c in "Lab" for m in ("mean", "std", "skew")),
    "band1_log_energy", "band2_log_energy", "band3_log_energy",
    "band1_log_kurtosis", "band2_log_kurtosis",
    "grad_log_q50", "grad_log_q90", "grad_log_q99",
    *(f"lbp_riu2_{k}" for k in range(9)),
    "sat_mean", "sat_std", "achromatic_share",
)
DIM = len(DESCRIPTOR_NAMES)
# (A fourth, 5.6, was blurred too until the bands were seen never to read it.)
_SIGMAS = (0.7, 1.4, 2.8)
#: The lightness is blurred this much (pixels at the input size) before the texture
#: measures: a crop's finest pixel noise depends on how far the device shrank it (the
#: camera's distance, the crop's size), not on what was photographed.
PRE_BLUR = 1.0
#: LBP neighbours count as brighter only by this much lightness (Lab L, 0-100): flat
#: areas then read as flat instead of as coin tosses between quantisation steps.
LBP_TOLERANCE = 0.5
#: Acquisition-blur variants (Gaussian sigma at the input size) of each training crop
#: in the fit: the same crop shrunk from a larger frame is smoother (``variants``).
ACQUISITION_BLURS = (0.25, 0.5, 0.75, 1.0)
_EPS = 1e-6
# Neighbours of the 8-point, radius-1 LBP, in circular order.
_NEIGHBOURS = ((-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1))


class ImageStatsError(ValueError):
    """An image that cannot be described (not RGB uint8, too small)."""


def _moments(x: np.ndarray) -> tuple[float, float, float]:
    mean = float(x.mean())
    d = x - mean
    std = float(np.sqrt((d * d).mean()))
    skew = float((d * d * d).mean()) / (std ** 3 + _EPS) if std > _EPS else 0.0
    return mean, std, skew


def variants(rgb: np.ndarray) -> list[np.ndarray]:
    """A training crop and its acquisition-blur variants (``ACQUISITION_BLURS``), for the fit."""
    import cv2

    return [rgb, *(cv2.GaussianBlur(rgb, (0, 0), s) for s in ACQUISITION_BLURS)]


def _riu2_table() -> np.ndarray:
    """The riu2 bin of each 8-bit neighbour pattern (bit i: neighbour i brighter): its
    count of set bits when at most two 0/1 transitions around the circle, else 9."""
    table = np.empty(256, np.intp)
    for pattern in range(256):
        bits = [(pattern >> i) & 1 for i in range(8)]
        changes = sum(bits[i] != bits[(i + 1) % 8] for i in range(8))
        table[pattern] = sum(bits) if changes <= 2 else 9
    return table


_RIU2 = _riu2_table()


def _lbp_riu2(gray: np.ndarray) -> np.ndarray:
    """Rotation-invariant uniform LBP histogram (10 bins: 0..8 set bits when at most two
    0/1 transitions around the circle, 9 for all others), normalised to sum 1. The
    neighbours' comparisons are packed into one byte per pixel and binned by table."""
    h, w = gray.shape
    level = gray[1:-1, 1:-1] + LBP_TOLERANCE
    pattern = np.zeros(level.shape, np.uint8)
    for i, (dy, dx) in enumerate(_NEIGHBOURS):
        pattern |= (gray[1 + dy:h - 1 + dy, 1 + dx:w - 1 + dx] >= level).view(np.uint8) << i
    hist = np.bincount(_RIU2[pattern].ravel(), minlength=10).astype(np.float64)
    return hist / max(hist.sum(), 1.0)


def describe(rgb: np.ndarray) -> np.ndarray:
    """The descriptor (``DIM`` float64 values, ``DESCRIPTOR_NAMES``) of one RGB uint8 crop
    at the model's input size."""
    import cv2

    img = np.asarray(rgb)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3 or min(img.shape[:2]) < 8:
        raise ImageStatsError(f"need an RGB uint8 image of at least 8x8 pixels; got "
                              f"{img.dtype} {img.shape}")
    f = img.astype(np.float32) / 255.0
    lab = cv2.cvtColor(f, cv2.COLOR_RGB2LAB)
    out: list[float] = []
    for c in range(3):
        out.extend(_moments(lab[..., c]))
    light = cv2.GaussianBlur(np.ascontiguousarray(lab[..., 0]), (0, 0), PRE_BLUR)
    blurred = [cv2.GaussianBlur(light, (0, 0), s) for s in _SIGMAS]
    bands = [light - blurred[0], blurred[0] - blurred[1], blurred[1] - blurred[2]]
    squares = [b * b for b in bands]
    energies = [float(sq.mean()) for sq in squares]
    out.extend(math.log(e + _EPS) for e in energies)
    # The fourth power as the square squared: ``b ** 4`` goes through float32 powf, which
    # costs more than the rest of the descriptor, for the same value to float rounding.
    for sq, e in zip(squares[:2], energies[:2], strict=True):
        out.append(math.log(float((sq * sq).mean()) / (e * e + _EPS) + _EPS))
    gx = cv2.Sobel(light, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(light, cv2.CV_32F, 0, 1, ksize=3)
    mag = np.sqrt(gx * gx + gy * gy).ravel()
    out.extend(math.log(float(q) + 1e-3) for q in np.quantile(mag, (0.5, 0.9, 0.99)))
    out.extend(_lbp_riu2(light)[:9].tolist())
    # Channel by channel: numpy's reduction over a last axis of three is many times slower.
    r, g, b = f[..., 0], f[..., 1], f[..., 2]
    hi, lo = np.maximum(np.maximum(r, g), b), np.minimum(np.minimum(r, g), b)
    sat = (hi - lo) / (hi + _EPS)
    out.extend((float(sat.mean()), float(sat.std()), float((sat < 0.1).mean())))
    return np.asarray(out, np.float64)


def describe_many(images: np.ndarray | list[np.ndarray]) -> np.ndarray:
    """Descriptors (N, DIM) of a stack of crops."""
    rows = [describe(im) for im in images]
    return np.stack(rows) if rows else np.zeros((0, DIM), np.float64)


_Space = TypeVar("_Space", bound="GaussianSpace")


@dataclass(frozen=True)
class GaussianSpace:
    """One Gaussian over descriptors: mean (D,), precision (D, D) of the shrunk covariance,
    and the threshold on the Mahalanobis distance (not squared). The image-statistics and
    scene spaces are both this, over their own descriptors (convert.spacefit fits them)."""

    mean: np.ndarray
    precision: np.ndarray
    threshold: float
    version: int = 0

    def distance_of(self, descriptor: np.ndarray) -> float:
        diff = np.asarray(descriptor, np.float64).reshape(-1) - self.mean
        # einsum's own loops, not BLAS (see device.grading.abstain.FeatureStats.distance).
        sq = float(np.einsum("d,d->", np.einsum("d,de->e", diff, self.precision), diff))
        return math.sqrt(max(sq, 0.0))

    def distances(self, descriptors: np.ndarray) -> np.ndarray:
        diff = np.asarray(descriptors, np.float64) - self.mean[None]
        sq = np.einsum("nd,de,ne->n", diff, self.precision, diff)
        return np.sqrt(np.maximum(sq, 0.0))

    def with_threshold(self: _Space, threshold: float) -> _Space:
        return replace(self, threshold=float(threshold))


@dataclass(frozen=True)
class ImageStats(GaussianSpace):
    """The image-statistics space: a GaussianSpace over ``describe`` of the crops."""

    version: int = DESCRIPTOR_VERSION

    def distance(self, rgb: np.ndarray) -> float:
        """Distance of one crop (RGB uint8 at the model's input size) to the training crops."""
        return self.distance_of(describe(rgb))
