"""compute_metrics against hand-computed cases, load_image, the pipeline's pixels and
augmentation, class weights, strategy selection."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from device.core.vocab import Sign
from trainer.evaluate import compute_metrics, expected_calibration_error, save_confusion
from trainer.input_pipeline import class_weights
from trainer.model_setup import bn_momentum
from trainer.run import is_synthetic, load_image
from trainer.strategy import plan_strategy
from trainer.train_config import TrainError


def one_hot(pred, n=4):
    return np.eye(n)[np.asarray(pred)]


def test_perfect_predictions():
    y = [0, 1, 2, 3, 3, 2]
    m = compute_metrics(y, one_hot(y))
    assert m.accuracy == 1.0 and m.accuracy_ci95 == [1.0, 1.0]
    assert m.qwk == 1.0 and m.mae == 0.0 and m.macro_f1 == 1.0
    assert m.recall_per_grade == [1.0, 1.0, 1.0, 1.0]
    assert m.ece == pytest.approx(0.0)
    assert m.confusion == [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 2, 0], [0, 0, 0, 2]]
    assert m.n == 6
    json.dumps(m.model_dump())  # JSON-safe


def test_all_wrong_predictions():
    y, pred = [0, 0, 3, 3], [3, 3, 0, 0]
    m = compute_metrics(y, one_hot(pred))
    assert m.accuracy == 0.0 and m.accuracy_ci95 == [0.0, 0.0]
    assert m.mae == 3.0
    # Hand-computed: observed sum w*O = 4, expected sum w*E = 2 -> kappa = 1 - 4/2 = -1
    assert m.qwk == pytest.approx(-1.0)
    assert m.recall_per_grade == [0.0, None, None, 0.0]  # grades 1, 2 absent: undefined
    assert m.ece == pytest.approx(1.0)


def test_known_kappa_and_recall():
    # Hand-computed: sum w*O = 1/9, sum w*E = 32/36 -> kappa = 1 - 4/32 = 0.875
    m = compute_metrics([0, 1, 2, 3], one_hot([0, 1, 2, 2]))
    assert m.qwk == pytest.approx(0.875)
    assert m.accuracy == pytest.approx(0.75)
    assert m.mae == pytest.approx(0.25)
    assert m.recall_per_grade == [1.0, 1.0, 1.0, 0.0]
    assert m.confusion[3] == [0, 0, 1, 0]


def test_ece_and_bootstrap_interval():
    probs = np.tile([0.7, 0.1, 0.1, 0.1], (10, 1))
    y = np.array([0] * 5 + [1] * 5)
    assert expected_calibration_error(y, probs) == pytest.approx(0.2)
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 400)
    pred = np.where(rng.random(400) < 0.8, y, (y + 1) % 4)
    m = compute_metrics(y, one_hot(pred))
    lo, hi = m.accuracy_ci95
    assert lo < m.accuracy < hi and hi - lo < 0.1 and lo > 0.7


def test_bad_inputs_are_explained():
    with pytest.raises(ValueError, match="shape"):
        compute_metrics([0, 1], np.ones((3, 4)))
    with pytest.raises(ValueError, match="grades must be"):
        compute_metrics([0, 4], np.ones((2, 4)))


def test_confusion_png_and_json(tmp_path):
    m = compute_metrics([0, 1, 2, 3], one_hot([0, 1, 2, 2]))
    save_confusion(m, tmp_path / "c.png", tmp_path / "c.json")
    assert cv2.imread(str(tmp_path / "c.png")) is not None
    saved = json.loads((tmp_path / "c.json").read_text())
    assert saved["matrix"] == m.confusion and saved["labels"][3] == "severe"


def test_load_image_is_rgb_resized_and_crops_box(tmp_path):
    bgr = np.zeros((40, 60, 3), np.uint8)
    bgr[:, :30] = (255, 0, 0)  # blue on the left in OpenCV's BGR
    bgr[:, 30:] = (0, 0, 255)  # red on the right
    cv2.imwrite(str(tmp_path / "a.png"), bgr)
    img = load_image(tmp_path / "a.png", 20)
    assert img.shape == (20, 20, 3) and img.dtype == np.uint8
    assert tuple(img[10, 2]) == (0, 0, 255) and tuple(img[10, 17]) == (255, 0, 0)
    red = load_image(tmp_path / "a.png", (8, 8), box=(30, 0, 30, 40))
    assert (red[..., 0] == 255).all() and (red[..., 2] == 0).all()
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="bad.jpg"):
        load_image(tmp_path / "bad.jpg", 8)


def test_class_weights_balance_grades():
    w = class_weights(np.array([0] * 60 + [1] * 30 + [2] * 10))
    assert w[3] == 0.0
    assert 60 * w[0] == pytest.approx(30 * w[1]) == pytest.approx(10 * w[2])
    assert (np.array([60, 30, 10, 0]) * w).sum() == pytest.approx(100)


def test_strategy_plan_from_fake_devices():
    assert plan_strategy([], None).kind == "default"
    assert not plan_strategy([], None).mixed_precision
    one = plan_strategy(["gpu0"], None)
    assert one.kind == "mirrored" and one.mixed_precision
    assert plan_strategy(["gpu0", "gpu1"], "").kind == "mirrored"
    assert not plan_strategy(["gpu0"], None, mixed_precision=False).mixed_precision
    tf_config = json.dumps({"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 0}})
    assert plan_strategy([], tf_config).kind == "multi_worker"
    with pytest.raises(TrainError, match="TF_CONFIG"):
        plan_strategy([], "{not json")


def test_short_runs_get_fast_batchnorm():
    assert bn_momentum(300) == 0.9 and bn_momentum(10_000) == 0.99


def test_synthetic_marker(tmp_path):
    assert not is_synthetic(tmp_path)
    (tmp_path / "synth.json").write_text("{}")
    assert is_synthetic(tmp_path)


@pytest.mark.slow
def test_pipeline_pixels_match_load_image_and_augmentation_keeps_colour(tmp_path):
    from trainer.data import Sample
    from trainer.input_pipeline import NO_AUGMENT, Augment, make_dataset
    from trainer.run import load_images

    rng = np.random.default_rng(0)
    samples = []
    for i in range(8):
        p = tmp_path / f"{i}.png"
        cv2.imwrite(str(p), rng.integers(0, 256, (50, 70, 3), np.uint8))
        samples.append(Sample(path=p, grades={Sign.ERYTHEMA: i % 4}))
    ref = load_images(samples, 24)
    val = make_dataset(samples, [Sign.ERYTHEMA], 24, 3, training=False)
    got = np.concatenate([x.numpy() for x, _ in val])
    assert np.array_equal(got, ref)  # the pipeline decodes exactly like load_image
    x, y, w = next(iter(make_dataset(samples, [Sign.ERYTHEMA], 24, 4, training=True, augment=NO_AUGMENT)))
    assert all(any(np.array_equal(a, r) for r in ref) for a in x.numpy())

    # A flat reddish image: geometric changes leave every pixel as it was, and
    # brightness/contrast (one grey mean for all channels) leave its hue alone.
    p = tmp_path / "red.png"
    cv2.imwrite(str(p), np.full((32, 32, 3), (60, 80, 200), np.uint8))  # BGR
    red = [Sample(path=p, grades={Sign.ERYTHEMA: 2})] * 4
    geometric = Augment(brightness=0.0, contrast=0.0)
    for xb, yb, wb in make_dataset(red, [Sign.ERYTHEMA], 32, 4, training=True, augment=geometric).take(2):
        assert np.abs(xb.numpy().reshape(-1, 3).astype(int) - (200, 80, 60)).max() <= 1
        assert (yb.numpy() == 2).all() and np.allclose(wb.numpy(), 1.0)
    hue0 = cv2.cvtColor(np.uint8([[[200, 80, 60]]]), cv2.COLOR_RGB2HSV)[0, 0, 0]
    moved = 0
    for xb, _, _ in make_dataset(red, [Sign.ERYTHEMA], 32, 4, training=True).take(3):
        hsv = cv2.cvtColor(xb.numpy().reshape(1, -1, 3), cv2.COLOR_RGB2HSV)[0]
        assert np.abs(hsv[:, 0].astype(int) - int(hue0)).max() <= 2  # hue (0-180 scale) kept
        moved += int(np.abs(xb.numpy().astype(int) - (200, 80, 60)).max() > 3)
    assert moved > 0  # brightness/contrast did change something
