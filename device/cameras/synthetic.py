"""A synthetic camera: plain skin frames with one reddish, textured lesion.

For the demo and tests on a machine with no camera. It renders its own simple
frames with numpy (the device never imports the trainer's generator).
"""

from __future__ import annotations

import logging

import numpy as np

from device.cameras.base import CameraState, CameraStatus, SceneHold

log = logging.getLogger(__name__)


def render_skin_frame(rng: np.random.Generator, width: int, height: int
                      ) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """One RGB frame of skin with a lesion; returns (frame, lesion box x, y, w, h)."""
    tone = rng.uniform(0.0, 1.0)  # 0 light .. 1 darker skin
    base = (np.array([232, 190, 160]) * (1 - tone) + np.array([150, 100, 70]) * tone)
    yy = np.arange(height, dtype=np.float32)[:, None]
    xx = np.arange(width, dtype=np.float32)[None, :]
    shade = 1.0 + 0.08 * np.sin(xx / width * 3.1 + rng.uniform(0, 6)) * np.cos(yy / height * 2.3)
    frame = base.astype(np.float32)[None, None, :] * shade[..., None]
    # pores and sensor noise, so the photo is as sharp as a real one
    frame += rng.normal(0, 5.0, (height, width, 1)).astype(np.float32)
    side = int(min(width, height) * rng.uniform(0.25, 0.4))
    x = int(rng.integers(0, max(1, width - side)))
    y = int(rng.integers(0, max(1, height - side)))
    # The lesion touches only its own neighbourhood: draw it there.
    pad = side // 2
    x0, y0 = max(0, x - pad), max(0, y - pad)
    x1, y1 = min(width, x + side + pad), min(height, y + side + pad)
    ly, lx = yy[y0:y1], xx[:, x0:x1]
    cx, cy = x + side / 2, y + side / 2
    r = ((lx - cx) / (side / 2)) ** 2 + ((ly - cy) / (side / 2.2)) ** 2
    mask = np.clip(1.2 - r, 0, 1)[..., None]
    severity = rng.uniform(0.4, 1.0)
    red = (np.array([-5, -60, -50]) * severity).astype(np.float32)
    # skin lines (lichenification-like texture) inside the lesion
    lines = np.sin((lx * 0.7 + ly * 0.7) / max(2.0, side / 30)) * 12 * severity
    frame[y0:y1, x0:x1] += mask * (red + lines[..., None])
    frame = np.clip(frame, 0, 255).astype(np.uint8)
    return frame, (x, y, side, side)


class SyntheticCamera:
    def __init__(self, width: int = 640, height: int = 480, seed: int = 0,
                 scene_seconds: float = 0.0) -> None:
        self.width, self.height, self.seed = width, height, seed
        self.status = CameraStatus()
        self.last_box: tuple[int, int, int, int] | None = None
        self._rng = np.random.default_rng(seed)
        self._scene = SceneHold(scene_seconds)

    def open(self) -> None:
        self.status.state = CameraState.OK

    def _render(self) -> np.ndarray:
        frame, self.last_box = render_skin_frame(self._rng, self.width, self.height)
        return frame

    def read(self) -> np.ndarray:
        frame = self._scene.get(self._render)
        self.status.frames += 1
        return frame

    def close(self) -> None:
        self.status.state = CameraState.CLOSED
