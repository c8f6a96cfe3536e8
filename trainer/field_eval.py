"""A run against a device export (``python -m trainer evaluate RUNDIR --data EXPORT``):
how a candidate pack would have graded the clinic's own reviewed scans, with the
staff's final grades as truth, beside how the pack in the field graded them.

- The export is a folder written by ``python -m device export-dataset`` (its
  ``provenance.json`` says so); rows whose grade is blank (half points, or a sign
  nobody graded) do not count for that sign.
- Images the run trained on (same content hash as one of its training images) are
  left out and counted, so a run trained on an earlier export is not scored on its
  own training data. When the run's data cannot be read, the check is skipped and
  the result says so.
- Results go to ``RUNDIR/field-eval/<export name>.json``; the run's metrics.json is
  left alone.
"""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from device.core.card import HeldOutMetrics
from device.core.vocab import NUM_GRADES, Sign
from trainer.data import MANIFEST_NAME, load_dataset
from trainer.roots import file_sha256

log = logging.getLogger(__name__)

#: provenance.json "format" of a device export (written by device/export/rows.py).
DEVICE_EXPORT_FORMAT = "atopiscan.device-export/"
FIELD_DIR = "field-eval"
NOTE = ("staff grades on this device's reviewed scans as truth: one clinic's data, a check "
        "before flashing, not a clinical validation")


def is_device_export(root: Path) -> bool:
    path = Path(root) / "provenance.json"
    try:
        fmt = json.loads(path.read_text(encoding="utf-8")).get("format", "")
    except (OSError, ValueError, AttributeError):
        return False
    return isinstance(fmt, str) and fmt.startswith(DEVICE_EXPORT_FORMAT)


@dataclass(frozen=True)
class SignFieldEval:
    """One sign: the candidate run and the pack that graded the scans on the device."""

    n: int
    candidate: HeldOutMetrics
    field_pack: HeldOutMetrics | None  # None: the export has no model grades for it

    def to_dict(self) -> dict:
        return {"n": self.n, "candidate": self.candidate.model_dump(mode="json"),
                "field_pack": self.field_pack.model_dump(mode="json") if self.field_pack else None}


@dataclass(frozen=True)
class FieldEval:
    export: Path
    n_export: int
    left_out_trained_on: int | None  # None: the run's training data could not be checked
    per_sign: dict[Sign, SignFieldEval]

    def to_dict(self) -> dict:
        return {"export": str(self.export), "n_export": self.n_export,
                "left_out_trained_on": self.left_out_trained_on,
                "per_sign": {s.value: b.to_dict() for s, b in self.per_sign.items()},
                "note": NOTE}


def _field_grades(root: Path) -> dict[Path, dict[str, str]]:
    with open(root / MANIFEST_NAME, newline="", encoding="utf-8") as fh:
        return {(root / row["path"]).resolve(): row for row in csv.DictReader(fh)}


def _training_hashes(run) -> set[str] | None:
    try:
        return {file_sha256(s.path) for s in run.train_samples()}
    except (OSError, ValueError) as exc:  # the run's data moved or is gone
        log.warning("cannot read the run's training data (%s): images it trained on are not "
                    "left out", exc)
        return None


def _one_hot(grades: list[int]) -> np.ndarray:
    out = np.zeros((len(grades), NUM_GRADES))
    out[np.arange(len(grades)), grades] = 1.0
    return out


def evaluate_on_export(run, export: Path, *, model=None, write: bool = True) -> FieldEval:
    from trainer.evaluate import compute_metrics, predict_samples
    from trainer.run import write_json

    export = Path(export).resolve()
    samples = load_dataset(export, check_images=False).samples
    trained = _training_hashes(run)
    left_out = 0
    if trained is not None:
        kept = [s for s in samples if file_sha256(s.path) not in trained]
        left_out = len(samples) - len(kept)
        samples = kept
    if not samples:
        raise ValueError(f"{export}: no image left to evaluate (all {left_out} were in the "
                         "run's training data)")
    field = _field_grades(export)
    model = model if model is not None else run.load_model()
    probs = predict_samples(model, samples, run.image_size)
    per_sign = {}
    for sign in run.signs:
        idx = [i for i, s in enumerate(samples) if sign in s.grades]
        if not idx:
            continue
        truth = [int(samples[i].grades[sign]) for i in idx]
        p = probs[sign.value][idx] if isinstance(probs, dict) else probs[idx]
        fielded = [(t, field[samples[i].path.resolve()].get(f"{sign.value}_model", ""))
                   for t, i in zip(truth, idx, strict=True)]
        fielded = [(t, int(g)) for t, g in fielded if g.strip()]
        pack = (compute_metrics([t for t, _ in fielded], _one_hot([g for _, g in fielded]))
                if fielded else None)
        per_sign[sign] = SignFieldEval(len(idx), compute_metrics(truth, p), pack)
    result = FieldEval(export, len(samples) + left_out, None if trained is None else left_out,
                       per_sign)
    if write:
        out = run.dir / FIELD_DIR / f"{export.name}.json"
        out.parent.mkdir(exist_ok=True)
        write_json(out, result.to_dict())
    return result


def print_field_eval(result: FieldEval, backbone: str) -> None:
    from trainer.evaluate import format_metrics

    left = ("not checked: the run's training data could not be read"
            if result.left_out_trained_on is None
            else f"{result.left_out_trained_on} left out: the run trained on them")
    print(f"device export {result.export}: {result.n_export} images ({left})")
    for sign, block in result.per_sign.items():
        print(f"{sign.value} / {backbone} (candidate), staff grades as truth: "
              f"{format_metrics(block.candidate)}")
        if block.field_pack is not None:
            m = block.field_pack
            print(f"{sign.value}, the pack that graded them on the device: accuracy "
                  f"{m.accuracy:.4f}, QWK {m.qwk:.4f}, MAE {m.mae:.4f}, n={m.n}")
    print(f"NOTE: {NOTE}")
