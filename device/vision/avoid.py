"""What the auto crop must keep off: faces' eyes, nostrils and lips, and overlays
(text, logos, rulers, colour cards) drawn or held over the photo.

Lips are also found by colour (``lip_zones``), because the face detector misses the
close-ups where they matter most: an infant's cheeks and mouth filling the frame, the
face running past its edges. Lips are the reddest skin in such a photo, a region
wider than tall, barely darker than the skin (a pigmented mole is much darker), with
the dark line between them (the mouth's slit) across their middle. The zone kept clear
takes in the philtrum and nostrils above them.

An overlay is found as the photo's flat achromatic marks with sharp edges: white
or black text and logos, a ruler's ticks, a colour card's grey patches; the room
a watermark's faint emblem takes above and beside its lettering is kept clear too. Skin,
even pale or dark skin, has a hue (a* and b* of several units), and its edges are
soft at the crop's working size. Masks here are boolean, at the working copy's
size (device.vision.crop.WORK_SIDE).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

from device.vision.faces import Faces, centre_inside, dark_eye_pairs, face_from_eyes, regions
from device.vision.frameviews import channels, hypot

log = logging.getLogger(__name__)

#: Chroma (sqrt(a*^2 + b*^2), CIELAB) below which a pixel is achromatic.
ACHROMATIC_CHROMA = 9.0
#: Lightness step (CIELAB L*, per pixel of the working copy) that counts as a sharp edge.
SHARP_EDGE = 14.0
#: Marks at most this tall (share of the photo's height) are lettering, with room
#: kept above and beside them for an emblem.
LOGO_MAX_HEIGHT = 0.1
#: Largest share of a crop square that may be overlay.
MAX_OVERLAY_IN_CROP = 0.02
#: Smallest share of a crop square that must be skin-coloured.
MIN_SKIN_IN_CROP = 0.8
#: Skin-coloured pixels this much darker (L*) than the skin's median are hair or shadow
#: (the same step that makes a mark dark enough to be an eye, device.vision.faces).
HAIR_DARKER = 20.0
#: Lips by colour: a* above the skin's median by at least LIP_SPAN of the way to the
#: skin's top a* (its 99.5th percentile), which must itself stand LIP_MIN_RED above.
LIP_SPAN = 0.6
LIP_MIN_RED = 12.0
#: Lips this wide (share of the photo's shorter side) or wider: smaller ones belong to a
#: face the face detector sees whole.
LIP_MIN_WIDTH = 0.15
#: The slit is this much darker (L*) than the lips; lips at most LIP_MAX_DARKER darker
#: than the skin.
LIP_SLIT = 6.0
LIP_MAX_DARKER = 20.0


@dataclass(frozen=True)
class AvoidMasks:
    """``zones``: face features (no crop may touch them); ``overlay``: overlay marks (a
    crop may hold at most MAX_OVERLAY_IN_CROP); ``skin``: skin-coloured pixels."""

    zones: np.ndarray
    overlay: np.ndarray
    skin: np.ndarray

    def square_ok(self, box: tuple[int, int, int, int]) -> tuple[bool, str]:
        """Whether one square (x, y, w, h, working-copy pixels) keeps to the rules, and
        which rule it breaks."""
        x, y, w, h = box
        if self.zones[y:y + h, x:x + w].any():
            return False, "on an eye, nostril or lip"
        area = max(1, w * h)
        if self.overlay[y:y + h, x:x + w].sum() > MAX_OVERLAY_IN_CROP * area:
            return False, "on text, a logo, a ruler or a colour card"
        if self.skin[y:y + h, x:x + w].sum() < MIN_SKIN_IN_CROP * area:
            return False, f"less than {MIN_SKIN_IN_CROP:.0%} skin"
        return True, ""


def overlay_mask(lab: np.ndarray) -> np.ndarray:
    """Achromatic pixels on or next to a sharp lightness edge, grown a little so a
    crop keeps clear of the whole mark. ``lab``: float CIELAB of the working copy."""
    light, a_star, b_star = channels(lab)
    chroma = hypot(a_star, b_star)
    gx = cv2.Sobel(light, cv2.CV_32F, 1, 0, ksize=3) / 4
    gy = cv2.Sobel(light, cv2.CV_32F, 0, 1, ksize=3) / 4
    sharp = hypot(gx, gy) > SHARP_EDGE
    flat_grey = (chroma < ACHROMATIC_CHROMA).astype(np.uint8)
    near_grey = cv2.dilate(flat_grey, np.ones((3, 3), np.uint8)).astype(bool)
    marks = (sharp & near_grey).astype(np.uint8)
    # A mark is many edges close together (a letter, a tick); a lone edge is an outline.
    density = cv2.blur(marks.astype(np.float32), (7, 7))
    dense = (density > 0.12).astype(np.uint8)
    return _with_logo_room(cv2.dilate(dense, np.ones((5, 5), np.uint8)))


def _with_logo_room(marks: np.ndarray) -> np.ndarray:
    """Each mark's box grown by its height sideways and three heights upwards: a
    watermark's faint emblem sits above or beside its lettering, and its soft edges
    are not found as marks themselves."""
    out = marks.astype(bool)
    h, w = marks.shape
    for x, y, bw, bh in _part_boxes(marks):
        if bh > LOGO_MAX_HEIGHT * h or bw < 2 * bh:
            continue  # not a line of lettering: an outline, an object, a speck
        x0, x1 = max(0, x - bh), min(w, x + bw + bh)
        y0, y1 = max(0, y - 3 * bh), min(h, y + bh)
        out[y0:y1, x0:x1] = True
    return out


def _part_boxes(mask: np.ndarray) -> list[tuple[int, int, int, int]]:
    """The box (x, y, w, h) of each 8-connected part of a uint8 mask, parts inside
    another's hole included: the outer outlines of a two-level contour hierarchy. The
    same boxes as connectedComponentsWithStats, at a fraction of its cost."""
    contours, hierarchy = cv2.findContours(mask, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if hierarchy is None:
        return []
    return [cv2.boundingRect(c) for c, link in zip(contours, hierarchy[0], strict=True)
            if link[3] < 0]


def zones_mask(shape: tuple[int, int], faces: Faces | None, scale: float) -> np.ndarray:
    """Eyes, nostrils and lips of ``faces`` (full-frame pixels) on the working copy."""
    mask = np.zeros(shape, bool)
    if faces is None:
        return mask
    h, w = shape
    for x, y, bw, bh in faces.zones():
        x0, y0 = max(0, int(x * scale)), max(0, int(y * scale))
        x1, y1 = min(w, int(np.ceil((x + bw) * scale))), min(h, int(np.ceil((y + bh) * scale)))
        if x1 > x0 and y1 > y0:
            mask[y0:y1, x0:x1] = True
    return mask


def skin_lightness(light: np.ndarray, skin: np.ndarray) -> float:
    """The skin's median L* (every other pixel is plenty), which lips and hair are
    compared with."""
    return float(np.median(light[::2, ::2][skin[::2, ::2]]))


def lip_zones(lab: np.ndarray, skin: np.ndarray, skin_light: float | None = None
              ) -> list[tuple[int, int, int, int]]:
    """Lips found by colour (see the module doc), as boxes (x, y, w, h) on the working
    copy grown to take in the lips' outline, the philtrum and the nostrils.
    ``skin_light``: ``skin_lightness`` when the caller has it."""
    if skin.sum() < 100:
        return []
    light, a_star = lab[..., 0], lab[..., 1]
    grid = skin[::2, ::2]  # every other pixel is plenty for two percentiles
    ref, top = (float(v) for v in np.percentile(a_star[::2, ::2][grid], (50, 99.5)))
    if top - ref < LIP_MIN_RED:
        return []
    red = (a_star > ref + LIP_SPAN * (top - ref)).astype(np.uint8)
    red = cv2.morphologyEx(red, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
    h, w = red.shape
    skin_light = skin_lightness(light, skin) if skin_light is None else skin_light
    out = []
    for (x, y, bw, bh), outline in regions(red):
        if (bw < LIP_MIN_WIDTH * min(h, w) or bw > 0.7 * w or bw < 1.8 * bh
                or cv2.contourArea(outline) < 0.35 * bw * bh or y == 0 or y + bh >= h):
            continue  # not lip-shaped, or cut by the photo's edge (its slit unseen)
        inside = np.zeros((h, w), np.uint8)
        cv2.drawContours(inside, [outline], -1, 1, thickness=cv2.FILLED)
        lips_light = float(light[inside.astype(bool) & (red > 0)].mean())
        rows = light[y:y + bh, x + bw // 4:x + 3 * bw // 4].mean(axis=1)
        k = int(np.argmin(rows))
        if (skin_light - lips_light > LIP_MAX_DARKER or not 0.2 * bh <= k <= 0.8 * bh
                or lips_light - rows[k] < LIP_SLIT):
            continue
        x0, y0 = max(0, x - bw // 6), max(0, y - bh)
        out.append((x0, y0, min(w, x + bw + bw // 6) - x0, min(h, y + bh + bh // 3) - y0))
    return out


@dataclass(frozen=True)
class AvoidGround:
    """The part of a frame's AvoidMasks that needs no faces (``avoid_ground``): eye pairs
    and lips found by colour, overlay marks, and the skin without its hair. It can be
    made while the faces are still being looked for."""

    pairs: list[tuple[tuple[int, int, int, int], tuple[int, int, int, int]]]
    lips: list[tuple[int, int, int, int]]
    overlay: np.ndarray
    skin: np.ndarray


def avoid_ground(lab: np.ndarray, skin: np.ndarray) -> AvoidGround:
    """The face-free part of the avoid masks of a working copy (``lab``: its float
    CIELAB; ``skin``: its skin mask)."""
    light = np.ascontiguousarray(lab[..., 0])  # the eyes' sums run faster on a plane
    # Lips and hair are both measured against the skin's median lightness: taken once.
    skin_light = skin_lightness(light, skin) if skin.sum() >= 100 else None
    return AvoidGround(dark_eye_pairs(light, skin), lip_zones(lab, skin, skin_light),
                       overlay_mask(lab), skin & ~hair_mask(lab, skin, skin_light))


def avoid_masks(lab: np.ndarray, skin: np.ndarray, faces: Faces | None, scale: float,
                ground: AvoidGround | None = None) -> AvoidMasks:
    """What a crop square must keep off. ``ground``: ``avoid_ground(lab, skin)`` when the
    caller made it already."""
    ground = avoid_ground(lab, skin) if ground is None else ground
    zones = zones_mask(skin.shape, faces, scale)
    # Dark eyes and red lips inside a face the mesh found are that face's own, which
    # its landmarks place exactly; by colour and proportion they would take in a red
    # cheek or the skin around the eyes too (the lesion, often).
    meshed = [] if faces is None else [tuple(v * scale for v in f) for f in faces.faces]

    def unmeshed(box: tuple[int, int, int, int]) -> bool:
        return not any(centre_inside(box, face) for face in meshed)

    pairs = [p for p in ground.pairs if unmeshed(p[0]) and unmeshed(p[1])]
    if pairs:  # eyes the face detector missed: their face's features, from its proportions
        zones |= zones_mask(skin.shape, Faces([face_from_eyes(*p) for p in pairs],
                                              [e for p in pairs for e in p]), 1.0)
    for x, y, bw, bh in filter(unmeshed, ground.lips):
        zones[y:y + bh, x:x + bw] = True
    return AvoidMasks(zones=zones, overlay=ground.overlay, skin=ground.skin)


def hair_mask(lab: np.ndarray, skin: np.ndarray, skin_light: float | None = None) -> np.ndarray:
    """Skin-coloured pixels far darker than the skin's median: brown and black hair
    (its YCrCb colour is skin's, only darker), deep shadow, dark clothing. A crop
    counts them as not skin, so a hairline or a fringe over the forehead is not
    taken for a rough lesion; a crust or a lash line is a small share of a square.
    ``skin_light``: ``skin_lightness`` when the caller has it."""
    if skin.sum() < 100:
        return np.zeros_like(skin)
    light = lab[..., 0]
    ref = skin_lightness(light, skin) if skin_light is None else skin_light
    return skin & (light < ref - HAIR_DARKER)
