"""Abstention's second space (device.grading.imagestats): low-level statistics of the crop as
the model is fed. The images are made here: crops from the synthetic generator, a
photograph-like texture (1/f noise, specular spots, JPEG) and a drawn non-skin image."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from convert.spacefit import calibrate_threshold, fit_image_stats, fit_stats
from device.core.imageio import encode_jpeg, read_image
from device.core.vocab import MODEL_SIGNS
from device.grading.abstain import SignAbstention, StatsError, load_stats
from device.grading.imagestats import (
    DESCRIPTOR_VERSION,
    DIM,
    ImageStatsError,
    describe,
    describe_many,
    variants,
)
from trainer.synth_render import render_lesion, skin_colour

SIZE = 64


def _synthetic_crops(seed: int, n: int) -> np.ndarray:
    """Generator patches, shrunk to the model's input as the trainer does."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        grades = {s: int(rng.integers(0, 4)) for s in MODEL_SIGNS}
        patch = render_lesion(rng, grades, tone=float(rng.uniform(0, 1)), size=128)
        jpeg = read_image(encode_jpeg(patch, int(rng.integers(72, 96))))
        out.append(cv2.resize(jpeg, (SIZE, SIZE), interpolation=cv2.INTER_AREA))
    return np.stack(out)


def _photo_like(rng: np.random.Generator) -> np.ndarray:
    """Skin-coloured 1/f texture with creases and specular spots, JPEG'd at 512 px and
    shrunk: what a camera photo of skin looks like at this level, not a render."""
    n = 512
    fy, fx = np.meshgrid(np.fft.fftfreq(n), np.fft.fftfreq(n), indexing="ij")
    amp = 1.0 / np.maximum(np.hypot(fy, fx), 1.0 / n)
    field = np.real(np.fft.ifft2(amp * np.exp(2j * np.pi * rng.random((n, n)))))
    field = (field - field.mean()) / field.std()
    base = skin_colour(float(rng.uniform(0.1, 0.6)))
    img = base[None, None, :] * (1.0 + 0.25 * field[..., None])
    for _ in range(40):  # creases
        x0, y0 = rng.integers(0, n, 2)
        x1, y1 = rng.integers(0, n, 2)
        cv2.line(img, (int(x0), int(y0)), (int(x1), int(y1)), tuple(float(v) * 0.6 for v in base), 2)
    for _ in range(60):  # specular highlights
        cv2.circle(img, tuple(int(v) for v in rng.integers(0, n, 2)), 2, (1.0, 1.0, 1.0), -1)
    rgb = (np.clip(img, 0, 1) * 255).astype(np.uint8)
    rgb = read_image(encode_jpeg(rgb, 80))
    return cv2.resize(rgb, (SIZE, SIZE), interpolation=cv2.INTER_AREA)


def _drawn_object() -> np.ndarray:
    """A drawn non-skin image: flat blue with a sharp white mug shape."""
    img = np.full((256, 256, 3), (40, 70, 160), np.uint8)
    cv2.rectangle(img, (70, 60), (170, 200), (245, 245, 245), -1)
    cv2.circle(img, (185, 130), 30, (245, 245, 245), 8)
    return cv2.resize(img, (SIZE, SIZE), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def fitted():
    train = _synthetic_crops(1, 120)
    held_out = _synthetic_crops(2, 60)
    stats, shrink = fit_image_stats(describe_many([v for im in train for v in variants(im)]))
    threshold, accepted = calibrate_threshold(stats.distances(describe_many(held_out)), 0.99)
    return stats.with_threshold(threshold), shrink, accepted


def test_descriptor_has_its_names_and_refuses_odd_input():
    d = describe(_synthetic_crops(3, 1)[0])
    assert d.shape == (DIM,) and np.isfinite(d).all()
    flat = describe(np.full((SIZE, SIZE, 3), 128, np.uint8))
    assert np.isfinite(flat).all()
    with pytest.raises(ImageStatsError, match="RGB uint8"):
        describe(np.zeros((SIZE, SIZE), np.uint8))
    with pytest.raises(ImageStatsError, match="8x8"):
        describe(np.zeros((4, 4, 3), np.uint8))


def test_synthetic_crops_are_accepted_photos_and_objects_are_not(fitted):
    stats, shrink, accepted = fitted
    assert 0 <= shrink <= 1 and accepted >= 0.99
    fresh = _synthetic_crops(4, 40)
    assert (stats.distances(describe_many(fresh)) <= stats.threshold).mean() >= 0.9
    rng = np.random.default_rng(5)
    photos = np.stack([_photo_like(rng) for _ in range(8)])
    assert (stats.distances(describe_many(photos)) > stats.threshold).all()
    assert stats.distance(_drawn_object()) > stats.threshold


def test_image_space_abstains_where_the_features_alone_do_not(fitted, tmp_path):
    """A model whose features cannot tell a photo from a render (here: the same feature
    vector for both) abstains through the image space alone."""
    image, _, _ = fitted
    rng = np.random.default_rng(6)
    feats = rng.normal(0, 1, (200, 8))
    features, _ = fit_stats(feats, rng.integers(0, 4, 200))
    features = features.with_threshold(50.0).with_image(image)
    path = tmp_path / "erythema.ood.npz"
    path.write_bytes(features.to_bytes())
    loaded = load_stats(path)
    assert loaded.image is not None and loaded.image.threshold == pytest.approx(image.threshold)
    same_features = feats[0]
    synthetic, photo = _synthetic_crops(7, 1)[0], _photo_like(rng)
    assert loaded.distance(same_features) <= loaded.threshold  # features alone: accepted
    on_synthetic = SignAbstention(loaded.distance(same_features), loaded.threshold,
                                  loaded.image.distance(synthetic), loaded.image.threshold)
    on_photo = SignAbstention(loaded.distance(same_features), loaded.threshold,
                              loaded.image.distance(photo), loaded.image.threshold)
    assert not SignAbstention(on_photo.distance, on_photo.threshold).abstained
    assert on_photo.abstained and on_photo.ratio > 1 and on_photo.image_ratio > 1
    assert on_synthetic.image_ratio is not None
    assert on_synthetic.to_dict()["image_score"] == pytest.approx(on_synthetic.image_ratio, abs=1e-4)


def test_old_statistics_without_an_image_space_still_load(tmp_path):
    rng = np.random.default_rng(8)
    stats, _ = fit_stats(rng.normal(0, 1, (50, 6)), rng.integers(0, 4, 50))
    path = tmp_path / "old.ood.npz"
    path.write_bytes(stats.with_threshold(3.0).to_bytes())
    loaded = load_stats(path)
    assert loaded.image is None
    verdict = SignAbstention(2.0, 3.0)
    assert verdict.image_ratio is None and not verdict.abstained
    assert verdict.to_dict()["image_score"] is None


def test_partial_or_foreign_image_statistics_are_refused(tmp_path, fitted):
    image, _, _ = fitted
    base = dict(means=np.zeros((4, 6), np.float32), classes=np.arange(4, dtype=np.int32),
                precision=np.eye(6, dtype=np.float32), threshold=np.float64(2.0))
    partial = tmp_path / "partial.ood.npz"
    np.savez(partial, **base, image_mean=image.mean)
    with pytest.raises(StatsError, match="image statistics lack"):
        load_stats(partial)
    future = tmp_path / "future.ood.npz"
    np.savez(future, **base, image_mean=image.mean, image_precision=image.precision,
             image_threshold=np.float64(image.threshold), image_version=np.int32(99))
    with pytest.raises(StatsError, match="descriptor version 99"):
        load_stats(future)
    bad = tmp_path / "bad.ood.npz"
    np.savez(bad, **base, image_mean=image.mean, image_precision=image.precision,
             image_threshold=np.float64(math.nan), image_version=np.int32(DESCRIPTOR_VERSION))
    with pytest.raises(StatsError, match="not a positive number"):
        load_stats(bad)


def test_fast_descriptor_terms_match_the_plain_formulas():
    """The kurtosis (square squared, not ``** 4``) and the saturation (channel by channel,
    not a reduction over the last axis) give what the plain formulas give, to float
    rounding: packs were fitted with the plain ones."""
    from device.grading import imagestats

    rng = np.random.default_rng(7)
    for size in (8, 33, 96):
        rgb = cv2.GaussianBlur(rng.integers(0, 256, (size, size, 3), dtype=np.uint8), (0, 0), 1.2)
        got = describe(rgb)
        f = rgb.astype(np.float32) / 255.0
        light = cv2.GaussianBlur(np.ascontiguousarray(cv2.cvtColor(f, cv2.COLOR_RGB2LAB)[..., 0]),
                                 (0, 0), imagestats.PRE_BLUR)
        b0, b1, b2 = (cv2.GaussianBlur(light, (0, 0), s) for s in (0.7, 1.4, 2.8))
        for i, band in enumerate((light - b0, b0 - b1, b1 - b2)):  # the three band energies
            assert got[9 + i] == math.log(float((band * band).mean()) + 1e-6)
        for i, band in enumerate((light - b0, b0 - b1)):
            e = float((band * band).mean())
            plain = math.log(float((band ** 4).mean()) / (e * e + 1e-6) + 1e-6)
            assert got[12 + i] == pytest.approx(plain, rel=1e-6, abs=1e-6)
        hi, lo = f.max(axis=2), f.min(axis=2)
        sat = (hi - lo) / (hi + 1e-6)
        assert got[-3:].tolist() == [float(sat.mean()), float(sat.std()), float((sat < 0.1).mean())]
