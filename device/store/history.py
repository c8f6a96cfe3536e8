"""What the store computes from its records: EASI per visit, a patient's history,
and one visit as export data (CSV, JSON, FHIR are written from it by the web)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from device.core.easi import Band, EasiResult, RegionRecord, compute_easi
from device.core.vocab import MODEL_SIGNS, Region, Sign
from device.store.scans import ScanRecords
from device.store.schema import RegionScan, Visit, VisitRecord, VisitStatus

log = logging.getLogger(__name__)


#: The signs whose mean grade a patient's history follows (the model's three, papulation).
HISTORY_SIGNS: tuple[Sign, ...] = (*MODEL_SIGNS, Sign.PAPULATION)


@dataclass(frozen=True)
class VisitHistory:
    """One visit in a patient's history: EASI (None while incomplete), its band, what is
    missing, each sign's mean final grade over the regions scanned, and how many scans
    had their colour checked and corrected."""

    visit_id: int
    date: str
    status: VisitStatus
    easi: float | None
    easi_display: float | None
    band: Band | None
    complete: bool
    missing: tuple[str, ...]
    sign_means: dict[Sign, float | None]
    colour_checked: int = 0
    colour_corrected: int = 0

    def to_dict(self) -> dict[str, Any]:
        """One entry of ``history`` in ``GET /api/patients/<id>`` (device/web/API.md)."""
        return {"visit_id": self.visit_id, "date": self.date, "status": self.status.value,
                "easi": self.easi, "easi_display": self.easi_display,
                "band": self.band.value if self.band else None, "complete": self.complete,
                "missing": list(self.missing),
                "sign_means": {s.value: m for s, m in self.sign_means.items()},
                "colour_checked": self.colour_checked, "colour_corrected": self.colour_corrected}


class VisitScores(ScanRecords):
    def visit_age(self, visit: Visit) -> int | None:
        """Age in years from the birth year (pseudonymous: no birthday), at the visit."""
        birth = self.get_patient(visit.patient_id).birth_year
        return None if birth is None else max(0, int(visit.date[:4]) - birth)

    def visit_summary(self, visit_id: int) -> EasiResult:
        visit = self.get_visit(visit_id)
        return self._easi(visit, self.latest_scans(visit_id))

    def _easi(self, visit: Visit, latest: Mapping[Region, RegionScan]) -> EasiResult:
        records = [
            RegionRecord(region, papulation=s.papulation, area_percent=s.area_percent,
                         **{sign.value: s.final_grades.get(sign) for sign in MODEL_SIGNS})
            for region, s in latest.items()
        ]
        return compute_easi(records, age=self.visit_age(visit))

    def patient_history(self, patient_id: str) -> list[VisitHistory]:
        """Per visit, oldest first: EASI (None while incomplete) and each sign's mean
        final grade over the regions scanned."""
        history = []
        for visit in self.list_visits(patient_id):
            latest = self.latest_scans(visit.id)
            result = self._easi(visit, latest)
            means: dict[Sign, float | None] = {}
            for sign in HISTORY_SIGNS:
                vals = [s.papulation if sign is Sign.PAPULATION else s.final_grades.get(sign)
                        for s in latest.values()]
                vals = [v for v in vals if v is not None]
                means[sign] = round(sum(vals) / len(vals), 3) if vals else None
            history.append(VisitHistory(
                visit.id, visit.date, visit.status, result.total, result.total_display,
                result.band, result.complete, tuple(str(m) for m in result.missing), means,
                # scans whose colour step ran (schema 6), and how many it corrected
                colour_checked=sum(sc.colour is not None for sc in latest.values()),
                colour_corrected=sum(sc.colour_corrected for sc in latest.values())))
        return history

    def visit_record(self, visit_id: int) -> VisitRecord:
        """Everything about one visit, typed (the CSV and FHIR exports are built from it)."""
        visit = self.get_visit(visit_id)
        scans = self.list_scans(visit_id)
        latest = {s.region: s for s in scans}
        return VisitRecord(
            patient=self.get_patient(visit.patient_id), visit=visit, age=self.visit_age(visit),
            scans=scans, latest=latest, changes={s.id: self.grade_changes(s.id) for s in scans},
            easi=self._easi(visit, latest),
            lesions={i: self.get_lesion(i) for i in sorted({s.lesion_id for s in scans
                                                            if s.lesion_id is not None})})

    def export_visit(self, visit_id: int) -> dict[str, Any]:
        """Everything about one visit as JSON-safe data (the JSON export)."""
        return self.visit_record(visit_id).to_dict()
