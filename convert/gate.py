"""The accuracy gate: a converted model must grade the held-out split like its
Keras original, measured through the device's own interpreter wrapper.

Both sides are scored with ``trainer.evaluate.compute_metrics`` on the same
images (``trainer.run.load_image``). The gate fails when accuracy drops by more
than ``max_acc_drop`` points, top-1 agreement falls under ``min_agreement``, or
any grade's recall drops by more than ``max_recall_drop`` points.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from device.core.card import GateRecord, GateThresholds, HeldOutMetrics, QuantMode
from device.core.vocab import GRADES, NUM_GRADES

log = logging.getLogger(__name__)

__all__ = ["GateResult", "GateThresholds", "evaluate_gate", "predict_keras", "predict_tflite"]


@dataclass
class GateResult:
    mode: QuantMode
    thresholds: GateThresholds
    metrics_keras: HeldOutMetrics
    metrics_tflite: HeldOutMetrics
    acc_drop_points: float
    agreement: float
    recall_change_points: list[float | None]
    max_prob_diff: float
    n: int
    reasons: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.reasons

    def record(self) -> GateRecord:
        """What the model card keeps of this gate."""
        return GateRecord(
            mode=self.mode, passed=self.passed, reasons=list(self.reasons),
            thresholds=self.thresholds, n=self.n,
            accuracy_keras=self.metrics_keras.accuracy,
            accuracy_tflite=self.metrics_tflite.accuracy,
            acc_drop_points=round(self.acc_drop_points, 4),
            agreement=round(self.agreement, 6),
            recall_change_points=[None if r is None else round(r, 4)
                                  for r in self.recall_change_points],
            max_prob_diff=round(self.max_prob_diff, 6),
        )

    def summary(self) -> str:
        """One line: the verdict and the figures the gate checked."""
        verdict = "PASSED" if self.passed else "FAILED: " + "; ".join(self.reasons)
        return (f"gate {self.mode.value} {verdict} (accuracy {100 * self.metrics_keras.accuracy:.2f} "
                f"-> {100 * self.metrics_tflite.accuracy:.2f} %, top-1 agreement "
                f"{100 * self.agreement:.2f} %, {self.n} held-out images)")

    def table(self, *, synthetic: bool = False) -> str:
        """The figures side by side, with the verdict of each check."""
        t, k = self.metrics_tflite, self.metrics_keras
        th = self.thresholds

        def mark(ok: bool) -> str:
            return "ok" if ok else "FAIL"

        rows = [
            ("", "Keras", f"TFLite {self.mode}", "change", "check"),
            ("accuracy %", f"{100 * k.accuracy:.2f}", f"{100 * t.accuracy:.2f}",
             f"{0.0 - self.acc_drop_points + 0.0:+.2f}",
             f"{mark(self.acc_drop_points <= th.max_acc_drop)} (drop <= {th.max_acc_drop:g})"),
        ]
        for g, change in zip(GRADES, self.recall_change_points, strict=True):
            rk, rt = k.recall_per_grade[g], t.recall_per_grade[g]
            if change is None:
                rows.append((f"recall {g.label} %", "-", "-", "-", "(no images)"))
                continue
            rows.append((f"recall {g.label} %", f"{100 * rk:.2f}", f"{100 * rt:.2f}", f"{change + 0.0:+.2f}",
                         f"{mark(-change <= th.max_recall_drop)} (drop <= {th.max_recall_drop:g})"))
        rows.append(("top-1 agreement %", "", f"{100 * self.agreement:.2f}", "",
                     f"{mark(self.agreement >= th.min_agreement)} (>= {100 * th.min_agreement:g})"))
        rows.append(("max |prob diff|", "", f"{self.max_prob_diff:.4f}", "", "(reported)"))
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
        verdict = "PASSED" if self.passed else "FAILED: " + "; ".join(self.reasons)
        note = " [synthetic data: not clinical accuracy]" if synthetic else ""
        return (f"accuracy gate, {self.mode}, {self.n} held-out images{note}\n"
                + "\n".join(lines) + f"\ngate {verdict}")


def evaluate_gate(y_true: Sequence[int], keras_probs: np.ndarray, tflite_probs: np.ndarray, *,
                  mode: QuantMode | str, thresholds: GateThresholds = GateThresholds()
                  ) -> GateResult:
    """Compare the two models' probabilities on the same held-out images."""
    from trainer.evaluate import compute_metrics

    kp = np.asarray(keras_probs, np.float64)
    tp = np.asarray(tflite_probs, np.float64)
    if kp.shape != tp.shape or kp.shape[1:] != (NUM_GRADES,):
        raise ValueError(f"probability shapes differ: Keras {kp.shape}, TFLite {tp.shape}")
    mk, mt = compute_metrics(y_true, kp), compute_metrics(y_true, tp)
    drop = 100.0 * (mk.accuracy - mt.accuracy)
    agreement = float(np.mean(kp.argmax(1) == tp.argmax(1)))
    changes: list[float | None] = []
    for rk, rt in zip(mk.recall_per_grade, mt.recall_per_grade, strict=True):
        changes.append(None if rk is None or rt is None else 100.0 * (rt - rk))
    result = GateResult(
        mode=QuantMode(mode), thresholds=thresholds, metrics_keras=mk, metrics_tflite=mt,
        acc_drop_points=drop, agreement=agreement, recall_change_points=changes,
        max_prob_diff=float(np.max(np.abs(kp - tp))) if kp.size else 0.0, n=int(kp.shape[0]),
    )
    eps = 1e-9  # a drop of exactly the threshold passes
    if drop > thresholds.max_acc_drop + eps:
        result.reasons.append(f"accuracy dropped {drop:.2f} points (> {thresholds.max_acc_drop:g})")
    if agreement < thresholds.min_agreement - eps:
        result.reasons.append(
            f"top-1 agreement {100 * agreement:.2f} % (< {100 * thresholds.min_agreement:g} %)")
    for g, change in zip(GRADES, changes, strict=True):
        if change is not None and -change > thresholds.max_recall_drop + eps:
            result.reasons.append(
                f"recall of grade {int(g)} ({g.label}) dropped {-change:.2f} points "
                f"(> {thresholds.max_recall_drop:g})")
    if len(set(kp.argmax(1).tolist())) == 1 and kp.shape[0] > 1:
        log.warning("the Keras model gives the same grade to all %d held-out images: the gate "
                    "compares two models that learned nothing; train longer", kp.shape[0])
    log.debug("gate %s: %s", mode, "passed" if result.passed else "; ".join(result.reasons))
    return result


def predict_keras(model: Any, images: np.ndarray, *, batch: int = 32) -> np.ndarray:
    """Keras probabilities (N, 4) for uint8 images, in batches (inference mode)."""
    out = []
    for start in range(0, len(images), batch):
        y = model.predict_on_batch(images[start:start + batch])
        out.append(np.asarray(y, np.float64).reshape(-1, NUM_GRADES))
    return np.concatenate(out) if out else np.zeros((0, NUM_GRADES))


def predict_tflite(grade_model: Any, images: np.ndarray) -> np.ndarray:
    """Probabilities (N, 4) through device.grading.interpreter.GradeModel, one image at a time
    as the device runs it."""
    if len(images) == 0:
        return np.zeros((0, NUM_GRADES))
    return np.stack([grade_model.predict(img) for img in images]).astype(np.float64)
