"""Retention: image files older than ``storage.retention_days`` are deleted (their
rows stay, without the paths), and orphan files no row names are swept."""

from __future__ import annotations

import datetime as dt
import logging

from device.store.db import iso
from device.store.history import VisitScores

log = logging.getLogger(__name__)

#: Orphan image files (written, but their row never committed) younger than this
#: are left alone: a save may be between its file write and its commit.
ORPHAN_GRACE = dt.timedelta(hours=1)


class Retention(VisitScores):
    def purge_expired(self, now: dt.datetime | None = None) -> int:
        """Delete image files older than ``retention_days`` and clear their paths; also
        remove orphan files no row names. Returns the number of files deleted."""
        now = now or self.clock()
        cutoff = iso(now - dt.timedelta(days=self.retention_days))
        with self._tx() as conn:
            rows = conn.execute("SELECT id, image_path, frame_path FROM region_scans WHERE "
                                "(image_path IS NOT NULL OR frame_path IS NOT NULL) "
                                "AND image_saved_at < ?", (cutoff,)).fetchall()
            conn.executemany("UPDATE region_scans SET image_path = NULL, frame_path = NULL "
                             "WHERE id = ?", [(r["id"],) for r in rows])
        # Paths are cleared first: a kill here leaves orphan files, never a row naming a gone file.
        deleted = 0
        for r in rows:
            for rel in (r["image_path"], r["frame_path"]):
                path = self.data_dir / rel if rel else None
                if path is not None and path.exists():
                    path.unlink()
                    deleted += 1
        named = {p for r in self._conn().execute(
            "SELECT image_path, frame_path FROM region_scans") for p in r if p}
        grace = (now - ORPHAN_GRACE).timestamp()
        if self.images_dir.is_dir():
            for path in self.images_dir.rglob("*"):
                rel = path.relative_to(self.data_dir).as_posix()
                if path.is_file() and rel not in named and path.stat().st_mtime < grace:
                    path.unlink()
                    deleted += 1
        if deleted:
            log.info("purged %d image files older than %d days", deleted, self.retention_days)
        return deleted


