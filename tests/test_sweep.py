"""The backbone sweep: pairs, shards, skipping finished pairs, the Table-3 report and
best.json (fake training for the logic; one real two-backbone sweep, slow)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from trainer_fixtures import TINY_BACKBONE, TINY_BACKBONE_WIDE, TINY_SIZE

from device.core.vocab import MODEL_SIGNS, Sign
from trainer.report import PAPER_TABLE3, paper_accuracy
from trainer.sweep import (
    SweepConfig,
    SweepError,
    all_pairs,
    parse_shard,
    resolve_signs,
    run_sweep,
    shard_pairs,
)
from trainer.train import TrainConfig

FAKE_ACC = {"resnet50_v1": 0.9, "vgg16": 0.6}
FAKE_QWK = {"resnet50_v1": 0.5, "vgg16": 0.8}


def fake_train(cfg: TrainConfig) -> dict:
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    m = {"sign": cfg.sign, "backbone": cfg.backbone, "image_size": cfg.image_size, "n": 100,
         "accuracy": FAKE_ACC[cfg.backbone], "accuracy_ci95": [0.5, 0.95], "qwk": FAKE_QWK[cfg.backbone],
         "macro_f1": 0.7, "mae": 0.3, "ece": 0.05, "params": 1_500_000, "train_seconds": 42.0,
         "synthetic": True, "steps_done": cfg.steps}
    (out / "metrics.json").write_text(json.dumps(m))
    fake_train.calls.append((cfg.sign, cfg.backbone))
    return m


def test_shards_cover_every_pair_once():
    pairs = all_pairs(list(MODEL_SIGNS), ["a", "b", "c", "d"])
    assert len(pairs) == 12
    shards = [shard_pairs(pairs, (i, 3)) for i in range(3)]
    assert sorted(p for s in shards for p in s) == sorted(pairs)
    assert parse_shard("1/3") == (1, 3) and parse_shard(None) == (0, 1)
    for bad in ("3/3", "x", "1/0", "-1/2"):
        with pytest.raises(SweepError, match="shard"):
            parse_shard(bad)
    assert resolve_signs("all") == list(MODEL_SIGNS)
    with pytest.raises(SweepError, match="papulation|unknown sign"):
        resolve_signs("erythema,papulation")


def test_paper_table_is_the_designs():
    assert len(PAPER_TABLE3) == 14
    assert paper_accuracy("resnet101_v1", Sign.ERYTHEMA) == 95.93
    assert paper_accuracy("vgg19", Sign.LICHENIFICATION) == 89.00
    assert paper_accuracy("mobilenet_v2", Sign.ERYTHEMA) is None


def test_sweep_reports_picks_best_and_skips_done_pairs(tmp_path):
    fake_train.calls = []
    base = TrainConfig(data=str(tmp_path), out="", image_size=224, steps=10)
    cfg = SweepConfig(data=str(tmp_path), out=str(tmp_path / "sweep"), backbones=["resnet50_v1", "vgg16"],
                      signs=[Sign.ERYTHEMA, Sign.EXCORIATION], shard=(0, 2), base=base)
    run_sweep(cfg, train_fn=fake_train)
    assert fake_train.calls == [("erythema", "resnet50_v1"), ("erythema", "vgg16")]
    md = (tmp_path / "sweep" / "report.md").read_text()
    assert "Not finished yet" in md and "excoriation/resnet50_v1" in md
    cfg.shard = (1, 2)
    best = run_sweep(cfg, train_fn=fake_train)
    assert fake_train.calls[2:] == [("excoriation", "resnet50_v1"), ("excoriation", "vgg16")]
    assert best["signs"]["erythema"]["backbone"] == "resnet50_v1"
    assert best["signs"]["erythema"]["rundir"].endswith("sweep/erythema/resnet50_v1")
    assert best["synthetic"] is True

    fake_train.calls = []
    cfg.shard, cfg.metric = (0, 1), "qwk"
    best = run_sweep(cfg, train_fn=fake_train)
    assert fake_train.calls == []  # every pair done: nothing retrained
    assert best["signs"]["excoriation"]["backbone"] == "vgg16" and best["metric"] == "qwk"
    saved = json.loads((tmp_path / "sweep" / "best.json").read_text())
    assert saved == best

    md = (tmp_path / "sweep" / "report.md").read_text()
    assert "SYNTHETIC" in md and "NOT clinical" in md and "Not finished" not in md
    row = next(line for line in md.splitlines() if line.startswith("| resnet50_v1 "))
    assert "90.0 (50.0-95.0)" in row and "0.500" in row and "95.83" in row and "92.33" in row
    assert "1.50 M" in row and "42 s" in row
    assert "paper (clinical)" in md
    rows = list(csv.DictReader((tmp_path / "sweep" / "report.csv").read_text().splitlines()))
    assert len(rows) == 4 and {r["backbone"] for r in rows} == {"resnet50_v1", "vgg16"}
    assert next(r for r in rows if r["backbone"] == "vgg16" and r["sign"] == "erythema")[
        "paper_accuracy_clinical"] == "21.33"


@pytest.mark.slow
def test_real_sweep_over_two_tiny_backbones(synth_folders, tiny_backbone, tmp_path, capsys):
    from trainer.__main__ import main

    out = tmp_path / "sweep"
    args = ["sweep", "--data", str(synth_folders), "--backbones", f"{TINY_BACKBONE},{TINY_BACKBONE_WIDE}",
            "--signs", "erythema", "--out", str(out), "--image-size", str(TINY_SIZE), "--steps", "8",
            "--eval-every", "8", "--batch", "8", "--metric", "qwk"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert f"| {TINY_BACKBONE} |" in printed and f"| {TINY_BACKBONE_WIDE} |" in printed
    best = json.loads((out / "best.json").read_text())
    assert best["metric"] == "qwk"
    assert best["signs"]["erythema"]["backbone"] in (TINY_BACKBONE, TINY_BACKBONE_WIDE)
    assert Path(best["signs"]["erythema"]["rundir"], "model.keras").exists()
    rows = list(csv.DictReader((out / "report.csv").read_text().splitlines()))
    assert [r["backbone"] for r in rows] == [TINY_BACKBONE, TINY_BACKBONE_WIDE]
    assert all(float(r["train_seconds"]) > 0 and int(r["params"]) > 0 for r in rows)
    stamp = (out / "erythema" / TINY_BACKBONE_WIDE / "metrics.json").stat().st_mtime_ns
    assert main(args) == 0  # rerun: both pairs done, skipped
    assert (out / "erythema" / TINY_BACKBONE_WIDE / "metrics.json").stat().st_mtime_ns == stamp
