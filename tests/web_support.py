"""Shared helpers for the dashboard tests (tests/test_web_*.py, tests/test_browser.py).

Fast tests use a fake model set (fixed probabilities, no interpreter) with the
real Scanner, Service, Store and a folder camera of synthetic skin frames.
"""

from __future__ import annotations

import functools
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from device.cameras import FolderCamera, RetryingCamera, render_skin_frame
from device.config import DeviceConfig, validate_mapping
from device.core.card import ModelCard, TrainingDataSummary
from device.core.vocab import MODEL_SIGNS, Sign
from device.grading.models import ModelSet, SignModel
from device.scan.service import Service
from device.store import Store
from device.web import create_app
from device.web.users import Role, UserStore

PASSWORD = "correct-horse-battery"
#: Cheap hashing for tests only (the device uses werkzeug's default, scrypt).
FAST_HASH = "pbkdf2:sha256:1000"
#: Fixed fake outputs: erythema is sure (grade 2), excoriation unsure (review), lichenification 1.
FAKE_PROBS = {
    Sign.ERYTHEMA: [0.05, 0.1, 0.8, 0.05],
    Sign.EXCORIATION: [0.4, 0.35, 0.2, 0.05],
    Sign.LICHENIFICATION: [0.1, 0.7, 0.15, 0.05],
}


class FakeModel:
    """Stands in for device.grading.interpreter.GradeModel: same input_size/predict surface."""

    def __init__(self, sign: Sign, size: int = 32) -> None:
        self.input_size = (size, size)
        self.sign = sign

    #: Pooled features returned beside the grades (None: a model without them).
    features: np.ndarray | None = None

    @property
    def has_features(self) -> bool:
        return self.features is not None

    @property
    def feature_dim(self) -> int | None:
        return None if self.features is None else int(self.features.size)

    def predict(self, image: np.ndarray) -> np.ndarray:
        assert image.shape == (*self.input_size, 3) and image.dtype == np.uint8
        return np.array(FAKE_PROBS[self.sign], dtype=np.float32)

    def predict_with_features(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        return self.predict(image), self.features


def fake_card(sign: Sign, *, synthetic: bool = True) -> ModelCard:
    metrics = {"accuracy": 0.912, "accuracy_ci95": [0.88, 0.94], "macro_f1": 0.9, "qwk": 0.95,
               "mae": 0.09, "n": 240}
    return ModelCard(
        sign=sign, input_size=(32, 32), quantization="int8", backbone="mobilenet_v2",
        training_data=TrainingDataSummary(source="synthetic" if synthetic else "clinic A",
                                          synthetic=synthetic, n_train=560, n_val=240),
        metrics_keras=metrics, metrics_tflite=metrics, sha256="0" * 64,
        created="2025-01-01T00:00:00+00:00", software_version="0.1.0")


def fake_models(version: str = "2025.1.0", *, synthetic: bool = True) -> ModelSet:
    return ModelSet({s: SignModel(s, FakeModel(s), fake_card(s, synthetic=synthetic),
                                  Path(f"/nonexistent/{s.value}.tflite")) for s in MODEL_SIGNS},
                    pack_version=version)


def write_frames(folder: Path, n: int = 3, seed: int = 0, size: tuple[int, int] = (480, 360)
                 ) -> list[Path]:
    """Synthetic skin photos (JPEG) that pass the quality check."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        frame, _ = render_skin_frame(rng, *size)
        path = folder / f"frame{i:02d}.jpg"
        cv2.imwrite(str(path), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        paths.append(path)
    return paths


def make_config(tmp_path: Path, **web: Any) -> DeviceConfig:
    frames = tmp_path / "frames"
    if not frames.exists():
        write_frames(frames)
    raw = {
        "version": 1,
        "device_name": "test-device",
        "camera": {"source": "folder", "folder": str(frames), "width": 480, "height": 360},
        "packs": {"dir": str(tmp_path / "packs")},
        "storage": {"data_dir": str(tmp_path / "data")},
        "web": {"session_minutes": 30, "max_upload_mb": 5, **web},
    }
    return validate_mapping(raw, base_dir=tmp_path, origin="test.yaml")


def make_app(tmp_path: Path, *, models: ModelSet | None | str = "fake", **web: Any) -> Any:
    """A test app with one user per role (password PASSWORD)."""
    config = make_config(tmp_path, **web)
    camera = RetryingCamera(FolderCamera(config.camera.folder), retry_seconds=0.01)
    service = Service(config, camera, fake_models() if models == "fake" else models)
    data_dir = config.storage.data_dir
    store = Store(data_dir)
    users = UserStore.in_data_dir(data_dir, hash_method=FAST_HASH)
    for role in Role:
        users.add(role.value, PASSWORD, role)
    app = create_app(config, service=service, store=store, users=users, testing=True)
    app.config["TEST_STORE"] = store
    return app


def csrf_token(client: Any) -> str:
    resp = client.get("/api/csrf")
    if resp.status_code == 200:
        return resp.get_json()["csrf_token"]
    page = client.get("/login").get_data(as_text=True)
    match = re.search(r'name="csrf-token" content="([^"]+)"', page)
    assert match, "no CSRF token on the login page"
    return match.group(1)


def login(client: Any, username: str, password: str = PASSWORD) -> Any:
    token = csrf_token(client)
    return client.post("/login", data={"username": username, "password": password,
                                       "csrf_token": token})


def logged_in(app: Any, role: Role | str) -> tuple[Any, str]:
    """A test client logged in as the user of ``role``, and its CSRF token."""
    client = app.test_client()
    resp = login(client, str(role))
    assert resp.status_code == 302, resp.get_data(as_text=True)
    return client, csrf_token(client)


@functools.cache
def tiny_pack_file(version: str) -> Path:
    """A real pack file (three tiny int8 models, golden self-test) of ``version``, built
    once per test session. Needs TensorFlow (tests/factories.py): a few seconds."""
    from factories import tiny_card, tiny_tflite

    from convert.packer import write_pack

    root = _pack_root()
    first = root / "model.tflite"
    if not first.exists():
        tiny_tflite(first, size=32, seed=0)  # one conversion, copied for each sign
    models = {}
    for sign in MODEL_SIGNS:
        path = root / f"{sign.value}.tflite"
        if not path.exists():
            shutil.copyfile(first, path)
        models[sign] = (path, tiny_card(sign, path, size=32))
    return write_pack(models, root / f"pack-{version}.tar", pack_version=version)


@functools.cache
def _pack_root() -> Path:
    return Path(tempfile.mkdtemp(prefix="atopiscan-webpacks-"))


class UnpluggableCamera:
    """A camera wrapper (e.g. around a SyntheticCamera) that can be unplugged and
    plugged back in: ``present = False`` makes open and read fail as a lost device does.
    ``reads`` counts the frames handed out."""

    def __init__(self, inner):
        self.inner = inner
        self.status = inner.status
        self.present = True
        self.reads = 0

    def open(self):
        if not self.present:
            raise OSError("no such device")

    def read(self):
        if not self.present:
            raise OSError("device vanished")
        self.reads += 1
        return self.inner.read()

    def close(self):
        pass


#: The dashboard's session cookie.
SESSION_COOKIE = "atopiscan_session"


def copy_of_session(app: Any, client: Any) -> Any:
    """A second client holding a copy of ``client``'s session cookie (a stolen cookie)."""
    thief = app.test_client()
    thief.set_cookie(SESSION_COOKIE, client.get_cookie(SESSION_COOKIE).value)
    return thief


def capture_from_preview(client: Any, token: str, region: str = "trunk",
                         patient: str = "P001") -> int:
    """Capture the live preview's frame for ``patient`` and ``region`` as staff would;
    returns the new scan's id."""
    frame = client.get("/scan/preview.jpg")
    assert frame.status_code == 200 and frame.data[:3] == b"\xff\xd8\xff"
    resp = client.post("/scan/capture", data={"csrf_token": token, "patient": patient,
                                              "region": region,
                                              "frame_id": frame.headers["X-Frame-Id"]})
    assert resp.status_code == 302, resp.get_data(as_text=True)[:2000]
    return int(resp.location.rsplit("/", 1)[1])
