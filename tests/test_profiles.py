"""Every shipped device profile loads through the one config schema."""

from __future__ import annotations

from pathlib import Path

import pytest

from device.config import CameraSource, ConfigError, load_config

PROFILES = sorted((Path(__file__).resolve().parents[1] / "firmware_config").glob("*.yaml"))


def test_the_four_profiles_are_shipped():
    assert {p.stem for p in PROFILES} >= {"pi5", "pi4", "jetson-orin", "desktop-demo"}


@pytest.mark.parametrize("path", PROFILES, ids=lambda p: p.stem)
def test_profile_loads(path):
    config = load_config(path)
    assert config.version == 1
    assert config.web.host == "127.0.0.1", "a profile must not open the dashboard to the network by default"


@pytest.mark.parametrize("name", ["pi5", "pi4", "jetson-orin"])
def test_clinic_profiles_require_signed_packs_and_keep_data_on_the_device(name):
    config = load_config(next(p for p in PROFILES if p.stem == name))
    assert config.packs.public_key is not None
    assert str(config.storage.data_dir).startswith("/var/lib/atopiscan")


def test_demo_profile_uses_the_folder_camera_inside_the_repo():
    path = next(p for p in PROFILES if p.stem == "desktop-demo")
    config = load_config(path)
    assert config.camera.source is CameraSource.FOLDER
    repo = path.parents[1]
    assert Path(config.camera.folder).resolve() == repo / "demo_data" / "photos"


def test_a_broken_copy_of_a_profile_names_the_line(tmp_path):
    text = (PROFILES[0].read_text()).replace("version: 1", "version: 1\nunknown_key: 3", 1)
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(bad)
    line = text.splitlines().index("unknown_key: 3") + 1
    assert f"bad.yaml:{line}:" in str(err.value)
