"""Helpers for the labelling studio tests: small photo folders made here (never the real
photos), a project with users, and two raters' grades written as an import CSV."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np

PASSWORD = "correct-horse-battery"
FAST_HASH = "pbkdf2:sha256:1000"


def skin_photo(path: Path, width: int = 160, height: int = 120, seed: int = 0) -> Path:
    """A small skin-coloured photo with a red blotch (BGR written by OpenCV)."""
    rng = np.random.default_rng(seed)
    img = np.zeros((height, width, 3), np.uint8)
    img[:] = (120, 150, 200)
    img = np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)
    cx, cy = int(rng.integers(30, width - 30)), int(rng.integers(30, height - 30))
    cv2.circle(img, (cx, cy), 18, (60, 60, 190), -1)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), img)
    return path


def exif_rotated_jpeg(path: Path, width: int = 200, height: int = 100) -> Path:
    """A JPEG stored width x height whose EXIF orientation (6) says: rotate 90 degrees, so it
    displays as height x width."""
    from PIL import Image

    img = Image.new("RGB", (width, height), (200, 150, 120))
    exif = Image.Exif()
    exif[0x0112] = 6
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, "JPEG", exif=exif.tobytes())
    return path


def photo_folder(root: Path, n_patients: int = 3, per_patient: int = 2) -> Path:
    """ROOT/P<k>/trunk/img<j>.jpg: patients and the region come from folder names."""
    for k in range(n_patients):
        for j in range(per_patient):
            skin_photo(root / f"P{k}" / "trunk" / f"img{j}.jpg", seed=10 * k + j)
    return root


def make_project(tmp: Path, *, overlap: float = 1.0, n_patients: int = 3, per_patient: int = 2):
    """A project on a fresh photo folder; returns (project, db)."""
    from trainer.label.db import connect, create_project, set_setting, transaction
    from trainer.label.photos import import_photos

    photos = photo_folder(tmp / "photos", n_patients, per_patient)
    project = create_project(tmp / "proj", photos.resolve())
    db = connect(project)
    with transaction(db):
        set_setting(db, "overlap_share", str(overlap))
    import_photos(db, photos.resolve())
    return project, db


def add_users(db, raters=("alice", "bob"), adjudicators=("carol",)) -> None:
    from trainer.label.models import Role
    from trainer.label.users import add_user

    for name in raters:
        add_user(db, name, PASSWORD, Role.RATER, hash_method=FAST_HASH)
    for name in adjudicators:
        add_user(db, name, PASSWORD, Role.ADJUDICATOR, hash_method=FAST_HASH)


def studio_app(tmp: Path, *, n_patients: int = 2):
    """The labelling studio's Flask app (testing mode) on a new project with the
    default users, and the project's database."""
    from trainer.label.web import create_app

    project, db = make_project(tmp, overlap=1.0, n_patients=n_patients, per_patient=1)
    add_users(db)
    app = create_app(project)
    app.config["TESTING"] = True
    return app, db


def write_label_csv(path: Path, rows: list[dict]) -> Path:
    cols = ["rater", "photo", "x", "y", "w", "h", "erythema", "excoriation", "lichenification"]
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow(r)
    return path


def two_rater_rows(photos: list[str], seed: int = 3) -> list[dict]:
    """Two raters, two boxes per photo, grades that mostly agree (seeded)."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in photos:
        for bx in (5, 80):
            truth = rng.integers(0, 4, 3)
            for rater, shift in (("alice", 0), ("bob", 3)):
                noise = rng.choice([-1, 0, 0, 0, 1], 3) if rater == "bob" else np.zeros(3, int)
                g = np.clip(truth + noise, 0, 3)
                rows.append({"rater": rater, "photo": p, "x": bx + shift, "y": 10 + shift,
                             "w": 60, "h": 60, "erythema": int(g[0]), "excoriation": int(g[1]),
                             "lichenification": int(g[2])})
    return rows
