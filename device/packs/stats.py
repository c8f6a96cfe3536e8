"""Pack checks of the abstention statistics (device.grading.abstain): present exactly when the
card describes them, the file the card names, readable, of the size of the model's
pooled features, and with a scene space exactly when the card describes one. Called by
device.packs.check."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from device.grading.abstain import StatsError, load_stats

if TYPE_CHECKING:
    from device.grading.interpreter import GradeModel


class Findings(Protocol):
    """Where the checks write what they find (device.packs.check.VerifyReport is one);
    a protocol, so this module needs nothing from the module that calls it."""

    problems: list[str]
    notes: list[str]


def check_stats(report: Findings, entry: Any, card: Any, dest: Path,
                extracted: dict[str, str]) -> None:
    """The abstention statistics: present exactly when the card describes them, the file
    the card names (sha256), readable, and of the model's feature size."""
    info = card.abstention
    if entry.stats is None:
        if info is not None:
            report.problems.append(f"{entry.card}: describes abstention statistics, but the "
                                   "manifest lists no stats file for it; rebuild the pack")
        else:
            report.notes.append(f"{card.sign.value}: no abstention statistics: this model cannot "
                                "tell images unlike its training data")
        return
    if entry.stats not in extracted:
        return  # already reported as missing
    if info is None:
        report.problems.append(f"{entry.card}: has no abstention section, but the manifest lists "
                               f"{entry.stats} for it; rebuild the pack")
        return
    if info.stats_sha256 != extracted[entry.stats]:
        report.problems.append(f"{entry.stats}: its sha256 differs from the one in {entry.card}: "
                               "the statistics belong to another build; rebuild the pack")
        return
    try:
        stats = load_stats(dest / entry.stats)
    except StatsError as exc:
        report.problems.append(str(exc).replace(f"{dest}{os.sep}", ""))
        return
    if stats.dim != info.feature_dim:
        report.problems.append(f"{entry.stats}: {stats.dim} features, but {entry.card} says "
                               f"{info.feature_dim}; rebuild the pack")
    if (stats.scene is None) != (getattr(info, "scene_space", None) is None):
        has, says = ("has", "describes none") if stats.scene is not None else ("lacks", "describes one")
        report.problems.append(f"{entry.stats}: {has} the scene space (the whole frame), but "
                               f"{entry.card} {says}; rebuild the pack")


def features_fit(report: Findings, entry: Any, model: GradeModel, dest: Path) -> bool:
    """A model with abstention statistics must return pooled features of their size."""
    try:
        dim = load_stats(dest / entry.stats).dim
    except StatsError:
        return False  # reported by check_stats
    if model.feature_dim != dim:
        got = "no pooled features" if model.feature_dim is None else f"{model.feature_dim} features"
        report.problems.append(f"{entry.model}: returns {got}, but its abstention statistics "
                               f"expect {dim}; rebuild the pack")
        return False
    return True
