"""A visit as CSV: one row per examined region (the scan EASI uses), then a total row.

Columns give each model sign's model grade, final grade and who overrode it, the
clinician's papulation and area, and the region's EASI parts.
"""

from __future__ import annotations

import csv
import io
import logging
from typing import Any

from device.vocab import MODEL_SIGNS, Region

log = logging.getLogger(__name__)


def _columns() -> list[str]:
    cols = ["patient_id", "birth_year", "visit_id", "visit_date", "visit_status", "region",
            "scan_id", "taken_at", "pack_version", "review"]
    for sign in MODEL_SIGNS:
        cols += [f"{sign.value}_model", f"{sign.value}", f"{sign.value}_override_by",
                 f"{sign.value}_override_at"]
    cols += ["papulation", "area_percent", "area_score", "intensity", "weight", "region_score",
             "easi_total", "easi_band", "missing"]
    return cols


def visit_csv(export: dict[str, Any]) -> str:
    """CSV text for ``Store.export_visit`` output."""
    patient, visit, easi = export["patient"], export["visit"], export["easi"]
    base = {"patient_id": patient["id"], "birth_year": patient.get("birth_year"),
            "visit_id": visit["id"], "visit_date": visit["date"], "visit_status": visit["status"]}
    used = {s["region"]: s for s in export["scans"] if s.get("used_for_easi")}
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=_columns(), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for region in Region:
        scan = used.get(region.value)
        row: dict[str, Any] = {**base, "region": region.value}
        if scan is None:
            row["missing"] = "not examined"
            writer.writerow(row)
            continue
        row.update(scan_id=scan["id"], taken_at=scan["taken_at"],
                   pack_version=scan.get("pack_version"), review=int(bool(scan.get("review"))),
                   papulation=scan.get("papulation"), area_percent=scan.get("area_percent"))
        for sign in MODEL_SIGNS:
            over = scan.get("overrides", {}).get(sign.value) or {}
            row[f"{sign.value}_model"] = scan["model_grades"].get(sign.value)
            row[sign.value] = scan["final_grades"].get(sign.value)
            row[f"{sign.value}_override_by"] = over.get("user")
            row[f"{sign.value}_override_at"] = over.get("at")
        part = easi["regions"].get(region.value)
        if part:
            row.update(area_score=part["area_score"], intensity=part["intensity"],
                       weight=part["weight"], region_score=part["score"])
        else:
            row["missing"] = "; ".join(m for m in easi["missing"] if m.startswith(region.label))
        writer.writerow(row)
    writer.writerow({**base, "region": "total", "easi_total": easi["total"],
                     "easi_band": easi["band"], "missing": "; ".join(easi["missing"])})
    return out.getvalue()
