"""The human ceiling: per-rater grades in manifests, simulated raters, the model measured
as one more rater (kappas equal scikit-learn's), verdicts, soft-label training, the card
and the dashboard. Raters here are simulated: never clinical agreement."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from device.core.ceiling import CeilingVerdict, LabelSource
from device.core.vocab import MODEL_SIGNS, Sign
from trainer.data import Sample

ERY = Sign.ERYTHEMA


def _samples(truth: np.ndarray, raters: np.ndarray, names: list[str]) -> list[Sample]:
    """Samples whose erythema grade is ``truth`` and whose raters gave ``raters`` (N x K,
    -1 where a rater did not grade)."""
    out = []
    for i, t in enumerate(truth):
        by = {n: int(g) for n, g in zip(names, raters[i], strict=True) if g >= 0}
        out.append(Sample(path=Path(f"/x/{i}.jpg"), grades={ERY: int(t)},
                          rater_grades={ERY: by} if by else {}))
    return out


def _simulated(n: int, k: int, seed: int = 0):
    from trainer.synth_raters import rater_profiles, simulate_grades

    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 4, n)
    grades = simulate_grades(truth[:, None], rater_profiles(k, seed), seed)[:, 0, :]
    return truth, grades, [p.name for p in rater_profiles(k, seed)]


def test_fast_kappa_equals_scikit_learn():
    from sklearn.metrics import cohen_kappa_score

    from trainer.ceiling import qwk

    rng = np.random.default_rng(1)
    for _ in range(50):
        a, b = rng.integers(0, 4, 40), rng.integers(0, 4, 40)
        b[:20] = a[:20]
        assert qwk(a, b) == pytest.approx(
            cohen_kappa_score(a, b, labels=[0, 1, 2, 3], weights="quadratic"), abs=1e-12)
    assert qwk(np.array([2, 2]), np.array([2, 2])) is None  # 0/0: undefined, as sklearn's nan


def test_resampled_kappas_equal_one_kappa_per_resample():
    from trainer.ceiling import qwk, qwk_resampled

    rng = np.random.default_rng(3)
    a, b = rng.integers(0, 4, 60), rng.integers(0, 4, 60)
    b[:30] = a[:30]
    a[::5], b[::7] = -1, -1  # lesions one of the two did not grade
    idx = rng.integers(0, 60, (200, 60))
    idx[0] = 0  # lesion 0 only: a did not grade it, no pairs
    idx[1] = 1  # lesion 1 only: one grade each, undefined (0/0)
    got = qwk_resampled(a, b, idx)
    for row, value in zip(idx, got, strict=True):
        both = (a[row] >= 0) & (b[row] >= 0)
        want = qwk(a[row][both], b[row][both])
        assert (np.isnan(value) if want is None else value == pytest.approx(want, abs=1e-12))
    assert np.isnan(got[0]) and np.isnan(got[1]) and np.isfinite(got[2:]).all()


@pytest.mark.parametrize("k", [2, 3])
def test_report_kappas_equal_scikit_learn_on_the_same_pairs(k):
    from sklearn.metrics import cohen_kappa_score

    from trainer.ceiling import sign_ceiling

    truth, grades, names = _simulated(120, k)
    pred = np.clip(truth + np.random.default_rng(5).choice([-1, 0, 0, 0, 1], truth.size), 0, 3)
    c = sign_ceiling(_samples(truth, grades, names), pred, ERY, n_boot=200, simulated=True)
    assert c.n_lesions == 120 and c.raters == names and c.simulated_raters
    assert len(c.rater_pairs) == k * (k - 1) // 2 and set(c.model_vs_rater) == set(names)
    sk = {}
    for i in range(k):
        for j in range(i + 1, k):
            key = f"{names[i]}|{names[j]}"
            sk[key] = cohen_kappa_score(grades[:, i], grades[:, j], weights="quadratic")
            assert c.rater_pairs[key].value == sk[key]
        mk = cohen_kappa_score(pred, grades[:, i], weights="quadratic")
        assert c.model_vs_rater[names[i]].value == mk
    assert c.rater_kappa.value == pytest.approx(np.mean(list(sk.values())))
    for e in (c.rater_kappa, c.model_kappa, c.rater_alpha):
        lo, hi = e.ci95
        assert lo is not None and lo <= e.value <= hi
    assert c.verdict in (CeilingVerdict.WITHIN, CeilingVerdict.BELOW)


def test_verdicts_within_and_below():
    from trainer.ceiling import sign_ceiling

    truth, grades, names = _simulated(200, 3, seed=2)
    samples = _samples(truth, grades, names)
    good = sign_ceiling(samples, truth, ERY, n_boot=300)  # the true grade: better than a rater
    assert good.verdict is CeilingVerdict.WITHIN and good.difference.value > 0
    guess = np.random.default_rng(0).integers(0, 4, truth.size)
    bad = sign_ceiling(samples, guess, ERY, n_boot=300)
    assert bad.verdict is CeilingVerdict.BELOW and bad.difference.ci95[1] < 0


def test_a_single_rater_set_has_not_enough_raters():
    from trainer.ceiling import sign_ceiling

    truth, grades, names = _simulated(60, 3)
    one = np.full_like(grades, -1)
    one[:, 0] = grades[:, 0]  # only the first rater graded
    c = sign_ceiling(_samples(truth, one, names), truth, ERY, n_boot=50)
    assert c.verdict is CeilingVerdict.NOT_ENOUGH_RATERS and c.n_lesions == 0
    assert c.rater_kappa is None and c.model_kappa is None
    # Two raters on a handful of lesions only: still no verdict.
    few = np.full_like(grades, -1)
    few[:, 0] = grades[:, 0]
    few[:5, 1] = grades[:5, 1]
    c = sign_ceiling(_samples(truth, few, names), truth, ERY, n_boot=50)
    assert c.n_lesions == 5 and c.verdict is CeilingVerdict.NOT_ENOUGH_RATERS


def test_an_old_manifest_without_rater_columns_still_reads(tmp_path):
    from trainer.ceiling import sign_ceiling
    from trainer.data import load_dataset

    (tmp_path / "a.jpg").write_bytes(_jpeg())
    (tmp_path / "manifest.csv").write_text(
        "path,patient_id,region,erythema,excoriation,lichenification\na.jpg,P1,trunk,2,,1\n")
    s = load_dataset(tmp_path).samples
    assert len(s) == 1 and s[0].grades == {ERY: 2, Sign.LICHENIFICATION: 1} and not s[0].rater_grades
    c = sign_ceiling(s, [2], ERY)
    assert c.verdict is CeilingVerdict.NOT_ENOUGH_RATERS and c.raters == []


def _jpeg() -> bytes:
    from device.core.imageio import encode_jpeg

    return encode_jpeg(np.full((16, 16, 3), 128, np.uint8), 90)


def test_rater_columns_are_checked_and_read(tmp_path):
    from trainer.data import load_dataset

    (tmp_path / "a.jpg").write_bytes(_jpeg())
    (tmp_path / "b.jpg").write_bytes(_jpeg())
    (tmp_path / "manifest.csv").write_text(
        "path,patient_id,region,erythema,excoriation,lichenification,raters,erythema_by_rater\n"
        "a.jpg,P1,,2,,,ann;bo,2;\n"
        "b.jpg,P1,,1,,,ann;bo,1;2;3\n")
    r = load_dataset(tmp_path)
    assert r.samples[0].rater_grades == {ERY: {"ann": 2}}  # bo left erythema ungraded
    assert len(r.skipped) == 1 and "3 grades for 2 raters" in r.skipped[0][1]


def test_synth_raters_write_the_studio_layout(tmp_path, capsys):
    from trainer.__main__ import main
    from trainer.data import load_dataset
    from trainer.label.consensus import median_grade

    out = tmp_path / "s"
    assert main(["synth", "--out", str(out), "--n", "24", "--size", "32", "--raters", "3",
                 "--workers", "0"]) == 0
    assert "simulated rater sim-rater-3" in capsys.readouterr().out
    samples = load_dataset(out, check_images=False).samples
    rows = {r["path"]: r for r in _csv(out / "manifest.csv")}
    info = json.loads((out / "synth.json").read_text())["raters"]
    assert info["simulated"] and info["k"] == 3 and len(info["profiles"]) == 3
    for s in samples:
        row = rows[str(s.path.relative_to(out))]
        for sign in MODEL_SIGNS:
            given = sorted(s.rater_grades[sign].values())
            assert len(given) == 3
            adjudicated = sign.value in row["adjudicated"].split(",")
            want = int(row[f"true_{sign.value}"]) if adjudicated else median_grade(given)
            assert s.grades[sign] == want
            assert adjudicated == (given[-1] - given[0] >= 2)
    assert main(["synth", "--out", str(tmp_path / "f"), "--n", "4", "--raters", "2",
                 "--layout", "folders"]) == 2


def _csv(path: Path) -> list[dict]:
    import csv

    return list(csv.DictReader(path.open()))


def test_the_studio_export_keeps_each_raters_grades(tmp_path):
    from label_support import make_project, two_rater_rows, write_label_csv

    from trainer.__main__ import main as trainer_main
    from trainer.data import load_dataset
    from trainer.label.annotations import all_photos
    from trainer.label.importers import read_csv_labels, write_labels

    project, db = make_project(tmp_path, n_patients=2, per_patient=2)
    rows = two_rater_rows([p.relpath for p in all_photos(db)])
    write_labels(db, read_csv_labels(db, write_label_csv(tmp_path / "l.csv", rows), None))
    assert trainer_main(["label", "export", str(project.root), "--out", str(tmp_path / "x")]) == 0
    samples = load_dataset(tmp_path / "x").samples
    assert len(samples) == 8
    given = sorted((r["rater"], r["erythema"], r["excoriation"]) for r in rows)
    got = sorted((rater, s.rater_grades[ERY][rater], s.rater_grades[Sign.EXCORIATION][rater])
                 for s in samples for rater in ("alice", "bob"))
    assert got == given


def test_soft_labels_are_the_raters_distribution():
    from trainer.input_pipeline import MISSING, rater_label_arrays, soft_label_arrays

    s = [Sample(path=Path("/a"), grades={ERY: 1, Sign.EXCORIATION: 0},
                rater_grades={ERY: {"a": 0, "b": 2, "c": 2}}),
         Sample(path=Path("/b"), grades={ERY: 2})]
    signs = [ERY, Sign.EXCORIATION, Sign.LICHENIFICATION]
    q = soft_label_arrays(s, signs)
    assert q.shape == (2, 3, 4)
    assert q[0, 0] == pytest.approx([1 / 3, 0, 2 / 3, 0])  # the raters' shares
    assert q[0, 1].tolist() == [1, 0, 0, 0] and q[1, 0].tolist() == [0, 0, 1, 0]  # consensus
    assert (q[:, 2] == 0).all()  # not graded: no target, weight 0
    assert soft_label_arrays(s, signs, raters=False)[0, 0].tolist() == [0, 1, 0, 0]
    arr = rater_label_arrays(s, signs)  # the temperature is fitted to every rater's grade
    assert arr[0, 0].tolist() == [0, 2, 2] and arr[1, 0].tolist() == [2, MISSING, MISSING]


def test_train_config_records_the_label_source():
    from trainer.train_config import IDENTITY_KEYS, TrainConfig, TrainError

    assert TrainConfig(data="d", out="o", labels="raters").labels is LabelSource.RATERS
    assert TrainConfig(data="d", out="o").labels is LabelSource.CONSENSUS
    assert "labels" in IDENTITY_KEYS
    with pytest.raises(TrainError, match="--labels"):
        TrainConfig(data="d", out="o", labels="majority")
    with pytest.raises(TrainError, match="--head softmax"):
        TrainConfig(data="d", out="o", labels="raters", head="ordinal")


@pytest.mark.slow
def test_train_on_raters_then_evaluate_and_card(tiny_backbone, tmp_path, capsys):
    from factories import tiny_tflite
    from trainer_fixtures import TINY_BACKBONE, TINY_SIZE

    from convert.cards import build_card
    from convert.cli.model import _human_ceiling
    from device.core.card import HeldOutMetrics, load_card, save_card
    from device.core.ceiling import SignCeiling
    from trainer.__main__ import main
    from trainer.run import load_run

    data = tmp_path / "d"
    assert main(["synth", "--out", str(data), "--n", "96", "--size", "32", "--raters", "3",
                 "--workers", "0"]) == 0
    out = tmp_path / "run"
    args = ["train", "--data", str(data), "--sign", "erythema", "--backbone", TINY_BACKBONE,
            "--image-size", str(TINY_SIZE), "--steps", "4", "--eval-every", "2", "--batch", "16",
            "--quiet", "--out", str(out)]
    assert main([*args, "--labels", "raters"]) == 0
    run = load_run(out)
    assert json.loads((out / "config.json").read_text())["labels"] == "raters"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["labels"] == "raters"
    ceiling = SignCeiling.model_validate(metrics["human_ceiling"]["erythema"])
    assert ceiling.n_lesions == metrics["n"] and len(ceiling.raters) == 3
    assert ceiling.simulated_raters and ceiling.verdict is not CeilingVerdict.NOT_ENOUGH_RATERS
    capsys.readouterr()
    assert main(["evaluate", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "human ceiling (model trained on raters labels" in printed
    assert "simulated raters" in printed
    # The card carries it, with the label source.
    tfl = tiny_tflite(tmp_path / "erythema.tflite")
    one = HeldOutMetrics(n=1, accuracy=1.0)
    card = build_card(sign=ERY, tflite_path=tfl, image_size=32, mode="int8", backbone="b",
                      head="softmax", training_data=run.data_summary(), gate=None,
                      metrics_keras=one, metrics_tflite=one,
                      latency={}, human_ceiling=_human_ceiling(run))
    save_card(card, tmp_path / "c.card.json")
    back = load_card(tmp_path / "c.card.json")
    assert back.human_ceiling == ceiling and back.training_data.labels is LabelSource.RATERS
    # Without per-rater columns, --labels raters says what to do.
    plain = tmp_path / "plain"
    assert main(["synth", "--out", str(plain), "--n", "16", "--size", "32", "--layout",
                 "manifest", "--workers", "0"]) == 0
    capsys.readouterr()
    assert main([*args[:2], str(plain), *args[3:-1], str(tmp_path / "r2"), "--labels", "raters"]) == 2
    assert "--labels consensus" in capsys.readouterr().err


def test_status_page_shows_the_human_ceiling(tmp_path):
    from web_support import fake_card, logged_in, make_app

    from device.core.ceiling import SignCeiling
    from device.grading.models import ModelSet, SignModel
    from device.web.users import Role
    from trainer.ceiling import sign_ceiling

    truth, grades, names = _simulated(80, 3)
    ceilings = {ERY: sign_ceiling(_samples(truth, grades, names), truth, ERY, n_boot=100,
                                  simulated=True),
                Sign.EXCORIATION: SignCeiling(n_lesions=0, verdict=CeilingVerdict.NOT_ENOUGH_RATERS)}
    from web_support import FakeModel

    models = ModelSet({s: SignModel(s, FakeModel(s), fake_card(s).model_copy(
        update={"human_ceiling": ceilings.get(s)}), Path(f"/nonexistent/{s.value}.tflite"))
        for s in MODEL_SIGNS}, pack_version="2025.1.0")
    app = make_app(tmp_path, models=models)
    client, _ = logged_in(app, Role.TECHNICIAN)
    page = client.get("/status").get_data(as_text=True)
    assert "Human ceiling: the model as one more rater" in page
    c = ceilings[ERY]
    assert f"{c.rater_kappa.value:.2f}" in page and f"{c.model_kappa.value:.2f}" in page
    assert "simulated raters on synthetic images: not clinical agreement" in page
    assert "Trained on consensus labels." in page
    assert "not enough raters" in page and "not measured" in page  # excoriation; lichenification
    api = client.get("/api/status").get_json()["pack"]["models"]
    assert api["erythema"]["human_ceiling"]["verdict"] == "within"
    assert api["lichenification"]["human_ceiling"] is None
