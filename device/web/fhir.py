"""A visit as a FHIR R4 Bundle (type ``collection``) of Observations.

Contents: one pseudonymous Patient (identifier and birth year only), one
Observation for the EASI total (``hasMember`` pointing at the region parts) and
one Observation per examined region whose value is the region's weighted score
and whose components are the four sign grades, the area % and the area score.
A region scanned as a followed lesion names the lesion's site in ``bodySite`` and
points (``focus``) at a BodyStructure with the lesion's id, the same at every visit.

EASI has no LOINC code we could cite with confidence, so the codes are from a
local code system (``CODE_SYSTEM``) with readable ``text``; a receiving system
maps them. Built from the typed ``Store.visit_record`` only, so it needs no store.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from device.core.vocab import Region, Sign
from device.store.schema import Lesion, RegionScan, VisitRecord, VisitStatus

log = logging.getLogger(__name__)

CODE_SYSTEM = "urn:atopiscan:fhir:codes"
PATIENT_SYSTEM = "urn:atopiscan:patient-id"
LESION_SYSTEM = "urn:atopiscan:lesion-id"
UCUM = "http://unitsofmeasure.org"
_NS = uuid.UUID("5a0f3c1e-8d7b-4c55-9b7e-0a7f1e3c2d11")
_SIGN_ORDER = (Sign.ERYTHEMA, Sign.PAPULATION, Sign.EXCORIATION, Sign.LICHENIFICATION)


def _urn(*parts: Any) -> str:
    """A stable urn:uuid for one resource of one visit (the same export gives the same ids)."""
    return f"urn:uuid:{uuid.uuid5(_NS, '/'.join(str(p) for p in parts))}"


def _code(code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": CODE_SYSTEM, "code": code, "display": display}], "text": display}


def _score(value: float) -> dict[str, Any]:
    return {"value": round(float(value), 2), "unit": "score", "system": UCUM, "code": "{score}"}


def _component(code: str, display: str, value: float | None, *, unit: str = "score",
               ucum: str = "{score}") -> dict[str, Any]:
    comp: dict[str, Any] = {"code": _code(code, display)}
    if value is None:
        comp["dataAbsentReason"] = {"text": "not entered"}
    else:
        comp["valueQuantity"] = {"value": float(value), "unit": unit, "system": UCUM, "code": ucum}
    return comp


def _region_observation(record: VisitRecord, region: Region, scan: RegionScan, status: str,
                        subject: dict[str, Any]) -> dict[str, Any]:
    comps = [
        _component(sign.value, sign.value.capitalize(),
                   scan.papulation if sign is Sign.PAPULATION else scan.final_grades.get(sign))
        for sign in _SIGN_ORDER
    ]
    comps.append(_component("area-percent", "Area affected", scan.area_percent,
                            unit="%", ucum="%"))
    obs: dict[str, Any] = {
        "resourceType": "Observation",
        "status": status,
        "code": _code(f"easi-region-{region.value}", f"EASI region score: {region.label}"),
        "subject": subject,
        "effectiveDateTime": record.visit.date,
        "bodySite": {"text": region.label},
        "component": comps,
    }
    lesion = record.lesion_of(scan)
    if lesion is not None:  # the followed lesion: its site, and the BodyStructure it is
        obs["bodySite"] = {"text": f"{region.label}: {lesion.site}"}
        obs["focus"] = [{"reference": _urn("lesion", lesion.id), "display": lesion.label}]
    part = record.easi.regions.get(region)
    if part is not None:
        obs["valueQuantity"] = _score(float(part.score))
        obs["component"].append(_component("area-score", "Area score (0-6)", part.area_score))
        obs["component"].append(_component("intensity", "Intensity (sum of 4 signs)",
                                           float(part.intensity)))
    else:
        why = "; ".join(record.missing_for(region))
        obs["dataAbsentReason"] = {"text": f"region incomplete: {why or 'see the visit'}"}
    return obs


def _body_structure(lesion: Lesion, subject: dict[str, Any]) -> dict[str, Any]:
    """A followed lesion as a FHIR BodyStructure: the same identifier visit after visit."""
    return {"resourceType": "BodyStructure",
            "identifier": [{"system": LESION_SYSTEM, "value": str(lesion.id)}],
            "description": lesion.label, "patient": subject,
            "location": {"text": lesion.region.label},
            "locationQualifier": [{"text": lesion.site}]}


def visit_bundle(record: VisitRecord) -> dict[str, Any]:
    """The FHIR R4 Bundle (a JSON-safe dict) of one visit (``Store.visit_record``)."""
    visit, patient, easi = record.visit, record.patient, record.easi
    patient_url = _urn("patient", patient.id)
    subject = {"reference": patient_url}
    status = "final" if visit.status is VisitStatus.CLOSED and easi.complete else "preliminary"
    patient_res: dict[str, Any] = {
        "resourceType": "Patient",
        "identifier": [{"system": PATIENT_SYSTEM, "value": patient.id}],
    }
    if patient.birth_year:
        patient_res["birthDate"] = f"{int(patient.birth_year):04d}"
    entries = [{"fullUrl": patient_url, "resource": patient_res}]
    members = []
    for region in Region:
        scan = record.latest.get(region)
        if scan is None:
            continue
        url = _urn("visit", visit.id, "region", region.value)
        members.append({"reference": url, "display": region.label})
        entries.append({"fullUrl": url,
                        "resource": _region_observation(record, region, scan, status, subject)})
    total: dict[str, Any] = {
        "resourceType": "Observation",
        "status": status,
        "code": _code("easi-total", "Eczema Area and Severity Index (EASI) total"),
        "subject": subject,
        "effectiveDateTime": visit.date,
        "note": [{"text": "Grades of erythema, excoriation and lichenification are proposed by "
                          "an on-device model and confirmed or overridden by staff; papulation and "
                          "area are entered by the clinician."}],
    }
    if easi.complete and easi.total is not None and easi.band is not None:
        total["valueQuantity"] = _score(easi.total)
        total["interpretation"] = [{"text": easi.band.label}]
    else:
        total["dataAbsentReason"] = {
            "text": "visit incomplete: " + "; ".join(str(m) for m in easi.missing)}
    if members:
        total["hasMember"] = members
    for lesion in record.lesions.values():
        entries.append({"fullUrl": _urn("lesion", lesion.id), "resource": _body_structure(
            lesion, subject)})
    entries.insert(1, {"fullUrl": _urn("visit", visit.id, "total"), "resource": total})
    return {
        "resourceType": "Bundle",
        "id": str(uuid.uuid5(_NS, f"bundle/{visit.id}/{visit.updated}")),
        "type": "collection",
        "timestamp": visit.updated,
        "entry": entries,
    }
