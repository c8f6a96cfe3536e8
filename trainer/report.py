"""The sweep report, shaped like the paper's Table 3 (rows backbones, columns signs),
with the paper's clinical figures alongside for reference, and best.json.

Our figures come from whatever data the sweep trained on; when that is synthetic
the report says so on its first lines, and no figure of ours is clinical accuracy.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
from pathlib import Path

from device.core.vocab import MODEL_SIGNS, Sign
from trainer.run import METRICS_FILE, read_json, write_json

log = logging.getLogger(__name__)

REPORT_MD = "report.md"
REPORT_CSV = "report.csv"
BEST_JSON = "best.json"
METRICS = ("accuracy", "qwk", "macro_f1")

#: Yoon et al. 2017, Table 3: validation accuracy % on the hospital's clinical images
#: (erythema, excoriation, lichenification). For reference only: other images, other task.
PAPER_TABLE3: dict[str, tuple[float, float, float]] = {
    "inception_v1": (45.16, 49.66, 53.50), "inception_v2": (94.16, 91.00, 84.50),
    "inception_v3": (90.16, 91.33, 80.50), "inception_v4": (89.00, 84.83, 64.00),
    "resnet50_v1": (95.83, 92.33, 77.00), "resnet101_v1": (95.93, 93.00, 80.50),
    "resnet152_v1": (95.16, 91.33, 75.50), "resnet200_v1": (95.16, 92.16, 79.00),
    "resnet50_v2": (95.33, 94.00, 88.00), "resnet101_v2": (95.66, 93.33, 80.50),
    "resnet152_v2": (95.16, 91.66, 80.50), "resnet200_v2": (95.66, 92.66, 75.00),
    "vgg16": (21.33, 90.50, 89.00), "vgg19": (22.66, 89.66, 89.00),
}


def paper_accuracy(backbone: str, sign: Sign) -> float | None:
    row = PAPER_TABLE3.get(backbone)
    return row[list(MODEL_SIGNS).index(sign)] if row and sign in MODEL_SIGNS else None


def collect(sweep_dir: Path, signs: list[Sign], backbones: list[str]) -> dict:
    """{(sign, backbone): metrics dict (+ rundir)} for every finished pair under sweep_dir."""
    found = {}
    for sign in signs:
        for backbone in backbones:
            path = Path(sweep_dir) / sign.value / backbone / METRICS_FILE
            if path.exists():
                m = read_json(path)
                m["rundir"] = str(path.parent)
                found[(sign, backbone)] = m
    return found


def missing_pairs(sweep_dir: Path, signs: list[Sign], backbones: list[str]) -> list[str]:
    found = collect(sweep_dir, signs, backbones)
    return [f"{s.value}/{b}" for b in backbones for s in signs if (s, b) not in found]


def _fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.0f} s"


def _cell(m: dict | None) -> tuple[str, str, str]:
    if m is None:
        return "-", "-", "-"
    lo, hi = m["accuracy_ci95"]
    return (f"{100 * m['accuracy']:.1f} ({100 * lo:.1f}-{100 * hi:.1f})", f"{m['qwk']:.3f}",
            _fmt_time(m.get("train_seconds")))


def write_report(sweep_dir: Path, signs: list[Sign], backbones: list[str], *,
                 metric: str = "accuracy", failures: dict | None = None) -> dict:
    """Write report.md, report.csv and best.json; returns best.json's dict."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    sweep_dir = Path(sweep_dir)
    found = collect(sweep_dir, signs, backbones)
    synthetic = any(m.get("synthetic") for m in found.values())
    any_m = next(iter(found.values()), {})
    best = _best(found, signs, metric, synthetic)
    write_json(sweep_dir / BEST_JSON, best)
    (sweep_dir / REPORT_CSV).write_text(_csv(found, signs, backbones), encoding="utf-8")
    (sweep_dir / REPORT_MD).write_text(
        _markdown(found, signs, backbones, metric, synthetic, any_m, best, failures or {}),
        encoding="utf-8")
    log.info("wrote %s, %s and %s", sweep_dir / REPORT_MD, sweep_dir / REPORT_CSV, sweep_dir / BEST_JSON)
    return best


def _best(found: dict, signs: list[Sign], metric: str, synthetic: bool) -> dict:
    out: dict = {"metric": metric, "synthetic": synthetic, "signs": {}}
    if synthetic:
        out["note"] = "chosen on synthetic data: not clinical accuracy"
    for sign in signs:
        cands = [(m[metric], m["accuracy"], b, m) for (s, b), m in found.items() if s == sign]
        if not cands:
            continue
        value, acc, backbone, m = max(cands, key=lambda c: (c[0], c[1]))
        out["signs"][sign.value] = {"backbone": backbone, metric: value, "accuracy": acc,
                                    "accuracy_ci95": m["accuracy_ci95"], "rundir": m["rundir"]}
    return out


def _csv(found: dict, signs: list[Sign], backbones: list[str]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["sign", "backbone", "image_size", "steps_done", "n_val", "accuracy", "ci95_lo",
                "ci95_hi", "qwk", "macro_f1", "mae", "ece", "params", "train_seconds",
                "images_per_second", "paper_accuracy_clinical", "synthetic", "rundir"])
    for backbone in backbones:
        for sign in signs:
            m = found.get((sign, backbone))
            if m is None:
                continue
            w.writerow([sign.value, backbone, m.get("image_size"), m.get("steps_done"), m["n"],
                        f"{m['accuracy']:.4f}", f"{m['accuracy_ci95'][0]:.4f}",
                        f"{m['accuracy_ci95'][1]:.4f}", f"{m['qwk']:.4f}", f"{m['macro_f1']:.4f}",
                        f"{m['mae']:.4f}", f"{m['ece']:.4f}", m.get("params"), m.get("train_seconds"),
                        m.get("images_per_second", ""), paper_accuracy(backbone, sign) or "", bool(m.get("synthetic")), m["rundir"]])
    return buf.getvalue()


def _markdown(found, signs, backbones, metric, synthetic, any_m, best, failures) -> str:
    lines = ["# Backbone sweep (shaped like Yoon et al. 2017, Table 3)", ""]
    if synthetic:
        lines += ["**Data: SYNTHETIC images from the atopiscan generator. These figures measure the "
                  "pipeline on generated lesions; they are NOT clinical accuracy.**", ""]
    lines += [f"Ours: accuracy % on OUR held-out split with its 95 % bootstrap interval, quadratic "
              f"weighted kappa (κ) and training time per (sign, backbone) pair; image size "
              f"{any_m.get('image_size', '-')} px. "
              "Paper: the accuracy % Yoon et al. 2017 report on their hospital's clinical images "
              "(a different data set; for reference only, not comparable).", ""]
    head = ["backbone", "params"]
    for sign in signs:
        name = sign.value.capitalize()[:3]
        head += [f"{name} ours acc % (95% CI)", f"{name} κ", f"{name} time", f"{name} paper (clinical)"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for backbone in backbones:
        ms = [found.get((s, backbone)) for s in signs]
        params = next((m.get("params") for m in ms if m and m.get("params")), None)
        row = [backbone, f"{params / 1e6:.2f} M" if params else "-"]
        for sign, m in zip(signs, ms, strict=True):
            paper = paper_accuracy(backbone, sign)
            row += [*_cell(m), f"{paper:.2f}" if paper is not None else "-"]
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", f"Best backbone per sign by {metric} (best.json):", ""]
    for sign, b in best["signs"].items():
        lines.append(f"- {sign}: {b['backbone']} ({metric} {b[metric]:.4f}) - {b['rundir']}")
    missing = [f"{s.value}/{b}" for b in backbones for s in signs if (s, b) not in found]
    if missing:
        lines += ["", f"Not finished yet (other shard, still running or failed): {', '.join(missing)}"]
    for pair, why in failures.items():
        lines.append(f"- failed {pair}: {why}")
    lines += ["", f"Written {dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}.", ""]
    return "\n".join(lines)
