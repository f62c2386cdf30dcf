"""``/v1/scans`` (upload → detector → stored, audited result) and ``/v1/verify`` (upload → label,
watermark and detector verdict).

Uploads are read into memory up to the size limit (413 beyond it) and hashed; the client's file name is
only ever stored as text, never used as a path: `verify` writes the bytes to a fresh temp directory
under their sha256. Scoring runs in worker threads (`asyncio.to_thread`), at most
`Settings.max_concurrent_scans` at once. An `Idempotency-Key` makes a retry return the stored result
instead of scoring again (same key, other bytes → 409). An upload longer than `Settings.sync_max_seconds`
(declared duration) or larger than `sync_max_bytes`, or any upload with ``?mode=async``, is spooled and
becomes a job (202 + ``Location: /v1/jobs/{id}``; see `voxwarden.api.jobs_worker`). `verify` uses the
tenant's own watermark key once the tenant has one (``/v1/mark/embed``), else the public demo key.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Header, Query, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse
from sqlalchemy import select

from voxwarden.api.auth import Principal, audit_context, require
from voxwarden.api.errors import ApiError
from voxwarden.api.jobs_worker import SCAN_KIND, VERIFY_KIND, enqueue_upload, find_job_by_key, wants_job
from voxwarden.api.responses import JobBody
from voxwarden.api.scan_evidence import attach_scan_evidence, evidence_store_of, scan_evidence
from voxwarden.audio.errors import AudioError
from voxwarden.live.evidence import EvidenceClip
from voxwarden.store import AuditContext, ConflictError, Store, audit
from voxwarden.store import evidence as evidence_repo
from voxwarden.store import scans as scan_repo
from voxwarden.store.models import Scan

router = APIRouter(prefix="/v1", tags=["scans"])
log = logging.getLogger("voxwarden.api")

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
          key: str | None, evidence: list[EvidenceClip] | None = None) -> tuple[dict[str, Any], bool]:
    """Record the scan, its evidence audio (a flagged upload, see `api.scan_evidence`) and its audit entry
    in one transaction."""
    with store.session() as s:
        saved = scan_repo.record_scan(s, ctx.tenant_id or "", result, sha256=sha, size=size, name=name,
                                      idempotency_key=key, submitted_by=ctx.actor)
        if saved.created and evidence:
            attach_scan_evidence(s, evidence_store_of(store), ctx.tenant_id or "", saved.row.id, evidence)
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


@router.post("/scans", status_code=201, summary="Scan an uploaded audio file for synthetic speech",
             responses={200: {"description": "Idempotent replay: the scan stored for this Idempotency-Key"},
                        202: {"description": "A long upload became a job: poll its Location (/v1/jobs/{id})",
                              "model": JobBody}})
async def create_scan(
    request: Request,
    file: Annotated[UploadFile, File(description="Audio or video file (any common container)")],
    principal: Annotated[Principal, Depends(require("scan"))],
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
    mode: Annotated[Literal["auto", "sync", "async"], Query(
        description="auto: a job (202) when the upload is longer than sync_max_seconds or larger than "
                    "sync_max_bytes, else scored now (201); sync / async: always one way")] = "auto",
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
            job = await asyncio.to_thread(find_job_by_key, state.store, ctx, key, sha, kind=SCAN_KIND)
            if job is not None:  # this key already made a job: the same job again, whatever its state
                return _job_response(job, created=False)
            replay = await asyncio.to_thread(_replay, state.store, ctx, key, sha)
            if replay is not None:
                return JSONResponse(replay, status_code=200, headers={"Idempotent-Replayed": "true"})
        duration = None
        go_async = mode == "async"
        if mode == "auto":
            go_async, duration = await asyncio.to_thread(wants_job, data, state.settings.sync_max_seconds,
                                                         state.settings.sync_max_bytes)
        if go_async:
            return await _enqueue(request, ctx, data, sha=sha, name=name, key=key, duration=duration,
                                  kind=SCAN_KIND)
        try:
            async with state.scan_slots:
                clip = await asyncio.to_thread(state.detector.decode, data)
                result = await asyncio.to_thread(state.detector.score_decoded, clip)
        except AudioError as e:
            state.metrics.rejected.labels(e.code).inc()
            await asyncio.to_thread(_audit_rejected, state.store, ctx, "scan.rejected", sha, len(data), e.to_dict())
            raise
        clips = await asyncio.to_thread(scan_evidence, result, clip)  # [] unless flagged
        body, created = await asyncio.to_thread(_save, state.store, ctx, result, sha, len(data), name, key, clips)
    finally:
        if lock is not None:
            lock.release()
    if created:
        state.metrics.scans.labels(str(body["decision"])).inc()
    headers = {} if created else {"Idempotent-Replayed": "true"}
    return JSONResponse(body, status_code=201 if created else 200, headers=headers)


async def _enqueue(request: Request, ctx: AuditContext, data: bytes, *, sha: str, name: str | None,
                   key: str | None, duration: float | None, kind: str,
                   params: dict[str, Any] | None = None) -> JSONResponse:
    """Spool the upload, queue a job of `kind` and answer 202 (503 when the spool cannot be written)."""
    state = request.app.state
    try:
        job, created = await asyncio.to_thread(
            enqueue_upload, state.store, state.settings.data_dir / "spool", ctx, data, sha=sha, name=name,
            key=key, declared_duration=duration, kind=kind, params=params)
    except OSError as e:  # disk full, read-only data dir: the server's trouble, say so without paths
        log.error("spool write failed: %s", e)
        raise ApiError(503, "spool_unavailable", "cannot store the upload for a job right now") from e
    if created:
        state.metrics.jobs.labels("queued").inc()
        state.jobs.wake()
    return _job_response(job, created=created)


async def maybe_job(request: Request, ctx: AuditContext, data: bytes, *, sha: str, name: str | None,
                    key: str | None, mode: str, kind: str, params: dict[str, Any]) -> JSONResponse | None:
    """For the mark routes: the 202 answer when this upload is (or already was, by its key) a job, else None
    (then the route answers synchronously)."""
    key = _check_idempotency_key(key)
    if key is not None:
        job = await asyncio.to_thread(find_job_by_key, request.app.state.store, ctx, key, sha, kind=kind)
        if job is not None:
            return _job_response(job, created=False)
    go_async, duration = mode == "async", None
    if mode == "auto":
        settings = request.app.state.settings
        go_async, duration = await asyncio.to_thread(wants_job, data, settings.sync_max_seconds,
                                                     settings.sync_max_bytes)
    if not go_async:
        return None
    return await _enqueue(request, ctx, data, sha=sha, name=name, key=key, duration=duration, kind=kind,
                          params=params)


def _job_response(job: dict[str, Any], *, created: bool) -> JSONResponse:
    headers = {"Location": f"/v1/jobs/{job['id']}"}
    if job["status"] in ("queued", "running"):
        headers["Retry-After"] = "2"
    if not created:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(job, status_code=202, headers=headers)


@router.get("/scans/{scan_id}", summary="One stored scan of the caller's tenant")
def get_scan(
    request: Request, scan_id: str, principal: Annotated[Principal, Depends(require("scan"))]
) -> dict[str, Any]:
    if len(scan_id) > 64:
        raise ApiError(404, "not_found", "scan not found")
    with request.app.state.store.session() as s:
        return scan_to_dict(scan_repo.get_scan(s, principal.tenant_id, scan_id))


def _evidence_json(row: Any) -> dict[str, Any]:
    return {"id": row.id, "sha256": row.sha256, "size": row.size, "media_type": row.media_type,
            "start": row.start, "end": row.end, "created_at": row.created_at.isoformat()}


@router.get("/scans/{scan_id}/evidence", summary="The audio a flagged scan kept as evidence (list)")
def list_scan_evidence(
    request: Request, scan_id: str, principal: Annotated[Principal, Depends(require("scan"))]
) -> dict[str, Any]:
    """What a flagged upload kept (the whole file up to 30 s, else its flagged segments): hashes and spans."""
    if len(scan_id) > 64:
        raise ApiError(404, "not_found", "scan not found")
    with request.app.state.store.session() as s:
        scan_repo.get_scan(s, principal.tenant_id, scan_id)  # 404 for another tenant's or a missing scan
        rows = evidence_repo.evidence_for(s, principal.tenant_id, scan_id=scan_id)
        return {"scan_id": scan_id, "evidence": [_evidence_json(r) for r in rows]}


@router.get("/scans/{scan_id}/evidence/{evidence_id}", summary="One evidence file of a scan (audio bytes)",
            response_class=FileResponse, responses={200: {"content": {"audio/wav": {}}}})
def get_scan_evidence(
    request: Request, scan_id: str, evidence_id: str, principal: Annotated[Principal, Depends(require("scan"))]
) -> FileResponse:
    """The file, checked against its recorded sha256 first (409 when it no longer matches); audited."""
    if len(scan_id) > 64 or len(evidence_id) > 64:
        raise ApiError(404, "not_found", "evidence not found")
    store = request.app.state.store
    with store.session() as s:
        scan_repo.get_scan(s, principal.tenant_id, scan_id)
        row = next((r for r in evidence_repo.evidence_for(s, principal.tenant_id, scan_id=scan_id)
                    if r.id == evidence_id), None)
        if row is None:
            raise ApiError(404, "not_found", "evidence not found")
        ref, media = evidence_repo.ref_of(row), row.media_type or "application/octet-stream"
        audit.record(s, audit_context(request, principal), "evidence.download", target_type="evidence",
                     target_id=row.id, details={"sha256": row.sha256, "scan_id": scan_id})
    path = store.evidence.abspath(ref)
    if not path.is_file():
        raise ApiError(404, "not_found", f"evidence file {ref.sha256} is missing from the evidence store")
    if not store.evidence.verify(ref):
        raise ApiError(409, "conflict", f"evidence file {ref.sha256} does not match its recorded hash")
    return FileResponse(path, media_type=media, headers={"X-Evidence-SHA256": ref.sha256,
                                                         "Cache-Control": "private, no-store"})


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


def tenant_verifier(state: Any, tenant_id: str) -> Any:
    """The verifier for a tenant: its own watermark key once it has one (mark/embed), else the demo key."""
    if not state.tenant_keys.has_watermark_key(tenant_id):
        return state.verifier
    from voxwarden.mark.verify import Verifier

    try:
        return Verifier(detector=state.detector, marker=state.tenant_keys.marker(tenant_id))
    except (OSError, ValueError) as e:  # a damaged key file: still verify labels and the detector
        log.error("verify: tenant watermark key unusable, using the demo key: %s", e)
        return state.verifier


def verify_path(verifier: Any, path: Path, shown: str) -> dict[str, Any]:
    """Verify a file of ours and scrub its path from the answer (the client sees only `shown`)."""
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


def rejected_file(verdict: dict[str, Any]) -> dict[str, str] | None:
    """The audio error when a verdict says the upload is not usable audio (→ 422), else None."""
    err = verdict.get("error")
    if verdict["verdict"] == "error" and isinstance(err, dict) and err.get("type") in _FILE_ERRORS:
        return {"type": str(err["type"]), "message": str(err.get("message", ""))}
    return None


def _verify_file(verifier: Any, data: bytes, sha: str, shown: str) -> dict[str, Any]:
    """Write the bytes under their hash in a fresh temp dir, verify, and scrub the temp path from the answer."""
    with tempfile.TemporaryDirectory(prefix="voxwarden-upload-") as tmp:
        path = Path(tmp) / f"{sha}.upload"
        path.write_bytes(data)
        return verify_path(verifier, path, shown)


@router.post("/verify", tags=["verify"], summary="Check an upload's AI label, watermark and detector verdict",
             responses={202: {"description": "A long upload became a verify job: poll its Location "
                                             "(/v1/jobs/{id}); the verdict is its result", "model": JobBody}})
async def verify_upload(
    request: Request,
    file: Annotated[UploadFile, File(description="Audio file to verify")],
    principal: Annotated[Principal, Depends(require("scan", "mark"))],
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", description=(
        "For verify jobs: the same key again returns the same job"))] = None,
    mode: Annotated[Literal["auto", "sync", "async"], Query(
        description="auto: a job (202) for long or large uploads, as for scans; sync / async: always one way"
    )] = "auto",
) -> JSONResponse:
    state = request.app.state
    key = _check_idempotency_key(idempotency_key)
    data = await read_upload(file, state.settings.max_upload_bytes)
    sha = hashlib.sha256(data).hexdigest()
    ctx = audit_context(request, principal)
    shown = display_name(file.filename) or "upload"
    if key is not None:
        job = await asyncio.to_thread(find_job_by_key, state.store, ctx, key, sha, kind=VERIFY_KIND)
        if job is not None:
            return _job_response(job, created=False)
    go_async, duration = mode == "async", None
    if mode == "auto":
        go_async, duration = await asyncio.to_thread(wants_job, data, state.settings.sync_max_seconds,
                                                     state.settings.sync_max_bytes)
    if go_async:
        return await _enqueue(request, ctx, data, sha=sha, name=shown, key=key, duration=duration,
                              kind=VERIFY_KIND)
    verifier = await asyncio.to_thread(tenant_verifier, state, principal.tenant_id)
    async with state.scan_slots:
        verdict = await asyncio.to_thread(_verify_file, verifier, data, sha, shown)
    state.metrics.verifications.labels(verdict["verdict"]).inc()
    err = rejected_file(verdict)
    if err is not None:
        await asyncio.to_thread(_audit_rejected, state.store, ctx, "verify.rejected", sha, len(data), err)
        return JSONResponse(err, status_code=422)

    def _record() -> None:
        with state.store.session() as s:
            audit.record(s, ctx, "verify", target_type="upload", target_id=sha,
                         details={"sha256": sha, "size": len(data), "verdict": verdict["verdict"], "name": shown})

    await asyncio.to_thread(_record)
    verdict["sha256"] = sha
    return JSONResponse(verdict, status_code=200)
