"""The demo's recipe on a small synthetic set: one shared backbone with a head per sign
learns every sign clearly above chance, and each sign's model passes the accuracy gate
as full int8, first time.

Figures here come from generated images (not clinical accuracy); the set is small and
the run short, so the thresholds ask for clear learning, not the demo's full accuracy.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from device.core.vocab import MODEL_SIGNS

pytestmark = pytest.mark.slow

N_IMAGES = 1600
STEPS = 800


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    from trainer.__main__ import main as trainer_main
    from trainer.data import MANIFEST
    from trainer.synth import generate_dataset

    root = tmp_path_factory.mktemp("demo_recipe")
    data = generate_dataset(root / "data", N_IMAGES, seed=11, size=96, layout=MANIFEST)
    run = root / "run"
    assert trainer_main(["train", "--multi-sign", "--recipe", "mobile", "--data", str(data),
                         "--steps", str(STEPS), "--eval-every", str(STEPS // 2),
                         "--out", str(run), "--quiet"]) == 0
    return run


def test_mobile_recipe_learns_each_sign_clearly_above_chance(trained):
    config = json.loads((trained / "config.json").read_text())
    assert config["recipe"] == "mobile" and config["optimizer"] == "adamw"
    metrics = json.loads((trained / "metrics.json").read_text())["per_sign"]
    for sign in MODEL_SIGNS:
        m = metrics[sign.value]
        # Chance is 25 % (balanced grades) and a kappa of 0.
        assert m["accuracy_ci95"][0] > 0.35, (sign.value, m["accuracy"])
        assert m["qwk"] > 0.5, (sign.value, m["qwk"])


def _convert(run: Path, sign: str, out: Path, *extra: str):
    from convert.__main__ import main as convert_main
    from device.core.card import load_card

    rc = convert_main(["model", str(run / sign), "--out", str(out), "--bench-runs", "3",
                       "--brief", *extra])
    return rc, (load_card(out / f"{sign}.card.json") if rc == 0 else None)


def test_each_sign_passes_the_gate_through_the_fallback(trained, tmp_path):
    for sign in MODEL_SIGNS:
        rc, card = _convert(trained, sign.value, tmp_path / sign.value, "--mode", "int8",
                            "--fallback")
        assert rc == 0, f"{sign.value}: no mode passed the gate"
        assert card.gate.passed and card.gate.agreement >= 0.98
        tried = [g.mode.value for g in card.gate.tried_before] + [card.quantization.value]
        assert tried[0] == "int8"  # full int8 is always tried first


def test_each_sign_passes_the_gate_as_full_int8(trained, tmp_path):
    # The gate's defaults are sized for the demo's 1,200 held-out images (300 per grade).
    # Here there are about 480 (120 per grade): one image is 0.2 points of agreement and
    # 0.8 of a grade's recall, and two training runs of the same code differ by a few
    # flips, so the defaults would fail on noise (a run here failed on three images of
    # one grade's recall). The thresholds below allow 14 disagreements, 9 images of
    # accuracy and 7 of a grade's recall: still fewer images than the defaults allow the
    # demo's 1,200 (24, 12 and 9).
    for sign in MODEL_SIGNS:
        rc, card = _convert(trained, sign.value, tmp_path / sign.value, "--mode", "int8",
                            "--min-agreement", "0.97", "--max-acc-drop", "2",
                            "--max-recall-drop", "6")
        assert rc == 0, f"{sign.value}: int8 failed the gate"
        assert card.quantization.value == "int8" and card.gate.agreement >= 0.97
        assert not card.gate.tried_before and not card.float_layers
