"""Painting one synthetic lesion patch (the generator's inner loop; see trainer/synth.py).

Everything is vectorised numpy + OpenCV on float32 images in [0, 1] (RGB). Random numbers are
drawn in a fixed order whatever the grades, so two renders from the same seed differ only where
a sign's severity differs: the contact sheet and the tests rely on that.

Severity: an integer grade g is turned into a continuous severity drawn inside the grade's band
[g - 0.5, g + 0.5] plus Gaussian jitter (sd 0.15), clipped to [0, 3.5]: neighbouring grades
overlap, so a good classifier scores high but not perfectly: even a reader who saw the severity
exactly would misgrade about 9 % (the jitter crosses a band edge), before any visual ambiguity
(dark skin, white balance, lesion extent). A float is taken as the severity.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from functools import lru_cache

import cv2
import numpy as np

from device.core.vocab import MODEL_SIGNS, Sign

log = logging.getLogger(__name__)

BAND_JITTER_SD = 0.15
MAX_SEVERITY = 3.5
MAX_SCRATCHES = 28
MAX_DOTS = 24
MAX_HAIRS = 30

# Fitzpatrick I..VI base skin colours (sRGB in [0, 1]), interpolated by ``tone`` in [0, 1].
_SKIN = np.array([
    [0.92, 0.79, 0.72],
    [0.91, 0.75, 0.66],
    [0.81, 0.62, 0.51],
    [0.66, 0.47, 0.36],
    [0.47, 0.32, 0.23],
    [0.29, 0.19, 0.14],
], np.float32)
_FRESH = np.array([0.78, 0.16, 0.15], np.float32)  # raw, bleeding excoriation
_CRUST = np.array([0.33, 0.15, 0.08], np.float32)  # dried haemorrhagic crust


def severity_from_grade(rng: np.random.Generator, grade: float | int) -> float:
    """A continuous severity for ``grade`` (int: drawn in its band with jitter; float: as is).
    Always draws the same two random numbers so later draws do not depend on the grade."""
    u, j = rng.uniform(-0.5, 0.5), rng.normal(0.0, BAND_JITTER_SD)
    if isinstance(grade, (int, np.integer)):
        return float(np.clip(int(grade) + u + j, 0.0, MAX_SEVERITY))
    return float(np.clip(grade, 0.0, MAX_SEVERITY))


def skin_colour(tone: float) -> np.ndarray:
    """Base skin RGB for ``tone`` in [0, 1] (0 = Fitzpatrick I, 1 = VI)."""
    pos = float(np.clip(tone, 0.0, 1.0)) * (len(_SKIN) - 1)
    i = min(int(pos), len(_SKIN) - 2)
    return _SKIN[i] + (pos - i) * (_SKIN[i + 1] - _SKIN[i])


def fitzpatrick(tone: float) -> int:
    """Fitzpatrick type 1..6 for ``tone``."""
    return int(np.clip(round(float(tone) * 5), 0, 5)) + 1


@lru_cache(maxsize=8)
def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates in [-1, 1] (y, x), float32, aspect-correct on x."""
    y = np.linspace(-1.0, 1.0, h, dtype=np.float32)[:, None]
    x = np.linspace(-w / h, w / h, w, dtype=np.float32)[None, :]
    return np.broadcast_to(y, (h, w)).copy(), np.broadcast_to(x, (h, w)).copy()


def smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """Zero-mean, unit-ish variance noise with about ``cells`` features across the height."""
    cells_wide = max(2, round(cells * w / h))
    small = rng.standard_normal((cells + 1, cells_wide + 1), dtype=np.float32)
    # Bicubic to a small grid, then bilinear to full size: as smooth to the eye as one bicubic
    # resize, at a tenth of the cost (cubic resizes were a third of the render time).
    mid = cv2.resize(small, ((cells_wide + 1) * 6, (cells + 1) * 6), interpolation=cv2.INTER_CUBIC)
    big = cv2.resize(mid, (w + w // cells, h + h // cells), interpolation=cv2.INTER_LINEAR)
    return big[:h, :w]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _line_field(y, x, theta, spacing, width, warp) -> np.ndarray:
    """Grooves: 1 on a family of parallel (warped) lines at angle theta, 0 between them."""
    u = (x * math.cos(theta) + y * math.sin(theta) + warp) / spacing
    d = np.abs(u - np.floor(u) - 0.5) * 2.0  # 1 on the line, 0 mid-way
    return np.exp(-((1.0 - d) / width) ** 2)


def render_lesion(rng: np.random.Generator, grades: Mapping[Sign, float | int], *,
                  tone: float, size: int = 256, height: int | None = None,
                  hair: float = 0.3) -> np.ndarray:
    """One lesion photo patch, uint8 RGB (height x size, square by default): the painted skin
    and signs, then uneven lighting, then the camera (white balance, blur, sensor noise).
    ``grades`` may omit signs (grade 0); ``hair`` is the probability of hairs in the patch."""
    h = height or size
    img = paint_lesion(rng, grades, tone=tone, height=h, width=size, hair=hair)
    img = apply_lighting(rng, img)
    return to_uint8(apply_camera(rng, img, h / 256.0))


def paint_lesion(rng: np.random.Generator, grades: Mapping[Sign, float | int], *, tone: float,
                 height: int, width: int, hair: float = 0.3,
                 base_rgb: np.ndarray | None = None,
                 masks: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """The skin and the three signs only, float RGB in [0, 1] laid out channel-first (3, H, W)
    (NumPy broadcasts a per-pixel mask over channels ten times faster that way), no lighting
    or camera.
    ``base_rgb`` fixes the skin colour (to match the skin around a pasted patch); a ``masks``
    dict receives ``"lesion"``: where a sign is visible (redness, thickening, scratches), or
    the core of the lesion area when every grade is 0 -- for drawing the lesion's box."""
    h, w = height, width
    sev = {s: severity_from_grade(rng, grades.get(s, 0)) for s in MODEL_SIGNS}
    # Visible amount: 0 up to severity 0.25 (most grade-0 patches show none), 1 at 3.
    f_ery, f_exc, f_lic = (max(0.0, sev[s] - 0.25) / 2.75 for s in MODEL_SIGNS)
    y, x = _grid(h, w)
    scale = h / 256.0
    # --- skin: per-patch hue jitter, mottling, pores, normal fine skin lines
    base = skin_colour(tone + rng.normal(0, 0.03)) * np.exp(rng.normal(0, 0.03, 3)).astype(
        np.float32)
    if base_rgb is not None:
        base = np.asarray(base_rgb, np.float32)
    # Mottling darkens G and B more than R (blood and melanin, not grey dirt).
    mottle = 0.035 * smooth_noise(rng, h, w, 5) + 0.02 * smooth_noise(rng, h, w, 17)
    pores = cv2.GaussianBlur(rng.standard_normal((h, w), dtype=np.float32), (0, 0), 0.8 * scale)
    img = _ch(base) * (1.0 + mottle * _ch([0.6, 1.0, 1.1]) + 0.04 * pores)
    # --- lesion area: an irregular blob roughly centred in the patch
    cy, cx = (float(v) for v in rng.uniform(-0.25, 0.25, 2))  # NumPy 2: keep float32
    r2 = ((y - cy) ** 2 + (x - cx) ** 2) / rng.uniform(0.5, 0.9)
    blob = 1.2 - r2 + 0.45 * smooth_noise(rng, h, w, 3) + 0.2 * smooth_noise(rng, h, w, 7)
    img, thick = _lichenification(rng, img, blob, f_lic, y, x, scale)
    # --- erythema: diffuse irregular redness, extent and strength rise; subtler on dark skin
    ery_mask = _sigmoid((blob - 0.9 + 0.8 * f_ery + 0.25 * smooth_noise(rng, h, w, 11)) * 5.0)
    strength = min(f_ery, 1.15) ** 0.9 * (1.0 - 0.25 * float(np.clip(tone, 0, 1)))
    dark = 0.6 * float(np.clip(tone, 0, 1))  # on dark skin erythema looks violaceous / dusky
    red = _ch([0.97 - 0.15 * dark, 0.58 + 0.05 * dark, 0.62 + 0.15 * dark])
    k = strength * ery_mask
    img = img * (1.0 - k + k * red) + k * _ch([0.04 * (1 - dark), 0, 0])
    # --- excoriation: thin scratches (parallel clusters) and punctate erosions
    img, scratch_alpha = _scratches(rng, img, f_exc, y.shape, scale)
    if masks is not None:
        visible = (k > 0.06) | (thick > 0.12) | (scratch_alpha > 0.25)
        masks["lesion"] = visible if visible.any() else blob > 0.5
    # --- hair (grade-independent)
    return _hairs(rng, img, hair, scale)


def _lichenification(rng, img, blob, f_lic: float, y, x, scale: float):
    """Deepened criss-cross skin lines, plateau highlights and thickening over the
    lesion blob; returns the image and the thickening mask."""
    h, w = y.shape
    theta = rng.uniform(0, np.pi)
    cross = theta + rng.uniform(0.9, 1.6)
    spacing = (0.035 + 0.05 * f_lic) * rng.uniform(0.85, 1.15)
    # Wobble the lines on two scales and break them up, so the pattern reads as skin
    # markings rather than a woven net.
    warp_a = 0.05 * smooth_noise(rng, h, w, 4) + 0.25 * spacing * smooth_noise(rng, h, w, 14)
    warp_b = 0.05 * smooth_noise(rng, h, w, 4) + 0.25 * spacing * smooth_noise(rng, h, w, 14)
    along = _sigmoid(2.5 * smooth_noise(rng, h, w, 10) + 1.0)
    width = 0.22 + 0.18 * f_lic
    grooves = np.maximum(_line_field(y, x, theta, spacing, width, warp_a),
                         _line_field(y, x, cross, spacing * rng.uniform(0.8, 1.2), width, warp_b))
    lic_mask = _sigmoid((blob - 0.55 + 0.35 * f_lic) * 6.0)
    depth = 0.05 + lic_mask * 0.4 * min(f_lic, 1.15) ** 1.2
    plateau = cv2.GaussianBlur(1.0 - grooves, (0, 0), 1.2 * scale)
    shade = 1.0 - depth * grooves * along + 0.35 * depth * (plateau - 0.5)
    thick = lic_mask * min(f_lic, 1.15)
    img = img * shade * (1.0 - 0.18 * thick * _ch([0.9, 1.0, 1.0]))
    img = img + 0.08 * thick * (0.5 + 0.5 * smooth_noise(rng, h, w, 20).clip(0, 1))
    return img, thick


def _scratches(rng, img, f, shape, scale) -> np.ndarray:
    h, w = shape
    # Always draw every random number, use the first ``n`` marks: the layout stays put.
    n_lines = int(round(min(f, 1.15) * MAX_SCRATCHES * 0.75))
    n_dots = int(round(min(f, 1.15) * MAX_DOTS * 0.7))
    angle = rng.uniform(0, np.pi)
    starts = rng.uniform(0.12, 0.88, (MAX_SCRATCHES, 2)) * (w, h)
    cluster = rng.integers(0, 3, MAX_SCRATCHES)
    angles = angle + 0.5 * cluster + rng.normal(0, 0.12, MAX_SCRATCHES)
    lengths = h * (0.08 + 0.28 * min(f, 1.2)) * rng.uniform(0.5, 1.4, MAX_SCRATCHES)
    bends = rng.normal(0, 0.08, MAX_SCRATCHES)
    crust = rng.uniform(0, 1, MAX_SCRATCHES)
    thick = rng.uniform(0.8, 2.0, MAX_SCRATCHES) * scale
    dots = rng.uniform(0.15, 0.85, (MAX_DOTS, 2)) * (w, h)
    dot_r = rng.uniform(0.8, 2.6, MAX_DOTS) * scale
    dot_crust = rng.uniform(0, 1, MAX_DOTS)
    if n_lines + n_dots == 0:
        return img, np.zeros((h, w), np.float32)
    alpha = np.zeros((h, w), np.uint8)
    crustness = np.zeros((h, w), np.uint8)
    contrast = 0.35 + 0.6 * min(f, 1.1)
    for i in range(n_lines):
        d = np.array([np.cos(angles[i]), np.sin(angles[i])])
        normal = np.array([-d[1], d[0]])
        t = np.linspace(0, 1, 6)[:, None]
        pts = starts[i] + t * lengths[i] * d + (4 * t * (1 - t)) * bends[i] * lengths[i] * normal
        pts = np.round(pts * 4).astype(np.int32)[None]  # 2 fractional bits for LINE_AA
        th = max(1, int(round(thick[i])))
        a = int(255 * contrast * rng_free_fade(i))
        cv2.polylines(alpha, pts, False, a, th, cv2.LINE_AA, shift=2)
        cv2.polylines(crustness, pts, False, int(255 * crust[i]), th + 1, cv2.LINE_8, shift=2)
    for i in range(n_dots):
        c = (int(dots[i, 0] * 4), int(dots[i, 1] * 4))
        r = max(1, int(round(dot_r[i] * 4)))
        cv2.circle(alpha, c, r, int(255 * contrast), -1, cv2.LINE_AA, shift=2)
        cv2.circle(crustness, c, r + 4, int(255 * dot_crust[i]), -1, cv2.LINE_8, shift=2)
    a = alpha.astype(np.float32) / 255.0
    cr = crustness.astype(np.float32) / 255.0
    colour = _ch(_FRESH) * (1.0 - cr) + _ch(_CRUST) * cr
    # Fresh scratches sit in a faint red halo of inflamed skin.
    halo = cv2.GaussianBlur(a, (0, 0), 2.5 * scale) * (1.0 - cr) * 0.5
    img = img * (1.0 - halo + halo * _ch([1.0, 0.7, 0.7]))
    return img * (1.0 - a) + colour * a, a


def rng_free_fade(i: int) -> float:
    """Later scratches are slightly fainter (older), without drawing random numbers."""
    return 1.0 - 0.25 * (i % 4) / 3.0


def _hairs(rng, img, p_hair, scale) -> np.ndarray:
    h, w = img.shape[1:]
    has = rng.uniform() < p_hair
    count = int(rng.integers(3, MAX_HAIRS + 1))
    starts = rng.uniform(-0.1, 1.1, (MAX_HAIRS, 2)) * (w, h)
    angles = rng.uniform(0, np.pi) + rng.normal(0, 0.35, MAX_HAIRS)
    lengths = rng.uniform(0.1, 0.4, MAX_HAIRS) * h
    bends = rng.normal(0, 0.15, MAX_HAIRS)
    colour = np.float32([0.08, 0.06, 0.05]) * rng.uniform(0.6, 2.5)
    if not has:
        return img
    mask = np.zeros((h, w), np.uint8)
    for i in range(count):
        d = np.array([np.cos(angles[i]), np.sin(angles[i])])
        normal = np.array([-d[1], d[0]])
        t = np.linspace(0, 1, 8)[:, None]
        pts = starts[i] + t * lengths[i] * d + 4 * t * (1 - t) * bends[i] * lengths[i] * normal
        pts = np.round(pts * 4).astype(np.int32)[None]
        cv2.polylines(mask, pts, False, 200, max(1, int(round(scale))), cv2.LINE_AA, shift=2)
    a = mask.astype(np.float32) / 255.0
    return img * (1.0 - a) + _ch(colour) * a


def apply_lighting(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Uneven light (a ramp at a random angle) and curvature shading (a limb-like cylinder)."""
    return img * light_field(rng, *img.shape[1:])


def light_field(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """apply_lighting's multiplier (h, w), float32: smooth, so it may be drawn small and
    enlarged."""
    y, x = _grid(h, w)
    phi, axis = (float(v) for v in rng.uniform(0, 2 * np.pi, 2))
    ramp = 1.0 + rng.uniform(0.0, 0.2) * (x * math.cos(phi) + y * math.sin(phi))
    across = x * math.cos(axis) + y * math.sin(axis) + rng.uniform(-0.3, 0.3)
    curve = 1.0 - rng.uniform(0.0, 0.3) * np.clip(across / max(w / h, 1.0), -1, 1) ** 2
    return (ramp * curve * rng.uniform(0.82, 1.05)).astype(np.float32)


def enlarge(img: np.ndarray, h: int, w: int) -> np.ndarray:
    """A smooth channel-first (C, h', w') or (h', w') float image bilinearly enlarged to
    (h, w) (pixel centres aligned, as cv2.resize does)."""
    if img.ndim == 2:
        return cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)
    return np.stack([cv2.resize(c, (w, h), interpolation=cv2.INTER_LINEAR) for c in img])


def apply_camera(rng: np.random.Generator, img: np.ndarray, scale: float) -> np.ndarray:
    """White-balance shift, slight defocus blur and sensor noise (the JPEG comes at encoding)."""
    gains = np.exp(rng.normal(0, 0.03, 3)).astype(np.float32)
    sigma_blur = float(rng.uniform(0.35, 1.1) * scale)
    tinted = img * _ch(gains)
    img = np.empty_like(tinted)
    for c in range(len(tinted)):  # each channel blurred straight into its place
        cv2.GaussianBlur(tinted[c], (0, 0), sigma_blur, dst=img[c])
    sigma = float(rng.uniform(0.006, 0.02))
    # OpenCV's normal generator, seeded from ``rng`` (so a plan still renders the same
    # bytes): a 1024x768 photo's 2.4 million draws take a quarter of NumPy's time, which
    # was two fifths of the render.
    noise = np.empty(img.shape, np.float32)
    cv2.setRNGSeed(int(rng.integers(2**31 - 1)))
    cv2.randn(noise.reshape(-1, img.shape[-1]), 0.0, 1.0)
    # img + sigma * noise * sqrt(clip(img)) * 1.6, in place and in that order (the same
    # bytes; a full photo's five temporaries were a fifth of its render time).
    shot = np.clip(img, 0.02, 1.0)
    np.sqrt(shot, out=shot)
    noise *= sigma
    noise *= shot
    noise *= 1.6
    noise += img
    return noise


def to_uint8(img: np.ndarray) -> np.ndarray:
    """Channel-first float RGB in [0, 1] (sRGB-encoded, like the skin table) to HxWx3 uint8."""
    scaled = np.clip(img, 0.0, 1.0)
    scaled *= 255.0
    scaled += 0.5
    u8 = scaled.astype(np.uint8)
    return cv2.merge(list(u8))


def _ch(values) -> np.ndarray:
    """A per-channel constant shaped (3, 1, 1) to broadcast over a (3, H, W) image."""
    return np.asarray(values, np.float32).reshape(3, 1, 1)
