"""Training recipes: what each one sets, how the command line fills from it, and the
label-smoothed loss the mobile recipe trains with."""

from __future__ import annotations

import numpy as np
import pytest

from device.core.cliutil import build_parser
from trainer.__main__ import COMMANDS
from trainer.recipe import RECIPES, Optimizer, RecipeName, Schedule, parse_recipe


def _config(*argv: str):
    from trainer.cli.train import config_from_args

    args = build_parser("trainer", "", COMMANDS).parse_args(list(argv))
    return config_from_args(args, out="/tmp/unused")


def test_train_defaults_to_the_mobile_recipe_and_fills_its_settings():
    cfg = _config("train", "--data", "d", "--out", "o")
    mobile = RECIPES[RecipeName.MOBILE]
    assert cfg.recipe == "mobile"
    assert (cfg.backbone, cfg.image_size, cfg.steps, cfg.lr, cfg.batch) == (
        mobile.backbone, mobile.image_size, mobile.steps, mobile.lr, mobile.batch)


def test_paper_recipe_is_sgd_at_0_01_for_10000_steps():
    cfg = _config("train", "--data", "d", "--out", "o", "--recipe", "paper")
    assert (cfg.recipe, cfg.lr, cfg.steps, cfg.momentum) == ("paper", 0.01, 10_000, 0.9)
    paper = parse_recipe("paper")
    assert paper.optimizer is Optimizer.SGD and paper.schedule is Schedule.CONSTANT
    assert paper.label_smoothing == 0


def test_explicit_options_win_over_the_recipe():
    cfg = _config("train", "--data", "d", "--out", "o", "--lr", "0.05", "--steps", "7",
                  "--backbone", "mobilenet_v2", "--image-size", "80")
    assert (cfg.lr, cfg.steps, cfg.backbone, cfg.image_size) == (0.05, 7, "mobilenet_v2", 80)


def test_the_table3_sweep_uses_the_paper_recipe():
    cfg = _config("sweep", "--data", "d", "--out", "o")
    assert cfg.recipe == "paper" and cfg.lr == 0.01 and cfg.steps == 10_000


def test_progress_bar_only_on_a_terminal(monkeypatch):
    import sys

    monkeypatch.setattr(sys.stdout, "isatty", lambda: False, raising=False)
    assert _config("train", "--data", "d", "--out", "o").verbose == 2  # one line per evaluation
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    assert _config("train", "--data", "d", "--out", "o").verbose == 1
    assert _config("train", "--data", "d", "--out", "o", "--quiet").verbose == 2


def test_unknown_recipe_is_named():
    with pytest.raises(ValueError, match="unknown recipe 'fast'.*mobile, paper"):
        parse_recipe("fast")


def test_cosine_schedule_warms_up_then_decays():
    from trainer.recipe import learning_rate

    mobile = RECIPES[RecipeName.MOBILE]
    sched = learning_rate(mobile, 0.01, 1000)
    lrs = [float(sched(step)) for step in (0, 50, 100, 500, 999)]
    assert lrs[0] == pytest.approx(0.001)  # warm-up starts at a tenth
    assert lrs[2] == pytest.approx(0.01, rel=1e-3)  # peak after 10 % of the steps
    assert lrs[1] < lrs[2] and lrs[3] < lrs[2] and lrs[4] < lrs[3]
    assert lrs[4] == pytest.approx(0.01 * mobile.final_lr_fraction, rel=0.05)
    assert learning_rate(parse_recipe("paper"), 0.01, 1000) == 0.01


def test_smoothed_loss_matches_the_formula_and_survives_saving(tmp_path):
    import keras

    from trainer.model import loss_for_head
    from trainer.nets.heads import SmoothedSparseCrossentropy

    loss = loss_for_head("softmax", label_smoothing=0.1)
    assert isinstance(loss, SmoothedSparseCrossentropy)
    probs = np.array([[0.7, 0.1, 0.1, 0.1], [0.25, 0.25, 0.25, 0.25]], np.float32)
    y = np.array([0, 3])
    target = np.full((2, 4), 0.1 / 4) + 0.9 * np.eye(4)[y]
    expected = np.mean(-(target * np.log(probs)).sum(axis=1))
    assert float(loss(y, probs)) == pytest.approx(expected, rel=1e-5)
    assert float(loss_for_head("softmax")(y, probs)) == pytest.approx(
        np.mean(-np.log(probs[[0, 1], y])), rel=1e-5)  # no smoothing: plain cross-entropy

    inp = keras.Input((3,))
    model = keras.Model(inp, keras.layers.Dense(4, activation="softmax")(inp))
    model.compile(optimizer="adam", loss=loss)
    model.save(tmp_path / "m.keras")
    again = keras.models.load_model(tmp_path / "m.keras")
    assert again.loss.smoothing == pytest.approx(0.1)

