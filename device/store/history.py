"""What the store computes from its records: EASI per visit, a patient's history,
and one visit as export data (CSV, JSON, FHIR are written from it by the web)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from device.core.easi import EasiResult, RegionRecord, compute_easi
from device.core.vocab import MODEL_SIGNS, Region, Sign
from device.store.model import RegionScan, Visit, VisitRecord
from device.store.scans import ScanRecords

log = logging.getLogger(__name__)


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

    def patient_history(self, patient_id: str) -> list[dict[str, Any]]:
        """Per visit, oldest first: EASI (None while incomplete) and each sign's mean
        final grade over the regions scanned."""
        history = []
        for visit in self.list_visits(patient_id):
            latest = self.latest_scans(visit.id)
            result = self._easi(visit, latest)
            means: dict[str, float | None] = {}
            for sign in (*MODEL_SIGNS, Sign.PAPULATION):
                vals = [s.papulation if sign is Sign.PAPULATION else s.final_grades.get(sign)
                        for s in latest.values()]
                vals = [v for v in vals if v is not None]
                means[sign.value] = round(sum(vals) / len(vals), 3) if vals else None
            band = result.band
            history.append({"visit_id": visit.id, "date": visit.date, "status": visit.status.value,
                            "easi": result.total, "easi_display": result.total_display,
                            "band": band.value if band else None, "complete": result.complete,
                            "missing": [str(m) for m in result.missing], "sign_means": means,
                            # scans whose colour step ran (schema 5), and how many it corrected
                            "colour_checked": sum(sc.colour is not None for sc in latest.values()),
                            "colour_corrected": sum(sc.colour_corrected for sc in latest.values())})
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
