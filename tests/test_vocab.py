import pytest

from device.core.vocab import (
    MODEL_SIGNS,
    Grade,
    Region,
    Sign,
    parse_grade,
    parse_region,
    parse_sign,
)


def test_model_signs_are_the_papers_three():
    assert [s.value for s in MODEL_SIGNS] == ["erythema", "excoriation", "lichenification"]
    assert Sign.PAPULATION not in MODEL_SIGNS


@pytest.mark.parametrize("text,grade", [("0", Grade.NONE), ("mild", Grade.MILD), (" Moderate ", Grade.MODERATE), (3, Grade.SEVERE)])
def test_parse_grade_accepts_numbers_and_names(text, grade):
    assert parse_grade(text) is grade


@pytest.mark.parametrize("bad", ["4", "-1", "severe!", 7, True])
def test_parse_grade_rejects_with_the_choices(bad):
    with pytest.raises(ValueError, match="expected 0, 1, 2, 3"):
        parse_grade(bad)


def test_parse_sign_model_only_refuses_papulation():
    assert parse_sign("ERYTHEMA") is Sign.ERYTHEMA
    with pytest.raises(ValueError, match="erythema, excoriation, lichenification"):
        parse_sign("papulation", model_only=True)


def test_parse_region_normalises_spelling():
    assert parse_region("Head-Neck") is Region.HEAD_NECK
    with pytest.raises(ValueError, match="unknown body region"):
        parse_region("face")
