"""convert.devicecrops: training crops cut from full synthetic photos by the device's
own scan steps, so training sees what the device grades."""

from __future__ import annotations

import csv

import numpy as np

from convert.devicecrops import (
    CROP_COLUMNS,
    generate_device_crops,
    is_device_cut,
    load_scene_records,
)
from device.config import CropMode, DeviceConfig
from device.core.imageio import read_image
from device.grading.scenestats import describe_scene
from device.scan.pipeline import cut_lesion, look_at, model_input
from trainer.data import MANIFEST_NAME
from trainer.run import is_synthetic, load_image
from trainer.synth import full_photo_jpeg, plan_dataset


def test_each_crop_is_the_scans_own_cut_of_its_full_photo(tmp_path):
    config = DeviceConfig.model_validate({"version": 1, "crop": {"mode": "auto"}})
    out = tmp_path / "crops"
    summary = generate_device_crops(out, 3, seed=5, size=48, config=config, workers=1)
    assert summary.n == 3 and is_synthetic(out)
    # convert.abstention fits such a set's image space without the blur variants.
    assert is_device_cut(out) and not is_device_cut(tmp_path)
    with open(out / MANIFEST_NAME, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["path"] for r in rows] == [f"images/{s.name[:-4]}.png" for s in plan_dataset(3, 5)]
    assert set(CROP_COLUMNS) <= set(rows[0]) and "box_x" not in rows[0]
    scenes = load_scene_records(out)
    assert scenes is not None and load_scene_records(tmp_path) is None
    for i, (spec, row) in enumerate(zip(plan_dataset(3, 5), rows, strict=True)):
        # The same photo through the scan's steps gives the same pixels, losslessly.
        image = read_image(full_photo_jpeg(5, spec)[0])
        look = look_at(image, config)
        crop, patch = cut_lesion(image, look, config)
        # ... and the scene descriptor the scan makes of the same frame (the scene space).
        assert scenes.names[i] == row["path"].split("/")[-1] and scenes.patients[i] == spec.patient_id
        assert np.allclose(scenes.descriptors[i],
                           describe_scene(look.views.tiny, look.views.skin, look.views.lab))
        expected = model_input(patch, (48, 48))
        got = load_image(out / row["path"], 48)
        assert np.array_equal(got, expected)
        assert crop.box[:3] == (int(row["crop_x"]), int(row["crop_y"]), int(row["crop_side"]))
        assert row["crop_mode"] in {m.value for m in CropMode}
        assert [int(row[s]) for s in ("erythema", "excoriation", "lichenification")] == \
            [spec.grades[s] for s in spec.grades]
        assert 0.0 <= float(row["lesion_iou"]) <= 1.0
        assert row["quality_ok"] in ("0", "1") and float(row["sharpness"]) > 0


def test_full_photos_come_in_the_size_asked_for(tmp_path):
    import argparse

    import pytest

    from trainer.cli.synth import photo_size
    from trainer.synth import generate_dataset

    spec = plan_dataset(1, 3)[0]
    assert read_image(full_photo_jpeg(3, spec, (200, 150))[0]).shape == (150, 200, 3)
    out = generate_dataset(tmp_path / "p", 1, 3, layout="manifest", full_photo=True,
                           workers=1, photo_size=(200, 150))
    assert read_image(next((out / "images").iterdir())).shape == (150, 200, 3)
    assert photo_size("640x480") == (640, 480)
    with pytest.raises(argparse.ArgumentTypeError):
        photo_size("640 by 480")


def test_photos_whose_crop_fell_back_can_be_left_out(tmp_path):
    """A photo where nothing stands out (every grade 0 is the likeliest) falls back to the
    guide square; with drop_fallbacks its crop is not written and the count says so."""
    config = DeviceConfig.model_validate({"version": 1, "crop": {"mode": "guide"}})
    out = tmp_path / "crops"
    summary = generate_device_crops(out, 2, seed=5, size=48, config=config, workers=1,
                                    drop_fallbacks=True)
    # Guide mode never "falls back": everything is kept, cut as the guide square.
    assert summary.kept == 2 and summary.fallbacks == 0
    auto = DeviceConfig.model_validate({"version": 1, "crop": {"mode": "auto",
                                                                "auto_min_score": 1e9}})
    out2 = tmp_path / "crops2"
    summary = generate_device_crops(out2, 2, seed=5, size=48, config=auto, workers=1,
                                    drop_fallbacks=True)
    assert summary.fallbacks == 2 and summary.kept == 0
    assert not list((out2 / "images").iterdir())
    assert "0 crops kept" in summary.line()
    # A left-out photo's scene is still recorded: it is a photo of its patient all the same.
    scenes = load_scene_records(out2)
    assert len(scenes.names) == 2 and not scenes.kept.any()


def test_the_scene_space_is_fitted_on_the_runs_own_photos_split_by_patient(tmp_path):
    """convert.abstention.scene_data_for: the training patients' photos fit the scene space,
    the held-out patients' set its threshold, and each held-out crop finds its photo."""
    from types import SimpleNamespace

    from convert.abstention import scene_data_for

    config = DeviceConfig.model_validate({"version": 1, "crop": {"mode": "guide"}})
    out = tmp_path / "crops"
    generate_device_crops(out, 4, seed=5, size=48, config=config, workers=1)
    scenes = load_scene_records(out)
    samples = [SimpleNamespace(path=out / "images" / n, patient_id=p)
               for n, p in zip(scenes.names, scenes.patients, strict=True)]
    val_patient = samples[-1].patient_id
    val = [s for s in samples if s.patient_id == val_patient]
    train = [s for s in samples if s.patient_id != val_patient]
    run = SimpleNamespace(data_roots=[out], train_samples=lambda: train, val_samples=lambda: val)
    data = scene_data_for(run)
    assert len(data.fit) == len(train) and len(data.heldout) == len(val) == len(data.of_val_images)
    assert np.array_equal(data.of_val_images[-1], scenes.descriptors[-1])
    assert scene_data_for(SimpleNamespace(data_roots=[tmp_path])) is None  # nothing recorded
