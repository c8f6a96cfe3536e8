"""Shared fixtures for the trainer's tests (import them into a test module)."""

from __future__ import annotations

import pytest

#: Tiny, fast settings: mobilenet_v3_small at 32 px trains a few hundred steps in ~30 s.
TINY_BACKBONE = "mobilenet_v3_small"
TINY_SIZE = 32


@pytest.fixture(scope="session")
def synth_folders(tmp_path_factory):
    """400 synthetic lesions (64 px) in the folder layout (every image graded for all signs)."""
    from trainer.synth import generate_dataset

    return generate_dataset(tmp_path_factory.mktemp("synth") / "folders", 400, seed=3, size=64)


@pytest.fixture(scope="session")
def synth_manifest(tmp_path_factory):
    """240 synthetic lesions (48 px) in the manifest layout, for multi-sign training."""
    from trainer.synth import generate_dataset

    return generate_dataset(tmp_path_factory.mktemp("synth") / "manifest", 240, seed=4, size=48,
                            layout="manifest")
