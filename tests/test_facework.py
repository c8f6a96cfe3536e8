"""The scan's face search on a worker thread gives the faces the in-line search gives,
and a search that fails raises in the scan that reads it."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from device.vision import facework
from device.vision.faces import SCAN_DETECT_SIDE, find_faces
from device.vision.facework import FaceWorker
from device.vision.frameviews import FrameViews


@pytest.fixture(scope="module")
def portrait() -> np.ndarray:
    matplotlib = pytest.importorskip("matplotlib")
    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)  # 512 x 600


def test_the_worker_finds_the_faces_the_scan_found_in_line(portrait):
    frame = cv2.resize(portrait, (1200, 1024), interpolation=cv2.INTER_AREA)
    tiny = FrameViews.of(frame).tiny
    in_line = find_faces(tiny, side=SCAN_DETECT_SIDE, cats=False).scaled(
        frame.shape[0] / tiny.shape[0])
    worker = FaceWorker()
    try:
        jobs = [worker.start(tiny, frame.shape[0]) for _ in range(3)]  # queued one by one
        found = [job.result(timeout=60) for job in jobs]
    finally:
        worker.close()
    assert in_line.faces, "the portrait's face must be found for this test to mean anything"
    assert all(f.to_dict() == in_line.to_dict() for f in found)


def test_a_failed_search_raises_where_it_is_read(monkeypatch):
    def broken(*_args, **_kwargs):
        raise RuntimeError("face model damaged")

    monkeypatch.setattr(facework, "find_faces", broken)
    worker = FaceWorker()
    try:
        job = worker.start(np.zeros((192, 256, 3), np.uint8), 768)
        with pytest.raises(RuntimeError, match="damaged"):
            job.result(timeout=60)
    finally:
        worker.close()
