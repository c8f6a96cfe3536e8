"""The colour reference cards the device knows: their layout, and their picture.

Two kinds, both carrying the 24 reference patches of device.colour.maths in 4 rows of 6:

* ``CardKind.CHART``: the common commercial 24-patch chart (patches on a black
  surround). Found by device.colour.detect's own grid detector.
* ``CardKind.PRINTED``: the project's own card to print (``python -m device
  colour-card``), patches on white paper with an ArUco marker (4x4, ids 0-3) at
  each corner: 0 top left, 1 top right, 2 bottom right, 3 bottom left, so the
  markers alone give the card's position and which way up it is.

Layouts are in card units (one patch is 1 x 1); the generator (trainer.synth_card),
the detector and the printable file all draw from the one layout here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import cv2
import numpy as np

from device.colour.maths import GRID_COLS, GRID_ROWS, REFERENCE_SRGB

log = logging.getLogger(__name__)

ARUCO_DICT = cv2.aruco.DICT_4X4_50
MARKER_IDS = (0, 1, 2, 3)  # top left, top right, bottom right, bottom left
PAPER_SRGB = (0.96, 0.96, 0.95)  # white paper; only the ArUco quiet zone needs it


class CardKind(str, Enum):
    CHART = "chart"
    PRINTED = "printed"

    @property
    def label(self) -> str:
        return {CardKind.CHART: "24-patch chart", CardKind.PRINTED: "printed card"}[self]


@dataclass(frozen=True)
class CardLayout:
    """Where everything is on a card, in card units (patch side = 1)."""

    kind: CardKind
    width: float
    height: float
    origin: tuple[float, float]  # top-left corner of patch 1
    pitch: float  # patch side + gap
    marker_side: float = 0.0
    marker_margin: float = 0.0

    def patch_centres(self) -> np.ndarray:
        """(24, 2) centres (x, y) in card units, reading order."""
        r, c = np.divmod(np.arange(GRID_ROWS * GRID_COLS), GRID_COLS)
        return np.stack([self.origin[0] + c * self.pitch + 0.5,
                         self.origin[1] + r * self.pitch + 0.5], axis=1).astype(np.float64)

    def corners(self) -> np.ndarray:
        """The card's outline corners TL, TR, BR, BL in card units."""
        return np.array([[0, 0], [self.width, 0], [self.width, self.height], [0, self.height]],
                        np.float64)

    def marker_corners(self) -> dict[int, np.ndarray]:
        """Each marker id -> its 4 corners (TL, TR, BR, BL, ArUco's order) in card units."""
        s, m = self.marker_side, self.marker_margin
        tops = {0: (m, m), 1: (self.width - m - s, m), 2: (self.width - m - s, self.height - m - s),
                3: (m, self.height - m - s)}
        return {i: np.array([[x, y], [x + s, y], [x + s, y + s], [x, y + s]], np.float64)
                for i, (x, y) in tops.items()}


_GAP = 0.25
LAYOUTS = {
    CardKind.CHART: CardLayout(CardKind.CHART, width=6 + 5 * _GAP + 0.7,
                               height=4 + 3 * _GAP + 0.7, origin=(0.35, 0.35), pitch=1 + _GAP),
    CardKind.PRINTED: CardLayout(CardKind.PRINTED, width=2 * 2.1 + 6 + 5 * _GAP,
                                 height=4 + 3 * _GAP + 0.8, origin=(2.1, 0.4), pitch=1 + _GAP,
                                 marker_side=1.5, marker_margin=0.3),
}


def draw_card(kind: CardKind, px_per_unit: int = 40,
              surround: tuple[float, float, float] | None = None) -> np.ndarray:
    """The card as it should look under D65 (RGB uint8), ``px_per_unit`` pixels per patch;
    ``surround`` (sRGB 0-1) replaces the chart's black or the paper's white."""
    layout = LAYOUTS[kind]
    k = px_per_unit
    h, w = round(layout.height * k), round(layout.width * k)
    if surround is None:
        surround = (0.11, 0.11, 0.11) if kind is CardKind.CHART else PAPER_SRGB
    img = np.empty((h, w, 3), np.uint8)
    img[:] = np.round(np.array(surround) * 255).astype(np.uint8)
    for (cx, cy), rgb in zip(layout.patch_centres(), REFERENCE_SRGB, strict=True):
        x0, y0 = round((cx - 0.5) * k), round((cy - 0.5) * k)
        img[y0:y0 + k, x0:x0 + k] = np.round(rgb * 255).astype(np.uint8)
    if kind is CardKind.PRINTED:
        dictionary = cv2.aruco.getPredefinedDictionary(ARUCO_DICT)
        side = round(layout.marker_side * k)
        for marker_id, pts in layout.marker_corners().items():
            x0, y0 = (round(v * k) for v in pts[0])
            marker = cv2.aruco.generateImageMarker(dictionary, marker_id, side)
            img[y0:y0 + side, x0:x0 + side] = marker[..., None]
    return img


#: Printed size of one patch, mm: the card is then 183 x 89 mm, on A4 or Letter.
PRINT_PATCH_MM = 16.0


def write_printable(out: Path, dpi: int = 300) -> list[Path]:
    """Write the printed card as ``out`` with suffix .png and .pdf, at ``dpi`` so that one
    patch prints PRINT_PATCH_MM wide at 100 % scale. Returns the paths written."""
    from PIL import Image  # only the printing path needs Pillow

    px = round(PRINT_PATCH_MM / 25.4 * dpi)
    card = draw_card(CardKind.PRINTED, px, surround=(1.0, 1.0, 1.0))  # the paper's own white
    label_h = px // 2
    page = np.full((card.shape[0] + label_h, card.shape[1], 3), 255, np.uint8)
    page[:card.shape[0]] = card
    cv2.putText(page, "atopiscan colour card - print at 100 % (actual size); patch = "
                f"{PRINT_PATCH_MM:g} mm", (px // 4, card.shape[0] + label_h * 2 // 3),
                cv2.FONT_HERSHEY_SIMPLEX, px / 110, (0, 0, 0), max(1, px // 60), cv2.LINE_AA)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(page)
    written = []
    for suffix in (".png", ".pdf"):
        path = out.with_suffix(suffix)
        image.save(path, dpi=(dpi, dpi)) if suffix == ".png" else image.save(path, resolution=dpi)
        written.append(path)
    return written
