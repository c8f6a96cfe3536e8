"""What a scan records about colour: the typed record the pipeline makes, the store keeps
and the result page shows. Finding the card and fitting the correction live in
device.colour.detect and device.colour.correct; this module holds only the record, so the
store can keep it without importing any code that looks at images."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np

from device.colour.card import CardKind
from device.colour.maths import apply_correction

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
    ``corrected = decode(observed, gamma) @ matrix``, device.colour.maths.decode) is set whenever a card was fitted, trusted or not;
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
        """``rgb`` (uint8) with this correction applied (device.colour.maths.apply_correction)."""
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
