"""One image reader for every part: one pixel limit, EXIF applied, phone trailers accepted."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from device.core import imageio
from device.core.errors import http_status
from device.core.imageio import (
    MAX_PIXELS,
    ImageDamagedError,
    ImageError,
    ImageFormatError,
    ImageTooLargeError,
    encode_jpeg,
    encode_png,
    image_size,
    read_image,
    shrink,
)
from device.scan.pipeline import ScanError, load_image_file
from device.web.uploads import UploadError, decode_image


def _pattern(h=40, w=60) -> np.ndarray:
    """Left half red, right half blue: which way up it is shows after a rotation."""
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[:, : w // 2] = (220, 30, 30)
    rgb[:, w // 2:] = (30, 30, 220)
    return rgb


def _jpeg_with_orientation(rgb: np.ndarray, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=95, exif=exif.tobytes())
    return buf.getvalue()


def _png_header(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * (1 + 3 * width), 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_png_round_trip_is_exact_and_rgb():
    rgb = np.random.default_rng(0).integers(0, 256, (17, 23, 3), dtype=np.uint8)
    back = read_image(encode_png(rgb))
    assert back.dtype == np.uint8 and np.array_equal(back, rgb)


def test_jpeg_encoder_shrinks_to_max_side():
    data = encode_jpeg(_pattern(400, 600), 80, max_side=150)
    assert image_size(data) == ("jpeg", 150, 100)
    assert read_image(data).shape == (100, 150, 3)


@pytest.mark.parametrize("shape,side,longer", [
    ((768, 1024, 3), 192, False),   # one halving, then a whole 2x step
    ((768, 1024, 3), 512, False),   # none: one fractional step
    ((3040, 4056, 3), 512, False),  # a Pi HQ frame to the preview: a halving, then the rest
    ((1080, 1920, 3), 500, True),
    ((481, 641, 3), 100, False),    # odd sides: no halving
])
def test_shrink_by_halvings_is_the_area_mean_to_a_rounding(shape, side, longer):
    import cv2

    rgb = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    rgb = cv2.GaussianBlur(rgb, (0, 0), 3)  # a photo's smooth colours, not noise
    out = shrink(rgb, side, longer=longer)
    h, w = shape[:2]
    scale = side / (max(h, w) if longer else min(h, w))
    size = (round(w * scale), round(h * scale))
    direct = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    assert out.shape == direct.shape
    # Each halving rounds once, and a fractional last step weighs the edges of its
    # pixels a little differently: a few levels at most, never a shifted picture.
    diff = np.abs(out.astype(int) - direct)
    assert diff.max() <= 6 and diff.mean() < 1.0


@pytest.mark.parametrize("orientation,shape,left_colour", [
    (1, (40, 60, 3), "red"),
    (3, (40, 60, 3), "blue"),   # rotated 180: blue comes to the left
    (6, (60, 40, 3), None),     # rotated 90: portrait
])
def test_exif_orientation_is_applied_everywhere(tmp_path, orientation, shape, left_colour):
    data = _jpeg_with_orientation(_pattern(), orientation)
    path = tmp_path / "photo.jpg"
    path.write_bytes(data)
    for image in (read_image(data), read_image(path), decode_image(data), load_image_file(path)):
        assert image.shape == shape
        if left_colour:
            r, _, b = image[shape[0] // 2, 3].astype(int)
            assert (r > b) == (left_colour == "red")
    # The CLI and the web see the same pixels.
    assert np.array_equal(decode_image(data), load_image_file(path))


def test_jpeg_with_data_after_the_end_marker_is_accepted(tmp_path):
    plain = encode_jpeg(_pattern(), 95)
    trailer = b"MotionPhoto_Data" + np.random.default_rng(1).bytes(4096)
    path = tmp_path / "phone.jpg"
    path.write_bytes(plain + trailer)
    want = read_image(plain)
    assert np.array_equal(decode_image(plain + trailer), want)      # the web upload
    assert np.array_equal(load_image_file(path), want)               # the CLI


def test_one_pixel_limit_header_only(tmp_path):
    side = int(MAX_PIXELS ** 0.5) + 1
    bomb = _png_header(side, side)  # a few kilobytes claiming more than the limit
    assert image_size(bomb) == ("png", side, side)
    with pytest.raises(ImageTooLargeError, match=f"{side}x{side}") as err:
        read_image(bomb)
    assert http_status(err.value) == 413
    path = tmp_path / "bomb.png"
    path.write_bytes(bomb)
    with pytest.raises(ScanError, match=f"{side}x{side}"):
        load_image_file(path)
    with pytest.raises(UploadError, match=f"{side}x{side}") as up:
        decode_image(bomb)
    assert up.value.status == 413


def test_fifty_thousand_square_png_is_a_clean_error():
    with pytest.raises(ImageTooLargeError, match="50000x50000"):
        read_image(_png_header(50000, 50000))


def test_refusals_are_typed_and_name_the_file(tmp_path):
    with pytest.raises(ImageFormatError, match="not a JPEG or PNG") as err:
        read_image(b"%PDF-1.4 nothing here", formats=("jpeg", "png"))
    assert http_status(err.value) == 415
    cut = encode_jpeg(_pattern(300, 400), 90)[:1500]
    with pytest.raises(ImageDamagedError, match="truncated"):
        read_image(cut)
    with pytest.raises(ImageError, match="empty"):
        read_image(b"")
    with pytest.raises(ImageError, match="gone.png: no such image file"):
        read_image(tmp_path / "gone.png")
    assert isinstance(ImageError("x"), ValueError)


def test_greyscale_and_sixteen_bit():
    grey16 = Image.fromarray(np.full((8, 9), 257 * 200, np.uint16))
    buf = io.BytesIO()
    grey16.save(buf, "PNG")
    rgb = read_image(buf.getvalue())
    assert rgb.shape == (8, 9, 3) and (rgb == 200).all()
    with pytest.raises(ImageError, match="greyscale"):
        read_image(buf.getvalue(), allow_grey=False)


def test_reduced_decode_for_checks():
    data = encode_jpeg(_pattern(400, 600), 90)
    assert read_image(data, reduce=8).shape == (50, 75, 3)
    assert imageio.read_image(data).shape == (400, 600, 3)


def test_the_pixel_limit_is_the_one_api_md_promises():
    from pathlib import Path

    from device.core.imageio import MAX_SIDE, too_large

    api = (Path(__file__).resolve().parents[1] / "device" / "web" / "API.md").read_text()
    text = " ".join(api.split())
    assert (f"more than {MAX_SIDE:,} pixels a side or {MAX_PIXELS // 1_000_000} megapixels"
            in text)
    assert too_large(MAX_SIDE, MAX_PIXELS // MAX_SIDE, "x") is None
    assert too_large(MAX_SIDE + 1, 10, "x") and too_large(8000, 5001, "x")
    with pytest.raises(ImageTooLargeError, match="12,000 pixels a side"):
        read_image(_png_header(MAX_SIDE + 1, 8))


def test_shrink_under_four_times_is_one_area_step_as_before():
    import cv2

    rgb = np.random.default_rng(2).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    # 2.5x: no halving, so a real photo's tiny copy is the one the crop was tuned on.
    assert np.array_equal(shrink(rgb, 192), cv2.resize(rgb, (256, 192), interpolation=cv2.INTER_AREA))
