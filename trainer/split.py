"""Grade-stratified train/validation split (the paper's 70/30), grouped by patient.

A split is written to a JSON file so that training, evaluation and conversion all use the same
held-out images. Paths are stored relative to the data root, sorted; with several roots
(``--data A --data B``) as ``@<i>/<path>`` relative to the i-th root, and a patient id
groups its images across roots.

Stratification: for one sign, by that sign's grade; for ``sign=None`` (multi-sign models), by the
grades of all three model signs jointly (so erythema, the contract's key, is stratified too).
Grouping: samples sharing a ``patient_id`` always land on the same side; samples without one are
their own group. Groups are placed greedily (largest first, ties in seeded random order) on the
side that keeps per-grade counts closest to the target, then single moves are tried until no
move improves the fit.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from device.core.atomic import atomic_write_json, json_default
from device.core.vocab import MODEL_SIGNS, NUM_GRADES, Sign, parse_sign
from trainer.data import DataError, LoadReport, Sample, samples_for_sign

log = logging.getLogger(__name__)

SPLIT_VERSION = 1


@dataclass
class Split:
    sign: Sign | None
    seed: int
    val_fraction: float
    data_root: str
    train: list[str]  # paths relative to data root, sorted
    val: list[str]
    data_roots: list[str] = field(default_factory=list)  # all roots, when several

    def sha256(self) -> str:
        """Digest of the membership (not of the file's formatting): same sets -> same digest."""
        text = json.dumps({"train": sorted(self.train), "val": sorted(self.val)})
        return hashlib.sha256(text.encode()).hexdigest()


def relative_key(path: Path, root: Path | Sequence[Path]) -> str:
    """``path`` relative to ``root`` in POSIX form (absolute if outside the root); with
    several roots, ``@<i>/<path>`` for the first root ``i`` that holds it."""
    if not isinstance(root, (str, Path)):
        roots = [Path(r) for r in root]
        if len(roots) != 1:
            for i, one in enumerate(roots):
                try:
                    return f"@{i}/" + Path(path).resolve().relative_to(one.resolve()).as_posix()
                except ValueError:
                    continue
            return Path(path).resolve().as_posix()
        root = roots[0]
    try:
        return Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return Path(path).resolve().as_posix()


def _strata(samples: Sequence[Sample], sign: Sign | None) -> np.ndarray:
    """One-hot count vector per sample over the stratification cells (sign x grade)."""
    signs = (sign,) if sign is not None else MODEL_SIGNS
    vec = np.zeros((len(samples), len(signs) * NUM_GRADES), dtype=np.float64)
    for i, s in enumerate(samples):
        for k, sg in enumerate(signs):
            if sg in s.grades:
                vec[i, k * NUM_GRADES + int(s.grades[sg])] = 1.0
    return vec


def make_split(samples: Iterable[Sample], sign: Sign | None, *, seed: int = 0,
               val_fraction: float = 0.3, root: Path | Sequence[Path]) -> Split:
    """Split ``samples`` (only those graded for ``sign`` when a sign is given)."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must lie strictly between 0 and 1, got {val_fraction}")
    pool = samples_for_sign(samples, sign) if sign is not None else list(samples)
    if not pool:
        raise DataError(f"no samples graded for {sign.value if sign else 'any sign'} to split")
    groups: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(pool):
        groups[f"patient:{s.patient_id}" if s.patient_id else f"image:{s.path}"].append(i)
    names = sorted(groups)
    vec = _strata(pool, sign)
    gvec = np.stack([vec[groups[n]].sum(axis=0) for n in names])
    gsize = np.array([len(groups[n]) for n in names], dtype=np.float64)
    in_val = _assign(gvec, gsize, val_fraction, seed)
    train: list[str] = []
    val: list[str] = []
    for g, name in enumerate(names):
        keys = [relative_key(pool[i].path, root) for i in groups[name]]
        (val if in_val[g] else train).extend(keys)
    roots = [Path(root)] if isinstance(root, (str, Path)) else [Path(r) for r in root]
    split = Split(sign=sign, seed=seed, val_fraction=val_fraction,
                  data_root=str(roots[0].resolve()), train=sorted(train), val=sorted(val),
                  data_roots=[str(r.resolve()) for r in roots] if len(roots) > 1 else [])
    log.info("split %s: %d train, %d val (%d groups)", sign or "all signs",
             len(split.train), len(split.val), len(names))
    if not split.train or not split.val:
        log.warning("split %s has an empty side (%d groups only): collect more patients",
                    sign or "all signs", len(names))
    return split


def _assign(feats: np.ndarray, gsize: np.ndarray, frac: float, seed: int) -> np.ndarray:
    """Boolean per group: True = validation. Minimises the squared error of per-cell val counts
    against ``frac`` times the whole (the cells also fix the total size)."""
    rng = np.random.default_rng(seed)
    target = frac * feats.sum(axis=0)
    order = np.lexsort((rng.permutation(len(gsize)), -gsize))  # largest first, random ties
    in_val = np.zeros(len(gsize), dtype=bool)
    cur = np.zeros_like(target)
    for g in order:
        if np.sum((cur + feats[g] - target) ** 2) < np.sum((cur - target) ** 2):
            in_val[g] = True
            cur += feats[g]
    # Refine: move one group across while that lowers the error (bounded passes).
    for _ in range(20):
        improved = False
        for g in rng.permutation(len(gsize)):
            delta = -feats[g] if in_val[g] else feats[g]
            if np.sum((cur + delta - target) ** 2) < np.sum((cur - target) ** 2) - 1e-9:
                in_val[g] = not in_val[g]
                cur += delta
                improved = True
        if not improved:
            break
    return in_val


def save_split(split: Split, path: Path) -> Path:
    """Write the split as JSON (atomically: a temp file then rename)."""
    path = Path(path)
    data = asdict(split)
    data["sign"] = split.sign.value if split.sign else None
    data = {"version": SPLIT_VERSION, **data, "sha256": split.sha256()}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, data, default=json_default)
    return path


def load_split(path: Path) -> Split:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DataError(f"cannot read split file {path}: {exc.strerror or exc}") from exc
    except json.JSONDecodeError as exc:
        raise DataError(f"split file {path} is not valid JSON (line {exc.lineno}): {exc.msg}"
                        ) from exc
    if not isinstance(data, dict) or data.get("version") != SPLIT_VERSION:
        raise DataError(f"split file {path}: expected version {SPLIT_VERSION}; re-make the split")
    try:
        sign = parse_sign(data["sign"], model_only=True) if data["sign"] else None
        split = Split(sign=sign, seed=int(data["seed"]), val_fraction=float(data["val_fraction"]),
                      data_root=str(data["data_root"]), train=[str(p) for p in data["train"]],
                      val=[str(p) for p in data["val"]],
                      data_roots=[str(p) for p in data.get("data_roots") or []])
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"split file {path}: bad or missing field ({exc})") from exc
    overlap = set(split.train) & set(split.val)
    if overlap:
        raise DataError(f"split file {path}: {len(overlap)} image(s) on both sides, "
                        f"e.g. {sorted(overlap)[0]}")
    return split


def apply_split(report_or_samples: LoadReport | Iterable[Sample],
                split: Split) -> tuple[list[Sample], list[Sample]]:
    """(train, val) samples in the split's order. Paths are matched relative to the report's
    root (or the split's data_root for a bare sample list), so a moved data set still matches."""
    if isinstance(report_or_samples, LoadReport):
        root, samples = report_or_samples.key_root, report_or_samples.samples
    else:
        root = tuple(Path(r) for r in split.data_roots) or Path(split.data_root)
        samples = list(report_or_samples)
    by_key = {relative_key(s.path, root): s for s in samples}
    missing = [k for k in split.train + split.val if k not in by_key]
    if missing:
        raise DataError(
            f"the split lists {len(missing)} image(s) not in the data set under {root} "
            f"(e.g. {missing[0]}); was it made for another data set? Re-make it with "
            "`python -m trainer data-summary DIR --split NEW.json`, or restore the images"
        )
    return [by_key[k] for k in split.train], [by_key[k] for k in split.val]
