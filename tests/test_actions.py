"""device.actions: what pages and API share, called directly (no Flask, typed errors)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from device import actions
from device.actions import Actor
from device.core.errors import InvalidInput, NotFound, http_status
from device.core.vocab import Region, Role, Sign
from device.store import Store

ANN = Actor("ann", Role.STAFF)


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path)
    yield s
    s.close()


def test_a_visit_from_patient_to_reviewed_scan(store):
    patient = actions.create_patient(store, " P1 ", "1990")
    assert patient.id == "P1" and patient.birth_year == 1990
    visit = store.open_visit("P1")
    scan = store.save_region_scan(visit.id, Region.TRUNK, grades={s: 1 for s in
                                                                  (Sign.ERYTHEMA, Sign.EXCORIATION,
                                                                   Sign.LICHENIFICATION)})
    entry = actions.ReviewEntry({Sign.ERYTHEMA: 2.5}, papulation=1, area_percent=30)
    done = actions.apply_review(store, scan.id, entry, ANN)
    assert done.final_grades[Sign.ERYTHEMA] == 2.5 and done.area_percent == 30
    assert done.reviewed.user == "ann" and done.overrides[Sign.ERYTHEMA].role == "staff"
    cleared = actions.clear_region(store, visit.id, "head_neck", ANN)
    assert cleared.area_percent == 0
    view = actions.visit_view(store, visit.id)
    assert set(view.latest) == {Region.TRUNK, Region.HEAD_NECK}
    assert view.summary_dict()["patient"]["id"] == "P1" and view.parts()["visit"] == view.visit
    closed = actions.set_visit_status(store, visit.id, "closed")
    assert closed.status.value == "closed"


@pytest.mark.parametrize("call,kind,status,words", [
    (lambda s: actions.create_patient(s, "P2", "nineteen"), InvalidInput, 400, "birth year"),
    (lambda s: actions.create_patient(s, "P2", "1990.5"), InvalidInput, 400, "whole number"),
    (lambda s: actions.visit_view(s, 99), NotFound, 404, "no visit 99"),
    (lambda s: actions.patient_view(s, "nobody"), NotFound, 404, "no patient"),
    (lambda s: actions.set_visit_status(s, 1, "finished"), InvalidInput, 400, "open or closed"),
    (lambda s: actions.clear_region(s, 1, "elbow", ANN), NotFound, 404, "elbow"),
])
def test_refusals_are_typed(store, call, kind, status, words):
    with pytest.raises(kind, match=words) as err:
        call(store)
    assert http_status(err.value) == status


def test_numbers_name_their_field():
    """A review's numbers go through ReviewBody (the API's and the form's): a decimal comma
    is read, an empty field is nothing, and a non-number is refused naming its field."""
    from pydantic import ValidationError

    from device.web.bodies import ReviewBody

    assert ReviewBody.model_validate({"erythema": " 1,5 ", "excoriation": ""}).entry() == \
        actions.ReviewEntry({Sign.ERYTHEMA: 1.5}, None, None)
    for bad in ("nan", "inf", True, "two"):
        with pytest.raises(ValidationError, match="erythema"):
            ReviewBody.model_validate({"erythema": bad})


def test_actions_import_no_flask():
    code = "import sys, device.actions; print('flask' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_review_body_becomes_a_typed_entry_once(store):
    """The API's and the form's ReviewBody hand actions a ReviewEntry (no dump and
    re-parse); a sign no model grades is refused, and the actor's Role is recorded."""
    from device.web.bodies import ReviewBody

    entry = ReviewBody.model_validate({"erythema": "2,5", "excoriation": "",
                                       "area_percent": 30}).entry()
    assert entry == actions.ReviewEntry({Sign.ERYTHEMA: 2.5}, None, 30.0)
    store.create_patient("P1", 1990)
    scan = store.save_region_scan(store.open_visit("P1").id, Region.TRUNK,
                                  grades={Sign.ERYTHEMA: 1})
    with pytest.raises(InvalidInput, match="papulation"):
        actions.apply_review(store, scan.id, actions.ReviewEntry({Sign.PAPULATION: 1}), ANN)
    done = actions.apply_review(store, scan.id, entry, Actor("bo", Role.ADMIN))
    assert done.overrides[Sign.ERYTHEMA].role == "admin" and done.reviewed.role == "admin"
