"""``python -m device scan | bench | check-config`` end to end, including a scan in a
process where TensorFlow cannot be imported (as on the device)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from device_pack import PACK_VERSION, tiny_packs_dir

from device.__main__ import main
from device.cameras import SyntheticCamera

REPO = Path(__file__).resolve().parents[1]

NO_TF_SCAN = (
    "import sys\n"
    "for name in ('tensorflow', 'keras', 'tf_keras'):\n"
    "    sys.modules[name] = None  # importing it now raises ImportError\n"
    "from device.__main__ import main\n"
    "code = main(sys.argv[1:])\n"
    "assert not any(k.split('.')[0] in ('tensorflow', 'keras') and sys.modules[k] is not None\n"
    "               for k in sys.modules), 'TensorFlow was imported'\n"
    "sys.exit(code)\n"
)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    config = root / "device.yaml"
    config.write_text(f"version: 1\npacks:\n  dir: {tiny_packs_dir()}\n"
                      "storage:\n  data_dir: data\n")
    photo = root / "photo.jpg"
    cam = SyntheticCamera(800, 600, seed=9)
    cv2.imwrite(str(photo), cv2.cvtColor(cam.read(), cv2.COLOR_RGB2BGR))
    return root, config, photo, cam.last_box


def run_device(*args, no_tf=False):
    cmd = [sys.executable, "-c", NO_TF_SCAN] if no_tf else [sys.executable, "-m", "device"]
    return subprocess.run([*cmd, *map(str, args)], capture_output=True, text=True, cwd=REPO,
                          timeout=120)


def test_scan_without_tensorflow_grades_a_photo_end_to_end(setup):
    _, config, photo, box = setup
    proc = run_device("scan", "--config", config, "--image", photo, "--crop", "auto",
                      no_tf=True)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["ok"] and result["pack_version"] == PACK_VERSION
    assert set(result["grades"]) == {"erythema", "excoriation", "lichenification"}
    assert result["crop"]["mode"] == "auto"
    x, y, w, h = result["crop"]["box"]
    assert abs((x + w / 2) - (box[0] + box[2] / 2)) < box[2] / 2, "auto crop on the lesion"


def test_scan_with_a_box(setup, capsys):
    _, config, photo, _ = setup
    assert main(["scan", "--config", str(config), "--image", str(photo),
                 "--box", "100,50,200,200"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["crop"]["box"] == [100, 50, 200, 200] and result["crop"]["mode"] == "box"


def _write(path, image):
    ok, data = cv2.imencode(path.suffix, image)
    assert ok
    path.write_bytes(data.tobytes())
    return path


@pytest.mark.parametrize("name,make,message", [
    ("corrupt.jpg", lambda p: p.write_bytes(b"\xff\xd8 this is not a jpeg"), "not a readable image"),
    ("empty.png", lambda p: p.write_bytes(b""), "not a readable image"),
    ("grey.png", lambda p: _write(p, np.full((200, 200), 128, np.uint8)), "greyscale"),
    ("tiny.png", lambda p: _write(p, np.zeros((1, 1, 3), np.uint8)), "only 1x1 pixels"),
    ("missing.png", lambda p: None, "no such image file"),
])
def test_odd_images_give_one_line_errors(setup, capsys, name, make, message):
    root, config, _, _ = setup
    path = root / name
    make(path)
    assert main(["scan", "--config", str(config), "--image", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.strip()
    assert err.count("\n") == 0 and message in err and "Traceback" not in err


def test_rgba_image_is_graded(setup, capsys):
    root, config, photo, _ = setup
    rgba = cv2.cvtColor(cv2.imread(str(photo)), cv2.COLOR_BGR2BGRA)
    path = _write(root / "rgba.png", rgba)
    assert main(["scan", "--config", str(config), "--image", str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["graded"]


def test_a_photo_that_fails_quality_exits_1_with_reasons(setup, capsys):
    root, config, _, _ = setup
    path = _write(root / "dark.png", np.full((300, 300, 3), 5, np.uint8))
    assert main(["scan", "--config", str(config), "--image", str(path)]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out)["graded"] is False
    assert "retake: The photo is too dark" in captured.err


def test_scan_with_a_bad_config_or_no_pack(setup, tmp_path, capsys):
    _, _, photo, _ = setup
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\ngrading:\n  thread: 2\n")
    assert main(["scan", "--config", str(bad), "--image", str(photo)]) == 2
    assert "bad.yaml:3: grading.thread: unknown key" in capsys.readouterr().err
    empty = tmp_path / "empty.yaml"
    empty.write_text(f"version: 1\npacks: {{dir: {tmp_path / 'none'}}}\n")
    assert main(["scan", "--config", str(empty), "--image", str(photo)]) == 2
    assert "no model pack is installed" in capsys.readouterr().err


def test_bench_prints_stage_timings_and_invoke_share(setup, capsys):
    _, config, _, _ = setup
    assert main(["bench", "--config", str(config), "--n", "5", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n"] == 5
    assert set(report["stages_ms"]) == {"capture", "quality", "colour", "crop", "resize", "invoke",
                                        "abstain", "total"}
    assert all(s["p90"] >= s["median"] >= 0 for s in report["stages_ms"].values())
    assert 0 < report["invoke_share"] < 1
    besides = report["besides_invoke_ms"]  # the scan's own work, beside the models'
    assert besides["p90"] >= besides["median"] > 0
    assert besides["per_invoke"] == pytest.approx(
        besides["median"] / report["stages_ms"]["invoke"]["median"])
    assert report["startup_ms"]["load_models"] > 0 and report["startup_ms"]["first_scan"] > 0
    assert main(["bench", "--config", str(config), "--n", "3"]) == 0
    out = capsys.readouterr().out
    assert "median ms" in out and "model invoke share of the scan" in out and "start-up" in out
    assert "all but invoke: median" in out


def test_check_config_subcommand(setup):
    _, config, _, _ = setup
    proc = run_device("check-config", config)
    assert proc.returncode == 0 and proc.stdout.startswith("ok")
