"""Cropping the lesion out of a photo: ``guide``, ``auto`` and ``box``.

- guide: the centred square the staff frame the lesion in (side = guide_fraction of
  the shorter side).
- auto: find the body part (the region whose colour matches the middle of the
  photo, holes filled, checked to be skin-coloured), then the square whose lesion
  score (redness: a* above the body's median; texture: a rough, scaly surface,
  see rough_surface) stands out most from the ring of body around it, searched over a few
  sizes with integral images, then grown to the lesion's extent. A square may not
  touch a face's eyes, nostrils or lips, hold overlay marks (text, logos, rulers,
  colour cards) or be less than 80 % skin (device.vision.avoid). When the body is small or
  not skin, nothing stands out, or no square keeps to those rules, it falls back to
  the guide square and says so in the result: the auto crop is a suggestion.
- box: a box given by the dashboard, validated and clipped to the image.

``python -m device crop-eval DIR/manifest.csv`` measures how often the
auto crop overlaps the true lesion box (IoU >= 0.5) on the generator's full photos.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from device.config import CropConfig, CropMode
from device.core.vocab import CropDoubt
from device.vision.avoid import (
    MAX_OVERLAY_IN_CROP,
    MIN_SKIN_IN_CROP,
    AvoidGround,
    AvoidMasks,
    avoid_ground,
    avoid_masks,
)
from device.vision.faces import Faces
from device.vision.frameviews import WORK_SIDE, FrameViews, channels, scaled_median, shrink

log = logging.getLogger(__name__)

Box = tuple[int, int, int, int]  # x, y, w, h in pixels

#: Square sizes searched, as fractions of the shorter side.
AUTO_SCALES = (0.12, 0.16, 0.2, 0.25, 0.3, 0.36, 0.43, 0.5, 0.6)
#: a* units that count as one unit of redness (erythema is a few a* units redder).
REDNESS_UNIT = 6.0
TEXTURE_WEIGHT = 1.0
#: L* detail is coded as uint8 in steps of 1/ROUGH_CODE for the median filter (16 steps
#: per unit; detail above 16 units, a hard edge, saturates).
ROUGH_CODE = 16.0
MIN_SKIN_FOR_AUTO = 0.15
#: A candidate square must lie at least this much on the body.
MIN_BODY_IN_SQUARE = 0.9
#: Where the lesion's edge is taken to be, between the ring (0) and the core's contrast (1).
EXTENT_LEVEL = 0.45


class CropError(ValueError):
    """A crop box is invalid for this image."""


@dataclass(frozen=True)
class CropResult:
    box: Box
    mode: CropMode            # the mode that produced the box
    requested: CropMode       # the mode asked for
    fallback: bool = False    # auto fell back to guide
    reason: str = ""
    score: float | None = None
    doubt: CropDoubt | None = None  # set whenever auto fell back: why it was unsure

    def to_dict(self) -> dict:
        data = asdict(self)
        data["box"] = list(self.box)
        data["mode"] = self.mode.value
        data["requested"] = self.requested.value
        data["doubt"] = None if self.doubt is None else self.doubt.value
        return data


def guide_box(height: int, width: int, fraction: float) -> Box:
    side = max(1, int(round(min(height, width) * fraction)))
    return ((width - side) // 2, (height - side) // 2, side, side)


def clip_box(box: tuple[float, float, float, float], height: int, width: int) -> Box:
    """Validate a dashboard box (x, y, w, h) and clip it to the image."""
    try:
        x, y, w, h = (int(round(float(v))) for v in box)
    except (TypeError, ValueError) as exc:
        raise CropError(f"crop box {box!r} is not four numbers x, y, w, h") from exc
    if w <= 0 or h <= 0:
        raise CropError(f"crop box {box!r} has no area; width and height must be positive")
    x0, y0 = max(0, x), max(0, y)
    x1, y1 = min(width, x + w), min(height, y + h)
    if x1 - x0 < 8 or y1 - y0 < 8:
        raise CropError(f"crop box {box!r} lies (almost) outside the {width}x{height} image")
    return (x0, y0, x1 - x0, y1 - y0)


def body_mask(lab: np.ndarray) -> np.ndarray:
    """The body part the staff framed: pixels close in colour to the middle of the photo,
    the connected region through the middle, holes (the lesion) filled.

    A skin-colour range alone is not enough: pink, orange or beige walls and sheets
    pass it, and they would then look like the reddest "skin" in the photo."""
    h, w = lab.shape[:2]
    centre = lab[int(h * 0.3):int(h * 0.7), int(w * 0.3):int(w * 0.7)].reshape(-1, 3)
    ref = np.median(centre, axis=0)
    # Channel by channel: the differences come out contiguous, and the sums over them fast.
    d_light, d_a, d_b = (lab[..., c] - ref[c] for c in range(3))
    # Lightness counts less: the same skin is lighter or darker under uneven light.
    dist = np.sqrt(0.25 * d_light ** 2 + d_a ** 2 + d_b ** 2)
    dist8 = np.clip(dist * 4, 0, 255).astype(np.uint8)
    level, _ = cv2.threshold(dist8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    level = max(level, 24.0)  # near-uniform photo: do not split the skin itself
    near = (dist8 <= level).astype(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    near = cv2.morphologyEx(near, cv2.MORPH_OPEN, kernel)
    # Labels only: connectedComponentsWithStats costs several times the labelling, and
    # the areas are needed only when the middle pixel is off the body.
    count, labels = cv2.connectedComponents(near)
    if count <= 1:
        return np.zeros((h, w), bool)
    label = labels[h // 2, w // 2] or 1 + int(np.argmax(np.bincount(labels.ravel())[1:]))
    body = (labels == label).astype(np.uint8)
    contours, _ = cv2.findContours(body, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    filled = np.zeros_like(body)
    cv2.drawContours(filled, contours, -1, 1, thickness=cv2.FILLED)
    # Stay off the body's outline: its edge against the background is not a lesion.
    return cv2.erode(filled, kernel, iterations=2).astype(bool)


def rough_surface(light: np.ndarray) -> np.ndarray:
    """Per-pixel roughness of the surface: the median, over a 5x5 window, of the fine
    detail's size (L* minus its blur). A scaly or lichenified surface has fine detail
    everywhere in the window; an eyelash, a nostril's rim, a hair, a lip's outline or a
    mole's edge is a thin line or a speck, whose few pixels the median ignores."""
    return _rough_codes(light).astype(np.float32) * (1 / ROUGH_CODE)


def _rough_codes(light: np.ndarray) -> np.ndarray:
    """rough_surface in its uint8 steps of 1/ROUGH_CODE."""
    detail = np.abs(light - cv2.GaussianBlur(light, (0, 0), 2.0))
    coded = np.clip(detail * ROUGH_CODE, 0, 255).astype(np.uint8)  # medianBlur wants 8 bits
    return cv2.medianBlur(coded, 5)


def lesion_score_map(lab: np.ndarray, body: np.ndarray) -> np.ndarray:
    """Per-pixel lesion score inside the body: redness (a* above the body's median)
    plus texture (rough_surface above the body's median); 0 outside."""
    light, a_star, _ = channels(lab)
    ref = float(np.median(a_star[body]))
    redness = np.clip((a_star - ref) / REDNESS_UNIT, 0, 4)
    codes = _rough_codes(light)
    roughness = codes.astype(np.float32) * (1 / ROUGH_CODE)  # rough_surface
    tex_ref = scaled_median(codes[body], 1 / ROUGH_CODE)
    texture = np.clip((roughness - tex_ref) / (tex_ref + 0.5), 0, 4)
    score = cv2.GaussianBlur(redness + TEXTURE_WEIGHT * texture, (5, 5), 0)
    return score * body


def _box_sums(integral: np.ndarray, x0: slice, y0: slice, x1: slice, y1: slice) -> np.ndarray:
    """Sums of the boxes on the grid of rows ``y0``-``y1`` by columns ``x0``-``x1`` of an
    integral image (slices: the corners are read as views, nothing gathered)."""
    return integral[y1, x1] - integral[y0, x1] - integral[y1, x0] + integral[y0, x0]


def _count_integral(mask: np.ndarray) -> np.ndarray:
    """Integral image of a mask: for a boolean one the pixel count of any box (int32,
    exact); any other is summed as float64, as the score is."""
    if mask.dtype != np.bool_:
        return cv2.integral(mask.astype(np.float64))
    return cv2.integral(np.ascontiguousarray(mask).view(np.uint8))


def best_square(score: np.ndarray, body: np.ndarray,
                avoid: AvoidMasks | None = None) -> tuple[Box, float, float]:
    """The square (x, y, side, side), mostly on the body and keeping to ``avoid``'s
    rules, whose contrast (mean score inside minus mean score on the body ring around it)
    stands out most. Squares of different sizes are compared by contrast x side, the
    scan statistic: a mean difference over n pixels stands out from pixel noise by
    sqrt(n) = side times its size, so a whole inflamed patch beats a dark speck or a
    hair's edge whose few pixels score higher. Returns the square, its contrast and the
    highest contrast of any qualifying square (what auto_min_score is compared with:
    whether anything stands out); both are -inf when no square qualifies."""
    h, w = score.shape
    integral = cv2.integral(score.astype(np.float64))
    # The masks' integrals count pixels: whole numbers, exact in 32 bits (and cheaper).
    body_int = _count_integral(body)
    rules = None if avoid is None else [_count_integral(m) for m in
                                        (avoid.zones, avoid.overlay, avoid.skin)]
    best, best_val, best_w, peak = (0, 0, 1, 1), -np.inf, -np.inf, -np.inf
    short = min(h, w)
    sides = [s for s in (max(4, int(round(short * f))) for f in AUTO_SCALES) if s < short]
    # The rings are clipped at the photo's edges: an integral image repeats its first row
    # and column (zeros) and its last ones there, so the integrals padded with copies of
    # their edges read each clipped corner at its unclipped place, and every ring's
    # corners are a regular grid too.
    pad = max((s // 2 for s in sides), default=0)
    padded, body_padded = (cv2.copyMakeBorder(i, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
                           for i in (integral, body_int))
    for side in sides:
        stride = max(1, side // 8)
        ys, xs = np.arange(0, h - side + 1, stride), np.arange(0, w - side + 1, stride)
        # The squares' corners: a regular grid, so slices (views, nothing copied).
        x0, y0 = slice(0, w - side + 1, stride), slice(0, h - side + 1, stride)
        x1, y1 = slice(side, w + 1, stride), slice(side, h + 1, stride)
        area = side * side
        in_sum = _box_sums(integral, x0, y0, x1, y1)
        in_body = _box_sums(body_int, x0, y0, x1, y1)
        m = side // 2
        ring = (slice(pad - m, pad - m + w - side + 1, stride),
                slice(pad - m, pad - m + h - side + 1, stride),
                slice(pad + side + m, pad + m + w + 1, stride),
                slice(pad + side + m, pad + m + h + 1, stride))
        ring_sum = _box_sums(padded, *ring) - in_sum
        ring_body = _box_sums(body_padded, *ring) - in_body
        contrast = in_sum / area - ring_sum / np.maximum(ring_body, 1)
        contrast[in_body < MIN_BODY_IN_SQUARE * area] = -np.inf
        if rules is not None:
            zones, overlay, skin = (_box_sums(r, x0, y0, x1, y1) for r in rules)
            contrast[(zones > 0) | (overlay > MAX_OVERLAY_IN_CROP * area)
                     | (skin < MIN_SKIN_IN_CROP * area)] = -np.inf
        k = int(np.argmax(contrast))
        peak = max(peak, float(contrast.flat[k]))
        weighted = contrast.flat[k] * side  # the scan statistic: see best_square's doc
        if weighted > best_w:
            best_w, best_val = weighted, float(contrast.flat[k])
            row, col = divmod(k, len(xs))
            best = (int(xs[col]), int(ys[row]), side, side)
    return best, best_val, peak


def region_extent(labels: np.ndarray, label: int) -> tuple[int, int, int, int]:
    """x0, y0, x1, y1 (x1, y1 exclusive) of the pixels of ``labels`` equal to ``label``:
    np.nonzero's extremes, from cv2.boundingRect without listing every pixel."""
    x, y, w, h = cv2.boundingRect((labels == label).view(np.uint8))
    return x, y, x + w, y + h


def refine_square(score: np.ndarray, box: Box, contrast: float) -> Box:
    """Grow/shrink the best square to the lesion's extent: the connected region around
    its centre whose score is above ring + EXTENT_LEVEL * contrast (the square search
    alone favours a lesion's core, which is smaller than the lesion)."""
    h, w = score.shape
    x, y, side, _ = box
    m = side // 2
    ring = score[max(0, y - m):min(h, y + side + m), max(0, x - m):min(w, x + side + m)]
    level = float(np.median(ring)) + EXTENT_LEVEL * contrast
    mask = cv2.morphologyEx((score > level).astype(np.uint8), cv2.MORPH_CLOSE,
                            cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5)))
    _, labels = cv2.connectedComponents(mask)
    inner = labels[y:y + side, x:x + side]
    found = np.bincount(inner[inner > 0].ravel())
    if found.size == 0:
        return box
    bx0, by0, bx1, by1 = region_extent(labels, int(np.argmax(found)))
    new = int(max(bx1 - bx0, by1 - by0))
    if new < side * 0.7 or new > side * 3:  # implausible: keep the square search's answer
        return box
    new = min(new, h, w)
    nx = int(np.clip((bx0 + bx1) // 2 - new // 2, 0, w - new))
    ny = int(np.clip((by0 + by1) // 2 - new // 2, 0, h - new))
    return (nx, ny, new, new)


@dataclass(frozen=True)
class CropGround:
    """What the auto crop reads of a frame before it needs the frame's faces
    (``crop_ground``); the scan makes it while the faces are being looked for. ``score``
    and ``avoid`` are None when the body is too small or not skin (auto falls back)."""

    body: np.ndarray
    body_fraction: float
    skin_fraction: float
    score: np.ndarray | None
    avoid: AvoidGround | None


def crop_ground(views: FrameViews, avoid: Callable[[], AvoidGround] | None = None
                ) -> CropGround:
    """The body part, its lesion score map and the face-free avoid masks of a frame's
    shared views (device.vision.frameviews). ``avoid``: gives
    ``avoid_ground(views.lab, views.skin)`` (the scan makes it on its face worker);
    None makes it here."""
    lab, skin = views.lab, views.skin
    body = body_mask(lab)
    body_fraction = float(body.mean())
    skin_fraction = float(skin[body].mean()) if body.any() else 0.0
    if body_fraction < MIN_SKIN_FOR_AUTO or skin_fraction < 0.5:
        return CropGround(body, body_fraction, skin_fraction, None, None)
    score = lesion_score_map(lab, body)
    return CropGround(body, body_fraction, skin_fraction, score,
                      avoid_ground(lab, skin) if avoid is None else avoid())


def auto_box(rgb: np.ndarray, config: CropConfig, *, preview: np.ndarray | None = None,
             faces: Faces | None = None, views: FrameViews | None = None,
             ground: CropGround | None = None) -> CropResult:
    """``views``: the frame's shared views (device.vision.frameviews: the tiny copy, its CIELAB
    and skin mask), made once for the quality check; ``preview``: a smaller copy of
    ``rgb`` (shorter side >= WORK_SIDE) to make them from when there are none.
    ``faces``: device.vision.faces.find_faces of the frame, in its pixels (None: no faces
    looked for). ``ground``: ``crop_ground(views)`` when the caller made it already."""
    h, w = rgb.shape[:2]
    if views is None:  # the tiny copy straight from what was given, as it always was
        small = shrink(rgb if preview is None else preview, WORK_SIDE)
        views = FrameViews(preview=small, tiny=small)
    scale = views.tiny.shape[0] / h
    ground = crop_ground(views) if ground is None else ground
    fallback = guide_box(h, w, config.guide_fraction)
    if ground.score is None or ground.avoid is None:
        return _unsure(fallback, CropDoubt.NOT_SKIN,
                       f"the body part fills {ground.body_fraction:.0%} of the photo and "
                       f"{ground.skin_fraction:.0%} of it looks like skin")
    avoid = avoid_masks(views.lab, views.skin, faces, scale, ground.avoid)
    score = ground.score
    square, value, peak = best_square(score, ground.body, avoid)
    if peak == -np.inf:
        return _unsure(fallback, CropDoubt.NO_SQUARE_ALLOWED,
                       "every square on the body touches an eye, nostril or lip, an "
                       f"overlay, or is under {MIN_SKIN_IN_CROP:.0%} skin")
    if peak < config.auto_min_score:
        return _unsure(fallback, CropDoubt.NOTHING_STANDS_OUT,
                       f"no region stands out (score {peak:.2f} < {config.auto_min_score:g})",
                       peak)
    refined = refine_square(score, square, value)
    sx, sy, side, _ = refined if avoid.square_ok(refined)[0] else square
    full_side = min(h, w, int(round(side / scale)))
    x = min(max(0, int(round(sx / scale))), w - full_side)
    y = min(max(0, int(round(sy / scale))), h - full_side)
    return CropResult((x, y, full_side, full_side), CropMode.AUTO, CropMode.AUTO, False,
                      "lesion found", value)


def _unsure(box: Box, doubt: CropDoubt, why: str, score: float | None = None) -> CropResult:
    """The guide square, with the doubt that made the auto crop give up on its own."""
    return CropResult(box, CropMode.GUIDE, CropMode.AUTO, True,
                      f"auto crop unsure: {why}; used the guide square", score, doubt)


def crop_mode(config: CropConfig, mode: CropMode | None = None,
              box: tuple[float, ...] | None = None) -> CropMode:
    """The mode a crop is chosen in: the one asked for, else box when a box is given,
    else the configured one."""
    return mode or (CropMode.BOX if box is not None else config.mode)


def choose_crop(rgb: np.ndarray, config: CropConfig, *, mode: CropMode | None = None,
                box: tuple[float, float, float, float] | None = None,
                preview: np.ndarray | None = None, faces: Faces | None = None,
                views: FrameViews | None = None, ground: CropGround | None = None
                ) -> CropResult:
    """Pick the crop box for ``rgb`` (H, W, 3). A given ``box`` implies mode box.
    ``preview``, ``faces``, ``views`` and ``ground`` are passed on to auto_box."""
    mode = crop_mode(config, mode, box)
    h, w = rgb.shape[:2]
    if mode is CropMode.BOX:
        if box is None:
            raise CropError("crop mode is box but no box was given (x, y, w, h)")
        return CropResult(clip_box(box, h, w), CropMode.BOX, CropMode.BOX, reason="box given")
    if mode is CropMode.AUTO:
        return auto_box(rgb, config, preview=preview, faces=faces, views=views, ground=ground)
    return CropResult(guide_box(h, w, config.guide_fraction), CropMode.GUIDE, CropMode.GUIDE,
                      reason="guide square")


def cut(rgb: np.ndarray, box: Box) -> np.ndarray:
    x, y, w, h = box
    return rgb[y:y + h, x:x + w]


def iou(a: Box, b: Box) -> float:
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0, min(ax1, bx1) - max(a[0], b[0]))
    ih = max(0, min(ay1, by1) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def evaluate_manifest(manifest: str, config: CropConfig | None = None,
                      limit: int | None = None) -> dict:
    """Auto-crop IoU against the true boxes (box_x, box_y, box_w, box_h) of a manifest."""
    import csv
    from pathlib import Path

    from device.core.imageio import ImageError, read_image

    config = config or CropConfig(mode=CropMode.AUTO)
    root = Path(manifest).parent
    ious, fallbacks, skipped = [], 0, 0
    with open(manifest, newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("box_w")]
    for row in rows[:limit]:
        try:
            image = read_image(root / row["path"])
        except ImageError:
            skipped += 1
            continue
        truth = tuple(int(float(row[k])) for k in ("box_x", "box_y", "box_w", "box_h"))
        result = auto_box(image, config)
        fallbacks += result.fallback
        ious.append(iou(result.box, truth))  # type: ignore[arg-type]
    arr = np.array(ious)
    return {"n": len(ious), "skipped": skipped, "fallbacks": fallbacks,
            "iou_ge_0.5": float((arr >= 0.5).mean()) if len(arr) else 0.0,
            "mean_iou": float(arr.mean()) if len(arr) else 0.0}

