"""Boxes of different raters on one photo matched into lesions by IoU.

Greedy and deterministic: every cross-rater pair of boxes with IoU >= the threshold is
considered from the highest IoU down (ties by box ids); a pair joins its two groups when
the groups hold no rater in common, so a lesion has at most one box per rater.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

from trainer.label.models import Box

log = logging.getLogger(__name__)


def iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


@dataclass(frozen=True)
class Lesion:
    """One lesion on one photo: at most one box per rater."""

    photo_id: int
    boxes: tuple[Box, ...]  # sorted by rater

    @property
    def anchor(self) -> int:
        """The lesion's stable key: its lowest box id."""
        return min(b.id for b in self.boxes)

    @property
    def raters(self) -> tuple[str, ...]:
        return tuple(b.rater for b in self.boxes)

    def box_of(self, rater: str) -> Box | None:
        return next((b for b in self.boxes if b.rater == rater), None)


def match_boxes(boxes: Sequence[Box], threshold: float) -> list[Lesion]:
    """Group one photo's boxes (all raters) into lesions, ordered top-left first."""
    if not boxes:
        return []
    group = {b.id: {b.id} for b in boxes}
    by_id = {b.id: b for b in boxes}
    pairs = [(iou(a.xywh, b.xywh), a.id, b.id) for a, b in combinations(boxes, 2)
             if a.rater != b.rater]
    for score, a, b in sorted(pairs, key=lambda p: (-p[0], p[1], p[2])):
        if score < threshold or group[a] is group[b]:
            continue
        raters_a = {by_id[i].rater for i in group[a]}
        if raters_a & {by_id[i].rater for i in group[b]}:
            continue
        merged = group[a] | group[b]
        for i in merged:
            group[i] = merged
    unique = {id(g): g for g in group.values()}.values()
    lesions = [Lesion(boxes[0].photo_id,
                      tuple(sorted((by_id[i] for i in g), key=lambda b: (b.rater, b.id))))
               for g in unique]
    return sorted(lesions, key=lambda les: (min(b.y for b in les.boxes),
                                            min(b.x for b in les.boxes), les.anchor))
