"""Colour reference card: the colour maths, finding rendered cards (turned, part-shadowed),
no card, a card too damaged to trust, and the correction recovering a known light."""

from __future__ import annotations

import numpy as np
import pytest

from device.cameras.synthetic import render_skin_frame
from device.colour.card import CardKind
from device.colour.correct import ColourCorrection, ColourStatus, correct_colour
from device.colour.detect import find_card
from device.colour.maths import (
    REFERENCE_LAB,
    REFERENCE_LINEAR,
    REFERENCE_SRGB,
    apply_correction,
    delta_e2000,
    fit_correction,
    illuminant_gains,
    linear_to_lab,
    linear_to_srgb,
    srgb_to_linear,
)
from device.colour.scene import Light, capture, place_card, random_crosstalk
from device.config import ColourConfig


def scene(seed: int, kind: CardKind, **options):
    """A 640x480 skin frame with a lesion and ``kind`` of card beside it (D65)."""
    rng = np.random.default_rng(seed)
    frame, box = render_skin_frame(rng, 640, 480)
    image, corners = place_card(rng, frame, kind, box, **options)
    return image, box, corners


def test_ciede2000_matches_the_published_test_pairs():
    # Sharma, Wu & Dalal (2005), table 1, pairs 1 and 17.
    lab1 = np.array([[50.0, 2.6772, -79.7751], [50.0, 2.5, 0.0]])
    lab2 = np.array([[50.0, 0.0, -82.7485], [73.0, 25.0, -18.0]])
    assert delta_e2000(lab1, lab2) == pytest.approx([2.0425, 27.1492], abs=1e-4)
    assert delta_e2000(REFERENCE_LAB, REFERENCE_LAB) == pytest.approx(np.zeros(24))


def test_srgb_round_trip_and_the_white_patch_lab():
    v = np.linspace(0, 1, 101)
    assert linear_to_srgb(srgb_to_linear(v)) == pytest.approx(v, abs=1e-9)
    white = linear_to_lab(srgb_to_linear(np.ones(3)))
    assert white == pytest.approx([100.0, 0.0, 0.0], abs=0.02)
    assert REFERENCE_LAB[18, 0] == pytest.approx(95.8, abs=0.1)  # white: sRGB 243 under D65
    assert illuminant_gains(6504) == pytest.approx(np.ones(3), abs=0.05)
    warm = illuminant_gains(2700)
    assert warm[0] > 1.5 and warm[2] < 0.4  # a tungsten lamp is red-heavy, blue-poor


def test_the_fit_recovers_a_known_illuminant_exactly():
    light = Light(2700, 0.0, random_crosstalk(np.random.default_rng(3)))
    forward = np.diag(illuminant_gains(light.kelvin) * 0.4) @ light.crosstalk.T
    observed = linear_to_srgb(REFERENCE_LINEAR @ forward)
    fit = fit_correction(observed)
    assert fit is not None and fit.used.all()
    assert fit.matrix == pytest.approx(np.linalg.inv(forward), rel=1e-6, abs=1e-6)
    assert fit.mean_delta_e < 1e-6 and fit.gamma is None  # exact sRGB fits best


def test_the_fit_takes_up_a_tone_curve_that_is_not_srgb():
    forward = np.diag(illuminant_gains(3500) * 0.5)
    observed = (REFERENCE_LINEAR @ forward) ** (1 / 2.6)  # a camera with a 2.6 power law
    plain = fit_correction(observed, tone=False)
    fit = fit_correction(observed)
    assert fit.gamma == pytest.approx(2.6, abs=0.05)
    assert fit.mean_delta_e < 0.5 * plain.mean_delta_e and fit.mean_delta_e < 0.5
    rgb = np.round(observed * 255).astype(np.uint8)[None]
    corrected = apply_correction(rgb, fit.matrix, fit.gamma)[0] / 255.0
    assert np.abs(corrected - REFERENCE_SRGB)[fit.used].mean() < 0.02


@pytest.mark.parametrize("kind", list(CardKind))
def test_correction_brings_a_warm_dark_photo_back_to_the_reference(kind):
    image, box, _ = scene(11, kind)
    rng = np.random.default_rng(5)
    photo = capture(rng, image, Light(2800, -0.7, random_crosstalk(rng)))
    colour = correct_colour(photo, ColourConfig())
    assert colour.status is ColourStatus.CORRECTED and colour.card is kind
    assert colour.delta_e < 2.0 and colour.patches >= 22
    x, y, w, h = box
    skin = np.s_[y:y + h, x:x + w]
    before = linear_to_lab(srgb_to_linear(photo[skin].reshape(-1, 3).mean(0) / 255))
    after = linear_to_lab(srgb_to_linear(colour.apply(photo)[skin].reshape(-1, 3).mean(0)
                                         / 255))
    truth = linear_to_lab(srgb_to_linear(image[skin].reshape(-1, 3).mean(0) / 255))
    assert delta_e2000(after, truth) < 3.0 < delta_e2000(before, truth)


@pytest.mark.parametrize(("kind", "options"), [
    (CardKind.CHART, {"angle": 90.0}),
    (CardKind.CHART, {"angle": 205.0}),
    (CardKind.PRINTED, {"angle": 150.0}),
    (CardKind.CHART, {"angle": 10.0, "shadow": 0.4}),
    (CardKind.PRINTED, {"angle": -20.0, "shadow": 0.4}),
])
def test_rendered_cards_are_found_turned_and_part_shadowed(kind, options):
    image, _, corners = scene(21, kind, **options)
    found = find_card(image)
    assert found is not None and found.kind is kind
    # Corners in the same order (TL, TR, BR, BL of the card): which way up it is.
    assert np.abs(found.corners - corners).max() < 4.0
    sampled = np.isfinite(found.patches).all(axis=1)
    assert sampled.all()
    if "shadow" not in options:
        assert np.abs(found.patches - REFERENCE_SRGB).max() < 0.08


def test_a_photo_without_a_card_changes_nothing():
    frame, _ = render_skin_frame(np.random.default_rng(2), 640, 480)
    assert find_card(frame) is None
    colour = correct_colour(frame, ColourConfig())
    assert colour.status is ColourStatus.NO_CARD and not colour.corrected
    assert colour.message() == "no colour reference"
    assert correct_colour(frame, ColourConfig(correct=False)).status is ColourStatus.OFF


def test_a_card_too_damaged_to_trust_is_said_plainly():
    image, _, _ = scene(31, CardKind.PRINTED, damage=0.6)
    colour = correct_colour(image, ColourConfig())
    assert colour.card is CardKind.PRINTED
    assert colour.status is ColourStatus.UNTRUSTED and not colour.corrected
    assert "graded without colour correction" in colour.message()
    assert colour.delta_e is None or colour.delta_e > ColourConfig().max_delta_e or \
        colour.patches < 16


def test_the_record_round_trips_through_json():
    image, _, _ = scene(41, CardKind.CHART)
    colour = correct_colour(image, ColourConfig())
    again = ColourCorrection.from_dict(colour.to_dict())
    assert again == colour and again.corrected
    assert again.array() == pytest.approx(colour.array())
