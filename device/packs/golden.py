"""A pack's golden set: the images and outputs its self-test must reproduce.

Read here for the self-test (device.packs.check) and by the packer
(convert.packer), with the one image reader: a golden image is a PNG of the
model's input size, and a damaged, oversized or other image is named with what
was wrong, never a traceback.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from pydantic import ValidationError

from device.core.errors import validation_problems
from device.core.imageio import ImageError, read_image
from device.packs.manifest import GoldenSet, PackManifest

log = logging.getLogger(__name__)


def read_golden_image(source: Path | bytes) -> np.ndarray:
    """A golden image (PNG) as RGB uint8: the packer checks its outputs with this reader."""
    what = source.name if isinstance(source, Path) else "golden image"
    return read_image(source, what=what, formats=("png",))


def golden_image(name: str, manifest: PackManifest, dest: Path,
                 size: tuple[int, int]) -> tuple[np.ndarray | None, str | None]:
    """A golden image for the self-test, or why it cannot be one (for the report)."""
    if name not in manifest.files:
        return None, f"{name}: golden image not listed in the manifest; rebuild the pack"
    try:
        image = read_golden_image(dest / name)
    except ImageError as exc:  # a damaged, oversized or non-PNG golden image
        return None, (f"golden image {exc}; the pack is damaged or was not made by "
                      "`python -m convert pack`: rebuild it")
    if image.shape != (*size, 3):
        return None, (f"{name}: golden image is {image.shape[1]}x{image.shape[0]}, not the "
                      f"model's input {size[1]}x{size[0]}; rebuild the pack")
    return image, None


def read_golden_set(manifest: PackManifest, dest: Path) -> tuple[GoldenSet | None, str | None]:
    """The golden set of an extracted pack, or why it cannot be read (for the report)."""
    try:
        return GoldenSet.model_validate_json((dest / manifest.golden).read_bytes()), None
    except ValidationError as exc:
        why = "; ".join(str(p) for p in validation_problems(exc))
    except (OSError, ValueError) as exc:
        why = str(exc)
    return None, f"{manifest.golden}: not a valid golden set ({why}); rebuild the pack"
