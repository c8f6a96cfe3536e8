"""Abstention's third space (device.grading.scenestats): a descriptor of the whole frame's tiny
view, one Gaussian over the training photos'. The frames are made here: the generator's full
photos (small), a drawn scene (a flat table with a mug, a skin-coloured card in it) and noise."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from convert.spacefit import calibrate_threshold, fit_scene_stats, fit_stats
from device.core.imageio import read_image
from device.grading.abstain import AbstainSpace, Abstention, SignAbstention, StatsError, load_stats
from device.grading.scenestats import SCENE_DIM, SCENE_NAMES, SceneStatsError, describe_scene
from device.vision.frameviews import FrameViews
from trainer.synth import full_photo_jpeg, plan_dataset

PHOTO = (320, 240)


def _describe(rgb: np.ndarray) -> np.ndarray:
    views = FrameViews.of(rgb)
    return describe_scene(views.tiny, views.skin, views.lab)


def _photos(seed: int, n: int) -> np.ndarray:
    return np.stack([_describe(read_image(full_photo_jpeg(seed, spec, PHOTO)[0]))
                     for spec in plan_dataset(n, seed)])


def _drawn_scene() -> np.ndarray:
    """A flat grey-blue table, a white mug, a skin-coloured card: drawn, not photographed."""
    img = np.full((240, 320, 3), (90, 110, 140), np.uint8)
    cv2.rectangle(img, (90, 60), (230, 190), (214, 170, 140), -1)
    cv2.rectangle(img, (20, 20), (70, 110), (245, 245, 245), -1)
    return img


def _noise() -> np.ndarray:
    rng = np.random.default_rng(3)
    base = np.array([200, 150, 120], np.float32)
    return np.clip(base + rng.normal(0, 40, (240, 320, 3)), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def fitted():
    stats, shrink = fit_scene_stats(_photos(7, 48))
    threshold, _ = calibrate_threshold(stats.distances(_photos(9, 24)), 0.97)
    return stats.with_threshold(threshold)


def test_the_descriptor_names_its_values_and_refuses_what_it_cannot_describe():
    d = _describe(_drawn_scene())
    assert d.shape == (SCENE_DIM,) == (len(SCENE_NAMES),) and np.isfinite(d).all()
    assert 0 < d[SCENE_NAMES.index("skin_share")] < 1
    views = FrameViews.of(_drawn_scene())
    assert np.allclose(describe_scene(views.tiny, views.skin), d, atol=1e-4)  # lab made when not given
    with pytest.raises(SceneStatsError):
        describe_scene(views.tiny[..., 0], views.skin)
    with pytest.raises(SceneStatsError):
        describe_scene(views.tiny, views.skin[:-1])


def test_synthetic_photos_are_within_and_a_drawn_scene_or_noise_far_past(fitted):
    held_out = fitted.distances(_photos(11, 24))
    assert (held_out <= fitted.threshold).mean() >= 0.8  # other photos of the same generator
    for frame in (_drawn_scene(), _noise()):
        assert fitted.distance_of(_describe(frame)) > 2 * fitted.threshold


def _feature_stats():
    rng = np.random.default_rng(0)
    stats, _ = fit_stats(rng.normal(size=(40, 4)), rng.integers(0, 4, 40))
    return stats.with_threshold(10.0)


def test_the_scene_space_travels_in_the_stats_file_and_old_files_still_load(fitted, tmp_path):
    path = tmp_path / "erythema.ood.npz"
    path.write_bytes(_feature_stats().with_scene(fitted).to_bytes())
    loaded = load_stats(path)
    assert loaded.scene is not None and loaded.scene.threshold == pytest.approx(fitted.threshold)
    assert np.allclose(loaded.scene.mean, fitted.mean)
    old = tmp_path / "old.ood.npz"
    old.write_bytes(_feature_stats().to_bytes())
    assert load_stats(old).scene is None  # a pack before the scene space: no scene space
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files if k != "scene_threshold"}
    np.savez(tmp_path / "part.ood.npz", **arrays)
    with pytest.raises(StatsError, match="scene statistics lack scene_threshold"):
        load_stats(tmp_path / "part.ood.npz")
    arrays.update(scene_threshold=np.float64(1.0), scene_version=np.int32(99))
    np.savez(tmp_path / "new.ood.npz", **arrays)
    with pytest.raises(StatsError, match="descriptor version 99"):
        load_stats(tmp_path / "new.ood.npz")


def test_past_the_scene_threshold_abstains_and_says_the_models_were_not_trained_on_it():
    within = SignAbstention(1.0, 4.0, 1.0, 4.0, 1.0, 4.0)
    scene = SignAbstention(1.0, 4.0, 1.0, 4.0, 9.0, 4.0)
    also = SignAbstention(5.0, 4.0, 1.0, 4.0, 9.0, 4.0)
    assert not within.abstained and scene.abstained and scene.scene_past
    verdict = Abstention(True, {"erythema": within, "excoriation": scene}, "demo-1")
    assert verdict.abstained and verdict.space is AbstainSpace.SCENE
    assert verdict.crop_space is None and verdict.scene_score == pytest.approx(9 / 4)
    assert "not trained on photos like this" in verdict.message()
    assert verdict.to_dict()["space"] == "scene"
    assert verdict.to_dict()["signs"]["excoriation"]["scene_score"] == pytest.approx(2.25)
    both = Abstention(True, {"erythema": also})
    assert both.space is AbstainSpace.SCENE and both.crop_space is AbstainSpace.FEATURE
    # No scene statistics (an old pack): the two crop spaces decide, as before.
    old = Abstention(True, {"erythema": SignAbstention(1.0, 4.0, 1.0, 4.0)})
    assert not old.abstained and old.scene_score is None and math.isfinite(old.score)


def test_the_pack_check_wants_the_scene_space_exactly_where_the_card_describes_it(fitted, tmp_path):
    from types import SimpleNamespace

    from device.packs.manifest import sha256_file
    from device.packs.stats import check_stats

    (tmp_path / "models").mkdir()
    path = tmp_path / "models" / "erythema.ood.npz"
    path.write_bytes(_feature_stats().with_scene(fitted).to_bytes())
    entry = SimpleNamespace(stats="models/erythema.ood.npz", card="models/erythema.card.json")
    extracted = {entry.stats: sha256_file(path)}

    def problems(scene_space):
        info = SimpleNamespace(stats_sha256=extracted[entry.stats], feature_dim=4,
                               scene_space=scene_space)
        report = SimpleNamespace(problems=[], notes=[])
        check_stats(report, entry, SimpleNamespace(abstention=info), tmp_path, extracted)
        return report.problems

    assert problems(scene_space=object()) == []
    assert any("has the scene space" in p for p in problems(scene_space=None))
