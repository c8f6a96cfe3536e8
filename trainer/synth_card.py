"""Full synthetic photos with a colour reference card (device.colour.scene lays the card
and takes the photo under other lights; this module paints the scene).

``render_card_photo`` paints a full photo (trainer.synth.render_full_photo) with a card
beside the lesion: the scene under the reference light, D65, whose lesion grades are
the grades asked for. ``write_card_scenes`` writes N of them for ``python -m device
bench-colour --scenes DIR``: ``DIR/scenes.json`` (each scene's file, lesion box, card
kind and corners, grades) beside the PNGs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from device.colour.card import CardKind
from device.colour.scene import capture, place_card, random_light
from device.core.imageio import encode_png
from device.core.vocab import MODEL_SIGNS, Region, Sign
from trainer.synth import plan_dataset, render_full_photo

SCENES_NAME = "scenes.json"


@dataclass(frozen=True)
class CardPhoto:
    """A scene under D65 with a card in it: the image (RGB uint8), the lesion box
    (x, y, w, h), the card's corners (TL, TR, BR, BL in pixels), its kind and the
    lesion's grades under the reference light."""

    image: np.ndarray
    box: tuple[int, int, int, int]
    corners: np.ndarray
    kind: CardKind
    grades: dict[Sign, int]


def render_card_photo(rng: np.random.Generator, grades: dict[Sign, int], *, tone: float,
                      region: Region, kind: CardKind, **card_options) -> CardPhoto:
    """A full photo under D65 with ``kind`` of card beside the lesion (see place_card)."""
    image, box = render_full_photo(rng, grades, tone=tone, region=region)
    image, corners = place_card(rng, image, kind, box, **card_options)
    return CardPhoto(image, box, corners, kind, dict(grades))


def write_card_scenes(out: Path, n: int, seed: int = 0, lights: int = 0) -> Path:
    """Render ``n`` full photos with a card (the two kinds in turn) under D65 into ``out``,
    and each also under ``lights`` random lights (device.colour.scene.random_light), each
    recorded beside its file."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    kinds = (CardKind.CHART, CardKind.PRINTED)
    for spec in plan_dataset(n, seed):
        rng = np.random.default_rng([seed, spec.index, 24])
        photo = render_card_photo(rng, spec.grades, tone=spec.tone, region=spec.region,
                                  kind=kinds[spec.index % 2])
        name = f"scene_{spec.index:05d}.png"
        (out / name).write_bytes(encode_png(photo.image))
        taken = []
        for j in range(lights):
            light = random_light(rng)
            shot = f"scene_{spec.index:05d}_light{j}.png"
            (out / shot).write_bytes(encode_png(capture(rng, photo.image, light)))
            taken.append({"path": shot, "light": light.to_dict()})
        rows.append({"path": name, "box": list(photo.box), "card": photo.kind.value,
                     "corners": np.round(photo.corners, 1).tolist(),
                     "grades": {s.value: int(photo.grades[s]) for s in MODEL_SIGNS},
                     "light": "D65", "under_lights": taken})
    path = out / SCENES_NAME
    path.write_text(json.dumps({"generator": "atopiscan synthetic lesions with a colour card "
                                "(not clinical data)", "seed": seed, "scenes": rows}, indent=1))
    return path
