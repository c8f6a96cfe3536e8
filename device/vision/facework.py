"""The scan's face search on a worker thread.

The face models (device.vision.facemesh) are most of a scan's face time, and LiteRT
and OpenCV release the GIL while they run, so the scan starts the search on the
frame's tiny copy as soon as it exists and does its colour and quality work while it
runs; it waits only where it needs the faces (the quality verdict). The faces are
the very ones ``find_faces`` gives when called in line: same input, same function.
Other work that reads only the tiny copy's views (the crop's avoid masks, the
abstention's scene descriptor) queues behind the search with ``run``, so the two
cores of a small board share the frame's work.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

import numpy as np

from device.vision.faces import SCAN_DETECT_SIDE, Faces, find_faces

T = TypeVar("T")


def _scan_faces(tiny: np.ndarray, full_height: int) -> Faces:
    """Faces of a frame ``full_height`` pixels tall, looked for on its tiny copy, in
    the frame's pixels (what the scan has always done in line)."""
    return find_faces(tiny, side=SCAN_DETECT_SIDE, cats=False).scaled(full_height / tiny.shape[0])


class FaceWorker:
    """One worker thread for a Scanner's face searches. ``start`` returns at once;
    ``Future.result`` gives the faces (or raises what the search raised). A search
    whose faces are no longer wanted (the colours were corrected after it started)
    is simply not read."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scan-faces")

    def start(self, tiny: np.ndarray, full_height: int) -> Future[Faces]:
        return self._pool.submit(_scan_faces, tiny, full_height)

    def run(self, job: Callable[[], T]) -> Future[T]:
        """``job()`` on the worker, after what was started before it."""
        return self._pool.submit(job)

    def close(self) -> None:
        self._pool.shutdown(wait=True)


class InlineFaces:
    """The same search in line, for a caller with no worker (a training crop cut as the
    scan cuts it): ``start`` runs it and returns the finished Future."""

    def start(self, tiny: np.ndarray, full_height: int) -> Future[Faces]:
        return self.run(lambda: _scan_faces(tiny, full_height))

    def run(self, job: Callable[[], T]) -> Future[T]:
        done: Future[T] = Future()
        try:
            done.set_result(job())
        except Exception as exc:  # noqa: BLE001 - handed to the caller, as the worker does
            done.set_exception(exc)
        return done
