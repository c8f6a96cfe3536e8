"""Uploaded photos: decoded by ``device.core.imageio`` with its refusals as HTTP answers.

A photo arrives as bytes from a browser or an API client. ``read_image`` reads
the size from the header before decoding (so a "decompression bomb" is refused
first), accepts only colour JPEG and PNG (as the CLI does: device.scan.pipeline.read_photo),
applies the EXIF orientation and refuses files cut short. Each refusal is an ``UploadError`` carrying the HTTP status
(413 too large, 415 not a JPEG/PNG, 400 otherwise) and a message a person can act on.
"""

from __future__ import annotations

import logging

import numpy as np

from device.core.errors import http_status
from device.core.imageio import PHOTO_FORMATS, ImageError, ImageFormatError, ImageSize
from device.core.imageio import image_size as _header_size
from device.scan.pipeline import read_photo

log = logging.getLogger(__name__)

UPLOAD_FORMATS = PHOTO_FORMATS
WHAT = "the uploaded file"


class UploadError(ValueError):
    """An upload that is refused; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def image_size(data: bytes) -> ImageSize:
    """(format, width, height) read from the header only, without decoding."""
    try:
        return _header_size(data, what=WHAT, formats=UPLOAD_FORMATS)
    except ImageError as exc:
        raise UploadError(f"{exc}: upload a photo as .jpg or .png", http_status(exc)) from exc


def decode_image(data: bytes) -> np.ndarray:
    """Check and decode an uploaded photo to uint8 RGB (H, W, 3): the same reading as
    ``python -m device scan --image`` (device.scan.pipeline.read_photo)."""
    try:
        return read_photo(data, WHAT)
    except ImageFormatError as exc:
        raise UploadError(f"{exc}: upload a photo as .jpg or .png", http_status(exc)) from exc
    except ImageError as exc:
        raise UploadError(str(exc), http_status(exc)) from exc
