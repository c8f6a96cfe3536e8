"""Several data roots read as one data set (``--data A --data B``): e.g. a device
export, a labelling-studio export and synthetic data trained together.

- Each root is read by ``trainer.data.load_dataset`` (either layout).
- An image whose content (sha256 of the file) was already read is a duplicate: the
  signs it grades that an earlier copy already grades are dropped, and a copy left
  with no sign is skipped and reported. Earlier roots win.
- Patient ids are one namespace across roots, so the split keeps a patient's images
  on one side whichever root they came from (trainer.split groups by patient id).
- ``root_shares`` gives each root's share of the images, for data-summary and the
  run's config.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from trainer.data import DataError, LoadReport, Sample, load_dataset

log = logging.getLogger(__name__)

MIXED = "mixed"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def as_roots(data: str | Path | Sequence[str | Path]) -> list[Path]:
    """One root or several, as a list of paths (a config may hold either)."""
    if isinstance(data, (str, Path)):
        return [Path(data)]
    roots = [Path(d) for d in data]
    if not roots:
        raise DataError("no data root given; pass --data DIR (repeat it for several roots)")
    return roots


def describe_roots(data: str | Path | Sequence[str | Path]) -> str:
    """The root, or the roots joined with ' + ', for messages."""
    return " + ".join(str(r) for r in as_roots(data))


def load_roots(data: str | Path | Sequence[str | Path], *, check_images: bool = True) -> LoadReport:
    """Read one root (exactly ``load_dataset``) or several as one report."""
    roots = as_roots(data)
    if len(roots) == 1:
        return load_dataset(roots[0], check_images=check_images)
    resolved = [r.expanduser().resolve() for r in roots]
    dupes = [r for r, n in Counter(resolved).items() if n > 1]
    if dupes:
        raise DataError(f"data root {dupes[0]} is given twice; give each root once")
    reports = [load_dataset(r, check_images=check_images) for r in roots]
    merged = LoadReport(root=reports[0].root, layout=MIXED, samples=[], roots=tuple(
        r.root for r in reports))
    seen: dict[str, tuple[Path, set]] = {}  # content hash -> (first path, signs graded)
    if len({r.layout for r in reports}) == 1:
        merged.layout = reports[0].layout
    for report in reports:
        merged.skipped.extend(report.skipped)
        for sample in report.samples:
            kept = _dedupe(sample, seen, merged)
            if kept is not None:
                merged.samples.append(kept)
    for path, reason in merged.skipped:
        if reason.startswith("duplicate"):
            log.info("skipped %s: %s", path, reason)
    return merged


def _dedupe(sample: Sample, seen: dict[str, tuple[Path, set]], report: LoadReport) -> Sample | None:
    try:
        key = file_sha256(sample.path)
    except OSError as exc:
        report.skipped.append((sample.path, f"unreadable file ({exc.strerror or exc})"))
        return None
    if key not in seen:
        seen[key] = (sample.path, set(sample.grades))
        return sample
    first, signs = seen[key]
    fresh = {s: g for s, g in sample.grades.items() if s not in signs}
    if not fresh:
        report.skipped.append((sample.path, f"duplicate: same image as {first} (content hash)"))
        return None
    signs.update(fresh)
    return replace(sample, grades=fresh)


@dataclass(frozen=True)
class RootShare:
    root: Path
    images: int
    share: float
    patients: int


def root_shares(report: LoadReport) -> list[RootShare]:
    """Each root's images (after duplicates were skipped), share and patient count."""
    roots = report.roots or (report.root,)
    counts: Counter = Counter()
    patients: dict[int, set] = {i: set() for i in range(len(roots))}
    for sample in report.samples:
        i = root_index(sample.path, roots)
        counts[i] += 1
        if sample.patient_id:
            patients[i].add(sample.patient_id)
    total = max(1, len(report.samples))
    return [RootShare(r, counts[i], counts[i] / total, len(patients[i])) for i, r in enumerate(roots)]


def root_index(path: Path, roots: Sequence[Path]) -> int:
    for i, root in enumerate(roots):
        if Path(path).is_relative_to(root):
            return i
    return -1


def format_shares(report: LoadReport) -> str:
    lines = ["share of each data root:"]
    for s in root_shares(report):
        lines.append(f"  {s.root}: {s.images} images ({100 * s.share:.1f} %), "
                     f"{s.patients} patients")
    return "\n".join(lines)
