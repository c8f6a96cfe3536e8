"""Model pack verification, install, rollback and listing, on real packs made from
tiny TFLite models (tests/factories.py) by convert.packer.write_pack."""

import hashlib
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from factories import tiny_card, tiny_tflite
from hostile import read_members, write_members

from device.__main__ import main as device_main
from device.core.vocab import MODEL_SIGNS, Sign
from device.packs.install import (
    CURRENT,
    PREVIOUS,
    STORE,
    InstallError,
    current_pack_dir,
    install_pack,
    list_packs,
    rollback,
    verify_pack,
)
from device.packs.manifest import MANIFEST_NAME, SIGNATURE_NAME

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    """One tiny int8 model (built once, ~3 s with TensorFlow) copied for each sign."""
    folder = tmp_path_factory.mktemp("models")
    first = tiny_tflite(folder / "base.tflite", size=32, mode="int8")
    out = {}
    for sign in MODEL_SIGNS:
        path = folder / f"{sign.value}.tflite"
        path.write_bytes(first.read_bytes())
        out[sign] = (path, tiny_card(sign, path))
    return out


@pytest.fixture(scope="session")
def keys(tmp_path_factory):
    from convert.signing import keygen

    good = keygen(tmp_path_factory.mktemp("key_good"))
    other = keygen(tmp_path_factory.mktemp("key_other"))
    return {"private": good[0], "public": good[1], "other_private": other[0]}


@pytest.fixture(scope="session")
def make_pack(models, tmp_path_factory):
    from convert.packer import write_pack

    folder = tmp_path_factory.mktemp("packs")
    cache = {}

    def make(version="2026.1.0", **kwargs):
        key = (version, tuple(sorted((k, str(v)) for k, v in kwargs.items())))
        if key not in cache:
            out = folder / f"pack-{len(cache)}.tar"
            cache[key] = write_pack(models, out, pack_version=version, **kwargs)
        return cache[key]

    return make


def rehash(members: dict[str, bytes], *names: str) -> None:
    """Update the manifest's sha256 of ``names`` (a tamper that a checksum alone misses)."""
    manifest = json.loads(members[MANIFEST_NAME])
    for name in names:
        manifest["files"][name] = hashlib.sha256(members[name]).hexdigest()
    members[MANIFEST_NAME] = json.dumps(manifest).encode()
    members.pop(SIGNATURE_NAME, None)


def tamper(make_pack, tmp_path, mutate, **kwargs) -> Path:
    members = read_members(make_pack(**kwargs))
    extra = mutate(members)
    extra = extra if isinstance(extra, list) else []  # pop()/update() return other things
    return write_members(tmp_path / "tampered.tar", members, extra)


@pytest.fixture
def packs_dir(tmp_path, make_pack):
    """A packs folder with a good pack installed and current."""
    folder = tmp_path / "packs"
    install_pack(make_pack(), folder)
    return folder


def _flip_byte(m):
    data = bytearray(m["models/erythema.tflite"])
    data[len(data) // 2] ^= 0xFF
    m["models/erythema.tflite"] = bytes(data)


def _bad_manifest(m):
    manifest = json.loads(m[MANIFEST_NAME])
    manifest["pack_version"] = "next tuesday"
    del manifest["files"]
    m[MANIFEST_NAME] = json.dumps(manifest).encode()


def _traversal(m):
    m["../escape.txt"] = b"owned"


def _symlink(m):
    info = tarfile.TarInfo("models/link.tflite")
    info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
    return [info]


def _golden_probs(m):
    golden = json.loads(m["golden/expected.json"])
    for case in golden["cases"]["excoriation"]:
        case["probs"] = [0.97, 0.01, 0.01, 0.01] if case["grade"] != 0 else [0.01, 0.01, 0.01, 0.97]
        case["grade"] = 0 if case["grade"] != 0 else 3
    m["golden/expected.json"] = json.dumps(golden).encode()
    rehash(m, "golden/expected.json")


def _card_for_other_model(m):
    card = json.loads(m["models/lichenification.card.json"])
    card["sha256"] = "0" * 64
    m["models/lichenification.card.json"] = json.dumps(card).encode()
    rehash(m, "models/lichenification.card.json")


def _card_input_size(m):
    card = json.loads(m["models/erythema.card.json"])
    card["input_size"] = [48, 48]  # the model takes 32x32
    m["models/erythema.card.json"] = json.dumps(card).encode()
    rehash(m, "models/erythema.card.json")


BAD = {
    "flipped byte": (_flip_byte, "models/erythema.tflite: sha256 mismatch — the pack is damaged"),
    "missing file": (lambda m: m.pop("golden/erythema/0.png"),
                     "golden/erythema/0.png: listed in the manifest but missing"),
    "extra file": (lambda m: m.update({"notes.txt": b"hi"}), "notes.txt: in the pack but not listed"),
    "bad manifest": (_bad_manifest, "manifest.json: pack_version: 'next tuesday'"),
    "no manifest": (lambda m: m.pop(MANIFEST_NAME), "manifest.json: missing"),
    "path traversal": (_traversal, "'../escape.txt': unsafe path"),
    "symlink member": (_symlink, "models/link.tflite: is a link to '/etc/passwd'"),
    "failing self-test": (_golden_probs, "self-test failed for excoriation: 8 of 8 golden images"),
    "card of another model": (_card_for_other_model,
                              "models/lichenification.card.json: its sha256 does not match"),
    "card input size": (_card_input_size, "models/erythema.tflite: input size (32, 32) differs "
                                          "from its card's input_size (48, 48)"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_pack_is_refused_and_current_untouched(case, make_pack, packs_dir, tmp_path):
    mutate, message = BAD[case]
    before = os.readlink(packs_dir / CURRENT)
    bad = tamper(make_pack, tmp_path, mutate, version="2026.2.0")
    with pytest.raises(InstallError) as err:
        install_pack(bad, packs_dir)
    assert any(message in p for p in err.value.problems), err.value.problems
    assert os.readlink(packs_dir / CURRENT) == before
    assert not (packs_dir / PREVIOUS).exists()
    assert sorted(p.name for p in (packs_dir / STORE).iterdir()) == [Path(before).name]
    assert not (tmp_path / "escape.txt").exists() and not (packs_dir / "escape.txt").exists()
    assert not verify_pack(bad).ok


def test_not_a_tar(tmp_path, packs_dir):
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"this is not a tar file at all" * 40)
    report = verify_pack(junk)
    assert not report.ok and "not a tar file" in report.problems[0]
    with pytest.raises(InstallError):
        install_pack(junk, packs_dir)


def test_good_pack_installs_and_becomes_current(make_pack, tmp_path):
    report = verify_pack(make_pack())
    assert report.ok, report.problems
    assert {t.sign for t in report.selftest} == set(MODEL_SIGNS)
    assert all(t.failed == 0 and t.cases == 8 and t.max_diff <= 0.03 for t in report.selftest)
    assert any("unsigned pack" in n for n in report.notes)
    folder = tmp_path / "packs"
    assert current_pack_dir(folder) is None and list_packs(folder) == []
    installed = install_pack(make_pack(), folder)
    current = current_pack_dir(folder)
    assert current == folder / STORE / installed.id and installed.id.startswith("2026.1.0-")
    assert (current / "models" / "erythema.tflite").is_file()
    assert (folder / CURRENT).is_symlink() and not os.path.isabs(os.readlink(folder / CURRENT))
    [info] = list_packs(folder)
    assert info.current and not info.previous and info.version == "2026.1.0"
    assert info.models[Sign.ERYTHEMA] == {"backbone": "tiny_test", "quantization": "int8",
                                          "input_size": [32, 32], "head": "softmax"}
    # installing the current pack again changes nothing
    assert install_pack(make_pack(), folder).id == installed.id
    assert not (folder / PREVIOUS).exists()


def test_second_install_keeps_previous_and_rollback_swaps(make_pack, packs_dir):
    first = current_pack_dir(packs_dir).name
    second = install_pack(make_pack("2026.2.0"), packs_dir)
    assert current_pack_dir(packs_dir).name == second.id
    assert Path(os.readlink(packs_dir / PREVIOUS)).name == first
    marks = {p.id: (p.current, p.previous) for p in list_packs(packs_dir)}
    assert marks == {second.id: (True, False), first: (False, True)}
    back = rollback(packs_dir)
    assert back.id == first and current_pack_dir(packs_dir).name == first
    assert Path(os.readlink(packs_dir / PREVIOUS)).name == second.id
    assert rollback(packs_dir).id == second.id  # and forward again


def test_rollback_without_previous(packs_dir, tmp_path):
    with pytest.raises(InstallError, match="no previous pack"):
        rollback(packs_dir)
    with pytest.raises(InstallError, match="no previous pack"):
        rollback(tmp_path / "empty")


def test_old_packs_are_bounded(make_pack, packs_dir):
    ids = [install_pack(make_pack(f"2026.{k}.0"), packs_dir, keep=3).id for k in (2, 3, 4)]
    kept = {p.id for p in list_packs(packs_dir)}
    assert kept == set(ids)  # the first pack was the oldest spare: deleted
    assert current_pack_dir(packs_dir).name == ids[-1]


def test_failure_while_switching_leaves_current_and_cleans_staging(make_pack, packs_dir, monkeypatch):
    import device.packs.install as install

    before = os.readlink(packs_dir / CURRENT)

    def broken_rename(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(install.os, "rename", broken_rename)
    with pytest.raises(OSError, match="No space"):
        install_pack(make_pack("2026.2.0"), packs_dir)
    assert os.readlink(packs_dir / CURRENT) == before
    assert [p.name for p in (packs_dir / STORE).iterdir()] == [Path(before).name]


def test_too_new_min_device_version(make_pack, packs_dir):
    pack = make_pack("2026.2.0", min_device_version="99.0")
    with pytest.raises(InstallError) as err:
        install_pack(pack, packs_dir)
    assert any("needs device software 99.0 or newer" in p for p in err.value.problems)
    assert verify_pack(pack, device_version="99.0.1").ok


def test_signatures(make_pack, keys, tmp_path):
    signed = make_pack("2026.3.0", sign_key=keys["private"])
    wrong = make_pack("2026.3.0", sign_key=keys["other_private"])
    unsigned = make_pack("2026.3.0")
    no_key = verify_pack(signed)
    assert no_key.ok and any("signature not checked" in n for n in no_key.notes)
    good = verify_pack(signed, public_key=keys["public"])
    assert good.ok and good.signature_checked
    bad = verify_pack(wrong, public_key=keys["public"])
    assert any("manifest.sig: the signature does not match" in p for p in bad.problems)
    missing = verify_pack(unsigned, public_key=keys["public"])
    assert any("manifest.sig: missing" in p for p in missing.problems)
    # a manifest edited after signing (hashes re-computed, old signature kept) is caught
    members = read_members(signed)
    sig = members[SIGNATURE_NAME]
    _golden_probs(members)
    members[SIGNATURE_NAME] = sig
    edited = write_members(tmp_path / "edited.tar", members)
    assert any("signature does not match" in p
               for p in verify_pack(edited, public_key=keys["public"]).problems)
    folder = tmp_path / "packs"
    install_pack(signed, folder, public_key=keys["public"])
    for refused in (wrong, unsigned):
        with pytest.raises(InstallError):
            install_pack(refused, folder, public_key=keys["public"])
        assert current_pack_dir(folder).name.startswith("2026.3.0-")
    private_as_public = verify_pack(signed, public_key=keys["private"])
    assert any("cannot be used" in p for p in private_as_public.problems)


def test_cli_flash_packs_rollback(make_pack, tmp_path, capsys):
    folder = tmp_path / "packs"
    assert device_main(["flash", str(make_pack()), "--packs-dir", str(folder)]) == 0
    assert device_main(["flash", str(make_pack("2026.2.0")), "--packs-dir", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "installed pack 2026.2.0" in out and "self-test erythema: 8/8" in out
    assert device_main(["packs", "--packs-dir", str(folder)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("current   2026.2.0") and "tiny_test int8 32x32" in lines[1]
    assert any(line.startswith("previous  2026.1.0") for line in lines)
    assert device_main(["rollback", "--packs-dir", str(folder)]) == 0
    assert "current pack is now 2026.1.0" in capsys.readouterr().out
    bad = tamper(make_pack, tmp_path, _flip_byte)
    assert device_main(["flash", str(bad), "--packs-dir", str(folder)]) == 2
    assert "sha256 mismatch" in capsys.readouterr().err
    assert device_main(["packs"]) == 2
    assert "--packs-dir" in capsys.readouterr().err


def test_cli_reads_packs_section_of_config(make_pack, keys, tmp_path, capsys):
    config = tmp_path / "device.yaml"
    config.write_text(f"version: 1\npacks: {{dir: packs, public_key: {keys['public']}}}\n")
    assert device_main(["flash", str(make_pack()), "--config", str(config)]) == 2
    assert "manifest.sig: missing" in capsys.readouterr().err
    signed = make_pack("2026.3.0", sign_key=keys["private"])
    assert device_main(["flash", str(signed), "--config", str(config)]) == 0
    assert current_pack_dir(tmp_path / "packs") is not None


def test_verify_runs_without_tensorflow(make_pack):
    code = (
        "import sys\n"
        "for blocked in ('tensorflow', 'keras'):\n"
        "    sys.modules[blocked] = None\n"
        "from device.packs.install import verify_pack\n"
        f"report = verify_pack({str(make_pack())!r})\n"
        "assert report.ok, report.problems\n"
        "print(report.summary())\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    assert "OK" in proc.stdout and "self-test lichenification: 8/8" in proc.stdout


def test_software_versions_compare_as_pep440():
    from device.packs.manifest import software_version

    assert software_version("0.10.0") > software_version("0.9.2")
    assert software_version("0.1.0+source") >= software_version("0.1.0")
    assert software_version("1.0.0rc1") < software_version("1.0.0")
    with pytest.raises(ValueError, match="'next tuesday' is not a version like 1.2.3"):
        software_version("next tuesday")


def test_a_card_whose_input_size_disagrees_fails_verify_and_flash(make_pack, tmp_path, capsys):
    from convert.__main__ import main as convert_main

    bad = tamper(make_pack, tmp_path, _card_input_size, version="2026.3.0")
    assert convert_main(["verify", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "FAILED" in out and "input size (32, 32) differs from its card's input_size" in out
    folder = tmp_path / "packs"
    assert device_main(["flash", str(bad), "--packs-dir", str(folder)]) == 2
    assert "input_size (48, 48)" in capsys.readouterr().err
    assert not (folder / CURRENT).exists()
