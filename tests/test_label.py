"""The labelling studio without a browser: init, import, agreement, consensus, export."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from label_support import (
    add_users,
    exif_rotated_jpeg,
    make_project,
    skin_photo,
    two_rater_rows,
    write_label_csv,
)

from device.core.vocab import Sign
from trainer.__main__ import main as trainer_main
from trainer.label.annotations import all_photos, get_answer, queue
from trainer.label.models import LabelError


def label(*args: str) -> int:
    return trainer_main(["label", *map(str, args)])


def test_init_reads_exif_skips_bad_and_duplicates_and_adds_only_new(tmp_path, capsys):
    photos = tmp_path / "photos"
    skin_photo(photos / "P1" / "head_neck" / "a.jpg", seed=1)
    skin_photo(photos / "P1" / "b.png", seed=2)
    (photos / "copy.jpg").write_bytes((photos / "P1" / "head_neck" / "a.jpg").read_bytes())
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    exif_rotated_jpeg(photos / "turned.jpg", width=200, height=100)
    assert label("init", tmp_path / "proj", "--photos", photos) == 0
    out = capsys.readouterr().out
    assert "added 3 photo(s)" in out and "broken.jpg" in out and "copy.jpg" in out
    from trainer.label.db import connect, open_project

    db = connect(open_project(tmp_path / "proj"))
    by_path = {p.relpath: p for p in all_photos(db)}
    assert set(by_path) == {"P1/head_neck/a.jpg", "P1/b.png", "turned.jpg"}
    assert (by_path["turned.jpg"].width, by_path["turned.jpg"].height) == (100, 200)
    assert by_path["P1/head_neck/a.jpg"].patient_id == "P1"
    assert by_path["P1/head_neck/a.jpg"].region.value == "head_neck"
    assert by_path["turned.jpg"].patient_id.startswith("photo-")
    skin_photo(photos / "P2" / "c.jpg", seed=3)
    assert label("init", tmp_path / "proj", "--photos", photos) == 0
    assert "added 1 photo(s)" in capsys.readouterr().out
    assert len(all_photos(db)) == 4


def test_init_patients_csv_and_bad_input(tmp_path, capsys):
    photos = tmp_path / "photos"
    skin_photo(photos / "x.jpg")
    assert label("init", tmp_path / "p", "--photos", tmp_path / "nowhere") == 2
    assert "does not exist" in capsys.readouterr().err
    bad = tmp_path / "patients.csv"
    bad.write_text("path,patient_id,region\nx.jpg,P9,elbow\n")
    assert label("init", tmp_path / "p", "--photos", photos, "--patients", bad) == 2
    assert "line 2" in capsys.readouterr().err and not (tmp_path / "p").exists()
    bad.write_text("path,patient_id,region\nx.jpg,P9,trunk\n")
    assert label("init", tmp_path / "p", "--photos", photos, "--patients", bad) == 0
    from trainer.label.db import connect, open_project

    (photo,) = all_photos(connect(open_project(tmp_path / "p")))
    assert (photo.patient_id, photo.region.value) == ("P9", "trunk")


def test_import_csv_all_or_nothing_with_named_rows(tmp_path, capsys):
    project, db = make_project(tmp_path)
    photos = [p.relpath for p in all_photos(db)]
    rows = two_rater_rows(photos)
    rows[3]["erythema"] = 5
    rows[7]["w"] = 500  # reaches outside the 160 px photo
    rows[9]["photo"] = "P0/missing.jpg"
    path = write_label_csv(tmp_path / "labels.csv", rows)
    assert label("import", project.root, "--csv", path) == 2
    err = capsys.readouterr().err
    assert "line 5" in err and "erythema" in err
    assert "line 9" in err and "outside" in err
    assert "line 11" in err and "missing.jpg" in err
    assert db.execute("SELECT COUNT(*) FROM boxes").fetchone()[0] == 0
    assert db.execute("SELECT COUNT(*) FROM users").fetchone()[0] == 0
    good = write_label_csv(tmp_path / "good.csv", two_rater_rows(photos))
    assert label("import", project.root, "--csv", good) == 0
    assert db.execute("SELECT COUNT(*) FROM boxes").fetchone()[0] == len(photos) * 4
    assert {r[0] for r in db.execute("SELECT name FROM users")} == {"alice", "bob"}


def test_box_only_import_by_sha256_and_box_list_export(tmp_path):
    from trainer.label.export import export_box_list
    from trainer.label.importers import read_csv_labels, write_labels

    project, db = make_project(tmp_path)
    p = all_photos(db)[0]
    src = tmp_path / "boxes.csv"
    src.write_text("file,sha256,width,height,x,y,w,h,note\n"
                   f"elsewhere/{p.relpath},{p.sha256},{p.width},{p.height},10,20,30,40,red\n")
    result = write_labels(db, read_csv_labels(db, src, "helper"))
    assert (result.boxes, result.ungraded) == (1, 1)
    (box,) = get_answer(db, p.id, "helper").boxes
    assert box.xywh == (10, 20, 30, 40) and box.grades[Sign.ERYTHEMA] is None
    out = tmp_path / "list.csv"
    export_box_list(db, out, relative_to=tmp_path)
    (row,) = list(csv.DictReader(out.open()))
    assert row["file"] == f"photos/{p.relpath}" and row["sha256"] == p.sha256
    assert [int(row[k]) for k in "xywh"] == [10, 20, 30, 40] and row["note"] == "red"
    wrong = tmp_path / "wrong.csv"
    wrong.write_text(f"file,sha256,width,height,x,y,w,h\nx,{p.sha256},999,{p.height},1,1,5,5\n")
    with pytest.raises(LabelError, match="width is 999"):
        read_csv_labels(db, wrong, "helper")


def test_agreement_matches_sklearn_and_krippendorff(tmp_path):
    import krippendorff
    from sklearn.metrics import cohen_kappa_score

    from trainer.label.agreement import compute_agreement
    from trainer.label.importers import read_csv_labels, write_labels

    project, db = make_project(tmp_path, n_patients=4, per_patient=3)
    rows = two_rater_rows([p.relpath for p in all_photos(db)], seed=7)
    write_labels(db, read_csv_labels(db, write_label_csv(tmp_path / "l.csv", rows), None))
    report = compute_agreement(db, n_boot=40, seed=1).to_json()
    for sign in ("erythema", "excoriation", "lichenification"):
        a = np.array([r[sign] for r in rows if r["rater"] == "alice"])
        b = np.array([r[sign] for r in rows if r["rater"] == "bob"])
        got = report[sign]
        lin = cohen_kappa_score(a, b, weights="linear", labels=[0, 1, 2, 3])
        quad = cohen_kappa_score(a, b, weights="quadratic", labels=[0, 1, 2, 3])
        assert got["linear_kappa"]["value"] == pytest.approx(lin)
        assert got["quadratic_kappa"]["value"] == pytest.approx(quad)
        assert got["exact_agreement"]["value"] == pytest.approx(np.mean(a == b))
        alpha = krippendorff.alpha(np.stack([a, b]).astype(float),
                                   level_of_measurement="ordinal", value_domain=[0, 1, 2, 3])
        assert got["krippendorff_alpha"]["value"] == pytest.approx(alpha)
        lo, hi = got["quadratic_kappa"]["ci95"]
        assert lo <= quad <= hi and lo < hi
        conf = np.array(got["confusion"]["alice|bob"])
        assert conf.sum() == len(a) and np.trace(conf) == np.sum(a == b)
        bias = got["bias"]["bob"]["value"] - got["bias"]["alice"]["value"]
        assert bias == pytest.approx(np.mean(b - a))
    assert report["boxes"]["iou"]["alice|bob"]["value"] == pytest.approx((57 * 57) / (2 * 3600 - 57 * 57))


def test_consensus_median_and_adjudication(tmp_path):
    from trainer.label.consensus import adjudicate, adjudication_queue, all_consensus
    from trainer.label.importers import read_csv_labels, write_labels

    project, db = make_project(tmp_path, n_patients=1, per_patient=1)
    (photo,) = all_photos(db)
    grades = {"r1": (1, 0, 2), "r2": (2, 3, 2), "r3": (2, 1, 2)}  # excoriation spans 0..3
    rows = [{"rater": r, "photo": photo.relpath, "x": 10 + i, "y": 10, "w": 50, "h": 50,
             "erythema": g[0], "excoriation": g[1], "lichenification": g[2]}
            for i, (r, g) in enumerate(grades.items())]
    rows.append({"rater": "r1", "photo": photo.relpath, "x": 100, "y": 60, "w": 40, "h": 40,
                 "erythema": 1, "excoriation": 1, "lichenification": 1})  # r1 alone
    write_labels(db, read_csv_labels(db, write_label_csv(tmp_path / "l.csv", rows), None))
    first, lone = all_consensus(db)
    assert first.n_raters == 3 and lone.n_raters == 1
    assert first.grades[Sign.ERYTHEMA] == 2 and first.grades[Sign.LICHENIFICATION] == 2
    assert first.disputed == (Sign.EXCORIATION,) and first.grades[Sign.EXCORIATION] is None
    assert first.box == (11, 10, 50, 50)
    (queued,) = adjudication_queue(db)
    with pytest.raises(LabelError, match="agree"):
        adjudicate(db, queued.lesion.anchor, "erythema", 3, "carol")
    adjudicate(db, queued.lesion.anchor, "excoriation", 3, "carol")
    assert adjudication_queue(db) == []
    assert all_consensus(db)[0].grades[Sign.EXCORIATION] == 3
    # r1 saves the photo again (new grades): the decision on the old ones no longer holds
    write_labels(db, read_csv_labels(db, write_label_csv(tmp_path / "r1.csv", rows[:1]), None))
    assert db.execute("SELECT COUNT(*) FROM adjudications").fetchone()[0] == 0
    assert [c.disputed for c in adjudication_queue(db)] == [(Sign.EXCORIATION,)]


def test_median_rounds_half_up():
    from trainer.label.consensus import median_grade

    assert [median_grade(g) for g in ([1, 2], [0, 1], [2, 3], [0, 3, 3], [1])] == [2, 1, 3, 3, 1]


def test_export_is_deterministic_and_the_trainer_reads_it(tmp_path, capsys):
    from trainer.data import load_dataset
    from trainer.label.importers import read_csv_labels, write_labels
    from trainer.split import make_split

    project, db = make_project(tmp_path, n_patients=4, per_patient=2)
    rows = two_rater_rows([p.relpath for p in all_photos(db)])
    write_labels(db, read_csv_labels(db, write_label_csv(tmp_path / "l.csv", rows), None))
    assert label("export", project.root, "--out", tmp_path / "a", "--context", "0.2") == 0
    assert label("export", project.root, "--out", tmp_path / "b", "--context", "0.2") == 0
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert len(files) == 17  # 16 crops + manifest
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    assert label("export", project.root, "--out", tmp_path / "a") == 2
    assert "not empty" in capsys.readouterr().err
    report = load_dataset(tmp_path / "a")
    assert len(report.samples) == 16 and not report.skipped
    assert {s.patient_id for s in report.samples} == {"P0", "P1", "P2", "P3"}
    import cv2

    for s in report.samples:
        h, w = cv2.imread(str(s.path)).shape[:2]
        assert h == w == 84  # 60 px box + 20 % of it on each side
    split = make_split(report.samples, None, seed=0, val_fraction=0.3, root=report.root)
    pid = {str(s.path.relative_to(report.root)): s.patient_id for s in report.samples}
    assert not {pid[k] for k in split.train} & {pid[k] for k in split.val}
    assert trainer_main(["data-summary", str(tmp_path / "a")]) == 0
    assert "16 images loaded" in capsys.readouterr().out


def test_square_crop_stays_inside_the_photo():
    from trainer.label.export import square_crop

    assert square_crop((0, 0, 20, 10), 0.0, 100, 80) == (0, 0, 20)
    assert square_crop((90, 70, 10, 10), 0.5, 100, 80) == (80, 60, 20)
    assert square_crop((10, 10, 90, 20), 0.0, 100, 50) == (30, 0, 50)  # centred, shrunk


def test_coco_round_trip(tmp_path):
    from trainer.label.export import export_coco
    from trainer.label.importers import read_coco_labels, read_csv_labels, write_labels

    project, db = make_project(tmp_path, n_patients=2, per_patient=1)
    rows = [r for r in two_rater_rows([p.relpath for p in all_photos(db)])
            if r["rater"] == "alice"]
    write_labels(db, read_csv_labels(db, write_label_csv(tmp_path / "l.csv", rows), None))
    coco = tmp_path / "c.json"
    assert export_coco(db, coco) == 4
    doc = json.loads(coco.read_text())
    assert doc["annotations"][0]["attributes"]["erythema"] in range(4)
    write_labels(db, read_coco_labels(db, coco, "dave"))
    for p in all_photos(db):
        a = [(b.xywh, b.grades) for b in get_answer(db, p.id, "alice").boxes]
        d = [(b.xywh, b.grades) for b in get_answer(db, p.id, "dave").boxes]
        assert a == d
    with pytest.raises(LabelError, match="--rater NAME"):
        read_coco_labels(db, coco, None)
    doc["annotations"][1]["attributes"]["lichenification"] = 7
    coco.write_text(json.dumps(doc))
    with pytest.raises(LabelError, match="annotation 1.*lichenification"):
        read_coco_labels(db, coco, "eve")


def test_queue_overlap_and_own_answers_only(tmp_path):
    from trainer.label.annotations import save_answer
    from trainer.label.models import AnnotationIn, BoxIn

    project, db = make_project(tmp_path, overlap=0.0, n_patients=2, per_patient=1)
    add_users(db)
    first, second = all_photos(db)
    assert queue(db, "alice") == [first.id, second.id]
    box = BoxIn(x=1, y=1, w=20, h=20, erythema=1, excoriation=0, lichenification=2)
    save_answer(db, first.id, "alice", AnnotationIn(boxes=[box]))
    assert queue(db, "bob") == [second.id]  # no overlap: one rater per photo
    assert get_answer(db, first.id, "bob").boxes == []
    with pytest.raises(ValueError, match="unusable"):
        AnnotationIn(boxes=[box], unusable="blurred")


def test_studio_imports_only_the_device_shared_contracts():
    import re

    from test_architecture import TRAINER_MAY_IMPORT

    import trainer.label

    allowed = TRAINER_MAY_IMPORT  # one allow-list for the whole trainer
    root = Path(trainer.label.__file__).parent
    used = set()
    for path in root.rglob("*.py"):
        used |= set(re.findall(r"^\s*(?:from|import) (device[\w.]*)", path.read_text(), re.M))
    assert used and used <= allowed, used - allowed


def test_committed_real_box_list_is_coordinates_only_and_inside_each_photo():
    data = Path(__file__).parent / "data"
    rows = list(csv.DictReader((data / "real_dev_eczema_boxes.csv").open()))
    assert list(rows[0]) == ["file", "sha256", "width", "height", "x", "y", "w", "h", "note"]
    assert len({r["file"] for r in rows}) >= 60
    for r in rows:
        x, y, w, h, width, height = (int(r[k]) for k in ("x", "y", "w", "h", "width", "height"))
        assert r["file"].startswith("eczema/") and len(r["sha256"]) == 64
        assert w > 0 and h > 0 and x >= 0 and y >= 0 and x + w <= width and y + h <= height, r
    assert not [p for p in data.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png")]


def test_changing_the_overlap_share_reassigns_every_photo(tmp_path, capsys):
    photos = tmp_path / "photos"
    for k in range(6):
        skin_photo(photos / f"p{k}.jpg", seed=k)
    assert label("init", tmp_path / "proj", "--photos", photos, "--overlap", "0") == 0
    assert "0 of them for several raters" in capsys.readouterr().out
    assert label("init", tmp_path / "proj", "--photos", photos, "--overlap", "1") == 0
    assert "6 of them for several raters" in capsys.readouterr().out
    assert label("agreement", tmp_path / "nowhere") == 2
    assert "not a labelling project" in capsys.readouterr().err
