"""The Python half of firmware_config/arm64-check.sh (see there).

  host OUT               on the x86 host: the wheel, a signed tiny pack, a synthetic
                         photo and x86's scan of it, into OUT
  inside SUITE DIR       inside the arm64 root file system (system python3, standard
                         library only): install by install.sh, then each device step,
                         timed; writes DIR/result-SUITE.json
  table X86 RESULT...    print the table and compare each arm64 scan with x86's

Timings inside are under qemu emulation: they say the steps finish, not how fast a
Pi is."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV_PY = "/opt/atopiscan/venv/bin/python"
CONFIG = "/etc/atopiscan/config.yaml"
PROFILES = ("pi4", "pi5", "jetson-orin")
VERSIONS = ("ai-edge-litert", "numpy", "opencv-python-headless", "pillow")


def _sh(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return proc


# --- host ---------------------------------------------------------------------
def host(out: Path) -> None:
    sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
    import cv2
    import numpy as np
    from factories import tiny_card, tiny_tflite

    from convert.packer import write_pack
    from convert.signing import keygen
    from device.cameras.synthetic import render_skin_frame
    from device.core.vocab import MODEL_SIGNS

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        for name in ("pyproject.toml", "README.md"):
            shutil.copy2(ROOT / name, src / name)
        for name in ("device", "convert", "trainer"):
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        _sh([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
             "-w", str(out), str(src)])
        private, public = keygen(Path(tmp) / "keys")
        shutil.copy2(public, out / "pack-signing.pub")
        first = tiny_tflite(Path(tmp) / "model.tflite", size=32, seed=0)
        models = {}
        for sign in MODEL_SIGNS:
            path = Path(tmp) / f"{sign.value}.tflite"
            shutil.copyfile(first, path)
            models[sign] = (path, tiny_card(sign, path, size=32))
        write_pack(models, out / "tiny.atopack", pack_version="0.0.1-arm64", sign_key=private)
    frame, _ = render_skin_frame(np.random.default_rng(11), 640, 480)
    cv2.imwrite(str(out / "photo.jpg"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    (out / "x86-scan.json").write_text(json.dumps(_host_scan(out)))


def _host_scan(out: Path) -> dict:
    """x86's scan of the photo with the same pack, the way the device does it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "device.yaml"
        config.write_text(json.dumps({"version": 1, "packs": {
            "dir": str(Path(tmp) / "packs"), "public_key": str(out / "pack-signing.pub")},
            "storage": {"data_dir": str(Path(tmp) / "data")}}))
        device = [sys.executable, "-m", "device"]
        _sh([*device, "flash", str(out / "tiny.atopack"), "--config", str(config)], env=env)
        scan = _sh([*device, "scan", "--image", str(out / "photo.jpg"), "--config", str(config)],
                   env=env)
    return json.loads(scan.stdout)


# --- inside the arm64 root file system ---------------------------------------------
def inside(suite: str, where: Path) -> int:
    wheel = next(where.glob("atopiscan-*.whl"))
    installer = ["bash", str(where / "src/firmware_config/install.sh"), "--profile", "pi5",
                 "--wheel", str(wheel), "--public-key", str(where / "pack-signing.pub")]
    as_service = ["runuser", "-u", "atopiscan", "--"]
    steps: list[dict] = []
    scan: dict = {}

    def step(name: str, cmd: list[str], expect: str = "", timeout: int = 1800) -> str:
        start = time.monotonic()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        seconds = time.monotonic() - start
        ok = proc.returncode == 0 and expect in proc.stdout
        steps.append({"step": name, "ok": ok, "seconds": round(seconds, 1)})
        print(f"  {name}: {'ok' if ok else 'FAILED'} ({seconds:.1f} s emulated)", flush=True)
        if not ok:
            print(proc.stdout[-3000:] + proc.stderr[-3000:], flush=True)
        return proc.stdout

    step("install (install.sh)", installer)
    step("install again: nothing to change", installer, expect="Nothing to change")
    step("systemd-analyze verify (the unit)", ["systemd-analyze", "verify",
                                                "/etc/systemd/system/atopiscan.service"])
    for profile in PROFILES:
        step(f"check-config {profile}", [VENV_PY, "-m", "device", "check-config",
                                         str(where / "src/firmware_config" / f"{profile}.yaml")])
    step("flash (signed pack)", [*as_service, VENV_PY, "-m", "device", "flash",
                                 str(where / "tiny.atopack"), "--config", CONFIG])
    out = step("scan (synthetic photo)", [*as_service, VENV_PY, "-m", "device", "scan", "--image",
                                          str(where / "photo.jpg"), "--config", CONFIG])
    try:
        scan = json.loads(out)
    except ValueError:
        steps[-1]["ok"] = False
    step("bench (5 scans)", [*as_service, VENV_PY, "-m", "device", "bench", "--n", "5",
                             "--image", str(where / "photo.jpg"), "--config", CONFIG])
    steps.append(_serve(as_service))
    print(f"  {steps[-1]['step']}: {'ok' if steps[-1]['ok'] else 'FAILED'} "
          f"({steps[-1]['seconds']} s emulated)", flush=True)
    versions = _versions()  # before the uninstall step removes the venv
    step("uninstall keeps patient data", ["bash", "-c", f"{' '.join(installer[:2])} --uninstall && "
                                          "test -d /var/lib/atopiscan/packs && ! test -e /opt/atopiscan"])
    result = {"suite": suite, "python": sys.version.split()[0], "versions": versions,
              "steps": steps, "scan": scan}
    (where / f"result-{suite}.json").write_text(json.dumps(result, indent=1))
    return 0 if all(s["ok"] for s in steps) else 1


def _serve(as_service: list[str]) -> dict:
    """`device run` on 127.0.0.1: /healthz answers and /login renders."""
    start = time.monotonic()
    proc = subprocess.Popen([*as_service, VENV_PY, "-m", "device", "run", "--config", CONFIG,
                             "--port", "8089"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    ok = False
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen("http://127.0.0.1:8089/healthz", timeout=5) as health:
                    healthy = json.load(health).get("status") == "ok"
                with urllib.request.urlopen("http://127.0.0.1:8089/login", timeout=30) as login:
                    ok = healthy and login.status == 200 and "<form" in login.read().decode()
                break
            except OSError:
                time.sleep(1)
    finally:
        proc.terminate()
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    if not ok:
        print(out[-3000:], flush=True)
    return {"step": "run: /healthz and /login", "ok": ok, "seconds": round(time.monotonic() - start, 1)}


def _versions() -> dict:
    code = ("import json, importlib.metadata as m; print(json.dumps({n: m.version(n) for n in "
            f"{list(VERSIONS)!r}}}))")
    proc = subprocess.run([VENV_PY, "-c", code], capture_output=True, text=True)
    return json.loads(proc.stdout) if proc.returncode == 0 else {}


# --- the table ------------------------------------------------------------------
def _verdict(scan: dict) -> dict:
    """What must match x86: the crop, each sign's grade, review flag and probabilities
    (rounded to 4 places in the scan's JSON), and the abstention."""
    grades = {sign: (g.get("grade"), g.get("review"), g.get("probs"))
              for sign, g in scan.get("grades", {}).items()}
    return {"crop": (scan.get("crop") or {}).get("box"), "grades": grades,
            "abstained": scan.get("abstained")}


def table(x86_file: Path, results: list[Path]) -> int:
    x86 = _verdict(json.loads(x86_file.read_text()))
    rows = [json.loads(p.read_text()) for p in results if p.exists()]
    failed = len(rows) < len(results)
    print("\narm64 check: EMULATED under qemu-user on an x86 host (seconds are NOT Pi timings)")
    for row in rows:
        v = row["versions"]
        print(f"\n{row['suite']}: Python {row['python']}, ai-edge-litert {v.get('ai-edge-litert')}, "
              f"NumPy {v.get('numpy')}, OpenCV {v.get('opencv-python-headless')}, "
              f"Pillow {v.get('pillow')}")
        print(f"  {'step':<38} {'result':<7} {'emulated s':>10}")
        for s in row["steps"]:
            print(f"  {s['step']:<38} {'ok' if s['ok'] else 'FAILED':<7} {s['seconds']:>10.1f}")
        same = _verdict(row["scan"]) == x86
        print(f"  scan vs x86 (crop, grades, probabilities, review flags, abstention): "
              f"{'same' if same else 'DIFFERENT'}")
        if not same:
            print(f"    arm64: {_verdict(row['scan'])}")
        failed |= not same or not all(s["ok"] for s in row["steps"])
    print(f"\nx86 scan: {x86}")
    return 1 if failed else 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["host"] and len(argv) == 2:
        host(Path(argv[1]))
        return 0
    if argv[:1] == ["inside"] and len(argv) == 3:
        return inside(argv[1], Path(argv[2]))
    if argv[:1] == ["table"] and len(argv) >= 3:
        return table(Path(argv[1]), [Path(p) for p in argv[2:]])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
