"""A tiny installed pack for the device-core tests: three real int8 .tflite models
(tests/factories.py), packed by convert.packer and extracted as the device's
``<packs>/store/<id>/`` with a ``current`` link. Built once per test session."""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

from device.core.vocab import MODEL_SIGNS

PACK_VERSION = "0.0.1-test"


@functools.cache
def tiny_packs_dir(size: int = 32) -> Path:
    """A packs dir holding one extracted tiny pack as ``current``; returns the packs dir."""
    from factories import tiny_card, tiny_tflite

    from convert.packer import write_pack

    root = session_dir("atopiscan-tinypack-")
    models = {}
    # One conversion (the slow part) copied for each sign keeps the session fast.
    first = tiny_tflite(root / "model.tflite", size=size, seed=0)
    for sign in MODEL_SIGNS:
        path = root / f"{sign.value}.tflite"
        shutil.copyfile(first, path)
        models[sign] = (path, tiny_card(sign, path, size=size))
    pack = write_pack(models, root / "tiny.atopack", pack_version=PACK_VERSION)
    return extract_as_current(pack, root / "packs", PACK_VERSION).parent


def session_dir(prefix: str) -> Path:
    """A temporary folder for a session-cached fixture, removed when the session ends."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, root, True)
    return root


def extract_as_current(pack: Path, packs: Path, version: str) -> Path:
    """``pack`` extracted into ``packs/store/<version>`` with ``packs/current`` pointing at
    it (the installed layout, without the device's checks); returns ``packs/current``."""
    store = packs / "store" / version
    store.mkdir(parents=True)
    with tarfile.open(pack) as tar:
        tar.extractall(store, filter="data")
    os.symlink(Path("store") / version, packs / "current")
    return packs / "current"


def tiny_pack_dir(size: int = 32) -> Path:
    return tiny_packs_dir(size) / "current"
