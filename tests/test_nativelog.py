"""The CLIs hide TensorFlow's native log lines unless -v is given, and let everything
else through."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from device.core.nativelog import is_native_line

REPO = Path(__file__).resolve().parents[1]

NATIVE = [
    "I0000 00:00:1796031636.527986   11092 port.cc:153] oneDNN custom operations are on.",
    "E0000 00:00:1796031642.316018   11092 util.cc:131] oneDNN supports DT_UINT8 only on AVX-512.",
    "W1130 09:12:01.123456 77 cpu_feature_guard.cc:210] This TensorFlow binary is optimized",
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",
    "fully_quantize: 0, inference_type: 6, input_inference_type: UINT8, output_inference_type: UINT8",
]
KEPT = [
    "2026-11-30 10:02:49,305 INFO trainer.split: split all signs: 1400 train, 600 val",
    "python -m convert pack: error: --erythema x: not a folder",
    "Traceback (most recent call last):",
    "WARNING:me: a Python warning",
]


def test_native_lines_are_recognised_and_others_are_not():
    assert all(is_native_line(line) for line in NATIVE)
    assert not any(is_native_line(line) for line in KEPT)


SCRIPT = textwrap.dedent("""
    import os, subprocess, sys
    from device.core.nativelog import filtered_stderr
    native, kept = {native!r}, {kept!r}
    with filtered_stderr(enabled={enabled}):
        for i, a in enumerate(native):
            os.write(2, (a + "\\n").encode())  # as C++ writes: straight to fd 2
            if i < len(kept):
                print(kept[i], file=sys.stderr)
        subprocess.run([sys.executable, "-c", {child!r}])
    print("after the block", file=sys.stderr)
""")


def _stderr(enabled: bool) -> str:
    code = SCRIPT.format(native=NATIVE, kept=KEPT, enabled=enabled,
                         child=f"import os; os.write(2, {(NATIVE[0] + chr(10) + 'child says hello' + chr(10)).encode()!r})")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          timeout=60, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    return proc.stderr


def test_filtered_stderr_drops_native_lines_of_the_process_and_its_children():
    err = _stderr(True).splitlines()
    assert err == [*KEPT, "child says hello", "after the block"]


def test_verbose_keeps_every_line():
    err = _stderr(False)
    assert all(line in err for line in NATIVE + KEPT)
