"""Finding a colour reference card in a frame and reading its 24 patches.

The printed card (device.colour.card, CardKind.PRINTED) is found by its four ArUco
markers: any two give the card's homography. The commercial 24-patch chart has no
markers, so it is found by its grid: closed square outlines of one size (edges of
the grey image), put on a lattice; every way the lattice can sit on the 6 x 4
chart (four turns, and offsets when part of the chart was missed) is tried, and the
one whose patches fit the reference best wins (a wrong turn or offset cannot be
fitted by a 3x3 colour matrix). OpenCV's contrib ``mcc`` detector would do the
same, but the contrib wheel conflicts with the pinned opencv-python-headless.

Detection runs on a copy at most WORK_SIDE pixels on its long side; the homography
is returned in full-frame pixels.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import cv2
import numpy as np

from device.colour.card import ARUCO_DICT, LAYOUTS, MARKER_IDS, CardKind
from device.colour.maths import (
    CLIP_LEVEL,
    GRID_COLS,
    GRID_ROWS,
    REFERENCE_LINEAR,
    srgb_to_linear,
)
from device.core.imageio import shrink

log = logging.getLogger(__name__)

WORK_SIDE = 800
#: Patch colours are the median of a square of +-SAMPLE_HALF card units about each
#: centre: inside the patch whatever the card's rotation.
SAMPLE_HALF = 0.2
MIN_GRID_SQUARES = 10


@dataclass(frozen=True)
class CardFound:
    """A card in the frame: its kind, outline corners (TL, TR, BR, BL, frame pixels),
    the card-units -> frame-pixels homography and the 24 patch colours (sRGB 0-1,
    NaN where a patch fell outside the frame)."""

    kind: CardKind
    corners: np.ndarray
    homography: np.ndarray
    patches: np.ndarray


def find_card(rgb: np.ndarray, kinds: tuple[CardKind, ...] = (CardKind.PRINTED, CardKind.CHART),
              work: np.ndarray | None = None, work_grey: np.ndarray | None = None
              ) -> CardFound | None:
    """The first card of ``kinds`` found in an RGB uint8 frame, or None. ``work`` is a
    smaller copy of the frame to search (the scan's preview); without it the frame is
    shrunk to WORK_SIDE. ``work_grey``: ``work`` in grey (RGB2GRAY) when the caller has
    it already (the scan's quality check reads the same grey)."""
    h, w = rgb.shape[:2]
    if work is None:
        work = shrink(rgb, WORK_SIDE, longer=True)
    if work_grey is None:
        work_grey = cv2.cvtColor(work, cv2.COLOR_RGB2GRAY)
    finders = {CardKind.PRINTED: _find_printed, CardKind.CHART: _find_chart}
    found = None
    for kind in kinds:
        found = finders[kind](work, work_grey)
        if found is not None:
            break
    if found is None:
        return None
    kind, homography, patches = found
    to_full = np.diag([w / work.shape[1], h / work.shape[0], 1.0]) @ homography
    corners = cv2.perspectiveTransform(LAYOUTS[kind].corners()[None], to_full)[0]
    return CardFound(kind, corners, to_full, patches)


def sample_patches(rgb: np.ndarray, kind: CardKind, homography: np.ndarray) -> np.ndarray:
    """The median colour (sRGB 0-1) of each patch under ``homography`` (card units ->
    pixels of ``rgb``); NaN for a patch not wholly inside the frame."""
    h, w = rgb.shape[:2]
    out = np.full((GRID_ROWS * GRID_COLS, 3), np.nan)
    offsets = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], np.float64) * SAMPLE_HALF
    squares = LAYOUTS[kind].patch_centres()[:, None, :] + offsets[None]
    pts = cv2.perspectiveTransform(squares.reshape(1, -1, 2), homography).reshape(-1, 4, 2)
    for i, quad in enumerate(pts):
        x0, y0 = np.floor(quad.min(axis=0)).astype(int)
        x1, y1 = np.ceil(quad.max(axis=0)).astype(int)
        if x0 < 0 or y0 < 0 or x1 > w or y1 > h or x1 - x0 < 1 or y1 - y0 < 1:
            continue
        out[i] = np.median(rgb[y0:y1 + 1, x0:x1 + 1].reshape(-1, 3), axis=0) / 255.0
    return out


def _find_printed(rgb: np.ndarray, grey: np.ndarray
                  ) -> tuple[CardKind, np.ndarray, np.ndarray] | None:
    params = cv2.aruco.DetectorParameters()
    # One thresholding window instead of three: the markers are 15-60 px on the preview
    # and this pass is most of the printed card's time.
    params.adaptiveThreshWinSizeMin = params.adaptiveThreshWinSizeMax = 15
    detector = cv2.aruco.ArucoDetector(cv2.aruco.getPredefinedDictionary(ARUCO_DICT), params)
    corners, ids, _ = detector.detectMarkers(grey)
    if ids is None:
        return None
    layout = LAYOUTS[CardKind.PRINTED]
    known = layout.marker_corners()
    src, dst, seen = [], [], set()
    for quad, marker_id in zip(corners, ids.ravel(), strict=True):
        if int(marker_id) in MARKER_IDS and int(marker_id) not in seen:
            seen.add(int(marker_id))
            src.append(known[int(marker_id)])
            dst.append(quad.reshape(4, 2))
    if len(seen) < 2:
        return None
    homography, _ = cv2.findHomography(np.concatenate(src), np.concatenate(dst))
    if homography is None:
        return None
    return CardKind.PRINTED, homography, sample_patches(rgb, CardKind.PRINTED, homography)


def _square_candidates(rgb: np.ndarray, grey: np.ndarray
                       ) -> list[tuple[float, float, float, float]]:
    """Closed, nearly square outlines of ``rgb`` (``grey``: it in grey): (centre x,
    centre y, side, angle in degrees)."""
    edges = cv2.Canny(grey, 20, 60)
    edges = cv2.dilate(edges, np.ones((3, 3), np.uint8))
    contours, _ = cv2.findContours(255 - edges, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    max_area = rgb.shape[0] * rgb.shape[1] / 30
    found = []
    for contour in contours:
        area = cv2.contourArea(contour)
        if area < 40 or area > max_area:
            continue
        (cx, cy), (rw, rh), angle = cv2.minAreaRect(contour)
        if min(rw, rh) <= 0 or max(rw, rh) / min(rw, rh) > 1.4 or area / (rw * rh) < 0.8:
            continue
        found.append((cx, cy, math.sqrt(rw * rh), angle))
    return found


def _lattice(cands: list[tuple[float, float, float, float]]) -> tuple[np.ndarray, np.ndarray] | None:
    """The largest set of same-sized squares on one lattice: (centres (n, 2), integer
    lattice indices (n, 2) starting at 0), or None."""
    if len(cands) < MIN_GRID_SQUARES:
        return None
    arr = np.array(cands)
    sides = arr[:, 2]
    groups = [np.abs(np.log(sides / s)) < 0.25 for s in sides]
    members = arr[max(groups, key=lambda g: int(g.sum()))]
    if len(members) < MIN_GRID_SQUARES:
        return None
    theta = math.atan2(np.sin(np.radians(4 * members[:, 3])).mean(),
                       np.cos(np.radians(4 * members[:, 3])).mean()) / 4
    rot = np.array([[math.cos(theta), math.sin(theta)], [-math.sin(theta), math.cos(theta)]])
    centres = members[:, :2]
    local = centres @ rot.T
    apart = np.linalg.norm(local[:, None] - local[None], axis=2)
    first = ~np.any(np.triu(apart < 0.5 * np.median(members[:, 2]), 1), axis=0)
    centres, local = centres[first], local[first]  # an outline found twice counts once
    dist = np.linalg.norm(local[:, None] - local[None], axis=2)
    np.fill_diagonal(dist, np.inf)
    pitch = float(np.median(dist.min(axis=1)))
    seed = int(np.argmin(np.linalg.norm(local - np.median(local, axis=0), axis=1)))
    q = (local - local[seed]) / pitch
    idx = np.round(q).astype(int)
    keep = (np.abs(q - idx).max(axis=1) < 0.3)
    idx, centres = idx[keep], centres[keep]
    _, first = np.unique(idx, axis=0, return_index=True)  # one square per lattice node
    idx, centres = idx[first], centres[first]
    # The squares linked to the seed's (Chebyshev steps of at most 2: a missed patch,
    # e.g. the black one on the black surround, does not cut the chart in two).
    seed_node = np.zeros(2, int)
    linked = np.all(idx == seed_node, axis=1)
    while True:
        step = np.abs(idx[:, None] - idx[linked][None]).max(axis=2).min(axis=1) <= 2
        if (step == linked).all():
            break
        linked = step
    idx, centres = idx[linked], centres[linked]
    span = sorted(int(v) + 1 for v in idx.max(axis=0) - idx.min(axis=0))
    if len(idx) < MIN_GRID_SQUARES or span[0] > GRID_ROWS or span[1] > GRID_COLS:
        return None
    return centres, idx - idx.min(axis=0)


def _placements(idx: np.ndarray):
    """Every chart (column, row) assignment of the lattice indices: four turns, offsets."""
    sx, sy = (int(v) + 1 for v in idx.max(axis=0))
    i, j = idx[:, 0], idx[:, 1]
    turns = [((i, j), sx, sy), ((sx - 1 - i, sy - 1 - j), sx, sy),
             ((j, sx - 1 - i), sy, sx), ((sy - 1 - j, i), sy, sx)]
    for (c, r), span_c, span_r in turns:
        for ox in range(GRID_COLS - span_c + 1):
            for oy in range(GRID_ROWS - span_r + 1):
                yield np.stack([c + ox, r + oy], axis=1)


def _find_chart(rgb: np.ndarray, grey: np.ndarray
                ) -> tuple[CardKind, np.ndarray, np.ndarray] | None:
    lattice = _lattice(_square_candidates(rgb, grey))
    if lattice is None:
        return None
    centres, idx = lattice
    layout = LAYOUTS[CardKind.CHART]
    best: tuple[float, np.ndarray, np.ndarray] | None = None
    for cr in _placements(idx):
        card_pts = layout.patch_centres()[cr[:, 1] * GRID_COLS + cr[:, 0]]
        homography, _ = cv2.findHomography(card_pts, centres)
        if homography is None:
            continue
        patches = sample_patches(rgb, CardKind.CHART, homography)
        score = _placement_score(patches)
        if best is None or score < best[0]:
            best = (score, homography, patches)
    if best is None or not np.isfinite(best[0]):
        return None
    return CardKind.CHART, best[1], best[2]


def _placement_score(patches: np.ndarray) -> float:
    """How badly a 3x3 matrix maps these patches onto the reference (RMS, linear RGB):
    a quick stand-in for the CIEDE2000 fit when choosing among placements."""
    ok = np.isfinite(patches).all(axis=1) & (np.nan_to_num(patches).max(axis=1) < CLIP_LEVEL)
    if ok.sum() < 9:
        return math.inf
    obs, ref = srgb_to_linear(patches[ok]), REFERENCE_LINEAR[ok]
    matrix = np.linalg.lstsq(obs, ref, rcond=None)[0]
    return float(np.sqrt(np.mean((obs @ matrix - ref) ** 2))) + 0.01 * (~ok).sum()
