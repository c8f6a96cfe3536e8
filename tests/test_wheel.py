"""The device as it ships: built into a wheel, installed NON-editable with the
device's dependencies only (no TensorFlow) into a fresh virtual environment on the
oldest Python a profile runs (3.10, a Jetson's), then flashed, served and asked to
grade a photo. Every other test runs from the editable checkout, so a file missing
from the wheel's package data (templates, static files, the default config) or a
dependency missing from pyproject shows up only here.

Dependency wheels are kept in a wheelhouse under ~/.cache/atopiscan (downloaded
from the package index on the first run, reused after), so a warm run is offline."""

from __future__ import annotations

import glob
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from device_pack import tiny_packs_dir
from web_support import write_frames

from device.core.vocab import MODEL_SIGNS

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
WHEELHOUSE = Path(os.environ.get("ATOPISCAN_WHEELHOUSE", "~/.cache/atopiscan/wheelhouse")).expanduser()
PASSWORD = "wheel-test-password-1"
# Without the checkout on the path: PYTHONPATH would let pip and Python find the
# sources (and an egg-info) instead of what the wheel installed.
CLEAN_ENV = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}


def oldest_python() -> tuple[str, str]:
    """(interpreter, why): Python 3.10 where this machine has one, else this one."""
    candidates = [*sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.10.*/bin/python"))),
                  shutil.which("python3.10")]
    for found in filter(None, candidates):  # a pyenv shim may exist and still refuse to run
        if subprocess.run([found, "-c", "import venv"], capture_output=True).returncode == 0:
            return found, "Python 3.10 (a Jetson's, the oldest profile's)"
    return sys.executable, (f"no Python 3.10 here: ran on {sys.version.split()[0]} instead, so the "
                            "oldest supported Python was NOT checked")


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    kw.setdefault("env", CLEAN_ENV)
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def build_wheel(out: Path) -> Path:
    """The wheel, built from a copy of the sources (nothing written into the checkout)."""
    src = out / "src"
    src.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for name in ("device", "convert", "trainer"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
          "-w", str(out / "dist"), str(src)])
    return next((out / "dist").glob("atopiscan-*.whl"))


def install_wheel(python: str, wheel: Path, venv: Path) -> Path:
    """A fresh venv (no system site packages) with ``wheel[device]`` from the wheelhouse."""
    _run([python, "-m", "venv", "--without-pip", str(venv)])
    vpy = venv / "bin" / "python"
    tag = _run([str(vpy), "-c", "import sys; print(f'py{sys.version_info[0]}{sys.version_info[1]}')"]
               ).stdout.strip()
    house = WHEELHOUSE / tag
    house.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "--python", str(vpy)]
    spec = f"{wheel}[device]"
    offline = subprocess.run([*pip, "install", "-q", "--no-index", "--find-links", str(house), spec],
                             capture_output=True, text=True, env=CLEAN_ENV)
    if offline.returncode != 0:  # first run, or pyproject asks for something new
        _run([*pip, "download", "-q", "-d", str(house), spec])
        for stale in house.glob("atopiscan-*.whl"):  # only the dependencies are kept
            stale.unlink()
        _run([*pip, "install", "-q", "--no-index", "--find-links", str(house), spec])
    return vpy


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_up(base: str, proc: subprocess.Popen, requests) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"device run exited:\n{proc.stdout.read()}"
        try:
            if requests.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.3)
    pytest.fail("device run did not answer /healthz within a minute")


def test_the_wheel_installs_flashes_serves_and_grades(tmp_path):
    import requests

    python, why = oldest_python()
    print(f"wheel test on {python}: {why}")
    wheel = build_wheel(tmp_path / "build")
    vpy = install_wheel(python, wheel, tmp_path / "venv")
    env = CLEAN_ENV
    work = tmp_path / "site"  # cwd away from the checkout: only the installed package can import
    work.mkdir()
    where = _run([str(vpy), "-c", "import device, sys; print(device.__file__); "
                  "print('tensorflow' in sys.modules)"], cwd=work, env=env).stdout.split()
    assert "site-packages" in where[0] and where[1] == "False", where
    assert subprocess.run([str(vpy), "-c", "import tensorflow"], cwd=work, env=env,
                          capture_output=True).returncode != 0, "TensorFlow came with the device"
    # Every device module imports on this Python (a 3.11+ stdlib name fails here on 3.10).
    _run([str(vpy), "-c", "import importlib, pkgutil, device\n"
          "for m in pkgutil.walk_packages(device.__path__, 'device.'):\n"
          "    importlib.import_module(m.name)"], cwd=work, env=env)

    write_frames(work / "frames", n=1)
    photo = write_frames(work / "photos", n=1, seed=7)[0]
    config = work / "device.yaml"
    config.write_text(yaml.safe_dump({
        "version": 1, "camera": {"source": "folder", "folder": "frames", "width": 480, "height": 360},
        "packs": {"dir": "packs"}, "storage": {"data_dir": "data"}}))
    device = [str(vpy), "-m", "device"]
    pack = tiny_packs_dir().parent / "tiny.atopack"
    _run([*device, "check-config", str(config)], cwd=work, env=env)
    _run([*device, "flash", str(pack), "--config", str(config)], cwd=work, env=env)
    _run([*device, "adduser", "nurse1", "--role", "staff", "--config", str(config),
          "--password-stdin"], cwd=work, env=env, input=PASSWORD + "\n")

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([*device, "run", "--config", str(config), "--port", str(port)],
                            cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        _wait_up(base, proc, requests)
        http = requests.Session()
        page = http.get(f"{base}/login", timeout=10)
        assert page.status_code == 200 and "<form" in page.text, page.text[:500]
        token = re.search(r'name="csrf-token" content="([^"]+)"', page.text).group(1)
        css = http.get(f"{base}/static/style.css", timeout=10)
        assert css.status_code == 200 and len(css.content) > 100
        login = http.post(f"{base}/login", timeout=10, data={
            "username": "nurse1", "password": PASSWORD, "csrf_token": token})
        assert login.status_code == 200, login.text[:500]
        assert http.get(f"{base}/api/me", timeout=10).json()["username"] == "nurse1"
        token = http.get(f"{base}/api/csrf", timeout=10).json()["csrf_token"]
        with open(photo, "rb") as image:
            resp = http.post(f"{base}/api/scan", headers={"X-CSRFToken": token}, timeout=60,
                             files={"image": ("lesion.jpg", image, "image/jpeg")})
        assert resp.status_code == 200, resp.text[:1000]
        grades = resp.json()["result"]["grades"]
        assert {s.value for s in MODEL_SIGNS} <= set(grades), grades
        assert all(grades[s.value]["grade"] in (0, 1, 2, 3) for s in MODEL_SIGNS), grades
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    assert "Traceback" not in out, out[-3000:]
