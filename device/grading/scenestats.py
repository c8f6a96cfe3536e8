"""Abstention's third space: the whole frame, not just the crop (issue 23, §3).

The crop-level spaces (device.grading.abstain's features, device.grading.imagestats' crop
statistics) see a 96-pixel square that a real photo's lesion and a rendered one can
share. The frame around it tells them apart more easily: what the background is, how
much of the frame is skin, how skin and background are lit and textured, how sharp the
edges between them are. The scan already keeps a tiny copy of every frame and its skin
mask (device.vision.frameviews: ``FrameViews.tiny``, ``.skin``, ``.lab``, shorter side
192 px), so the frame is described from those, for well under a millisecond:

- the share of skin in the frame, in its central half and on its border (3);
- CIE Lab mean and standard deviation of the skin pixels and of the others (12);
- log band energies of the lightness (differences of Gaussians, sigma 1 / 2 / 4; the
  two coarser bands on the view halved) on the skin and on the rest, and the kurtosis
  of the finest band on the skin (7);
- log mean gradient magnitude and the share of strong edges (Sobel on the lightness) (2);
- how ragged the skin mask is: skin/not-skin changes between neighbours per skin pixel (1);
- a rotation-invariant uniform LBP histogram of the lightness halved (9, as imagestats);
- HSV saturation mean of the skin and of the rest (2).

At conversion (convert.spacefit) one Gaussian (Ledoit-Wolf, standardised, as imagestats) is fitted to the
descriptors of the pack's own training photos, recorded while convert.devicecrops cut
them, so the descriptor is that of the frame the crop came from, through the same
``look_at``. The threshold is calibrated on the held-out split's photos. A scan past it
abstains: the models were not trained on photos like this. The device fits nothing.

``describe_scene`` takes arrays, not FrameViews: grading sits below vision in the layers,
so the scan hands it the views' arrays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from device.grading.imagestats import GaussianSpace, _lbp_riu2

#: Bumped when ``describe_scene`` changes; a pack's statistics name the version they were fitted with.
SCENE_VERSION = 1
SCENE_NAMES: tuple[str, ...] = (
    "skin_share", "skin_share_centre", "skin_share_border",
    *(f"{part}_lab_{c}_{m}" for part in ("skin", "rest") for m in ("mean", "std") for c in "Lab"),
    *(f"{part}_band{k}_log_energy" for part in ("skin", "rest") for k in (1, 2, 3)),
    "skin_band1_log_kurtosis",
    "grad_log_mean", "strong_edge_share", "skin_raggedness",
    *(f"lbp_riu2_{k}" for k in range(9)),
    "skin_sat_mean", "rest_sat_mean",
)
SCENE_DIM = len(SCENE_NAMES)
_SIGMAS = (1.0, 2.0, 4.0)
#: Sobel magnitude (Lab lightness units) above which an edge counts as strong.
STRONG_EDGE = 40.0
#: Fewer pixels than this in a part (skin, or the rest): that part is described by the whole frame.
_MIN_PART = 16
_EPS = 1e-6




class SceneStatsError(ValueError):
    """A frame view that cannot be described (not RGB uint8, too small, mismatched mask)."""


def _split_moments(image: np.ndarray, on: np.ndarray, n_on: int, *, spread: bool
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (mean, std when ``spread``) of ``image`` over the skin (``on``, uint8 0/1,
    ``n_on`` pixels) and over the rest, as two rows each. The rest comes from the whole
    image less the skin (one masked pass, one plain), so a part is never walked twice;
    a part under _MIN_PART pixels gets the whole image's values."""
    import cv2

    n = image.shape[0] * image.shape[1]
    if spread:
        m_all, s_all = (x.ravel() for x in cv2.meanStdDev(image))
        m_on, s_on = (x.ravel() for x in cv2.meanStdDev(image, mask=on))
    else:
        m_all, m_on = (np.asarray(cv2.mean(image)[:image.shape[2]]),
                       np.asarray(cv2.mean(image, mask=on)[:image.shape[2]]))
        s_all = s_on = np.zeros_like(m_all)
    n_off = n - n_on
    if n_on < _MIN_PART or n_off < _MIN_PART:
        m_on, s_on = (m_on, s_on) if n_on >= _MIN_PART else (m_all, s_all)
        m_off, s_off = (m_all, s_all) if n_off < _MIN_PART else (m_on, s_on)
        return np.stack([m_on, m_off]), np.stack([s_on, s_off])
    m_off = (m_all * n - m_on * n_on) / n_off
    second = ((s_all ** 2 + m_all ** 2) * n - (s_on ** 2 + m_on ** 2) * n_on) / n_off
    s_off = np.sqrt(np.maximum(second - m_off ** 2, 0.0))
    return np.stack([m_on, m_off]), np.stack([s_on, s_off])


def describe_scene(tiny: np.ndarray, skin: np.ndarray, lab: np.ndarray | None = None,
                   saturation: np.ndarray | None = None) -> np.ndarray:
    """The descriptor (``SCENE_DIM`` float64 values, ``SCENE_NAMES``) of one frame from its tiny
    view: ``tiny`` RGB uint8, ``skin`` its boolean skin mask; ``lab`` its float CIELAB
    (L 0-100) and ``saturation`` its HSV saturation (uint8) when the caller already has
    them (FrameViews.lab, FrameViews.saturation)."""
    import cv2

    img = np.asarray(tiny)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3 or min(img.shape[:2]) < 16:
        raise SceneStatsError(f"need an RGB uint8 view of at least 16x16 pixels; got "
                              f"{img.dtype} {img.shape}")
    mask = np.asarray(skin, bool)
    if mask.shape != img.shape[:2]:
        raise SceneStatsError(f"skin mask {mask.shape} does not match the view {img.shape[:2]}")
    if lab is None:
        lab = cv2.cvtColor(img.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
    h, w = mask.shape
    on = mask.view(np.uint8)
    n_skin = int(cv2.countNonZero(on))
    out: list[float] = [n_skin / (h * w)]
    centre = on[h // 4:h - h // 4, w // 4:w - w // 4]
    border = (int(on[:4].sum()) + int(on[-4:].sum()) + int(on[4:-4, :4].sum())
              + int(on[4:-4, -4:].sum()))
    out += [float(centre.mean()), border / (8 * w + 8 * (h - 8))]
    means, stds = _split_moments(lab, on, n_skin, spread=True)
    for part in range(2):  # skin, then the rest
        out += [*means[part].tolist(), *stds[part].tolist()]
    light = np.ascontiguousarray(lab[..., 0])
    # The finest band on the view; the two coarser ones on the view halved (INTER_AREA),
    # where their blurs cost a quarter as much (sigma 1 and 2 there: 2 and 4 on the view).
    band = light - cv2.GaussianBlur(light, (0, 0), _SIGMAS[0])
    square = cv2.multiply(band, band)
    fine = _split_moments(cv2.merge([square, cv2.multiply(square, square)]), on, n_skin,
                          spread=False)[0]
    half = cv2.resize(light, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    on_half = cv2.resize(on, (w // 2, h // 2), interpolation=cv2.INTER_NEAREST)
    b1 = cv2.GaussianBlur(half, (0, 0), _SIGMAS[1] / 2)
    b2 = cv2.GaussianBlur(half, (0, 0), _SIGMAS[2] / 2)
    coarse = _split_moments(cv2.merge([cv2.multiply(half - b1, half - b1),
                                       cv2.multiply(b1 - b2, b1 - b2)]),
                            on_half, cv2.countNonZero(on_half), spread=False)[0]
    for part in range(2):
        out += [math.log(float(e) + _EPS) for e in (fine[part, 0], *coarse[part])]
    e1, e2 = float(fine[0, 0]), float(fine[0, 1])
    out.append(math.log(e2 / (e1 * e1 + _EPS) + _EPS))
    gx = cv2.Sobel(light, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(light, cv2.CV_32F, 0, 1, ksize=3)
    mag = cv2.magnitude(gx, gy)
    out += [math.log(cv2.mean(mag)[0] + 1e-3),
            cv2.countNonZero((mag > STRONG_EDGE).view(np.uint8)) / (h * w)]
    changes = (cv2.countNonZero(cv2.absdiff(on[1:], on[:-1]))
               + cv2.countNonZero(cv2.absdiff(on[:, 1:], on[:, :-1])))
    out.append(changes / max(n_skin, 1))
    # The LBP on the view halved: texture a step coarser, and a quarter of the cost.
    out += _lbp_riu2(half)[:9].tolist()
    if saturation is None:
        saturation = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)[..., 1]
    sat = saturation[..., None]
    out += (_split_moments(sat, on, n_skin, spread=False)[0][:, 0] / 255.0).tolist()
    return np.asarray(out, np.float64)


@dataclass(frozen=True)
class SceneStats(GaussianSpace):
    """The scene space: a GaussianSpace over ``describe_scene`` of the pack's training
    photos (SCENE_DIM values)."""

    version: int = SCENE_VERSION
