"""``python -m device bench-colour``: does the colour card keep the erythema grade?

Each lesion scene (a photo under D65 with a card beside the lesion) is taken under
several lights (device.colour.scene: 2700-6500 K, a random exposure error within
+-1 EV, random channel crosstalk, a camera tone curve that is not exact sRGB) and
every photo is scanned twice with the installed
pack, with colour correction and without, cropping the lesion's box. Reported:

* ``same_grade_corrected`` / ``same_grade_uncorrected``: share of lesions whose
  erythema grade is the same in every photo (a refused or abstained photo breaks it),
  of the lesions the pack grades under D65 (the others say nothing about colour);
* ``agree_reference_*``: share of those lesions' photos graded as the scene itself is
  (D65, no cast);
* ``median_delta_e``: median over photos of the mean residual CIEDE2000 after correction;
* ``card_found``: share of photos where a card was found (it is looked for before the
  quality check, so in every photo);
* ``colour_ms`` / ``rest_ms``: median time of the colour step and of the rest of the
  same corrected scans (those the quality check passed), and their ratio.

Scenes come from a folder written by ``python -m trainer synth-card`` (the trainer's
lesions, as the pack was trained on) or, without one, from the device's own synthetic
camera renderer. Synthetic figures, not clinical accuracy.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from device.cameras.synthetic import render_skin_frame
from device.colour.card import CardKind
from device.colour.record import ColourStatus
from device.colour.scene import capture, place_card, random_light
from device.config import DeviceConfig
from device.core.imageio import read_image
from device.core.vocab import Sign
from device.grading.models import ModelSet
from device.scan.pipeline import Scanner

log = logging.getLogger(__name__)

BENCH_KELVINS = (2700, 3500, 4500, 6500)
SCENES_NAME = "scenes.json"


@dataclass(frozen=True)
class Scene:
    image: np.ndarray  # RGB uint8 under D65, card in view
    box: tuple[int, int, int, int]


def device_scenes(n: int, seed: int = 0) -> Iterator[Scene]:
    """``n`` scenes from the synthetic camera's renderer with a card laid beside the lesion."""
    for i in range(n):
        rng = np.random.default_rng([seed, i, 24])
        frame, box = render_skin_frame(rng, 1024, 768)
        kind = (CardKind.CHART, CardKind.PRINTED)[i % 2]
        image, _ = place_card(rng, frame, kind, box)
        yield Scene(image, box)


def folder_scenes(folder: Path, n: int) -> Iterator[Scene]:
    """The first ``n`` scenes listed in ``folder/scenes.json``."""
    index = json.loads((Path(folder) / SCENES_NAME).read_text())
    for row in index["scenes"][:n]:
        image = read_image(Path(folder) / row["path"], what="bench scene")
        yield Scene(image, tuple(int(v) for v in row["box"]))  # type: ignore[arg-type]


def _erythema(scanner: Scanner, image: np.ndarray, box) -> tuple[int | None, object]:
    result = scanner.scan(image, box=box)
    sign = result.signs.get(Sign.ERYTHEMA)
    return (int(sign.grade) if sign else None), result


def run_colour_bench(config: DeviceConfig, models: ModelSet, scenes: Iterator[Scene], *,
                     kelvins: tuple[float, ...] = BENCH_KELVINS, seed: int = 0) -> dict:
    """Scan every scene under each of ``kelvins``, with and without correction."""
    on = config.model_copy(deep=True)
    on.colour.correct = True
    off = config.model_copy(deep=True)
    off.colour.correct = False
    corrected, uncorrected = Scanner(on, None, models), Scanner(off, None, models)
    same_on = same_off = agree_on = agree_off = photos = found = lesions = 0
    delta_e, colour_ms, rest_ms, refused = [], [], [], 0
    details, graded, compared = [], 0, 0
    for i, scene in enumerate(scenes):
        lesions += 1
        rng = np.random.default_rng([seed, i, 2700])
        reference, _ = _erythema(uncorrected, scene.image, scene.box)
        grades_on, grades_off = [], []
        for kelvin in kelvins:
            light = random_light(rng, kelvin)
            photo = capture(rng, scene.image, light)
            g_on, result = _erythema(corrected, photo, scene.box)
            g_off, _ = _erythema(uncorrected, photo, scene.box)
            photos += 1
            grades_on.append(g_on)
            grades_off.append(g_off)
            if reference is not None:
                compared += 1
                agree_on += g_on == reference
                agree_off += g_off == reference
            colour = result.colour  # the card is looked for before the quality check
            if colour is not None and colour.status is not ColourStatus.NO_CARD:
                found += 1
                if colour.delta_e is not None:
                    delta_e.append(colour.delta_e)
            if not result.quality.ok:
                refused += 1
                continue
            t = result.timings_ms  # a whole scan: colour against the rest
            colour_ms.append(t["colour"])
            rest_ms.append(t["total"] - t["colour"])
        details.append({"reference": reference, "corrected": grades_on,
                        "uncorrected": grades_off})
        if reference is None:  # the pack does not grade this scene even under D65
            continue
        graded += 1
        same_on += None not in grades_on and len(set(grades_on)) == 1
        same_off += None not in grades_off and len(set(grades_off)) == 1
    if not graded:
        raise ValueError(f"the pack graded none of the {lesions} scenes under D65: nothing "
                         "to compare")
    median_colour = float(np.median(colour_ms)) if colour_ms else 0.0
    median_rest = float(np.median(rest_ms)) if rest_ms else 0.0
    return {
        "lesions": lesions, "photos": photos, "kelvins": list(kelvins),
        "lesions_graded_under_d65": graded,
        "same_grade_corrected": same_on / graded,
        "same_grade_uncorrected": same_off / graded,
        "agree_reference_corrected": agree_on / compared,
        "agree_reference_uncorrected": agree_off / compared,
        "median_delta_e": float(np.median(delta_e)) if delta_e else None,
        "card_found": found / photos,
        "refused_by_quality": refused,
        "colour_ms": median_colour, "rest_ms": median_rest,
        "colour_share_of_rest": median_colour / median_rest if median_rest else None,
        "pack_version": models.pack_version,
        "erythema_grades": details,
    }


def format_colour_bench(report: dict) -> str:
    de = report["median_delta_e"]
    return "\n".join([
        f"{report['lesions']} lesions ({report['lesions_graded_under_d65']} graded under D65) x "
        f"{len(report['kelvins'])} lights "
        f"({', '.join(str(k) for k in report['kelvins'])} K, random +-1 EV, crosstalk, tone curve); "
        f"pack {report['pack_version']}; synthetic, not clinical",
        f"same erythema grade under every light: corrected {report['same_grade_corrected']:.1%}"
        f", uncorrected {report['same_grade_uncorrected']:.1%}",
        f"graded as under D65: corrected {report['agree_reference_corrected']:.1%}, "
        f"uncorrected {report['agree_reference_uncorrected']:.1%}",
        f"card found in {report['card_found']:.1%} of photos; median residual dE2000 "
        + (f"{de:.2f}" if de is not None else "n/a")
        + f"; {report['refused_by_quality']} photos refused by the quality check",
        f"colour step {report['colour_ms']:.1f} ms vs rest of the scan {report['rest_ms']:.1f} ms"
        + (f" (ratio {report['colour_share_of_rest']:.3f})"
           if report["colour_share_of_rest"] is not None else ""),
    ])


SHEET_KELVINS = (2700, 4000, 6500)


def _tile(img: np.ndarray, box: tuple[int, int, int, int], label: str, width: int) -> np.ndarray:
    x, y, w, h = box
    frame = cv2.resize(img, (width, round(width * img.shape[0] / img.shape[1])),
                       interpolation=cv2.INTER_AREA)
    crop = cv2.resize(img[y:y + h, x:x + w], (frame.shape[0], frame.shape[0]),
                      interpolation=cv2.INTER_AREA)
    tile = np.hstack([frame, crop])
    cv2.putText(tile, label, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1,
                cv2.LINE_AA)
    return tile


def contact_sheet(config: DeviceConfig, scene: Scene, kelvins: tuple[float, ...] = SHEET_KELVINS,
                  *, width: int = 360, seed: int = 0) -> np.ndarray:
    """One lesion under each light, a row each: the photo as taken, then as corrected,
    each with the lesion crop beside it; the top row is the scene under D65 (what the
    models were trained on). RGB uint8, for people to look at."""
    from device.colour.correct import correct_colour

    rng = np.random.default_rng([seed, 3])
    reference = _tile(scene.image, scene.box, "reference light D65", width)
    rows = [np.hstack([reference, np.full((reference.shape[0], reference.shape[1] + 6, 3), 255,
                                          np.uint8)])]
    for kelvin in kelvins:
        light = random_light(rng, kelvin)
        photo = capture(rng, scene.image, light)
        colour = correct_colour(photo, config.colour)
        fixed = colour.apply(photo) if colour.corrected else photo
        taken = _tile(photo, scene.box, f"{kelvin:.0f} K, {light.ev:+.1f} EV: as taken", width)
        after = _tile(fixed, scene.box, "corrected" if colour.corrected
                      else colour.message()[:40], width)
        rows.append(np.hstack([taken, np.full((taken.shape[0], 6, 3), 255, np.uint8), after]))
    gap = np.full((6, rows[0].shape[1], 3), 255, np.uint8)
    return np.vstack([r for row in rows for r in (row, gap)][:-1])
