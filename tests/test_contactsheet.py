"""The contact sheet shows when an auto crop was unsure, under the photo's name."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from device.config import CropMode
from device.tools.contactsheet import LABEL_H, THUMB, thumbnail
from device.tools.photoeval import PhotoResult
from device.vision.crop import CropDoubt, CropResult, guide_box


def _doubt_band(tile: np.ndarray) -> np.ndarray:
    """The tile's third label line, where the crop's doubt is written."""
    return tile[THUMB + 32:THUMB + LABEL_H]


def test_an_unsure_crop_is_marked_on_its_tile():
    image = np.full((240, 320, 3), 200, np.uint8)
    unsure = CropResult(guide_box(240, 320, 0.5), CropMode.GUIDE, CropMode.AUTO, True,
                        "auto crop unsure: ...", None, CropDoubt.NOT_SKIN)
    sure = CropResult((10, 10, 50, 50), CropMode.AUTO, CropMode.AUTO, reason="lesion found")
    tiles = [thumbnail(image, PhotoResult(Path("p.png"), "p.png", "abstained", crop=c.to_dict()))
             for c in (unsure, sure)]
    # Orange ink, anti-aliased onto the light label: red stays high, blue drops.
    orange = [((b[..., 0] > 200) & (b[..., 2] < 150)).sum() for b in map(_doubt_band, tiles)]
    assert orange[0] > 20 and orange[1] == 0
