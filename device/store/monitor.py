"""The field-agreement monitor: how often staff change the models' grades.

Once a device is in a clinic this is the only measure of the models against
clinicians. Per model sign it counts, over reviewed scans (staff confirmed the
grades) that a model graded:

- the share whose final grade differs from the model's grade ("changed"), and
- the mean signed change (final - model) over the changed ones: +0.6 means staff
  graded 0.6 higher on average where they disagreed;

over the last ``monitor.window`` such scans and over every scan graded by the pack
in use ("since the pack was installed": its version is on each scan). Above
``monitor.warn_rate``, with at least ``monitor.min_scans`` scans, it warns.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass

from device.core.vocab import MODEL_SIGNS, Sign
from device.store.schema import final_col, model_col

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Agreement:
    """One sign over one set of scans."""

    sign: Sign
    scans: int
    changed: int
    mean_change: float | None  # signed, over the changed scans
    mean_abs_change: float | None
    warning: bool = False

    @property
    def rate(self) -> float | None:
        return self.changed / self.scans if self.scans else None

    def sentence(self, what: str) -> str:
        if not self.scans:
            return f"{self.sign.value}: no reviewed scans {what} yet"
        text = (f"staff changed {self.sign.value} on {100 * self.rate:.0f} % of {what} "
                f"({self.changed} of {self.scans})")
        if self.mean_change is not None:
            text += f", mean change {self.mean_change:+.1f}"
        return text

    def to_dict(self) -> dict:
        return {"scans": self.scans, "changed": self.changed,
                "rate": None if self.rate is None else round(self.rate, 4),
                "mean_change": _round(self.mean_change),
                "mean_abs_change": _round(self.mean_abs_change), "warning": self.warning}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


@dataclass(frozen=True)
class AgreementReport:
    window: int
    warn_rate: float
    min_scans: int
    pack_version: str | None
    recent: tuple[Agreement, ...]     # the last ``window`` reviewed scans
    since_pack: tuple[Agreement, ...]  # every reviewed scan graded by ``pack_version``

    @property
    def warnings(self) -> list[str]:
        """One sentence per sign above the rate: its recent window, else since the pack."""
        out = []
        for recent, since in zip(self.recent, self.since_pack, strict=True):
            if recent.warning:
                out.append(recent.sentence(f"the last {recent.scans} scans"))
            elif since.warning:
                out.append(since.sentence(f"the {since.scans} scans since pack {self.pack_version}"))
        return out

    def to_dict(self) -> dict:
        return {
            "window": self.window, "warn_rate": self.warn_rate, "min_scans": self.min_scans,
            "pack_version": self.pack_version,
            "recent": {a.sign.value: {**a.to_dict(), "text": a.sentence(
                f"the last {a.scans} scans")} for a in self.recent},
            "since_pack": {a.sign.value: {**a.to_dict(), "text": a.sentence(
                f"the {a.scans} scans since pack {self.pack_version}")} for a in self.since_pack},
            "warnings": self.warnings,
        }


def _agreement(sign: Sign, pairs: list[tuple[float, int]], warn_rate: float,
               min_scans: int) -> Agreement:
    diffs = [final - model for final, model in pairs if final != model]
    scans = len(pairs)
    rate = len(diffs) / scans if scans else 0.0
    return Agreement(
        sign, scans, len(diffs),
        sum(diffs) / len(diffs) if diffs else None,
        sum(abs(d) for d in diffs) / len(diffs) if diffs else None,
        warning=scans >= min_scans and rate > warn_rate)


def _pairs(conn: sqlite3.Connection, sign: Sign, *, limit: int | None = None,
           pack_version: str | None = None) -> list[tuple[float, int]]:
    final, model = final_col(sign), model_col(sign)
    sql = (f"SELECT {final} AS final, {model} AS model FROM region_scans WHERE reviewed_by IS "
           f"NOT NULL AND {model} IS NOT NULL AND {final} IS NOT NULL")
    args: list = []
    if pack_version is not None:
        sql += " AND pack_version = ?"
        args.append(pack_version)
    sql += " ORDER BY taken_at DESC, id DESC"
    if limit is not None:
        sql += " LIMIT ?"
        args.append(limit)
    return [(float(r[0]), int(r[1])) for r in conn.execute(sql, args)]


def field_agreement(store, pack_version: str | None, *, window: int = 50, warn_rate: float = 0.3,
                    min_scans: int = 20) -> AgreementReport:
    """The monitor's figures from ``store`` (one read transaction)."""
    with store.snapshot() as conn:
        recent = tuple(_agreement(s, _pairs(conn, s, limit=window), warn_rate, min_scans)
                       for s in MODEL_SIGNS)
        since = tuple(_agreement(s, _pairs(conn, s, pack_version=pack_version), warn_rate,
                                 min_scans) if pack_version else Agreement(s, 0, 0, None, None)
                      for s in MODEL_SIGNS)
    return AgreementReport(window, warn_rate, min_scans, pack_version, recent, since)


def from_config(store, config, pack_version: str | None) -> AgreementReport:
    m = config.monitor
    return field_agreement(store, pack_version, window=m.window, warn_rate=m.warn_rate,
                           min_scans=m.min_scans)
