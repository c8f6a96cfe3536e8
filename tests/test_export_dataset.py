"""The device's data export: scans saved and reviewed through the API become manifest
rows with the staff's final grades; the export is deterministic, atomic, refuses a
non-empty folder and says when nothing is reviewed; the download refuses staff."""

from __future__ import annotations

import csv
import datetime as dt
import errno
import io
import json
import tarfile

import cv2
import numpy as np
import pytest
from web_support import logged_in, make_app

from device.__main__ import main as device_main
from device.export import dataset as ex
from device.export.rows import ExportFilter, age_band
from device.store.audit import AuditAction, AuditLog
from device.vision.faces import Faces, blur_faces
from device.web.users import Role

WHEN = dt.datetime(2026, 5, 4, 12, 0, tzinfo=dt.timezone.utc)
#: (region, review values or None for "not reviewed")
PLAN = [
    ("trunk", {"erythema": "3"}),                              # override erythema 2 -> 3
    ("upper_limbs", {"erythema": "2", "excoriation": "0"}),    # confirmed as the model graded
    ("lower_limbs", {"lichenification": "2.5"}),               # a half point: no class
    ("head_neck", None),                                       # saved, never reviewed
]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Four scans saved through the API, three reviewed (with overrides) by staff."""
    tmp = tmp_path_factory.mktemp("export")
    app = make_app(tmp)
    client, token = logged_in(app, Role.STAFF)
    hdr = {"X-CSRFToken": token}
    assert client.post("/api/patients", json={"patient_id": "PX-7", "birth_year": 1990},
                       headers=hdr).status_code == 201
    ids = []
    for region, review in PLAN:
        resp = client.post("/api/scan", data={"patient_id": "PX-7", "region": region}, headers=hdr)
        assert resp.status_code == 201, resp.get_json()
        scan_id = resp.get_json()["scan"]["id"]
        ids.append(scan_id)
        if review is not None:
            resp = client.post(f"/api/scans/{scan_id}/review", json=review, headers=hdr)
            assert resp.status_code == 200, resp.get_json()
    return app, ids


def export(app, out, **kw):
    flt = ExportFilter(**kw)
    return ex.export_dataset(app.config["TEST_STORE"], out, flt, device_name="test-device",
                             software_version="9.9", exported_by="tester", clock=lambda: WHEN)


def rows(out):
    with open(out / "manifest.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_manifest_rows_equal_the_saved_scans(saved, tmp_path):
    app, ids = saved
    store = app.config["TEST_STORE"]
    result = export(app, tmp_path / "out")
    got = rows(tmp_path / "out")
    assert [int(r["scan_id"]) for r in got] == ids[:3]  # the unreviewed one is left out
    year = dt.date.today().year
    for r, scan_id in zip(got, ids[:3], strict=True):
        scan = store.get_scan(scan_id)
        assert r["patient_id"] == "PX-7" and r["region"] == scan.region.value
        assert r["age_band"] == age_band(year - 1990) and "birth_year" not in r
        for sign, final in scan.final_grades.items():
            assert r[f"{sign.value}_final"] == f"{final:g}"
            assert r[f"{sign.value}_model"] == str(scan.model_grades[sign])
            assert r[sign.value] == ("" if final % 1 else str(int(final)))
        crop = (tmp_path / "out" / r["path"]).read_bytes()
        assert crop == store.image_file(scan).read_bytes()  # the graded crop, byte for byte
        x, y, w, h = scan.crop_box
        assert cv2.imdecode(np.frombuffer(crop, np.uint8), cv2.IMREAD_COLOR).shape == (h, w, 3)
        assert r["crop_box"] == f"{x} {y} {w} {h}" and r["crop_mode"] == scan.crop_mode
        assert float(r["quality_sharpness"]) == pytest.approx(scan.quality["sharpness"])
    # the fake models grade erythema 2, excoriation 0 (top of 0.4), lichenification 1
    assert [got[0][k] for k in ("erythema", "erythema_overridden", "erythema_override_role")] == [
        "3", "1", "staff"]
    assert got[1]["erythema_overridden"] == "0" and got[1]["excoriation_overridden"] == "0"
    assert (got[2]["lichenification"], got[2]["lichenification_final"]) == ("", "2.5")
    assert all(r["reviewed"] == "1" and r["reviewed_role"] == "staff" for r in got)
    prov = json.loads((tmp_path / "out" / "provenance.json").read_text())
    assert prov["counts"]["scans"] == 3 and prov["counts"]["overridden"]["erythema"] == 1
    assert prov["counts"]["half_point_grades_left_blank"]["lichenification"] == 1
    assert prov["packs"] == [{"version": "2025.1.0", "scans": 3}]
    assert prov["exported_at"] == "2026-05-04T12:00:00+00:00" and result.rows == 3


def test_the_trainer_reads_the_export(saved, tmp_path):
    from trainer.data import load_dataset

    export(saved[0], tmp_path / "out")
    report = load_dataset(tmp_path / "out")
    assert len(report.samples) == 3 and not report.skipped
    assert {s.patient_id for s in report.samples} == {"PX-7"}


def test_second_export_is_byte_identical(saved, tmp_path):
    app, _ = saved
    export(app, tmp_path / "a", include_unreviewed=True)
    export(app, tmp_path / "b", include_unreviewed=True)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*"))
    assert len(rows(tmp_path / "a")) == 4
    assert files == sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*"))
    for rel in files:
        if (tmp_path / "a" / rel).is_file():
            assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel


def test_non_empty_folder_is_refused_unless_forced(saved, tmp_path):
    app, _ = saved
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ex.OutputNotEmptyError, match="--force"):
        export(app, out)
    assert (out / "keep.txt").read_text() == "mine"
    ex.export_dataset(app.config["TEST_STORE"], out, ExportFilter(), device_name="d",
                      software_version="1", exported_by="t", force=True)
    assert not (out / "keep.txt").exists() and len(rows(out)) == 3


def test_full_disk_mid_export_leaves_nothing_half_written(saved, tmp_path, monkeypatch):
    app, _ = saved
    calls = []

    def failing_write(path, data):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        path.write_bytes(data)

    monkeypatch.setattr(ex, "_write", failing_write)
    with pytest.raises(OSError):
        export(app, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []  # no export, no temporary folder


def test_full_frames_have_faces_blurred_outside_the_crop(saved, tmp_path, monkeypatch):
    import device.vision.faces

    app, ids = saved
    store = app.config["TEST_STORE"]
    scan = store.get_scan(ids[0])
    x, y, w, h = scan.crop_box
    face = (max(0, x - 40), max(0, y - 40), w + 80, h + 80)  # a "face" around the crop
    monkeypatch.setattr(device.vision.faces, "find_faces", lambda rgb, **kw: Faces([face]))
    result = export(app, tmp_path / "out", full_frames=True)
    got = rows(tmp_path / "out")
    frame = cv2.imread(str(tmp_path / "out" / got[0]["frame_path"])).astype(int)
    stored = cv2.imread(str(store.data_dir / scan.frame_path)).astype(int)
    assert frame.shape == stored.shape == (360, 480, 3)
    inside = (slice(y + 4, y + h - 4), slice(x + 4, x + w - 4))  # JPEG blocks at the edges
    assert np.abs(frame[inside] - stored[inside]).mean() < 3  # the crop: as graded
    ring = (slice(face[1], y), slice(face[0], face[0] + face[2]))
    assert np.abs(frame[ring] - stored[ring]).mean() > 3 * np.abs(
        frame[inside] - stored[inside]).mean()  # around it: blurred
    assert result.faces_blurred == 3 and result.provenance["counts"]["faces_blurred"] == 3


def test_blur_faces_keeps_the_crop_exact():
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (200, 300, 3), dtype=np.uint8)
    keep = (100, 60, 50, 50)
    out = blur_faces(image, keep, faces=Faces([(80, 40, 120, 120)]))
    assert np.array_equal(out[60:110, 100:150], image[60:110, 100:150])
    face_not_crop = (slice(40, 60), slice(80, 200))
    assert np.abs(out[face_not_crop].astype(int) - image[face_not_crop]).mean() > 30
    assert np.array_equal(out[:, 250:], image[:, 250:])  # outside the face: untouched


def test_nothing_reviewed_is_said_by_the_cli(tmp_path, capsys):
    app = make_app(tmp_path)
    client, token = logged_in(app, Role.STAFF)
    hdr = {"X-CSRFToken": token}
    client.post("/api/patients", json={"patient_id": "P1"}, headers=hdr)
    assert client.post("/api/scan", data={"patient_id": "P1", "region": "trunk"},
                       headers=hdr).status_code == 201
    data_dir = app.config["TEST_STORE"].data_dir
    code = device_main(["export-dataset", "--data-dir", str(data_dir), "--out",
                        str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "no reviewed scans" in err and "--include-unreviewed" in err
    assert not (tmp_path / "out").exists()
    assert device_main(["export-dataset", "--data-dir", str(data_dir), "--out",
                        str(tmp_path / "out"), "--include-unreviewed"]) == 0
    assert len(rows(tmp_path / "out")) == 1
    assert AuditLog(data_dir).entries(AuditAction.DATA_EXPORT)[-1].details["scans"] == 1
    assert device_main(["export-dataset", "--data-dir", str(data_dir), "--out",
                        str(tmp_path / "x"), "--since", "2026-13-01"]) == 2


def test_download_refuses_staff_and_is_audited(saved):
    app, _ = saved
    staff, _ = logged_in(app, Role.STAFF)
    assert staff.get("/export/dataset.tar.gz").status_code == 403
    assert staff.get("/api/export/dataset.tar.gz").status_code == 403
    tech, _ = logged_in(app, Role.TECHNICIAN)
    resp = tech.get("/api/export/dataset.tar.gz?include_unreviewed=1")
    assert resp.status_code == 200 and resp.mimetype == "application/gzip"
    with tarfile.open(fileobj=io.BytesIO(resp.data), mode="r:gz") as tar:
        names = tar.getnames()
        manifest = next(n for n in names if n.endswith("/manifest.csv"))
        assert len(list(csv.DictReader(io.TextIOWrapper(tar.extractfile(manifest))))) == 4
    entry = AuditLog(app.config["TEST_STORE"].data_dir).entries(AuditAction.DATA_EXPORT)[-1]
    assert (entry.user, entry.role, entry.details["scans"]) == ("technician", "technician", 4)
    assert tech.get("/api/export/dataset.tar.gz?since=soon").status_code == 400
    assert tech.get("/api/export/dataset.tar.gz?since=2999-01-01").status_code == 404
    work = app.config["TEST_STORE"].data_dir / ".exports"
    assert [p.name for p in work.iterdir()] == [".inflight"]  # the ledger, empty: nothing left
    assert not list((work / ".inflight").iterdir())


def test_an_abstained_scan_graded_by_staff_is_exported(tmp_path):
    """The models abstained (no model grades); staff graded it: training data the pack
    lacked most, exported with the staff's grades and the abstention."""
    from device.core.vocab import Region, Sign
    from device.store import Store
    from device.store.schema import Capture

    store = Store(tmp_path / "data", clock=lambda: WHEN)
    store.create_patient("A1", None)
    visit = store.open_visit("A1")
    crop = np.random.default_rng(1).integers(0, 256, (30, 30, 3), dtype=np.uint8)
    scan = store.save_region_scan(visit.id, Region.TRUNK, image=crop, pack_version="2.0",
                                  capture=Capture(abstained=True, abstention_score=3.25))
    store.override_grade(scan.id, Sign.ERYTHEMA, 2, "ann", "staff")
    store.confirm_review(scan.id, "ann", "staff")
    ex.export_dataset(store, tmp_path / "out", ExportFilter(), device_name="d",
                      software_version="t", exported_by="t", clock=lambda: WHEN)
    (row,) = rows(tmp_path / "out")
    assert (row["erythema"], row["erythema_model"], row["excoriation"]) == ("2", "", "")
    assert (row["abstained"], row["abstention_score"], row["age_band"]) == ("1", "3.25", "")
    assert row["erythema_overridden"] == "1" and row["erythema_override_role"] == "staff"
