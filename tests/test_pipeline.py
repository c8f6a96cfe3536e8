"""Scan pipeline, model set and service on a real tiny pack, with fake cameras."""

from __future__ import annotations

import json
import shutil
import threading
from concurrent.futures import Future

import numpy as np
import pytest
from device_pack import PACK_VERSION, tiny_pack_dir, tiny_packs_dir

import device.core.imageio as imageio
from device.cameras import SyntheticCamera
from device.config import CropMode, DeviceConfig, GradingConfig
from device.core.vocab import MODEL_SIGNS, Grade
from device.grading.models import ModelSet, ModelSetError
from device.scan.pipeline import STAGES, ScanError, Scanner, check_image, review_reasons
from device.scan.service import Service
from device.vision.facework import FaceWorker
from device.vision.quality import QualityIssue


@pytest.fixture(scope="module")
def models():
    return ModelSet.from_pack_dir(tiny_pack_dir(), threads=1)


@pytest.fixture()
def config(tmp_path):
    return DeviceConfig.model_validate({"version": 1, "packs": {"dir": str(tiny_packs_dir())},
                                        "camera": {"width": 320, "height": 240}})


def test_model_set_reads_the_pack(models):
    assert models.pack_version == PACK_VERSION
    assert models.signs == MODEL_SIGNS
    for sm in models:
        assert sm.card.sign is sm.sign and sm.model.input_size == (32, 32)
    assert models.warm_up() > 0


def test_scan_grades_every_sign_and_is_json_safe(config, models):
    cam = SyntheticCamera(320, 240, seed=1)
    result = Scanner(config, cam, models).scan()
    assert result.quality.ok and result.graded
    assert set(result.signs) == set(MODEL_SIGNS)
    for s in result.signs.values():
        assert isinstance(s.grade, Grade) and len(s.probs) == 4
        assert sum(s.probs) == pytest.approx(1, abs=0.02)
    assert set(result.timings_ms) == set(STAGES)
    assert result.timings_ms["total"] >= result.timings_ms["invoke"] > 0
    assert result.crop_image.shape == (120, 120, 3)  # guide: half the shorter side
    data = json.loads(json.dumps(result.to_dict()))
    assert data["pack_version"] == PACK_VERSION and data["crop"]["mode"] == "guide"
    assert set(data["grades"]) == {s.value for s in MODEL_SIGNS}
    assert data["review"] == any(g["review"] for g in data["grades"].values())


def test_scan_modes_box_and_auto(config, models):
    cam = SyntheticCamera(320, 240, seed=2)
    frame = cam.read()
    scanner = Scanner(config, None, models)
    boxed = scanner.scan(frame, box=(10, 20, 64, 48))
    assert boxed.crop.box == (10, 20, 64, 48) and boxed.crop_image.shape == (48, 64, 3)
    auto = scanner.scan(frame, mode=CropMode.AUTO)
    assert auto.crop.requested is CropMode.AUTO
    with pytest.raises(ScanError, match="no area"):
        scanner.scan(frame, box=(0, 0, 0, 5))


def test_failed_quality_grades_nothing(config, models):
    dark = np.full((240, 320, 3), 8, np.uint8)
    result = Scanner(config, None, models).scan(dark)
    assert not result.quality.ok and not result.graded and result.crop is None
    assert QualityIssue.TOO_DARK in result.quality.issues
    d = result.to_dict()
    assert d["ok"] is False and d["grades"] == {} and d["quality"]["reasons"]


def test_no_pack_is_a_clear_error(config):
    with pytest.raises(ScanError, match="python -m device flash"):
        Scanner(config, SyntheticCamera(320, 240), None).scan()


@pytest.mark.parametrize("probs,reasons", [
    ([0.9, 0.05, 0.03, 0.02], []),
    ([0.6, 0.35, 0.05, 0.0], []),                        # neighbours only: fine
    ([0.45, 0.45, 0.1, 0.0], ["unsure"]),
    ([0.56, 0.04, 0.0, 0.40], ["split"]),                # backs "none" and "severe"
    ([0.3, 0.2, 0.2, 0.3], ["unsure", "split"]),
])
def test_review_rule(probs, reasons):
    got = review_reasons(np.array(probs), GradingConfig(review_min_top_prob=0.55,
                                                        review_max_far_mass=0.2))
    assert [r.split(":")[0] for r in got] == reasons


def test_odd_images_are_refused_clearly(monkeypatch):
    with pytest.raises(ScanError, match="greyscale"):
        check_image(np.zeros((50, 50), np.uint8))
    with pytest.raises(ScanError, match="greyscale"):
        check_image(np.zeros((50, 50, 1), np.uint8))
    with pytest.raises(ScanError, match="uint16|8-bit"):
        check_image(np.zeros((50, 50, 3), np.uint16))
    with pytest.raises(ScanError, match="only 1x1 pixels"):
        check_image(np.zeros((1, 1, 3), np.uint8))
    assert check_image(np.zeros((20, 20, 4), np.uint8)).shape == (20, 20, 3)
    monkeypatch.setattr(imageio, "MAX_PIXELS", 10_000)
    with pytest.raises(ScanError, match="largest accepted"):
        check_image(np.zeros((200, 100, 3), np.uint8))


def test_damaged_pack_is_refused(tmp_path):
    pack = tmp_path / "pack"
    shutil.copytree(tiny_pack_dir().resolve(), pack)
    with open(pack / "models" / "excoriation.tflite", "ab") as fh:
        fh.write(b"tampered")
    with pytest.raises(ModelSetError, match="sha256 differs"):
        ModelSet.from_pack_dir(pack)
    with pytest.raises(ModelSetError, match="no pack manifest"):
        ModelSet.from_pack_dir(tmp_path)


def test_service_loads_the_current_pack_and_survives_without_one(tmp_path, config):
    service = Service.from_config(config, camera=SyntheticCamera(320, 240, seed=3))
    assert service.pack_version == PACK_VERSION and service.model_error is None
    assert service.scanner.scan().graded
    assert service.reload_models() == PACK_VERSION
    service.close()

    empty = config.model_copy(deep=True)
    empty.packs.dir = tmp_path / "packs"
    bare = Service.from_config(empty, camera=SyntheticCamera(320, 240))
    assert bare.models is None and "no model pack is installed" in bare.model_error
    with pytest.raises(ModelSetError):
        bare.reload_models()
    bare.camera.open()
    assert bare.camera_status()["state"] == "ok"


class _SlowFaces(FaceWorker):
    """Faces that arrive late: the scan makes the crop's ground while it waits."""

    def start(self, tiny, full_height):
        self.gate = threading.Event()
        job = super().start(tiny, full_height)
        outer: Future = Future()

        def late():
            self.gate.wait(5)
            outer.set_result(job.result())
        threading.Thread(target=late, daemon=True).start()
        return outer


class _EarlyFaces(FaceWorker):
    """Faces found before the scan asks for them."""

    def start(self, tiny, full_height):
        job = super().start(tiny, full_height)
        job.result(timeout=60)
        return job


def test_a_scan_is_the_same_whether_its_faces_come_early_or_late(config, models, monkeypatch):
    from device.vision import crop

    grounds = []
    real_ground = crop.crop_ground

    def counted(views, avoid=None):
        grounds.append(views)
        slow.gate.set()  # the faces arrive once the ground is made
        return real_ground(views, avoid)

    monkeypatch.setattr("device.scan.pipeline.crop_ground", counted)
    config.crop.mode = CropMode.AUTO
    frames = [SyntheticCamera(640, 480, seed=s).read() for s in (2, 3)]
    slow = _SlowFaces()
    late = [Scanner(config, None, models, faces=slow).scan(f) for f in frames]
    assert len(grounds) == 2  # the ground was made before the faces came, both times
    early = [Scanner(config, None, models, faces=_EarlyFaces()).scan(f) for f in frames]
    assert len(grounds) == 4  # made ahead however early the faces come
    for a, b in zip(late, early, strict=True):
        da, db = a.to_dict(), b.to_dict()
        for d in (da, db):
            d.pop("timings_ms"), d.pop("created")
            for g in d["grades"].values():
                g.pop("invoke_ms")
        assert da == db and a.crop is not None and a.crop.requested is CropMode.AUTO
