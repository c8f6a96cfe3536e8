"""Model pack verification: everything a pack must prove before the device runs it.

Checks, in order, each problem worded so a person can act on it:

1. the file is a plain tar (device.packs.container: compressed ones are refused);
2. its members are safe: relative paths without '..', regular files only (no
   links, devices or fifos), no duplicates, bounded sizes and count;
3. manifest.json matches device.packs.manifest.PackManifest;
4. every listed file is present with its sha256, and no file is unlisted;
5. the signature (Ed25519 over manifest.json's bytes): required when a public key
   is configured; a signature without a key is noted, not checked;
6. each model card is valid, grades its sign and names its model's sha256;
7. this device's software is at least the pack's min_device_version;
8. each model's input tensor has the size its card states (else the device's loader
   refuses it after the install and scans fail until a rollback);
9. the self-test: each golden image through device.grading.interpreter.GradeModel must
   give the recorded probabilities within manifest.selftest_tolerance, and the
   recorded grade (unless the recorded top two are a tie within the tolerance).

Nothing is extracted before the member checks pass, and the self-test only runs
on a pack whose files all check out (a damaged model is never executed).
"""

from __future__ import annotations

import hashlib
import logging
import os
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import device
from device.core.card import CardError, card_mismatches, load_card
from device.core.errors import InvalidInput
from device.core.vocab import MODEL_SIGNS, Sign
from device.grading.interpreter import GradeModel, InterpreterError
from device.packs.container import format_problem
from device.packs.golden import golden_image, read_golden_image, read_golden_set
from device.packs.manifest import (
    MANIFEST_NAME,
    SIGNATURE_NAME,
    ManifestError,
    PackManifest,
    parse_manifest,
    safe_member_name,
    software_version,
)
from device.packs.stats import check_stats, features_fit

log = logging.getLogger(__name__)

__all__ = ["SelfTest", "SigningKeyError", "VerifyReport", "load_public_key", "member_refusal",
           "read_golden_image", "run_selftest", "verify_into", "verify_pack"]

MAX_MEMBERS = 2000
MAX_MEMBER_BYTES = 512 << 20
MAX_TOTAL_BYTES = 2 << 30
PUBLIC_KEY_HINT = "packs.public_key in the device config"


@dataclass
class SelfTest:
    sign: Sign
    cases: int
    failed: int
    max_diff: float


@dataclass
class VerifyReport:
    pack_file: Path
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    manifest: PackManifest | None = None
    pack_id: str | None = None
    signature_checked: bool = False
    selftest: list[SelfTest] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        head = f"{self.pack_file}: " + ("OK" if self.ok else f"{len(self.problems)} problem(s)")
        if self.manifest:
            head += f" (pack {self.manifest.pack_version}, "
            head += "signature verified)" if self.signature_checked else "signature not checked)"
        lines = [head] + [f"  problem: {p}" for p in self.problems]
        lines += [f"  note: {n}" for n in self.notes]
        lines += [f"  self-test {t.sign.value}: {t.cases - t.failed}/{t.cases} golden images match, "
                  f"largest probability difference {t.max_diff:.4f}" for t in self.selftest]
        return "\n".join(lines)


def verify_pack(pack_file: Path | str, *, public_key: Any = None, threads: int = 2,
                device_version: str = device.__version__) -> VerifyReport:
    """Verify a pack file without installing it (extracts into a temporary folder)."""
    with tempfile.TemporaryDirectory(prefix="atopiscan-verify-") as tmp:
        return verify_into(Path(pack_file), Path(tmp), public_key=public_key, threads=threads,
                           device_version=device_version)


def verify_into(pack_file: Path, dest: Path, *, public_key: Any = None, threads: int = 2,
                device_version: str = device.__version__, fsync: bool = False) -> VerifyReport:
    """Verify ``pack_file``, extracting it into the empty folder ``dest`` (left there:
    install uses it as the staging copy, so what was checked is what gets run)."""
    report = VerifyReport(Path(pack_file))
    extracted = _extract(report, dest, fsync=fsync)
    if extracted is None:
        return report
    manifest = _manifest(report, dest, extracted)
    if manifest is None:
        return report
    _check_files(report, manifest, extracted)
    _check_signature(report, dest, extracted, public_key)
    _check_cards(report, manifest, dest, extracted)
    if software_version(device_version) < software_version(manifest.min_device_version):
        report.problems.append(
            f"manifest.json: the pack needs device software {manifest.min_device_version} or newer; "
            f"this device runs {device_version}: update the device software first, or use an older pack")
    if report.ok:
        run_selftest(report, manifest, dest, threads=threads)
    return report


def _extract(report: VerifyReport, dest: Path, *, fsync: bool) -> dict[str, str] | None:
    """Check the members, then extract the regular files; return name -> sha256."""
    path = report.pack_file
    if not path.is_file():
        report.problems.append(f"{path}: file not found")
        return None
    problem = format_problem(path)
    if problem is not None:  # compressed, empty or not a tar: the same words as an upload
        report.problems.append(problem.message)
        return None
    try:
        tar = tarfile.open(path, "r:")  # noqa: SIM115 - closed by the `with tar` below
    except (tarfile.TarError, OSError) as exc:
        report.problems.append(f"{path}: not a tar file ({exc}); a pack is the .tar that "
                               "`python -m convert pack` writes: re-copy it")
        return None
    with tar:
        try:
            members = tar.getmembers()
        except (tarfile.TarError, OSError, EOFError) as exc:
            report.problems.append(f"{path}: the tar is truncated or damaged ({exc}); re-copy it")
            return None
        files = _check_members(report, members)
        if not report.ok:
            return None
        digests: dict[str, str] = {}
        root = dest.resolve()
        for member in files:
            refusal = member_refusal(member, root)
            if refusal is not None:
                report.problems.append(f"{member.name}: refused ({refusal}); the pack may be malicious")
                return None
            target = root / member.name
            target.parent.mkdir(parents=True, exist_ok=True)
            src = tar.extractfile(member)
            assert src is not None
            digest = hashlib.sha256()
            with src, open(target, "wb") as out:
                while block := src.read(1 << 20):
                    digest.update(block)
                    out.write(block)
                if fsync:
                    out.flush()
                    os.fsync(out.fileno())
            digests[member.name] = digest.hexdigest()
    return digests


def member_refusal(member: tarfile.TarInfo, root: Path) -> str | None:
    """Why ``member`` may not be written under ``root`` (None when it may): the second
    line behind _check_members. Our own refusals (absolute paths, '..', paths leaving
    ``root``, links, devices, fifos) on every Python, then Python's "data" filter where
    it exists (3.11.4+, 3.10.12+; Raspberry Pi OS Bookworm runs 3.11.2). The filter
    renames an absolute member instead of refusing it, so a renamed member is refused."""
    refusal = _refusal_by_hand(member, root)
    data_filter = getattr(tarfile, "data_filter", None)
    if refusal is not None or data_filter is None:
        return refusal
    try:
        filtered = data_filter(member, str(root))
    except tarfile.TarError as exc:  # FilterError and its subclasses are TarErrors
        return f"tarfile's data filter: {exc}"
    if filtered is None or filtered.name != member.name:
        return "tarfile's data filter would rename it"
    return None


def _refusal_by_hand(member: tarfile.TarInfo, root: Path) -> str | None:
    name = member.name
    if name.startswith(("/", "\\")) or os.path.isabs(name) or (len(name) > 1 and name[1] == ":"):
        return "an absolute path"
    if ".." in name.replace("\\", "/").split("/"):
        return "a path with '..'"
    if member.issym() or member.islnk():
        return f"a link to {member.linkname!r}"
    if not member.isreg():
        return "a device, fifo or other special file"
    root = root.resolve()
    target = (root / name).resolve()
    if target != root and root not in target.parents:
        return "a path that leaves the pack's folder"
    return None


def _check_members(report: VerifyReport, members: list[tarfile.TarInfo]) -> list[tarfile.TarInfo]:
    if len(members) > MAX_MEMBERS:
        report.problems.append(f"the pack has {len(members)} members (limit {MAX_MEMBERS}); "
                               "not an atopiscan pack")
        return []
    seen: set[str] = set()
    files, total = [], 0
    for m in members:
        name = m.name
        if not safe_member_name(name) or any(ord(c) < 32 for c in name):
            report.problems.append(f"{name!r}: unsafe path in the pack (absolute, '..' or odd "
                                   "characters); refusing it: the pack may be malicious")
            continue
        if m.isdir():
            continue
        if m.issym() or m.islnk():
            report.problems.append(f"{name}: is a link to {m.linkname!r}; packs hold regular files only")
        elif not m.isreg():
            report.problems.append(f"{name}: is a device, fifo or other special file; packs hold "
                                   "regular files only")
        elif name in seen:
            report.problems.append(f"{name}: appears twice in the pack; rebuild it")
        elif m.size > MAX_MEMBER_BYTES:
            report.problems.append(f"{name}: {m.size} bytes is over the {MAX_MEMBER_BYTES >> 20} MiB "
                                   "limit for one file")
        else:
            seen.add(name)
            total += m.size
            files.append(m)
    if total > MAX_TOTAL_BYTES:
        report.problems.append(f"the pack unpacks to {total >> 20} MiB, over the "
                               f"{MAX_TOTAL_BYTES >> 20} MiB limit")
    return files


def _manifest(report: VerifyReport, dest: Path, extracted: dict[str, str]) -> PackManifest | None:
    if MANIFEST_NAME not in extracted:
        report.problems.append(f"{MANIFEST_NAME}: missing; this is not an atopiscan model pack")
        return None
    raw = (dest / MANIFEST_NAME).read_bytes()
    try:
        manifest = parse_manifest(raw)
    except ManifestError as exc:
        report.problems += exc.problems
        return None
    report.manifest = manifest
    report.pack_id = f"{manifest.pack_version}-{hashlib.sha256(raw).hexdigest()[:12]}"
    return manifest


def _check_files(report: VerifyReport, manifest: PackManifest, extracted: dict[str, str]) -> None:
    for name, want in sorted(manifest.files.items()):
        if name not in extracted:
            report.problems.append(f"{name}: listed in the manifest but missing from the pack; "
                                   "the pack is incomplete: rebuild or re-copy it")
        elif extracted[name] != want:
            report.problems.append(f"{name}: sha256 mismatch — the pack is damaged; rebuild or re-copy it")
    for name in sorted(set(extracted) - set(manifest.files) - {MANIFEST_NAME, SIGNATURE_NAME}):
        report.problems.append(f"{name}: in the pack but not listed in the manifest; unlisted files "
                               "are refused: rebuild the pack")
    for sign, entry in manifest.models.items():
        if sign not in MODEL_SIGNS:
            report.problems.append(f"{MANIFEST_NAME}: models.{sign.value}: no model grades this sign")
        for what, name in (("model", entry.model), ("card", entry.card), ("stats", entry.stats)):
            if name is not None and name not in manifest.files:
                report.problems.append(f"{MANIFEST_NAME}: models.{sign.value}.{what}: {name} is not "
                                       "listed in files")
    if manifest.golden not in manifest.files:
        report.problems.append(f"{MANIFEST_NAME}: golden: {manifest.golden} is not listed in files")
    absent = [s.value for s in MODEL_SIGNS if s not in manifest.models]
    if absent:
        report.notes.append(f"no model for {', '.join(absent)}: those signs will not be graded")


class SigningKeyError(InvalidInput):
    """A key file is missing, unreadable or not an Ed25519 key."""


def load_public_key(key: Any) -> Any:
    """The one Ed25519 public key loader (device and convert): from a path (PEM or raw
    32 bytes), bytes, or a key object; ``SigningKeyError`` naming the file otherwise."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    if isinstance(key, Ed25519PublicKey):
        return key
    where = "public key" if isinstance(key, bytes) else str(key)
    try:
        data = key if isinstance(key, bytes) else Path(key).expanduser().read_bytes()
    except FileNotFoundError as exc:
        raise SigningKeyError(f"{where}: public key not found; make one with "
                              "`python -m convert keygen`") from exc
    except OSError as exc:
        raise SigningKeyError(f"{where}: cannot read the public key ({exc})") from exc
    try:
        loaded = (Ed25519PublicKey.from_public_bytes(data) if len(data) == 32
                  else serialization.load_pem_public_key(data))
    except (ValueError, TypeError) as exc:
        hint = " (this looks like a PRIVATE key: give the .pub.pem)" if b"PRIVATE" in data else ""
        raise SigningKeyError(f"{where}: not a PEM public key{hint} ({exc})") from exc
    if not isinstance(loaded, Ed25519PublicKey):
        raise SigningKeyError(f"{where}: is a {type(loaded).__name__}, not an Ed25519 public key")
    return loaded


def _check_signature(report: VerifyReport, dest: Path, extracted: dict[str, str], key: Any) -> None:
    signed = SIGNATURE_NAME in extracted
    if key is None:
        report.notes.append("the pack is signed, but no public key is configured: signature not checked"
                            if signed else "unsigned pack (no public key configured, none required)")
        return
    from cryptography.exceptions import InvalidSignature

    where = key if isinstance(key, (str, Path)) else PUBLIC_KEY_HINT
    try:
        public = load_public_key(key)
    except (OSError, ValueError, TypeError) as exc:
        report.problems.append(f"public key {where}: cannot be used ({exc}); set {PUBLIC_KEY_HINT} "
                               "to the .pub.pem from `python -m convert keygen`")
        return
    if not signed:
        report.problems.append(f"{SIGNATURE_NAME}: missing; this device only installs packs signed "
                               f"for its public key ({where}): sign the pack")
        return
    try:
        public.verify((dest / SIGNATURE_NAME).read_bytes(), (dest / MANIFEST_NAME).read_bytes())
    except InvalidSignature:
        report.problems.append(f"{SIGNATURE_NAME}: the signature does not match the public key "
                               f"({where}): the pack was signed with another key or altered")
        return
    report.signature_checked = True


def _check_cards(report: VerifyReport, manifest: PackManifest, dest: Path,
                 extracted: dict[str, str]) -> None:
    for sign, entry in manifest.models.items():
        if entry.card not in extracted or entry.model not in extracted:
            continue  # already reported as missing
        try:
            card = load_card(dest / entry.card)
        except CardError as exc:
            report.problems.append(str(exc).replace(f"{dest}{os.sep}", ""))
            continue
        report.problems += [  # the model was hashed while it was extracted
            f"{problem}; rebuild the pack" for problem in card_mismatches(
                card, sign=sign, model_sha256=extracted[entry.model], card_where=entry.card,
                model_where=entry.model)]
        check_stats(report, entry, card, dest, extracted)


def input_size_fits(report: VerifyReport, entry: Any, model: GradeModel, dest: Path) -> bool:
    """Whether ``model``'s actual input tensor has its card's input_size (a problem if not):
    the check the device's loader makes (device.grading.models), made before the install."""
    card = load_card(dest / entry.card)  # valid: _check_cards passed before the self-test
    problems = card_mismatches(card, model_input_size=model.input_size,
                               card_where=entry.card, model_where=entry.model)
    report.problems += [f"{problem}; the card does not describe this model: rebuild the pack"
                        for problem in problems]
    return not problems


def run_selftest(report: VerifyReport, manifest: PackManifest, dest: Path, *, threads: int) -> None:
    """Run every golden image through this device's interpreter (see module docstring)."""
    golden, problem = read_golden_set(manifest, dest)
    if golden is None:
        report.problems.append(str(problem))
        return
    tol = manifest.selftest_tolerance
    for sign, entry in manifest.models.items():
        cases = golden.cases.get(sign, [])
        if not cases:
            report.problems.append(f"{manifest.golden}: no golden images for {sign.value}; the "
                                   "self-test needs at least one: rebuild the pack")
            continue
        try:
            model = GradeModel(dest / entry.model, threads=threads)
        except InterpreterError as exc:
            report.problems.append(f"{entry.model}: this device cannot load it ({exc})".replace(
                f"{dest}{os.sep}", ""))
            continue
        if not input_size_fits(report, entry, model, dest):
            continue
        if entry.stats is not None and not features_fit(report, entry, model, dest):
            continue
        failed, worst, wrong_grade = 0, 0.0, 0
        for case in cases:
            image, problem = golden_image(case.image, manifest, dest, model.input_size)
            if image is None:
                report.problems.append(str(problem))
                failed += 1
                continue
            probs = model.predict(image)
            want = np.asarray(case.probs, np.float32)
            diff = float(np.max(np.abs(probs - want)))
            top2 = np.sort(want)[-2:]
            tie = top2[1] - top2[0] <= tol
            grade_ok = int(np.argmax(probs)) == case.grade or tie
            worst = max(worst, diff)
            if diff > tol or not grade_ok:
                failed += 1
                wrong_grade += not grade_ok
        report.selftest.append(SelfTest(sign, len(cases), failed, worst))
        if failed:
            report.problems.append(
                f"self-test failed for {sign.value}: {failed} of {len(cases)} golden images differ "
                f"(largest probability difference {worst:.4f}, tolerance {tol}; "
                f"{wrong_grade} with another grade): this device does not reproduce the pack's "
                "outputs, so it will not run it; rebuild the pack or check the interpreter")
