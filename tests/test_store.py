"""The scan store: API, EASI through the store, retention, threads, and kill -9 mid-save."""

import datetime as dt
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from store_support import make_older

from device.core.easi import Band
from device.core.vocab import REGIONS, Region, Sign
from device.store import DB_NAME, Store
from device.store.schema import StoreError, VisitStatus

T0 = dt.datetime(2026, 3, 10, 9, 0, tzinfo=dt.timezone.utc)
GRADES = {Sign.ERYTHEMA: 2, Sign.EXCORIATION: 1, Sign.LICHENIFICATION: 0}
PROBS = {Sign.ERYTHEMA: [0.05, 0.1, 0.8, 0.05], Sign.EXCORIATION: [0.1, 0.7, 0.1, 0.1],
         Sign.LICHENIFICATION: [0.9, 0.05, 0.03, 0.02]}


class Clock:
    def __init__(self, now=T0):
        self.now = now

    def __call__(self):
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def store(tmp_path, clock):
    s = Store(tmp_path / "data", clock=clock, retention_days=30)
    yield s
    s.close()


def image(seed=0):
    return np.random.default_rng(seed).integers(0, 256, (48, 64, 3), dtype=np.uint8)


def test_wal_mode_and_patients(store):
    mode = sqlite3.connect(store.db_path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    store.create_patient("P-002", 1990)
    store.create_patient("P-001", None)
    assert [p.id for p in store.list_patients()] == ["P-001", "P-002"]
    assert [p.id for p in store.list_patients("002")] == ["P-002"]
    assert store.list_patients("_") == []  # LIKE wildcards are escaped
    assert store.get_patient("P-002").birth_year == 1990
    with pytest.raises(StoreError, match="already exists"):
        store.create_patient("P-001", 1990)
    with pytest.raises(StoreError, match="pseudonym"):
        store.create_patient("Jane Doe", 1990)
    with pytest.raises(StoreError, match="birth year 2030"):
        store.create_patient("P-3", 2030)
    with pytest.raises(StoreError, match="no patient"):
        store.get_patient("nobody")
    with pytest.raises(StoreError, match="no patient"):
        store.list_visits("nobody")


def test_one_open_visit_per_day(store, clock):
    store.create_patient("P1", 1980)
    v1 = store.open_visit("P1")
    assert store.open_visit("P1").id == v1.id and v1.date == "2026-03-10"
    v2 = store.open_visit("P1", dt.date(2026, 4, 1))
    assert v2.id != v1.id
    store.set_visit_status(v1.id, VisitStatus.CLOSED)
    v3 = store.open_visit("P1")
    assert v3.id not in (v1.id, v2.id) and v3.status is VisitStatus.OPEN
    with pytest.raises(StoreError, match="already has an open visit"):
        store.set_visit_status(v1.id, VisitStatus.OPEN)
    with pytest.raises(StoreError, match="closed; reopen"):
        store.save_region_scan(v1.id, Region.TRUNK, grades=GRADES)
    assert [v.id for v in store.list_visits("P1")] == [v1.id, v3.id, v2.id]


def test_save_scan_with_image(store):
    store.create_patient("P1", 1980)
    visit = store.open_visit("P1")
    scan = store.save_region_scan(visit.id, Region.TRUNK, grades=GRADES, probs=PROBS, review=True,
                                  pack_version="2026.1", image=image())
    assert scan.model_grades[Sign.ERYTHEMA] == 2 and scan.final_grades[Sign.ERYTHEMA] == 2.0
    assert scan.probs[Sign.EXCORIATION] == pytest.approx(PROBS[Sign.EXCORIATION])
    assert scan.review and scan.pack_version == "2026.1" and scan.overrides == {}
    path = store.image_file(scan)
    assert path is not None and path.suffix == ".png"  # the graded crop is kept lossless
    assert np.array_equal(cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB), image())
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    with pytest.raises(StoreError, match="not 0-3"):
        store.save_region_scan(visit.id, Region.TRUNK, grades={Sign.ERYTHEMA: 4})
    with pytest.raises(StoreError, match="set_clinician_entries"):
        store.save_region_scan(visit.id, Region.TRUNK, grades={Sign.PAPULATION: 1})


def test_keep_images_off_writes_no_file(tmp_path):
    store = Store(tmp_path, keep_images=False)
    store.create_patient("P1", 1980)
    scan = store.save_region_scan(store.open_visit("P1").id, Region.TRUNK, grades=GRADES, image=image())
    assert scan.image_path is None and not (tmp_path / "images").exists()


def test_override_and_clinician_entries_are_recorded(store, clock):
    store.create_patient("P1", 1980)
    scan = store.save_region_scan(store.open_visit("P1").id, Region.TRUNK, grades=GRADES)
    clock.now = T0 + dt.timedelta(minutes=5)
    scan = store.override_grade(scan.id, Sign.ERYTHEMA, 2.5, "nurse.kim")
    assert scan.final_grades[Sign.ERYTHEMA] == 2.5 and scan.model_grades[Sign.ERYTHEMA] == 2
    assert scan.overrides[Sign.ERYTHEMA].user == "nurse.kim"
    assert scan.overrides[Sign.ERYTHEMA].at == "2026-03-10T09:05:00+00:00"
    with pytest.raises(Exception, match="0.5 is not an EASI grade"):
        store.override_grade(scan.id, Sign.EXCORIATION, 0.5, "nurse.kim")
    with pytest.raises(StoreError, match="user"):
        store.override_grade(scan.id, Sign.EXCORIATION, 1, "")
    scan = store.set_clinician_entries(scan.id, papulation=1.5, area_percent=35, user="dr.lee")
    assert (scan.papulation, scan.area_percent, scan.clinician_by) == (1.5, 35.0, "dr.lee")
    with pytest.raises(Exception, match="outside 0-100"):
        store.set_clinician_entries(scan.id, area_percent=120, user="dr.lee")
    changes = store.grade_changes(scan.id)
    assert [(c["field"], c["old"], c["new"], c["user"]) for c in changes] == [
        ("erythema", 2.0, 2.5, "nurse.kim"), ("papulation", None, 1.5, "dr.lee"),
        ("area_percent", None, 35.0, "dr.lee")]


def _full_visit(store, visit_id):
    """Child (age 6 in 2026): head 0 %, upper E1 P1 X1 L1 @5 %, trunk E2 P1.5 X1 L0 @35 %,
    lower E3 P2 X2 L2 @75 %. EASI = 0 + 0.2*4*1 + 0.3*4.5*3 + 0.3*9*5 = 0.8 + 4.05 + 13.5 = 18.35"""
    entries = {Region.UPPER_LIMBS: ((1, 1, 1), 1, 5), Region.TRUNK: ((2, 1, 0), 1.5, 35),
               Region.LOWER_LIMBS: ((3, 2, 2), 2, 75)}
    head = store.save_region_scan(visit_id, Region.HEAD_NECK)
    store.set_clinician_entries(head.id, area_percent=0, user="dr")
    for region, ((e, x, li), pap, area) in entries.items():
        scan = store.save_region_scan(visit_id, region, grades={
            Sign.ERYTHEMA: e, Sign.EXCORIATION: x, Sign.LICHENIFICATION: li})
        store.set_clinician_entries(scan.id, papulation=pap, area_percent=area, user="dr")


def test_visit_summary_child_by_hand(store):
    store.create_patient("C1", 2020)
    visit = store.open_visit("C1")
    partial = store.visit_summary(visit.id)
    assert not partial.complete and len(partial.missing) == 4
    _full_visit(store, visit.id)
    result = store.visit_summary(visit.id)
    assert result.complete and result.child_weights
    assert float(result.total_exact) == pytest.approx(18.35)
    assert result.total_display == 18.4 and result.band is Band.MODERATE


def test_retake_keeps_clinician_entries_and_latest_scan_counts(store, clock):
    store.create_patient("C1", 2020)
    visit = store.open_visit("C1")
    _full_visit(store, visit.id)
    clock.now = T0 + dt.timedelta(minutes=1)
    retake = store.save_region_scan(visit.id, Region.TRUNK, grades={
        Sign.ERYTHEMA: 3, Sign.EXCORIATION: 1, Sign.LICHENIFICATION: 0})
    assert (retake.papulation, retake.area_percent) == (1.5, 35.0)
    # trunk intensity 4.5 -> 5.5: + 0.3 * 1 * 3 = +0.9
    assert float(store.visit_summary(visit.id).total_exact) == pytest.approx(19.25)
    export = store.export_visit(visit.id)
    assert json.loads(json.dumps(export))["easi"]["total"] == pytest.approx(19.25)
    used = [s["id"] for s in export["scans"] if s["used_for_easi"]]
    assert retake.id in used and len(used) == 4 and len(export["scans"]) == 5


def test_patient_history(store, clock):
    store.create_patient("C1", 2020)
    v1 = store.open_visit("C1", dt.date(2026, 3, 1))
    _full_visit(store, v1.id)
    v2 = store.open_visit("C1", dt.date(2026, 3, 10))
    store.save_region_scan(v2.id, Region.TRUNK, grades=GRADES)
    history = store.patient_history("C1")
    assert [h.visit_id for h in history] == [v1.id, v2.id]
    assert history[0].easi == pytest.approx(18.35) and history[0].band is Band.MODERATE
    assert history[1].easi is None and not history[1].complete and history[1].missing
    # erythema over the three scanned-with-model regions of visit 1: (1 + 2 + 3) / 3
    assert history[0].sign_means[Sign.ERYTHEMA] == pytest.approx(2.0)
    assert history[0].sign_means[Sign.PAPULATION] == pytest.approx(1.5)
    assert history[1].to_dict()["sign_means"] == {"erythema": 2.0, "excoriation": 1.0,
                                                  "lichenification": 0.0, "papulation": None}
    assert history[0].to_dict()["band"] == "moderate" and history[0].to_dict()["status"] == "open"


def test_purge_expired(store, clock):
    store.create_patient("P1", 1980)
    visit = store.open_visit("P1")
    old = store.save_region_scan(visit.id, Region.TRUNK, grades=GRADES, image=image(1))
    clock.now = T0 + dt.timedelta(days=20)
    new = store.save_region_scan(visit.id, Region.HEAD_NECK, grades=GRADES, image=image(2))
    orphan = store.images_dir / "99" / "orphan.jpg"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"x")
    old_file, new_file = store.image_file(old), store.image_file(new)
    now = T0 + dt.timedelta(days=31)
    os.utime(orphan, (now.timestamp() - 7200,) * 2)
    assert store.purge_expired(now) == 2  # the expired image and the orphan
    assert not old_file.exists() and not orphan.exists() and new_file.exists()
    assert store.get_scan(old.id).image_path is None
    assert store.get_scan(new.id).image_path is not None
    assert store.purge_expired(now) == 0


def test_newer_database_is_refused(tmp_path):
    Store(tmp_path).close()
    make_older(tmp_path, 99)  # or rather newer: a version this software does not know
    with pytest.raises(StoreError, match="newer atopiscan software"):
        Store(tmp_path)


def test_threads_share_a_store(store):
    store.create_patient("P1", 1980)
    visit = store.open_visit("P1")
    errors = []

    def work(k):
        try:
            for _ in range(10):
                scan = store.save_region_scan(visit.id, REGIONS[k], grades=GRADES)
                store.override_grade(scan.id, Sign.ERYTHEMA, 3, f"user{k}")
                store.visit_summary(visit.id)
        except Exception as exc:  # noqa: BLE001 - collected for the assert
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    scans = store.list_scans(visit.id)
    assert len(scans) == 40 and all(s.final_grades[Sign.ERYTHEMA] == 3 for s in scans)


KILLER = textwrap.dedent("""
    import sys, time
    import numpy as np
    import device.store as st
    import device.store.db as store_db
    from device.core.vocab import Region, Sign

    def hook(what):
        print("MID", what, flush=True)
        time.sleep(60)

    s = st.Store(sys.argv[1])
    store_db._mid_save_hook = hook
    if sys.argv[2] == "save":
        s.save_region_scan(int(sys.argv[3]), Region.TRUNK, grades={Sign.ERYTHEMA: 3},
                           image=np.zeros((16, 16, 3), np.uint8))
    else:
        s.override_grade(int(sys.argv[3]), Sign.ERYTHEMA, 3, "killed")
    print("DONE", flush=True)
""")


def _snapshot(data_dir: Path):
    conn = sqlite3.connect(data_dir / DB_NAME)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    tables = ("patients", "visits", "region_scans", "grade_changes")
    state = {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in tables}
    conn.close()
    return state


@pytest.mark.parametrize("op", ["save", "override"])
def test_kill_9_mid_save_leaves_previous_state(tmp_path, op):
    data = tmp_path / "data"
    store = Store(data)
    store.create_patient("P1", 1980)
    visit = store.open_visit("P1")
    scan = store.save_region_scan(visit.id, Region.TRUNK, grades=GRADES, image=image())
    store.close()
    before = _snapshot(data)
    target = visit.id if op == "save" else scan.id
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-c", KILLER, str(data), op, str(target)],
                            stdout=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert line.startswith("MID"), line
        # The writer holds an open transaction with a row already written: a reader
        # (WAL) still sees the old state, and nothing is half-visible.
        assert _snapshot(data) == before
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert _snapshot(data) == before
    reopened = Store(data)
    scans = reopened.list_scans(visit.id)
    assert [s.id for s in scans] == [scan.id]
    assert scans[0].final_grades[Sign.ERYTHEMA] == 2.0 and not scans[0].overrides
    assert reopened.image_file(scans[0]) is not None
    # a save killed after its image was written leaves at most an orphan file, swept later
    files = [f for f in reopened.images_dir.rglob("*") if f.suffix in (".jpg", ".png")]
    assert len(files) == (2 if op == "save" else 1)
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=2)
    assert reopened.purge_expired(later) == (1 if op == "save" else 0)
    assert reopened.image_file(scans[0]) is not None
    # the store still takes writes after the crash
    assert reopened.override_grade(scan.id, Sign.ERYTHEMA, 1, "after").final_grades[Sign.ERYTHEMA] == 1


def test_unknown_ids_are_typed_not_found(store):
    from device.core.errors import NotFound, http_status
    from device.store.schema import StoreError

    for call in (lambda: store.get_patient("nobody"), lambda: store.get_visit(999)):
        with pytest.raises(NotFound) as err:
            call()
        assert isinstance(err.value, StoreError) and http_status(err.value) == 404
    with pytest.raises(StoreError) as bad:
        store.create_patient("bad id!", 1990)
    assert not isinstance(bad.value, NotFound) and http_status(bad.value) == 400
