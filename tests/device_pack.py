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

from device.vocab import MODEL_SIGNS

PACK_VERSION = "0.0.1-test"


@functools.cache
def tiny_packs_dir(size: int = 32) -> Path:
    """A packs dir holding one extracted tiny pack as ``current``; returns the packs dir."""
    from factories import tiny_card, tiny_tflite

    from convert.packer import write_pack

    root = Path(tempfile.mkdtemp(prefix="atopiscan-tinypack-"))
    atexit.register(shutil.rmtree, root, True)  # cached for the session: removed at its end
    models = {}
    # One conversion (the slow part) copied for each sign keeps the session fast.
    first = tiny_tflite(root / "model.tflite", size=size, seed=0)
    for sign in MODEL_SIGNS:
        path = root / f"{sign.value}.tflite"
        shutil.copyfile(first, path)
        models[sign] = (path, tiny_card(sign, path, size=size))
    pack = write_pack(models, root / "tiny.atopack", pack_version=PACK_VERSION)
    packs = root / "packs"
    store = packs / "store" / PACK_VERSION
    store.mkdir(parents=True)
    with tarfile.open(pack) as tar:
        tar.extractall(store, filter="data")
    os.symlink(Path("store") / PACK_VERSION, packs / "current")
    return packs


def tiny_pack_dir(size: int = 32) -> Path:
    return tiny_packs_dir(size) / "current"
