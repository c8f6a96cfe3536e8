"""The model card: the JSON that sits beside each ``.tflite`` and says how to feed
it and how well it graded on its held-out split.

Written by ``convert``, read by the device. Unknown keys are refused so that a
card from a newer schema is reported rather than silently misread; an older card is
migrated on reading (``MIGRATIONS``).

Schema history: 1, the first; 2, typed gate and metrics, ``provenance``; 3,
``abstention`` (the statistics file of the pooled features and how its threshold
was set; None: the model cannot abstain); 4, ``human_ceiling`` (the model as one more
rater against its raters' own disagreement, device.core.ceiling; None: no such figures) and
``training_data.labels`` (consensus or raters).
"""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from device.core.atomic import atomic_write_text
from device.core.ceiling import LabelSource, SignCeiling
from device.core.errors import validation_problems
from device.core.vocab import MODEL_SIGNS, Sign

CARD_SCHEMA_VERSION = 4


class QuantMode(str, Enum):
    """TFLite quantization modes: the one list (convert, the card, the CLIs)."""

    INT8 = "int8"
    INT8_SELECTIVE = "int8_selective"  # int8 but the worst few layers float (convert.selective)
    DYNAMIC = "dynamic"
    FLOAT16 = "float16"
    FLOAT32 = "float32"

    def __str__(self) -> str:
        return self.value


#: The order ``convert --fallback`` tries modes in: smallest and fastest first. Selective
#: int8 (a few layers float) comes before dynamic range, which runs every layer in float.
FALLBACK_ORDER: tuple[QuantMode, ...] = (QuantMode.INT8, QuantMode.INT8_SELECTIVE,
                                         QuantMode.DYNAMIC, QuantMode.FLOAT16)
#: Modes calibrated on training images.
CALIBRATED_MODES: tuple[QuantMode, ...] = (QuantMode.INT8, QuantMode.INT8_SELECTIVE)


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
    labels: LabelSource = Field(default=LabelSource.CONSENSUS,
                                description="What trained the model: the consensus grade, or "
                                            "the distribution of the raters' grades")


class HeldOutMetrics(BaseModel):
    """One model's figures on a held-out split (``trainer.evaluate.compute_metrics``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n: int = Field(ge=0, description="Held-out images")
    accuracy: float = Field(ge=0, le=1, description="Top-1 accuracy")
    accuracy_ci95: list[float] | None = Field(default=None, min_length=2, max_length=2,
                                              description="95 % bootstrap CI (low, high)")
    macro_f1: float | None = Field(default=None, description="Macro-averaged F1")
    qwk: float | None = Field(default=None, description="Quadratic weighted kappa")
    mae: float | None = Field(default=None, description="Mean absolute grade error")
    recall_per_grade: list[float | None] = Field(
        default_factory=list, description="Recall of grades 0-3 (None: no image of that grade)")
    ece: float | None = Field(default=None, description="Expected calibration error")
    confusion: list[list[int]] = Field(default_factory=list,
                                       description="4x4 counts, rows true grade, columns predicted")
    split: str | None = Field(default=None, description="Which split, e.g. 'held-out (val)'")
    source: str | None = Field(default=None, description="Which model produced the figures")
    note: str | None = Field(default=None, description="e.g. the synthetic-data note")


class GateThresholds(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_acc_drop: float = Field(default=1.0, description="Largest accuracy drop, points")
    min_agreement: float = Field(default=0.98, ge=0, le=1,
                                 description="Smallest fraction of images with the same top-1 grade")
    max_recall_drop: float = Field(default=3.0, description="Largest recall drop per grade, points")


class GateRecord(BaseModel):
    """The accuracy gate of one mode (``convert.gate``): TFLite beside Keras."""

    model_config = ConfigDict(extra="forbid")

    mode: QuantMode
    passed: bool
    reasons: list[str] = Field(default_factory=list, description="Why it failed (empty: passed)")
    thresholds: GateThresholds = Field(default_factory=GateThresholds)
    n: int = Field(ge=0, description="Held-out images compared")
    accuracy_keras: float
    accuracy_tflite: float
    acc_drop_points: float
    agreement: float
    recall_change_points: list[float | None] = Field(default_factory=list)
    max_prob_diff: float
    tried_before: list[GateRecord] = Field(default_factory=list,
                                           description="Gates of the modes that failed first")
    conversion_errors: dict[str, str] = Field(default_factory=dict,
                                              description="Modes whose conversion failed, and why")
    calibration_images: int = Field(default=0, ge=0, description="int8 calibration images")


class Provenance(BaseModel):
    """Where the model came from: the workstation's training run (never used on the device)."""

    model_config = ConfigDict(extra="forbid")

    run_dir: str | None = Field(default=None, description="Training run folder on the workstation")


class ImageSpaceInfo(BaseModel):
    """The second, model-independent abstention space (device.grading.imagestats): one Gaussian
    over low-level statistics of the crop as the model is fed."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["mahalanobis-image-statistics"] = Field(
        default="mahalanobis-image-statistics",
        description="One Gaussian (Ledoit-Wolf covariance) over colour, band-energy, gradient, "
                    "LBP and saturation statistics; score: Mahalanobis distance to its mean")
    descriptor_version: int = Field(ge=1, description="device.grading.imagestats.DESCRIPTOR_VERSION used")
    dim: int = Field(ge=1, description="Length of the descriptor")
    n_fit: int = Field(ge=2, description="Descriptors fitted on (training crops, with the "
                       "acquisition-blur variants)")
    shrinkage: float = Field(ge=0, le=1, description="Ledoit-Wolf shrinkage of the covariance")
    threshold: float = Field(gt=0, description="Distance above which the model abstains")
    heldout_accepted: float = Field(ge=0, le=1, description="Share of held-out images this "
                                    "space alone accepts")


class SceneSpaceInfo(BaseModel):
    """The third abstention space (device.grading.scenestats): one Gaussian over a descriptor
    of the whole frame's tiny view, fitted on the pack's own training photos."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["mahalanobis-scene-statistics"] = Field(
        default="mahalanobis-scene-statistics",
        description="One Gaussian (Ledoit-Wolf covariance) over the frame's skin share, skin and "
                    "background colour, band energies, edges, LBP and saturation; score: "
                    "Mahalanobis distance to its mean")
    descriptor_version: int = Field(ge=1, description="device.grading.scenestats.SCENE_VERSION used")
    dim: int = Field(ge=1, description="Length of the descriptor")
    n_fit: int = Field(ge=2, description="Training photos fitted on")
    n_heldout: int = Field(ge=1, description="Held-out photos the threshold was calibrated on")
    shrinkage: float = Field(ge=0, le=1, description="Ledoit-Wolf shrinkage of the covariance")
    threshold: float = Field(gt=0, description="Distance above which the model abstains")
    heldout_accepted: float = Field(ge=0, le=1, description="Share of held-out photos this "
                                    "space alone accepts")


class AbstentionInfo(BaseModel):
    """How this model abstains on images unlike its training data (device.grading.abstain)."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["mahalanobis-shared-covariance"] = Field(
        description="Class-conditional Gaussians with one shared covariance on the pooled "
                    "features; score: Mahalanobis distance to the nearest grade mean")
    stats_file: str = Field(description="Statistics file name beside the model (.ood.npz)")
    stats_sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 of that file")
    feature_dim: int = Field(ge=1, description="Length of the pooled feature vector")
    classes: list[int] = Field(description="Grades with a mean (those in the training split)")
    n_fit: int = Field(ge=2, description="Training images the statistics were fitted on")
    shrinkage: float = Field(ge=0, le=1, description="Ledoit-Wolf shrinkage of the covariance")
    threshold: float = Field(gt=0, description="Distance above which the model abstains")
    target_accept: float = Field(gt=0, le=1, description="Share of held-out images the "
                                 "threshold was set to accept at least")
    heldout_accepted: float = Field(ge=0, le=1, description="Share of held-out images it accepts")
    n_heldout: int = Field(ge=1, description="Held-out images the threshold was calibrated on")
    how: str = Field(description="How the threshold was set, in words")
    image_space: ImageSpaceInfo | None = Field(
        default=None, description="The image-statistics space, in the same stats file (None: "
                                  "the pooled features only, as packs before it)")
    combined_heldout_accepted: float | None = Field(
        default=None, ge=0, le=1, description="Share of held-out images that every space accepts "
                                              "(None without an image space)")
    scene_space: SceneSpaceInfo | None = Field(
        default=None, description="The whole frame's space, in the same stats file (None: packs "
                                  "before it, or training data with no recorded frames)")


class ModelCard(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    schema_version: Literal[4] = Field(default=CARD_SCHEMA_VERSION, description="Card schema version")
    sign: Sign = Field(description="The sign this model grades")
    grades: list[int] = Field(default=[0, 1, 2, 3], description="Grades of the 4 outputs, in order")
    input_size: tuple[int, int] = Field(description="Input height and width in pixels")
    color_order: Literal["RGB"] = Field(default="RGB", description="Channel order of the uint8 input")
    input_dtype: Literal["uint8"] = Field(default="uint8", description="The model takes raw 0-255 pixels")
    quantization: QuantMode = Field(description="TFLite quantization mode")
    float_layers: list[str] = Field(
        default_factory=list,
        description="int8_selective: the layers kept in float (largest quantization error)")
    backbone: str = Field(description="Backbone name from the trainer's registry")
    head: str = Field(default="softmax", description="Classifier head: softmax or ordinal")
    training_data: TrainingDataSummary
    metrics_keras: HeldOutMetrics = Field(description="Keras model on the held-out split")
    metrics_tflite: HeldOutMetrics = Field(description="This .tflite file on the same split")
    gate: GateRecord | None = Field(default=None, description="The accuracy gate this file passed")
    provenance: Provenance = Field(default_factory=Provenance, description="Where the model came from")
    latency: dict[str, Any] = Field(default_factory=dict, description="Invoke/predict timings in ms")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 of the .tflite file")
    file_size: int | None = Field(default=None, ge=0, description="Size of the .tflite file in bytes")
    created: str = Field(description="ISO-8601 time the card was written")
    software_version: str = Field(description="atopiscan version that wrote the card")
    abstention: AbstentionInfo | None = Field(
        default=None, description="Abstention statistics; None: this model cannot abstain")
    human_ceiling: SignCeiling | None = Field(
        default=None, description="The Keras model as one more rater on the held-out lesions "
                                  "two or more raters graded; None: not measured")

    def check_sign(self) -> None:
        if self.sign not in MODEL_SIGNS:
            raise CardError(f"model card grades {self.sign.value}, which no model can grade")


def _v1_to_v2(raw: dict[str, Any]) -> dict[str, Any]:
    """The training run's folder moves out of ``gate`` into ``provenance``, an empty gate
    becomes none."""
    out = dict(raw, schema_version=2)
    gate = dict(out.get("gate") or {})
    run_dir = gate.pop("run_dir", None) or gate.pop("rundir", None)
    gate.pop("verdict", None)  # never written by any converter
    out["gate"] = gate or None
    out.setdefault("provenance", {"run_dir": run_dir})
    return out


def _v2_to_v3(raw: dict[str, Any]) -> dict[str, Any]:
    """No abstention statistics before schema 3: the model cannot abstain."""
    return dict(raw, schema_version=3, abstention=None)


def _v3_to_v4(raw: dict[str, Any]) -> dict[str, Any]:
    """No human ceiling before schema 4, and every model learnt from the consensus."""
    data = raw.get("training_data")
    if isinstance(data, dict):
        data = dict(data, labels=data.get("labels", LabelSource.CONSENSUS.value))
    return dict(raw, schema_version=4, human_ceiling=None, training_data=data)


#: Schema version -> the function that brings a card of it one version up.
MIGRATIONS = {1: _v1_to_v2, 2: _v2_to_v3, 3: _v3_to_v4}


def card_mismatches(card: ModelCard, *, sign: Sign | None = None, model_sha256: str | None = None,
                    model_input_size: tuple[int, int] | None = None, card_where: str = "card",
                    model_where: str = "model") -> list[str]:
    """The one check of a card against its model (device load, pack verify, packer): what
    does not agree, one sentence each; the caller adds what to do. Facts left None are
    not checked."""
    problems = []
    if sign is not None and card.sign != sign:
        problems.append(f"{card_where}: the card grades {card.sign.value}, but the model is "
                        f"given for {sign.value}")
    if model_sha256 is not None and model_sha256 != card.sha256:
        problems.append(f"{card_where}: its sha256 does not match {model_where} (the model "
                        "file's sha256 differs: the file does not match its card); it is "
                        "damaged or from another build")
    if model_input_size is not None and tuple(model_input_size) != tuple(card.input_size):
        problems.append(f"{model_where}: input size {tuple(model_input_size)} differs from its "
                        f"card's input_size {tuple(card.input_size)}")
    return problems


def migrate_card(raw: Any) -> Any:
    """An older card as the current schema (``MIGRATIONS``, one step at a time; a card
    with no version is a version-1 card). Other input is returned as is, for
    validation to refuse with the field named."""
    if isinstance(raw, dict) and "schema_version" not in raw:
        raw = dict(raw, schema_version=1)
    while isinstance(raw, dict) and raw.get("schema_version") in MIGRATIONS:
        raw = MIGRATIONS[raw["schema_version"]](raw)
    return raw


def load_card(path: Path) -> ModelCard:
    """Read and validate a card (migrating an older schema), with an error naming the
    file and the field."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise CardError(f"{path}: model card not found") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CardError(f"{path}: not a readable JSON model card ({exc})") from exc
    try:
        card = ModelCard.model_validate(migrate_card(raw))
    except ValidationError as exc:
        problems = "; ".join(map(str, validation_problems(exc)))
        raise CardError(f"{path}: invalid model card: {problems}") from exc
    card.check_sign()
    return card


def save_card(card: ModelCard, path: Path) -> None:
    atomic_write_text(path, card.model_dump_json(indent=2) + "\n")
