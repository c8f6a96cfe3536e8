"""Malformed photos and damaged model packs, made here (no real photos), for the
hostile-but-fair tests (tests/test_hostile.py) and the tables of answers
(tests/hostile_report.py).

``malformed_images()`` maps a case name to (file bytes, file suffix, expected
kind): "bad" must be refused as bad input (HTTP 4xx, CLI exit 2), "photo" is a
readable colour photo (graded, or refused by the quality check as a retake).
``damaged_packs(good, out)`` writes a damaged copy of a real pack per case.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import lzma
import struct
import tarfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

BAD, PHOTO = "bad", "photo"


def _skin(w: int = 320, h: int = 240, seed: int = 0) -> np.ndarray:
    """A smooth skin-coloured photo with some texture (passes the quality check)."""
    from device.cameras import render_skin_frame

    frame, _ = render_skin_frame(np.random.default_rng(seed), w, h)
    return frame


def _save(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(side: int = 50000) -> bytes:
    """A well-formed PNG whose header declares side x side RGB pixels (7.5 GB decoded)."""
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * (1 + 3 * side) * 4, 9)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def _patched_jpeg_size(data: bytes, w: int, h: int) -> bytes:
    out = bytearray(data)
    i = out.index(b"\xff\xc0")
    out[i + 5:i + 9] = struct.pack(">HH", h, w)
    return bytes(out)


def _exif_rotated_jpeg(rgb: np.ndarray) -> bytes:
    img = Image.fromarray(rgb)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    return _save(img, "JPEG", quality=90, exif=exif.tobytes())


def malformed_images() -> dict[str, tuple[bytes, str, str]]:
    rgb = _skin()
    img = Image.fromarray(rgb)
    jpeg = _save(img, "JPEG", quality=90)
    png = _save(img, "PNG")
    grey = img.convert("L")
    grey16 = np.asarray(grey, dtype=np.uint16) * 257
    bad_crc = bytearray(png)
    bad_crc[29] ^= 0xFF  # inside IHDR's CRC
    mid = bytearray(jpeg)
    for i in range(len(mid) // 2, len(mid) // 2 + 400):
        mid[i] = 0xFF if i % 3 else 0x00
    zero_width = bytearray(png)
    zero_width[16:20] = b"\x00\x00\x00\x00"
    return {
        "zero_bytes": (b"", ".jpg", BAD),
        "truncated_jpeg": (jpeg[: len(jpeg) // 2], ".jpg", BAD),
        "truncated_png": (png[: len(png) // 2], ".png", BAD),
        "png_cut_before_iend": (png[:-12], ".png", BAD),
        "wrong_magic_text": (b"patient,grade\nP1,3\n" * 20, ".jpg", BAD),
        "random_bytes": (np.random.default_rng(1).bytes(5000), ".png", BAD),
        "html": (b"<!doctype html><html><body>not an image</body></html>", ".jpg", BAD),
        "pdf": (b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n", ".jpg", BAD),
        "huge_declared_png_50000": (bomb_png(50000), ".png", BAD),
        "huge_declared_jpeg_50000": (_patched_jpeg_size(jpeg, 50000, 50000), ".jpg", BAD),
        "zero_width_png": (bytes(zero_width), ".png", BAD),
        "png_bad_crc": (bytes(bad_crc), ".png", BAD),
        "jpeg_only_markers": (b"\xff\xd8\xff\xd9", ".jpg", BAD),
        # JPEG decoders conceal damaged entropy data: it decodes (to odd pixels) everywhere
        "jpeg_scrambled_scan": (bytes(mid), ".jpg", PHOTO),
        "greyscale_jpeg": (_save(grey, "JPEG", quality=90), ".jpg", BAD),
        "greyscale_png": (_save(grey, "PNG"), ".png", BAD),
        "greyscale_16bit_png": (_save(Image.fromarray(grey16), "PNG"), ".png", BAD),
        "gif": (_save(img.convert("P"), "GIF"), ".gif", BAD),
        "bmp": (_save(img, "BMP"), ".bmp", BAD),
        "webp": (_save(img, "WEBP"), ".webp", BAD),
        "tiff": (_save(img, "TIFF"), ".tif", BAD),
        "one_pixel_png": (_save(Image.new("RGB", (1, 1), (200, 150, 130)), "PNG"), ".png", BAD),
        "jpeg": (jpeg, ".jpg", PHOTO),
        "png": (png, ".png", PHOTO),
        "jpeg_trailing_bytes": (jpeg + b"\x00MotionPhoto" * 200, ".jpg", PHOTO),
        "png_trailing_bytes": (png + b"trailing junk" * 50, ".png", PHOTO),
        "rgba_png": (_save(img.convert("RGBA"), "PNG"), ".png", PHOTO),
        "palette_png": (_save(img.convert("P"), "PNG"), ".png", PHOTO),
        "rgb_16bit_png": (_png16(rgb), ".png", PHOTO),
        "cmyk_jpeg": (_save(img.convert("CMYK"), "JPEG", quality=90), ".jpg", PHOTO),
        "progressive_jpeg": (_save(img, "JPEG", quality=90, progressive=True), ".jpg", PHOTO),
        "exif_rotated_jpeg": (_exif_rotated_jpeg(rgb), ".jpg", PHOTO),
        "dark_photo": (_save(Image.new("RGB", (320, 240), (8, 6, 5)), "PNG"), ".png", PHOTO),
        "blue_wall_photo": (_save(Image.new("RGB", (320, 240), (40, 90, 200)), "PNG"), ".png",
                            PHOTO),
    }


def _png16(rgb: np.ndarray) -> bytes:
    """A 16-bit-per-channel RGB PNG (Pillow cannot write one; OpenCV can)."""
    import cv2

    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR).astype(np.uint16) * 257)
    assert ok
    return buf.tobytes()


# ---- damaged packs -------------------------------------------------------------------


def read_members(pack: Path) -> dict[str, bytes]:
    with tarfile.open(pack) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isreg()}


def write_members(out: Path, members: dict[str, bytes],
                  extra: tuple[tarfile.TarInfo, ...] = ()) -> Path:
    with tarfile.open(out, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info in extra:
            tar.addfile(info, io.BytesIO(b"x" * info.size) if info.isreg() else None)
    return out


def _rehash(members: dict[str, bytes], changed: str) -> dict[str, bytes]:
    """After editing ``changed``, make the manifest's sha256 agree (unsigned pack)."""
    manifest = json.loads(members["manifest.json"])
    manifest["files"][changed] = hashlib.sha256(members[changed]).hexdigest()
    members["manifest.json"] = json.dumps(manifest, indent=2).encode()
    members.pop("manifest.sig", None)
    return members


def _golden_names(members: dict[str, bytes]) -> tuple[str, list[str]]:
    manifest = json.loads(members["manifest.json"])
    golden = json.loads(members[manifest["golden"]])
    images = [case["image"] for cases in golden["cases"].values() for case in cases]
    return manifest["golden"], images


def _edit_manifest(members: dict[str, bytes], edit: Callable[[dict], None]) -> dict[str, bytes]:
    manifest = json.loads(members["manifest.json"])
    edit(manifest)
    members["manifest.json"] = json.dumps(manifest).encode()
    members.pop("manifest.sig", None)
    return members


def _first_model(members: dict[str, bytes]) -> tuple[str, str]:
    manifest = json.loads(members["manifest.json"])
    entry = next(iter(manifest["models"].values()))
    return entry["model"], entry["card"]


def _special(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info


def damaged_packs(good: Path, out: Path) -> dict[str, Path]:
    """A damaged copy of the real pack ``good`` per case, written into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    raw = good.read_bytes()
    base = read_members(good)
    golden_file, golden_images = _golden_names(base)
    model, card = _first_model(base)
    cases: dict[str, Callable[[Path], Path]] = {}

    def members_case(name: str, make: Callable[[dict[str, bytes]], dict[str, bytes]],
                     extra: tuple[tarfile.TarInfo, ...] = ()) -> None:
        cases[name] = lambda path: write_members(path, make(dict(base)), extra)

    def bytes_case(name: str, data: bytes) -> None:
        cases[name] = lambda path: (path.write_bytes(data), path)[1]

    bytes_case("zero_bytes", b"")
    bytes_case("not_a_tar_text", b"this is not a pack\n" * 100)
    bytes_case("random_bytes", np.random.default_rng(2).bytes(20000))
    bytes_case("truncated_half", raw[: len(raw) // 2])
    bytes_case("truncated_header", raw[:300])
    bytes_case("gzipped", gzip.compress(raw))
    bytes_case("xz_compressed", lzma.compress(raw))
    bytes_case("zip_file", b"PK\x03\x04" + b"\x00" * 600)
    members_case("manifest_missing", lambda m: {k: v for k, v in m.items()
                                                if k != "manifest.json"})
    members_case("manifest_not_json", lambda m: {**m, "manifest.json": b"{not json"})
    members_case("manifest_wrong_schema",
                 lambda m: _edit_manifest(m, lambda d: d.pop("models")))
    members_case("manifest_unknown_key",
                 lambda m: _edit_manifest(m, lambda d: d.update(colour="red")))
    members_case("device_version_too_new",
                 lambda m: _edit_manifest(m, lambda d: d.update(min_device_version="99.0")))
    members_case("model_byte_flipped", lambda m: {**m, model: m[model][:-1] + bytes(
        [m[model][-1] ^ 0xFF])})
    members_case("model_missing", lambda m: {k: v for k, v in m.items() if k != model})
    members_case("unlisted_extra_file", lambda m: {**m, "notes.txt": b"hello"})
    members_case("card_not_json", lambda m: _rehash({**m, card: b"{oops"}, card))
    members_case("card_wrong_sign", lambda m: _rehash({**m, card: _card_edit(
        m[card], sign="excoriation" if b'"erythema"' in m[card] else "erythema")}, card))
    members_case("card_wrong_sha256",
                 lambda m: _rehash({**m, card: _card_edit(m[card], sha256="0" * 64)}, card))
    members_case("model_garbage_consistent",
                 lambda m: _rehash(_rehash({**m, model: b"TFL3" + b"\x00" * 512}, model) | {
                     card: _card_edit(m[card], sha256=hashlib.sha256(
                         b"TFL3" + b"\x00" * 512).hexdigest())}, card))
    members_case("golden_set_not_json", lambda m: _rehash({**m, golden_file: b"[1, 2"},
                                                           golden_file))
    members_case("golden_probs_changed", lambda m: _rehash(
        {**m, golden_file: _golden_edit(m[golden_file])}, golden_file))
    members_case("golden_image_bomb_png", lambda m: _rehash(
        {**m, golden_images[0]: bomb_png(50000)}, golden_images[0]))
    members_case("golden_image_truncated", lambda m: _rehash(
        {**m, golden_images[0]: m[golden_images[0]][:40]}, golden_images[0]))
    members_case("golden_image_jpeg", lambda m: _rehash(
        {**m, golden_images[0]: _save(Image.new("RGB", (32, 32)), "JPEG")}, golden_images[0]))
    members_case("golden_image_wrong_size", lambda m: _rehash(
        {**m, golden_images[0]: _save(Image.new("RGB", (16, 16)), "PNG")}, golden_images[0]))
    members_case("path_traversal", lambda m: m, (_reg("../../etc/evil", 4),))
    members_case("absolute_path", lambda m: m, (_reg("/tmp/evil", 4),))
    members_case("symlink_member", lambda m: m,
                 (_special("link", tarfile.SYMTYPE, "/etc/passwd"),))
    members_case("hardlink_member", lambda m: m,
                 (_special("hard", tarfile.LNKTYPE, "manifest.json"),))
    members_case("fifo_member", lambda m: m, (_special("pipe", tarfile.FIFOTYPE),))
    members_case("device_member", lambda m: m, (_special("sda", tarfile.BLKTYPE),))
    members_case("duplicate_member", lambda m: m, (_reg("manifest.json", 4),))
    members_case("too_many_members", lambda m: m,
                 tuple(_reg(f"x/{i}", 0) for i in range(2100)))
    paths = {}
    for name, make in cases.items():
        paths[name] = make(out / f"{name}.tar")
    return paths


def _reg(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    return info


def _card_edit(data: bytes, **changes: str) -> bytes:
    card = json.loads(data)
    card.update(changes)
    return json.dumps(card).encode()


def _golden_edit(data: bytes) -> bytes:
    golden = json.loads(data)
    for cases in golden["cases"].values():
        for case in cases:
            case["probs"] = [0.0, 0.0, 0.0, 1.0] if case["grade"] != 3 else [1.0, 0.0, 0.0, 0.0]
            case["grade"] = 3 if case["grade"] != 3 else 0
    return json.dumps(golden).encode()
