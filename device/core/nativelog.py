"""Hide the native log lines TensorFlow and LiteRT print on stderr (oneDNN notices,
cpu_feature_guard, absl's "before InitializeLog" warning, MLIR and SavedModel reader
chatter, the calibrator's settings line, "Created TensorFlow Lite XNNPACK delegate").

Environment variables silence most of them, but not all: some are printed by C++
code while the library loads or straight to ``std::cerr``. So, unless ``-v`` is given,
the CLIs route file descriptor 2 through a pipe and drop the lines that match
``NATIVE_LINE``; every other line (Python logging, warnings, errors) passes through
unchanged. Pure standard library: the device imports it without TensorFlow.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import threading
from collections.abc import Iterator

log = logging.getLogger(__name__)

#: Read when the native libraries load, so set before any command imports them.
QUIET_ENV = {"TF_CPP_MIN_LOG_LEVEL": "3", "TF_CPP_MAX_VLOG_LEVEL": "-1"}

NATIVE_LINE = re.compile(
    r"^(?:[IWEF]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+\s+\S+:\d+\]"  # glog/absl: I0000 00:00:... file.cc:12]
    r"|WARNING: All log messages before absl::InitializeLog"
    r"|INFO: Created TensorFlow Lite"
    r"|To enable the following instructions:"
    r"|This TensorFlow binary is optimized"
    r"|fully_quantize: \d"
    r"|Estimated count of arithmetic ops"
    r")")


def is_native_line(line: str) -> bool:
    return bool(NATIVE_LINE.match(line))


def _pump(read_fd: int, out_fd: int) -> None:
    with os.fdopen(read_fd, "rb", buffering=0) as pipe:
        pending = b""
        while True:
            chunk = pipe.read(65536)
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            keep = [ln + b"\n" for ln in lines
                    if not is_native_line(ln.decode("utf-8", "replace"))]
            if keep:
                os.write(out_fd, b"".join(keep))
        if pending and not is_native_line(pending.decode("utf-8", "replace")):
            os.write(out_fd, pending)


@contextlib.contextmanager
def filtered_stderr(enabled: bool = True) -> Iterator[None]:
    """Within the block, native log lines written to fd 2 (by this process or its
    children) are dropped; the rest reaches the real stderr in order."""
    if not enabled:
        yield
        return
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    try:
        sys.stderr.flush()
        saved = os.dup(2)
        read_fd, write_fd = os.pipe()
    except OSError:  # no fd 2 (a detached service): nothing to filter
        yield
        return
    os.dup2(write_fd, 2)
    os.close(write_fd)
    pump = threading.Thread(target=_pump, args=(read_fd, saved), name="stderr-filter", daemon=True)
    pump.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)  # closes the pipe's last write end: the pump reads to EOF
        pump.join(timeout=5)
        os.close(saved)
