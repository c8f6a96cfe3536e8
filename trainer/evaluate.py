"""Metrics on the held-out split: one function (``compute_metrics``) that training,
``python -m trainer evaluate`` and ``convert`` (Keras and TFLite alike) all use.

Figures computed on synthetic images are reported with ``synthetic: true`` and are
never clinical accuracy.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from device.core.card import HeldOutMetrics
from device.core.vocab import GRADES, NUM_GRADES, Sign

log = logging.getLogger(__name__)

SYNTHETIC_NOTE = "measured on synthetic images: not clinical accuracy"


def expected_calibration_error(y_true: np.ndarray, probs: np.ndarray, n_bins: int = 10) -> float:
    """ECE over equal-width bins of the top probability (Guo et al. 2017)."""
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == y_true).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        in_bin = (conf > lo) & (conf <= hi) if lo > 0 else (conf >= lo) & (conf <= hi)
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - conf[in_bin].mean())
    return float(ece)


def bootstrap_accuracy_ci(correct: np.ndarray, *, n_boot: int = 1000, seed: int = 0,
                          level: float = 0.95) -> list[float]:
    """Percentile bootstrap interval of the mean of ``correct`` (0/1 per image)."""
    if correct.size == 0:
        return [float("nan"), float("nan")]
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, correct.size, size=(n_boot, correct.size))
    means = correct[idx].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    return [float(np.quantile(means, alpha)), float(np.quantile(means, 1.0 - alpha))]


def compute_metrics(y_true: Sequence[int] | np.ndarray, probs: np.ndarray, *,
                    n_boot: int = 1000, seed: int = 0) -> HeldOutMetrics:
    """Accuracy (+95 % bootstrap CI), macro-F1, quadratic weighted kappa, mean absolute
    grade error, per-grade recall (None for a grade absent from y_true), expected
    calibration error and the 4x4 confusion matrix (rows true grade, columns predicted)."""
    from sklearn.metrics import (
        accuracy_score,
        cohen_kappa_score,
        confusion_matrix,
        f1_score,
        mean_absolute_error,
    )

    y = np.asarray(y_true, dtype=np.int64).reshape(-1)
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != NUM_GRADES or p.shape[0] != y.size:
        raise ValueError(f"probs must have shape ({y.size}, {NUM_GRADES}), got {p.shape}")
    if y.size == 0:
        raise ValueError("no held-out images to evaluate: the validation split is empty")
    if y.min() < 0 or y.max() >= NUM_GRADES:
        raise ValueError(f"grades must be 0..{NUM_GRADES - 1}, got {sorted(set(y.tolist()))}")
    pred = p.argmax(axis=1)
    labels = [int(g) for g in GRADES]
    cm = confusion_matrix(y, pred, labels=labels)
    if np.array_equal(y, pred):
        qwk = 1.0  # kappa is 0/0 when one grade is all there is; perfect agreement is 1
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            qwk = float(cohen_kappa_score(y, pred, labels=labels, weights="quadratic"))
        if not np.isfinite(qwk):
            qwk = 0.0
    row = cm.sum(axis=1)
    recall = [float(cm[i, i] / row[i]) if row[i] else None for i in range(NUM_GRADES)]
    correct = (pred == y).astype(np.float64)
    return HeldOutMetrics(
        n=int(y.size),
        accuracy=float(accuracy_score(y, pred)),
        accuracy_ci95=bootstrap_accuracy_ci(correct, n_boot=n_boot, seed=seed),
        macro_f1=float(f1_score(y, pred, average="macro", zero_division=0)),
        qwk=qwk,
        mae=float(mean_absolute_error(y, pred)),
        recall_per_grade=recall,
        ece=expected_calibration_error(y, p),
        confusion=cm.astype(int).tolist(),
    )


def metrics_of(block: dict) -> HeldOutMetrics:
    """The held-out figures of one block of metrics.json (which adds run facts beside them)."""
    return HeldOutMetrics.model_validate({k: v for k, v in block.items()
                                          if k in HeldOutMetrics.model_fields})


def save_confusion(metrics: HeldOutMetrics, png: Path, json_path: Path | None = None, *, title: str = "") -> None:
    """Confusion matrix as JSON (with the grade labels) and as a PNG (matplotlib Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from trainer.run import write_json

    cm = np.asarray(metrics.confusion)
    names = [g.label for g in GRADES]
    if json_path is not None:
        write_json(json_path, {"rows": "true grade", "columns": "predicted grade",
                               "labels": names, "matrix": cm.tolist()})
    fig, ax = plt.subplots(figsize=(4.2, 3.8), dpi=100)
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(NUM_GRADES), names, rotation=30)
    ax.set_yticks(range(NUM_GRADES), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    vmax = cm.max() if cm.size else 0
    for i in range(NUM_GRADES):
        for j in range(NUM_GRADES):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center",
                    color="white" if cm[i, j] > vmax / 2 else "black")
    ax.set_title(title or f"accuracy {metrics.accuracy:.3f} (n={metrics.n})", fontsize=9)
    fig.tight_layout()
    fig.savefig(png)
    plt.close(fig)


def predict_samples(model, samples, image_size: int, *,
                    batch: int = 64) -> np.ndarray | dict[str, np.ndarray]:
    """Probabilities (N, 4) of ``model`` on the samples' images via trainer.run.load_image;
    a multi-output model gives {output name: (N, 4)} from one pass over the images."""
    from trainer.run import load_images

    out: list = []
    for start in range(0, len(samples), batch):
        chunk = samples[start:start + batch]
        x = load_images(chunk, image_size)
        if len(chunk) < batch:  # one batch shape: no graph retracing for the last one
            x = np.concatenate([x, np.zeros((batch - len(chunk), *x.shape[1:]), x.dtype)])
        y = model.predict_on_batch(x)
        if isinstance(y, dict):
            out.append({k: np.asarray(v, dtype=np.float64)[:len(chunk)] for k, v in y.items()})
        else:
            out.append(np.asarray(y, dtype=np.float64)[:len(chunk)])
    if not out:
        return np.zeros((0, NUM_GRADES))
    if isinstance(out[0], dict):
        return {k: np.concatenate([o[k] for o in out]) for k in out[0]}
    return np.concatenate(out)


def evaluate_run(run, *, model=None, write: bool = True, extra: dict | None = None,
                 probs=None) -> dict:
    """Evaluate a run (trainer.run.Run) on its held-out split and write metrics.json,
    confusion.json and confusion.png. Multi-sign runs get one block per sign.
    ``probs``: the model's predictions on the held-out split when the caller has them
    already (``predict_samples``' result for ``run.val_samples()``); else predicted here."""
    from trainer.run import CONFUSION_JSON, CONFUSION_PNG, METRICS_FILE, write_json

    val = run.val_samples()
    if not val:
        raise ValueError("no held-out images to evaluate: the validation split is empty")
    if probs is not None and len(next(iter(probs.values())) if isinstance(probs, dict)
                                 else probs) != len(val):
        probs = None  # made for another split: predict again
    if probs is None:
        model = model if model is not None else run.load_model()
    header = {"sign": run.config.sign, "backbone": run.backbone,
              "image_size": run.image_size, "head": run.head, "synthetic": run.synthetic,
              "split": "val", "n_train": len(run.train_samples())}
    if run.synthetic:
        header["note"] = SYNTHETIC_NOTE
    ceiling: dict[str, dict] = {}
    if run.config.multi_sign:
        result = dict(header, per_sign={})
        all_probs = probs if probs is not None else predict_samples(model, val, run.image_size)
        for sign in run.signs:
            graded = [i for i, s in enumerate(val) if sign in s.grades]
            probs = all_probs[sign.value][graded]
            m = compute_metrics([int(val[i].grades[sign]) for i in graded], probs)
            result["per_sign"][sign.value] = m.model_dump(exclude_none=True)
            ceiling[sign.value] = _ceiling(run, [val[i] for i in graded], probs, sign)
            if write:
                save_confusion(m, run.dir / f"confusion_{sign.value}.png",
                               run.dir / f"confusion_{sign.value}.json", title=_title(run, sign, m))
    else:
        sign: Sign = run.sign
        if probs is None:
            probs = predict_samples(model, val, run.image_size)
        m = compute_metrics([int(s.grades[sign]) for s in val], probs)
        result = dict(header, **m.model_dump(exclude_none=True))
        ceiling[sign.value] = _ceiling(run, val, probs, sign)
        if write:
            save_confusion(m, run.dir / CONFUSION_PNG, run.dir / CONFUSION_JSON,
                           title=_title(run, sign, m))
    result["labels"] = run.config.labels.value
    result["human_ceiling"] = ceiling
    result.update(extra or {})
    if write:
        write_json(run.dir / METRICS_FILE, result)
    return result


def _ceiling(run, samples, probs: np.ndarray, sign: Sign) -> dict:
    """metrics.json's human_ceiling of one sign: the model as one more rater."""
    from trainer.ceiling import sign_ceiling

    c = sign_ceiling(samples, np.asarray(probs).argmax(axis=1), sign, simulated=run.synthetic)
    return c.model_dump(mode="json")


def _title(run, sign: Sign, m: HeldOutMetrics) -> str:
    lo, hi = m.accuracy_ci95 or (float("nan"), float("nan"))
    tag = " [synthetic]" if run.synthetic else ""
    return f"{sign.value} / {run.backbone}{tag}\nacc {m.accuracy:.3f} ({lo:.3f}-{hi:.3f}), n={m.n}"


def print_run_metrics(metrics: dict, backbone: str) -> None:
    """The CLI's report of a run's metrics.json: one block per sign, then the synthetic note."""
    blocks = metrics.get("per_sign") or {metrics.get("sign"): metrics}
    for name, m in blocks.items():
        print(f"{name} / {backbone}, held-out split: {format_metrics(metrics_of(m))}")
    print_ceiling(metrics)
    if metrics.get("synthetic"):
        print(f"NOTE: {SYNTHETIC_NOTE}")


def print_ceiling(metrics: dict) -> None:
    """The human ceiling of metrics.json, one line per sign (nothing for an older file)."""
    from device.core.ceiling import SIMULATED_NOTE, SignCeiling
    from trainer.ceiling import format_ceiling

    ceiling = metrics.get("human_ceiling") or {}
    if ceiling:
        print(f"human ceiling (model trained on {metrics.get('labels', 'consensus')} labels; "
              "95 % bootstrap intervals over lesions):")
    simulated = False
    for name, block in ceiling.items():
        c = SignCeiling.model_validate(block)
        simulated |= c.simulated_raters
        print("  " + format_ceiling(name, c))
    if simulated:
        print(f"NOTE: {SIMULATED_NOTE}")


def format_metrics(m: HeldOutMetrics) -> str:
    """One human-readable line per figure, for the CLI."""
    lo, hi = m.accuracy_ci95 or (float("nan"), float("nan"))
    rec = ", ".join("-" if r is None else f"{r:.2f}" for r in m.recall_per_grade)
    return (f"accuracy {m.accuracy:.4f} (95% CI {lo:.4f}-{hi:.4f}), macro-F1 {m.macro_f1:.4f}, "
            f"QWK {m.qwk:.4f}, MAE {m.mae:.4f}, ECE {m.ece:.4f}, n={m.n}\n"
            f"recall per grade 0-3: {rec}")
