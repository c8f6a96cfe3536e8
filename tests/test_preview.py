"""The live preview without a web server: one capture thread shared by its viewers,
frames dropped (not queued) for a slow viewer, pausing with no viewers, a camera that
vanishes and returns, picamera2's lores stream for the preview and main for the still,
and the live hints (device.vision.hints)."""

from __future__ import annotations

import sys
import threading
import time
import types

import cv2
import numpy as np
import pytest
from web_support import UnpluggableCamera

from device.cameras import PiCamera2Camera, RetryingCamera, SyntheticCamera, render_skin_frame
from device.config import CropConfig, CropMode, QualityConfig
from device.scan.preview import PreviewHub, StreamSettings, StreamState
from device.vision.crop import CropDoubt, choose_crop
from device.vision.hints import Hint, HintEngine

FAST = StreamSettings(fps=50, hint_hz=10, idle_seconds=0.2, retry_pause=0.02)


def counting_camera(width=320, height=240):
    """Synthetic frames (one scene held, like a steady hand), counting reads (``reads``);
    ``present = False`` unplugs it."""
    return UnpluggableCamera(SyntheticCamera(width, height, seed=3, scene_seconds=60))


def _decode(jpeg: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)


def _until(predicate, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def test_two_viewers_share_one_capture_and_a_slow_one_drops_frames():
    camera = counting_camera()
    hub = PreviewHub(camera, None, FAST)
    try:
        with hub.watch() as fast, hub.watch() as slow:
            first = slow.next_frame(5)
            assert first is not None and first.state is StreamState.LIVE
            assert _decode(first.jpeg).shape == (240, 320, 3)
            fast_seqs = []
            end = time.monotonic() + 0.6  # slow sleeps through this
            while time.monotonic() < end:
                frame = fast.next_frame(1)
                fast_seqs.append(frame.seq)
            newest = hub.stats().frames
            later = slow.next_frame(1)
            assert hub.stats().viewers == 2
        # the slow viewer was not waited for: the capture kept its pace...
        assert len(fast_seqs) >= 10 and fast_seqs == sorted(set(fast_seqs))
        # ...and it gets the newest frame, the ones in between are dropped, not queued
        assert later.seq >= newest and slow.dropped >= later.seq - first.seq - 1 > 5
        # one capture thread for both: every camera read became one published frame
        assert camera.reads == hub.stats().frames
    finally:
        hub.close()


def test_the_preview_pauses_when_nobody_watches():
    camera = counting_camera()
    hub = PreviewHub(camera, None, FAST)
    assert camera.reads == 0 and not hub.stats().running  # nothing read before a viewer
    with hub.watch() as viewer:
        assert viewer.next_frame(5) is not None
    assert _until(lambda: not hub.stats().running, 3), "the capture thread did not stop"
    reads = camera.reads
    time.sleep(0.3)
    assert camera.reads == reads and hub.stats().state is StreamState.STOPPED
    with hub.watch() as viewer:  # and it starts again for the next viewer
        assert viewer.next_frame(5).seq > reads
    hub.close()


def test_a_camera_that_vanishes_shows_its_state_and_recovers_by_itself():
    raw = counting_camera()
    camera = RetryingCamera(raw, retry_seconds=0.05, name="test camera")
    hub = PreviewHub(camera, HintEngine(QualityConfig(min_sharpness=1), CropConfig()), FAST)
    try:
        with hub.watch() as viewer:
            assert viewer.next_frame(5).state is StreamState.LIVE
            raw.present = False
            assert _until(lambda: viewer.next_frame(1).state is StreamState.CAMERA_LOST)
            lost = viewer.next_frame(1)
            assert lost.state is StreamState.CAMERA_LOST and _decode(lost.jpeg) is not None
            update = viewer.next_hints(2)
            assert update.state is StreamState.CAMERA_LOST and "test camera" in update.message
            assert update.to_dict()["state"] == "camera_lost"
            raw.present = True  # plugged back in: no restart, no new viewer
            assert _until(lambda: viewer.next_frame(1).state is StreamState.LIVE)
            assert _until(lambda: viewer.next_hints(1).state is StreamState.LIVE)
        assert camera.status.failures >= 1
    finally:
        hub.close()


def test_still_is_the_frame_on_screen_for_a_camera_without_a_preview_stream():
    camera = counting_camera()
    camera.inner._scene.seconds = 0  # a new scene at every read: each frame differs
    hub = PreviewHub(camera, None, FAST)
    try:
        with hub.watch() as viewer:
            viewer.next_frame(5)
            with hub._cond:  # freeze the thread's publishing for a moment
                shown, still = hub._frame, hub.still()
                reads = camera.reads
            assert camera.reads == reads  # no new frame was read for the still
            on_screen = _decode(shown.jpeg)[..., ::-1].astype(int)
            assert np.abs(on_screen - still.astype(int)).mean() < 4  # same frame, JPEG'd
    finally:
        hub.close()


class FakePicamera2:
    """picamera2 with a main (full) and a lores (YUV420) stream."""

    def __init__(self):
        self.log = []
        rng = np.random.default_rng(0)
        self.main, _ = render_skin_frame(rng, 1280, 960)
        self.lores = cv2.cvtColor(cv2.resize(self.main, (640, 480)), cv2.COLOR_RGB2YUV_I420)

    def create_still_configuration(self, main, lores=None, buffer_count=1):
        self.log.append(("config", main, lores))
        return {"main": main, "lores": lores}

    def configure(self, cfg):
        self.log.append("configure")

    def start(self):
        self.log.append("start")

    def capture_metadata(self):
        return {"ExposureTime": 9000, "AnalogueGain": 1.5, "ColourGains": (1.7, 1.5)}

    def set_controls(self, controls):
        self.log.append(("set_controls", controls))

    def capture_array(self, name):
        self.log.append(("capture", name))
        return self.main.copy() if name == "main" else self.lores.copy()

    def stop(self):
        self.log.append("stop")

    def close(self):
        self.log.append("close")


def test_picamera2_lores_feeds_the_preview_and_main_the_still(monkeypatch):
    fake = FakePicamera2()
    monkeypatch.setitem(sys.modules, "picamera2", types.SimpleNamespace(Picamera2=lambda: fake))
    camera = RetryingCamera(PiCamera2Camera(width=1280, height=960, settle_seconds=0))
    assert camera.has_preview_stream
    hub = PreviewHub(camera, None, FAST)
    try:
        with hub.watch() as viewer:
            frame = viewer.next_frame(5)
            assert (frame.width, frame.height) == (640, 480)
            # colour is kept through YUV: the preview matches the main frame scaled down
            small = cv2.resize(fake.main, (640, 480)).astype(int)
            assert np.abs(_decode(frame.jpeg)[..., ::-1].astype(int) - small).mean() < 6
            still = hub.still()
        assert still.shape == (960, 1280, 3)
        captures = [e[1] for e in fake.log if e[0] == "capture"]
        assert captures.count("main") == 1 and captures.count("lores") >= 1
        assert ("config", {"size": (1280, 960), "format": "BGR888"},
                {"size": (640, 480), "format": "YUV420"}) in fake.log
        # the colour lock: set once, after start, before any frame; never undone
        locks = [e for e in fake.log if e[0] == "set_controls"]
        assert len(locks) == 1 and locks[0][1]["AwbEnable"] is False
        assert locks[0][1]["ColourGains"] == (1.7, 1.5)
        assert fake.log.index(locks[0]) < fake.log.index(("capture", "lores"))
    finally:
        hub.close()
        camera.close()


# -- hints -------------------------------------------------------------------------

@pytest.fixture
def engine():
    return HintEngine(QualityConfig(min_sharpness=5), CropConfig(mode=CropMode.AUTO))


def _skin(seed=1):
    frame, box = render_skin_frame(np.random.default_rng(seed), 640, 480)
    return frame, box


def test_a_good_frame_has_no_hints_and_the_square_the_scan_would_choose(engine):
    frame, _ = _skin()
    hints = engine.compute(frame)
    assert hints.hints == () and hints.ok
    x, y, w, h = choose_crop(frame, engine.crop).box
    assert hints.box == pytest.approx((x / 640, y / 480, w / 640, h / 480))
    data = hints.to_dict()
    assert data["ok"] and data["crop_mode"] == "auto" and data["hints"] == []
    assert hints.crop_doubt is None and data["crop_doubt"] is None


def test_an_unsure_auto_crop_says_why_in_the_hints(engine):
    rng = np.random.default_rng(0)  # plain skin, sharp enough: nothing stands out
    plain = np.clip(np.zeros((480, 640, 3)) + (225, 180, 150) + rng.normal(0, 6, (480, 640, 3)),
                    0, 255).astype(np.uint8)
    hints = engine.compute(plain)
    assert hints.crop_mode is CropMode.GUIDE and hints.crop_doubt is CropDoubt.NOTHING_STANDS_OUT
    assert hints.to_dict()["crop_doubt"] == "nothing_stands_out"


@pytest.mark.parametrize(("change", "hint"), [
    (lambda f: (f * 0.1).astype(np.uint8), Hint.TOO_DARK),
    (lambda f: np.full_like(f, 250), Hint.TOO_BRIGHT),
    (lambda f: cv2.GaussianBlur(f, (0, 0), 8), Hint.BLURRED),
    (lambda f: np.dstack([f[..., 2], f[..., 1], f[..., 0]]), Hint.NO_SKIN),  # blue, not skin
])
def test_each_bad_condition_gives_its_hint(engine, change, hint):
    frame, _ = _skin()
    hints = engine.compute(change(frame))
    assert hint in hints.hints
    assert Hint.HOLD_STILL not in hints.hints  # one frame: no motion to see yet


def test_motion_between_frames_asks_to_hold_still(engine):
    frame, _ = _skin(2)
    assert engine.compute(frame).hints == ()
    assert Hint.HOLD_STILL not in engine.compute(frame).hints  # the same view: still
    moved = np.roll(frame, 60, axis=1)
    moved = np.roll(moved, 40, axis=0)
    assert Hint.HOLD_STILL in engine.compute(moved).hints
    engine.reset()
    assert Hint.HOLD_STILL not in engine.compute(frame).hints


def test_hints_are_computed_on_the_stream_frames():
    camera = counting_camera(640, 480)
    hub = PreviewHub(camera, HintEngine(QualityConfig(min_sharpness=5), CropConfig()), FAST)
    try:
        with hub.watch() as viewer:
            seen = [viewer.next_hints(5) for _ in range(3)]
        assert all(u is not None and u.state is StreamState.LIVE for u in seen)
        assert [u.seq for u in seen] == sorted({u.seq for u in seen})
        assert all(u.hints is not None and u.hints.box is not None for u in seen[1:])
        assert hub.stats().hints >= 2
    finally:
        hub.close()


def test_closing_the_hub_ends_its_viewers():
    hub = PreviewHub(counting_camera(), None, FAST)
    got = []

    def watch():
        with hub.watch() as viewer:
            while (frame := viewer.next_frame(5)) is not None:
                got.append(frame.seq)

    thread = threading.Thread(target=watch)
    thread.start()
    assert _until(lambda: len(got) > 2)
    hub.close()
    thread.join(5)
    assert not thread.is_alive()


def test_picamera2_preview_keeps_the_still_aspect():
    assert PiCamera2Camera(width=1280, height=960).preview_size == (640, 480)
    assert PiCamera2Camera(width=1920, height=1080).preview_size == (640, 360)
    assert PiCamera2Camera(width=320, height=240).preview_size == (320, 240)  # never larger
    assert PiCamera2Camera(width=1001, height=751, preview_size=(640, 480)).preview_size == (640, 480)


def test_opencv_preview_reads_without_dropping_a_frame_and_is_scaled(monkeypatch):
    from device.cameras import OpenCVCamera

    grabs = []

    class FakeCapture:
        def __init__(self, *args):
            pass

        def isOpened(self):
            return True

        def set(self, prop, value):
            pass

        def grab(self):
            grabs.append(1)
            return True

        def read(self):
            return True, np.full((960, 1280, 3), 90, np.uint8)

        def release(self):
            pass

    monkeypatch.setattr(cv2, "VideoCapture", FakeCapture)
    camera = RetryingCamera(OpenCVCamera("0", settle_seconds=0))
    assert camera.has_preview_stream
    hub = PreviewHub(camera, None, FAST)
    try:
        with hub.watch() as viewer:
            frame = viewer.next_frame(5)
            assert (frame.width, frame.height) == (640, 480)  # scaled for the stream
            assert grabs == []  # the preview drops nothing
            assert hub.still().shape == (960, 1280, 3) and grabs == [1]  # a fresh still
    finally:
        hub.close()
