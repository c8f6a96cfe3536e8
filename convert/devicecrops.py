"""Training crops cut as the device cuts them: the demo's graders learn from what the
scan feeds them (issue 23, "train as the device sees").

Each image starts as one of the generator's full synthetic photos (trainer.synth,
``--full-photo``: a body part on a background, the lesion in part of it), encoded as the
JPEG the generator writes and decoded by the device's own reader. The device's scan then
looks at it and cuts it (device.scan.pipeline.look_at and cut_lesion: preview, colour step,
shared views, faces, the configured crop mode, the auto crop's box), and the patch is
resized as the models are fed (device.scan.pipeline.model_input). What is written is that
model input, losslessly (PNG), so the trainer's own load_image leaves it as it is, and
the int8 calibration, the held-out split and the abstention statistics all see the
pixels the device grades.

The grades are those of the photo's lesion, whichever square the crop chose: where the
auto crop misses the lesion the label says what the photo shows, not what the crop
shows, as it would for a clinic's photo graded by a person. ``lesion_iou`` (the crop
against the lesion box) is written beside it so a reader can see how often that happens.

``drop_fallbacks`` (the demo's choice) leaves out the photos whose auto crop fell back to
the guide square. The device says so when it happens ("auto crop unsure"), and a person
then frames the lesion in the guide square; the generator does not centre its lesions,
so such a crop mostly shows plain skin under the lesion's grades (72 of the demo's 2,000
photos at 1024x768; 235 when the generator's body parts were smaller and the face detector
took one photo in ten for a face), a label no grader could learn from.

Layout: ``OUT/images/<name>.png``, ``OUT/manifest.csv`` (the trainer's manifest columns,
``fitzpatrick``, then the crop: ``crop_x``, ``crop_y``, ``crop_side``, ``crop_mode``,
``crop_fallback``, ``lesion_iou``, and the quality check's ``quality_ok`` and
``sharpness``; extra columns the trainer keeps and ignores) and
``OUT/synth.json`` (marks the set synthetic) and ``OUT/scene.npz``: every photo's scene
descriptor (device.grading.scenestats, of the frame's tiny view as ``look_at`` made it, left-out
photos included), with its image name and patient, which convert.abstention fits the
pack's scene space on (``SceneRecords``). Synthetic images: never clinical.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from device.config import DeviceConfig
from device.vision.crop import iou

log = logging.getLogger(__name__)

CROP_COLUMNS = ("crop_x", "crop_y", "crop_side", "crop_mode", "crop_fallback", "lesion_iou",
                "quality_ok", "sharpness")
#: The device profile the demo runs (its crop mode and colour step cut the crops).
DEFAULT_PROFILE = Path(__file__).resolve().parents[1] / "firmware_config" / "desktop-demo.yaml"

#: Every photo's scene descriptor (device.grading.scenestats), beside the manifest.
SCENE_FILE = "scene.npz"

_worker: dict[str, DeviceConfig] = {}


@dataclass(frozen=True)
class SceneRecords:
    """The scene descriptors a device-crops run recorded: one row per photo, its image name
    (the manifest's file name) and patient, and whether its crop was kept."""

    names: tuple[str, ...]
    patients: tuple[str, ...]
    kept: np.ndarray
    descriptors: np.ndarray

    def for_patients(self, patients: set[str]) -> np.ndarray:
        """Descriptors (N, SCENE_DIM) of the photos of ``patients``, kept or left out: the
        split is by patient, so a left-out photo belongs to its patient's side."""
        pick = np.asarray([p in patients for p in self.patients], bool)
        return self.descriptors[pick]


def load_scene_records(root: Path) -> SceneRecords | None:
    """``root``'s scene descriptors, or None when it has none (data written before them)."""
    path = Path(root) / SCENE_FILE
    if not path.exists():
        return None
    with np.load(path, allow_pickle=False) as data:
        return SceneRecords(tuple(str(n) for n in data["names"]),
                            tuple(str(p) for p in data["patients"]), data["kept"].astype(bool),
                            data["descriptors"].astype(np.float64))


@dataclass(frozen=True)
class CutSummary:
    n: int
    fallbacks: int
    mean_iou: float
    iou_ge_half: float
    quality_refused: int = 0
    kept: int | None = None  # crops written (fewer than n when fallbacks are left out)

    def line(self) -> str:
        kept = self.n if self.kept is None else self.kept
        return (f"{self.n} photos cut as the device cuts them, {kept} crops kept: "
                f"{self.fallbacks} fell back to the guide square; crop against the lesion box: mean IoU {self.mean_iou:.2f}, "
                f"IoU >= 0.5 on {100 * self.iou_ge_half:.1f} %; the quality check would refuse "
                f"{self.quality_refused} of the photos")


def is_device_cut(root: Path) -> bool:
    """Whether data root ``root`` was written by generate_device_crops (its synth.json)."""
    from trainer.synth import INFO_NAME

    try:
        info = json.loads((Path(root) / INFO_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(info, dict) and "device_crops" in info


def _init(config: DeviceConfig) -> None:
    _worker["config"] = config


def _cut_job(job: tuple[int, object, int, tuple[int, int]]) -> tuple[bytes, tuple[int, int, int], str, bool,
                                                   float, bool, float, np.ndarray]:
    """Render full photo ``spec`` of plan ``seed``, cut it as a scan does, resize it to
    ``size``: (PNG bytes, crop x, y, side, crop mode, fell back, IoU with the lesion box,
    the quality check's verdict, the sharpness it measured, the frame's scene descriptor)."""
    from device.core.imageio import encode_png, read_image
    from device.grading.scenestats import describe_scene
    from device.scan.pipeline import cut_lesion, look_at, model_input
    from device.vision.quality import check_quality
    from trainer.synth import full_photo_jpeg

    seed, spec, size, photo_size = job
    config = _worker["config"]
    jpeg, lesion = full_photo_jpeg(seed, spec, photo_size)  # type: ignore[arg-type]
    image = read_image(jpeg, what=f"synthetic photo {spec.index}")  # type: ignore[attr-defined]
    look = look_at(image, config)
    # Cut whatever the quality check says (its verdict is recorded): a photo near its
    # thresholds still shows its lesion as the device would see it.
    quality = check_quality(image, config.quality, views=look.views, faces=look.faces)
    crop, patch = cut_lesion(image, look, config)
    pixels = model_input(patch, (size, size))
    x, y, side, _ = crop.box
    views = look.views
    return (encode_png(pixels), (x, y, side), crop.mode.value, crop.fallback,
            iou(crop.box, lesion), quality.ok, float(quality.measures.sharpness),
            describe_scene(views.tiny, views.skin, views.lab, views.saturation))


def generate_device_crops(out: Path, n: int, seed: int, size: int, *,
                          config: DeviceConfig, workers: int | None = None,
                          photo_size: tuple[int, int] | None = None,
                          drop_fallbacks: bool = False) -> CutSummary:
    """Write ``n`` device-cut crops of ``size`` pixels to ``out`` (empty or absent), cut
    from full photos of ``photo_size`` (width, height; default the generator's).
    ``drop_fallbacks``: leave out the photos whose auto crop fell back to the guide square
    (see the module doc)."""
    from device.core.vocab import MODEL_SIGNS
    from trainer.data import MANIFEST_COLUMNS, MANIFEST_NAME
    from trainer.synth import FULL_PHOTO_SIZE, INFO_NAME, _progress, plan_dataset, render_map
    from trainer.synth_render import fitzpatrick

    out = Path(out)
    if n < 1 or size < 32:
        raise ValueError(f"need n >= 1 and size >= 32 (got n={n}, size={size})")
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty; choose a new folder or remove it first")
    (out / "images").mkdir(parents=True, exist_ok=True)
    specs = plan_dataset(n, seed)
    workers = workers if workers is not None else min(2, os.cpu_count() or 1)
    photo_size = tuple(photo_size or FULL_PHOTO_SIZE)
    jobs = [(seed, spec, size, photo_size) for spec in specs]
    results = _progress(render_map(_cut_job, jobs, workers, _init, (config,)), n, "device crops")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([*MANIFEST_COLUMNS, "fitzpatrick", *CROP_COLUMNS])
    ious, fallbacks, refused = [], 0, 0
    names, kept_flags, scenes = [], [], []
    for spec, (png, (x, y, side), mode, fallback, overlap, quality_ok, sharpness, scene) in zip(
            specs, results, strict=True):
        ious.append(overlap)
        fallbacks += fallback
        refused += not quality_ok
        name = Path(spec.name).with_suffix(".png").name
        names.append(name)
        scenes.append(scene)
        kept_flags.append(not (fallback and drop_fallbacks))
        if fallback and drop_fallbacks:
            continue
        (out / "images" / name).write_bytes(png)
        writer.writerow([f"images/{name}", spec.patient_id, spec.region.value,
                         *(spec.grades[s] for s in MODEL_SIGNS), fitzpatrick(spec.tone),
                         x, y, side, mode, int(fallback), f"{overlap:.3f}", int(quality_ok),
                         f"{sharpness:.2f}"])
    (out / MANIFEST_NAME).write_text(buf.getvalue())
    with open(out / SCENE_FILE, "wb") as fh:
        np.savez(fh, names=np.asarray(names), patients=np.asarray([s.patient_id for s in specs]),
                 kept=np.asarray(kept_flags), descriptors=np.stack(scenes))
    arr = np.asarray(ious)
    kept = n - fallbacks if drop_fallbacks else n
    summary = CutSummary(n, fallbacks, float(arr.mean()), float((arr >= 0.5).mean()), refused,
                         kept)
    info = {"generator": "atopiscan synthetic lesions (not clinical data)", "n": kept, "seed": seed,
            "size": [size, size], "layout": "manifest", "full_photo": False,
            "device_crops": {"photo_size": list(photo_size), "crop_mode": config.crop.mode.value,
                             "resize": "INTER_AREA (device.scan.pipeline.model_input)",
                             "photos": n, "fallbacks": fallbacks,
                             "fallbacks_left_out": drop_fallbacks, "quality_refused": refused,
                             "mean_lesion_iou": round(summary.mean_iou, 4),
                             "lesion_iou_ge_0.5": round(summary.iou_ge_half, 4)}}
    (out / INFO_NAME).write_text(json.dumps(info, indent=1) + "\n")
    log.info("%s", summary.line())
    return summary
