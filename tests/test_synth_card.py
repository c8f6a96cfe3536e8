"""The generator's photos with a colour card: recorded corners, grades and lights, and the
device finds the card where the record says."""

from __future__ import annotations

import json

import numpy as np

from device.colour.detect import find_card
from device.core.imageio import read_image
from trainer.synth_card import SCENES_NAME, write_card_scenes


def test_scenes_record_the_card_the_grades_and_the_lights(tmp_path):
    write_card_scenes(tmp_path, 2, seed=3, lights=1)
    index = json.loads((tmp_path / SCENES_NAME).read_text())
    assert [row["card"] for row in index["scenes"]] == ["chart", "printed"]
    for row in index["scenes"]:
        assert set(row["grades"]) == {"erythema", "excoriation", "lichenification"}
        light = row["under_lights"][0]["light"]
        assert 2700 <= light["kelvin"] <= 6500 and -1 <= light["ev"] <= 1
        assert np.allclose(np.sum(light["crosstalk"], axis=1), 1.0, atol=1e-3)
        for path in (row["path"], row["under_lights"][0]["path"]):
            found = find_card(read_image(tmp_path / path, what="scene"))
            assert found is not None and found.kind.value == row["card"]
            assert np.abs(found.corners - np.array(row["corners"])).max() < 5.0
