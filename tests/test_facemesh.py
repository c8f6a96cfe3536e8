"""Faces by landmarks: the detector's anchors and decoding, weighted NMS, and the two
MediaPipe models on a face photo that a package ships (matplotlib's sample portrait of
Grace Hopper, public domain): found upright, turned, and as a close-up of half a face."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from device.vision import facemesh
from device.vision.facemesh import (
    FaceLandmarker,
    FaceModelError,
    anchors,
    decode,
    weighted_nms,
)
from device.vision.faces import Faces, find_faces


@pytest.fixture(scope="module")
def portrait() -> np.ndarray:
    matplotlib = pytest.importorskip("matplotlib")
    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)  # 512 x 600


@pytest.fixture(scope="module")
def marker() -> FaceLandmarker:
    return FaceLandmarker()


def test_anchors_cover_both_grids_at_cell_centres():
    a = anchors()
    assert a.shape == (896, 2)
    assert np.allclose(a[0], a[1]) and np.allclose(a[0], [0.5 / 16, 0.5 / 16])  # 2 per cell
    assert np.allclose(a[512], [0.5 / 8, 0.5 / 8]) and np.allclose(a[512:518], a[512])  # 6 per cell
    assert np.allclose(a[-1], [7.5 / 8, 7.5 / 8])


def test_decode_places_a_box_and_key_points_relative_to_its_anchor():
    raw = np.zeros((896, 16), np.float32)
    logits = np.full((896, 1), -10.0, np.float32)
    i = 600  # an 8 x 8 anchor
    raw[i, :4] = (6.4, -3.2, 32.0, 64.0)  # centre offset and size, input pixels
    raw[i, 4:6] = (12.8, 0.0)
    logits[i] = 3.0
    boxes, points, scores = decode(raw, logits)
    ax, ay = anchors()[i]
    cx, cy = ax + 0.05, ay - 0.025
    assert boxes.shape == (1, 4) and scores[0] == pytest.approx(1 / (1 + np.exp(-3.0)))
    assert boxes[0] == pytest.approx([cx - 0.125, cy - 0.25, cx + 0.125, cy + 0.25], abs=1e-6)
    assert points[0, 0] == pytest.approx([ax + 0.1, ay], abs=1e-6)


def test_weighted_nms_blends_one_face_and_keeps_another():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], np.float32)
    points = np.zeros((3, 6, 2), np.float32)
    points[1] += 3.0
    scores = np.array([0.9, 0.3, 0.8], np.float32)
    out = weighted_nms(boxes, points, scores)
    assert len(out) == 2
    (b0, p0, s0), (b1, _, s1) = out
    assert s0 == pytest.approx(0.9) and s1 == pytest.approx(0.8)
    assert b0[0] == pytest.approx(0.25) and p0[0, 0] == pytest.approx(0.75)  # 0.9:0.3 blend
    assert np.allclose(b1, boxes[2])


def test_the_face_and_its_parts_are_found(portrait, marker):
    faces = marker.find(portrait)
    assert len(faces) == 1
    x, y, w, h = faces[0].box
    assert 150 < x < 200 and 110 < y < 160 and 150 < w < 230 and 170 < h < 240
    parts = faces[0].part_boxes()
    centre = {k: (b[0] + b[2] / 2, b[1] + b[3] / 2) for k, b in parts.items()}
    # The person's right eye is on the photo's left; eyes above the nose above the lips.
    assert centre["right_eye"][0] < centre["nose"][0] < centre["left_eye"][0]
    assert max(centre["right_eye"][1], centre["left_eye"][1]) < centre["nose"][1] < centre["lips"][1]
    for box in parts.values():
        assert x - 5 <= box[0] and box[0] + box[2] <= x + w + 5


def test_a_turned_face_is_found_and_its_points_follow(portrait, marker):
    turn = cv2.getRotationMatrix2D((256, 300), 25, 1.0)
    turned = cv2.warpAffine(portrait, turn, (512, 600))
    upright, = marker.find(portrait)
    found, = marker.find(turned)
    expected = upright.points @ turn[:, :2].T + turn[:, 2]
    assert np.median(np.linalg.norm(found.points - expected, axis=1)) < 6  # pixels


def test_a_close_up_of_half_a_face_needs_the_padded_look(portrait, marker):
    close = np.ascontiguousarray(portrait[200:330, 170:300])
    assert marker.find(close, paddings=(1.0,)) == []
    assert len(marker.find(close)) == 1


def test_no_face_in_noise_or_a_flat_colour(marker):
    noise = np.random.default_rng(0).integers(0, 256, (480, 640, 3), np.uint8)
    assert marker.find(noise) == []
    assert marker.find(np.full((300, 300, 3), (200, 150, 130), np.uint8)) == []


def test_find_faces_gives_zones_from_the_mesh(portrait):
    faces = find_faces(portrait, cats=False)
    assert len(faces.faces) == 1 and len(faces.eyes) == 2 and len(faces.parts) == 2
    # the mesh's eyes and parts, then the hair above the face: no proportional guesses
    zones = faces.zones()
    assert zones[:4] == faces.eyes + faces.parts and len(zones) == 5
    (fx, fy, fw, fh), (hx, hy, hw, hh) = faces.faces[0], zones[4]
    assert hy < fy < hy + hh < fy + fh // 4 and hx < fx and hx + hw > fx + fw
    assert all(hy + hh < ey + eh // 2 for _, ey, _, eh in faces.eyes)  # it ends above the eyes
    big = find_faces(cv2.resize(portrait, (1024, 1200)), cats=False)
    assert big.faces[0][0] == pytest.approx(2 * faces.faces[0][0], abs=8)


def test_a_face_given_without_a_mesh_falls_back_to_proportions():
    zones = Faces(faces=[(0, 0, 100, 100)]).zones()
    assert len(zones) == 3 and zones[0][1] < zones[1][1]
    assert zones[2] == (-10, -50, 120, 66)  # the hair above it


def test_a_damaged_or_missing_model_is_refused_with_what_to_do(tmp_path):
    for name in facemesh.MODELS:
        shutil.copy(facemesh.MODEL_DIR / name, tmp_path / name)
    data = bytearray((tmp_path / facemesh.MESH).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / facemesh.MESH).write_bytes(bytes(data))
    with pytest.raises(FaceModelError, match="damaged.*reinstall"):
        FaceLandmarker(tmp_path)
    (tmp_path / facemesh.DETECTOR).unlink()
    with pytest.raises(FaceModelError, match="missing"):
        FaceLandmarker(tmp_path)
