"""Camera sources and the retry wrapper: a camera that fails never crashes a scan."""

from __future__ import annotations

import sys
import time
import types

import cv2
import numpy as np
import pytest

from device.cameras import (
    CameraError,
    CameraState,
    FolderCamera,
    OpenCVCamera,
    PiCamera2Camera,
    RetryingCamera,
    SyntheticCamera,
    make_camera,
)
from device.config import CameraConfig, CameraSource, DeviceConfig
from device.scan.pipeline import Scanner


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


class FlakyCamera:
    """Delivers `good` frames, then raises (unplugged) until `plug_in()`."""

    def __init__(self, good=2):
        self.good = good
        self.opens = 0
        self.closes = 0
        self.plugged = True
        self.status = None

    def open(self):
        if not self.plugged:
            raise OSError("no such device")
        self.opens += 1

    def read(self):
        if self.good <= 0 or not self.plugged:
            self.plugged = False
            raise OSError("device vanished")
        self.good -= 1
        return np.full((48, 64, 3), 120, np.uint8)

    def close(self):
        self.closes += 1

    def plug_in(self, good=5):
        self.plugged, self.good = True, good


def test_synthetic_camera_gives_rgb_frames_with_a_lesion():
    cam = SyntheticCamera(320, 240, seed=4)
    cam.open()
    a = cam.read()
    assert a.shape == (240, 320, 3) and a.dtype == np.uint8
    x, y, w, h = cam.last_box
    inside = a[y + h // 3:y + 2 * h // 3, x + w // 3:x + 2 * w // 3].astype(int)
    # the lesion is redder than the skin: R - G larger inside than on average
    assert (inside[..., 0] - inside[..., 1]).mean() > (a[..., 0].astype(int) - a[..., 1]).mean() + 10
    again = SyntheticCamera(320, 240, seed=4)
    assert np.array_equal(again.read(), a), "same seed, same frames"


def test_folder_camera_cycles_and_skips_unreadable_files(tmp_path, caplog):
    for k, colour in enumerate([(10, 20, 200), (200, 20, 10)]):
        cv2.imwrite(str(tmp_path / f"{k}.png"), np.full((20, 30, 3), colour, np.uint8))
    (tmp_path / "0b.jpg").write_bytes(b"not an image")
    (tmp_path / "notes.txt").write_text("ignored")
    cam = FolderCamera(tmp_path)
    cam.open()
    first = cam.read()
    assert tuple(first[0, 0]) == (200, 20, 10), "BGR file read as RGB"
    second = cam.read()  # 0b.jpg is skipped with a warning
    assert tuple(second[0, 0]) == (10, 20, 200)
    assert "skipping" in caplog.text and "0b.jpg" in caplog.text
    assert tuple(cam.read()[0, 0]) == (200, 20, 10), "cycles back to the first"


def test_folder_camera_errors(tmp_path):
    with pytest.raises(CameraError, match="does not exist"):
        FolderCamera(tmp_path / "missing").open()
    with pytest.raises(CameraError, match="holds no images"):
        FolderCamera(tmp_path).open()
    (tmp_path / "a.png").write_bytes(b"junk")
    cam = FolderCamera(tmp_path)
    cam.open()
    with pytest.raises(CameraError, match="none of its images could be read"):
        cam.read()


def test_retry_wrapper_reports_failure_and_reopens_after_the_pause():
    clock, flaky = FakeClock(), FlakyCamera(good=2)
    cam = RetryingCamera(flaky, retry_seconds=2.0, clock=clock, name="usb camera")
    assert cam.read().shape == (48, 64, 3)
    assert cam.read().shape == (48, 64, 3)
    assert cam.status.state is CameraState.OK and cam.status.frames == 2
    with pytest.raises(CameraError, match="usb camera: capture failed .device vanished."):
        cam.read()
    assert cam.status.state is CameraState.ERROR and cam.status.failures == 1
    assert flaky.closes == 1
    flaky.plug_in()
    clock.now += 1.0  # before retry_seconds: no reopen attempt
    with pytest.raises(CameraError, match="next try in 1.0 s"):
        cam.read()
    assert flaky.opens == 1
    clock.now += 1.5
    assert cam.read().shape == (48, 64, 3)
    assert flaky.opens == 2 and cam.status.state is CameraState.OK


def test_retry_wrapper_survives_a_failing_open():
    clock, flaky = FakeClock(), FlakyCamera()
    flaky.plugged = False
    cam = RetryingCamera(flaky, retry_seconds=5, clock=clock)
    with pytest.raises(CameraError, match="open failed"):
        cam.read()
    assert cam.status.to_dict()["state"] == "error"
    clock.now += 6
    flaky.plug_in()
    assert cam.read() is not None


def test_a_camera_that_raises_mid_scan_gives_a_camera_error_not_a_crash():
    clock, flaky = FakeClock(), FlakyCamera(good=1)
    config = DeviceConfig(version=1)
    config.quality.min_skin_fraction = 0.0
    config.quality.min_sharpness = 0.0
    scanner = Scanner(config, RetryingCamera(flaky, retry_seconds=2, clock=clock), models=None)
    first = scanner.scan()
    assert first.quality.measures.brightness == pytest.approx(120)
    with pytest.raises(CameraError):
        scanner.scan()
    flaky.plug_in()
    clock.now += 3
    assert scanner.scan().image_size == (48, 64)


def test_rgba_and_odd_frames(monkeypatch):
    class FourChannel(FlakyCamera):
        def read(self):
            return np.zeros((8, 8, 4), np.uint8)

    class Grey(FlakyCamera):
        def read(self):
            return np.zeros((8, 8), np.uint8)

    assert RetryingCamera(FourChannel()).read().shape == (8, 8, 3)
    with pytest.raises(CameraError, match="not an RGB uint8 image"):
        RetryingCamera(Grey()).read()


def test_opencv_camera_index_and_gstreamer(monkeypatch):
    calls = []

    class FakeCapture:
        def __init__(self, *args):
            calls.append(args)
            self.props = {}

        def isOpened(self):
            return True

        def set(self, prop, value):
            self.props[prop] = value

        def grab(self):
            return True

        def read(self):
            return True, np.dstack([np.full((4, 4), v, np.uint8) for v in (1, 2, 3)])

        def release(self):
            calls.append("release")

    monkeypatch.setattr(cv2, "VideoCapture", FakeCapture)
    usb = OpenCVCamera("0", width=640, height=480, settle_seconds=0)
    usb.open()
    assert calls[-1] == (0,)
    assert tuple(usb.read()[0, 0]) == (3, 2, 1), "BGR converted to RGB"
    usb.close()
    assert calls[-1] == "release"
    pipeline = "nvarguscamerasrc ! video/x-raw(memory:NVMM) ! nvvidconv ! appsink"
    OpenCVCamera(pipeline, settle_seconds=0).open()
    assert calls[-1] == (pipeline, cv2.CAP_GSTREAMER)


def test_opencv_camera_that_does_not_open(monkeypatch):
    class Closed:
        def __init__(self, *a):
            pass

        def isOpened(self):
            return False

        def set(self, *a):
            pass

        def release(self):
            pass

    monkeypatch.setattr(cv2, "VideoCapture", Closed)
    with pytest.raises(CameraError, match="could not open camera index '1'"):
        OpenCVCamera("1", settle_seconds=0).open()


def test_picamera2_settles_then_locks_exposure_and_white_balance(monkeypatch):
    log = []

    class FakePicamera2:
        def create_still_configuration(self, main, lores=None, buffer_count=1):
            log.append(("config", main))
            return {"main": main, "lores": lores}

        def configure(self, cfg):
            log.append("configure")

        def start(self):
            log.append("start")

        def capture_metadata(self):
            return {"ExposureTime": 12345, "AnalogueGain": 2.5, "ColourGains": (1.8, 1.4)}

        def set_controls(self, controls):
            log.append(("set_controls", controls))

        def capture_array(self, name):
            return np.zeros((6, 8, 4), np.uint8)

        def stop(self):
            log.append("stop")

        def close(self):
            log.append("close")

    monkeypatch.setitem(sys.modules, "picamera2", types.SimpleNamespace(Picamera2=FakePicamera2))
    cam = PiCamera2Camera(width=800, height=600, settle_seconds=0)
    cam.open()
    controls = next(item[1] for item in log if item[0] == "set_controls")
    assert controls == {"AeEnable": False, "AwbEnable": False, "ExposureTime": 12345,
                        "AnalogueGain": 2.5, "ColourGains": (1.8, 1.4)}
    assert log.index("start") < log.index(("set_controls", controls))
    assert log[0] == ("config", {"size": (800, 600), "format": "BGR888"})
    assert cam.read().shape == (6, 8, 3)
    cam.close()
    assert log[-2:] == ["stop", "close"]


def test_picamera2_missing_is_a_camera_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "picamera2", None)
    with pytest.raises(CameraError, match="apt install python3-picamera2"):
        PiCamera2Camera(settle_seconds=0).open()


def test_make_camera_follows_the_config(tmp_path):
    cam = make_camera(CameraConfig(source=CameraSource.SYNTHETIC, width=64, height=48))
    assert isinstance(cam, RetryingCamera) and cam.read().shape == (48, 64, 3)
    raw = make_camera(CameraConfig(source=CameraSource.FOLDER, folder=tmp_path), retry=False)
    assert isinstance(raw, FolderCamera)
    assert isinstance(make_camera(CameraConfig(source=CameraSource.OPENCV), retry=False),
                      OpenCVCamera)
    assert isinstance(make_camera(CameraConfig(source=CameraSource.PICAMERA2), retry=False),
                      PiCamera2Camera)


class OneAtATimeCamera:
    """Records whether two threads were ever inside the driver at once."""

    def __init__(self) -> None:
        import threading

        self.inside = 0
        self.overlapped = False
        self.guard = threading.Lock()

    def _enter(self) -> None:
        with self.guard:
            self.inside += 1
            self.overlapped |= self.inside > 1

    def _leave(self) -> None:
        with self.guard:
            self.inside -= 1

    def open(self) -> None:
        self._enter()
        time.sleep(0.002)
        self._leave()

    def read(self) -> np.ndarray:
        self._enter()
        time.sleep(0.002)
        self._leave()
        return np.zeros((48, 64, 3), np.uint8)

    def close(self) -> None:
        self._enter()
        time.sleep(0.002)
        self._leave()


def test_retry_wrapper_never_lets_two_threads_into_the_driver():
    import threading

    driver = OneAtATimeCamera()
    camera = RetryingCamera(driver)

    def reader() -> None:
        for i in range(15):
            camera.read()
            if i % 5 == 4:
                camera.close()

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not driver.overlapped
    assert camera.status.frames == 60
