"""What a pack file is on the outside: a plain (uncompressed) POSIX tar.

``python -m convert pack`` writes a plain tar, and the device reads only that,
the same way from ``python -m device flash`` and from an upload: a pack that was
gzipped on the way (``tar czf``, a mail gateway) is refused by both with the
command that undoes it, rather than accepted by one and refused by the other.
Reading only plain tars also keeps decompression out of the install path.
"""

from __future__ import annotations

import logging
import tarfile
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

log = logging.getLogger(__name__)

#: Leading bytes of the compressed wrappers a pack arrives in by mistake, and the undo.
COMPRESSED: tuple[tuple[bytes, str, str], ...] = (
    (b"\x1f\x8b", "gzip", "gunzip"),
    (b"BZh", "bzip2", "bunzip2"),
    (b"\xfd7zXZ\x00", "xz", "unxz"),
    (b"\x28\xb5\x2f\xfd", "zstd", "unzstd"),
)


class FormatIssue(str, Enum):
    EMPTY = "empty"
    COMPRESSED = "compressed"
    NOT_TAR = "not_tar"


@dataclass(frozen=True)
class FormatProblem:
    issue: FormatIssue
    message: str


def format_problem(path: Path, what: str | None = None) -> FormatProblem | None:
    """Why ``path`` is not a plain tar, or None when its first header says it is one
    (checked after the compressed wrappers: ``tarfile.is_tarfile`` would open those).
    ``what`` names the file in the message (an upload's own name, say)."""
    what = what or str(path)
    with open(path, "rb") as fh:
        head = fh.read(16)
    if not head:
        return FormatProblem(FormatIssue.EMPTY, f"{what} is empty (0 bytes), not a model pack; "
                                                "copy the .tar again")
    for magic, name, undo in COMPRESSED:
        if head.startswith(magic):
            return FormatProblem(FormatIssue.COMPRESSED, (
                f"{what} is {name}-compressed; a model pack is the plain .tar that `python -m "
                f"convert pack` writes: decompress it first ({undo} FILE) or copy the original "
                ".tar"))
    if not tarfile.is_tarfile(path):  # reads the first header, checksum included
        return FormatProblem(FormatIssue.NOT_TAR, (
            f"{what} is not a model pack (not a tar file); make one with `python -m convert "
            "pack`, or re-copy it if it was cut short"))
    return None
