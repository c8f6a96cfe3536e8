"""A scan's result as a record: what the pipeline decided (``ScanResult.record()``), what
the store keeps beside the scan's row (``RegionScan.result``) and what the JSON API
answers (``Scan.to_dict``), one typed value from end to end.

The pipeline's ``device.scan.pipeline.ScanResult`` holds the live objects (the frame,
the crop, the faces, the abstention's statistics); ``Scan`` holds their values, rounded
as shown, so ``Scan.from_dict(scan.to_dict()) == scan`` and a page drawn after a
restart shows what it showed before. The JSON shape is documented in device/web/API.md
(``result`` of ``POST /api/scan``, ``details`` of ``GET /api/scans/<id>``).

Colour and abstention keep their own JSON form here (``ColourCorrection.to_dict``,
``Abstention.to_dict``): their types live in layers above this one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from device.core.vocab import CropDoubt, CropMode, Grade, Sign

Box = tuple[int, int, int, int]  # x, y, w, h in frame pixels


@dataclass(frozen=True)
class SignGrade:
    """One sign's model grade, its four probabilities and why it needs review."""

    grade: Grade
    probs: tuple[float, ...]
    review: bool
    review_reasons: tuple[str, ...] = ()
    invoke_ms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"grade": int(self.grade), "label": self.grade.label, "probs": list(self.probs),
                "review": self.review, "review_reasons": list(self.review_reasons),
                "invoke_ms": self.invoke_ms}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SignGrade:
        return cls(Grade(data["grade"]), tuple(data["probs"]), bool(data["review"]),
                   tuple(data.get("review_reasons", ())), float(data.get("invoke_ms", 0.0)))


@dataclass(frozen=True)
class CropChoice:
    """The square the models graded, the mode that chose it and the mode asked for; an
    auto crop that found no lesion falls back to the guide square and says why."""

    box: Box
    mode: CropMode
    requested: CropMode
    fallback: bool = False
    reason: str = ""
    score: float | None = None
    doubt: CropDoubt | None = None  # why an auto crop was unsure (with fallback)

    def to_dict(self) -> dict[str, Any]:
        return {"box": list(self.box), "mode": self.mode.value,
                "requested": self.requested.value, "fallback": self.fallback,
                "reason": self.reason, "score": self.score,
                "doubt": None if self.doubt is None else self.doubt.value}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CropChoice:
        x, y, w, h = (int(v) for v in data["box"])
        return cls((x, y, w, h), CropMode(data["mode"]), CropMode(data["requested"]),
                   bool(data.get("fallback", False)), str(data.get("reason", "")),
                   data.get("score"), CropDoubt(data["doubt"]) if data.get("doubt") else None)


@dataclass(frozen=True)
class QualityVerdict:
    """The photo check: passed or not, the reasons to retake, the issue codes
    (device.vision.quality.QualityIssue values) and the measures."""

    ok: bool
    reasons: tuple[str, ...] = ()
    issues: tuple[str, ...] = ()
    measures: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "reasons": list(self.reasons), "issues": list(self.issues),
                "measures": dict(self.measures)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QualityVerdict:
        return cls(bool(data["ok"]), tuple(data.get("reasons", ())),
                   tuple(data.get("issues", ())), dict(data.get("measures", {})))


@dataclass(frozen=True)
class Scan:
    """One scan's result. ``grades`` is empty when the photo was refused or the models
    abstained (``abstained``; then staff grade)."""

    quality: QualityVerdict
    crop: CropChoice | None
    grades: dict[Sign, SignGrade]
    timings_ms: dict[str, float]
    pack_version: str | None
    software_version: str
    created: str
    image_size: tuple[int, int]
    abstained: bool = False
    abstention_score: float | None = None
    abstention: dict[str, Any] | None = None  # device.grading.abstain.Abstention.to_dict
    colour: dict[str, Any] | None = None  # device.colour.record.ColourCorrection.to_dict

    @property
    def graded(self) -> bool:
        return bool(self.grades)

    @property
    def review(self) -> bool:
        return any(g.review for g in self.grades.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.quality.ok and self.graded,
            "graded": self.graded,
            "abstained": self.abstained,
            "abstention_score": self.abstention_score,
            "abstention": self.abstention,
            "review": self.review,
            "pack_version": self.pack_version,
            "software_version": self.software_version,
            "created": self.created,
            "image_size": list(self.image_size),
            "quality": self.quality.to_dict(),
            "crop": self.crop.to_dict() if self.crop else None,
            "colour": self.colour,
            "grades": {sign.value: g.to_dict() for sign, g in self.grades.items()},
            "timings_ms": dict(self.timings_ms),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Scan:
        first, second = (int(v) for v in data["image_size"])
        return cls(
            quality=QualityVerdict.from_dict(data["quality"]),
            crop=CropChoice.from_dict(data["crop"]) if data.get("crop") else None,
            grades={Sign(k): SignGrade.from_dict(v) for k, v in data.get("grades", {}).items()},
            timings_ms={k: float(v) for k, v in data.get("timings_ms", {}).items()},
            pack_version=data.get("pack_version"),
            software_version=str(data.get("software_version", "")),
            created=str(data["created"]), image_size=(first, second),
            abstained=bool(data.get("abstained", False)),
            abstention_score=data.get("abstention_score"),
            abstention=data.get("abstention"), colour=data.get("colour"))
