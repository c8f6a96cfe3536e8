"""The model pack format: one tar file with a model per sign, their cards, golden
images with the outputs the pack must reproduce, and a manifest of sha256 sums.

Layout inside the tar (paths are POSIX, relative, no '..'):

    manifest.json               PackManifest below
    manifest.sig                optional: raw 64-byte Ed25519 signature of manifest.json's bytes
    models/<sign>.tflite
    models/<sign>.card.json     device.core.card.ModelCard
    models/<sign>.ood.npz       optional: abstention statistics (device.grading.abstain)
    golden/<sign>/<k>.png       RGB PNG at the model's input size
    golden/expected.json        GoldenSet below

``convert`` writes packs; the device (``device.packs.install``) checks and installs them.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path, PurePosixPath
from typing import Literal

from packaging.version import InvalidVersion, Version
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from device.core.errors import InvalidInput, validation_problems
from device.core.vocab import NUM_GRADES, Sign

PACK_SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
SIGNATURE_NAME = "manifest.sig"
GOLDEN_NAME = "golden/expected.json"
#: Largest difference of any golden probability the self-test tolerates. int8
#: outputs move in steps of 1/256, and two interpreter builds (ai-edge-litert on
#: x86, tflite-runtime on a Pi's ARM) may round differently by a step or two.
DEFAULT_SELFTEST_TOLERANCE = 0.03

_VERSION_RE = re.compile(r"^\d+(\.\d+)*([.+-][0-9A-Za-z.]+)?$")


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def safe_member_name(name: str) -> bool:
    """True for a relative POSIX path with no '..', no absolute root, no backslash."""
    if not name or "\\" in name or name.startswith("/"):
        return False
    parts = PurePosixPath(name).parts
    return all(p not in ("..", "") for p in parts)


class PackModelEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="Path of the .tflite inside the pack")
    card: str = Field(description="Path of its model card inside the pack")
    stats: str | None = Field(default=None, description="Path of its abstention statistics "
                              "(device.grading.abstain) inside the pack; None: it cannot abstain")


class PackManifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = Field(default=PACK_SCHEMA_VERSION, description="Pack schema version")
    pack_version: str = Field(description="Version of this pack, e.g. 2026.11.24-1")
    created: str = Field(description="ISO-8601 time the pack was made")
    software_version: str = Field(description="atopiscan version that made the pack")
    min_device_version: str = Field(description="Oldest device software that can run this pack")
    models: dict[Sign, PackModelEntry] = Field(description="One model per graded sign")
    golden: str = Field(default=GOLDEN_NAME, description="Path of the golden outputs file")
    selftest_tolerance: float = Field(default=DEFAULT_SELFTEST_TOLERANCE, gt=0, le=0.5)
    files: dict[str, str] = Field(description="sha256 of every file in the pack but the manifest and signature")

    @field_validator("pack_version", "min_device_version", "software_version")
    @classmethod
    def _version(cls, value: str) -> str:
        if not _VERSION_RE.match(value):
            raise ValueError(f"{value!r} is not a version like 1.2.3")
        return value

    @field_validator("min_device_version")
    @classmethod
    def _device_version(cls, value: str) -> str:
        software_version(value)  # compared with the device's: must parse as one
        return value

    @field_validator("files")
    @classmethod
    def _files(cls, value: dict[str, str]) -> dict[str, str]:
        for name, digest in value.items():
            if not safe_member_name(name):
                raise ValueError(f"unsafe path {name!r} in files")
            if not re.fullmatch(r"[0-9a-f]{64}", digest):
                raise ValueError(f"{name}: {digest!r} is not a sha256 hex digest")
        return value


class GoldenCase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    image: str = Field(description="Path of the golden PNG inside the pack")
    grade: int = Field(ge=0, lt=NUM_GRADES, description="Grade the pack gives this image")
    probs: list[float] = Field(min_length=NUM_GRADES, max_length=NUM_GRADES)


class GoldenSet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cases: dict[Sign, list[GoldenCase]]


def software_version(text: str) -> Version:
    """An atopiscan software version, for comparisons (PEP 440 via ``packaging``):
    '0.1.0+source' is newer than '0.1.0'; a pack's minimum compares with it."""
    try:
        return Version(text)
    except InvalidVersion:
        raise ValueError(f"{text!r} is not a version like 1.2.3") from None


class ManifestError(InvalidInput):
    """A pack manifest that is not valid JSON or not the schema; ``problems`` one per field."""

    def __init__(self, where: str, problems: list[str]) -> None:
        super().__init__(f"{where}: invalid pack manifest: {'; '.join(problems)}")
        self.problems = [f"{where}: {p}" for p in problems]


def parse_manifest(raw: bytes | str, where: str = MANIFEST_NAME) -> PackManifest:
    """The one reader of a pack's manifest.json (install check, loading, the packs list)."""
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ManifestError(where, [f"not valid JSON ({exc}); rebuild the pack"]) from None
    try:
        return PackManifest.model_validate(data)
    except ValidationError as exc:
        raise ManifestError(where, [str(p) for p in validation_problems(exc)]) from None


def read_manifest(pack_dir: Path) -> PackManifest:
    """The manifest of an extracted pack folder; ``ManifestError`` (or ``OSError``)."""
    path = Path(pack_dir) / MANIFEST_NAME
    return parse_manifest(path.read_bytes(), str(path))
