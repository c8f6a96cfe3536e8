"""Model cards (device/core/card.py) for converted models: what the device needs to
feed the model, and every figure the converter measured about it."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

import device
from device.core.card import (
    AbstentionInfo,
    GateRecord,
    HeldOutMetrics,
    ModelCard,
    Provenance,
    QuantMode,
    TrainingDataSummary,
)
from device.core.ceiling import SignCeiling
from device.core.vocab import Sign
from device.packs.manifest import sha256_file
from trainer.evaluate import SYNTHETIC_NOTE

log = logging.getLogger(__name__)


def card_path_for(tflite_path: Path) -> Path:
    """``DIR/erythema.tflite`` -> ``DIR/erythema.card.json``."""
    tflite_path = Path(tflite_path)
    return tflite_path.with_name(tflite_path.stem + ".card.json")


def _tag(metrics: HeldOutMetrics, synthetic: bool, source: str) -> HeldOutMetrics:
    return metrics.model_copy(update={"split": "held-out (val)", "source": source,
                                      "note": SYNTHETIC_NOTE if synthetic else metrics.note})


def build_card(
    *,
    sign: Sign,
    tflite_path: Path,
    image_size: int | tuple[int, int],
    mode: QuantMode | str,
    backbone: str,
    head: str,
    training_data: TrainingDataSummary,
    gate: GateRecord | None,
    metrics_keras: HeldOutMetrics,
    metrics_tflite: HeldOutMetrics,
    latency: dict[str, Any],
    run_dir: Path | None = None,
    abstention: AbstentionInfo | None = None,
    float_layers: list[str] | None = None,
    human_ceiling: SignCeiling | None = None,
) -> ModelCard:
    """The card for a converted file (sha256 and size read from the file itself)."""
    tflite_path = Path(tflite_path)
    h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
    synthetic = training_data.synthetic
    return ModelCard(
        sign=sign,
        input_size=(int(h), int(w)),
        quantization=QuantMode(mode),
        float_layers=list(float_layers or []),
        backbone=backbone,
        head=head,
        training_data=training_data,
        metrics_keras=_tag(metrics_keras, synthetic, "keras"),
        metrics_tflite=_tag(metrics_tflite, synthetic, "tflite via device.grading.interpreter.GradeModel"),
        gate=gate,
        provenance=Provenance(run_dir=str(run_dir) if run_dir is not None else None),
        latency=latency,
        sha256=sha256_file(tflite_path),
        file_size=tflite_path.stat().st_size,
        created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        software_version=device.__version__,
        abstention=abstention,
        human_ceiling=human_ceiling,
    )


def find_converted(directory: Path) -> tuple[Path, ModelCard] | None:
    """A converted model folder (``convert model --out DIR``): its one .tflite and
    card (whose ``abstention.stats_file``, when set, lies beside them), or None when
    the folder holds no card (then it is a training run)."""
    from device.core.card import load_card

    directory = Path(directory)
    cards = sorted(directory.glob("*.card.json"))
    if not cards:
        return None
    if len(cards) > 1:
        raise ValueError(f"{directory}: holds {len(cards)} model cards; give the folder of one model")
    card = load_card(cards[0])
    tflite = cards[0].with_name(cards[0].name[: -len(".card.json")] + ".tflite")
    if not tflite.is_file():
        raise ValueError(f"{cards[0]}: its model {tflite.name} is missing beside it")
    if card.abstention is not None and not (directory / card.abstention.stats_file).is_file():
        raise ValueError(f"{cards[0]}: its abstention statistics {card.abstention.stats_file} "
                         "are missing beside it; convert the model again")
    return tflite, card
