"""convert end to end: a small classifier trained here on learnable colour images,
converted in each mode through the accuracy gate, then packed and verified.

All figures here come from generated images (not clinical accuracy).
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest

from convert.__main__ import main as convert_main
from device.core.card import load_card
from device.core.vocab import MODEL_SIGNS, Sign
from device.packs.manifest import MANIFEST_NAME, SIGNATURE_NAME

pytestmark = pytest.mark.slow

SIZE = 32
PER_GRADE = 40


def _image(rng, grade: int) -> np.ndarray:
    """Skin-ish background whose redness rises with the grade, with blotches and noise."""
    red = 90 + 45 * grade + rng.normal(0, 6)
    base = np.array([red, 150 - 25 * grade, 120 - 15 * grade])
    img = base + rng.normal(0, 10, (SIZE, SIZE, 3))
    y, x = rng.integers(4, SIZE - 4, 2)
    img[max(0, y - 3):y + 3, max(0, x - 3):x + 3] += rng.normal(0, 20, 3)
    return np.clip(img, 0, 255).astype(np.uint8)


def _tiny_classifier():
    import keras

    inp = keras.Input((SIZE, SIZE, 3), dtype="uint8", name="image")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0)(keras.ops.cast(inp, "float32"))
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(x)
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(4, activation="softmax", name="grades")(x)
    return keras.Model(inp, out)


def _make_run(root: Path, sign: Sign, data: Path, model_file: Path) -> Path:
    from trainer.data import load_dataset, samples_for_sign
    from trainer.split import make_split, save_split

    run = root / f"run_{sign.value}"
    run.mkdir()
    shutil.copy(model_file, run / "model.keras")
    report = load_dataset(data)
    split = make_split(samples_for_sign(report.samples, sign), sign, seed=0, val_fraction=0.4,
                       root=report.root)
    save_split(split, run / "split.json")
    config = {"sign": sign.value, "backbone": "tiny_test", "image_size": SIZE, "head": "softmax",
              "seed": 0, "data": str(report.root), "split": "split.json", "synthetic": True}
    (run / "config.json").write_text(json.dumps(config))
    return run


@pytest.fixture(scope="session")
def runs(tmp_path_factory) -> dict[Sign, Path]:
    """One trained model, as a run for each sign (the same colour images under each)."""
    import cv2
    import keras

    root = tmp_path_factory.mktemp("convert_runs")
    rng = np.random.default_rng(0)
    data = root / "data"
    xs, ys = [], []
    for grade in range(4):
        for i in range(PER_GRADE):
            img = _image(rng, grade)
            xs.append(img)
            ys.append(grade)
            for sign in MODEL_SIGNS:
                folder = data / sign.value / str(grade)
                folder.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(folder / f"{i:03d}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    (data / "SYNTHETIC").write_text("generated for tests\n")
    keras.utils.set_random_seed(0)
    model = _tiny_classifier()
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(np.stack(xs), np.array(ys), epochs=40, batch_size=32, verbose=0)
    model_file = root / "model.keras"
    model.save(model_file)
    return {sign: _make_run(root, sign, data, model_file) for sign in MODEL_SIGNS}


@pytest.fixture(scope="session")
def keys(tmp_path_factory):
    from convert.signing import keygen

    return keygen(tmp_path_factory.mktemp("keys"))


@pytest.mark.parametrize("mode", ["int8", "int8_selective", "dynamic", "float16", "float32"])
def test_each_mode_converts_a_trained_model_and_passes_the_gate(runs, mode, tmp_path, capsys):
    from ai_edge_litert.interpreter import Interpreter

    rc = convert_main(["model", str(runs[Sign.ERYTHEMA]), "--mode", mode, "--out", str(tmp_path),
                       "--bench-runs", "5"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "gate PASSED" in out and "synthetic data: not clinical accuracy" in out
    tflite = tmp_path / "erythema.tflite"
    card = load_card(tmp_path / "erythema.card.json")
    assert card.quantization == mode and card.sign is Sign.ERYTHEMA
    assert card.input_size == (SIZE, SIZE) and card.file_size == tflite.stat().st_size
    assert card.training_data.synthetic is True and card.training_data.n_val > 0
    assert card.metrics_keras.accuracy > 0.9  # the model learned the colours
    assert card.gate.passed is True and card.gate.agreement >= 0.98
    assert card.latency["tflite"]["median_ms"] > 0 and card.latency["keras"]["median_ms"] > 0
    assert card.latency["tflite"]["threads"] == 2 and card.latency["speedup_vs_keras"] > 0
    # The pooled features go out as a second output, with statistics to abstain on.
    assert card.abstention is not None and card.abstention.heldout_accepted >= 0.99
    assert (tmp_path / card.abstention.stats_file).is_file()
    assert f"accepts {card.abstention.heldout_accepted:.1%}" in out
    interp = Interpreter(model_path=str(tflite))
    interp.allocate_tensors()
    ops = {op["op_name"] for op in interp._get_ops_details()}
    assert not any(o.startswith("Flex") for o in ops)
    in_dtype = interp.get_input_details()[0]["dtype"]
    out_dtype = interp.get_output_details()[0]["dtype"]
    if mode == "int8":
        assert in_dtype == np.uint8 and out_dtype == np.uint8
    else:
        assert out_dtype == np.float32
    if mode == "int8_selective":
        # The debugger named the layers kept in float, and the card records them; the rest
        # of the network is integer.
        assert in_dtype == np.uint8
        assert 1 <= len(card.float_layers) <= 8, card.float_layers
        details = interp.get_tensor_details()
        assert any(d["dtype"] == np.int8 for d in details)
    else:
        assert card.float_layers == []


def test_scrambled_weights_fail_the_gate_and_write_no_model(runs, tmp_path, capsys, monkeypatch):
    """A conversion that scrambles the trained weights (a broken converter) must be caught:
    the Keras reference is the trained model, the TFLite file is not."""
    import keras

    import convert.tflite as tfl

    real = tfl.convert_keras

    def scrambling(model, mode, **kw):
        broken = keras.models.clone_model(model)
        rng = np.random.default_rng(1)
        broken.set_weights([rng.permutation(w.ravel()).reshape(w.shape) for w in model.get_weights()])
        return real(broken, mode, **kw)

    monkeypatch.setattr(tfl, "convert_keras", scrambling)
    rc = convert_main(["model", str(runs[Sign.ERYTHEMA]), "--mode", "float32", "--fallback",
                       "--out", str(tmp_path / "out"), "--bench-runs", "2"])
    out = capsys.readouterr().out
    assert rc == 1
    assert "gate FAILED" in out and "accuracy dropped" in out and "FAIL" in out
    assert "recall none %" in out  # the table was printed
    assert "no model written" in out
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_skip_mode_leaves_a_rung_out_of_the_ladder(runs, tmp_path, capsys, monkeypatch):
    from convert import tflite as tfl

    tried = []
    real = tfl.convert_keras

    def recording(model, mode, **kw):
        tried.append(str(mode))
        return real(model, mode, **kw)

    monkeypatch.setattr(tfl, "convert_keras", recording)
    # A gate nothing passes (agreement over 100 %): every rung left is tried, in order.
    rc = convert_main(["model", str(runs[Sign.ERYTHEMA]), "--mode", "int8", "--fallback",
                       "--skip-mode", "int8_selective", "--skip-mode", "float16",
                       "--min-agreement", "1.0", "--max-acc-drop", "-1",
                       "--out", str(tmp_path / "out"), "--bench-runs", "2", "--calib-n", "20"])
    out = capsys.readouterr().out
    assert rc == 1
    assert tried == ["int8", "dynamic"]  # (selective int8 converts by its own path)
    assert "accuracy gate, int8," in out and "accuracy gate, dynamic," in out
    assert "int8_selective" not in out and "float16" not in out
    assert convert_main(["model", str(runs[Sign.ERYTHEMA]), "--mode", "int8", "--skip-mode",
                         "int8", "--out", str(tmp_path / "out2")]) != 0
    assert "leaves out the --mode" in capsys.readouterr().err


# --- packs -----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def signed_pack(runs, keys, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pack") / "test.pack"
    args = ["pack", "--out", str(out), "--mode", "int8", "--fallback", "--bench-runs", "2",
            "--calib-n", "50", "--sign-key", str(keys[0]), "--pack-version", "1.0.0"]
    for sign, run in runs.items():
        args += [f"--{sign.value}", str(run)]
    assert convert_main(args) == 0
    return out


def _verify(capsys, pack: Path, public: Path | None = None) -> tuple[int, str]:
    argv = ["verify", str(pack)] + (["--public-key", str(public)] if public else [])
    rc = convert_main(argv)
    return rc, capsys.readouterr().out


def _rewrite(src: Path, dst: Path, *, drop: str | None = None, flip: str | None = None,
             drop_sig: bool = False) -> Path:
    with tarfile.open(src) as tin, tarfile.open(dst, "w") as tout:
        for m in tin.getmembers():
            data = tin.extractfile(m).read()
            if m.name == drop or (drop_sig and m.name == SIGNATURE_NAME):
                continue
            if m.name == flip:
                data = bytearray(data)
                data[len(data) // 2] ^= 0x01
                data = bytes(data)
            m.size = len(data)
            tout.addfile(m, io.BytesIO(data))
    return dst


def test_pack_round_trips_and_verifies(signed_pack, keys, capsys):
    rc, out = _verify(capsys, signed_pack, keys[1])
    assert rc == 0, out
    assert "OK" in out and "signature verified" in out
    with tarfile.open(signed_pack) as tar:
        names = tar.getnames()
        manifest = json.loads(tar.extractfile(MANIFEST_NAME).read())
    assert names[:2] == [MANIFEST_NAME, SIGNATURE_NAME]
    for sign in MODEL_SIGNS:
        assert f"models/{sign.value}.tflite" in names
        assert manifest["models"][sign.value]["stats"] == f"models/{sign.value}.ood.npz"
        assert f"models/{sign.value}.ood.npz" in manifest["files"]
        assert sum(n.startswith(f"golden/{sign.value}/") for n in names) == 8
    assert manifest["pack_version"] == "1.0.0"


def test_flipped_byte_fails_verify(signed_pack, keys, tmp_path, capsys):
    bad = _rewrite(signed_pack, tmp_path / "flip.pack", flip="models/excoriation.tflite")
    rc, out = _verify(capsys, bad, keys[1])
    assert rc == 1 and "models/excoriation.tflite" in out, out


def test_missing_file_fails_verify(signed_pack, keys, tmp_path, capsys):
    bad = _rewrite(signed_pack, tmp_path / "missing.pack", drop="golden/erythema/3.png")
    rc, out = _verify(capsys, bad, keys[1])
    assert rc == 1 and "golden/erythema/3.png" in out, out


def test_wrong_signature_key_fails_verify(signed_pack, tmp_path, capsys):
    from convert.signing import keygen

    _, other_public = keygen(tmp_path / "other")
    rc, out = _verify(capsys, signed_pack, other_public)
    assert rc == 1 and "signature" in out.lower(), out


def test_missing_signature_fails_verify(signed_pack, keys, tmp_path, capsys):
    bad = _rewrite(signed_pack, tmp_path / "unsigned.pack", drop_sig=True)
    rc, out = _verify(capsys, bad, keys[1])
    assert rc == 1 and "signature" in out.lower(), out


def test_bench_prints_each_signs_latencies_and_ratio_from_one_run(signed_pack, capsys):
    rc = convert_main(["bench", str(signed_pack), "--runs", "3"])
    out = capsys.readouterr().out
    assert rc == 0, out
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("sign"))
    assert "TFLite ms" in lines[header] and "Keras/TFLite" in lines[header]
    rows = {line.split()[0]: line.split() for line in lines[header + 1:header + 4]}
    assert set(rows) == {s.value for s in MODEL_SIGNS}
    for cells in rows.values():
        tflite_ms, keras_ms, ratio = float(cells[-5]), float(cells[-4]), float(cells[-3][1:])
        int8_ms, int8_ratio = float(cells[-2]), float(cells[-1][1:])
        assert tflite_ms > 0 and keras_ms > 0 and int8_ms > 0
        assert ratio > 1  # even a tiny model: invoke() beats Keras' per-call overhead
        assert ratio == pytest.approx(keras_ms / tflite_ms, rel=0.25)  # printed ms are rounded
        assert int8_ratio == pytest.approx(keras_ms / int8_ms, rel=0.25)
        if cells[1] == "int8":  # the pack's own int8 model is the one timed
            assert int8_ms == tflite_ms
    assert "not clinical accuracy" in out


def test_bench_refuses_a_missing_pack(tmp_path, capsys):
    assert convert_main(["bench", str(tmp_path / "none.pack")]) == 2
    assert "no such pack file" in capsys.readouterr().err
