"""Colour science for the reference card: sRGB <-> linear <-> CIELAB, CIEDE2000, the
24 reference patches, a 3x3 correction fitted in linear RGB, and illuminant gains.

Reference values: the common 24-patch chart's published sRGB values (D65, 8 bit),
patches in reading order, 4 rows of 6. Lab is computed from them with the sRGB
matrix and the D65 white, so the reference, the correction and the residual all
live in one colour space (sRGB/D65), the space the pack's models were trained in.

The correction: ``ref_lin ~= obs_lin @ M`` (M 3x3), fitted by least squares on the
patches that are neither clipped nor in shadow-like outliers (``fit_correction``
drops the worst few once and refits). ``apply_correction`` maps a whole uint8
frame through sRGB -> linear -> M -> sRGB with look-up tables.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import cv2
import numpy as np

log = logging.getLogger(__name__)

#: The 24 patches' names and published sRGB values (0-255), reading order.
PATCH_NAMES = (
    "dark skin", "light skin", "blue sky", "foliage", "blue flower", "bluish green",
    "orange", "purplish blue", "moderate red", "purple", "yellow green", "orange yellow",
    "blue", "green", "red", "yellow", "magenta", "cyan",
    "white", "neutral 8", "neutral 6.5", "neutral 5", "neutral 3.5", "black",
)
REFERENCE_SRGB = np.array([
    [115, 82, 68], [194, 150, 130], [98, 122, 157], [87, 108, 67], [133, 128, 177],
    [103, 189, 170], [214, 126, 44], [80, 91, 166], [193, 90, 99], [94, 60, 108],
    [157, 188, 64], [224, 163, 46], [56, 61, 150], [70, 148, 73], [175, 54, 60],
    [231, 199, 31], [187, 86, 149], [8, 133, 161], [243, 243, 242], [200, 200, 200],
    [160, 160, 160], [122, 122, 121], [85, 85, 85], [52, 52, 52],
], np.float64) / 255.0
GRID_ROWS, GRID_COLS = 4, 6

_SRGB_TO_XYZ = np.array([[0.4124564, 0.3575761, 0.1804375],
                         [0.2126729, 0.7151522, 0.0721750],
                         [0.0193339, 0.1191920, 0.9503041]])
_XYZ_TO_SRGB = np.linalg.inv(_SRGB_TO_XYZ)
_D65_XYZ = np.array([0.95047, 1.0, 1.08883])
_D65_XY = (0.31271, 0.32902)
#: Observed patch values at or above this (sRGB, 0-1) in any channel count as clipped.
CLIP_LEVEL = 250 / 255


def srgb_to_linear(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, np.float64)
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(v: np.ndarray) -> np.ndarray:
    v = np.clip(np.asarray(v, np.float64), 0.0, None)
    return np.where(v <= 0.0031308, v * 12.92, 1.055 * v ** (1 / 2.4) - 0.055)


def linear_to_lab(rgb_lin: np.ndarray) -> np.ndarray:
    """Linear sRGB (..., 3) -> CIELAB under D65."""
    xyz = np.asarray(rgb_lin, np.float64) @ _SRGB_TO_XYZ.T / _D65_XYZ
    d = 6 / 29
    f = np.where(xyz > d ** 3, np.cbrt(xyz), xyz / (3 * d * d) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]),
                     200 * (f[..., 1] - f[..., 2])], axis=-1)


REFERENCE_LINEAR = srgb_to_linear(REFERENCE_SRGB)
REFERENCE_LAB = linear_to_lab(REFERENCE_LINEAR)


def delta_e2000(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """CIEDE2000 colour difference (Sharma, Wu, Dalal 2005), kL = kC = kH = 1."""
    lab1, lab2 = np.asarray(lab1, np.float64), np.asarray(lab2, np.float64)
    l1, a1, b1 = lab1[..., 0], lab1[..., 1], lab1[..., 2]
    l2, a2, b2 = lab2[..., 0], lab2[..., 1], lab2[..., 2]
    c_bar = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2
    g = 0.5 * (1 - np.sqrt(c_bar ** 7 / (c_bar ** 7 + 25.0 ** 7)))
    a1p, a2p = a1 * (1 + g), a2 * (1 + g)
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p = np.degrees(np.arctan2(b1, a1p)) % 360
    h2p = np.degrees(np.arctan2(b2, a2p)) % 360
    d_lp, d_cp = l2 - l1, c2p - c1p
    dh = h2p - h1p
    dh = np.where(dh > 180, dh - 360, np.where(dh < -180, dh + 360, dh))
    dh = np.where(c1p * c2p == 0, 0.0, dh)
    d_hp = 2 * np.sqrt(c1p * c2p) * np.sin(np.radians(dh / 2))
    l_bar, c_bar_p = (l1 + l2) / 2, (c1p + c2p) / 2
    h_sum = h1p + h2p
    h_bar = np.where(np.abs(h1p - h2p) > 180,
                     np.where(h_sum < 360, (h_sum + 360) / 2, (h_sum - 360) / 2), h_sum / 2)
    h_bar = np.where(c1p * c2p == 0, h_sum, h_bar)
    t = (1 - 0.17 * np.cos(np.radians(h_bar - 30)) + 0.24 * np.cos(np.radians(2 * h_bar))
         + 0.32 * np.cos(np.radians(3 * h_bar + 6)) - 0.20 * np.cos(np.radians(4 * h_bar - 63)))
    d_theta = 30 * np.exp(-(((h_bar - 275) / 25) ** 2))
    r_c = 2 * np.sqrt(c_bar_p ** 7 / (c_bar_p ** 7 + 25.0 ** 7))
    s_l = 1 + 0.015 * (l_bar - 50) ** 2 / np.sqrt(20 + (l_bar - 50) ** 2)
    s_c = 1 + 0.045 * c_bar_p
    s_h = 1 + 0.015 * c_bar_p * t
    r_t = -np.sin(np.radians(2 * d_theta)) * r_c
    return np.sqrt((d_lp / s_l) ** 2 + (d_cp / s_c) ** 2 + (d_hp / s_h) ** 2
                   + r_t * (d_cp / s_c) * (d_hp / s_h))


def planckian_xy(kelvin: float) -> tuple[float, float]:
    """Chromaticity of a black body (Kim et al. 2002 cubic fit, 1667-25000 K)."""
    t = float(np.clip(kelvin, 1667.0, 25000.0))
    if t <= 4000:
        x = -0.2661239e9 / t ** 3 - 0.2343589e6 / t ** 2 + 0.8776956e3 / t + 0.179910
    else:
        x = -3.0258469e9 / t ** 3 + 2.1070379e6 / t ** 2 + 0.2226347e3 / t + 0.240390
    if t <= 2222:
        y = -1.1063814 * x ** 3 - 1.34811020 * x ** 2 + 2.18555832 * x - 0.20219683
    elif t <= 4000:
        y = -0.9549476 * x ** 3 - 1.37418593 * x ** 2 + 2.09137015 * x - 0.16748867
    else:
        y = 3.0817580 * x ** 3 - 5.87338670 * x ** 2 + 3.75112997 * x - 0.37001483
    return x, y


def _xy_to_linear(x: float, y: float) -> np.ndarray:
    return _XYZ_TO_SRGB @ np.array([x / y, 1.0, (1 - x - y) / y])


def illuminant_gains(kelvin: float) -> np.ndarray:
    """Per-channel linear-sRGB gains of a black body at ``kelvin`` relative to D65, for a
    camera whose white balance is locked at daylight (a von Kries model: each channel
    scaled; real sensors mix spectra, which the crosstalk matrix stands in for)."""
    return _xy_to_linear(*planckian_xy(kelvin)) / _xy_to_linear(*_D65_XY)


@dataclass(frozen=True)
class Fit:
    """A fitted correction: ``ref_lin ~= decode(obs, gamma) @ matrix`` (``gamma``: the
    camera's tone curve taken as a power law; None: exact sRGB), the residual CIEDE2000
    of each patch after correction (NaN for patches not used), and which patches the fit
    used."""

    matrix: np.ndarray
    delta_e: np.ndarray
    used: np.ndarray  # bool per patch
    gamma: float | None = None

    @property
    def mean_delta_e(self) -> float:
        return float(np.mean(self.delta_e[self.used])) if self.used.any() else math.inf

    @property
    def max_delta_e(self) -> float:
        return float(np.max(self.delta_e[self.used])) if self.used.any() else math.inf


def decode(srgb: np.ndarray, gamma: float | None = None) -> np.ndarray:
    """Encoded values (0-1) to linear light: exact sRGB, or a power law ``gamma``."""
    return srgb_to_linear(srgb) if gamma is None else np.clip(srgb, 0.0, None) ** gamma


def _residual(obs_lin: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    return delta_e2000(linear_to_lab(np.clip(obs_lin @ matrix, 0.0, None)), REFERENCE_LAB)


#: Tone curves tried: exact sRGB, and power laws (coarse, then every 0.01 about the best).
COARSE_GAMMAS = np.round(np.arange(1.6, 3.01, 0.05), 2)


def _tone_error(obs: np.ndarray, usable: np.ndarray, gamma: float | None) -> float:
    """RMS error in sRGB-encoded values of the best 3x3 fit after decoding with ``gamma``."""
    lin = decode(obs[usable], gamma)
    matrix = np.linalg.lstsq(lin, REFERENCE_LINEAR[usable], rcond=None)[0]
    return float(np.sqrt(np.mean((linear_to_srgb(lin @ matrix) - REFERENCE_SRGB[usable]) ** 2)))


def best_gamma(obs: np.ndarray, usable: np.ndarray) -> float | None:
    """The tone curve that best straightens the observed patches: None (exact sRGB) or
    the power law's exponent. Camera JPEGs are rarely exact sRGB."""
    coarse = min(COARSE_GAMMAS, key=lambda g: _tone_error(obs, usable, g))
    fine = np.round(np.arange(coarse - 0.04, coarse + 0.041, 0.01), 2)
    power = float(min(fine, key=lambda g: _tone_error(obs, usable, g)))
    return None if _tone_error(obs, usable, None) <= _tone_error(obs, usable, power) else power


def fit_correction(observed_srgb: np.ndarray, *, max_dropped: int = 4,
                   outlier_delta_e: float = 8.0, tone: bool = True) -> Fit | None:
    """Fit the correction from the 24 observed patch colours (sRGB 0-1, NaN where a patch
    could not be sampled) to the reference: the tone curve (``tone``: exact sRGB or a
    power law, whichever fits; the grey patches pin it) and a 3x3 matrix in linear RGB.
    Clipped patches are left out; then up to ``max_dropped`` patches whose residual is
    over ``outlier_delta_e`` (a shadow, a stain, a reflection) are dropped and the fit
    repeated. None when fewer than 9 patches are usable (the matrix has 9 unknowns)."""
    obs = np.nan_to_num(np.asarray(observed_srgb, np.float64))
    usable = (np.isfinite(np.asarray(observed_srgb, np.float64)).all(axis=1)
              & (obs.max(axis=1) < CLIP_LEVEL))
    if usable.sum() < 9:
        return None
    gamma = best_gamma(obs, usable) if tone else None
    obs_lin = decode(obs, gamma)
    matrix = np.linalg.lstsq(obs_lin[usable], REFERENCE_LINEAR[usable], rcond=None)[0]
    de = _residual(obs_lin, matrix)
    worst = [i for i in np.argsort(-np.where(usable, de, -1)) if usable[i]][:max_dropped]
    drop = [i for i in worst if de[i] > outlier_delta_e]
    if drop and usable.sum() - len(drop) >= 9:
        usable[drop] = False
        matrix = np.linalg.lstsq(obs_lin[usable], REFERENCE_LINEAR[usable], rcond=None)[0]
        de = _residual(obs_lin, matrix)
    return Fit(matrix, np.where(usable, de, np.nan), usable, gamma)


_DECODE = srgb_to_linear(np.arange(256) / 255.0).astype(np.float32)


def apply_correction(rgb: np.ndarray, matrix: np.ndarray, gamma: float | None = None
                     ) -> np.ndarray:
    """Map an RGB uint8 frame through the correction: decode (exact sRGB, or the power
    law ``gamma``) -> ``@ matrix`` -> sRGB, clipped to the displayable range. Returns a
    new uint8 array.

    OpenCV throughout (a scan corrects its preview and crop: milliseconds count). The
    encoding uses the sRGB power curve for every value; below its linear knee (linear
    0.0031, 8-bit level 10) that differs from the exact curve by at most 2 levels."""
    table = _DECODE if gamma is None else (np.arange(256) / 255.0) ** gamma
    lin = cv2.LUT(np.ascontiguousarray(rgb), table.astype(np.float32).reshape(1, 256))
    # cv2.transform computes dst = m @ src per pixel, so pass the transpose.
    out = cv2.transform(lin, np.ascontiguousarray(matrix.T, np.float32))
    out = cv2.pow(cv2.max(out, 0.0), 1 / 2.4)  # pow takes |x| for a fractional power
    # saturate(255 * (1.055 x - 0.055)) rounded, in one pass.
    return cv2.addWeighted(out, 1.055 * 255, out, 0.0, -0.055 * 255, dtype=cv2.CV_8U)
