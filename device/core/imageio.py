"""The one image reader and writer every part uses (device, trainer, convert).

``read_image`` turns a file or bytes into RGB uint8 (H, W, 3) with one pixel
limit and the EXIF orientation applied, so the web upload, the CLI, the folder
camera, training and the pack self-test all see the same pixels. Pillow decodes:
it reads the size from the header lazily, so an oversized image ("decompression
bomb": a few kilobytes on the wire, gigabytes decoded) is refused before any
pixel is decoded. JPEGs with data after the end-of-image marker (phone Motion
Photo trailers, padding) are accepted; a JPEG or PNG cut short is refused.

Every refusal is an ``ImageError`` (a ``ValueError``) whose message names the
file and says what to do; subclasses tell callers which kind, by type.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import NamedTuple

import numpy as np

from device.core.errors import InvalidInput

log = logging.getLogger(__name__)

#: Largest image accepted anywhere (upload, CLI, camera, training, self-test), in pixels,
#: and its longest side. Sized for a Raspberry Pi 4 with 1 GB: reading and scanning a
#: 40 MP photo peaks at about +385 MiB of memory (64 MP: +615 MiB; measured for issue 27);
#: phones save 12-24 MP by default. A longer side breaks the OpenCV steps that follow.
MAX_PIXELS = 40_000_000
MAX_SIDE = 12_000
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
#: What the device grades and the trainer learns from: a JPEG (phones, cameras) or a
#: lossless PNG, read with ``read_image(..., formats=PHOTO_FORMATS)``.
PHOTO_FORMATS = ("jpeg", "png")
#: The file names of those formats: the one list every folder walk uses (the folder
#: camera, photo evaluation, training data, the labelling studio's import).
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")


class ImageError(InvalidInput):
    """An image that cannot be used; the message says which and what to do."""


class ImageFormatError(ImageError):
    """Not an image at all, or not one of the formats asked for."""

    http_status = 415


class ImageTooLargeError(ImageError):
    """More pixels than ``MAX_PIXELS``, or a side over ``MAX_SIDE``: refused before decoding."""

    http_status = 413


class ImageDamagedError(ImageError):
    """Truncated or corrupt: the header reads but the pixels do not decode."""


class ImageSize(NamedTuple):
    format: str  # "jpeg", "png", ... (Pillow's format name, lower case)
    width: int
    height: int


def _pillow():
    from PIL import Image, ImageOps, UnidentifiedImageError

    # Our MAX_PIXELS check runs on the lazily read header before any decoding and
    # names the size. Pillow's own check would fire at open() with only a pixel
    # count (and only error at twice its limit), so one limit rules: ours.
    Image.MAX_IMAGE_PIXELS = None
    return Image, ImageOps, UnidentifiedImageError


def _describe(source: Path | bytes, what: str | None) -> str:
    if what:
        return what
    return str(source) if isinstance(source, (str, Path)) else "the image"


def _read_bytes(source: Path | bytes, what: str) -> bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    path = Path(source)
    if not path.is_file():
        raise ImageError(f"{what}: no such image file")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ImageError(f"{what}: cannot read the file ({exc.strerror or exc})") from exc


def _guess_format(data: bytes) -> str:
    if data.startswith(PNG_MAGIC):
        return "PNG"
    return "JPEG" if data.startswith(b"\xff\xd8") else "image"  # SOI marker


def _open(data: bytes, what: str, formats: tuple[str, ...] | None):
    pil_image, _, unidentified = _pillow()
    wanted = " or ".join(f.upper() for f in formats) if formats else None
    if not data:
        raise ImageError(f"{what} is empty (0 bytes): not a readable image")
    try:
        image = pil_image.open(io.BytesIO(data), formats=[f.upper() for f in formats] if formats else None)
    except unidentified as exc:
        if _guess_format(data) != "image":  # JPEG or PNG magic, then nothing Pillow can read
            kind = (f"not a readable image: it starts like a {_guess_format(data)} but is "
                    "damaged; use the whole, original file")
        elif wanted:
            kind = f"not a {wanted} image"
        else:
            kind = "not a readable image (an unknown format)"
        raise ImageFormatError(f"{what}: {kind}") from exc
    except (OSError, SyntaxError, ValueError) as exc:  # a header cut short or damaged
        raise ImageDamagedError(f"{what}: corrupt {_guess_format(data)} (truncated or damaged "
                                f"header: {exc}); use the whole file") from exc
    return image


def too_large(width: int, height: int, what: str) -> str | None:
    """Why an image of ``width`` x ``height`` is over the one pixel limit, or None."""
    if width * height <= MAX_PIXELS and max(width, height) <= MAX_SIDE:
        return None
    return (f"{what} is {width}x{height} pixels ({width * height / 1e6:.0f} MP); the largest "
            f"accepted is {MAX_PIXELS // 1_000_000} MP and {MAX_SIDE:,} pixels a side: "
            "resize it first")


def _check_size(width: int, height: int, what: str) -> None:
    if width <= 0 or height <= 0:
        raise ImageDamagedError(f"{what}: the image header gives an empty size ({width}x{height})")
    problem = too_large(width, height, what)
    if problem is not None:
        raise ImageTooLargeError(problem)


def image_size(source: Path | bytes, *, what: str | None = None,
               formats: tuple[str, ...] | None = None) -> ImageSize:
    """Format and stored size read from the header only, without decoding."""
    what = _describe(source, what)
    image = _open(_read_bytes(source, what), what, formats)
    return ImageSize(str(image.format).lower(), image.width, image.height)


_GREY_MODES = ("1", "L", "LA", "I", "F", "I;16", "I;16B", "I;16L", "I;16N")


def _to_rgb_array(image, what: str, allow_grey: bool) -> np.ndarray:
    if image.mode in _GREY_MODES and not allow_grey:
        raise ImageError(f"{what} is greyscale; the signs are graded from colour (erythema "
                         "is redness), so use a colour photo")
    if image.mode == "I" or image.mode.startswith("I;16"):  # 16-bit grey: scale to 8 bits
        grey = np.clip((np.asarray(image, dtype=np.float64) / 257.0).round(), 0, 255)
        return np.ascontiguousarray(np.repeat(grey.astype(np.uint8)[..., None], 3, axis=2))
    if image.mode != "RGB":
        image = image.convert("RGB")  # palette, CMYK, alpha (dropped), grey
    return np.ascontiguousarray(np.asarray(image, dtype=np.uint8))


def read_image(source: Path | bytes, *, what: str | None = None,
               formats: tuple[str, ...] | None = None, allow_grey: bool = True,
               reduce: int = 1) -> np.ndarray:
    """Decode a file or bytes to RGB uint8 (H, W, 3), EXIF orientation applied.

    ``what`` names the image in messages (default: the path, or "the image").
    ``formats`` limits the accepted formats (e.g. ``("jpeg", "png")`` for uploads).
    ``allow_grey=False`` refuses greyscale images instead of repeating the channel.
    ``reduce`` > 1 lets a JPEG decode at 1/2, 1/4 or 1/8 size (a cheap check).
    Raises ``ImageError`` (``ImageFormatError``, ``ImageTooLargeError``, ``ImageDamagedError``).
    """
    what = _describe(source, what)
    data = _read_bytes(source, what)
    image = _open(data, what, formats)
    _check_size(image.width, image.height, what)
    if image.format == "PNG":
        # A PNG cut after its last IDAT still decodes; verify() walks every chunk
        # (and its CRC) to IEND, so a cut file is refused.
        try:
            image.verify()
        except (OSError, SyntaxError, ValueError) as exc:
            raise ImageDamagedError(f"{what}: corrupt PNG (truncated or damaged: {exc}); "
                               "use the whole file") from exc
        image = _open(data, what, formats)
    if reduce > 1 and image.format == "JPEG":
        image.draft("RGB", (max(1, image.width // reduce), max(1, image.height // reduce)))
    try:
        image.load()
    except (OSError, SyntaxError, ValueError) as exc:
        fmt = str(image.format or "image")
        raise ImageDamagedError(f"{what}: corrupt {fmt} (truncated or damaged: {exc}); "
                           "use the whole file") from exc
    _, image_ops, _ = _pillow()
    image = image_ops.exif_transpose(image)
    return _to_rgb_array(image, what, allow_grey)


def as_rgb(image: object, what: str = "image", *, min_side: int = 1) -> np.ndarray:
    """The one check of an image already in memory (a camera frame, a photo to grade, an
    image to encode): uint8 colour (H, W, 3), or (H, W, 4) with the alpha or padding channel
    dropped, within the one pixel limit and at least ``min_side`` pixels a side. Returns a
    contiguous (H, W, 3) array; raises ``ImageError`` naming ``what`` and what to do."""
    arr = np.asarray(image)
    if arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 1):
        raise ImageError(f"{what} is greyscale; the signs are graded from colour (erythema "
                         "is redness), so use a colour photo")
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ImageError(f"{what} has shape {arr.shape}; expected a colour image (H, W, 3)")
    if arr.dtype != np.uint8:
        raise ImageError(f"{what} has {arr.dtype} pixels; expected 8-bit colour (uint8)")
    h, w = arr.shape[:2]
    problem = too_large(w, h, what)
    if problem is not None:
        raise ImageTooLargeError(problem)
    if min(h, w) < max(1, min_side):
        raise ImageError(f"{what} is only {w}x{h} pixels; use a real photo of the lesion")
    return np.ascontiguousarray(arr[..., :3])


def shrink(rgb: np.ndarray, side: int | None, *, longer: bool = False) -> np.ndarray:
    """The one resizer: ``rgb`` scaled down (``INTER_AREA``) so its shorter side (its longer
    side with ``longer=True``) is at most ``side`` pixels; ``rgb`` itself when it is already
    that small or ``side`` is None."""
    import cv2

    h, w = rgb.shape[:2]
    if not side:
        return rgb
    scale = side / (max(h, w) if longer else min(h, w))
    if scale >= 1:
        return rgb
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    # INTER_AREA by exactly 2 is OpenCV's fast path (the mean of each 2x2 block), many
    # times faster than a fractional area step: halve while the half is still at least
    # twice the target, then take the rest (2x or more) on the smaller copy. The same
    # area mean up to a rounding per halving, and a last step as long as before, so
    # frames under four times the target shrink exactly as they always did (a Pi HQ
    # camera's 4056x3040 frame to the scan's 683x512 preview: 24 ms -> 11 ms).
    while h % 2 == 0 and w % 2 == 0 and w // 2 >= 2 * size[0] and h // 2 >= 2 * size[1]:
        rgb = cv2.resize(rgb, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
        h, w = rgb.shape[:2]
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def encode_png(rgb: np.ndarray) -> bytes:
    """RGB uint8 (H, W, 3) -> PNG bytes (lossless)."""
    import cv2

    ok, buf = cv2.imencode(".png", cv2.cvtColor(as_rgb(rgb), cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError("could not encode the image as PNG")
    return buf.tobytes()


def encode_jpeg(rgb: np.ndarray, quality: int = 85, *, max_side: int | None = None) -> bytes:
    """RGB uint8 (H, W, 3) -> JPEG bytes, first shrunk to ``max_side`` when given."""
    import cv2

    rgb = shrink(as_rgb(rgb), max_side, longer=True)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("could not encode the image as JPEG")
    return buf.tobytes()
