"""``python -m trainer bench-labels``: consensus labels against the raters' soft labels.

Generates a synthetic set with K simulated raters of known bias and noise
(``synth --raters``), trains the same multi-sign model twice on it, once on the
consensus (``--labels consensus``) and once on the raters' grades (``--labels raters``),
and prints, per sign, held-out accuracy and expected calibration error (ECE) against the
consensus, against the generator's true grade, and against each rater's grade (every
rater's grade a label of the same prediction). A printed benchmark, not a test: one
seed of a short run moves by a few points. Synthetic images and simulated raters: never
clinical figures.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

LABELS = ("consensus", "raters")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="work folder (data and runs)")
    parser.add_argument("--n", type=int, default=2400, help="synthetic images (default 2400)")
    parser.add_argument("--raters", type=int, default=3, help="simulated raters (default 3)")
    parser.add_argument("--steps", type=int, default=800, help="training steps per run")
    parser.add_argument("--image-size", type=int, default=64, help="model input size")
    parser.add_argument("--seed", type=int, default=0, help="data and training seed")
    parser.add_argument("--temperature", action=argparse.BooleanOptionalAction, default=True,
                        help="the recipe's temperature scaling (--no-temperature: raw softmax)")


def _true_grades(data: Path) -> dict[str, dict[str, int]]:
    """manifest path -> {sign: true grade} from the generator's true_<sign> columns."""
    with (data / "manifest.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    return {r["path"]: {k[len("true_"):]: int(v) for k, v in r.items() if k.startswith("true_")}
            for r in rows}


def run(args: argparse.Namespace) -> int:
    from device.core.vocab import MODEL_SIGNS
    from trainer.__main__ import main as trainer_main
    from trainer.evaluate import compute_metrics, predict_samples
    from trainer.run import load_run

    data = args.out / "data"
    if not (data / "manifest.csv").exists():
        rc = trainer_main(["synth", "--out", str(data), "--n", str(args.n), "--seed",
                           str(args.seed), "--size", "96", "--raters", str(args.raters)])
        if rc != 0:
            return rc
    truth = _true_grades(data)
    lines = []
    for labels in LABELS:
        out = args.out / f"run-{labels}{'' if args.temperature else '-raw'}"
        rc = trainer_main(["train", "--multi-sign", "--data", str(data), "--labels", labels,
                           "--image-size", str(args.image_size), "--steps", str(args.steps),
                           "--eval-every", str(args.steps), "--seed", str(args.seed),
                           "--val-fraction", "0.3", "--quiet", "--out", str(out),
                           "--temperature" if args.temperature else "--no-temperature"])
        if rc != 0:
            return rc
        r = load_run(out)
        val = r.val_samples()
        probs = predict_samples(r.load_model(), val, r.image_size)
        for sign in MODEL_SIGNS:
            p = probs[sign.value]
            vs_consensus = compute_metrics([s.grades[sign] for s in val], p, n_boot=10)
            vs_truth = compute_metrics(
                [truth[str(s.path.relative_to(data))][sign.value] for s in val], p, n_boot=10)
            # Every rater's grade as a label of the same prediction: how often a rater agrees
            # with the model's top grade, against how sure the model is.
            rows, grades = zip(*((i, g) for i, s in enumerate(val)
                                 for g in s.rater_grades.get(sign, {}).values()), strict=True)
            vs_raters = compute_metrics(list(grades), p[list(rows)], n_boot=10)
            lines.append(f"{labels:<9} {sign.value:<15} consensus: acc {vs_consensus.accuracy:.3f} "
                         f"ECE {vs_consensus.ece:.3f} | truth: acc {vs_truth.accuracy:.3f} "
                         f"ECE {vs_truth.ece:.3f} | a rater: acc {vs_raters.accuracy:.3f} "
                         f"ECE {vs_raters.ece:.3f} (n={vs_truth.n})")
    print(f"\nbench-labels: {args.n} synthetic images, {args.raters} simulated raters, "
          f"{args.steps} steps at {args.image_size} px, seed {args.seed}, temperature "
          f"{'on' if args.temperature else 'off'}; held-out accuracy and ECE (not clinical)")
    print("\n".join(lines))
    return 0
