"""``python -m device bench-stream``: the live preview's frame rate and CPU share.

Serves the dashboard (waitress, the same options as ``python -m device run``) in this
process with a synthetic or folder camera and no models, and runs 1, then 3 (``--viewers``)
viewers in a child process, so their own CPU is not counted. Prints per run: frames a
second each viewer received, frames the capture thread published, hint updates a second,
and this process's CPU time over wall time (100 % = one core). Then the same with no
viewer, to show the preview pauses. On a shared machine the figures are noisy; the
ratio of CPU with 3 viewers to 1, measured in one run, is the steadier figure.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from device.core.cliutil import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", choices=["synthetic", "folder"], default="synthetic",
                        help="camera source (default synthetic)")
    parser.add_argument("--folder", type=Path, default=None,
                        help="image folder for --source folder (default: 8 synthetic photos "
                             "written to a temporary folder)")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--scene-seconds", type=float, default=0.0,
                        help="camera.scene_seconds (default 0: a new frame decoded or drawn "
                             "at every read, the most work)")
    parser.add_argument("--crop", choices=["guide", "auto"], default="guide",
                        help="crop mode the hints' square follows (auto costs more; the demo "
                             "uses it)")
    parser.add_argument("--viewers", default="1,3", help="viewer counts to run (default 1,3)")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each run")


def _config(args: argparse.Namespace, root: Path) -> Any:
    from device.config import validate_mapping

    camera: dict[str, Any] = {"source": args.source, "width": args.width,
                              "height": args.height, "scene_seconds": args.scene_seconds,
                              "settle_seconds": 0}
    if args.source == "folder":
        folder = args.folder or _photos(root / "photos", args.width, args.height)
        if not Path(folder).is_dir():
            raise UserError(f"--folder {folder}: no such folder")
        camera["folder"] = str(folder)
    raw = {"version": 1, "camera": camera, "crop": {"mode": args.crop},
           "packs": {"dir": str(root / "packs")},
           "storage": {"data_dir": str(root / "data")}}
    return validate_mapping(raw, base_dir=root, origin="bench-stream")


def _photos(folder: Path, width: int, height: int) -> Path:
    import cv2
    import numpy as np

    from device.cameras import render_skin_frame

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(8):
        frame, _ = render_skin_frame(rng, width, height)
        cv2.imwrite(str(folder / f"p{i}.jpg"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    return folder


def _serve(config: Any) -> tuple[Any, Any, str, str]:
    """(app, server, base url, cookie of a logged-in staff user)."""
    from waitress.server import create_server

    from device.cameras import make_camera
    from device.cli.run import server_options
    from device.scan.service import Service
    from device.store import Store
    from device.web import create_app
    from device.web.users import UserStore

    data_dir = config.storage.data_dir
    users = UserStore.in_data_dir(data_dir, hash_method="pbkdf2:sha256:1000")
    password = os.urandom(12).hex()
    users.add("bench", password, "staff")
    service = Service(config, make_camera(config.camera), None)
    app = create_app(config, service=service, store=Store(data_dir), users=users)
    client = app.test_client()
    token = client.get("/login").get_data(as_text=True).split('name="csrf-token" content="')[1]
    client.post("/login", data={"username": "bench", "password": password,
                                "csrf_token": token.split('"')[0]})
    cookie = f"atopiscan_session={client.get_cookie('atopiscan_session').value}"
    server = create_server(app, host="127.0.0.1", port=0, **server_options())
    threading.Thread(target=server.run, daemon=True).start()
    return app, server, f"http://127.0.0.1:{server.effective_port}", cookie


def _run_viewers(app: Any, base: str, cookie: str, n: int, seconds: float) -> dict[str, float]:
    """``n`` viewers in a child process for ``seconds`` (after a 1 s warm-up); meanwhile this
    process's CPU share and the hub's frame and hint rates."""

    child = subprocess.Popen(
        [sys.executable, "-m", "device.tools.streamclient", f"{base}/scan/stream.mjpg", cookie,
         str(seconds), str(n)], stdout=subprocess.PIPE, text=True)
    try:
        end = time.monotonic() + 30
        while hub_of(app).stats().viewers < n:
            if time.monotonic() > end or child.poll() is not None:
                raise UserError("the viewers did not connect to the stream within 30 s")
            time.sleep(0.05)
        time.sleep(1.0)  # the viewers' warm-up
        measured = _measure(app, lambda: time.sleep(seconds))
        out, _ = child.communicate(timeout=seconds + 30)
    finally:
        if child.poll() is None:
            child.kill()
    fps = [v["fps"] for v in json.loads(out)]
    return {**measured, "viewer_fps_min": min(fps), "viewer_fps_mean": sum(fps) / len(fps)}


def _wait_paused(app: Any, timeout: float = 20.0) -> None:
    """Wait until the capture thread has stopped (it does 2 s after the last viewer)."""
    end = time.monotonic() + timeout
    while hub_of(app).stats().running:
        if time.monotonic() > end:
            raise UserError(f"the preview did not pause within {timeout:g} s of its viewers "
                            "leaving")
        time.sleep(0.1)


def hub_of(app: Any) -> Any:
    return app.extensions["atopiscan"].scans.hub()


def _measure(app: Any, wait: Any) -> dict[str, float]:
    """This process's CPU time over wall time, and the hub's rates, while ``wait()`` runs."""
    preview = hub_of(app)
    frames0, hints0 = preview.stats().frames, preview.stats().hints
    cpu0, wall0 = time.process_time(), time.monotonic()
    wait()
    wall = time.monotonic() - wall0
    return {"cpu_share": (time.process_time() - cpu0) / wall,
            "capture_fps": (preview.stats().frames - frames0) / wall,
            "hint_rate": (preview.stats().hints - hints0) / wall}


def run(args: argparse.Namespace) -> int:
    try:
        counts = [int(v) for v in args.viewers.split(",")]
    except ValueError as exc:
        raise UserError(f"--viewers {args.viewers!r}: give counts like 1,3") from exc
    if not counts or min(counts) < 1 or args.seconds <= 0:
        raise UserError("--viewers needs counts of at least 1 and --seconds a positive time")
    with tempfile.TemporaryDirectory(prefix="atopiscan-bench-stream-") as tmp:
        config = _config(args, Path(tmp))
        app, server, base, cookie = _serve(config)
        print(f"stream bench: {args.source} camera {args.width}x{args.height}, crop {args.crop}, "
              "scene held "
              f"{args.scene_seconds:g} s, {args.seconds:g} s per run; this machine: "
              f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} (shared: noisy)")
        results = {}
        try:
            for n in counts:
                results[n] = r = _run_viewers(app, base, cookie, n, args.seconds)
                print(f"viewers={n}: each viewer {r['viewer_fps_mean']:.1f} frames/s (slowest "
                      f"{r['viewer_fps_min']:.1f}), capture {r['capture_fps']:.1f} frames/s, "
                      f"hints {r['hint_rate']:.1f}/s, server CPU {r['cpu_share']:.0%} of one core")
                _wait_paused(app)  # the next run starts from a stopped capture
            idle = _measure(app, lambda: time.sleep(3.0))
            print(f"no viewers: capture {idle['capture_fps']:.1f} frames/s, server CPU "
                  f"{idle['cpu_share']:.1%} of one core")
            if 1 in results and len(results) > 1:
                top = max(results)
                print(f"CPU ratio {top} viewers / 1 viewer: "
                      f"{results[top]['cpu_share'] / results[1]['cpu_share']:.2f}")
        finally:
            hub_of(app).close()
            server.close()
    return 0
