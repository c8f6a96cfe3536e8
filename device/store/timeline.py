"""A followed lesion's timeline (Flask-free): each visit's scan of it, the three model
signs' final grades over time, and the change since the first and the last visit.

A change of a whole grade or more (``MARK_CHANGE``) is marked: a grader's step, where
smaller moves (half points) are within what two graders differ by.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from device.core.vocab import MODEL_SIGNS, Sign
from device.store.schema import Lesion, RegionScan, Visit

log = logging.getLogger(__name__)

#: A grade change of at least this much is marked on the timeline.
MARK_CHANGE = 1.0


@dataclass(frozen=True)
class LesionVisit:
    visit: Visit
    scan: RegionScan

    def grade(self, sign: Sign) -> float | None:
        return self.scan.final_grades.get(sign)


@dataclass(frozen=True)
class SignChange:
    sign: Sign
    first: float | None
    previous: float | None
    latest: float | None

    @staticmethod
    def _delta(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else b - a

    @property
    def since_first(self) -> float | None:
        return self._delta(self.first, self.latest)

    @property
    def since_last(self) -> float | None:
        return self._delta(self.previous, self.latest)

    def marked(self, delta: float | None) -> bool:
        return delta is not None and abs(delta) >= MARK_CHANGE


@dataclass(frozen=True)
class LesionTimeline:
    lesion: Lesion
    visits: list[LesionVisit]  # oldest first, one per visit

    def changes(self) -> list[SignChange]:
        """Per model sign: the grade at the first, the previous and the latest visit that
        graded it."""
        rows = []
        for sign in MODEL_SIGNS:
            graded = [v.grade(sign) for v in self.visits if v.grade(sign) is not None]
            rows.append(SignChange(sign, graded[0] if graded else None,
                                   graded[-2] if len(graded) > 1 else None,
                                   graded[-1] if graded else None))
        return rows

    def series(self) -> dict[Sign, list[float | None]]:
        return {sign: [v.grade(sign) for v in self.visits] for sign in MODEL_SIGNS}

    def labels(self) -> list[str]:
        return [v.visit.date for v in self.visits]


def lesion_timeline(store, lesion_id: int) -> LesionTimeline:
    """The lesion and its scans, one per visit (the visit's latest of it)."""
    lesion = store.get_lesion(lesion_id)
    visits = [LesionVisit(store.get_visit(s.visit_id), s) for s in store.lesion_scans(lesion_id)]
    return LesionTimeline(lesion, visits)
