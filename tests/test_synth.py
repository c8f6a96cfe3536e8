"""The synthetic lesion generator (trainer/synth.py, trainer/synth_render.py) and its CLIs."""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from pathlib import Path

import cv2
import numpy as np
import pytest

from device.core.vocab import MODEL_SIGNS, Region, Sign
from trainer.__main__ import main as trainer_main
from trainer.data import load_dataset, samples_for_sign
from trainer.split import apply_split, make_split
from trainer.synth import (
    FULL_PHOTO_SIZE,
    generate_dataset,
    make_contact_sheet,
    plan_dataset,
    render_full_photo,
    render_lesion,
)


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_identical_bytes_and_another_seed_does_not(tmp_path):
    a = generate_dataset(tmp_path / "a", 10, seed=7, size=64, layout="manifest", workers=1)
    b = generate_dataset(tmp_path / "b", 10, seed=7, size=64, layout="manifest", workers=1)
    c = generate_dataset(tmp_path / "c", 10, seed=8, size=64, layout="manifest", workers=1)
    fa, fb, fc = _files(a), _files(b), _files(c)
    assert len(fa) == 10 + 2  # images, manifest.csv, synth.json
    assert fa == fb
    assert fa["manifest.csv"] != fc["manifest.csv"]


def test_bytes_do_not_depend_on_the_worker_count(tmp_path):
    one = generate_dataset(tmp_path / "one", 32, seed=3, size=32, layout="folders", workers=1)
    two = generate_dataset(tmp_path / "two", 32, seed=3, size=32, layout="folders", workers=2)
    assert _files(one) == _files(two)


def test_plan_balances_grades_and_keeps_one_tone_per_patient():
    specs = plan_dataset(200, seed=1)
    for sign in MODEL_SIGNS:
        assert Counter(s.grades[sign] for s in specs) == {0: 50, 1: 50, 2: 50, 3: 50}
    tones = defaultdict(set)
    for s in specs:
        tones[s.patient_id].add(s.tone)
    assert all(len(t) == 1 for t in tones.values())
    assert 200 / 8 <= len(tones) <= 200 / 3 + 1
    assert {s.region for s in specs} == set(Region)
    # Signs are graded independently, not copies of each other.
    same = sum(s.grades[Sign.ERYTHEMA] == s.grades[Sign.EXCORIATION] for s in specs)
    assert same < 100


def test_folders_layout_round_trips_through_the_reader(tmp_path):
    out = generate_dataset(tmp_path / "f", 16, seed=2, size=64, layout="folders", workers=1)
    report = load_dataset(out)
    assert report.layout == "folders" and report.skipped == []
    plan = {s.name: s for s in plan_dataset(16, seed=2)}
    for sign in MODEL_SIGNS:
        samples = samples_for_sign(report.samples, sign)
        assert len(samples) == 16
        for sample in samples:
            assert sample.grades[sign] == plan[sample.path.name].grades[sign]
    # The same image bytes sit under each sign's folder.
    name = next(iter(plan))
    copies = {(out / s.value / str(plan[name].grades[s]) / name).read_bytes() for s in MODEL_SIGNS}
    assert len(copies) == 1


def test_manifest_layout_round_trips_with_patients_and_regions(tmp_path):
    out = generate_dataset(tmp_path / "m", 20, seed=4, size=64, layout="manifest", workers=1)
    report = load_dataset(out)
    assert report.layout == "manifest" and len(report.samples) == 20 and not report.skipped
    plan = {s.name: s for s in plan_dataset(20, seed=4)}
    for sample in report.samples:
        spec = plan[sample.path.name]
        assert sample.grades == spec.grades
        assert (sample.patient_id, sample.region) == (spec.patient_id, spec.region)
        assert sample.box is None
    image = cv2.imread(str(report.samples[0].path))
    assert image.shape == (64, 64, 3)
    train, val = apply_split(report, make_split(report.samples, None, root=out))
    assert not {s.patient_id for s in train} & {s.patient_id for s in val}


def _redness(img: np.ndarray) -> float:
    lab = cv2.cvtColor(img, cv2.COLOR_RGB2LAB).astype(np.float32)
    return float(lab[..., 1].mean())  # a*: green-red axis


def _line_energy(img: np.ndarray) -> float:
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return float(np.abs(grey - cv2.GaussianBlur(grey, (0, 0), 2.0)).mean())


def _mean_over_seeds(measure, sign: Sign, grade: int, tone: float, n: int = 10) -> float:
    values = []
    for seed in range(n):
        grades = {s: 0 for s in MODEL_SIGNS} | {sign: grade}
        values.append(measure(render_lesion(np.random.default_rng(seed), grades, tone=tone,
                                            size=96, hair=0.0)))
    return float(np.mean(values))


@pytest.mark.parametrize("tone", [0.1, 0.5, 0.9])
def test_redness_rises_with_erythema_grade_on_the_same_skin_tone(tone):
    means = [_mean_over_seeds(_redness, Sign.ERYTHEMA, g, tone) for g in range(4)]
    assert all(b > a for a, b in zip(means, means[1:], strict=False)), means


def test_erythema_is_subtler_on_dark_skin():
    def rise(tone):
        return (_mean_over_seeds(_redness, Sign.ERYTHEMA, 3, tone)
                - _mean_over_seeds(_redness, Sign.ERYTHEMA, 0, tone))
    assert 0 < rise(0.95) < rise(0.1)


@pytest.mark.parametrize("sign", [Sign.EXCORIATION, Sign.LICHENIFICATION])
def test_line_energy_rises_with_excoriation_and_lichenification(sign):
    means = [_mean_over_seeds(_line_energy, sign, g, 0.4) for g in range(4)]
    assert all(b > a for a, b in zip(means, means[1:], strict=False)), means


def test_erythema_does_not_drive_line_energy_much():
    # Guards against a sign leaking into another's cue: redness alone barely adds texture.
    flat = _mean_over_seeds(_line_energy, Sign.ERYTHEMA, 0, 0.4)
    red = _mean_over_seeds(_line_energy, Sign.ERYTHEMA, 3, 0.4)
    scratched = _mean_over_seeds(_line_energy, Sign.EXCORIATION, 3, 0.4)
    assert abs(red - flat) < 0.3 * (scratched - flat)


def test_same_draws_differ_only_where_the_grade_differs():
    low = render_lesion(np.random.default_rng(5), {Sign.EXCORIATION: 0.0}, tone=0.3, size=64)
    again = render_lesion(np.random.default_rng(5), {Sign.EXCORIATION: 0.0}, tone=0.3, size=64)
    high = render_lesion(np.random.default_rng(5), {Sign.EXCORIATION: 3.0}, tone=0.3, size=64)
    assert low.dtype == np.uint8 and low.shape == (64, 64, 3)
    assert np.array_equal(low, again)
    assert (np.abs(low.astype(int) - high).max(axis=2) > 40).mean() > 0.02


def test_full_photo_boxes_lie_inside_the_photo(tmp_path):
    for seed, region in enumerate(Region):
        img, (x, y, w, h) = render_full_photo(np.random.default_rng(seed), {Sign.ERYTHEMA: 3},
                                              tone=0.2, region=region, size=(320, 240))
        assert img.shape == (240, 320, 3)
        assert x >= 0 and y >= 0 and x + w <= 320 and y + h <= 240 and w > 40 and h > 40
        # The red lesion is inside the box: a* is higher there than in the rest of the photo.
        lab = cv2.cvtColor(img, cv2.COLOR_RGB2LAB)[..., 1].astype(float)
        inside = np.zeros(lab.shape, bool)
        inside[y:y + h, x:x + w] = True
        assert lab[inside].mean() > lab[~inside].mean() + 3


def test_full_photo_data_set_records_boxes(tmp_path):
    out = generate_dataset(tmp_path / "fp", 3, seed=1, layout="manifest", full_photo=True,
                           workers=1)
    rows = list(csv.DictReader((out / "manifest.csv").open()))
    report = load_dataset(out)
    for row, sample in zip(rows, report.samples, strict=True):
        x, y, w, h = sample.box
        assert (int(row["box_x"]), int(row["box_w"])) == (x, w)
        assert x + w <= FULL_PHOTO_SIZE[0] and y + h <= FULL_PHOTO_SIZE[1]
        assert cv2.imread(str(sample.path)).shape == (768, 1024, 3)


def test_contact_sheet_has_a_row_per_sign_and_grade(tmp_path):
    path = make_contact_sheet(tmp_path / "sheet.png", seed=0, size=32, tones=(0.0, 1.0))
    sheet = cv2.imread(str(path))
    assert sheet.shape[0] == 28 + 12 * (32 + 2) and sheet.shape[1] == 170 + 2 * (32 + 2)


def test_cli_synth_then_data_summary(tmp_path, capsys):
    out = tmp_path / "cli"
    assert trainer_main(["synth", "--out", str(out), "--n", "12", "--seed", "1", "--size", "48",
                         "--layout", "manifest", "--workers", "1"]) == 0
    assert "wrote 12 synthetic images" in capsys.readouterr().out
    # A non-empty folder is refused unless --force.
    assert trainer_main(["synth", "--out", str(out), "--n", "12", "--size", "48"]) == 2
    assert "not empty" in capsys.readouterr().err
    split = tmp_path / "split.json"
    assert trainer_main(["data-summary", str(out), "--split", str(split)]) == 0
    text = capsys.readouterr().out
    assert split.exists() and "erythema        all" in text and "12 images loaded" in text
    assert trainer_main(["data-summary", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert trainer_main(["synth", "--out", str(tmp_path / "x"), "--layout", "folders",
                         "--full-photo"]) == 2
