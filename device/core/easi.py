"""EASI (Eczema Area and Severity Index, Hanifin 2001) from per-region records.

Rules (docs/ARCHITECTURE.md, "EASI"):

* intensity of a region = erythema + papulation + excoriation + lichenification,
  each 0-3 with half points 1.5 and 2.5 allowed, never 0.5;
* area score from the percentage of the region affected: 0 % -> 0, 1-9 -> 1,
  10-29 -> 2, 30-49 -> 3, 50-69 -> 4, 70-89 -> 5, 90-100 -> 6;
* EASI = sum of weight * intensity * area score, 0-72; weights (head/neck, upper
  limbs, trunk, lower limbs) 0.1/0.2/0.3/0.4 from age 8, 0.2/0.2/0.3/0.3 for 0-7.

Decisions this module makes where the published bands leave a gap:

* A fractional percentage is rounded half up to a whole percent before banding
  (9.4 -> 9 -> score 1, 9.5 -> 10 -> score 2, 89.5 -> 90 -> score 6), except that
  any involvement above 0 % scores at least 1 (0.3 % is "under 10 %", not "none").
* The total is kept exact (a Fraction: every term is a multiple of 0.05); the band
  is taken from the total rounded half up to one decimal, i.e. from the number
  the staff see, so 1.05 shows as 1.1 and is "mild".
* A region with 0 % area needs no sign grades: its score is 0 whatever they are.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from enum import Enum
from fractions import Fraction

from device.core.errors import InvalidInput
from device.core.vocab import MODEL_SIGNS, REGIONS, Region, Sign

log = logging.getLogger(__name__)

#: Grades a sign may take in EASI (0.5 is not allowed: "0.5 is not a score").
VALID_GRADES: tuple[float, ...] = (0, 1, 1.5, 2, 2.5, 3)
EASI_MAX = 72
#: Age (years) from which the adult weights apply.
ADULT_AGE = 8

ADULT_WEIGHTS: dict[Region, Fraction] = {
    Region.HEAD_NECK: Fraction(1, 10), Region.UPPER_LIMBS: Fraction(2, 10),
    Region.TRUNK: Fraction(3, 10), Region.LOWER_LIMBS: Fraction(4, 10),
}
CHILD_WEIGHTS: dict[Region, Fraction] = {
    Region.HEAD_NECK: Fraction(2, 10), Region.UPPER_LIMBS: Fraction(2, 10),
    Region.TRUNK: Fraction(3, 10), Region.LOWER_LIMBS: Fraction(3, 10),
}
#: Lower bound (inclusive, whole percent) of each area score 1..6.
_AREA_BANDS: tuple[tuple[int, int], ...] = ((90, 6), (70, 5), (50, 4), (30, 3), (10, 2), (1, 1))


class EasiError(InvalidInput):
    """A grade, area or age that EASI does not allow; the message names the field."""


class Band(str, Enum):
    CLEAR = "clear"
    ALMOST_CLEAR = "almost_clear"
    MILD = "mild"
    MODERATE = "moderate"
    SEVERE = "severe"
    VERY_SEVERE = "very_severe"

    @property
    def label(self) -> str:
        return self.value.replace("_", " ").capitalize()


#: Upper bound (inclusive, on the 1-decimal display value) of each band.
_BANDS: tuple[tuple[Decimal, Band], ...] = (
    (Decimal("0"), Band.CLEAR), (Decimal("1"), Band.ALMOST_CLEAR), (Decimal("7"), Band.MILD),
    (Decimal("21"), Band.MODERATE), (Decimal("50"), Band.SEVERE), (Decimal("72"), Band.VERY_SEVERE),
)

#: The signs summed into a region's intensity, in display order.
EASI_SIGNS: tuple[Sign, ...] = (Sign.ERYTHEMA, Sign.PAPULATION, Sign.EXCORIATION, Sign.LICHENIFICATION)


def validate_grade(value: float | int | None, *, what: str = "grade") -> Fraction | None:
    """Check the half-point rule; return the grade as an exact Fraction (None stays None)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, Fraction, Decimal)):
        raise EasiError(f"{what}: {value!r} is not a number; use 0, 1, 1.5, 2, 2.5 or 3")
    if isinstance(value, float) and not math.isfinite(value):
        raise EasiError(f"{what}: {value!r} is not a grade; use 0, 1, 1.5, 2, 2.5 or 3")
    exact = Fraction(value)
    if exact not in {Fraction(g) for g in VALID_GRADES}:
        hint = " (0.5 is not an EASI grade: use 0 or 1)" if exact == Fraction(1, 2) else ""
        raise EasiError(f"{what}: {value} is not allowed{hint}; use 0, 1, 1.5, 2, 2.5 or 3")
    return exact


def validate_area(percent: float | int | None, *, what: str = "area %") -> float | None:
    if percent is None:
        return None
    if isinstance(percent, bool) or not isinstance(percent, (int, float, Fraction, Decimal)):
        raise EasiError(f"{what}: {percent!r} is not a number; give a percentage 0-100")
    value = float(percent)
    if not math.isfinite(value) or not 0 <= value <= 100:
        raise EasiError(f"{what}: {percent} is outside 0-100 %")
    return value


def area_score(percent: float | int) -> int:
    """Area score 0-6 for the percentage of a region affected (see module docstring)."""
    value = validate_area(percent)
    assert value is not None
    if value == 0:
        return 0
    whole = int(Decimal(str(value)).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    for lower, score in _AREA_BANDS:
        if whole >= lower:
            return score
    return 1  # above 0 % but rounds to 0: still "under 10 %"


def weights_for_age(age: int | float) -> dict[Region, Fraction]:
    if isinstance(age, bool) or not isinstance(age, (int, float)) or not 0 <= age <= 130:
        raise EasiError(f"age: {age!r} is not an age in years (0-130)")
    return dict(ADULT_WEIGHTS if age >= ADULT_AGE else CHILD_WEIGHTS)


def round_display(value: Fraction | float) -> float:
    """Round half up to one decimal, as shown to staff (2.45 -> 2.5, never banker's 2.4)."""
    exact = Fraction(value)
    dec = Decimal(exact.numerator) / Decimal(exact.denominator)
    return float(dec.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


def easi_band(total: Fraction | float) -> Band:
    shown = Decimal(str(round_display(total)))
    if shown < 0 or shown > EASI_MAX:
        raise EasiError(f"EASI total {total} is outside 0-{EASI_MAX}")
    for upper, band in _BANDS:
        if shown <= upper:
            return band
    raise AssertionError("unreachable")  # pragma: no cover


@dataclass
class RegionRecord:
    """What one visit knows about one region. Erythema, excoriation and
    lichenification are the FINAL grades (the model's, or the staff override);
    papulation and area come from the clinician. None means "not yet entered"."""

    region: Region
    erythema: float | None = None
    excoriation: float | None = None
    lichenification: float | None = None
    papulation: float | None = None
    area_percent: float | None = None

    def grade(self, sign: Sign) -> float | None:
        return getattr(self, sign.value)

    def validated(self) -> dict[Sign, Fraction | None]:
        """Every sign's grade as a Fraction (None where missing); raises EasiError."""
        validate_area(self.area_percent, what=f"{self.region.label}: area %")
        return {s: validate_grade(self.grade(s), what=f"{self.region.label}: {s.value}")
                for s in EASI_SIGNS}


@dataclass(frozen=True)
class Missing:
    """One thing the visit still needs before EASI is complete."""

    region: Region | None
    field: str  # "age", "region" (not examined), "area_percent" or a Sign value

    def __str__(self) -> str:
        if self.region is None:
            return "patient age (birth year)"
        if self.field == "region":
            return f"{self.region.label}: not examined (scan it, or enter 0 % area)"
        if self.field == "area_percent":
            return f"{self.region.label}: area %"
        who = "scan or staff" if self.field in {s.value for s in MODEL_SIGNS} else "clinician"
        return f"{self.region.label}: {self.field} grade ({who})"


@dataclass(frozen=True)
class RegionScore:
    region: Region
    intensity: Fraction
    area_score: int
    weight: Fraction
    score: Fraction

    def to_dict(self) -> dict:
        return {"region": self.region.value, "intensity": float(self.intensity),
                "area_score": self.area_score, "weight": float(self.weight),
                "score": float(self.score), "score_display": round_display(self.score)}


@dataclass
class EasiResult:
    regions: dict[Region, RegionScore]  # only the complete regions
    missing: list[Missing] = field(default_factory=list)
    age: float | None = None
    child_weights: bool | None = None
    #: Sum over the complete regions (the full EASI when nothing is missing).
    partial_total: Fraction = Fraction(0)

    @property
    def complete(self) -> bool:
        return not self.missing

    @property
    def total_exact(self) -> Fraction | None:
        return self.partial_total if self.complete else None

    @property
    def total(self) -> float | None:
        return None if not self.complete else float(self.partial_total)

    @property
    def total_display(self) -> float | None:
        return None if not self.complete else round_display(self.partial_total)

    @property
    def band(self) -> Band | None:
        return None if not self.complete else easi_band(self.partial_total)

    def to_dict(self) -> dict:
        band = self.band
        return {
            "complete": self.complete, "total": self.total, "total_display": self.total_display,
            "band": band.value if band else None, "band_label": band.label if band else None,
            "partial_total": float(self.partial_total), "age": self.age,
            "child_weights": self.child_weights,
            "regions": {r.value: s.to_dict() for r, s in self.regions.items()},
            "missing": [str(m) for m in self.missing],
        }


def region_score(record: RegionRecord, weight: Fraction) -> tuple[RegionScore | None, list[Missing]]:
    grades = record.validated()
    missing: list[Missing] = []
    if record.area_percent is None:
        missing.append(Missing(record.region, "area_percent"))
    elif area_score(record.area_percent) == 0:
        return RegionScore(record.region, Fraction(0), 0, weight, Fraction(0)), []
    missing += [Missing(record.region, s.value) for s, g in grades.items() if g is None]
    if missing:
        return None, missing
    intensity = sum((g for g in grades.values() if g is not None), Fraction(0))
    area = area_score(record.area_percent)  # type: ignore[arg-type]
    return RegionScore(record.region, intensity, area, weight, weight * intensity * area), []


def compute_easi(records: Iterable[RegionRecord] | Mapping[Region, RegionRecord],
                 *, age: float | None) -> EasiResult:
    """EASI of one visit. Missing entries are listed, never guessed; a region given
    twice is an error (the store passes the latest scan of each region)."""
    items = list(records.values()) if isinstance(records, Mapping) else list(records)
    by_region: dict[Region, RegionRecord] = {}
    for rec in items:
        if rec.region in by_region:
            raise EasiError(f"{rec.region.label} given twice; pass one record per region")
        by_region[rec.region] = rec
    result = EasiResult(regions={}, age=age)
    if age is None:
        result.missing.append(Missing(None, "age"))
        weights = None
    else:
        weights = weights_for_age(age)
        result.child_weights = age < ADULT_AGE
    for region in REGIONS:
        rec = by_region.get(region)
        if rec is None:
            result.missing.append(Missing(region, "region"))
            continue
        score, missing = region_score(rec, weights[region] if weights else ADULT_WEIGHTS[region])
        result.missing += missing
        if score is not None and weights is not None:
            result.regions[region] = score
            result.partial_total += score.score
    return result
