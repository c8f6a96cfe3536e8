"""Scenes with a colour reference card, and the lights they are taken under (the
generator's and the colour benchmark's shared model; numpy and OpenCV only).

``place_card`` lays a 24-patch card (device.colour.card: the commercial chart or the
project's printed card) on a photo taken under the reference light, D65, beside the
lesion, turned and slightly tilted; optionally part-shadowed or stained.

``capture`` then takes the scene under another light, the way a camera with its white
balance locked at daylight would: in linear RGB each channel is scaled by the black
body's gains relative to D65 (device.colour.maths.illuminant_gains), the exposure is off by
``ev`` stops, the sensor's channels leak into each other (a crosstalk matrix whose
rows sum to 1), then shot noise and 8-bit encoding with the camera's own tone curve
(a power law, gamma 2.0-2.6, where the device decodes exact sRGB: a mismatch no 3x3
matrix undoes, so the residual is not zero by construction). The meter keeps the brightest
channel of a white at half scale at 0 EV (one stop of highlight headroom), so +1 EV
just reaches full scale. Everything here is a model: a real illuminant's spectrum is
not a per-channel gain, which is why the device's correction is fitted, not computed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from device.colour.card import LAYOUTS, CardKind, draw_card
from device.colour.maths import illuminant_gains, linear_to_srgb, srgb_to_linear

CARD_PX_PER_UNIT = 40
HEADROOM = 0.5  # the brightest channel of a white at 0 EV, as a share of full scale


@dataclass(frozen=True)
class Light:
    """One capture condition: illuminant (kelvin), exposure error (EV), crosstalk, and the
    camera's tone curve (``gamma`` of a power law; None: exact sRGB)."""

    kelvin: float
    ev: float
    crosstalk: np.ndarray = field(default_factory=lambda: np.eye(3))
    gamma: float | None = None

    def to_dict(self) -> dict:
        return {"kelvin": round(self.kelvin), "ev": round(self.ev, 3),
                "crosstalk": np.round(self.crosstalk, 4).tolist(),
                "gamma": None if self.gamma is None else round(self.gamma, 3)}


def random_crosstalk(rng: np.random.Generator, low: float = 0.02, high: float = 0.1
                     ) -> np.ndarray:
    """A sensor's channel mixing: off-diagonal leaks in [low, high], rows summing to 1."""
    m = rng.uniform(low, high, (3, 3))
    np.fill_diagonal(m, 0.0)
    np.fill_diagonal(m, 1.0 - m.sum(axis=1))
    return m


def random_light(rng: np.random.Generator, kelvin: float | None = None) -> Light:
    """A light between 2700 and 6500 K (or at ``kelvin``), +-1 EV, random crosstalk, and a
    camera tone curve of gamma 2.0-2.6."""
    k = float(rng.uniform(2700, 6500)) if kelvin is None else float(kelvin)
    return Light(k, float(rng.uniform(-1.0, 1.0)), random_crosstalk(rng),
                 float(rng.uniform(2.0, 2.6)))


def capture(rng: np.random.Generator, scene: np.ndarray, light: Light,
            noise: float = 0.004) -> np.ndarray:
    """``scene`` (RGB uint8 under D65) as the camera records it under ``light``."""
    gains = illuminant_gains(light.kelvin)
    scale = gains / gains.max() * HEADROOM * 2.0 ** light.ev
    lin = srgb_to_linear(scene.astype(np.float32) / 255.0).astype(np.float32)
    lin = (lin * scale.astype(np.float32)) @ light.crosstalk.T.astype(np.float32)
    lin = lin + noise * np.sqrt(np.clip(lin, 0.0, 1.0)) * rng.standard_normal(
        lin.shape, dtype=np.float32)
    lin = np.clip(lin, 0.0, 1.0)
    encoded = linear_to_srgb(lin) if light.gamma is None else lin ** (1.0 / light.gamma)
    return (np.clip(encoded, 0, 1) * 255 + 0.5).astype(np.uint8)


def _card_quad(rng: np.random.Generator, kind: CardKind, frame: tuple[int, int],
               avoid: tuple[int, int, int, int], angle: float | None) -> np.ndarray:
    """Where the card's corners land: turned, slightly tilted, clear of ``avoid``."""
    w, h = frame
    layout = LAYOUTS[kind]
    x, y, bw, bh = avoid
    for attempt in range(200):
        width = w * rng.uniform(0.3, 0.42) * 0.9 ** (attempt // 40)
        k = width / layout.width
        a = math.radians(rng.uniform(-25, 25) + (180 if rng.uniform() < 0.25 else 0)
                         if angle is None else angle)
        corners = (layout.corners() - [layout.width / 2, layout.height / 2]) * k
        corners = corners + rng.uniform(-0.03, 0.03, (4, 2)) * width  # perspective tilt
        rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
        centre = rng.uniform([0, 0], [w, h])
        quad = corners @ rot.T + centre
        lo, hi = quad.min(axis=0), quad.max(axis=0)
        inside = lo[0] > 4 and lo[1] > 4 and hi[0] < w - 4 and hi[1] < h - 4
        clear = hi[0] < x - 8 or lo[0] > x + bw + 8 or hi[1] < y - 8 or lo[1] > y + bh + 8
        if inside and clear:
            return quad
    raise ValueError("no room for the card beside the lesion")


def place_card(rng: np.random.Generator, image: np.ndarray, kind: CardKind,
               avoid: tuple[int, int, int, int], *, angle: float | None = None,
               shadow: float = 1.0, damage: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Lay a card on ``image`` (RGB uint8, D65) clear of the box ``avoid``. ``shadow`` < 1
    darkens the card beyond a line across it by that factor (linear light); ``damage``
    is the share of patches stained over. Returns (new image, corners TL TR BR BL)."""
    card = draw_card(kind, CARD_PX_PER_UNIT).astype(np.float32) / 255.0
    ch, cw = card.shape[:2]
    if damage > 0:
        layout = LAYOUTS[kind]
        hit = rng.permutation(24)[:round(24 * damage)]
        for i in hit:
            cx, cy = layout.patch_centres()[i] * CARD_PX_PER_UNIT
            r = CARD_PX_PER_UNIT // 2
            card[int(cy - r):int(cy + r), int(cx - r):int(cx + r)] = rng.uniform(0, 1, 3)
    lin = srgb_to_linear(card) * rng.uniform(0.95, 1.03)
    if shadow < 1.0:
        yy, xx = np.mgrid[0:ch, 0:cw]
        phi = rng.uniform(0, 2 * math.pi)
        side = (xx - cw / 2) * math.cos(phi) + (yy - ch / 2) * math.sin(phi) > 0
        soft = cv2.GaussianBlur(side.astype(np.float32), (0, 0), 3)
        lin = lin * (1.0 - (1.0 - shadow) * soft[..., None])
    card = linear_to_srgb(lin).astype(np.float32)
    h, w = image.shape[:2]
    quad = _card_quad(rng, kind, (w, h), avoid, angle)
    src = np.array([[0, 0], [cw, 0], [cw, ch], [0, ch]], np.float32)
    m = cv2.getPerspectiveTransform(src, quad.astype(np.float32))
    warped = cv2.warpPerspective(card, m, (w, h), flags=cv2.INTER_AREA)
    mask = cv2.warpPerspective(np.ones((ch, cw), np.float32), m, (w, h), flags=cv2.INTER_LINEAR)
    out = image.astype(np.float32) / 255.0 * (1 - mask[..., None]) + warped * mask[..., None]
    out = cv2.GaussianBlur(out, (0, 0), 0.6)
    return (np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8), quad
