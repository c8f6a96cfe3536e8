"""Latency of one grading: the TFLite model's invoke time through the device's
interpreter wrapper beside the Keras model's predict time, same machine, batch 1.

Both are timed after warm-up runs (first calls allocate and trace) and reported
as median and 90th percentile in milliseconds. The figures describe the machine
they ran on; a Pi is several times slower than a workstation.
"""

from __future__ import annotations

import logging
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

DEFAULT_RUNS = 50
DEFAULT_WARMUP = 3


def _time_calls(fn: Callable[[], Any], runs: int, warmup: int) -> dict[str, float]:
    if runs < 1:
        raise ValueError("latency needs at least 1 timed run")
    for _ in range(warmup):
        fn()
    times = np.empty(runs)
    for i in range(runs):
        start = time.perf_counter()
        fn()
        times[i] = (time.perf_counter() - start) * 1000.0
    return {"median_ms": round(float(np.median(times)), 3),
            "p90_ms": round(float(np.percentile(times, 90)), 3),
            "min_ms": round(float(times.min()), 3), "runs": runs}


def tflite_latency(path: Path, image: np.ndarray, *, runs: int = DEFAULT_RUNS, threads: int = 2,
                   warmup: int = DEFAULT_WARMUP) -> dict[str, Any]:
    """Invoke time of the .tflite (input set once, then ``invoke`` alone is timed)."""
    from device.grading.interpreter import GradeModel

    model = GradeModel(path, threads=threads)
    model.predict(image)  # sets the input tensor
    stats = _time_calls(model.invoke_only, runs, warmup)
    stats.update(threads=threads, backend=model.backend, what="interpreter.invoke()")
    return stats


def keras_latency(model: Any, image: np.ndarray, *, runs: int = DEFAULT_RUNS,
                  warmup: int = DEFAULT_WARMUP) -> dict[str, Any]:
    """Keras ``predict_on_batch`` on one image (batch 1, inference mode, traced once)."""
    batch = np.asarray(image)[None]
    stats = _time_calls(lambda: model.predict_on_batch(batch), runs, warmup)
    stats.update(what="keras predict_on_batch, batch 1")
    return stats


def measure(tflite_path: Path, keras_model: Any, image: np.ndarray, *, runs: int = DEFAULT_RUNS,
            threads: int = 2) -> dict[str, Any]:
    """Both timings and the speed-up (Keras median / TFLite median) for the card."""
    tfl = tflite_latency(tflite_path, image, runs=runs, threads=threads)
    ker = keras_latency(keras_model, image, runs=runs)
    speedup = ker["median_ms"] / tfl["median_ms"] if tfl["median_ms"] > 0 else None
    return {
        "tflite": tfl,
        "keras": ker,
        "speedup_vs_keras": None if speedup is None else round(speedup, 3),
        "machine": f"{platform.machine()} {platform.processor() or platform.system()}, "
                   f"{os.cpu_count()} CPUs (workstation, not the device)",
    }


def format_latency(lat: dict[str, Any]) -> str:
    t, k = lat["tflite"], lat["keras"]
    return (f"latency (batch 1, {t['runs']} runs): TFLite median {t['median_ms']:.2f} ms, "
            f"p90 {t['p90_ms']:.2f} ms ({t['threads']} threads); Keras median {k['median_ms']:.2f} ms, "
            f"p90 {k['p90_ms']:.2f} ms; speed-up x{lat['speedup_vs_keras']}")
