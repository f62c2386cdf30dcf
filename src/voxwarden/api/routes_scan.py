"""``/v1/scans`` (upload → detector → stored, audited result) and ``/v1/verify`` (upload → label,
watermark and detector verdict).

Uploads are read into memory up to the size limit (413 beyond it) and hashed; the client's file name is
only ever stored as text, never used as a path: `verify` writes the bytes to a fresh temp directory
under their sha256. Scoring runs in worker threads (`asyncio.to_thread`), at most
`Settings.max_concurrent_scans` at once. An `Idempotency-Key` makes a retry return the stored result
instead of scoring again (same key, other bytes → 409).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Header, Query, Request, UploadFile
from fastapi.responses import JSONResponse
from sqlalchemy import select

from voxwarden.api.auth import Principal, audit_context, require
from voxwarden.api.errors import ApiError
from voxwarden.audio.errors import AudioError
from voxwarden.store import AuditContext, ConflictError, Store, audit
from voxwarden.store import scans as scan_repo
from voxwarden.store.models import Scan

router = APIRouter(prefix="/v1", tags=["scans"])

CHUNK = 1 << 16
_IDEM_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# the file errors that mean "this upload is not usable audio" (→ 422); others are the server's problem
_FILE_ERRORS = {"unreadable", "empty_file", "not_media", "corrupt_media", "no_audio_stream", "too_long",
                "silence", "too_little_speech"}


def scan_to_dict(row: Scan) -> dict[str, Any]:
    """The JSON form of a stored scan."""
    return {
        "id": row.id,
        "created_at": row.created_at.isoformat().replace("+00:00", "Z") if row.created_at else None,
        "name": row.name,
        "sha256": row.sha256,
        "size": row.size,
        "idempotency_key": row.idempotency_key,
        "decision": row.decision,
        "score": row.score,
        "probability": row.probability,
        "threshold": row.threshold,
        "model": row.model,
        "duration": row.duration,
        "segments": row.segments,
        "source": row.source,
        "error": row.error,
    }


def display_name(filename: str | None) -> str | None:
    """The client's file name as inert text: last path component, no control characters, ≤ 255 chars."""
    if not filename:
        return None
    name = re.split(r"[\\/]", filename)[-1]
    name = _CONTROL.sub("?", name).strip()[:255]
    return name or None


async def read_upload(file: UploadFile, limit: int) -> bytes:
    """The whole upload, or 413 as soon as it exceeds `limit` bytes."""
    buf = bytearray()
    while True:
        chunk = await file.read(CHUNK)
        if not chunk:
            break
        buf += chunk
        if len(buf) > limit:
            raise ApiError(413, "too_large", f"upload larger than the limit of {limit} bytes")
    return bytes(buf)


def _check_idempotency_key(key: str | None) -> str | None:
    if key is None:
        return None
    if not _IDEM_KEY.match(key):
        raise ApiError(422, "invalid_request", "Idempotency-Key must be 1-200 printable ASCII characters")
    return key


# -- store work (sync; run in threads) ------------------------------------------------------------


def _replay(store: Store, ctx: AuditContext, key: str, sha: str) -> dict[str, Any] | None:
    """The stored scan for this idempotency key (audited as a replay), or None if there is none yet."""
    with store.session() as s:
        row = s.scalars(select(Scan).where(Scan.tenant_id == ctx.tenant_id, Scan.idempotency_key == key)).first()
        if row is None:
            return None
        if row.sha256 != sha:
            raise ConflictError("idempotency key already used for a different upload")
        audit.record(s, ctx, "scan.replay", target_type="scan", target_id=row.id,
                     details={"sha256": sha, "idempotency_key": key})
        return scan_to_dict(row)


def _save(store: Store, ctx: AuditContext, result: Any, sha: str, size: int, name: str | None,
          key: str | None) -> tuple[dict[str, Any], bool]:
    """Record the scan and its audit entry in one transaction."""
    with store.session() as s:
        saved = scan_repo.record_scan(s, ctx.tenant_id or "", result, sha256=sha, size=size, name=name,
                                      idempotency_key=key, submitted_by=ctx.actor)
        audit.record(s, ctx, "scan.create" if saved.created else "scan.replay", target_type="scan",
                     target_id=saved.row.id,
                     details={"sha256": sha, "size": size, "decision": saved.row.decision,
                              "idempotency_key": key})
        return scan_to_dict(saved.row), saved.created


def _audit_rejected(store: Store, ctx: AuditContext, action: str, sha: str, size: int, err: dict[str, str]) -> None:
    with store.session() as s:
        audit.record(s, ctx, action, target_type="upload", target_id=sha,
                     details={"sha256": sha, "size": size, "error": err})


# -- routes ---------------------------------------------------------------------------------------


@router.post("/scans", status_code=201, summary="Scan an uploaded audio file for synthetic speech")
async def create_scan(
    request: Request,
    file: Annotated[UploadFile, File(description="Audio or video file (any common container)")],
    principal: Annotated[Principal, Depends(require("scan"))],
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> JSONResponse:
    state = request.app.state
    key = _check_idempotency_key(idempotency_key)
    data = await read_upload(file, state.settings.max_upload_bytes)
    sha = hashlib.sha256(data).hexdigest()
    ctx = audit_context(request, principal)
    name = display_name(file.filename)

    lock: asyncio.Lock | None = None
    if key is not None:  # one request per (tenant, key) at a time in this process: a retry waits, not rescores
        lock_id = (principal.tenant_id, key)
        lock = state.idempotency_locks.get(lock_id)
        if lock is None:
            lock = asyncio.Lock()
            state.idempotency_locks[lock_id] = lock
        await lock.acquire()
    try:
        if key is not None:
            replay = await asyncio.to_thread(_replay, state.store, ctx, key, sha)
            if replay is not None:
                return JSONResponse(replay, status_code=200, headers={"Idempotent-Replayed": "true"})
        try:
            async with state.scan_slots:
                result = await asyncio.to_thread(state.detector.score, data)
        except AudioError as e:
            state.metrics.rejected.labels(e.code).inc()
            await asyncio.to_thread(_audit_rejected, state.store, ctx, "scan.rejected", sha, len(data), e.to_dict())
            raise
        body, created = await asyncio.to_thread(_save, state.store, ctx, result, sha, len(data), name, key)
    finally:
        if lock is not None:
            lock.release()
    if created:
        state.metrics.scans.labels(str(body["decision"])).inc()
    headers = {} if created else {"Idempotent-Replayed": "true"}
    return JSONResponse(body, status_code=201 if created else 200, headers=headers)


@router.get("/scans/{scan_id}", summary="One stored scan of the caller's tenant")
def get_scan(
    request: Request, scan_id: str, principal: Annotated[Principal, Depends(require("scan"))]
) -> dict[str, Any]:
    if len(scan_id) > 64:
        raise ApiError(404, "not_found", "scan not found")
    with request.app.state.store.session() as s:
        return scan_to_dict(scan_repo.get_scan(s, principal.tenant_id, scan_id))


@router.get("/scans", summary="The caller's tenant's scans, newest first, paginated")
def list_scans(
    request: Request,
    principal: Annotated[Principal, Depends(require("scan"))],
    limit: Annotated[int | None, Query(ge=1)] = None,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    decision: Annotated[str | None, Query(max_length=32)] = None,
    sha256: Annotated[str | None, Query(pattern=r"^[0-9a-fA-F]{64}$")] = None,
) -> dict[str, Any]:
    settings = request.app.state.settings
    n = min(limit or settings.page_size_default, settings.page_size_max)
    with request.app.state.store.session() as s:
        rows = scan_repo.list_scans(s, principal.tenant_id, decision=decision, sha256=sha256,
                                    limit=n + 1, offset=offset)
        items = [scan_to_dict(r) for r in rows[:n]]
    return {"items": items, "limit": n, "offset": offset,
            "next_offset": offset + n if len(rows) > n else None}


def _verify_file(verifier: Any, data: bytes, sha: str, shown: str) -> dict[str, Any]:
    """Write the bytes under their hash in a fresh temp dir, verify, and scrub the temp path from the answer."""
    with tempfile.TemporaryDirectory(prefix="voxwarden-upload-") as tmp:
        path = Path(tmp) / f"{sha}.upload"
        path.write_bytes(data)
        d = verifier.verify(path).to_dict()
    text = str(path)

    def scrub(x: Any) -> Any:
        if isinstance(x, str):
            return x.replace(text, shown)
        if isinstance(x, dict):
            return {k: scrub(v) for k, v in x.items()}
        if isinstance(x, list):
            return [scrub(v) for v in x]
        return x

    d = scrub(d)
    d["path"] = shown
    return d


@router.post("/verify", tags=["verify"], summary="Check an upload's AI label, watermark and detector verdict")
async def verify_upload(
    request: Request,
    file: Annotated[UploadFile, File(description="Audio file to verify")],
    principal: Annotated[Principal, Depends(require("scan", "mark"))],
) -> JSONResponse:
    state = request.app.state
    data = await read_upload(file, state.settings.max_upload_bytes)
    sha = hashlib.sha256(data).hexdigest()
    ctx = audit_context(request, principal)
    shown = display_name(file.filename) or "upload"
    async with state.scan_slots:
        verdict = await asyncio.to_thread(_verify_file, state.verifier, data, sha, shown)
    state.metrics.verifications.labels(verdict["verdict"]).inc()
    err = verdict.get("error")
    if verdict["verdict"] == "error" and isinstance(err, dict) and err.get("type") in _FILE_ERRORS:
        await asyncio.to_thread(_audit_rejected, state.store, ctx, "verify.rejected", sha, len(data), err)
        return JSONResponse({"type": err["type"], "message": str(err.get("message", ""))}, status_code=422)

    def _record() -> None:
        with state.store.session() as s:
            audit.record(s, ctx, "verify", target_type="upload", target_id=sha,
                         details={"sha256": sha, "size": len(data), "verdict": verdict["verdict"], "name": shown})

    await asyncio.to_thread(_record)
    verdict["sha256"] = sha
    return JSONResponse(verdict, status_code=200)
