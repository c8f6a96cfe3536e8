"""The JSON API parses its request bodies into pydantic models: every refusal is a 400
naming the field, and nothing changes."""

from __future__ import annotations

import pytest
from web_support import logged_in, make_app

from device.web.users import Role


@pytest.fixture
def api(tmp_path):
    app = make_app(tmp_path)
    client, token = logged_in(app, Role.STAFF)
    headers = {"X-CSRFToken": token}
    assert client.post("/api/patients", json={"patient_id": " P1 ", "birth_year": "1990"},
                       headers=headers).status_code == 201
    visit = client.post("/api/patients/P1/visits", headers=headers).get_json()
    scan = client.post(f"/api/visits/{visit['id']}/regions/trunk/clear", headers=headers)
    return client, headers, visit["id"], scan.get_json()["id"], app.config["TEST_STORE"]


@pytest.mark.parametrize("url,body,words", [
    ("/api/patients", {"patient_id": "P2", "birth_year": "1990.5"},
     "birth_year: '1990.5' is not a whole number"),
    ("/api/patients", {"patient_id": "P2", "birth_year": True}, "birth_year: True is not a number"),
    ("/api/visits/{visit}/status", {"status": "finished"}, "status: Input should be 'open' or 'closed'"),
    ("/api/scans/{scan}/review", {"erythema": "abc"}, "erythema: 'abc' is not a number"),
    ("/api/scans/{scan}/review", {"erytema": 2},
     "erytema: unknown field; use erythema, excoriation, lichenification, papulation, area_percent"),
    ("/api/scan", {"patient_id": "P1"}, "give both patient_id and region"),
    ("/api/patients", ["P2"], "the request body must be a JSON object"),
])
def test_bad_bodies_are_400_naming_the_field(api, url, body, words):
    client, headers, visit_id, scan_id, store = api
    before = (store.list_patients(), store.list_visits("P1"), store.list_scans(visit_id))
    resp = client.post(url.format(visit=visit_id, scan=scan_id), json=body, headers=headers)
    assert resp.status_code == 400, resp.get_json()
    assert words in resp.get_json()["error"]
    assert (store.list_patients(), store.list_visits("P1"), store.list_scans(visit_id)) == before


def test_good_bodies_as_json_and_as_form(api):
    client, headers, visit_id, scan_id, store = api
    assert store.get_patient("P1").birth_year == 1990  # " P1 " stripped, "1990" a number
    review = client.post(f"/api/scans/{scan_id}/review", data={"papulation": "1,5"},
                         headers=headers)
    assert review.status_code == 200 and review.get_json()["scan"]["papulation"] == 1.5
    closed = client.post(f"/api/visits/{visit_id}/status", json={"status": "closed"},
                         headers=headers)
    assert closed.status_code == 200 and closed.get_json()["status"] == "closed"
