"""The status page's recent-error list folds a burst of one warning into one line."""

from __future__ import annotations

import logging
import shutil

import pytest
from web_support import write_frames

from device.cameras import CameraError, FolderCamera, RetryingCamera
from device.web.errorlog import RingBufferHandler


@pytest.fixture
def ring():
    handler = RingBufferHandler(capacity=50)
    root = logging.getLogger()
    root.addHandler(handler)
    yield handler
    root.removeHandler(handler)


def test_camera_folder_loss_is_one_line_with_a_count(tmp_path, ring):
    folder = tmp_path / "frames"
    write_frames(folder, n=22, size=(64, 48))
    logging.getLogger("device.test").error("an older error that must stay visible")
    camera = RetryingCamera(FolderCamera(folder), retry_seconds=0.0)
    camera.read()
    shutil.rmtree(folder)  # the folder (a USB stick, a network share) vanishes
    with pytest.raises(CameraError):
        camera.read()
    lines = ring.records()
    skipping = [e for e in lines if "skipping" in e["message"]]
    assert len(skipping) == 1, lines
    assert skipping[0]["count"] == 21  # the 21 files after the one already read
    assert skipping[0]["first"] <= skipping[0]["time"]
    assert any(e["message"] == "an older error that must stay visible" for e in lines)
    assert len(lines) == 3  # the older error, the folded skips, the camera's capture failure


def test_different_messages_and_old_repeats_stay_apart(ring):
    logger = logging.getLogger("device.test")
    logger.warning("disk at %d %%", 91)
    logger.warning("disk at %d %%", 93)  # same template: folded, latest text kept
    logger.warning("something else")
    logger.error("disk at %d %%", 95)  # another level: its own line
    lines = ring.records()
    assert [(e["message"], e["count"]) for e in lines] == [
        ("disk at 93 %", 2), ("something else", 1), ("disk at 95 %", 1)]
    ring.repeat_window_s = -1.0  # every repeat counts as old now
    logger.warning("something else")
    assert [e["count"] for e in ring.records()].count(1) == 3


def test_capacity_still_bounds_the_list(ring):
    logger = logging.getLogger("device.test")
    for i in range(80):
        logger.warning(f"distinct message {i}")  # f-string: each its own template
    lines = ring.records()
    assert len(lines) == 50 and lines[-1]["message"] == "distinct message 79"
