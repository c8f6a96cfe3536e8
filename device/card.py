"""The model card: the JSON that sits beside each ``.tflite`` and says how to feed
it and how well it graded on its held-out split.

Written by ``convert``, read by the device. Unknown keys are refused so that a
card from a newer schema is reported rather than silently misread.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from device.atomic import atomic_write_text
from device.vocab import MODEL_SIGNS, Sign

CARD_SCHEMA_VERSION = 1

Quantization = Literal["float32", "float16", "dynamic", "int8"]


class CardError(ValueError):
    """A model card is missing, unreadable or does not match the schema."""


class TrainingDataSummary(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str = Field(description="Where the images came from, e.g. 'synthetic' or a clinic's name")
    synthetic: bool = Field(description="True when the figures come from generated images, never clinical")
    n_train: int = Field(ge=0, description="Images in the training split")
    n_val: int = Field(ge=0, description="Images in the held-out split")
    per_grade_train: list[int] = Field(default_factory=list, description="Training images per grade 0-3")
    per_grade_val: list[int] = Field(default_factory=list, description="Held-out images per grade 0-3")
    split_sha256: str | None = Field(default=None, description="sha256 of the split file used")


class ModelCard(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    schema_version: Literal[1] = Field(default=CARD_SCHEMA_VERSION, description="Card schema version")
    sign: Sign = Field(description="The sign this model grades")
    grades: list[int] = Field(default=[0, 1, 2, 3], description="Grades of the 4 outputs, in order")
    input_size: tuple[int, int] = Field(description="Input height and width in pixels")
    color_order: Literal["RGB"] = Field(default="RGB", description="Channel order of the uint8 input")
    input_dtype: Literal["uint8"] = Field(default="uint8", description="The model takes raw 0-255 pixels")
    quantization: Quantization = Field(description="TFLite quantization mode")
    backbone: str = Field(description="Backbone name from the trainer's registry")
    head: str = Field(default="softmax", description="Classifier head: softmax or ordinal")
    training_data: TrainingDataSummary
    metrics_keras: dict[str, Any] = Field(description="Keras model on the held-out split")
    metrics_tflite: dict[str, Any] = Field(description="This .tflite file on the same split")
    gate: dict[str, Any] = Field(default_factory=dict, description="Accuracy gate thresholds and verdict")
    latency: dict[str, Any] = Field(default_factory=dict, description="Invoke/predict timings in ms")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 of the .tflite file")
    file_size: int | None = Field(default=None, ge=0, description="Size of the .tflite file in bytes")
    created: str = Field(description="ISO-8601 time the card was written")
    software_version: str = Field(description="atopiscan version that wrote the card")

    def check_sign(self) -> None:
        if self.sign not in MODEL_SIGNS:
            raise CardError(f"model card grades {self.sign.value}, which no model can grade")


def load_card(path: Path) -> ModelCard:
    """Read and validate a card, with an error naming the file and the field."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise CardError(f"{path}: model card not found") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CardError(f"{path}: not a readable JSON model card ({exc})") from exc
    try:
        card = ModelCard.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()
        )
        raise CardError(f"{path}: invalid model card: {problems}") from exc
    card.check_sign()
    return card


def save_card(card: ModelCard, path: Path) -> None:
    atomic_write_text(path, card.model_dump_json(indent=2) + "\n")
