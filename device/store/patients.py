"""Patients and visits: pseudonymous ids, one open visit per patient and day."""

from __future__ import annotations

import datetime as dt
import logging
import re
import sqlite3

from device.store.db import Database
from device.store.schema import Patient, RecordNotFoundError, StoreError, Visit, VisitStatus

log = logging.getLogger(__name__)

_PATIENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class PatientRecords(Database):
    def create_patient(self, patient_id: str, birth_year: int | None) -> Patient:
        if not _PATIENT_ID.match(patient_id or ""):
            raise StoreError(f"patient id {patient_id!r}: use 1-64 letters, digits, '.', '_' or '-' "
                             "(a pseudonym, never a name)")
        this_year = self.clock().year
        if birth_year is not None and not 1900 <= birth_year <= this_year:
            raise StoreError(f"birth year {birth_year} is not between 1900 and {this_year}")
        try:
            with self._tx() as conn:
                conn.execute("INSERT INTO patients(id, birth_year, created) VALUES (?, ?, ?)",
                             (patient_id, birth_year, self._now()))
        except sqlite3.IntegrityError as exc:
            raise StoreError(f"patient {patient_id} already exists") from exc
        return self.get_patient(patient_id)

    def get_patient(self, patient_id: str) -> Patient:
        row = self._conn().execute("SELECT * FROM patients WHERE id = ?", (patient_id,)).fetchone()
        if row is None:
            raise RecordNotFoundError(f"no patient {patient_id!r}")
        return Patient(**dict(row))

    def list_patients(self, search: str | None = None) -> list[Patient]:
        sql, args = "SELECT * FROM patients", ()
        if search:
            sql, args = sql + " WHERE id LIKE ? ESCAPE '\\'", (
                "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%",)
        return [Patient(**dict(r)) for r in self._conn().execute(sql + " ORDER BY id", args)]

    # -- visits ----------------------------------------------------------------------
    def open_visit(self, patient_id: str, date: dt.date | None = None) -> Visit:
        """The patient's open visit on ``date`` (today by default), created if none."""
        self.get_patient(patient_id)
        day = (date or self.clock().date()).isoformat()
        with self._tx() as conn:
            row = conn.execute("SELECT id FROM visits WHERE patient_id = ? AND date = ? AND status = ?",
                               (patient_id, day, VisitStatus.OPEN.value)).fetchone()
            if row is None:
                now = self._now()
                visit_id = conn.execute(
                    "INSERT INTO visits(patient_id, date, status, created, updated) VALUES (?,?,?,?,?)",
                    (patient_id, day, VisitStatus.OPEN.value, now, now)).lastrowid
            else:
                visit_id = row["id"]
        return self.get_visit(int(visit_id))

    def get_visit(self, visit_id: int) -> Visit:
        row = self._conn().execute("SELECT * FROM visits WHERE id = ?", (visit_id,)).fetchone()
        if row is None:
            raise RecordNotFoundError(f"no visit {visit_id}")
        return Visit(**{**dict(row), "status": VisitStatus(row["status"])})

    def list_visits(self, patient_id: str) -> list[Visit]:
        """The patient's visits, oldest first; StoreError for an unknown patient."""
        self.get_patient(patient_id)
        rows = self._conn().execute(
            "SELECT * FROM visits WHERE patient_id = ? ORDER BY date, id", (patient_id,))
        return [Visit(**{**dict(r), "status": VisitStatus(r["status"])}) for r in rows]

    def set_visit_status(self, visit_id: int, status: VisitStatus) -> Visit:
        status = VisitStatus(status)
        try:
            with self._tx() as conn:
                cur = conn.execute("UPDATE visits SET status = ?, updated = ? WHERE id = ?",
                                   (status.value, self._now(), visit_id))
                if cur.rowcount == 0:
                    raise RecordNotFoundError(f"no visit {visit_id}")
        except sqlite3.IntegrityError as exc:
            raise StoreError(f"visit {visit_id}: the patient already has an open visit that day") from exc
        return self.get_visit(visit_id)

    def _open_visit_row(self, conn: sqlite3.Connection, visit_id: int) -> sqlite3.Row:
        row = conn.execute("SELECT * FROM visits WHERE id = ?", (visit_id,)).fetchone()
        if row is None:
            raise RecordNotFoundError(f"no visit {visit_id}")
        if row["status"] != VisitStatus.OPEN.value:
            raise StoreError(f"visit {visit_id} is {row['status']}; reopen it before changing it")
        return row

