"""Training on the synthetic set: it learns, it resumes after kill -9, the ordinal and
multi-sign heads train, and the run directory alone reloads and re-evaluates."""

from __future__ import annotations

import csv
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from trainer_fixtures import SUBPROCESS_MAIN, TINY_BACKBONE, TINY_SIZE

from device.core.vocab import MODEL_SIGNS, Sign

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def history(rundir: Path) -> list[dict]:
    with open(rundir / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


def _wait_for_step(state: Path, proc, above: int, timeout: float = 240) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"training exited early with {proc.returncode}")
        try:
            step = json.loads(state.read_text())["step"]
            if step > above:
                return step
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"no checkpoint past step {above} within {timeout} s")


def test_killed_run_resumes_then_learns_and_reloads(synth_folders, tiny_backbone, tmp_path, caplog):
    """One run does three jobs (CPU is scarce): kill -9 mid-run, resume with the same
    command, then check it learned and that its directory alone reloads it."""
    from trainer.__main__ import main
    from trainer.run import load_run

    out = tmp_path / "run"
    args = ["train", "--data", str(synth_folders), "--sign", "erythema", "--backbone", TINY_BACKBONE,
            "--image-size", str(TINY_SIZE), "--steps", "300", "--eval-every", "50", "--batch", "32",
            "--out", str(out), "--quiet"]
    state = out / "ckpt" / "state.json"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    with open(tmp_path / "first.log", "wb") as log:
        main_code = SUBPROCESS_MAIN.format(tests=str(REPO / "tests"))  # = python -m trainer ARGS
        first = subprocess.Popen([sys.executable, "-c", main_code, *args], cwd=REPO, env=env,
                                 stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_for_step(state, first, 0)
        finally:
            first.send_signal(signal.SIGKILL)  # kill -9: no cleanup at all
            first.wait()
    killed_at = json.loads(state.read_text())["step"]
    assert 50 <= killed_at < 300
    caplog.set_level(logging.INFO, logger="trainer")
    assert main(args) == 0  # the same command
    assert f"from step {killed_at}" in caplog.text
    assert "optimizer state is at step" not in caplog.text  # momentum and step count came back
    rows = history(out)
    steps = [int(float(r["step"])) for r in rows]
    assert steps == [50, 100, 150, 200, 250, 300]  # continued, not restarted from step 0

    for name in ("model.keras", "config.json", "split.json", "metrics.json", "history.csv",
                 "confusion.png", "confusion.json", "ckpt/last.keras"):
        assert (out / name).exists(), name
    assert any((out / "logs").rglob("*tfevents*"))
    val_loss = [float(r["val_loss"]) for r in rows]
    assert min(val_loss[1:]) < val_loss[0]  # validation loss goes down
    m = json.loads((out / "metrics.json").read_text())
    assert m["synthetic"] is True and "not clinical" in m["note"]
    assert m["accuracy"] > 0.35 and m["accuracy_ci95"][0] > 0.25  # clearly above chance (25 %)
    assert m["n"] + m["n_train"] == 400 and m["params"] > 0 and m["steps_done"] == 300

    run = load_run(out)
    assert run.sign is Sign.ERYTHEMA and run.image_size == TINY_SIZE and run.backbone == TINY_BACKBONE
    summary = run.data_summary()
    assert summary.synthetic and summary.n_val == m["n"] and sum(summary.per_grade_val) == m["n"]
    x = np.zeros((2, TINY_SIZE, TINY_SIZE, 3), np.uint8)
    probs = np.asarray(run.load_model().predict_on_batch(x))
    assert probs.shape == (2, 4) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-4)
    (out / "metrics.json").write_text(json.dumps(dict(m, accuracy=-1.0)))
    assert main(["evaluate", str(out)]) == 0  # from the run directory alone
    again = json.loads((out / "metrics.json").read_text())
    assert again["accuracy"] == pytest.approx(m["accuracy"]) and again["confusion"] == m["confusion"]
    assert again["steps_done"] == 300

    # --weights RUN/model.keras starts a new run from this one's weights.
    from trainer.model_setup import build_model
    from trainer.train import TrainConfig

    pooling = json.loads((out / "config.json").read_text())["pooling"]  # the recipe's
    warm = build_model(TrainConfig(data=str(synth_folders), out=str(tmp_path / "warm"), backbone=TINY_BACKBONE,
                              image_size=TINY_SIZE, weights=str(out / "model.keras"),
                              pooling=pooling), [Sign.ERYTHEMA])
    src = run.load_model()
    assert all(np.array_equal(a, b) for a, b in zip(warm.get_weights(), src.get_weights(), strict=True))

    # The same command on a finished run reports it without training again.
    mtime = (out / "model.keras").stat().st_mtime_ns
    assert main(args) == 0
    assert (out / "model.keras").stat().st_mtime_ns == mtime
    # A different backbone in the same directory is refused, not mixed in.
    assert main([*args[:-3], "--out", str(out), "--backbone", "mobilenet_v2"]) == 2


def test_ordinal_multi_sign_trains_and_splits(synth_manifest, tiny_backbone, tmp_path):
    from trainer.run import load_run
    from trainer.train import TrainConfig, train

    out = tmp_path / "multi"
    metrics = train(TrainConfig(data=str(synth_manifest), out=str(out), sign=None, multi_sign=True,
                                backbone=TINY_BACKBONE, image_size=TINY_SIZE, head="ordinal",
                                steps=80, eval_every=40, batch=16, verbose=0))
    rows = history(out)
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"])  # the joint loss goes down
    assert set(metrics["per_sign"]) == {s.value for s in MODEL_SIGNS}
    x = np.random.default_rng(0).integers(0, 256, (3, TINY_SIZE, TINY_SIZE, 3), dtype=np.uint8)
    for sign in MODEL_SIGNS:
        sub = load_run(out / sign.value)
        assert sub.sign is sign and sub.head == "ordinal" and not sub.config.multi_sign
        m = sub.metrics()
        assert m["n"] == metrics["per_sign"][sign.value]["n"]
        assert m["accuracy"] == pytest.approx(metrics["per_sign"][sign.value]["accuracy"])
        model = sub.load_model()
        assert model.output_shape == (None, 4) and model.input.dtype == "uint8"
        probs = np.asarray(model.predict_on_batch(x))
        assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-4) and (probs >= 0).all()
        assert sub.data_summary().n_val == m["n"]


def test_failed_start_does_not_bind_the_run_directory(synth_folders, tiny_backbone, tmp_path, capsys):
    from trainer.__main__ import main

    args = ["train", "--data", str(synth_folders), "--image-size", "16", "--out", str(tmp_path / "r")]
    assert main([*args, "--backbone", "no_such_net"]) == 2
    assert "unknown backbone 'no_such_net'" in capsys.readouterr().err
    assert main([*args, "--backbone", TINY_BACKBONE]) == 2  # now a size error, not a clash
    err = capsys.readouterr().err
    assert "minimum input" in err and "already holds" not in err
