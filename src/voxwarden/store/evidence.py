"""Content-addressed evidence files (audio of flagged segments) and their database links.

Files live at `<root>/ab/cd/<sha256>.<ext>`. A write goes to a temporary file in the same directory,
is fsync'd, renamed into place and the directory fsync'd, so a crash leaves either the whole file or
nothing under its final name. The same bytes are stored once; `verify` re-hashes to detect rot or
tampering. Paths are always derived from the hash, never taken from the database, so a hostile `path`
value cannot point outside the root.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from voxwarden.store.errors import EvidenceError, InvalidInputError
from voxwarden.store.models import Evidence
from voxwarden.store.repo import get_or_create

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_SUFFIX = re.compile(r"^[a-z0-9]{1,10}$")
_CHUNK = 1 << 20
DEFAULT_MAX_BYTES = 512 * 1024 * 1024


@dataclass(frozen=True)
class EvidenceRef:
    """Where one stored evidence file is: its sha256, path relative to the store root, size in bytes."""

    sha256: str
    path: str
    size: int

    @property
    def suffix(self) -> str:
        return self.path.rsplit(".", 1)[-1]


def _norm_suffix(suffix: str) -> str:
    s = suffix.lower().lstrip(".")
    if not _SUFFIX.match(s):
        raise InvalidInputError(f"bad evidence file suffix {suffix!r}: 1-10 letters/digits, e.g. 'wav'")
    return s


def _fsync_dir(d: Path) -> None:
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        return  # not supported on this platform/filesystem; the rename is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class EvidenceStore:
    """A directory of content-addressed files. Safe for several threads/processes writing at once."""

    def __init__(self, root: str | Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.root = Path(root).expanduser().resolve()
        self.max_bytes = max_bytes

    def relpath(self, sha256: str, suffix: str) -> str:
        """The path (relative to root) where bytes with this hash and suffix are kept."""
        if not _HEX64.match(sha256):
            raise InvalidInputError(f"not a sha256 hex digest: {sha256[:80]!r}")
        return f"{sha256[:2]}/{sha256[2:4]}/{sha256}.{_norm_suffix(suffix)}"

    def abspath(self, ref: EvidenceRef) -> Path:
        """Absolute path of a stored file, recomputed from its hash (never trusts `ref.path`)."""
        return self.root / self.relpath(ref.sha256, ref.suffix)

    def put(self, data: bytes, *, suffix: str) -> EvidenceRef:
        """Store bytes (deduplicated by sha256) and return where they are."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise InvalidInputError(f"evidence must be bytes, got {type(data).__name__}")
        data = bytes(data)
        if not data:
            raise InvalidInputError("empty evidence file")
        if len(data) > self.max_bytes:
            raise InvalidInputError(f"evidence of {len(data)} bytes exceeds the limit of {self.max_bytes}")
        digest = hashlib.sha256(data).hexdigest()
        ref = EvidenceRef(digest, self.relpath(digest, suffix), len(data))
        final = self.abspath(ref)
        if self._intact(final, digest):
            return ref
        self._write_atomic(final, [data])
        return ref

    def put_stream(self, src: BinaryIO, *, suffix: str) -> EvidenceRef:
        """Like `put` for a readable binary stream, hashed while copied (constant memory)."""
        sfx = _norm_suffix(suffix)
        tmp_dir = self.root / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        h = hashlib.sha256()
        size = 0
        fd, tmp = tempfile.mkstemp(dir=tmp_dir, prefix=".put-")
        try:
            with os.fdopen(fd, "wb") as f:
                while chunk := src.read(_CHUNK):
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise InvalidInputError(f"evidence exceeds the limit of {self.max_bytes} bytes")
                    h.update(chunk)
                    f.write(chunk)
                f.flush()
                os.fsync(f.fileno())
            if size == 0:
                raise InvalidInputError("empty evidence file")
            digest = h.hexdigest()
            ref = EvidenceRef(digest, self.relpath(digest, sfx), size)
            final = self.abspath(ref)
            if not self._intact(final, digest):
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp, final)
                _fsync_dir(final.parent)
            return ref
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def read(self, ref: EvidenceRef) -> bytes:
        """The stored bytes, checked against the hash (raises `EvidenceError` if missing or altered)."""
        p = self.abspath(ref)
        try:
            data = p.read_bytes()
        except OSError as e:
            raise EvidenceError(f"evidence {ref.sha256} unreadable: {e.strerror or e}") from e
        if hashlib.sha256(data).hexdigest() != ref.sha256:
            raise EvidenceError(f"evidence {ref.sha256} does not match its hash (altered or corrupt)")
        return data

    def verify(self, ref: EvidenceRef) -> bool:
        """Re-hash the stored file: True only if it exists, has the recorded size and hash."""
        p = self.abspath(ref)
        try:
            if p.stat().st_size != ref.size:
                return False
        except OSError:
            return False
        return self._intact(p, ref.sha256)

    def exists(self, ref: EvidenceRef) -> bool:
        return self.abspath(ref).is_file()

    def delete(self, ref: EvidenceRef) -> bool:
        """Remove a stored file; True if it was there. Callers check no row still references it."""
        p = self.abspath(ref)
        try:
            p.unlink()
        except FileNotFoundError:
            return False
        _fsync_dir(p.parent)
        for d in (p.parent, p.parent.parent):  # tidy empty fan-out dirs; harmless if another writer races
            try:
                d.rmdir()
            except OSError:
                break
        return True

    # -- internals -------------------------------------------------------------------------------

    def _intact(self, p: Path, digest: str) -> bool:
        h = hashlib.sha256()
        try:
            with open(p, "rb") as f:
                while chunk := f.read(_CHUNK):
                    h.update(chunk)
        except OSError:
            return False
        return h.hexdigest() == digest

    def _write_atomic(self, final: Path, chunks: list[bytes]) -> None:
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=".tmp-")
        except OSError as e:
            raise EvidenceError(f"cannot write evidence under {self.root}: {e.strerror or e}") from e
        try:
            with os.fdopen(fd, "wb") as f:
                for c in chunks:
                    f.write(c)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, final)
            _fsync_dir(final.parent)
        except OSError as e:
            raise EvidenceError(f"cannot write evidence {final.name}: {e.strerror or e}") from e
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)


# -- database links ------------------------------------------------------------------------------


def attach_evidence(
    session: Session,
    tenant_id: str,
    ref: EvidenceRef,
    *,
    alert_id: str | None = None,
    case_id: str | None = None,
    scan_id: str | None = None,
    start: float | None = None,
    end: float | None = None,
    media_type: str | None = None,
) -> Evidence:
    """Record that a stored file is evidence for an alert/case/scan. Attaching the same twice is one row."""
    if alert_id is None and case_id is None and scan_id is None:
        raise InvalidInputError("evidence must be linked to an alert, a case or a scan")
    link_key = f"{ref.sha256}|a:{alert_id or ''}|c:{case_id or ''}|s:{scan_id or ''}"
    row, _ = get_or_create(
        session,
        Evidence,
        lookup={"tenant_id": tenant_id, "link_key": link_key},
        values={
            "sha256": ref.sha256,
            "size": ref.size,
            "path": ref.path,
            "media_type": media_type,
            "alert_id": alert_id,
            "case_id": case_id,
            "scan_id": scan_id,
            "start": start,
            "end": end,
        },
    )
    return row


def evidence_for(
    session: Session, tenant_id: str, *, alert_id: str | None = None, case_id: str | None = None,
    scan_id: str | None = None,
) -> list[Evidence]:
    """Evidence rows linked to an alert, a case or a scan, oldest first."""
    q = select(Evidence).where(Evidence.tenant_id == tenant_id)
    if alert_id is not None:
        q = q.where(Evidence.alert_id == alert_id)
    if case_id is not None:
        q = q.where(Evidence.case_id == case_id)
    if scan_id is not None:
        q = q.where(Evidence.scan_id == scan_id)
    return list(session.scalars(q.order_by(Evidence.created_at, Evidence.id)))


def ref_of(row: Evidence) -> EvidenceRef:
    """The file reference of an evidence row."""
    return EvidenceRef(row.sha256, row.path, row.size)
