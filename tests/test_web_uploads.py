"""Bad uploads get a clear 4xx and change nothing, on the scan page and the API."""

from __future__ import annotations

import io
import struct
import zlib

import cv2
import numpy as np
import pytest
from web_support import logged_in, make_app

from device.web.uploads import UploadError, decode_image, image_size
from device.web.users import Role


def _jpeg(w=400, h=300) -> bytes:
    rng = np.random.default_rng(0)
    img = cv2.resize(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8), (w, h))
    return cv2.imencode(".jpg", img)[1].tobytes()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(side: int = 20000, height: int | None = None) -> bytes:
    """A well-formed PNG header claiming side x side RGB (1.2 GB decoded for 20000)."""
    ihdr = struct.pack(">IIBBBBB", side, height or side, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * (1 + 3 * side) * 4, 9)  # a few rows are enough to refuse
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def bomb_jpeg(side: int = 20000) -> bytes:
    """A real JPEG whose frame header is patched to claim side x side pixels."""
    data = bytearray(_jpeg(64, 48))
    i = data.index(b"\xff\xc0")
    data[i + 5:i + 9] = struct.pack(">HH", side, side)
    return bytes(data)


CASES = {
    "garbage": (np.random.default_rng(1).bytes(5000), 415, "not a JPEG or PNG"),
    "truncated_jpeg": (_jpeg()[:1500], 400, "truncated"),
    "zero_byte": (b"", 400, "empty"),
    "bomb_png": (bomb_png(), 413, "20000x20000"),
    "bomb_jpeg": (bomb_jpeg(), 413, "20000x20000"),
    "over_40_mp": (bomb_png(6400), 413, "6400x6400 pixels (41 MP)"),  # API.md: 40 MP
    "over_12000_a_side": (bomb_png(12001, 100), 413, "12,000 pixels a side"),
    "pdf": (b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n", 415, "not a JPEG or PNG"),
    "text": (b"patient,grade\nP1,3\n", 415, "not a JPEG or PNG"),
    "png_without_end": (cv2.imencode(".png", np.zeros((50, 50, 3), np.uint8))[1].tobytes()[:-12],
                        400, "truncated"),
}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    # One app for the module: every case must leave it unchanged anyway.
    app = make_app(tmp_path_factory.mktemp("uploads"))
    client, token = logged_in(app, Role.STAFF)
    client.post("/patients", data={"csrf_token": token, "patient_id": "P1", "birth_year": "1990"})
    store = app.config["TEST_STORE"]
    return app, client, token, store


def _nothing_changed(store):
    assert store.list_patients()[0].id == "P1" and len(store.list_patients()) == 1
    assert store.list_visits("P1") == [] or all(store.list_scans(v.id) == []
                                                for v in store.list_visits("P1"))
    images = store.data_dir / "images"
    assert not images.exists() or not any(p.is_file() for p in images.rglob("*"))


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_upload_on_scan_page(setup, name):
    app, client, token, store = setup
    data, status, message = CASES[name]
    resp = client.post("/scan/capture", content_type="multipart/form-data", data={
        "csrf_token": token, "patient": "P1", "region": "trunk",
        "image": (io.BytesIO(data), f"{name}.jpg")})
    assert resp.status_code == status, resp.get_data(as_text=True)[:500]
    assert message in resp.get_data(as_text=True)
    _nothing_changed(store)


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_upload_on_api(setup, name):
    app, client, token, store = setup
    data, status, message = CASES[name]
    resp = client.post("/api/scan", content_type="multipart/form-data",
                       headers={"X-CSRFToken": token},
                       data={"patient_id": "P1", "region": "trunk",
                             "image": (io.BytesIO(data), f"{name}.png")})
    assert resp.status_code == status
    assert message in resp.get_json()["error"]
    _nothing_changed(store)


def test_upload_over_max_upload_mb_is_413(setup):
    app, client, token, store = setup
    big = _jpeg() + b"\x00" * (6 * 1024 * 1024)  # max_upload_mb is 5 in the test config
    for url, extra in (("/scan/capture", {"csrf_token": token, "patient": "P1"}),
                       ("/api/scan", {"patient_id": "P1"})):
        resp = client.post(url, content_type="multipart/form-data", headers={"X-CSRFToken": token},
                           data={**extra, "region": "trunk", "image": (io.BytesIO(big), "big.jpg")})
        assert resp.status_code == 413
        assert "larger than 5 MB" in resp.get_data(as_text=True)
    _nothing_changed(store)


def test_good_upload_is_graded_and_saved(tmp_path):
    from web_support import write_frames

    app = make_app(tmp_path)
    client, token = logged_in(app, Role.STAFF)
    client.post("/patients", data={"csrf_token": token, "patient_id": "P1", "birth_year": "1990"})
    store = app.config["TEST_STORE"]
    path = write_frames(store.data_dir.parent / "extra", n=1, seed=7)[0]
    resp = client.post("/api/scan", content_type="multipart/form-data",
                       headers={"X-CSRFToken": token},
                       data={"patient_id": "P1", "region": "trunk",
                             "image": (io.BytesIO(path.read_bytes()), "ok.jpg")})
    assert resp.status_code == 201, resp.get_json()
    assert resp.get_json()["result"]["image_size"] == [360, 480]
    assert len(store.list_scans(resp.get_json()["scan"]["visit_id"])) == 1


def test_header_reader_does_not_decode():
    assert image_size(bomb_png(50000))[1:] == (50000, 50000)
    assert image_size(_jpeg(123, 45)) == ("jpeg", 123, 45)
    with pytest.raises(UploadError) as err:
        decode_image(bomb_png())
    assert err.value.status == 413
    rgb = decode_image(cv2.imencode(".png", np.full((5, 7, 3), (10, 20, 30), np.uint8))[1].tobytes())
    assert rgb.shape == (5, 7, 3) and tuple(rgb[0, 0]) == (30, 20, 10)  # BGR file -> RGB


def test_an_abstained_upload_is_saved_without_grades_and_the_page_says_why(tmp_path):
    from web_support import fake_models, write_frames

    from device.grading.abstain import FeatureStats

    models = fake_models()
    for sm in models:  # features far from the pack's statistics
        sm.model.features = np.full(5, 10.0, np.float32)
        sm.stats = FeatureStats(np.zeros((1, 5), np.float32), (0,), np.eye(5, dtype=np.float32), 3.0)
    app = make_app(tmp_path, models=models)
    client, token = logged_in(app, Role.STAFF)
    client.post("/patients", data={"csrf_token": token, "patient_id": "P1", "birth_year": "1990"})
    path = write_frames(app.config["TEST_STORE"].data_dir.parent / "extra", n=1, seed=7)[0]
    resp = client.post("/api/scan", content_type="multipart/form-data",
                       headers={"X-CSRFToken": token},
                       data={"patient_id": "P1", "region": "trunk",
                             "image": (io.BytesIO(path.read_bytes()), "odd.jpg")})
    assert resp.status_code == 201, resp.get_json()
    body = resp.get_json()
    assert body["result"]["abstained"] is True and body["result"]["grades"] == {}
    assert body["result"]["abstention_score"] == pytest.approx(np.sqrt(500) / 3, rel=1e-3)
    assert body["scan"]["abstained"] is True
    assert all(g is None for g in body["scan"]["model_grades"].values())
    page = client.get(f"/scan/result/{body['scan']['id']}").get_data(as_text=True)
    assert "The models do not recognise this image" in page
    assert "outside pack 2025.1.0&#39;s training data" in page or "outside pack 2025.1.0's" in page
