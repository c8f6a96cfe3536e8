"""``label agreement``: how far raters agree, per sign, on the lesions several raters graded.

Units are lesions (boxes matched across raters by IoU, ``matching``) on photos answered by
two or more raters. Per sign: exact agreement (share of rater pairs giving the same grade),
linear and quadratic weighted Cohen's kappa per pair of raters (scikit-learn),
Krippendorff's alpha, ordinal, across all raters (the ``krippendorff`` package), the
confusion between each pair, and each rater's mean difference from the consensus (the
raters' unrounded median, or the adjudicator's grade). The boxes
themselves: mean IoU of each pair's matched boxes, and how many boxes found no partner.
Every figure carries a 95 % percentile bootstrap interval, resampling lesions.
"""

from __future__ import annotations

import logging
import sqlite3
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np

from device.core.vocab import MODEL_SIGNS, NUM_GRADES, Sign
from trainer.label.consensus import adjudications, lesions_by_photo
from trainer.label.matching import Lesion, iou

log = logging.getLogger(__name__)

GRADE_LABELS = list(range(NUM_GRADES))


@dataclass(frozen=True)
class Figure:
    """A statistic with its 95 % bootstrap interval (None where undefined, e.g. one grade)."""

    value: float | None
    ci95: tuple[float | None, float | None]
    n: int

    def to_json(self) -> dict:
        return {"value": self.value, "ci95": list(self.ci95), "n": self.n}

    def text(self) -> str:
        if self.value is None:
            return f"   n/a        (n={self.n})"
        lo, hi = (f"{v:.2f}" if v is not None else "?" for v in self.ci95)
        return f"{self.value:6.3f} [{lo}, {hi}] (n={self.n})"


@dataclass(frozen=True)
class SignAgreement:
    sign: Sign
    exact: Figure
    linear_kappa: dict[str, Figure]   # "a|b" -> figure
    quadratic_kappa: dict[str, Figure]
    alpha: Figure
    confusion: dict[str, list[list[int]]]  # "a|b" -> rows a's grade, columns b's grade
    bias: dict[str, Figure]           # rater -> mean (grade - consensus)


@dataclass(frozen=True)
class AgreementReport:
    raters: list[str]
    photos: int  # photos answered by two or more raters
    signs: list[SignAgreement]
    box_iou: dict[str, Figure]
    unmatched: dict[str, dict[str, int]] = field(default_factory=dict)
    resamples: int = 0
    seed: int = 0

    def to_json(self) -> dict:
        def by_pair(figs: dict[str, Figure]) -> dict:
            if len(figs) == 1:
                return next(iter(figs.values())).to_json()
            return {k: f.to_json() for k, f in figs.items()}

        out: dict = {}
        for s in self.signs:
            out[s.sign.value] = {
                "exact_agreement": s.exact.to_json(),
                "linear_kappa": by_pair(s.linear_kappa),
                "quadratic_kappa": by_pair(s.quadratic_kappa),
                "krippendorff_alpha": s.alpha.to_json(),
                "confusion": s.confusion,
                "bias": {r: f.to_json() for r, f in s.bias.items()}}
        out["boxes"] = {"iou": {k: f.to_json() for k, f in self.box_iou.items()},
                        "unmatched": self.unmatched}
        out["raters"] = self.raters
        out["photos_with_several_raters"] = self.photos
        out["bootstrap"] = {"resamples": self.resamples, "seed": self.seed,
                            "interval": "95 % percentile, resampling lesions"}
        return out


def pair_key(a: str, b: str) -> str:
    return f"{a}|{b}"


def _quiet(fn: Callable[[np.ndarray], float | None], idx: np.ndarray) -> float | None:
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            v = fn(idx)
        except ValueError:  # e.g. alpha with one value only
            return None
    return None if v is None or not np.isfinite(v) else float(v)


def bootstrap(fn: Callable[[np.ndarray], float | None], n: int, resamples: int,
              rng: np.random.Generator) -> Figure:
    """``fn`` on all n units, and the 2.5/97.5 percentiles of it over resampled units."""
    value = _quiet(fn, np.arange(n)) if n else None
    if value is None or resamples == 0:
        return Figure(value, (None, None), n)
    draws = [_quiet(fn, rng.integers(0, n, n)) for _ in range(resamples)]
    got = np.array([d for d in draws if d is not None])
    if got.size == 0:
        return Figure(value, (None, None), n)
    lo, hi = np.percentile(got, [2.5, 97.5])
    return Figure(value, (float(lo), float(hi)), n)


def grade_matrix(lesions: Sequence[Lesion], raters: Sequence[str], sign: Sign) -> np.ndarray:
    """raters x lesions, NaN where a rater drew no box or left the sign ungraded."""
    m = np.full((len(raters), len(lesions)), np.nan)
    for j, les in enumerate(lesions):
        for b in les.boxes:
            g = b.grades.get(sign)
            if g is not None:
                m[raters.index(b.rater), j] = g
    return m


def _exact(m: np.ndarray) -> Callable[[np.ndarray], float | None]:
    def fn(idx: np.ndarray) -> float | None:
        same = total = 0
        for col in m[:, idx].T:
            vals = col[~np.isnan(col)]
            for a, b in combinations(vals, 2):
                total += 1
                same += a == b
        return same / total if total else None
    return fn


def _kappa(a: np.ndarray, b: np.ndarray, weights: str) -> Callable[[np.ndarray], float | None]:
    from sklearn.metrics import cohen_kappa_score

    def fn(idx: np.ndarray) -> float | None:
        return float(cohen_kappa_score(a[idx], b[idx], labels=GRADE_LABELS, weights=weights))
    return fn


def _alpha(m: np.ndarray) -> Callable[[np.ndarray], float | None]:
    import krippendorff

    def fn(idx: np.ndarray) -> float | None:
        return float(krippendorff.alpha(m[:, idx], level_of_measurement="ordinal",
                                        value_domain=GRADE_LABELS))
    return fn


def _mean(values: np.ndarray) -> Callable[[np.ndarray], float | None]:
    def fn(idx: np.ndarray) -> float | None:
        return float(np.mean(values[idx])) if len(idx) else None
    return fn


def sign_agreement(lesions: Sequence[Lesion], raters: list[str], sign: Sign,
                   adjudicated: dict[int, dict[Sign, int]], resamples: int,
                   rng: np.random.Generator) -> SignAgreement:
    from sklearn.metrics import confusion_matrix

    m = grade_matrix(lesions, raters, sign)
    keep = np.sum(~np.isnan(m), axis=0) >= 2
    m, units = m[:, keep], [les for les, k in zip(lesions, keep, strict=True) if k]
    n = m.shape[1]
    lin, quad, conf = {}, {}, {}
    for i, j in combinations(range(len(raters)), 2):
        both = ~np.isnan(m[i]) & ~np.isnan(m[j])
        if not both.any():
            continue
        a, b = m[i, both].astype(int), m[j, both].astype(int)
        key = pair_key(raters[i], raters[j])
        lin[key] = bootstrap(_kappa(a, b, "linear"), len(a), resamples, rng)
        quad[key] = bootstrap(_kappa(a, b, "quadratic"), len(a), resamples, rng)
        conf[key] = confusion_matrix(a, b, labels=GRADE_LABELS).tolist()
    # The unrounded median: with two raters, rounding would put both below the consensus.
    consensus = np.array([adjudicated.get(les.anchor, {}).get(sign, float(np.nanmedian(m[:, j])))
                          for j, les in enumerate(units)])
    bias = {}
    for i, rater in enumerate(raters):
        has = ~np.isnan(m[i])
        if has.any():
            bias[rater] = bootstrap(_mean(m[i, has] - consensus[has]), int(has.sum()),
                                    resamples, rng)
    return SignAgreement(sign=sign, exact=bootstrap(_exact(m), n, resamples, rng),
                         linear_kappa=lin, quadratic_kappa=quad,
                         alpha=bootstrap(_alpha(m), n, resamples, rng), confusion=conf,
                         bias=bias)


def multi_rater_photos(db: sqlite3.Connection) -> dict[int, list[str]]:
    """photo id -> raters who drew boxes on it, for photos with two or more such raters."""
    rows = db.execute("SELECT photo_id, rater FROM answers WHERE status = 'done'"
                      " ORDER BY photo_id, rater").fetchall()
    out: dict[int, list[str]] = {}
    for r in rows:
        out.setdefault(r["photo_id"], []).append(r["rater"])
    return {pid: rs for pid, rs in out.items() if len(rs) >= 2}


def box_agreement(lesions: dict[int, list[Lesion]], photos: dict[int, list[str]],
                  resamples: int, rng: np.random.Generator
                  ) -> tuple[dict[str, Figure], dict[str, dict[str, int]]]:
    ious: dict[str, list[float]] = {}
    unmatched: dict[str, dict[str, int]] = {}
    for pid, raters in photos.items():
        for a, b in combinations(raters, 2):
            key = pair_key(a, b)
            ious.setdefault(key, [])
            miss = unmatched.setdefault(key, {a: 0, b: 0})
            for les in lesions.get(pid, []):
                ba, bb = les.box_of(a), les.box_of(b)
                if ba and bb:
                    ious[key].append(iou(ba.xywh, bb.xywh))
                elif ba or bb:
                    miss[a if ba else b] += 1
    figs = {k: bootstrap(_mean(np.array(v)), len(v), resamples, rng)
            for k, v in sorted(ious.items())}
    return figs, unmatched


def compute_agreement(db: sqlite3.Connection, *, n_boot: int = 1000,
                      seed: int = 0) -> AgreementReport:
    rng = np.random.default_rng(seed)
    photos = multi_rater_photos(db)
    all_lesions = lesions_by_photo(db)
    lesions = [les for pid in photos for les in all_lesions.get(pid, [])
               if len(les.boxes) >= 2]
    raters = sorted({r for rs in photos.values() for r in rs})
    adj = adjudications(db)
    signs = [sign_agreement(lesions, raters, s, adj, n_boot, rng) for s in MODEL_SIGNS]
    box_iou, unmatched = box_agreement(all_lesions, photos, n_boot, rng)
    return AgreementReport(raters=raters, photos=len(photos), signs=signs, box_iou=box_iou,
                           unmatched=unmatched, resamples=n_boot, seed=seed)


def format_report(r: AgreementReport) -> str:
    lines = [f"agreement on {r.photos} photo(s) graded by two or more raters "
             f"({', '.join(r.raters) or 'none'}); 95 % bootstrap intervals, "
             f"{r.resamples} resamples of lesions"]
    if not r.photos:
        lines.append("no photo has two raters yet: raise the overlap (label init --overlap) "
                     "or let a second rater work through the queue")
    for s in r.signs:
        lines += [f"\n{s.sign.value}", f"  exact agreement      {s.exact.text()}",
                  f"  Krippendorff alpha   {s.alpha.text()}  (ordinal, all raters)"]
        for key in s.linear_kappa:
            lines += [f"  {key}: linear kappa    {s.linear_kappa[key].text()}",
                      f"  {key}: quadratic kappa {s.quadratic_kappa[key].text()}",
                      f"  {key}: confusion (rows {key.split('|')[0]}, columns "
                      f"{key.split('|')[1]}, grades 0-3): {s.confusion[key]}"]
        for rater, fig in s.bias.items():
            lines.append(f"  bias {rater:<14} {fig.text()}  (mean grade - consensus)")
    lines.append("\nboxes")
    for key, fig in r.box_iou.items():
        miss = ", ".join(f"{k} {v}" for k, v in r.unmatched.get(key, {}).items())
        lines.append(f"  {key}: mean IoU {fig.text()}; boxes without a partner: {miss}")
    return "\n".join(lines)
