"""Abstention on the device: a pack whose models return pooled features and carry
statistics; the scan, its JSON, the pack checks, and evaluate-photos."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import tarfile

import cv2
import numpy as np
import pytest
from abstain_pack import PACK_VERSION, abstain_pack_dir, abstain_pack_file
from device_pack import tiny_pack_dir

from device.__main__ import main as device_main
from device.cameras.synthetic import render_skin_frame
from device.config import DeviceConfig
from device.grading.models import ModelSet
from device.packs.check import verify_pack
from device.scan.pipeline import Scanner

pytestmark = pytest.mark.slow  # builds a converted pack with TensorFlow once


@pytest.fixture(scope="module")
def models():
    return ModelSet.from_pack_dir(abstain_pack_dir(), threads=1)


@pytest.fixture()
def config():
    return DeviceConfig.model_validate({"version": 1, "camera": {"width": 320, "height": 240}})


def frame(seed: int) -> np.ndarray:
    return render_skin_frame(np.random.default_rng(seed), 320, 240)[0]


def test_the_pack_verifies_and_its_models_can_abstain(models):
    report = verify_pack(abstain_pack_file(), threads=1)
    assert report.ok, report.summary()
    assert models.can_abstain
    for sm in models:
        assert sm.model.has_features and sm.stats.dim == sm.model.feature_dim
        assert sm.card.abstention.heldout_accepted >= 0.99
        assert sm.stats.threshold == pytest.approx(sm.card.abstention.threshold)
        image = sm.card.abstention.image_space  # the second space travels in the same file
        assert image is not None and sm.stats.image is not None
        assert sm.stats.image.threshold == pytest.approx(image.threshold)
        assert sm.card.abstention.combined_heldout_accepted >= 0.99


def test_an_old_pack_without_statistics_still_grades_and_says_it_cannot_abstain(config):
    manifest = json.loads((tiny_pack_dir() / "manifest.json").read_text())
    assert all("stats" not in entry for entry in manifest["models"].values())  # old devices read it
    old = ModelSet.from_pack_dir(tiny_pack_dir(), threads=1)
    assert not old.can_abstain
    result = Scanner(config, None, old).scan(frame(1))
    data = result.to_dict()
    assert result.graded and data["abstained"] is False and data["abstention_score"] is None
    assert "cannot tell" in data["abstention"]["message"]


def test_familiar_skin_is_graded_and_a_far_image_makes_the_models_abstain(config, models):
    scanner = Scanner(config, None, models)
    graded = [scanner.scan(frame(100 + k)) for k in range(10)]
    assert sum(r.graded and not r.abstained for r in graded) >= 8  # 99 % held-out threshold
    for r in graded:
        assert r.abstention.checked and r.abstention.score is not None
    # Half skin-coloured, but a flat painted surface with broad green stripes: smooth
    # enough for the quality check, nothing like the crops the statistics saw.
    odd = np.full((240, 320, 3), (200, 150, 120), np.uint8)
    for x0 in range(0, 320, 80):
        odd[:, x0:x0 + 40] = (30, 200, 60)
    result = scanner.scan(odd)
    data = json.loads(json.dumps(result.to_dict()))
    assert result.quality.ok and result.abstained
    assert data["abstained"] is True and data["abstention_score"] > 1
    assert data["grades"] == {} and not result.graded
    assert f"outside pack {PACK_VERSION}'s training data" in data["abstention"]["message"]


def _set_thresholds(models, feature: float | None, image: float | None) -> None:
    """Feature and image-space thresholds (None: the card's own)."""
    for sm in models:
        info = sm.card.abstention
        sm.stats = sm.stats.with_threshold(info.threshold if feature is None else feature)
        sm.stats = sm.stats.with_image(sm.stats.image.with_threshold(
            info.image_space.threshold if image is None else image))


def test_thresholds_decide(config, models):
    image = frame(7)
    try:
        _set_thresholds(models, 1e-6, 1e9)
        result = Scanner(config, None, models).scan(image)
        assert result.abstained and result.signs == {} and result.abstention.score > 1
        _set_thresholds(models, 1e9, 1e9)
        result = Scanner(config, None, models).scan(image)
        assert not result.abstained and result.graded and result.abstention.score < 1
        # Features accept it, the image statistics do not: the models abstain.
        _set_thresholds(models, 1e9, 1e-6)
        result = Scanner(config, None, models).scan(image)
        assert result.abstained and result.signs == {}
        sign = result.to_dict()["abstention"]["signs"]["erythema"]
        assert sign["feature_score"] < 1 < sign["image_score"] and sign["abstained"] is True
    finally:
        _set_thresholds(models, None, None)


def _striped() -> np.ndarray:
    """Half skin-coloured, a flat painted surface with broad green stripes: the quality
    check passes it."""
    odd = np.full((240, 320, 3), (200, 150, 120), np.uint8)
    for x0 in range(0, 320, 80):
        odd[:, x0:x0 + 40] = (30, 200, 60)
    return odd


def test_the_scene_space_abstains_on_a_frame_unlike_the_training_photos(config, models):
    """With the crop's spaces told to accept anything, the whole frame's space alone makes
    the models abstain on a painted scene, and says why; without it the scene is graded."""
    from convert.spacefit import calibrate_threshold, fit_scene_stats
    from device.grading.abstain import AbstainSpace
    from device.grading.scenestats import describe_scene
    from device.vision.frameviews import FrameViews

    def scene_of(rgb):
        views = FrameViews.of(rgb)
        return describe_scene(views.tiny, views.skin, views.lab)

    scene, _ = fit_scene_stats(np.stack([scene_of(frame(300 + k)) for k in range(60)]))
    threshold, _ = calibrate_threshold(scene.distances(
        np.stack([scene_of(frame(400 + k)) for k in range(30)])), 0.97)
    saved = {sm.sign: sm.stats for sm in models}
    try:
        _set_thresholds(models, 1e9, 1e9)
        for sm in models:
            sm.stats = sm.stats.with_scene(scene.with_threshold(threshold))
        scanner = Scanner(config, None, models)
        result = scanner.scan(_striped())
        assert result.quality.ok and result.abstained and result.signs == {}
        assert result.abstention.space is AbstainSpace.SCENE and result.abstention.crop_space is None
        assert "not trained on photos like this" in result.to_dict()["abstention"]["message"]
        assert sum(scanner.scan(frame(500 + k)).graded for k in range(6)) >= 5
        for sm in models:
            sm.stats = sm.stats.with_scene(None)
        assert scanner.scan(_striped()).graded  # the same frame, no scene space: graded
    finally:
        for sm in models:
            sm.stats = saved[sm.sign]


def _rewrite(src, dst, flip):
    with tarfile.open(src) as tin, tarfile.open(dst, "w") as tout:
        for m in tin.getmembers():
            data = tin.extractfile(m).read()
            if m.name == flip:
                data = bytearray(data)
                data[len(data) // 2] ^= 0x01
                data = bytes(data)
            tout.addfile(m, io.BytesIO(data))
    return dst


def test_altered_statistics_are_refused(tmp_path):
    bad = _rewrite(abstain_pack_file(), tmp_path / "bad.atopack", "models/erythema.ood.npz")
    report = verify_pack(bad, threads=1)
    assert not report.ok
    assert any("models/erythema.ood.npz" in p and "sha256" in p for p in report.problems)


def test_evaluate_photos_prints_verdicts_totals_and_lesion_hits(tmp_path, capsys):
    photos = tmp_path / "photos" / "nested"
    photos.mkdir(parents=True)
    rows = []
    for k in range(4):
        image, (x, y, w, h) = render_skin_frame(np.random.default_rng(200 + k), 320, 240)
        path = photos / f"p{k}.png"
        cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        rows.append([f"nested/p{k}.png", digest, 320, 240, x, y, w, h, "drawn by the test"])
    blue = np.zeros((240, 320, 3), np.uint8)
    blue[:] = (30, 60, 200)
    cv2.imwrite(str(photos / "blue.png"), blue)
    (photos / "notes.txt").write_text("not a photo")
    boxes = tmp_path / "boxes.csv"
    with open(boxes, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["file", "sha256", "width", "height", "x", "y", "w", "h", "note"])
        writer.writerows(rows)
    cfg = tmp_path / "config.yaml"
    cfg.write_text("version: 1\ncrop:\n  mode: auto\n")
    sheet, out = tmp_path / "sheet.png", tmp_path / "out.json"
    rc = device_main(["evaluate-photos", str(tmp_path / "photos"), "--config", str(cfg),
                      "--pack", str(abstain_pack_dir()), "--boxes", str(boxes),
                      "--sheet", str(sheet), "--json", str(out)])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "nested/blue.png: refused" in text
    assert "5 photos:" in text and "1 refused by quality" in text
    assert "crop on a labelled lesion" in text
    data = json.loads(out.read_text())
    assert data["totals"]["photos"] == 5 and data["totals"]["crops_checked_against_boxes"] == 4
    assert data["totals"]["crops_on_lesion"] >= 3  # the auto crop finds synthetic lesions
    # Which space (or the quality check) kept each photo from being graded, in the totals
    # and per photo; the blue frame never reaches the models.
    assert "not graded by: the quality check" in text
    by = data["totals"]["not_graded_by"]
    assert set(by) == {"quality", "scene", "feature", "image", "both"} and by["quality"] >= 1
    photos = {p["file"]: p for p in data["photos"]}
    assert photos["nested/blue.png"]["refused_by"] == "quality"
    for p in data["photos"]:
        assert (p["refused_by"] is None) == (p["verdict"] == "graded")
    assert sum(by.values()) == 5 - data["totals"]["accepted"]
    assert cv2.imread(str(sheet)).shape[0] > 200


def test_evaluate_photos_bad_boxes_and_empty_folder_are_clear_errors(tmp_path, capsys):
    (tmp_path / "p.png").write_bytes(cv2.imencode(".png", np.full((64, 64, 3), 200, np.uint8))[1])
    boxes = tmp_path / "boxes.csv"
    boxes.write_text("file,x,y\np.png,1,2\n")
    rc = device_main(["evaluate-photos", str(tmp_path), "--pack", str(abstain_pack_dir()),
                      "--boxes", str(boxes)])
    assert rc == 2 and "missing column" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert device_main(["evaluate-photos", str(empty)]) == 2
    assert "no photos found" in capsys.readouterr().err


def test_the_models_page_line_names_both_spaces(models):
    from device.web.status import _abstention_line

    info = next(iter(models)).card.abstention
    line = _abstention_line(info)
    assert f"{info.image_space.threshold:.3g} on image statistics" in line
    assert f"together accepts {info.combined_heldout_accepted:.1%}" in line
    assert "image statistics" not in _abstention_line(info.model_copy(update={"image_space": None}))
