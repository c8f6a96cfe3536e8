"""``python -m convert pack``: three runs (or a sweep's best) to one verified pack.

Each source is a training run folder (converted here through the accuracy gate)
or a folder that ``convert model`` already wrote (a .tflite with its card). The
pack's golden images are 8 held-out images per sign, spread over the grades and
chosen where the model's top grade is clear, so another interpreter build cannot
flip them within the self-test's tolerance.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from convert.cli.model import (
    accept_from,
    add_gate_arguments,
    convert_run,
    modes_to_try,
    open_run,
    thresholds_from,
)
from device.core.cliutil import UserError
from device.core.vocab import MODEL_SIGNS, Sign, parse_sign

log = logging.getLogger(__name__)

GOLDEN_MARGIN = 0.1  # top-1 minus top-2 probability wanted for a golden image
BEST_FILE = "best.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    for sign in MODEL_SIGNS:
        parser.add_argument(f"--{sign.value}", type=Path, metavar="DIR",
                            help=f"{sign.value}: training run folder, or a `convert model` output folder")
    parser.add_argument("--from-sweep", type=Path, metavar="SWEEPDIR",
                        help=f"take each sign's run from SWEEPDIR/{BEST_FILE} (python -m trainer sweep)")
    parser.add_argument("--out", type=Path, required=True, help="pack file to write, e.g. demo.pack")
    parser.add_argument("--work", type=Path, default=None,
                        help="folder for the converted models (default: beside --out, PACK.models/)")
    parser.add_argument("--sign-key", type=Path, default=None,
                        help="Ed25519 private key (python -m convert keygen) to sign the manifest")
    parser.add_argument("--pack-version", default=None,
                        help="pack version (default: UTC date and time, e.g. 2026.11.24-153000)")
    parser.add_argument("--min-device-version", default=None,
                        help="oldest device software that may install it (default: this version)")
    add_gate_arguments(parser)


def sources_from_sweep(sweep_dir: Path) -> dict[Sign, Path]:
    """Each sign's chosen run from SWEEPDIR/best.json (trainer.report): {"signs": {sign:
    {"backbone": ..., "rundir": ...}}, ...}; run folders absolute or relative to SWEEPDIR."""
    best = Path(sweep_dir) / BEST_FILE
    try:
        data = json.loads(best.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise UserError(f"{best}: not found; run `python -m trainer sweep` to completion first") from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{best}: unreadable ({exc})") from exc
    if isinstance(data, dict) and isinstance(data.get("signs"), dict):
        data = data["signs"]
    if not isinstance(data, dict):
        raise UserError(f"{best}: expected {{\"signs\": {{sign: {{\"rundir\": ...}}}}}}")
    out: dict[Sign, Path] = {}
    for key, entry in data.items():
        try:
            sign = parse_sign(key)
        except ValueError:
            continue  # bookkeeping keys (metric, synthetic, note)
        run_dir = entry.get("rundir") if isinstance(entry, dict) else entry
        if not run_dir:
            raise UserError(f"{best}: {key} names no rundir")
        run_dir = Path(run_dir)
        out[sign] = run_dir if run_dir.is_absolute() else Path(sweep_dir) / run_dir
    if not out:
        raise UserError(f"{best}: names no run for any sign; did the sweep finish a run?")
    return out


def pick_golden(model_path: Path, samples: list[Any], image_size: int, *, n: int = 8,
                threads: int = 2, seed: int = 0, max_candidates: int = 64) -> list[np.ndarray]:
    """n held-out images, round-robin over the true grades, preferring a clear top grade."""
    from device.grading.interpreter import GradeModel
    from trainer.run import load_image

    sign_grades = [next(iter(s.grades.values())) for s in samples]
    rng = np.random.default_rng(seed)
    by_grade: dict[int, list[Any]] = {}
    for i in rng.permutation(len(samples)):
        by_grade.setdefault(int(sign_grades[i]), []).append(samples[i])
    queues = [by_grade[g] for g in sorted(by_grade)]
    order = []
    while any(queues) and len(order) < max_candidates:
        for q in queues:
            if q and len(order) < max_candidates:
                order.append(q.pop(0))
    model = GradeModel(model_path, threads=threads)
    clear, unclear = [], []
    for s in order:
        img = load_image(s.path, image_size)
        top2 = np.sort(model.predict(img))[-2:]
        (clear if top2[1] - top2[0] >= GOLDEN_MARGIN else unclear).append((top2[1] - top2[0], img))
        if len(clear) >= n:
            break
    unclear.sort(key=lambda t: -t[0])
    return [img for _, img in (clear + unclear)[:n]]


def _source_samples(run: Any, sign: Sign) -> list[Any]:
    return [s for s in run.val_samples() if s.grades.get(sign) is not None]


def run(args: argparse.Namespace) -> int:
    from convert.packer import GOLDEN_PER_SIGN, PackError, write_pack

    given = {s: getattr(args, s.value) for s in MODEL_SIGNS if getattr(args, s.value)}
    if args.from_sweep:
        sources = sources_from_sweep(args.from_sweep)
        sources.update(given)  # an explicit --<sign> overrides the sweep's choice
    else:
        sources = given
    missing = [s.value for s in MODEL_SIGNS if s not in sources]
    if missing:
        raise UserError(f"no model for {', '.join(missing)}: give --{missing[0]} DIR or --from-sweep")
    if args.sign_key is not None and not args.sign_key.is_file():
        raise UserError(f"{args.sign_key}: signing key not found (make one: python -m convert keygen)")
    thresholds = thresholds_from(args)
    work = args.work or args.out.with_name(args.out.stem + ".models")
    models, golden = {}, {}
    for sign in MODEL_SIGNS:
        found = _model_for(sign, sources[sign], args, work, thresholds)
        if found is None:
            print(f"no pack written: {sign.value} failed the accuracy gate")
            return 1
        tflite, card, the_run = found
        models[sign] = (tflite, card)
        if the_run is not None:
            golden[sign] = pick_golden(tflite, _source_samples(the_run, sign), card.input_size[0],
                                       n=GOLDEN_PER_SIGN, threads=args.threads)
        else:
            log.warning("%s: no training run found for its card; golden images will be random", sign.value)
    version = args.pack_version or dt.datetime.now(dt.timezone.utc).strftime("%Y.%m.%d-%H%M%S")
    try:
        pack = write_pack(models, args.out, pack_version=version, golden_images=golden,
                          sign_key=args.sign_key, min_device_version=args.min_device_version,
                          threads=args.threads)
    except PackError as exc:
        raise UserError(str(exc)) from exc
    print(f"wrote {pack} (pack version {version}, {'signed' if args.sign_key else 'UNSIGNED'})")
    for sign, (_, card) in models.items():
        acc = card.metrics_tflite.accuracy
        tag = " [synthetic data]" if card.training_data.synthetic else ""
        print(f"  {sign.value}: {card.backbone} {card.quantization}, {card.file_size} bytes, "
              f"held-out accuracy {acc:.4f}{tag}")
    return _self_check(pack, args.sign_key, args.threads)


def _model_for(sign: Sign, src: Path, args: argparse.Namespace, work: Path,
               thresholds: Any) -> tuple[Path, Any, Any] | None:
    """(tflite, card, run or None) for one sign: an already converted folder as it is, or
    a training run converted now; None when the run fails the accuracy gate."""
    from convert.cards import find_converted
    from device.core.card import CardError

    if not src.is_dir():
        raise UserError(f"--{sign.value} {src}: not a folder")
    try:
        converted = find_converted(src)
    except (ValueError, CardError) as exc:
        raise UserError(str(exc)) from exc
    if converted is not None:
        tflite, card = converted
        if card.sign != sign:
            raise UserError(f"{src}: its card grades {card.sign.value}, not {sign.value}")
        run_dir = card.provenance.run_dir
        the_run = open_run(Path(run_dir), args.data) if run_dir and Path(run_dir).is_dir() else None
        print(f"{sign.value}: using converted {tflite} ({card.quantization})")
        return tflite, card, the_run
    the_run = open_run(src, args.data)
    if the_run.sign != sign:
        raise UserError(f"{src}: this run grades {the_run.sign.value}, not {sign.value}")
    modes = modes_to_try(args.mode, args.fallback, args.skip_mode)
    outcome = convert_run(the_run, work / sign.value, modes=modes,
                          thresholds=thresholds, calib_n=args.calib_n,
                          bench_runs=args.bench_runs, threads=args.threads, brief=args.brief,
                          accept=accept_from(args))
    if outcome.tflite is None:
        return None
    return outcome.tflite, outcome.card, the_run


def _self_check(pack: Path, sign_key: Path | None, threads: int) -> int:
    """Run the device's own checks on the pack just written."""
    from convert.signing import load_private_key
    from device.packs.install import verify_pack

    public = load_private_key(sign_key).public_key() if sign_key is not None else None
    report = verify_pack(pack, public_key=public, threads=threads)
    if not report.ok:
        print(f"{pack}: the device would REFUSE this pack:")
        for problem in report.problems:
            print(f"  - {problem}")
        return 1
    print(f"verified as the device will: ok{' (signature checked)' if sign_key else ''}")
    return 0
