"""``python -m convert model RUNDIR --mode MODE --out DIR``: one training run to a
gated TFLite model with its card (DIR/<sign>.tflite, DIR/<sign>.card.json).

The gate runs the TFLite file through the device's interpreter wrapper on the
run's held-out split beside the Keras model. A failing gate prints the table,
writes no model and exits 1. ``--fallback`` tries int8, selective int8 (the layers with
the largest quantization error kept in float; convert.selective), dynamic, float16 in
turn.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from convert.tflite import DEFAULT_CALIB_N
from device.core.card import FALLBACK_ORDER, ModelCard, QuantMode, save_card
from device.core.cliutil import UserError
from device.grading.abstain import DEFAULT_ACCEPT

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    """What ``convert_run`` did: the kept model (None when every mode failed) and
    the gate of each mode tried, in order."""

    tflite: Path | None
    card: ModelCard | None
    gates: list[Any] = field(default_factory=list)  # convert.gate.GateResult
    errors: dict[QuantMode, str] = field(default_factory=dict)  # mode -> conversion error


def add_gate_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``convert model`` and ``convert pack``."""
    parser.add_argument("--mode", type=QuantMode, choices=list(QuantMode), default=QuantMode.INT8,
                        help="quantization (default int8; int8_selective keeps the worst layers float)")
    parser.add_argument("--fallback", action="store_true",
                        help="try int8, then selective int8, then dynamic, then float16; keep the "
                             "first that passes")
    parser.add_argument("--skip-mode", type=QuantMode, choices=list(QuantMode), action="append",
                        default=[], metavar="MODE",
                        help="leave MODE out of the --fallback ladder (repeatable), e.g. "
                             "int8_selective for a small network whose layers all round alike")
    parser.add_argument("--calib-n", type=int, default=DEFAULT_CALIB_N, metavar="N",
                        help=f"training images to calibrate int8 on (default {DEFAULT_CALIB_N}; "
                             "fewer leave more held-out activations outside the calibrated range)")
    parser.add_argument("--max-acc-drop", type=float, default=1.0, metavar="POINTS",
                        help="fail when accuracy drops more than this (default 1.0 point)")
    parser.add_argument("--min-agreement", type=float, default=0.98, metavar="FRACTION",
                        help="fail when top-1 agreement with Keras is under this (default 0.98)")
    parser.add_argument("--max-recall-drop", type=float, default=3.0, metavar="POINTS",
                        help="fail when any grade's recall drops more than this (default 3.0)")
    parser.add_argument("--bench-runs", type=int, default=50, metavar="N",
                        help="timed runs for the latency figures (default 50)")
    parser.add_argument("--threads", type=int, default=2, help="interpreter threads (device default 2)")
    parser.add_argument("--brief", action="store_true",
                        help="one line per gate (verdict, accuracy, agreement) instead of its table")
    parser.add_argument("--data", type=Path, default=None,
                        help="data root, when the data set moved since training")
    parser.add_argument("--abstain-accept", type=float, default=DEFAULT_ACCEPT, metavar="FRACTION",
                        help="share of the held-out split the abstention thresholds accept "
                             f"together (default {DEFAULT_ACCEPT})")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("rundir", type=Path, help="training run folder (python -m trainer train --out)")
    parser.add_argument("--out", type=Path, required=True, help="folder for <sign>.tflite and its card")
    add_gate_arguments(parser)


def modes_to_try(mode: QuantMode | str, fallback: bool,
                 skip: Iterable[QuantMode | str] = ()) -> list[QuantMode]:
    """The modes ``--mode`` and ``--fallback`` try, in order, less those in ``skip``
    (``--skip-mode``; never the asked-for mode itself)."""
    mode = QuantMode(mode)
    skipped = {QuantMode(m) for m in skip}
    if mode in skipped:
        raise UserError(f"--skip-mode {mode.value} leaves out the --mode asked for; "
                        "give another --mode instead")
    if not fallback:
        return [mode]
    order = list(FALLBACK_ORDER)
    ladder = order[order.index(mode):] if mode in order else [mode]
    return [m for m in ladder if m not in skipped]


def thresholds_from(args: argparse.Namespace):
    from convert.gate import GateThresholds

    if not 0 <= args.min_agreement <= 1:
        raise UserError(f"--min-agreement {args.min_agreement} must be a fraction 0-1, e.g. 0.98")
    return GateThresholds(max_acc_drop=args.max_acc_drop, min_agreement=args.min_agreement,
                          max_recall_drop=args.max_recall_drop)


def accept_from(args: argparse.Namespace) -> float:
    if not 0 < args.abstain_accept <= 1:
        raise UserError(f"--abstain-accept {args.abstain_accept} must be a fraction in (0, 1], "
                        "e.g. 0.99")
    return float(args.abstain_accept)


def open_run(rundir: Path, data: Path | None = None):
    from trainer.run import RunError, load_run

    try:
        run = load_run(rundir, data_root=data)
    except RunError as exc:
        raise UserError(str(exc)) from exc
    if run.sign is None:
        raise UserError(f"{rundir}: a multi-sign run; pass one of its per-sign folders "
                        f"({', '.join(str(rundir / s.value) for s in run.signs)})")
    return run


def convert_run(run: Any, out_dir: Path, *, modes: Sequence[QuantMode], thresholds: Any,
                calib_n: int = DEFAULT_CALIB_N, bench_runs: int = 50, threads: int = 2,
                echo: Any = print, brief: bool = False,
                accept: float = DEFAULT_ACCEPT) -> Outcome:
    """Convert ``run`` (trainer.run.Run) in each of ``modes`` until one passes the gate;
    write that one and its card into ``out_dir``. ``echo`` receives the gate tables."""
    from convert.gate import evaluate_gate, predict_keras, predict_tflite
    from convert.latency import format_latency, measure
    from convert.tflite import ConversionError, calibration_images, write_tflite
    from device.core.card import CALIBRATED_MODES
    from device.grading.interpreter import GradeModel
    from trainer.model import with_pooled_features

    sign = run.sign
    model = run.load_model()
    val = run.val_samples()
    if not val:
        raise UserError(f"{run.dir}: the held-out split is empty; the gate has nothing to compare on")
    summary = run.data_summary()
    log.debug("%s: loading %d held-out images at %d px", run.dir.name, len(val), run.image_size)
    images = load_samples(val, run.image_size)  # the lesion crop where a box is given
    y_true = [int(s.grades[sign]) for s in val]
    keras_probs = predict_keras(model, images)
    exported = with_pooled_features(model) or model  # pooled features: abstention
    outcome = Outcome(tflite=None, card=None)
    calib = None
    with tempfile.TemporaryDirectory(prefix="convert-") as tmp:
        for mode in modes:
            if mode in CALIBRATED_MODES and calib is None:
                calib = calibration_images(run.train_samples(), run.image_size, n=calib_n,
                                           seed=run.config.seed, load=load_samples)
            log.debug("%s: converting to %s", sign.value, mode)
            try:
                flat, float_layers = _convert(exported, mode, calib)
            except ConversionError as exc:
                outcome.errors[mode] = str(exc)
                echo(f"{sign.value} {mode}: conversion failed: {exc}")
                continue
            candidate = write_tflite(flat, Path(tmp) / f"{sign.value}.{mode}.tflite")
            grade_model = GradeModel(candidate, threads=threads)
            gate = evaluate_gate(y_true, keras_probs, predict_tflite(grade_model, images),
                                 mode=mode, thresholds=thresholds)
            outcome.gates.append(gate)
            echo(f"{sign.value}: {gate.summary()}" if brief
                 else gate.table(synthetic=summary.synthetic))
            if not gate.passed:
                continue
            latency = measure(candidate, model, images[0], runs=bench_runs, threads=threads)
            echo(format_latency(latency))
            gate_info = gate.record().model_copy(update={
                "tried_before": [g.record() for g in outcome.gates[:-1]],
                "conversion_errors": {m.value: e for m, e in outcome.errors.items()},
                "calibration_images": len(calib) if mode in CALIBRATED_MODES else 0})
            final = write_tflite(flat, Path(out_dir) / f"{sign.value}.tflite")
            outcome.tflite = final
            outcome.card = _write_card(run, summary, final, gate, gate_info, latency, float_layers,
                                       images=images if exported is not model else None,
                                       threads=threads, echo=echo, accept=accept)
            return outcome
    return outcome


def _write_card(run: Any, summary: Any, final: Path, gate: Any, gate_info: Any, latency: Any,
                float_layers: list[str], *, images: Any, threads: int, echo: Any,
                accept: float = DEFAULT_ACCEPT) -> Any:
    """Fit the abstention statistics (when the model gives pooled features: ``images``
    are then the held-out crops) and write the card beside ``final``."""
    from convert.abstention import fit_for_run
    from convert.cards import build_card, card_path_for

    abstention = (fit_for_run(run, final, images, threads=threads, load=load_samples,
                              accept=accept)
                  if images is not None else None)
    if abstention is not None:
        echo(_abstention_summary(run.sign.value, abstention))
    card = build_card(
        sign=run.sign, tflite_path=final, image_size=run.image_size, mode=gate.mode,
        backbone=run.backbone, head=run.head, training_data=summary, gate=gate_info,
        metrics_keras=gate.metrics_keras, metrics_tflite=gate.metrics_tflite,
        latency=latency, run_dir=run.dir, abstention=abstention, float_layers=float_layers,
        human_ceiling=_human_ceiling(run),
    )
    save_card(card, card_path_for(final))
    return card


def _human_ceiling(run: Any) -> Any:
    """The run's human ceiling of its sign (metrics.json, the Keras model); None for a run
    evaluated before there was one."""
    from device.core.ceiling import SignCeiling
    from trainer.run import METRICS_FILE

    if not (run.dir / METRICS_FILE).exists():
        return None
    block = (run.metrics().get("human_ceiling") or {}).get(run.sign.value)
    return SignCeiling.model_validate(block) if block else None


_loaded: dict[tuple, Any] = {}


def load_samples(samples: Sequence[Any], image_size: int) -> Any:
    """``trainer.run.load_images``, remembering the last few results: a pack's three
    signs share one split, so their held-out, calibration and training crops are read
    and decoded once rather than three times."""
    from trainer.run import load_images

    key = (image_size, tuple((str(s.path), getattr(s, "box", None)) for s in samples))
    if key not in _loaded:
        while len(_loaded) >= 3:
            _loaded.pop(next(iter(_loaded)))
        _loaded[key] = load_images(samples, image_size)
        _loaded[key].setflags(write=False)  # shared between callers: nobody may edit it
    return _loaded[key]


def _convert(model: Any, mode: QuantMode, calib: Any) -> tuple[bytes, list[str]]:
    """(flatbuffer, layers kept in float) of ``model`` in ``mode``."""
    from convert.tflite import check_builtins_only, convert_keras
    from device.core.card import CALIBRATED_MODES

    if mode is QuantMode.INT8_SELECTIVE:
        from convert.selective import convert_selective

        result = convert_selective(model, calib)
        check_builtins_only(result.flatbuffer, mode)
        return result.flatbuffer, list(result.float_layers)
    return convert_keras(model, mode, calibration=calib if mode in CALIBRATED_MODES else None), []


def run(args: argparse.Namespace) -> int:
    thresholds = thresholds_from(args)
    the_run = open_run(args.rundir, args.data)
    modes = modes_to_try(args.mode, args.fallback, args.skip_mode)
    outcome = convert_run(the_run, args.out, modes=modes, thresholds=thresholds,
                          calib_n=args.calib_n, bench_runs=args.bench_runs, threads=args.threads,
                          brief=args.brief, accept=accept_from(args))
    if outcome.tflite is None:
        print(f"no model written: {', '.join(modes)} failed the gate or conversion "
              f"(thresholds can be changed with --max-acc-drop, --min-agreement, --max-recall-drop)")
        return 1
    card = outcome.card
    print(f"wrote {outcome.tflite} ({card.file_size} bytes, {card.quantization}) and its card "
          f"{outcome.tflite.with_name(outcome.tflite.stem + '.card.json')}")
    return 0


def _abstention_summary(sign: str, info: Any) -> str:
    """One line: each space's threshold and the held-out share accepted (card.AbstentionInfo)."""
    line = (f"{sign}: abstention threshold {info.threshold:.3f} accepts "
            f"{info.heldout_accepted:.1%} of {info.n_heldout} held-out images")
    if info.image_space is not None:
        line += (f"; image statistics {info.image_space.threshold:.3f} accepts "
                 f"{info.image_space.heldout_accepted:.1%}")
    if info.scene_space is not None:
        line += (f"; scene {info.scene_space.threshold:.3f} accepts "
                 f"{info.scene_space.heldout_accepted:.1%} of {info.scene_space.n_heldout} photos")
    if info.combined_heldout_accepted is not None:
        line += f"; together {info.combined_heldout_accepted:.1%}"
    return line
