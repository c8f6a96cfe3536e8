"""Pack member refusals with and without Python's tarfile "data" filter.

Raspberry Pi OS Bookworm runs Python 3.11.2, which has no ``tarfile.data_filter``
(3.11.4+, 3.10.12+): device.packs.check must refuse the same members by hand there.
Each case runs twice: with the filter, and with the attribute taken away."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest
from device_pack import tiny_pack_dir

from device.packs import check
from device.packs.check import member_refusal, verify_pack


@pytest.fixture(params=["filter", "by-hand"])
def python_release(request, monkeypatch):
    if request.param == "by-hand":
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
        monkeypatch.delattr(tarfile, "FilterError", raising=False)
    return request.param


def _member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size, info.mode = kind, linkname, 4, 0o644
    return info


@pytest.mark.parametrize(
    "member,why",
    [
        (_member("/etc/passwd"), "absolute"),
        (_member("models/../../escape.txt"), ".."),
        (_member("../escape.txt"), ".."),
        (_member("models/link.tflite", tarfile.SYMTYPE, "/etc/passwd"), "link"),
        (_member("models/hard.tflite", tarfile.LNKTYPE, "/etc/shadow"), "link"),
        (_member("dev/sda", tarfile.BLKTYPE), "device"),
        (_member("dev/tty", tarfile.CHRTYPE), "device"),
        (_member("pipe", tarfile.FIFOTYPE), "device"),
    ],
)
def test_unsafe_members_are_refused(python_release, tmp_path, member, why):
    refusal = member_refusal(member, tmp_path)
    assert refusal is not None and why in refusal, refusal


@pytest.mark.parametrize("name", ["manifest.json", "models/erythema.tflite", "golden/a/b.png"])
def test_regular_files_inside_the_pack_pass(python_release, tmp_path, name):
    assert member_refusal(_member(name), tmp_path) is None


def test_without_the_filter_the_checks_by_hand_decide(monkeypatch, tmp_path):
    monkeypatch.delattr(tarfile, "data_filter", raising=False)
    monkeypatch.setattr(check, "_refusal_by_hand", lambda m, r: f"checked {m.name} by hand")
    assert member_refusal(_member("manifest.json"), tmp_path) == "checked manifest.json by hand"


def test_with_the_filter_its_refusal_also_counts(monkeypatch, tmp_path):
    def refuse(member, dest):
        raise tarfile.TarError("no")

    monkeypatch.setattr(tarfile, "data_filter", refuse, raising=False)
    assert member_refusal(_member("manifest.json"), tmp_path) == "tarfile's data filter: no"


def _repack(folder: Path, out: Path) -> Path:
    with tarfile.open(out, "w") as tar:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            tar.add(path, arcname=path.relative_to(folder).as_posix())
    return out


def test_a_good_pack_verifies_and_self_tests_without_the_filter(python_release, tmp_path):
    pack = _repack(tiny_pack_dir(), tmp_path / "tiny.atopack")
    report = verify_pack(pack)
    assert report.ok, report.summary()
    assert report.selftest and all(t.failed == 0 for t in report.selftest)
