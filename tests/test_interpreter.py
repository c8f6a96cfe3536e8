"""The LiteRT wrapper on real tiny .tflite models (int8 and float32)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from device_pack import tiny_pack_dir

from device.grading.interpreter import GradeModel, InterpreterError, interpreter_class


@pytest.fixture(scope="module")
def int8_path():
    return tiny_pack_dir() / "models" / "erythema.tflite"


@pytest.fixture(scope="module")
def float_path(tmp_path_factory):
    from factories import tiny_tflite

    return tiny_tflite(tmp_path_factory.mktemp("f32") / "m.tflite", size=24, mode="float32")


def _images(n, size, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def test_int8_model_gives_four_probabilities(int8_path):
    model = GradeModel(int8_path, threads=1)
    assert model.input_size == (32, 32) and model.input_dtype == np.uint8
    assert model.threads == 1 and model.backend
    probs = model.predict(_images(1, 32)[0])
    assert probs.shape == (4,) and probs.dtype == np.float32
    assert probs.sum() == pytest.approx(1.0, abs=0.02), "int8 output dequantized"
    assert np.all(probs >= 0)


def test_float_model_and_determinism(float_path):
    model = GradeModel(float_path)
    img = _images(1, 24)[0]
    a, b = model.predict(img), model.predict(img)
    assert a.sum() == pytest.approx(1.0, abs=1e-4)
    assert np.array_equal(a, b)


def test_predict_is_thread_safe(int8_path):
    model = GradeModel(int8_path, threads=1)
    imgs = _images(16, 32, seed=3)
    expected = [model.predict(i) for i in imgs]
    results: dict[int, list] = {}

    def worker(k):
        results[k] = [model.predict(i) for i in imgs]

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k in range(4):
        for got, want in zip(results[k], expected, strict=True):
            assert np.array_equal(got, want)


def test_wrong_inputs_are_refused(int8_path):
    model = GradeModel(int8_path)
    with pytest.raises(ValueError, match="resize the crop first"):
        model.predict(np.zeros((31, 32, 3), np.uint8))
    with pytest.raises(ValueError, match="not uint8"):
        model.predict(np.zeros((32, 32, 3), np.float32))


def test_unloadable_files(tmp_path):
    with pytest.raises(InterpreterError, match="not found"):
        GradeModel(tmp_path / "missing.tflite")
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"\x00" * 100)
    with pytest.raises(InterpreterError, match="not a loadable TFLite model"):
        GradeModel(junk)


def test_interpreter_class_falls_back_and_explains():
    cls, name = interpreter_class((("no_such_module_x", "Interpreter"),
                                   ("ai_edge_litert.interpreter", "Interpreter")))
    assert name == "ai_edge_litert.interpreter" and cls.__name__ == "Interpreter"
    with pytest.raises(InterpreterError, match="pip install ai-edge-litert"):
        interpreter_class((("no_such_module_x", "Interpreter"),))
