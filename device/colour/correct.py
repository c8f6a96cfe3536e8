"""The scan's colour step: find the card, fit the correction, decide whether to trust it.

``correct_colour`` runs on the scan's preview copy of the frame (device.vision.quality's
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

import numpy as np

from device.colour.detect import find_card
from device.colour.maths import fit_correction
from device.colour.record import MIN_PATCHES, NO_REFERENCE, ColourCorrection, ColourStatus
from device.config import ColourConfig

log = logging.getLogger(__name__)





def correct_colour(frame: np.ndarray, config: ColourConfig,
                   preview: np.ndarray | None = None,
                   preview_grey: np.ndarray | None = None) -> ColourCorrection:
    """Find a card in ``frame`` (RGB uint8; searched on ``preview``, a smaller copy, when
    given, and ``preview_grey``, it in grey, when the caller has it), fit the correction
    and judge it against ``config.max_delta_e``."""
    if not config.correct:
        return ColourCorrection(ColourStatus.OFF)
    found = find_card(frame, kinds=tuple(config.cards), work=preview, work_grey=preview_grey)
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
