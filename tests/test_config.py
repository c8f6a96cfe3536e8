"""Device config: schema, every error with its line number, paths, versions."""

from __future__ import annotations

import textwrap

import pytest
from pydantic import BaseModel

import device.config as config_mod
from device.__main__ import main
from device.config import (
    CameraSource,
    ConfigError,
    CropMode,
    DeviceConfig,
    default_config_path,
    load_config,
    load_default_config,
)


def write(tmp_path, text, name="cfg.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def test_default_config_is_packaged_and_valid():
    assert default_config_path().is_file()
    config = load_default_config()
    assert config.version == 1
    assert config.camera.source is CameraSource.SYNTHETIC
    assert config.crop.mode is CropMode.GUIDE
    assert config.packs.dir.is_absolute(), "~ must be expanded"


def _all_fields(model: type[BaseModel], prefix=""):
    for name, field in model.model_fields.items():
        yield prefix + name, field
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            yield from _all_fields(ann, prefix + name + ".")


def test_every_field_has_a_description_and_unknown_keys_are_forbidden():
    fields = list(_all_fields(DeviceConfig))
    assert len(fields) > 30
    missing = [name for name, f in fields if not f.description]
    assert not missing, missing
    for name, f in fields:
        ann = f.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            assert ann.model_config.get("extra") == "forbid", name


def test_every_error_is_reported_with_its_line(tmp_path):
    path = write(tmp_path, """
        version: 1
        camera:
          source: opencv
          width: abc
          hieght: 3
        crop:
          mode: diagonal
        grading:
          threads: 0
        web: {port: 99999}
        extra: 1
    """, "pi5.yaml")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    problems = err.value.problems
    assert "pi5.yaml:4: camera.width: Input should be a valid integer" in problems[0]
    expected = ["pi5.yaml:5: camera.hieght: unknown key", "pi5.yaml:7: crop.mode:",
                "pi5.yaml:9: grading.threads:", "pi5.yaml:10: web.port:", "pi5.yaml:11: extra:"]
    for want, got in zip(expected, problems[1:], strict=True):
        assert got.startswith(want), (want, got)


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = write(tmp_path, "version: 1\ncamera:\n  source: [synthetic\nweb: {}\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value).startswith("cfg.yaml:")
    assert "not valid YAML" in str(err.value)


def test_cross_field_errors(tmp_path):
    path = write(tmp_path, """
        version: 1
        camera: {source: folder}
        quality: {min_brightness: 200, max_brightness: 100}
    """)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    text = str(err.value)
    assert "cfg.yaml:2: camera: camera.source is folder but camera.folder is not set" in text
    assert "cfg.yaml:3: quality:" in text and "below" in text


def test_relative_paths_resolve_against_the_config_folder(tmp_path):
    (tmp_path / "sub").mkdir()
    path = write(tmp_path / "sub", """
        version: 1
        camera: {source: folder, folder: ../photos}
        packs: {dir: packs, public_key: /etc/key.pub}
        storage: {data_dir: data}
    """)
    config = load_config(path)
    assert config.camera.folder == tmp_path / "sub" / ".." / "photos"
    assert config.packs.dir == tmp_path / "sub" / "packs"
    assert str(config.packs.public_key) == "/etc/key.pub"
    assert config.storage.data_dir == tmp_path / "sub" / "data"
    assert config.source_path == path.resolve()


def test_future_and_missing_versions_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="newer than this software reads .version 1"):
        load_config(write(tmp_path, "version: 7\n"))
    with pytest.raises(ConfigError, match="version: missing"):
        load_config(write(tmp_path, "device_name: x\n"))
    with pytest.raises(ConfigError, match="empty"):
        load_config(write(tmp_path, "\n"))
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_migration_table_brings_old_files_forward(tmp_path, monkeypatch):
    def v1_to_v2(data):
        data["device_name"] = data.pop("name")
        return data

    monkeypatch.setattr(config_mod, "CONFIG_VERSION", 2)
    monkeypatch.setitem(config_mod.MIGRATIONS, 1, v1_to_v2)
    # pretend the schema accepts version 2 by migrating only the mapping
    data = config_mod.migrate({"version": 1, "name": "old"}, origin="old.yaml")
    assert data == {"version": 2, "device_name": "old"}
    monkeypatch.delitem(config_mod.MIGRATIONS, 1)
    with pytest.raises(ConfigError, match="no migration from version 1"):
        config_mod.migrate({"version": 1})


def test_check_config_cli(tmp_path, capsys):
    good = write(tmp_path, "version: 1\ndevice_name: clinic-a\n", "good.yaml")
    assert main(["check-config", str(good)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ok\n") and "clinic-a" in out
    bad = write(tmp_path, "version: 1\ncamera:\n  widht: 3\ncrop: {mode: x}\n", "bad.yaml")
    assert main(["check-config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml:3: camera.widht: unknown key" in err
    assert "bad.yaml:4: crop.mode:" in err
    assert "2 problem(s)" in err


def test_a_recorded_crop_mode_is_not_a_configurable_one(tmp_path):
    """One CropMode enum (device.core.vocab): the store records moved and registered crops,
    the configuration chooses among guide, auto and box."""
    from device.core.vocab import CropMode as VocabCropMode

    assert CropMode is VocabCropMode
    with pytest.raises(ConfigError, match="recorded by the device, not chosen"):
        load_config(write(tmp_path, "version: 1\ncrop: {mode: moved}\n"))
    assert load_config(write(tmp_path, "version: 1\ncrop: {mode: box}\n")).crop.mode is CropMode.BOX
