"""ScanSession (device.scan.session): what the running dashboard holds in memory about its
scans, without Flask: the preview hub, the captured frames and the recent scans."""

from __future__ import annotations

import numpy as np
from web_support import fake_models, make_config

from device.cameras import FolderCamera
from device.scan.pipeline import Scanner
from device.scan.session import KEEP_CROPS, ScanSession


def test_the_session_keeps_crops_frames_and_timings(tmp_path):
    config = make_config(tmp_path)
    camera = FolderCamera(config.camera.folder)
    session = ScanSession(config, camera)
    assert session.hub_started is None  # nothing made until a viewer asks
    result = Scanner(config, camera, fake_models()).scan()
    session.remember(None, result)  # a refused or unsaved scan: its timings only
    assert session.crop(1) is None and session.frames.get(1) is None
    for scan_id in range(1, KEEP_CROPS + 3):
        session.remember(scan_id, result)
    assert session.crop(1) is None and session.crop(KEEP_CROPS + 2)[:3] == b"\xff\xd8\xff"
    assert np.array_equal(session.frames.get(KEEP_CROPS + 2), result.image)
    timings = session.recent_timings()
    assert len(timings) == 10 and timings[0].to_dict()["time"] == result.created
    assert timings[0].to_dict()["total"] == round(result.timings_ms["total"], 1)
    assert session.hub() is session.hub() is session.hub_started
    session.forget()
    assert session.crop(KEEP_CROPS + 2) is None and session.frames.get(KEEP_CROPS + 2) is None
    session.close()
    assert session.hub_started.closed

