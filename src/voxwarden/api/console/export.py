"""Evidence export of one alert: a zip streamed while it is written (constant memory).

Contents::

    alert.json     the alert, its room and speaker session
    case.json      the case with its verdict and notes (null when the alert has none)
    windows.json   the window scores of the alert's session
    watermark_checks.json  the session's watermark checks (span, result, payload, confidence, reason)
    evidence.json  the evidence rows (hash, size, links, span)
    audit.json     audit entries about the alert, its case and evidence (each with its chain hashes)
    evidence/<sha256>.<ext>   the audio files
    manifest.json  sha256 and size of every file above, computed while streaming, and for audio the hash
                   the store recorded (``intact`` says whether they agree)
    SHA256SUMS     the same hashes for ``sha256sum -c``
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from voxwarden.api.console.queries import alert_evidence
from voxwarden.store import cases as case_repo
from voxwarden.store import rooms as room_repo
from voxwarden.store.evidence import EvidenceStore, ref_of
from voxwarden.store.models import Alert, AuditLog, Case, Room, RoomSession, WindowScore
from voxwarden.store.repo import get_scoped

EXPORT_FORMAT = "voxwarden-evidence-export/1"
_CHUNK = 256 * 1024


def _t(v: datetime | None) -> str | None:
    return v.isoformat() if v is not None else None


def _row(obj: Any, names: tuple[str, ...]) -> dict[str, Any]:
    out = {}
    for n in names:
        v = getattr(obj, n)
        out[n] = _t(v) if isinstance(v, datetime) else v
    return out


_ALERT = ("id", "status", "rule", "speaker", "start", "end", "score", "details", "room_id", "session_id", "case_id",
          "created_at", "updated_at")
_ROOM = ("id", "external_id", "name", "policy", "created_at", "closed_at")
_SESSION = ("id", "external_id", "speaker", "codec", "sample_rate", "started_at", "ended_at", "last_ack_seq",
            "source_ip", "source_port", "dest_ip", "dest_port", "client")
_CASE = ("id", "title", "status", "verdict", "assignee_id", "scan_id", "opened_by", "opened_at", "closed_at")
_NOTE = ("id", "author", "body", "created_at")
_EVIDENCE = ("id", "sha256", "size", "media_type", "alert_id", "case_id", "scan_id", "start", "end", "created_at")
_AUDIT = ("seq", "tenant_id", "at", "actor", "action", "target_type", "target_id", "source_ip", "source_port",
          "dest_ip", "dest_port", "user_agent", "client", "details", "prev_hash", "hash")


@dataclass(frozen=True)
class EvidenceFile:
    """An audio file to put in the zip: its name there, where it is on disk, the hash the store recorded."""

    name: str
    path: Path
    recorded_sha256: str
    size: int


@dataclass
class ExportBundle:
    """What one alert's export holds, read in one transaction before streaming starts."""

    alert_id: str
    tenant_id: str
    exported_by: str
    exported_at: datetime
    documents: dict[str, Any]
    files: list[EvidenceFile]

    @property
    def filename(self) -> str:
        return f"voxwarden-alert-{self.alert_id}.zip"


def collect_export(s: Session, evidence: EvidenceStore, tenant_id: str, alert_id: str,
                   exported_by: str) -> ExportBundle:
    """Gather the alert's records (404 for another tenant's alert); call after auditing the export itself."""
    a = get_scoped(s, Alert, tenant_id, alert_id)
    room = get_scoped(s, Room, tenant_id, a.room_id)
    rs = get_scoped(s, RoomSession, tenant_id, a.session_id) if a.session_id else None
    case = get_scoped(s, Case, tenant_id, a.case_id) if a.case_id else None
    ev_rows = alert_evidence(s, tenant_id, a)
    windows: list[dict[str, Any]] = []
    checks: list[dict[str, Any]] = []
    if rs is not None:
        q = select(WindowScore.seq, WindowScore.start, WindowScore.end, WindowScore.score, WindowScore.probability)
        q = q.where(WindowScore.tenant_id == tenant_id, WindowScore.session_id == rs.id).order_by(WindowScore.seq)
        windows = [{"seq": w.seq, "start": w.start, "end": w.end, "score": w.score, "probability": w.probability}
                   for w in s.execute(q)]
        checks = [{"start": c.start, "end": c.end, "result": c.result, "payload": c.payload,
                   "confidence": c.confidence, "reason": c.reason, "created_at": _t(c.created_at)}
                  for c in room_repo.watermark_checks(s, tenant_id, rs.id)]
    targets = {a.id} | {e.id for e in ev_rows} | ({case.id} if case else set())
    audit_q = (select(AuditLog).where(AuditLog.tenant_id == tenant_id, AuditLog.target_id.in_(sorted(targets)))
               .order_by(AuditLog.seq))
    audit = [_row(r, _AUDIT) for r in s.scalars(audit_q)]
    head = s.execute(select(AuditLog.seq, AuditLog.hash).order_by(AuditLog.seq.desc()).limit(1)).first()
    alert_doc = _row(a, _ALERT)
    alert_doc["room"] = _row(room, _ROOM)
    alert_doc["session"] = _row(rs, _SESSION) if rs else None
    case_doc = None
    if case is not None:
        case_doc = _row(case, _CASE)
        case_doc["notes"] = [_row(n, _NOTE) for n in case_repo.notes(s, tenant_id, case.id)]
    files, names = [], set()
    for e in ev_rows:
        ref = ref_of(e)
        name = f"evidence/{e.sha256}.{ref.suffix}"
        if name not in names:
            names.add(name)
            files.append(EvidenceFile(name, evidence.abspath(ref), e.sha256, e.size))
    docs = {
        "alert.json": alert_doc,
        "case.json": case_doc,
        "windows.json": windows,
        "watermark_checks.json": checks,
        "evidence.json": [dict(_row(e, _EVIDENCE), file=f"evidence/{e.sha256}.{ref_of(e).suffix}") for e in ev_rows],
        "audit.json": {
            "note": ("entries whose target is this alert, its case or its evidence; each hash covers the entry and "
                     "prev_hash (voxwarden.store.audit.compute_hash); head is the chain's last entry at export"),
            "head": {"seq": head[0], "hash": head[1]} if head else None,
            "entries": audit,
        },
    }
    return ExportBundle(a.id, tenant_id, exported_by, datetime.now(UTC), docs, files)


class _Pipe(io.RawIOBase):
    """A write-only, non-seekable sink whose bytes are taken out as they come (zipfile streams into it)."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._pos = 0

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        data = bytes(b)
        self._chunks.append(data)
        self._pos += len(data)
        return len(data)

    def tell(self) -> int:
        return self._pos

    def take(self) -> bytes:
        out = b"".join(self._chunks)
        self._chunks.clear()
        return out


def stream_zip(bundle: ExportBundle) -> Iterator[bytes]:
    """Yield the zip's bytes while writing it; hashes are computed on the bytes written."""
    pipe = _Pipe()
    manifest: list[dict[str, Any]] = []
    with zipfile.ZipFile(pipe, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, doc in bundle.documents.items():
            data = json.dumps(doc, indent=2, ensure_ascii=False, sort_keys=True, default=str).encode("utf-8")
            zf.writestr(name, data)
            manifest.append({"name": name, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)})
            yield pipe.take()
        for f in bundle.files:
            h, size = hashlib.sha256(), 0
            try:
                with open(f.path, "rb") as src, zf.open(f.name, "w") as dst:
                    while chunk := src.read(_CHUNK):
                        h.update(chunk)
                        size += len(chunk)
                        dst.write(chunk)
                        yield pipe.take()
            except FileNotFoundError:
                manifest.append({"name": f.name, "sha256": None, "size": 0, "recorded_sha256": f.recorded_sha256,
                                 "intact": False, "error": "file missing from the evidence store"})
                continue
            digest = h.hexdigest()
            manifest.append({"name": f.name, "sha256": digest, "size": size, "recorded_sha256": f.recorded_sha256,
                             "intact": digest == f.recorded_sha256 and size == f.size})
        doc = {"format": EXPORT_FORMAT, "alert_id": bundle.alert_id, "tenant_id": bundle.tenant_id,
               "exported_by": bundle.exported_by, "exported_at": bundle.exported_at.isoformat(),
               "files": manifest}
        zf.writestr("manifest.json", json.dumps(doc, indent=2, sort_keys=True).encode("utf-8"))
        sums = "".join(f"{m['sha256']}  {m['name']}\n" for m in manifest if m["sha256"])
        zf.writestr("SHA256SUMS", sums.encode("ascii"))
    yield pipe.take()
