"""Several data roots read as one data set: duplicates skipped by content hash, a
patient kept on one side of the split across roots, each root's share reported."""

from __future__ import annotations

from collections import defaultdict

import cv2
import numpy as np
import pytest

from device.core.vocab import Sign
from trainer.__main__ import main as trainer_main
from trainer.data import DataError
from trainer.roots import load_roots, root_shares
from trainer.split import apply_split, load_split, make_split, save_split

HEADER = "path,patient_id,region,erythema,excoriation,lichenification\n"


def image(path, seed):
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.random.default_rng(seed).integers(0, 256, (24, 24, 3), dtype=np.uint8)
    cv2.imwrite(str(path), rgb)
    return path


def manifest_root(root, rows):
    """rows: (name, patient, grades "e,x,l", image seed)"""
    lines = []
    for name, patient, grades, seed in rows:
        image(root / "crops" / name, seed)
        lines.append(f"crops/{name},{patient},trunk,{grades}\n")
    (root / "manifest.csv").write_text(HEADER + "".join(lines))
    return root


@pytest.fixture
def two_roots(tmp_path):
    rng = np.random.default_rng(0)
    device_rows = [(f"d{i}.png", f"P{i % 6}", f"{rng.integers(4)},{rng.integers(4)},",
                    100 + i) for i in range(24)]
    studio_rows = [(f"s{i}.png", f"P{i % 9}", f"{rng.integers(4)},,{rng.integers(4)}",
                    200 + i) for i in range(27)]
    studio_rows.append(("copy.png", "P3", "2,,1", 100))  # the same pixels as d0.png
    studio_rows.append(("copy2.png", "P0", "1,3,", 101))  # d1.png again, same signs
    return manifest_root(tmp_path / "device", device_rows), manifest_root(
        tmp_path / "studio", studio_rows)


def test_duplicates_are_skipped_by_content(two_roots):
    report = load_roots(list(two_roots))
    names = {s.path.name: s for s in report.samples}
    assert "copy2.png" not in names  # adds no sign the first copy lacks: skipped
    assert set(names["copy.png"].grades) == {Sign.LICHENIFICATION}  # only its new sign
    assert any("duplicate" in reason and p.name == "copy2.png" for p, reason in report.skipped)
    assert len(report.samples) == 24 + 28
    shares = root_shares(report)
    assert [s.images for s in shares] == [24, 28] and shares[0].patients == 6
    assert shares[0].share == pytest.approx(24 / 52)


def test_a_patient_stays_on_one_side_across_roots(two_roots, tmp_path):
    report = load_roots(list(two_roots))
    for seed in range(5):
        split = make_split(report.samples, None, seed=seed, root=report.key_root)
        train, val = apply_split(report, split)
        side = defaultdict(set)
        for name, part in (("train", train), ("val", val)):
            for s in part:
                side[s.patient_id].add(name)
        assert all(len(v) == 1 for v in side.values()), side
        assert train and val
        roots_in_val = {s.path.parent.parent.name for s in val}
        assert split.data_roots and all(k.startswith("@") for k in split.train)
    path = save_split(split, tmp_path / "split.json")
    again = apply_split(load_roots(list(two_roots)), load_split(path))
    assert [s.path for s in again[1]] == [s.path for s in val] and roots_in_val


def test_one_root_reads_as_before_and_bad_roots_are_refused(two_roots):
    one = load_roots([two_roots[0]])
    assert one.roots == () and one.key_root == one.root and len(one.samples) == 24
    with pytest.raises(DataError, match="given twice"):
        load_roots([two_roots[0], two_roots[0]])


def test_data_summary_shows_each_roots_share(two_roots, capsys):
    assert trainer_main(["data-summary", str(two_roots[0]), str(two_roots[1])]) == 0
    out = capsys.readouterr().out
    assert "share of each data root:" in out
    assert f"{two_roots[0]}: 24 images (46.2 %), 6 patients" in out
    assert "52 images loaded from 2 data roots" in out


def test_a_device_export_and_a_studio_export_read_together(tmp_path):
    """The two exports of the data loop as one data set: the studio's P1 and the
    device's P1 are one patient, on one side of the split."""
    import datetime as dt

    from label_support import make_project, two_rater_rows, write_label_csv

    from device.core.vocab import MODEL_SIGNS, Region
    from device.export.dataset import export_dataset
    from device.export.rows import ExportFilter
    from device.store import Store
    from trainer.label.annotations import all_photos
    from trainer.label.importers import read_csv_labels, write_labels

    project, db = make_project(tmp_path, n_patients=4, per_patient=2)
    rows = two_rater_rows([p.relpath for p in all_photos(db)])
    write_labels(db, read_csv_labels(db, write_label_csv(tmp_path / "l.csv", rows), None))
    assert trainer_main(["label", "export", str(project.root), "--out", str(tmp_path / "studio")]) == 0
    when = dt.datetime(2026, 6, 1, tzinfo=dt.timezone.utc)
    store = Store(tmp_path / "device", clock=lambda: when)
    rng = np.random.default_rng(5)
    for pid in ("P1", "P7"):
        store.create_patient(pid, 2000)
        visit = store.open_visit(pid)
        for _ in range(3):
            crop = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
            scan = store.save_region_scan(visit.id, Region.TRUNK, image=crop,
                                          grades=dict.fromkeys(MODEL_SIGNS, 1))
            store.confirm_review(scan.id, "ann", "staff")
    export_dataset(store, tmp_path / "dev", ExportFilter(), device_name="d", software_version="t",
                   exported_by="t", clock=lambda: when)
    report = load_roots([tmp_path / "dev", tmp_path / "studio"])
    assert report.layout == "manifest" and not report.skipped
    assert [s.images for s in root_shares(report)] == [6, 16]
    p1_roots = {s.path.is_relative_to(tmp_path / "dev") for s in report.samples if s.patient_id == "P1"}
    assert p1_roots == {True, False}  # P1 has images in both exports
    for seed in range(4):
        split = make_split(report.samples, None, seed=seed, root=report.key_root)
        train, val = apply_split(report, split)
        sides = {("train" if s in train else "val") for s in train + val if s.patient_id == "P1"}
        assert len(sides) == 1
