"""Write a model pack (layout in device/packs/manifest.py): one tar with a model and card per
sign, golden images with the outputs this pack gives them, a manifest of sha256
sums and an optional Ed25519 signature of the manifest.

The golden outputs are computed through ``device.grading.interpreter.GradeModel`` — the
same wrapper the device's self-test uses — on the PNG bytes as stored in the
pack, so the device must reproduce them within the manifest's tolerance.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import logging
import tarfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np

import device
from device.core.atomic import atomic_path
from device.core.card import ModelCard, card_mismatches
from device.core.imageio import ImageError, encode_png
from device.core.vocab import MODEL_SIGNS, Sign
from device.grading.abstain import STATS_SUFFIX
from device.grading.interpreter import GradeModel
from device.packs.golden import read_golden_image
from device.packs.manifest import (
    GOLDEN_NAME,
    MANIFEST_NAME,
    SIGNATURE_NAME,
    GoldenCase,
    GoldenSet,
    PackManifest,
    PackModelEntry,
    sha256_file,
    software_version,
)

log = logging.getLogger(__name__)

GOLDEN_PER_SIGN = 8


class PackError(ValueError):
    """The inputs cannot make a valid pack (wrong card, missing file, bad image)."""


def model_member(sign: Sign) -> str:
    return f"models/{sign.value}.tflite"


def card_member(sign: Sign) -> str:
    return f"models/{sign.value}.card.json"


def golden_member(sign: Sign, k: int) -> str:
    return f"golden/{sign.value}/{k}.png"


def default_min_device_version() -> str:
    """The numeric part of this software's version: '0.1.0+source' -> '0.1.0'."""
    return software_version(device.__version__).base_version


def random_golden_images(size: tuple[int, int], n: int, seed: int) -> list[np.ndarray]:
    """Smooth random colour images (not pure noise, so models respond to them)."""
    rng = np.random.default_rng(seed)
    h, w = size
    images = []
    for _ in range(n):
        small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        images.append(cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR))
    return images


def decode_png(data: bytes) -> np.ndarray:
    """PNG bytes -> RGB uint8 array: ``read_golden_image``, the device's own reader."""
    try:
        return read_golden_image(data)
    except ImageError as exc:
        raise PackError(f"could not decode a golden PNG ({exc})") from exc


def _check_model(sign: Sign, path: Path, card: ModelCard) -> None:
    if not path.is_file():
        raise PackError(f"{path}: model file not found")
    _refuse(card_mismatches(card, sign=sign, model_sha256=sha256_file(path),
                            card_where=f"card of {path.name}", model_where=str(path)))


def _refuse(problems: list[str]) -> None:
    if problems:
        raise PackError("; ".join(problems) + ": re-run `python -m convert model`")


def _golden_cases(
    sign: Sign, model: GradeModel, images: Sequence[np.ndarray]
) -> tuple[list[tuple[str, bytes]], list[GoldenCase]]:
    members, cases = [], []
    want = (*model.input_size, 3)
    for k, image in enumerate(images):
        image = np.asarray(image)
        if image.shape != want or image.dtype != np.uint8:
            raise PackError(
                f"golden image {k} for {sign.value} is {image.shape} {image.dtype}; "
                f"the model needs uint8 {want} (resize with trainer.run.load_image)"
            )
        png = encode_png(image)
        probs = model.predict(decode_png(png))
        name = golden_member(sign, k)
        members.append((name, png))
        cases.append(GoldenCase(image=name, grade=int(np.argmax(probs)),
                                probs=[round(float(p), 6) for p in probs]))
    return members, cases


def stats_member(sign: Sign) -> str:
    return f"models/{sign.value}{STATS_SUFFIX}"


def _add_stats(sign: Sign, path: Path, card: ModelCard,
               payload: list[tuple[str, bytes]]) -> str | None:
    """Append the model's abstention statistics (beside its .tflite, named by its card)
    to ``payload``; None when the card has none (the model cannot abstain)."""
    if card.abstention is None:
        return None
    stats = path.parent / card.abstention.stats_file
    if not stats.is_file():
        raise PackError(f"{stats}: the abstention statistics named by {sign.value}'s card are "
                        "missing; convert the model again")
    data = stats.read_bytes()
    if hashlib.sha256(data).hexdigest() != card.abstention.stats_sha256:
        raise PackError(f"{stats}: sha256 differs from its card's; convert the model again")
    payload.append((stats_member(sign), data))
    return stats_member(sign)


def _tarinfo(name: str, size: int, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = mtime
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def write_pack(
    models: Mapping[Sign, tuple[Path, ModelCard]],
    out: Path,
    *,
    pack_version: str,
    golden_images: Mapping[Sign, Sequence[np.ndarray]] | None = None,
    sign_key: Path | None = None,
    min_device_version: str | None = None,
    threads: int = 2,
) -> Path:
    """Write the pack to ``out`` atomically and return ``out``.

    ``golden_images`` maps a sign to uint8 RGB images at its model's input size
    (8 per sign by convention); signs without any get seeded random images.
    """
    from convert.signing import sign_bytes  # cryptography only when signing is asked for

    out = Path(out)
    if not models:
        raise PackError("no models given: a pack needs one model per graded sign")
    missing = [s.value for s in MODEL_SIGNS if s not in models]
    if missing:
        log.warning("pack %s has no model for %s", out, ", ".join(missing))
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    # Member order is fixed (manifest first, then signs in vocabulary order) so that
    # equal inputs give equal tars, and a reader can check the manifest before the rest.
    payload: list[tuple[str, bytes]] = []
    entries: dict[Sign, PackModelEntry] = {}
    golden: dict[Sign, list[GoldenCase]] = {}
    for sign in sorted(models, key=list(Sign).index):
        path, card = models[sign]
        entries[sign], golden[sign] = _add_model(sign, Path(path), card, payload,
                                                 (golden_images or {}).get(sign, ()), threads)
    golden_json = GoldenSet(cases=golden).model_dump_json(indent=2) + "\n"
    payload.append((GOLDEN_NAME, golden_json.encode()))
    manifest = PackManifest(
        pack_version=pack_version,
        created=now.isoformat(),
        software_version=device.__version__,
        min_device_version=min_device_version or default_min_device_version(),
        models=entries,
        files={name: hashlib.sha256(data).hexdigest() for name, data in payload},
    )
    # A model without statistics has no "stats" key: devices older than abstention
    # still install a pack that does not use it.
    manifest_bytes = (manifest.model_dump_json(indent=2, exclude_none=True) + "\n").encode()
    head = [(MANIFEST_NAME, manifest_bytes)]
    if sign_key is not None:
        head.append((SIGNATURE_NAME, sign_bytes(manifest_bytes, Path(sign_key))))
    _write_tar_atomic(out, head + payload, mtime=int(now.timestamp()))
    log.info("wrote pack %s (version %s, %d models, %s)", out, pack_version, len(entries),
             "signed" if sign_key else "unsigned")
    return out


def _add_model(sign: Sign, path: Path, card: ModelCard, payload: list[tuple[str, bytes]],
               images: Sequence[np.ndarray], threads: int) -> tuple[PackModelEntry, list[GoldenCase]]:
    """Check one sign's model against its card and append its model, card, statistics
    and golden images to ``payload``; returns its manifest entry and golden cases."""
    _check_model(sign, path, card)
    grade_model = GradeModel(path, threads=threads)
    _refuse(card_mismatches(card, model_input_size=grade_model.input_size, model_where=str(path)))
    payload.append((model_member(sign), path.read_bytes()))
    payload.append((card_member(sign), (card.model_dump_json(indent=2) + "\n").encode()))
    entry = PackModelEntry(model=model_member(sign), card=card_member(sign),
                           stats=_add_stats(sign, path, card, payload))
    images = list(images)
    if not images:
        seed = int(hashlib.sha256(sign.value.encode()).hexdigest()[:8], 16)
        images = random_golden_images(grade_model.input_size, GOLDEN_PER_SIGN, seed)
    members, cases = _golden_cases(sign, grade_model, images)
    payload.extend(members)
    return entry, cases


def _write_tar_atomic(out: Path, members: list[tuple[str, bytes]], *, mtime: int) -> None:
    with atomic_path(out, mode=0o644) as tmp,\
            tarfile.open(tmp, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members:
            tar.addfile(_tarinfo(name, len(data), mtime), io.BytesIO(data))
