"""``python -m convert bench PACK``: per sign, the converted model's latency beside its
Keras original's, measured now in one run on this machine, with the figures its card
and training run recorded (held-out accuracy with its interval, kappa, training time,
the gate's agreement and accuracy change).

The Keras model is found through the card's ``gate.run_dir`` (the training run it was
converted from), so bench runs where the pack was built. Latency is batch 1 after
warm-up, median of ``--runs`` calls (convert.latency); the ratio is Keras median over
TFLite median.
"""

from __future__ import annotations

import argparse
import logging
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from device.core.card import QuantMode
from device.core.cliutil import UserError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BenchRow:
    sign: str
    mode: str
    accuracy: float
    ci95: tuple[float, float]
    qwk: float
    train_seconds: float | None
    agreement: float | None
    acc_change_points: float | None
    tflite_ms: float
    keras_ms: float
    int8_ms: float  # the pack's model when it is int8, else a full-int8 copy timed here

    @property
    def ratio(self) -> float:
        return self.keras_ms / self.tflite_ms if self.tflite_ms > 0 else float("inf")

    @property
    def int8_ratio(self) -> float:
        return self.keras_ms / self.int8_ms if self.int8_ms > 0 else float("inf")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pack", type=Path, help="a model pack (python -m convert pack --out)")
    parser.add_argument("--runs", type=int, default=50, help="timed calls per model (default 50)")
    parser.add_argument("--threads", type=int, default=2, help="interpreter threads (device default 2)")
    parser.add_argument("--data", type=Path, default=None,
                        help="data root, when the data set moved since training")


def _row(sign: str, card: Any, tflite: Path, runs: int, threads: int, data: Path | None) -> BenchRow:
    from convert.cli.model import open_run
    from convert.latency import measure
    from trainer.run import load_image

    run_dir = card.provenance.run_dir
    if not run_dir or not Path(run_dir).is_dir():
        raise UserError(f"{sign}: its card names no training run on this machine ({run_dir}); "
                        "bench needs the Keras model: run it where the pack was built")
    run = open_run(Path(run_dir), data)
    val = run.val_samples()
    image = load_image(val[0].path, card.input_size, val[0].box)
    model = run.load_model()
    lat = measure(tflite, model, image, runs=runs, threads=threads)
    if card.quantization is QuantMode.INT8:
        int8_ms = float(lat["tflite"]["median_ms"])
    else:
        int8_ms = _int8_latency(model, run, image, runs=runs, threads=threads)
    m = card.metrics_tflite
    metrics_file = run.dir / "metrics.json"
    train_s = run.metrics().get("train_seconds") if metrics_file.is_file() else None
    gate = card.gate
    return BenchRow(sign=sign, mode=card.quantization.value, accuracy=float(m.accuracy),
                    ci95=tuple(m.accuracy_ci95) if m.accuracy_ci95 else (math.nan, math.nan),
                    qwk=math.nan if m.qwk is None else float(m.qwk),
                    train_seconds=None if train_s is None else float(train_s),
                    agreement=None if gate is None else gate.agreement,
                    acc_change_points=None if gate is None else -gate.acc_drop_points,
                    tflite_ms=float(lat["tflite"]["median_ms"]),
                    keras_ms=float(lat["keras"]["median_ms"]), int8_ms=int8_ms)


def _int8_latency(model: Any, run: Any, image: Any, *, runs: int, threads: int) -> float:
    """Median invoke time of a full-int8 copy of ``model`` (calibrated as convert does,
    on fewer images: it is timed, not gated)."""
    from convert.latency import tflite_latency
    from convert.tflite import calibration_images, convert_keras, write_tflite

    calib = calibration_images(run.train_samples(), run.image_size, n=100)
    with tempfile.TemporaryDirectory(prefix="convert-bench-int8-") as tmp:
        path = write_tflite(convert_keras(model, QuantMode.INT8, calibration=calib),
                            Path(tmp) / "int8.tflite")
        return float(tflite_latency(path, image, runs=runs, threads=threads)["median_ms"])


def format_table(rows: list[BenchRow]) -> str:
    head = ("sign", "mode", "accuracy % (95% CI)", "QWK", "train s", "agreement %",
            "acc change", "TFLite ms", "Keras ms", "Keras/TFLite", "int8 ms", "Keras/int8")
    body = []
    for r in rows:
        lo, hi = r.ci95
        body.append((
            r.sign, r.mode, f"{100 * r.accuracy:.1f} ({100 * lo:.1f}-{100 * hi:.1f})", f"{r.qwk:.3f}",
            "-" if r.train_seconds is None else f"{r.train_seconds:.0f}",
            "-" if r.agreement is None else f"{100 * r.agreement:.2f}",
            "-" if r.acc_change_points is None else f"{r.acc_change_points:+.2f}",
            f"{r.tflite_ms:.3f}", f"{r.keras_ms:.3f}", f"x{r.ratio:.1f}",
            f"{r.int8_ms:.3f}", f"x{r.int8_ratio:.1f}"))
    widths = [max(len(str(x[i])) for x in [head, *body]) for i in range(len(head))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
                     for line in [head, *body])


def run(args: argparse.Namespace) -> int:
    from device.core.card import load_card
    from device.packs.check import verify_into
    from device.packs.manifest import MANIFEST_NAME, PackManifest

    if args.runs < 1:
        raise UserError("--runs must be at least 1")
    if not args.pack.is_file():
        raise UserError(f"{args.pack}: no such pack file (make one: python -m convert pack)")
    rows, synthetic = [], False
    with tempfile.TemporaryDirectory(prefix="convert-bench-") as tmp:
        report = verify_into(args.pack, Path(tmp), threads=args.threads)
        if not report.ok:
            raise UserError(f"{args.pack}: not a valid pack: {'; '.join(report.problems)}")
        manifest = PackManifest.model_validate_json((Path(tmp) / MANIFEST_NAME).read_text())
        for sign, entry in manifest.models.items():
            card = load_card(Path(tmp) / entry.card)
            synthetic = synthetic or card.training_data.synthetic
            rows.append(_row(sign.value, card, Path(tmp) / entry.model, args.runs, args.threads,
                             args.data))
    print(f"{args.pack}: batch-1 latency, median of {args.runs} calls, {args.threads} interpreter "
          "threads, this machine (not the device)")
    print(format_table(rows))
    print("accuracy, QWK: the TFLite model on the held-out split; agreement and change: against "
          "its Keras model (the gate); train s: the run's training time; int8 ms: the pack's "
          "model when it is int8, else a full-int8 copy converted here for timing only (not gated)")
    if synthetic:
        from trainer.evaluate import SYNTHETIC_NOTE

        print(f"NOTE: {SYNTHETIC_NOTE}")
    return 0
