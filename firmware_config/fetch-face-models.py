#!/usr/bin/env python3
"""Take the two face models again from the mediapipe wheel on PyPI, check them against
the sha256 pinned in device/vision/facemesh.py, and write them to device/vision/facemodels/.

The models are committed, so a build needs none of this; it is how they were got, and
how a maintainer proves the committed bytes are MediaPipe's:

    python firmware_config/fetch-face-models.py [--check]

``--check`` compares the wheel's files with the committed ones and writes nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WHEEL = "mediapipe==0.10.18"
MEMBERS = {
    "face_detection_short_range.tflite": "mediapipe/modules/face_detection/",
    "face_landmark.tflite": "mediapipe/modules/face_landmark/",
}


def main() -> int:
    sys.path.insert(0, str(ROOT))
    from device.vision.facemesh import MODEL_DIR, MODELS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare only; write nothing")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                        "--only-binary", ":all:", "-d", tmp, WHEEL], check=True)
        wheel = next(Path(tmp).glob("mediapipe-*.whl"))
        with zipfile.ZipFile(wheel) as zf:
            for name, folder in MEMBERS.items():
                data = zf.read(folder + name)
                digest = hashlib.sha256(data).hexdigest()
                if digest != MODELS[name]:
                    print(f"{name}: the wheel's sha256 is {digest}, pinned {MODELS[name]}")
                    return 1
                target = MODEL_DIR / name
                if args.check:
                    same = target.is_file() and target.read_bytes() == data
                    print(f"{name}: {'same as committed' if same else 'DIFFERS from committed'}")
                    if not same:
                        return 1
                else:
                    target.write_bytes(data)
                    print(f"{name}: written ({len(data)} bytes, sha256 {digest[:12]}...)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
