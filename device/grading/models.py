"""The installed pack's models, loaded once: one GradeModel (interpreter) per sign.

A pack directory is an extracted, verified pack (layout in device/packs/manifest.py):
``manifest.json`` plus ``models/<sign>.tflite`` and ``models/<sign>.card.json``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from device.core.card import CardError, ModelCard, card_mismatches, load_card
from device.core.vocab import MODEL_SIGNS, Sign
from device.grading.abstain import FeatureStats, StatsError, load_stats
from device.grading.interpreter import GradeModel, InterpreterError
from device.packs.manifest import (
    MANIFEST_NAME,
    ManifestError,
    PackManifest,
    safe_member_name,
    sha256_file,
)
from device.packs.manifest import read_manifest as manifest_of

log = logging.getLogger(__name__)


class ModelSetError(RuntimeError):
    """The pack directory cannot be loaded; the message names the file and what to do."""


class NoPackDirError(ModelSetError):
    """No model pack is installed (no ``current`` pack folder)."""


class PacksFailedError(ModelSetError):
    """The current pack failed to load and so did the previous one (or there was none)."""


@dataclass
class SignModel:
    sign: Sign
    model: GradeModel
    card: ModelCard
    path: Path
    #: Abstention statistics of the pooled features; None: this model cannot abstain.
    stats: FeatureStats | None = None


class ModelSet:
    """One loaded model per sign of an installed pack."""

    def __init__(self, models: dict[Sign, SignModel], *, pack_version: str,
                 pack_dir: Path | None = None, manifest: PackManifest | None = None) -> None:
        if not models:
            raise ModelSetError("a model set needs at least one model")
        self.models = models
        self.pack_version = pack_version
        self.pack_dir = pack_dir
        self.manifest = manifest

    @property
    def can_abstain(self) -> bool:
        """True when every model carries abstention statistics (and returns features)."""
        return all(sm.stats is not None for sm in self)

    @property
    def signs(self) -> tuple[Sign, ...]:
        return tuple(s for s in MODEL_SIGNS if s in self.models)

    def __getitem__(self, sign: Sign) -> SignModel:
        return self.models[sign]

    def __iter__(self):
        return iter(self.models[s] for s in self.signs)

    def warm_up(self) -> float:
        """One invoke per model on a blank crop, so the first patient's scan does not pay
        for the interpreter's first-run allocations. Returns the time taken in ms."""
        start = time.perf_counter()
        for sign_model in self:
            sign_model.model.predict(np.zeros((*sign_model.model.input_size, 3), np.uint8))
        return (time.perf_counter() - start) * 1000.0

    @classmethod
    def from_pack_dir(cls, pack_dir: Path | str, threads: int = 2, *,
                      check_sha256: bool = True) -> ModelSet:
        pack_dir = Path(pack_dir)
        manifest = read_manifest(pack_dir)
        models: dict[Sign, SignModel] = {}
        for sign, entry in manifest.models.items():
            for member in (entry.model, entry.card):
                if not safe_member_name(member):
                    raise ModelSetError(f"{pack_dir / MANIFEST_NAME}: unsafe path {member!r}")
            model_path, card_path = pack_dir / entry.model, pack_dir / entry.card
            try:
                card = load_card(card_path)
            except CardError as exc:
                raise ModelSetError(f"{exc}; reinstall the pack (python -m device flash)") from exc
            digest = sha256_file(model_path) if check_sha256 and model_path.is_file() else None
            _refuse(card_mismatches(card, sign=sign, model_sha256=digest,
                                    card_where=str(card_path), model_where=str(model_path)))
            try:
                model = GradeModel(model_path, threads=threads)
            except InterpreterError as exc:
                raise ModelSetError(str(exc)) from exc
            _refuse(card_mismatches(card, model_input_size=model.input_size,
                                    model_where=str(model_path)))
            models[sign] = SignModel(sign, model, card, model_path,
                                     _load_stats(pack_dir, entry.stats, model))
        missing = [s.value for s in MODEL_SIGNS if s not in models]
        if missing:
            log.warning("pack %s has no model for %s; those signs are not graded",
                        manifest.pack_version, ", ".join(missing))
        log.info("loaded pack %s from %s (%s, %d threads)", manifest.pack_version, pack_dir,
                 ", ".join(s.value for s in models), threads)
        return cls(models, pack_version=manifest.pack_version, pack_dir=pack_dir,
                   manifest=manifest)


def _refuse(problems: list[str]) -> None:
    if problems:
        raise ModelSetError("; ".join(problems) + ". Reinstall the pack or roll back")


def _load_stats(pack_dir: Path, member: str | None, model: GradeModel) -> FeatureStats | None:
    if member is None:
        return None
    if not safe_member_name(member):
        raise ModelSetError(f"{pack_dir / MANIFEST_NAME}: unsafe path {member!r}")
    try:
        stats = load_stats(pack_dir / member)
    except StatsError as exc:
        raise ModelSetError(f"{exc}; reinstall the pack (python -m device flash)") from exc
    if model.feature_dim != stats.dim:
        raise ModelSetError(f"{model.path}: returns {model.feature_dim} features; its abstention "
                            f"statistics expect {stats.dim}. Reinstall the pack")
    return stats


def read_manifest(pack_dir: Path) -> PackManifest:
    """The installed pack's manifest (``device.packs.manifest.read_manifest``), its
    problems as ``ModelSetError``."""
    path = Path(pack_dir) / MANIFEST_NAME
    try:
        return manifest_of(pack_dir)
    except FileNotFoundError as exc:
        raise ModelSetError(f"{path}: no pack manifest; is {pack_dir} an installed pack? "
                            "Install one with: python -m device flash PACK") from exc
    except OSError as exc:
        raise ModelSetError(f"{path}: unreadable pack manifest ({exc})") from exc
    except ManifestError as exc:
        raise ModelSetError(str(exc)) from exc
