"""Abstention statistics (device.grading.abstain); the card migration is in test_card.py."""

from __future__ import annotations

import json

import numpy as np
import pytest

from convert.spacefit import calibrate_threshold, fit_stats, shrunk_covariance
from device.grading.abstain import AbstainSpace, Abstention, SignAbstention, StatsError, load_stats


def _clusters(rng, n, dim=24, spread=1.0):
    """Four grade clusters in a dim-dimensional feature space."""
    centres = np.eye(4, dim) * 6.0
    labels = rng.integers(0, 4, n)
    return centres[labels] + rng.normal(0, spread, (n, dim)), labels


def test_threshold_accepts_held_out_and_refuses_far_features(tmp_path):
    rng = np.random.default_rng(0)
    train, labels = _clusters(rng, 600)
    held_out, _ = _clusters(rng, 300)
    stats, shrink = fit_stats(train, labels)
    assert stats.classes == (0, 1, 2, 3) and 0 <= shrink <= 1
    threshold, accepted = calibrate_threshold(stats.distances(held_out), 0.99)
    assert accepted >= 0.99
    assert (stats.distances(held_out) <= threshold).mean() >= 0.99
    stats = stats.with_threshold(threshold)
    # Unlike anything seen: far from every grade mean, or on directions never used.
    far = rng.normal(0, 1, (50, 24)) + 25.0
    assert (stats.distances(far) > threshold).all()
    # Fresh images of the same kind are mostly accepted.
    fresh, _ = _clusters(rng, 400)
    assert (stats.distances(fresh) <= threshold).mean() > 0.95
    # A saved file scores the same on the device (float32 there).
    path = tmp_path / "erythema.ood.npz"
    path.write_bytes(stats.to_bytes())
    loaded = load_stats(path)
    assert loaded.threshold == pytest.approx(threshold)
    assert loaded.distance(held_out[0]) == pytest.approx(stats.distances(held_out[:1])[0], rel=1e-4)


def test_calibration_picks_the_smallest_threshold_for_the_share():
    d = np.arange(1, 101, dtype=float)  # 100 held-out distances 1..100
    threshold, accepted = calibrate_threshold(d, 0.99)
    assert 99 <= threshold < 100 and accepted == 0.99
    threshold, accepted = calibrate_threshold(d, 1.0)
    assert threshold >= 100 and accepted == 1.0


def test_ledoit_wolf_shrinks_a_singular_covariance_to_an_invertible_one():
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, (10, 40))  # fewer samples than dimensions
    cov, shrink = shrunk_covariance(x - x.mean(0))
    assert 0 < shrink <= 1
    assert np.linalg.matrix_rank(cov) == 40


def test_abstention_verdict_and_message():
    inside = SignAbstention(3.0, 4.0)
    outside = SignAbstention(9.0, 4.0)
    ok = Abstention(True, {"erythema": inside}, "1.2.3")
    assert not ok.abstained and ok.score == pytest.approx(0.75)
    no = Abstention(True, {"erythema": inside, "excoriation": outside}, "1.2.3")
    assert no.abstained and no.score == pytest.approx(2.25)
    assert "outside pack 1.2.3's training data" in no.message()
    blind = Abstention(False, {}, "0.1")
    assert not blind.abstained and blind.score is None
    assert "cannot tell" in blind.message()
    assert json.loads(json.dumps(no.to_dict()))["signs"]["excoriation"]["abstained"] is True


def test_the_verdict_names_the_space_that_refused():
    within = SignAbstention(3.0, 4.0, 1.0, 2.0)
    feature = SignAbstention(5.0, 4.0, 1.0, 2.0)
    image = SignAbstention(3.0, 4.0, 3.0, 2.0)
    assert Abstention(True, {"erythema": within}).space is None
    assert Abstention(True, {"erythema": feature}).space is AbstainSpace.FEATURE
    assert Abstention(True, {"erythema": within, "excoriation": image}).space is AbstainSpace.IMAGE
    both = Abstention(True, {"erythema": feature, "excoriation": image})
    assert both.space is AbstainSpace.BOTH and both.to_dict()["space"] == "both"
    assert Abstention(True, {"erythema": SignAbstention(5.0, 4.0)}).space is AbstainSpace.FEATURE
    assert Abstention(False, {}).space is None


@pytest.mark.parametrize("content", [b"", b"not an npz at all"])
def test_damaged_statistics_are_a_clear_error(tmp_path, content):
    path = tmp_path / "bad.ood.npz"
    path.write_bytes(content)
    with pytest.raises(StatsError, match="bad.ood.npz"):
        load_stats(path)


def test_statistics_with_wrong_shapes_are_refused(tmp_path):
    path = tmp_path / "odd.ood.npz"
    np.savez(path, means=np.zeros((4, 8)), classes=np.arange(4), precision=np.eye(5),
             threshold=np.float64(2.0))
    with pytest.raises(StatsError, match="inconsistent shapes"):
        load_stats(path)
