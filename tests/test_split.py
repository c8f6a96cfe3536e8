"""Grade-stratified, patient-grouped splits (trainer/split.py)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from device.core.vocab import MODEL_SIGNS, Sign
from trainer.data import DataError, LoadReport, Sample
from trainer.split import apply_split, load_split, make_split, save_split

ROOT = Path("/data/set")


def _patients(n_patients: int, seed: int = 0, max_images: int = 8) -> list[Sample]:
    """Synthetic patients with 1..max_images images each; grades skewed per patient."""
    rng = np.random.default_rng(seed)
    samples = []
    for p in range(n_patients):
        bias = rng.integers(0, 4)
        for i in range(int(rng.integers(1, max_images + 1))):
            grades = {s: int(np.clip(bias + rng.integers(-1, 2), 0, 3)) for s in MODEL_SIGNS}
            samples.append(Sample(ROOT / f"p{p:03d}_{i}.jpg", grades, patient_id=f"p{p:03d}"))
    return samples


def _proportions(samples, sign) -> np.ndarray:
    counts = Counter(s.grades[sign] for s in samples)
    return np.array([counts.get(g, 0) for g in range(4)]) / max(len(samples), 1)


@pytest.mark.parametrize("sign", [Sign.ERYTHEMA, Sign.LICHENIFICATION, None])
def test_patients_stay_on_one_side_and_grades_stay_within_2_points(sign):
    samples = _patients(250, seed=3)
    split = make_split(samples, sign, seed=0, root=ROOT)
    train, val = apply_split(samples, split)
    assert not {s.patient_id for s in train} & {s.patient_id for s in val}
    assert len(train) + len(val) == len(samples)
    assert abs(len(val) / len(samples) - 0.3) < 0.02
    for check in (sign,) if sign else MODEL_SIGNS:
        whole = _proportions(samples, check)
        for side in (train, val):
            assert np.abs(_proportions(side, check) - whole).max() <= 0.02, check


def test_without_patient_ids_each_grade_splits_70_30():
    samples = [Sample(ROOT / f"{g}_{i}.jpg", {Sign.EXCORIATION: g}) for g in range(4)
               for i in range(100)]
    split = make_split(samples, Sign.EXCORIATION, seed=5, root=ROOT)
    _, val = apply_split(samples, split)
    assert Counter(s.grades[Sign.EXCORIATION] for s in val) == {0: 30, 1: 30, 2: 30, 3: 30}


def test_only_samples_graded_for_the_sign_are_split():
    samples = [Sample(ROOT / f"e{i}.jpg", {Sign.ERYTHEMA: i % 4}) for i in range(20)]
    samples += [Sample(ROOT / f"x{i}.jpg", {Sign.EXCORIATION: i % 4}) for i in range(20)]
    split = make_split(samples, Sign.EXCORIATION, root=ROOT)
    assert all(p.startswith("x") for p in split.train + split.val)
    assert split.train == sorted(split.train)


def test_seed_decides_the_split():
    samples = _patients(60)
    a = make_split(samples, Sign.ERYTHEMA, seed=1, root=ROOT)
    b = make_split(samples, Sign.ERYTHEMA, seed=1, root=ROOT)
    c = make_split(samples, Sign.ERYTHEMA, seed=2, root=ROOT)
    assert a == b and a.sha256() == b.sha256()
    assert a.val != c.val


def test_save_load_round_trip_and_moved_data(tmp_path):
    samples = _patients(30)
    split = make_split(samples, Sign.ERYTHEMA, seed=4, root=ROOT)
    path = save_split(split, tmp_path / "s" / "split.json")
    loaded = load_split(path)
    assert loaded == split and loaded.sign is Sign.ERYTHEMA
    # The same data set under another root still matches through a LoadReport.
    moved = [Sample(tmp_path / s.path.name, s.grades, s.patient_id) for s in samples]
    train, val = apply_split(LoadReport(tmp_path, "manifest", moved), loaded)
    assert [s.path.name for s in train] == split.train


def test_apply_split_refuses_images_missing_from_the_data_set():
    samples = _patients(20)
    split = make_split(samples, None, root=ROOT)
    with pytest.raises(DataError, match="not in the data set"):
        apply_split(samples[1:], split)


def test_bad_split_files_raise_data_error(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        load_split(bad)
    bad.write_text('{"version": 1, "sign": "erythema"}')
    with pytest.raises(DataError, match="missing field"):
        load_split(bad)
    with pytest.raises(DataError, match="cannot read"):
        load_split(tmp_path / "none.json")
    with pytest.raises(ValueError, match="val_fraction"):
        make_split(_patients(5), None, val_fraction=1.0, root=ROOT)
