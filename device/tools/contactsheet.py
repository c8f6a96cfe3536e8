"""A contact sheet of evaluated photos: each thumbnail with its crop square (green:
auto crop, orange: guide square), the labelled lesion boxes (blue) and the verdict,
for a person to look at. Written as PNG; never committed for third-party photos."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from device.tools.photoeval import PhotoResult

log = logging.getLogger(__name__)

THUMB = 220
LABEL_H = 46
COLUMNS = 6
GREEN, ORANGE, BLUE, RED = (40, 200, 40), (255, 150, 0), (60, 120, 255), (230, 40, 40)
VERDICT_COLOUR = {"graded": GREEN, "abstained": ORANGE, "refused": RED, "error": RED}


def thumbnail(image: np.ndarray | None, result: PhotoResult) -> np.ndarray:
    """One tile (RGB): the photo scaled into THUMB x THUMB with boxes, and a label."""
    tile = np.full((THUMB + LABEL_H, THUMB, 3), 245, np.uint8)
    if image is not None:
        h, w = image.shape[:2]
        s = THUMB / max(h, w)
        small = cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))),
                           interpolation=cv2.INTER_AREA)
        tile[:small.shape[0], :small.shape[1]] = small

        def draw(box: list[int] | tuple[int, ...], colour: tuple[int, int, int], width: int) -> None:
            x, y, bw, bh = (int(round(v * s)) for v in box)
            cv2.rectangle(tile, (x, y), (x + bw, y + bh), colour, width)

        for box in result.boxes:
            draw(box, BLUE, 1)
        if result.crop:
            draw(result.crop["box"], ORANGE if result.crop.get("fallback") else GREEN, 2)
    text = result.verdict + (f" {result.score:.1f}" if result.score is not None else "")
    if result.refused_by is not None:  # which space (or the quality check) refused
        text += f" {result.refused_by}"
    if result.on_lesion is not None:
        text += " hit" if result.on_lesion else " MISS"

    cv2.putText(tile, text, (3, THUMB + 13), cv2.FONT_HERSHEY_SIMPLEX, 0.42,
                VERDICT_COLOUR[result.verdict], 1, cv2.LINE_AA)
    cv2.putText(tile, result.rel[-34:], (3, THUMB + 28), cv2.FONT_HERSHEY_SIMPLEX, 0.32,
                (60, 60, 60), 1, cv2.LINE_AA)
    if result.crop and result.crop.get("doubt"):  # the auto crop was unsure, and why
        cv2.putText(tile, "crop unsure: " + str(result.crop["doubt"]).replace("_", " "),
                    (3, THUMB + 42), cv2.FONT_HERSHEY_SIMPLEX, 0.36, ORANGE, 1, cv2.LINE_AA)
    return tile


def write_sheet(tiles: list[np.ndarray], out: Path, columns: int = COLUMNS) -> Path:
    """Lay ``tiles`` out in rows and write the sheet as PNG."""
    if not tiles:
        raise ValueError("no photos to draw")
    rows = -(-len(tiles) // columns)
    th, tw = tiles[0].shape[:2]
    sheet = np.full((rows * (th + 4), columns * (tw + 4), 3), 255, np.uint8)
    for k, tile in enumerate(tiles):
        r, c = divmod(k, columns)
        sheet[r * (th + 4):r * (th + 4) + th, c * (tw + 4):c * (tw + 4) + tw] = tile
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
        raise OSError(f"{out}: could not write the contact sheet")
    return out
