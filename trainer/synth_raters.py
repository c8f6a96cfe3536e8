"""Simulated raters for a synthetic data set (``python -m trainer synth --raters K``).

Each of K raters has their own bias (a shift of the grades they give) and noise (how far
one lesion's grade wanders), both drawn once per rater; a rater's grade of a lesion is
the lesion's true severity plus their bias plus their noise, rounded and kept in 0-3.
The manifest is then written the way the labelling studio's export writes it
(trainer.label.export): the sign columns hold the consensus (the raters' median rounded
half up; where their grades span two or more, an adjudicator's grade, here the true one),
beside ``n_raters``, ``agreement``, ``adjudicated``, and each rater's grades (``raters``,
``<sign>_by_rater``, trainer.data). The true grades stay in ``true_<sign>`` so a benchmark
can score against them. Simulated raters are never clinical agreement.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from device.core.atomic import atomic_write_text
from device.core.vocab import MODEL_SIGNS, NUM_GRADES, Sign
from trainer.data import MANIFEST_NAME, RATERS_COLUMN, rater_cells, rater_column

log = logging.getLogger(__name__)

INFO_NAME = "synth.json"
#: Range each rater's bias and noise (standard deviation, in grades) are drawn from.
BIAS_RANGE = (-0.3, 0.3)
NOISE_RANGE = (0.35, 0.6)
ADJUDICATE_SPREAD = 2  # as the studio (trainer.label.consensus)


@dataclass(frozen=True)
class RaterProfile:
    name: str
    bias: float
    noise: float


def rater_profiles(k: int, seed: int) -> list[RaterProfile]:
    rng = np.random.default_rng([seed, 1, k])
    return [RaterProfile(f"sim-rater-{i + 1}", round(float(rng.uniform(*BIAS_RANGE)), 3),
                         round(float(rng.uniform(*NOISE_RANGE)), 3)) for i in range(k)]


def simulate_grades(truth: np.ndarray, profiles: list[RaterProfile], seed: int) -> np.ndarray:
    """(N, S) true grades -> (N, S, K) the raters' grades (N lesions, S signs, K raters)."""
    rng = np.random.default_rng([seed, 2, len(profiles)])
    truth = np.asarray(truth, np.float64)
    bias = np.array([p.bias for p in profiles])
    noise = np.array([p.noise for p in profiles])
    raw = truth[..., None] + bias + rng.normal(size=(*truth.shape, len(profiles))) * noise
    return np.clip(np.floor(raw + 0.5), 0, NUM_GRADES - 1).astype(np.int64)


def consensus(grades: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The studio's consensus of (N, S, K) grades: median rounded half up, or the
    adjudicator's (the true) grade where the raters span 2 or more. Returns it and the
    (N, S) mask of adjudicated signs."""
    from trainer.label.consensus import median_grade

    disputed = grades.max(axis=2) - grades.min(axis=2) >= ADJUDICATE_SPREAD
    med = np.apply_along_axis(lambda g: median_grade(list(g)), 2, grades)
    return np.where(disputed, truth, med), disputed


def _agreement(g: np.ndarray) -> float | None:
    """Share of rater pairs giving the same grade over the signs (g: S x K)."""
    k = g.shape[1]
    same = sum(int(row[i] == row[j]) for row in g for i in range(k) for j in range(i + 1, k))
    total = g.shape[0] * k * (k - 1) // 2
    return same / total if total else None


def add_simulated_raters(out: Path, k: int, seed: int) -> list[RaterProfile]:
    """Rewrite ``out``'s manifest (written by trainer.synth) with K simulated raters."""
    if k < 1:
        raise ValueError(f"--raters must be 1 or more, got {k}")
    out = Path(out)
    path = out / MANIFEST_NAME
    rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
    if not rows:
        raise ValueError(f"{path}: no rows to add raters to")
    header = list(rows[0].keys())
    signs: list[Sign] = list(MODEL_SIGNS)
    truth = np.array([[int(r[s.value]) for s in signs] for r in rows], np.int64)
    profiles = rater_profiles(k, seed)
    grades = simulate_grades(truth, profiles, seed)
    agreed, adjudicated = consensus(grades, truth)
    names = [p.name for p in profiles]
    extra = ["n_raters", "agreement", "adjudicated", RATERS_COLUMN,
             *(rater_column(s) for s in signs), *(f"true_{s.value}" for s in signs)]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header + [c for c in extra if c not in header])
    for i, row in enumerate(rows):
        cells = rater_cells({s: dict(zip(names, grades[i, j].tolist(), strict=True))
                             for j, s in enumerate(signs)}, names)
        agree = _agreement(grades[i])
        new = dict(row, **{s.value: str(int(agreed[i, j])) for j, s in enumerate(signs)},
                   n_raters=str(k), agreement="" if agree is None else f"{agree:.3f}",
                   adjudicated=",".join(s.value for j, s in enumerate(signs) if adjudicated[i, j]),
                   **cells, **{f"true_{s.value}": str(int(truth[i, j])) for j, s in enumerate(signs)})
        writer.writerow([new[c] for c in header + [c for c in extra if c not in header]])
    atomic_write_text(path, buf.getvalue())
    info_path = out / INFO_NAME
    info = json.loads(info_path.read_text()) if info_path.exists() else {}
    info["raters"] = {"simulated": True, "k": k, "seed": seed,
                      "profiles": [asdict(p) for p in profiles],
                      "note": "simulated raters: not clinical agreement",
                      "consensus_matches_truth": round(float((agreed == truth).mean()), 4)}
    atomic_write_text(info_path, json.dumps(info, indent=1) + "\n")
    log.info("added %d simulated raters to %s (consensus = truth on %.1f %% of grades)",
             k, path, 100 * float((agreed == truth).mean()))
    return profiles
