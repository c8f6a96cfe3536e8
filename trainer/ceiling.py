"""The human ceiling of one sign: the model measured as one more rater (device.core.ceiling).

On the held-out lesions that two or more raters graded (the manifest's per-rater columns,
trainer.data): quadratic weighted kappa of every pair of raters and of the model with
every rater (scikit-learn's ``cohen_kappa_score``, as the labelling studio's agreement
report, trainer.label.agreement), Krippendorff's alpha across the raters (the studio's own
function), each with a 95 % percentile bootstrap interval resampling lesions. The mean
kappas and their difference are resampled on the same lesions, so the verdict
(device.core.ceiling.decide) rests on a paired interval.

The bootstrap's kappas use ``qwk`` below, the same formula as scikit-learn's in a few numpy
lines (a test holds them equal), over all resamples at once (``qwk_resampled``: one bincount
for every resample's confusion matrix; a kappa per resample took most of a second a sign
with seven raters). Alpha's interval takes ``ALPHA_RESAMPLES`` of the same draws (one alpha
costs a millisecond).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from itertools import combinations

import numpy as np

from device.core.ceiling import Estimate, SignCeiling, decide
from device.core.vocab import NUM_GRADES, Sign

log = logging.getLogger(__name__)

ALPHA_RESAMPLES = 200
_W = (np.subtract.outer(np.arange(NUM_GRADES), np.arange(NUM_GRADES)) ** 2).astype(np.float64)


def qwk(a: np.ndarray, b: np.ndarray) -> float | None:
    """Quadratic weighted Cohen's kappa of two integer grade vectors (labels 0..3), as
    ``cohen_kappa_score(a, b, labels=[0, 1, 2, 3], weights="quadratic")``; None where it is
    undefined (no pairs, or both raters always gave one and the same grade)."""
    n = a.size
    if n == 0:
        return None
    observed = np.bincount(a * NUM_GRADES + b, minlength=NUM_GRADES ** 2).reshape(
        NUM_GRADES, NUM_GRADES).astype(np.float64)
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / n
    denom = float((_W * expected).sum())
    if denom == 0:
        return None
    return 1.0 - float((_W * observed).sum()) / denom


def rater_matrix(samples: Sequence, sign: Sign) -> tuple[list[str], np.ndarray]:
    """Raters, and their grades of ``sign`` (raters x samples; -1 where not graded)."""
    raters = sorted({r for s in samples for r in s.rater_grades.get(sign, {})})
    m = np.full((len(raters), len(samples)), -1, np.int64)
    for j, s in enumerate(samples):
        for r, g in s.rater_grades.get(sign, {}).items():
            m[raters.index(r), j] = int(g)
    return raters, m


def _mean(values: list[float | None]) -> float | None:
    got = [v for v in values if v is not None]
    return float(np.mean(got)) if got else None


def _interval(draws: list[float | None]) -> tuple[float | None, float | None]:
    got = np.array([d for d in draws if d is not None and np.isfinite(d)])
    if got.size == 0:
        return None, None
    lo, hi = np.percentile(got, [2.5, 97.5])
    return float(lo), float(hi)


def qwk_resampled(a: np.ndarray, b: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``qwk`` of ``a`` and ``b`` (grades 0..3, -1 where not graded) on each row of lesion
    indices ``idx`` (resamples x lesions), counting the lesions both graded: one float per
    resample, NaN where ``qwk`` gives None. All resamples' confusion matrices come from one
    bincount, not a kappa per resample (a thousand resamples of 35 pairs took seconds)."""
    n_boot = idx.shape[0]
    both = ((a >= 0) & (b >= 0))[idx]
    codes = np.where(both, a[idx] * NUM_GRADES + b[idx], 0)
    codes += (np.arange(n_boot) * NUM_GRADES ** 2)[:, None]
    observed = np.bincount(codes.ravel(), weights=both.ravel().astype(np.float64),
                           minlength=n_boot * NUM_GRADES ** 2).reshape(n_boot, NUM_GRADES,
                                                                       NUM_GRADES)
    n = observed.sum(axis=(1, 2))
    expected = observed.sum(axis=2)[:, :, None] * observed.sum(axis=1)[:, None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        expected /= n[:, None, None]
        denom = (_W * expected).sum(axis=(1, 2))
        kappa = 1.0 - (_W * observed).sum(axis=(1, 2)) / denom
    kappa[(n == 0) | (denom == 0)] = np.nan
    return kappa


def _nan_to_none(values: np.ndarray) -> list[float | None]:
    return [None if np.isnan(v) else float(v) for v in values]


def _mean_rows(kappas: np.ndarray) -> list[float | None]:
    """Each resample's mean over the kappas defined in it (``_mean`` of a row)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a resample with no kappa at all
        return _nan_to_none(np.nanmean(kappas, axis=0))


def sign_ceiling(samples: Sequence, pred: Sequence[int] | np.ndarray, sign: Sign, *,
                 n_boot: int = 1000, seed: int = 0, simulated: bool = False) -> SignCeiling:
    """The human ceiling of ``sign`` for a model that graded ``samples`` as ``pred``."""
    from sklearn.metrics import cohen_kappa_score

    from trainer.label.agreement import GRADE_LABELS, _alpha, pair_key

    raters, m = rater_matrix(samples, sign)
    pred = np.asarray(pred, np.int64).reshape(-1)
    keep = (m >= 0).sum(axis=0) >= 2
    m, pred = m[:, keep], pred[keep]
    n = int(m.shape[1])
    used = [r for i, r in enumerate(raters) if (m[i] >= 0).any()]
    m = m[[raters.index(r) for r in used]]
    raters = used
    if len(raters) < 2 or n == 0:
        return SignCeiling(n_lesions=n, raters=raters, verdict=decide(None, n, len(raters)),
                           simulated_raters=simulated)

    def exact_kappa(a: np.ndarray, b: np.ndarray) -> Estimate:
        value = qwk(a, b)
        if value is not None:  # the figure reported is scikit-learn's own
            value = float(cohen_kappa_score(a, b, labels=GRADE_LABELS, weights="quadratic"))
        return Estimate(value=value, n=int(a.size))

    pairs = list(combinations(range(len(raters)), 2))
    rng = np.random.default_rng(seed)
    # One draw of n lesions per resample, drawn one resample at a time (the draws the
    # report has always used), then every kappa over all resamples at once.
    idx = np.array([rng.integers(0, n, n) for _ in range(n_boot)], np.int64).reshape(n_boot, n)
    pair_k = np.array([qwk_resampled(m[i], m[j], idx) for i, j in pairs]).reshape(len(pairs), n_boot)
    model_k = np.array([qwk_resampled(pred, m[i], idx) for i in range(len(raters))]).reshape(
        len(raters), n_boot)
    pair_draws = [_nan_to_none(row) for row in pair_k]
    model_draws = [_nan_to_none(row) for row in model_k]

    rater_pairs, model_vs = {}, {}
    for (i, j), got in zip(pairs, pair_draws, strict=True):
        both = (m[i] >= 0) & (m[j] >= 0)
        e = exact_kappa(m[i, both], m[j, both])
        rater_pairs[pair_key(raters[i], raters[j])] = e.model_copy(update={"ci95": _interval(list(got))})
    for i, got in enumerate(model_draws):
        has = m[i] >= 0
        e = exact_kappa(pred[has], m[i, has])
        model_vs[raters[i]] = e.model_copy(update={"ci95": _interval(list(got))})

    rater_mean, model_mean = _mean_rows(pair_k), _mean_rows(model_k)
    diff = [None if a is None or b is None else a - b for a, b in zip(model_mean, rater_mean,
                                                                       strict=True)]
    rk = _mean([e.value for e in rater_pairs.values()])
    mk = _mean([e.value for e in model_vs.values()])
    rater_kappa = Estimate(value=rk, ci95=_interval(rater_mean), n=n)
    model_kappa = Estimate(value=mk, ci95=_interval(model_mean), n=n)
    difference = Estimate(value=None if rk is None or mk is None else mk - rk,
                          ci95=_interval(diff), n=n)
    grades = np.where(m >= 0, m, np.nan).astype(np.float64)
    alpha_fn = _alpha(grades)
    alpha_rng = np.random.default_rng(seed + 1)
    alpha = Estimate(value=_safe(alpha_fn, np.arange(n)),
                     ci95=_interval([_safe(alpha_fn, alpha_rng.integers(0, n, n))
                                     for _ in range(min(n_boot, ALPHA_RESAMPLES))]), n=n)
    return SignCeiling(n_lesions=n, raters=raters, rater_kappa=rater_kappa,
                       model_kappa=model_kappa, difference=difference, rater_alpha=alpha,
                       rater_pairs=rater_pairs, model_vs_rater=model_vs,
                       verdict=decide(difference, n, len(raters)), simulated_raters=simulated,
                       resamples=n_boot)


def _safe(fn, idx: np.ndarray) -> float | None:
    from trainer.label.agreement import _quiet

    return _quiet(fn, idx)


def has_raters(samples: Sequence) -> bool:
    return any(s.rater_grades for s in samples)


def format_ceiling(sign: str, c: SignCeiling) -> str:
    """One line for the CLI."""
    if c.rater_kappa is None or c.model_kappa is None:
        return (f"{sign}: human ceiling: {c.verdict.value} ({c.n_lesions} held-out lesions "
                f"with two or more raters, {len(c.raters)} rater(s))")
    alpha = c.rater_alpha.text() if c.rater_alpha else "n/a"
    return (f"{sign}: raters' kappa {c.rater_kappa.text()}, model's kappa with them "
            f"{c.model_kappa.text()}, alpha {alpha}, {c.n_lesions} lesions, "
            f"{len(c.raters)} raters: {c.verdict.value}")
