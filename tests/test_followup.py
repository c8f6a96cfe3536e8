"""Following a lesion: the store's lesions and their migration, registration with its
inlier check on synthetic follow-ups, the timeline's change marks, the grade chart and
the bench-followup command (small and fast: 320-480 px frames)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from store_support import drop_column, make_older, one_scan_store

from device.__main__ import main as device_main
from device.core.vocab import Region, Sign
from device.store import Store, StoreError
from device.store.schema import SCHEMA_VERSION
from device.store.timeline import lesion_timeline
from device.tools.visit_synth import render_followup
from device.vision.crop import iou
from device.vision.register import RegistrationStatus, register
from device.web.svg import grades_chart


@pytest.fixture(scope="module")
def series():
    return render_followup(5, 3, width=480, height=360)


def test_registration_finds_the_lesion_again(series):
    for k in (1, 2):
        reg = register(series[k - 1].frame, series[k - 1].box, series[k].frame)
        assert reg.ok, reg.message()
        assert reg.inliers >= 25 and iou(reg.box, series[k].box) >= 0.5
        assert "found the lesion" in reg.message()


def test_another_patients_skin_is_refused(series):
    stranger = render_followup(1234, 2, width=480, height=360)[1]
    reg = register(series[0].frame, series[0].box, stranger.frame)
    assert not reg.ok and reg.box is None
    assert reg.status in (RegistrationStatus.FEW_INLIERS, RegistrationStatus.FEW_MATCHES)
    assert "could not find the lesion" in reg.message()


def test_a_blank_photo_is_refused_for_lack_of_texture(series):
    blank = np.full_like(series[1].frame, 180)
    reg = register(series[0].frame, series[0].box, blank)
    assert reg.status is RegistrationStatus.FEW_FEATURES and not reg.ok


def test_a_mirrored_photo_is_no_camera_move(series):
    mirrored = np.ascontiguousarray(series[0].frame[:, ::-1])
    assert not register(series[0].frame, series[0].box, mirrored).ok


def test_visits_change_pose_and_severity(series):
    assert series[0].angle == 0 and series[0].scale == 1
    assert all(-20 <= p.angle <= 20 and 0.8 <= p.scale <= 1.25 for p in series)
    steps = np.diff([p.severity for p in series])
    assert (np.all(steps >= 0) or np.all(steps <= 0)) and steps[0] != 0  # improves or worsens
    for p in series:
        x, y, w, h = p.box
        assert x >= 0 and y >= 0 and x + w <= 480 and y + h <= 360


def _store_with_lesion(tmp_path):
    st = Store(tmp_path)
    st.create_patient("P1", 1990)
    st.create_patient("P2", 1990)
    return st


def test_a_lesion_belongs_to_its_patient(tmp_path):
    st = _store_with_lesion(tmp_path)
    visit = st.open_visit("P1")
    scan = st.save_region_scan(visit.id, Region.UPPER_LIMBS, grades={s: 1 for s in (
        Sign.ERYTHEMA, Sign.EXCORIATION, Sign.LICHENIFICATION)})
    lesion = st.start_lesion_from_scan(scan.id, "  left   antecubital fossa ")
    assert lesion.site == lesion.label == "left antecubital fossa"
    assert lesion.first_visit_id == visit.id and lesion.region is Region.UPPER_LIMBS
    assert st.get_scan(scan.id).lesion_id == lesion.id
    with pytest.raises(StoreError, match="already of lesion"):
        st.start_lesion_from_scan(scan.id, "elsewhere")
    other = st.open_visit("P2")
    with pytest.raises(StoreError, match="another patient"):
        st.save_region_scan(other.id, Region.TRUNK, lesion_id=lesion.id)
    with pytest.raises(StoreError, match="short text"):
        st.create_lesion("P1", Region.TRUNK, "   ")
    assert [x.id for x in st.list_lesions("P1")] == [lesion.id] and st.list_lesions("P2") == []


def test_timeline_marks_a_change_of_a_whole_grade(tmp_path):
    st = _store_with_lesion(tmp_path)
    lesion = st.create_lesion("P1", Region.TRUNK, "lower back", "back")
    grades = [{Sign.ERYTHEMA: 3, Sign.EXCORIATION: 1, Sign.LICHENIFICATION: 2},
              {Sign.ERYTHEMA: 2, Sign.EXCORIATION: 1, Sign.LICHENIFICATION: 2},
              {Sign.ERYTHEMA: 1, Sign.EXCORIATION: 2, Sign.LICHENIFICATION: 2}]
    for g in grades:
        visit = st.open_visit("P1")
        st.save_region_scan(visit.id, Region.TRUNK, grades=g, lesion_id=lesion.id)
        st.set_visit_status(visit.id, "closed")
    t = lesion_timeline(st, lesion.id)
    assert len(t.visits) == 3 and st.get_lesion(lesion.id).first_visit_id == t.visits[0].visit.id
    ery, exc, lic = t.changes()
    assert (ery.since_first, ery.since_last) == (-2, -1) and ery.marked(ery.since_first)
    assert exc.since_last == 1 and exc.marked(exc.since_last)
    assert lic.since_first == 0 and not lic.marked(lic.since_first)
    svg = grades_chart(t.labels(), [(s.value, v) for s, v in t.series().items()])
    assert str(svg).startswith("<svg") and str(svg).count("<path") == 3
    assert "erythema" in svg and "3 severe" in svg


def test_a_version_4_database_gains_lesions(tmp_path):
    old = one_scan_store(tmp_path)
    make_older(tmp_path, 4, "DROP INDEX region_scans_lesion", drop_column("lesion_id"),
               "DROP TABLE lesions")
    st = Store(tmp_path)
    assert st._conn().execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION >= 5
    assert st.get_scan(old.id).lesion_id is None
    lesion = st.create_lesion("P1", Region.TRUNK, "flank")
    assert st.set_scan_lesion(old.id, lesion.id).lesion_id == lesion.id
    st.close()


def test_bench_followup_command_writes_its_report(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert device_main(["bench-followup", "--n", "2", "--size", "320x240",
                        "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["followups"] == 4 and report["frame_size"] == [320, 240]
    for key in ("registered", "iou_registered", "iou_auto", "wrong_accepted"):
        assert 0.0 <= report[key] <= 1.0
    assert report["register_ms_median"] > 0 and "no model pack" in report["rest_of_scan"]
    assert "iou_registered" in capsys.readouterr().out


class _Scanner:
    """Records the crop it was asked for; grades nothing (scan_lesion only passes it on)."""

    def __init__(self) -> None:
        self.calls: list[dict] = []

    def scan(self, **kw):
        from types import SimpleNamespace

        self.calls.append(kw)
        return SimpleNamespace(timings_ms={})


def test_scan_lesion_proposes_the_registered_crop_or_says_why_not(tmp_path, series):
    from device.followup import scan_lesion
    from device.scan.recrop import FrameCache
    from device.store import Capture

    st = _store_with_lesion(tmp_path)
    lesion = st.create_lesion("P1", Region.UPPER_LIMBS, "forearm")
    scanner, cache = _Scanner(), FrameCache()
    first = scan_lesion(scanner, st, cache, lesion, 1, series[0].frame)
    assert first.registration is None and "first photo" in first.note
    visit = st.open_visit("P1")
    st.save_region_scan(visit.id, Region.UPPER_LIMBS, lesion_id=lesion.id,
                        capture=Capture(frame=series[0].frame, box=series[0].box))
    st.set_visit_status(visit.id, "closed")
    done = scan_lesion(scanner, st, cache, lesion, visit.id + 1, series[1].frame)
    assert done.registration.ok and done.crop_origin.value == "registered"
    assert scanner.calls[-1]["box"] == done.registration.box
    assert iou(done.registration.box, series[1].box) >= 0.5
    stranger = render_followup(77, 2, width=480, height=360)[1].frame
    refused = scan_lesion(scanner, st, cache, lesion, visit.id + 1, stranger)
    assert refused.warn and refused.crop_origin is None and "auto crop" in refused.note
    assert "box" not in scanner.calls[-1] and scanner.calls[-1]["mode"].value == "auto"
