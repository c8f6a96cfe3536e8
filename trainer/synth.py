"""Synthetic lesion data set: patients, layouts on disk, full photos, the contact sheet.

Each image grades erythema, excoriation and lichenification independently, 0-3, balanced per
sign (every grade appears n/4 times). Synthetic patients each have one skin tone (Fitzpatrick
I-VI, uniform over types) and 3-8 images across the four EASI body regions.

Layouts:
* ``manifest``: ``OUT/images/<name>.jpg`` + ``OUT/manifest.csv`` (path, patient_id, region, the
  three grades, then fitzpatrick and, for full photos, box_x, box_y, box_w, box_h).
* ``folders`` (the paper's): each image is rendered once and the same JPEG bytes are written
  under every sign's folder by that sign's grade, ``OUT/<sign>/<grade>/<name>.jpg``, so the three
  per-sign data sets hold the same images with different labels. The folder layout has no
  place for patient ids; ``OUT/patients.csv`` lists them for people (the reader ignores it).

Determinism: image i is drawn from ``default_rng([seed, i])`` and the plan from
``default_rng(seed)``, so the bytes do not depend on the number of worker processes.
The painting itself is in trainer/synth_render.py.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import multiprocessing
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from device.core.imageio import encode_jpeg
from device.core.vocab import MODEL_SIGNS, REGIONS, Grade, Region, Sign
from trainer.data import BOX_COLUMNS, FOLDERS, MANIFEST, MANIFEST_COLUMNS, MANIFEST_NAME
from trainer.synth_render import (
    _ch,
    apply_camera,
    enlarge,
    fitzpatrick,
    light_field,
    paint_lesion,
    render_lesion,
    skin_colour,
    smooth_noise,
    to_uint8,
)

log = logging.getLogger(__name__)

__all__ = ["ImageSpec", "full_photo_jpeg", "generate_dataset", "make_contact_sheet",
           "plan_dataset", "render_full_photo", "render_lesion", "render_map"]

FULL_PHOTO_SIZE = (1024, 768)  # width, height
INFO_NAME = "synth.json"
ROMAN = ("I", "II", "III", "IV", "V", "VI")
#: Probability of hairs in a patch, by body region.
HAIR_BY_REGION = {Region.HEAD_NECK: 0.15, Region.UPPER_LIMBS: 0.35, Region.TRUNK: 0.25,
                  Region.LOWER_LIMBS: 0.5}


@dataclass(frozen=True)
class ImageSpec:
    index: int
    patient_id: str
    region: Region
    tone: float
    grades: dict[Sign, int]

    @property
    def name(self) -> str:
        return f"{self.index:05d}_{self.patient_id}_{self.region.value}.jpg"


def plan_dataset(n: int, seed: int) -> list[ImageSpec]:
    """Who, where and which grades, for ``n`` images (no pixels yet)."""
    rng = np.random.default_rng(seed)
    grades = {s: rng.permutation(np.arange(n) % 4) for s in MODEL_SIGNS}
    specs: list[ImageSpec] = []
    patient = 0
    while len(specs) < n:
        patient += 1
        ftype = int(rng.integers(1, 7))
        tone = float(np.clip((ftype - 1) / 5 + rng.uniform(-0.08, 0.08), 0.0, 1.0))
        for _ in range(int(rng.integers(3, 9))):
            if len(specs) == n:
                break
            i = len(specs)
            region = REGIONS[int(rng.integers(len(REGIONS)))]
            specs.append(ImageSpec(i, f"P{patient:04d}", region, tone,
                                   {s: int(grades[s][i]) for s in MODEL_SIGNS}))
    return specs


def _encode(rgb: np.ndarray, quality: int) -> bytes:
    return encode_jpeg(rgb, quality)


def _render_job(job: tuple) -> tuple[bytes, tuple | None]:
    seed, spec, size, full, *rest = job
    photo_size = tuple(rest[0]) if rest else FULL_PHOTO_SIZE
    rng = np.random.default_rng([seed, spec.index])
    quality = int(rng.integers(72, 96))
    hair = HAIR_BY_REGION[spec.region]
    if full:
        img, box = render_full_photo(rng, spec.grades, tone=spec.tone, region=spec.region,
                                     size=photo_size)
        return _encode(img, quality), box
    return _encode(render_lesion(rng, spec.grades, tone=spec.tone, size=size, hair=hair),
                   quality), None


def full_photo_jpeg(seed: int, spec: ImageSpec, photo_size: tuple[int, int] = FULL_PHOTO_SIZE
                    ) -> tuple[bytes, tuple[int, int, int, int]]:
    """Full photo ``spec`` of plan ``seed`` (``photo_size``: width, height) as
    ``--full-photo`` writes it: the JPEG bytes and the lesion box (x, y, w, h)."""
    data, box = _render_job((seed, spec, 0, True, photo_size))
    assert box is not None
    return data, box


def _worker_init() -> None:
    cv2.setNumThreads(1)  # one process per core; OpenCV's own threads would oversubscribe
    _keep_heap()


def _keep_heap() -> None:
    """glibc quirk: each 256x256 float image (>128 KiB) is mmap'ed and unmapped again, and the
    page faults cost as much time as the painting (measured 8 ms of system time per image).
    Raising the mmap and trim thresholds keeps freed buffers in the heap for reuse."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 256 << 20)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 512 << 20)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):  # not glibc (macOS, musl): slower, still correct
        pass


def render_map(fn: Callable[[Any], Any], jobs: list, workers: int,
               initializer: Callable[..., None] | None = None, initargs: tuple = ()) -> Iterator:
    """``map(fn, jobs)`` in ``workers`` render processes (in order; each process set up as
    the generator's are, then ``initializer(*initargs)``). ``fn`` must be picklable."""
    if workers <= 1 or len(jobs) < 32:
        _pool_init(initializer, initargs)
        yield from map(fn, jobs)
        return
    # forkserver, not fork: a process that has started threads (a server, OpenCV's pool, a
    # test suite's fixtures) may hold a lock at fork time, and a forked worker then waits
    # on it for ever (seen: the data-loop test hung after the follow-up tests).
    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_pool_init,
                             initargs=(initializer, initargs)) as pool:
        yield from pool.map(fn, jobs, chunksize=16)


def _pool_init(initializer: Callable[..., None] | None, initargs: tuple) -> None:
    _worker_init()
    if initializer is not None:
        initializer(*initargs)


def _render_all(jobs: list, workers: int):
    return render_map(_render_job, jobs, workers)


def _progress(iterable, total: int, desc: str):
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is optional: fall back to a log line now and then
        def plain():
            for i, item in enumerate(iterable, 1):
                if i % 250 == 0 or i == total:
                    log.info("%s: %d/%d", desc, i, total)
                yield item
        return plain()
    # disable=None: a bar on a terminal only; a log file gets the summary line alone.
    return tqdm(iterable, total=total, desc=desc, unit="img", leave=False, disable=None)


def generate_dataset(out: Path, n: int, seed: int, size: int = 256, layout: str = FOLDERS,
                     full_photo: bool = False, workers: int | None = None,
                     photo_size: tuple[int, int] = FULL_PHOTO_SIZE) -> Path:
    """Write ``n`` synthetic images to ``out`` (which must be empty or absent). Returns ``out``."""
    out = Path(out)
    if layout not in (FOLDERS, MANIFEST):
        raise ValueError(f"layout must be {FOLDERS!r} or {MANIFEST!r}, got {layout!r}")
    if full_photo and layout != MANIFEST:
        raise ValueError("full photos need the manifest layout (the lesion box goes in the CSV)")
    if n < 1 or size < 32:
        raise ValueError(f"need n >= 1 and size >= 32 (got n={n}, size={size})")
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty; choose a new folder or remove it first")
    out.mkdir(parents=True, exist_ok=True)
    specs = plan_dataset(n, seed)
    workers = workers if workers is not None else min(2, os.cpu_count() or 1)
    jobs = [(seed, spec, size, full_photo, photo_size) for spec in specs]
    rows = []
    results = _progress(_render_all(jobs, workers), n, "synth")
    for spec, (data, box) in zip(specs, results, strict=True):
        if layout == FOLDERS:
            for sign in MODEL_SIGNS:
                folder = out / sign.value / str(spec.grades[sign])
                folder.mkdir(parents=True, exist_ok=True)
                (folder / spec.name).write_bytes(data)
        else:
            (out / "images").mkdir(exist_ok=True)
            (out / "images" / spec.name).write_bytes(data)
        rows.append((spec, box))
    _write_tables(out, layout, rows, full_photo)
    info = {"generator": "atopiscan synthetic lesions (not clinical data)", "n": n, "seed": seed,
            "size": list(photo_size) if full_photo else [size, size], "layout": layout,
            "full_photo": full_photo}
    (out / INFO_NAME).write_text(json.dumps(info, indent=1) + "\n")
    return out


def _write_tables(out: Path, layout: str, rows: list, full_photo: bool) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    cols = list(MANIFEST_COLUMNS) + ["fitzpatrick"] + (list(BOX_COLUMNS) if full_photo else [])
    writer.writerow(cols)
    for spec, box in rows:
        path = f"images/{spec.name}" if layout == MANIFEST else spec.name
        writer.writerow([path, spec.patient_id, spec.region.value,
                         *(spec.grades[s] for s in MODEL_SIGNS), fitzpatrick(spec.tone),
                         *(box if full_photo else ())])
    name = MANIFEST_NAME if layout == MANIFEST else "patients.csv"
    (out / name).write_text(buf.getvalue())


# --- full photos --------------------------------------------------------------------------


def render_full_photo(rng: np.random.Generator, grades, *, tone: float, region: Region,
                      size: tuple[int, int] = FULL_PHOTO_SIZE
                      ) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A wider photo: background, a body part of non-lesional skin, the lesion in part of it.
    Returns (uint8 RGB, lesion box x, y, w, h) with the box inside the body part. With all
    three grades 0 the box marks where the (invisible) lesion patch was painted."""
    w, h = size
    # Everything but the lesion is smooth (a wall, a body part's outline, skin colour and
    # its large mottling, the light), so it is drawn at half size and enlarged once: a
    # third of a full photo's render time. Coordinates stay in full-size pixels: a half-size
    # pixel's centre sits at 2i + 0.5 of the full grid (a row and a column broadcast to the
    # grid, the numbers np.mgrid gives, without two full-size arrays to make and read).
    hs, ws = (h + 1) // 2, (w + 1) // 2
    yy = (np.arange(hs, dtype=np.float32) * (h / hs) + (h / hs - 1) / 2)[:, None]
    xx = (np.arange(ws, dtype=np.float32) * (w / ws) + (w / ws - 1) / 2)[None, :]
    # Background: a wall or sheet in a muted colour (grey plus a slight tint).
    bg = (rng.uniform(0.3, 0.8) * np.exp(rng.normal(0, 0.12, 3))).astype(np.float32)
    bg_img = _ch(bg) * (1.0 + 0.08 * smooth_noise(rng, hs, ws, 3))
    # Body part: a big rotated ellipse (rounder for trunk/head, elongated for limbs) that
    # fills most of the frame, as a close clinic photo does, cut by the frame's edges. A
    # smaller oval wholly inside the frame on a plain wall is a face to the face detector
    # (19 of 200 photos at two thirds of these sizes, 6 of 200 at these), and the auto
    # crop then keeps off the lesion it takes for a mouth (tools kept out of the repo:
    # the notes of issue 23).
    limb = region in (Region.UPPER_LIMBS, Region.LOWER_LIMBS)
    ax = w * rng.uniform(0.825, 1.2) if limb else w * rng.uniform(0.57, 0.75)
    ay = h * rng.uniform(0.45, 0.6) if limb else h * rng.uniform(0.63, 0.825)
    cx, cy = w / 2 + rng.uniform(-0.08, 0.08) * w, h / 2 + rng.uniform(-0.08, 0.08) * h
    ang = rng.uniform(-0.5, 0.5)
    ca, sa = math.cos(ang), math.sin(ang)
    u = ((xx - cx) * ca + (yy - cy) * sa) / ax
    v = (-(xx - cx) * sa + (yy - cy) * ca) / ay
    r2 = u * u + v * v
    body = np.clip((1.0 - r2) * 40.0, 0.0, 1.0)
    base = skin_colour(tone + rng.normal(0, 0.03)) * np.exp(rng.normal(0, 0.03, 3)).astype(
        np.float32)
    skin = _ch(base) * (1.0 + 0.04 * smooth_noise(rng, hs, ws, 8)
                        + 0.02 * smooth_noise(rng, hs, ws, 40))
    skin *= 1.0 - 0.45 * np.clip(r2, 0, 1) ** 2  # the body curves away
    # skin * body + bg_img * (1 - body), in place, then enlarged to the photo's size.
    skin *= body
    bg_img *= 1.0 - body
    skin += bg_img
    skin = enlarge(skin, h, w)
    # Lesion box: random size, corners inside the body ellipse (fixed number of draws).
    bw = int(h * rng.uniform(0.28, 0.5))
    bh = int(bw * rng.uniform(0.75, 1.25))
    cands = rng.uniform(0, 1, (64, 2)) * (w - bw, h - bh)
    bx, by = _inside(cands, bw, bh, cx, cy, ax * 0.92, ay * 0.92, ca, sa)
    masks: dict[str, np.ndarray] = {}
    patch = paint_lesion(rng, grades, tone=tone, height=bh, width=bw, hair=0.0, base_rgb=base,
                         masks=masks)
    # Feathered blob mask so the patch fades into the surrounding skin.
    py, px = np.mgrid[-1:1:complex(0, bh), -1:1:complex(0, bw)].astype(np.float32)
    feather = np.clip((1.0 - (px * px + py * py) ** 1.5) * 3.0, 0.0, 1.0)
    region_skin = skin[:, by:by + bh, bx:bx + bw]
    shade = region_skin / _ch(base)  # keep the big-scale shading over the patch
    skin[:, by:by + bh, bx:bx + bw] = region_skin * (1 - feather) + patch * shade * feather
    img = skin * enlarge(light_field(rng, hs, ws), h, w)
    # The recorded box is the lesion's visible core within the pasted patch (what a person
    # would draw), not the whole patch; falls back to the patch if the core is empty.
    ys, xs = np.nonzero(masks["lesion"] & (feather > 0.5))
    if len(xs):
        box = (bx + int(xs.min()), by + int(ys.min()), int(xs.max() - xs.min()) + 1,
               int(ys.max() - ys.min()) + 1)
    else:
        box = (bx, by, bw, bh)
    return to_uint8(apply_camera(rng, img, 1.5)), box


def _inside(cands, bw, bh, cx, cy, ax, ay, ca, sa) -> tuple[int, int]:
    for x0, y0 in cands:
        corners = np.array([[x0, y0], [x0 + bw, y0], [x0, y0 + bh], [x0 + bw, y0 + bh]])
        dx, dy = corners[:, 0] - cx, corners[:, 1] - cy
        u, v = (dx * ca + dy * sa) / ax, (-dx * sa + dy * ca) / ay
        if np.all(u * u + v * v <= 1.0):
            return int(x0), int(y0)
    return int(cx - bw / 2), int(cy - bh / 2)  # centred: always inside for these sizes


# --- contact sheet ------------------------------------------------------------------------


def make_contact_sheet(path: Path, seed: int = 0, *, size: int = 128,
                       tones: Sequence[float] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)) -> Path:
    """A labelled grid, one row per sign x grade, one column per Fitzpatrick type. Within a
    column every image uses the same random draws and only that row's sign changes (the
    other signs at 0), so reading down a column shows the grade rising."""
    label_w, head_h, pad = 170, 28, 2
    n_rows, n_cols = len(MODEL_SIGNS) * 4, len(tones)
    sheet = np.full((head_h + n_rows * (size + pad), label_w + n_cols * (size + pad), 3), 255,
                    np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    for j, tone in enumerate(tones):
        cv2.putText(sheet, f"Fitzpatrick {ROMAN[fitzpatrick(tone) - 1]}",
                    (label_w + j * (size + pad) + 4, head_h - 9), font, 0.42, (0, 0, 0), 1,
                    cv2.LINE_AA)
    for r, (sign, grade) in enumerate((s, g) for s in MODEL_SIGNS for g in range(4)):
        y0 = head_h + r * (size + pad)
        cv2.putText(sheet, sign.value, (6, y0 + size // 2 - 4), font, 0.5, (0, 0, 0), 1,
                    cv2.LINE_AA)
        cv2.putText(sheet, f"{grade} {Grade(grade).label}", (6, y0 + size // 2 + 16), font,
                    0.5, (0, 0, 0), 1, cv2.LINE_AA)
        for j, tone in enumerate(tones):
            rng = np.random.default_rng([seed, 999_999, j])
            grades = {s: 0 for s in MODEL_SIGNS} | {sign: grade}
            img = render_lesion(rng, grades, tone=tone, size=size, hair=0.0)
            x0 = label_w + j * (size + pad)
            sheet[y0:y0 + size, x0:x0 + size] = img
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write the contact sheet {path}")
    return path


def remove_dataset(out: Path) -> None:
    """Remove what generate_dataset writes (and nothing else) so ``out`` can be regenerated."""
    out = Path(out)
    for name in [s.value for s in MODEL_SIGNS] + ["images"]:
        if (out / name).is_dir():
            shutil.rmtree(out / name)
    for name in (MANIFEST_NAME, "patients.csv", INFO_NAME):
        (out / name).unlink(missing_ok=True)
