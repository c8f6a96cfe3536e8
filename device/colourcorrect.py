"""The scan's colour step: find the card, fit the correction, decide whether to trust it.

``correct_colour`` runs on the scan's preview copy of the frame (device.quality's
MEASURE_SIDE) and returns a ``ColourCorrection``: what the scan records and shows.
The scan then applies the correction (``ColourCorrection.apply``) to what the quality
check, the crop and the models see; the stored frame stays as the camera took it, so
the correction recorded beside it can be applied again (recrop, export, training).

Outcomes (``ColourStatus``): corrected; no card ("no colour reference": nothing
changes); a card whose patches cannot be fitted within ``colour.max_delta_e`` or with
too few patches ("graded uncorrected", said plainly); correction switched off.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np

from device.colour import apply_correction, fit_correction
from device.colourcard import CardKind
from device.colourdetect import find_card
from device.config import ColourConfig

log = logging.getLogger(__name__)

#: Fewest patches (of 24) a trusted fit may rest on.
MIN_PATCHES = 16


class ColourStatus(str, Enum):
    CORRECTED = "corrected"
    NO_CARD = "no_card"
    UNTRUSTED = "untrusted"
    OFF = "off"


@dataclass(frozen=True)
class ColourCorrection:
    """What a scan records about colour. ``matrix`` (3x3, linear sRGB, row vectors:
    ``corrected = decode(observed, gamma) @ matrix``, device.colour.decode) is set whenever a card was fitted, trusted or not;
    ``corners`` are the card's outline in frame pixels (TL, TR, BR, BL)."""

    status: ColourStatus
    card: CardKind | None = None
    matrix: tuple[tuple[float, ...], ...] | None = None
    delta_e: float | None = None  # mean CIEDE2000 of the fitted patches after correction
    delta_e_max: float | None = None
    patches: int = 0  # patches the fit used
    corners: tuple[tuple[float, float], ...] | None = None
    limit: float | None = None
    gamma: float | None = None  # the camera's tone curve as a power law (None: sRGB)

    @property
    def corrected(self) -> bool:
        return self.status is ColourStatus.CORRECTED

    def array(self) -> np.ndarray:
        """The correction as a float 3x3 array (identity when there is none)."""
        return np.eye(3) if self.matrix is None else np.array(self.matrix, np.float64)

    def apply(self, rgb: np.ndarray) -> np.ndarray:
        """``rgb`` (uint8) with this correction applied (device.colour.apply_correction)."""
        return apply_correction(rgb, self.array(), self.gamma)

    def message(self) -> str:
        if self.status is ColourStatus.CORRECTED:
            return (f"colour corrected with the {self.card.label} (residual \u0394E2000 "
                    f"{self.delta_e:.1f} over {self.patches} patches)")
        if self.status is ColourStatus.UNTRUSTED:
            why = (f"only {self.patches} of 24 patches could be read" if self.patches < MIN_PATCHES
                   else f"residual \u0394E2000 {self.delta_e:.1f} is over {self.limit:g}")
            card = self.card.label if self.card else "colour card"
            return f"{card} found but not trusted ({why}): graded without colour correction"
        if self.status is ColourStatus.OFF:
            return "colour correction is off"
        return "no colour reference"

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status.value, "corrected": self.corrected,
                "card": self.card.value if self.card else None,
                "matrix": [list(r) for r in self.matrix] if self.matrix else None,
                "delta_e": self.delta_e, "delta_e_max": self.delta_e_max,
                "patches": self.patches,
                "corners": [list(c) for c in self.corners] if self.corners else None,
                "limit": self.limit, "gamma": self.gamma, "message": self.message()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ColourCorrection:
        return cls(ColourStatus(data["status"]),
                   CardKind(data["card"]) if data.get("card") else None,
                   tuple(tuple(float(v) for v in r) for r in data["matrix"])
                   if data.get("matrix") else None,
                   data.get("delta_e"), data.get("delta_e_max"), int(data.get("patches") or 0),
                   tuple(tuple(float(v) for v in c) for c in data["corners"])
                   if data.get("corners") else None, data.get("limit"),
                   None if data.get("gamma") is None else float(data["gamma"]))


NO_REFERENCE = ColourCorrection(ColourStatus.NO_CARD)


def correct_colour(frame: np.ndarray, config: ColourConfig,
                   preview: np.ndarray | None = None) -> ColourCorrection:
    """Find a card in ``frame`` (RGB uint8; searched on ``preview``, a smaller copy, when
    given), fit the correction and judge it against ``config.max_delta_e``."""
    if not config.correct:
        return ColourCorrection(ColourStatus.OFF)
    found = find_card(frame, kinds=tuple(config.cards), work=preview)
    if found is None:
        return NO_REFERENCE
    corners = tuple((round(float(x), 1), round(float(y), 1)) for x, y in found.corners)
    fit = fit_correction(found.patches)
    if fit is None:
        return ColourCorrection(ColourStatus.UNTRUSTED, found.kind, corners=corners,
                                patches=int(np.isfinite(found.patches).all(axis=1).sum()),
                                limit=config.max_delta_e)
    used = int(fit.used.sum())
    trusted = used >= MIN_PATCHES and fit.mean_delta_e <= config.max_delta_e
    return ColourCorrection(
        ColourStatus.CORRECTED if trusted else ColourStatus.UNTRUSTED, found.kind,
        tuple(tuple(round(float(v), 6) for v in row) for row in fit.matrix),
        round(fit.mean_delta_e, 3), round(fit.max_delta_e, 3), used, corners,
        config.max_delta_e, fit.gamma)
