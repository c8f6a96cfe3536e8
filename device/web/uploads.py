"""Checks on uploaded images before anything decodes them.

A photo arrives as bytes from a browser or an API client. Before OpenCV sees
it we read the width and height from the JPEG or PNG header and refuse
anything larger than ``MAX_PIXELS`` (a 20000x20000 "decompression bomb" is a
few kilobytes on the wire but 1.2 GB decoded), anything that is not a JPEG or
PNG, and JPEGs cut short (OpenCV decodes those with a grey tail and only a
warning). Each refusal is an ``UploadError`` with a message a person can act on.
"""

from __future__ import annotations

import logging
import struct

import numpy as np

log = logging.getLogger(__name__)

#: Largest image accepted: 40 megapixels (a Pi HQ camera frame is 12 MP).
MAX_PIXELS = 40_000_000
MAX_SIDE = 12_000
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"
# JPEG start-of-frame markers that carry the image size (not DHT/JPG/DAC).
_SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


class UploadError(ValueError):
    """An upload that is refused; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def image_kind(data: bytes) -> str | None:
    if data.startswith(PNG_MAGIC):
        return "png"
    if data.startswith(JPEG_MAGIC):
        return "jpeg"
    return None


def _png_size(data: bytes) -> tuple[int, int]:
    # The IHDR chunk must come first: length(4) 'IHDR' width(4) height(4).
    if len(data) < 24 or data[12:16] != b"IHDR":
        raise UploadError("the PNG file is damaged: no image header")
    width, height = struct.unpack(">II", data[16:24])
    if b"IEND" not in data[-16:]:
        raise UploadError("the PNG file is truncated (no end marker): upload the whole file")
    return width, height


def _jpeg_size(data: bytes) -> tuple[int, int]:
    pos = 2
    n = len(data)
    while pos + 4 <= n:
        if data[pos] != 0xFF:
            raise UploadError("the JPEG file is damaged: bad segment marker")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length field
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2:pos + 4])
        if length < 2:
            raise UploadError("the JPEG file is damaged: bad segment length")
        if marker in _SOF_MARKERS:
            if pos + 9 > n:
                break
            height, width = struct.unpack(">HH", data[pos + 5:pos + 9])
            return width, height
        if marker == 0xDA:  # start of scan before any frame header
            break
        pos += 2 + length
    raise UploadError("the JPEG file is damaged or truncated: no frame header with the image size")


def image_size(data: bytes) -> tuple[str, int, int]:
    """(kind, width, height) read from the header only, without decoding."""
    if not data:
        raise UploadError("the uploaded file is empty (0 bytes)")
    kind = image_kind(data)
    if kind is None:
        raise UploadError("not a JPEG or PNG image: upload a photo as .jpg or .png", 415)
    width, height = _png_size(data) if kind == "png" else _jpeg_size(data)
    return kind, width, height


def check_dimensions(width: int, height: int) -> None:
    if width <= 0 or height <= 0:
        raise UploadError(f"the image header gives an empty size ({width}x{height})")
    if width > MAX_SIDE or height > MAX_SIDE or width * height > MAX_PIXELS:
        raise UploadError(
            f"image is {width}x{height} pixels; the largest accepted is {MAX_SIDE} pixels a side "
            f"and {MAX_PIXELS // 1_000_000} megapixels: resize it first",
            413,
        )


def decode_image(data: bytes) -> np.ndarray:
    """Check and decode an uploaded photo to uint8 RGB (H, W, 3)."""
    import cv2

    kind, width, height = image_size(data)
    check_dimensions(width, height)
    if kind == "jpeg" and b"\xff\xd9" not in data[-64:]:
        raise UploadError("the JPEG file is truncated (no end-of-image marker): upload the whole file")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise UploadError(f"the {kind.upper()} file could not be decoded: it is damaged")
    # EXIF orientation may rotate a JPEG by 90 degrees while decoding.
    if image.shape[:2] not in ((height, width), (width, height)):
        raise UploadError(
            f"the {kind.upper()} header says {width}x{height} but the image decodes as "
            f"{image.shape[1]}x{image.shape[0]}: the file is damaged"
        )
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
