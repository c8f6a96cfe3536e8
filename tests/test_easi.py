"""EASI against hand-computed cases (the rules in docs/ARCHITECTURE.md)."""

from fractions import Fraction

import pytest

from device.core.easi import (
    Band,
    EasiError,
    Missing,
    RegionRecord,
    area_score,
    compute_easi,
    easi_band,
    round_display,
    validate_grade,
    weights_for_age,
)
from device.core.vocab import REGIONS, Region


def rec(region, e, p, x, li, area):
    return RegionRecord(region, erythema=e, papulation=p, excoriation=x, lichenification=li,
                        area_percent=area)


#: intensities 4.5, 4, 9.5, 9 and area scores 2, 1, 4, 6
CASE = [
    rec(Region.HEAD_NECK, 2, 1, 1.5, 0, 15),
    rec(Region.UPPER_LIMBS, 1, 1, 1, 1, 5),
    rec(Region.TRUNK, 3, 2.5, 2, 2, 55),
    rec(Region.LOWER_LIMBS, 2, 2, 2, 3, 95),
]


def test_adult_case_by_hand():
    # 0.1*4.5*2 + 0.2*4*1 + 0.3*9.5*4 + 0.4*9*6 = 0.9 + 0.8 + 11.4 + 21.6 = 34.7
    result = compute_easi(CASE, age=30)
    assert result.complete and result.child_weights is False
    assert result.total_exact == Fraction(347, 10)
    assert result.total_display == 34.7
    assert result.band is Band.SEVERE
    scores = {r: float(s.score) for r, s in result.regions.items()}
    assert scores == pytest.approx({Region.HEAD_NECK: 0.9, Region.UPPER_LIMBS: 0.8,
                                    Region.TRUNK: 11.4, Region.LOWER_LIMBS: 21.6})
    assert result.regions[Region.TRUNK].intensity == Fraction(19, 2)
    assert result.regions[Region.LOWER_LIMBS].area_score == 6


def test_child_weights_by_hand():
    # 0.2*4.5*2 + 0.2*4*1 + 0.3*9.5*4 + 0.3*9*6 = 1.8 + 0.8 + 11.4 + 16.2 = 30.2
    result = compute_easi(CASE, age=5)
    assert result.child_weights is True
    assert result.total_exact == Fraction(302, 10)
    assert result.band is Band.SEVERE


@pytest.mark.parametrize(("age", "head_weight"), [(0, 0.2), (7, 0.2), (7.9, 0.2), (8, 0.1), (80, 0.1)])
def test_age_boundary(age, head_weight):
    weights = weights_for_age(age)
    assert float(weights[Region.HEAD_NECK]) == head_weight
    assert sum(weights.values()) == 1


@pytest.mark.parametrize("age", [-1, 200, None, True])
def test_bad_age(age):
    with pytest.raises(EasiError, match="age"):
        weights_for_age(age)


@pytest.mark.parametrize("age", [3, 40])
def test_maximum_is_72_and_clear_is_0(age):
    worst = compute_easi([rec(r, 3, 3, 3, 3, 100) for r in REGIONS], age=age)
    assert worst.total_exact == 72 and worst.band is Band.VERY_SEVERE
    clear = compute_easi([RegionRecord(r, area_percent=0) for r in REGIONS], age=age)
    assert clear.complete and clear.total == 0 and clear.band is Band.CLEAR


def test_total_is_exact_and_band_follows_display():
    # 0.1 * 3.5 * 3 = 1.05 exactly; in floats it is 1.0500000000000003. Shown as 1.1 -> mild.
    records = [rec(Region.HEAD_NECK, 1, 1, 1.5, 0, 30)] + [
        RegionRecord(r, area_percent=0) for r in REGIONS[1:]]
    result = compute_easi(records, age=20)
    assert result.total_exact == Fraction(21, 20)
    assert result.total_display == 1.1
    assert result.band is Band.MILD


@pytest.mark.parametrize(("percent", "score"), [
    (0, 0), (0.3, 1), (1, 1), (9, 1), (9.4, 1), (9.5, 2), (10, 2), (29, 2), (29.5, 3), (30, 3),
    (49, 3), (49.5, 4), (50, 4), (69, 4), (70, 5), (89, 5), (89.4, 5), (89.5, 6), (90, 6), (100, 6),
])
def test_area_band_edges(percent, score):
    assert area_score(percent) == score


@pytest.mark.parametrize("percent", [-0.1, 100.5, float("nan"), "20", True])
def test_area_out_of_range(percent):
    with pytest.raises(EasiError, match="area"):
        area_score(percent)


@pytest.mark.parametrize(("total", "band"), [
    (0, Band.CLEAR), (0.05, Band.ALMOST_CLEAR), (0.1, Band.ALMOST_CLEAR), (1, Band.ALMOST_CLEAR),
    (1.1, Band.MILD), (7, Band.MILD), (7.1, Band.MODERATE), (21, Band.MODERATE),
    (21.1, Band.SEVERE), (50, Band.SEVERE), (50.1, Band.VERY_SEVERE), (72, Band.VERY_SEVERE),
])
def test_band_edges(total, band):
    assert easi_band(total) is band


def test_band_out_of_range():
    with pytest.raises(EasiError):
        easi_band(72.2)


@pytest.mark.parametrize(("value", "shown"), [(2.45, 2.5), (Fraction(49, 20), 2.5), (0.05, 0.1),
                                              (34.75, 34.8)])
def test_round_half_up(value, shown):
    assert round_display(value) == shown


@pytest.mark.parametrize("grade", [0, 1, 1.5, 2, 2.5, 3, 2.0])
def test_half_point_rule_accepts(grade):
    assert validate_grade(grade) == Fraction(grade)


@pytest.mark.parametrize("grade", [0.5, 3.5, -1, 1.25, 4, float("nan"), True, "2"])
def test_half_point_rule_refuses(grade):
    with pytest.raises(EasiError):
        validate_grade(grade, what="trunk: erythema")


def test_half_point_message_names_field_and_fix():
    record = rec(Region.TRUNK, 0.5, 1, 1, 1, 20)
    with pytest.raises(EasiError, match=r"Trunk: erythema: 0.5 is not allowed \(0.5 is not"):
        compute_easi([record], age=30)


def test_missing_lists_what_is_needed():
    records = [
        rec(Region.HEAD_NECK, 2, 1, 1.5, 0, 15),                       # complete
        RegionRecord(Region.TRUNK, erythema=2, excoriation=1, lichenification=1, area_percent=40),
        RegionRecord(Region.UPPER_LIMBS, erythema=1, excoriation=1, lichenification=0),
    ]
    result = compute_easi(records, age=None)
    assert not result.complete and result.total is None and result.band is None
    assert set(result.missing) == {
        Missing(None, "age"),
        Missing(Region.TRUNK, "papulation"),
        Missing(Region.UPPER_LIMBS, "area_percent"),
        Missing(Region.UPPER_LIMBS, "papulation"),
        Missing(Region.LOWER_LIMBS, "region"),
    }
    texts = [str(m) for m in result.missing]
    assert "Trunk: papulation grade (clinician)" in texts
    assert "Lower limbs: not examined (scan it, or enter 0 % area)" in texts
    # without an age no weight is known, so nothing is scored yet
    assert result.regions == {}


def test_partial_total_and_zero_area_needs_no_grades():
    records = [rec(Region.HEAD_NECK, 2, 1, 1.5, 0, 15), RegionRecord(Region.TRUNK, area_percent=0),
               RegionRecord(Region.UPPER_LIMBS, erythema=3, area_percent=20)]
    result = compute_easi(records, age=30)
    assert result.partial_total == Fraction(9, 10)
    assert Region.TRUNK in result.regions and result.regions[Region.TRUNK].score == 0
    assert Missing(Region.UPPER_LIMBS, "papulation") in result.missing
    assert Missing(Region.TRUNK, "papulation") not in result.missing
    assert result.to_dict()["missing"] and result.to_dict()["total"] is None


def test_region_given_twice_is_an_error():
    with pytest.raises(EasiError, match="twice"):
        compute_easi([CASE[0], CASE[0]], age=30)


def test_to_dict_is_json_safe():
    import json

    data = compute_easi(CASE, age=30).to_dict()
    assert json.loads(json.dumps(data))["band"] == "severe"
    assert data["regions"]["trunk"]["score"] == pytest.approx(11.4)
