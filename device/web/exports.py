"""A visit as CSV: one row per examined region (the scan EASI uses), then a total row.

Columns give each model sign's model grade, final grade and who overrode it, the
clinician's papulation and area, and the region's EASI parts.
"""

from __future__ import annotations

import csv
import io
import logging
from typing import Any

from device.core.vocab import MODEL_SIGNS, Region
from device.store.schema import VisitRecord

log = logging.getLogger(__name__)


def _columns() -> list[str]:
    cols = ["patient_id", "birth_year", "visit_id", "visit_date", "visit_status", "region",
            "scan_id", "taken_at", "pack_version", "review", "lesion_id", "lesion_site",
            "lesion_label"]
    for sign in MODEL_SIGNS:
        cols += [f"{sign.value}_model", f"{sign.value}", f"{sign.value}_override_by",
                 f"{sign.value}_override_at"]
    cols += ["papulation", "area_percent", "area_score", "intensity", "weight", "region_score",
             "easi_total", "easi_band", "missing"]
    return cols


def _region_row(record: VisitRecord, region: Region, base: dict[str, Any]) -> dict[str, Any]:
    scan = record.latest.get(region)
    row: dict[str, Any] = {**base, "region": region.value}
    if scan is None:
        row["missing"] = "not examined"
        return row
    row.update(scan_id=scan.id, taken_at=scan.taken_at, pack_version=scan.pack_version,
               review=int(bool(scan.review)), papulation=scan.papulation,
               area_percent=scan.area_percent)
    lesion = record.lesion_of(scan)
    if lesion is not None:
        row.update(lesion_id=lesion.id, lesion_site=lesion.site, lesion_label=lesion.label)
    for sign in MODEL_SIGNS:
        over = scan.overrides.get(sign)
        row[f"{sign.value}_model"] = scan.model_grades.get(sign)
        row[sign.value] = scan.final_grades.get(sign)
        row[f"{sign.value}_override_by"] = over.user if over else None
        row[f"{sign.value}_override_at"] = over.at if over else None
    part = record.easi.regions.get(region)
    if part is not None:
        row.update(area_score=part.area_score, intensity=float(part.intensity),
                   weight=float(part.weight), region_score=float(part.score))
    else:
        row["missing"] = "; ".join(record.missing_for(region))
    return row


def visit_csv(record: VisitRecord) -> str:
    """CSV text for one visit (``Store.visit_record``)."""
    patient, visit, easi = record.patient, record.visit, record.easi
    base = {"patient_id": patient.id, "birth_year": patient.birth_year,
            "visit_id": visit.id, "visit_date": visit.date, "visit_status": visit.status.value}
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=_columns(), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for region in Region:
        writer.writerow(_region_row(record, region, base))
    band = easi.band
    writer.writerow({**base, "region": "total", "easi_total": easi.total,
                     "easi_band": band.value if band else None,
                     "missing": "; ".join(str(m) for m in easi.missing)})
    return out.getvalue()
