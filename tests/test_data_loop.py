"""The data loop on the workstation: a device export trains together with synthetic
data (tiny backbone, a few steps), and ``trainer evaluate RUNDIR --data EXPORT``
scores the run on the export's reviewed scans, leaving out what it trained on."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest
from trainer_fixtures import TINY_BACKBONE, TINY_SIZE

from device.core.imageio import read_image
from device.core.vocab import MODEL_SIGNS, Region
from device.export.dataset import export_dataset
from device.export.rows import ExportFilter
from device.store import Store

T0 = dt.datetime(2026, 4, 1, 9, 0, tzinfo=dt.timezone.utc)


@pytest.fixture(scope="module")
def device_export(tmp_path_factory):
    """48 generator lesions scanned on a 'device': the model grades are off by one on
    every third scan, staff override them to the true grade and confirm each scan."""
    from trainer.synth import generate_dataset

    tmp = tmp_path_factory.mktemp("loop")
    lesions = generate_dataset(tmp / "lesions", 48, seed=11, size=48, layout="manifest")
    rows = (lesions / "manifest.csv").read_text().splitlines()[1:]
    store = Store(tmp / "device", clock=lambda: T0)
    for p in range(8):
        store.create_patient(f"D{p}", 1980 + p)
    wrong = 0
    for i, line in enumerate(rows):
        path, _, _, *grades = line.split(",")[:6]
        truth = {s: int(g) for s, g in zip(MODEL_SIGNS, grades, strict=True)}
        model = {s: (g + 1) % 4 if i % 3 == 0 else g for s, g in truth.items()}
        wrong += i % 3 == 0
        visit = store.open_visit(f"D{i % 8}", T0.date())
        scan = store.save_region_scan(visit.id, Region.TRUNK, grades=model, pack_version="1.0",
                                      image=read_image(lesions / path))
        for sign, g in truth.items():
            if model[sign] != g:
                store.override_grade(scan.id, sign, g, "ann", "staff")
        store.confirm_review(scan.id, "ann", "staff")
    export_dataset(store, tmp / "export", ExportFilter(), device_name="dev", software_version="t",
                   exported_by="t", clock=lambda: T0)
    store.close()
    return tmp / "export", len(rows), wrong


@pytest.mark.slow
def test_export_and_synthetic_train_together_then_evaluate(device_export, synth_folders,
                                                           tiny_backbone, tmp_path, capsys):
    from trainer.__main__ import main
    from trainer.run import load_run

    export, n_export, wrong = device_export
    out = tmp_path / "run"
    assert main(["train", "--data", str(export), "--data", str(synth_folders), "--sign",
                 "erythema", "--backbone", TINY_BACKBONE, "--image-size", str(TINY_SIZE),
                 "--steps", "40", "--eval-every", "20", "--batch", "16", "--quiet",
                 "--out", str(out)]) == 0
    run = load_run(out)
    assert len(run.data_roots) == 2 and run.synthetic  # partly synthetic: its figures say so
    train, val = run.train_samples(), run.val_samples()
    from_export = [s for s in train + val if s.path.is_relative_to(export)]
    assert len(from_export) == n_export and len(train + val) == n_export + 400
    patients = {}
    for side, part in (("train", train), ("val", val)):
        for s in part:
            if s.patient_id:
                assert patients.setdefault(s.patient_id, side) == side
    capsys.readouterr()
    assert main(["evaluate", str(out), "--data", str(export)]) == 0
    printed = capsys.readouterr().out
    result = json.loads((out / "field-eval" / "export.json").read_text())
    trained_on = sum(1 for s in train if s.path.is_relative_to(export))
    assert result["left_out_trained_on"] == trained_on and result["n_export"] == n_export
    block = result["per_sign"]["erythema"]
    assert block["n"] == n_export - trained_on
    # the field pack erred on every third scan (i % 3 == 0): its accuracy on the kept ones
    kept_ids = {int(s.path.stem.split("-")[1]) for s in val if s.path.is_relative_to(export)}
    expect = np.mean([(i - 1) % 3 != 0 for i in kept_ids])  # scan ids start at 1
    assert block["field_pack"]["accuracy"] == pytest.approx(expect)
    assert "staff grades as truth" in printed and f"{trained_on} left out" in printed
    assert wrong == 16
