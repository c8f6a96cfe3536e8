"""Readers for both layouts and their error reports (trainer/data.py)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from device.core.vocab import Region, Sign
from trainer.data import DataError, check_image, load_dataset, samples_for_sign

HEADER = "path,patient_id,region,erythema,excoriation,lichenification"


def _jpg(path: Path, value: int = 128) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.full((16, 16, 3), value, np.uint8)
    image[4:8, 4:8] = 255 - value
    assert cv2.imwrite(str(path), image)
    return path


def _folders(root: Path, per_grade: int = 2) -> Path:
    for sign in ("erythema", "excoriation", "lichenification"):
        for grade in range(4):
            for i in range(per_grade):
                _jpg(root / sign / str(grade) / f"img{i}.jpg", 40 * grade + i)
    return root


def test_folders_layout_loads_every_sign_and_grade(tmp_path):
    report = load_dataset(_folders(tmp_path))
    assert report.layout == "folders" and report.skipped == []
    assert len(report.samples) == 3 * 4 * 2
    ery = samples_for_sign(report.samples, Sign.ERYTHEMA)
    assert sorted(s.grades[Sign.ERYTHEMA] for s in ery) == [0, 0, 1, 1, 2, 2, 3, 3]
    assert all(s.path.is_absolute() and s.patient_id is None for s in report.samples)


def test_grade_folders_may_use_names(tmp_path):
    _jpg(tmp_path / "erythema" / "severe" / "a.jpg")
    _jpg(tmp_path / "erythema" / "Mild" / "b.png")
    report = load_dataset(tmp_path)
    grades = {s.path.name: s.grades[Sign.ERYTHEMA] for s in report.samples}
    assert grades == {"a.jpg": 3, "b.png": 1}


def test_bad_pieces_are_reported_by_path_and_the_rest_load(tmp_path):
    _folders(tmp_path, per_grade=1)
    bad_grade = tmp_path / "erythema" / "very_bad"
    _jpg(bad_grade / "x.jpg")
    good = _jpg(tmp_path / "excoriation" / "2" / "ok.jpg")
    truncated = tmp_path / "excoriation" / "2" / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    text = tmp_path / "excoriation" / "1" / "notes.jpg"
    text.write_text("this is not an image\n")
    readme = tmp_path / "excoriation" / "1" / "README.txt"
    readme.write_text("hello")
    report = load_dataset(tmp_path)
    skipped = {p: r for p, r in report.skipped}
    assert "unknown grade folder" in skipped[bad_grade]
    assert "corrupt JPEG" in skipped[truncated]
    assert "not a JPEG or PNG" in skipped[text]
    assert "not an image file" in skipped[readme]
    assert len(report.samples) == 12 + 1
    summary = report.summary()
    for path in (bad_grade, truncated, text, readme):
        assert str(path) in summary
    assert "4 skipped" in summary


def test_missing_sign_folder_is_reported(tmp_path):
    _jpg(tmp_path / "erythema" / "0" / "a.jpg")
    report = load_dataset(tmp_path)
    missing = {p for p, r in report.skipped if "missing folder" in r}
    assert missing == {tmp_path / "excoriation", tmp_path / "lichenification"}


def test_unusable_data_sets_raise_data_error(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(tmp_path / "nowhere")
    with pytest.raises(DataError, match="neither manifest.csv nor any sign folder"):
        load_dataset(tmp_path)
    (tmp_path / "erythema" / "0").mkdir(parents=True)
    with pytest.raises(DataError, match="no usable images"):
        load_dataset(tmp_path)


def test_check_images_false_skips_decoding(tmp_path):
    (tmp_path / "erythema" / "1").mkdir(parents=True)
    (tmp_path / "erythema" / "1" / "fake.jpg").write_text("nope")
    assert len(load_dataset(tmp_path, check_images=False).samples) == 1
    assert check_image(tmp_path / "erythema" / "1" / "fake.jpg") is not None


def _manifest(root: Path, lines: list[str], header: str = HEADER) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "manifest.csv").write_text("\n".join([header, *lines]) + "\n")
    return root


def test_manifest_layout_reads_grades_patients_regions_and_boxes(tmp_path):
    _jpg(tmp_path / "img" / "a.jpg")
    _jpg(tmp_path / "img" / "b.jpg")
    header = HEADER + ",box_x,box_y,box_w,box_h"
    _manifest(tmp_path, ["img/a.jpg,p1,trunk,2,,mild,1,2,10,12",
                         "img/b.jpg,,Upper-Limbs,0,3,0,,,,"], header)
    report = load_dataset(tmp_path)
    assert report.layout == "manifest" and report.skipped == []
    a, b = report.samples
    assert a.grades == {Sign.ERYTHEMA: 2, Sign.LICHENIFICATION: 1}
    assert (a.patient_id, a.region, a.box) == ("p1", Region.TRUNK, (1, 2, 10, 12))
    assert (b.patient_id, b.region, b.box) == (None, Region.UPPER_LIMBS, None)
    assert a.path == tmp_path.resolve() / "img" / "a.jpg"
    assert samples_for_sign(report.samples, Sign.EXCORIATION) == [b]


def test_manifest_bad_header_is_a_data_error(tmp_path):
    _manifest(tmp_path, ["a.jpg,p1,trunk,1,1,1"], "path,patient,region,erythema,excoriation,lich")
    with pytest.raises(DataError, match="lacks column.*patient_id.*lichenification"):
        load_dataset(tmp_path)


def test_manifest_bad_rows_are_skipped_with_line_numbers(tmp_path):
    _jpg(tmp_path / "good.jpg")
    _jpg(tmp_path / "other.jpg")
    _manifest(tmp_path, [
        "good.jpg,p1,trunk,1,2,3",
        "other.jpg,p1,trunk,5,2,3",      # line 3: bad grade
        "other.jpg,p1,elbow,1,2,3",      # line 4: bad region
        "other.jpg,p1,trunk,1,2",        # line 5: short row
        "missing.jpg,p2,trunk,1,1,1",    # line 6: no such image
        "other.jpg,p2,,,,",              # line 7: nothing graded
    ])
    report = load_dataset(tmp_path)
    assert [s.path.name for s in report.samples] == ["good.jpg"]
    reasons = [r for _, r in report.skipped]
    assert "line 3: column erythema: unknown grade '5'" in reasons[0]
    assert "line 4: column region" in reasons[1]
    assert "line 5: 5 fields" in reasons[2]
    assert "line 6" in reasons[3] and "does not exist" in reasons[3]
    assert report.skipped[3][0] == tmp_path.resolve() / "missing.jpg"
    assert "line 7: no sign graded" in reasons[4]
