"""``/v1/jobs``: the status of long uploads that ``POST /v1/scans`` or ``/v1/verify`` turned into jobs.

``GET /v1/jobs/{id}`` gives status (queued, running, done, failed), a coarse progress, the attempts so far,
and when done the stored scan with its segments (scan jobs) or the verdict (verify jobs, ``result``); when
failed, the error. Tenant-scoped like every read: another tenant's job id is answered 404, exactly as a
missing one. Scan jobs need the ``scan`` scope; verify jobs, like ``POST /v1/verify``, ``scan`` or ``mark``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse
from sqlalchemy import select

from voxwarden.api.auth import Principal, require
from voxwarden.api.errors import ApiError
from voxwarden.api.jobs_worker import (
    MARK_KINDS,
    SCAN_KIND,
    VERIFY_KIND,
    job_to_dict,
    load_job,
    result_path,
)
from voxwarden.api.responses import JobBody, JobPage
from voxwarden.api.routes_mark import MEDIA_TYPES
from voxwarden.store import Store
from voxwarden.store.models import Job, Scan
from voxwarden.store.repo import get_scoped

router = APIRouter(prefix="/v1", tags=["jobs"])


def _kinds(principal: Principal) -> tuple[str, ...]:
    """Job kinds a key may read: as for the routes that made them (scan: `scan`; verify: `scan` or `mark`;
    mark jobs: `mark`)."""
    kinds: tuple[str, ...] = (VERIFY_KIND,)
    if principal.allows("scan"):
        kinds += (SCAN_KIND,)
    if principal.allows("mark"):
        kinds += MARK_KINDS
    return kinds


@router.get("/jobs/{job_id}", summary="A job's status, progress and (when done) its scan",
            response_model=None, responses={200: {"model": JobBody}})
async def get_job(
    request: Request, job_id: str, principal: Annotated[Principal, Depends(require("scan", "mark"))]
) -> dict[str, Any]:
    if len(job_id) > 64:
        raise ApiError(404, "not_found", "job not found")
    body = await asyncio.to_thread(load_job, request.app.state.store, principal.tenant_id, job_id)
    if body["kind"] not in _kinds(principal):
        raise ApiError(403, "forbidden", f"API key lacks the scope for {body['kind']} jobs")
    return body


def _job_file(store: Store, spool_dir: Path, tenant_id: str, job_id: str) -> tuple[str, Path, dict[str, Any]]:
    with store.session() as s:
        job = get_scoped(s, Job, tenant_id, job_id)
        kind, status, payload = job.kind, job.status, dict(job.payload or {})
        result = job.result if job.result is not None else payload.get("result")  # payload: rows before 0007
    info = (result or {}).get("file")
    path = result_path(spool_dir, payload)
    if status != "done" or path is None or not isinstance(info, dict):
        raise ApiError(404, "not_found", f"job {job_id} has no file (status {status}; only done embed and label "
                                         "jobs have one)")
    if not path.is_file():
        raise ApiError(404, "not_found", "the job's file has expired (kept for job_result_hours)")
    return kind, path, info


@router.get("/jobs/{job_id}/file", response_class=FileResponse, summary="A done mark job's output file",
            responses={200: {"description": "The marked or labelled audio", "content": {
                m: {"schema": {"type": "string", "format": "binary"}} for m in MEDIA_TYPES}}})
async def get_job_file(
    request: Request, job_id: str, principal: Annotated[Principal, Depends(require("mark"))]
) -> FileResponse:
    if len(job_id) > 64:
        raise ApiError(404, "not_found", "job not found")
    state = request.app.state
    kind, path, info = await asyncio.to_thread(_job_file, state.store, state.jobs.spool_dir, principal.tenant_id,
                                               job_id)
    if kind not in _kinds(principal):
        raise ApiError(403, "forbidden", f"API key lacks the scope for {kind} jobs")
    return FileResponse(path, media_type=str(info.get("media_type") or "application/octet-stream"),
                        filename=str(info.get("filename") or path.name),
                        headers={"X-Voxwarden-Sha256": str(info.get("sha256") or "")})


@router.get("/jobs", summary="The caller's tenant's jobs, newest first, paginated",
            response_model=None, responses={200: {"model": JobPage}})
def list_jobs(
    request: Request,
    principal: Annotated[Principal, Depends(require("scan", "mark"))],
    status: Annotated[Literal["queued", "running", "done", "failed"] | None, Query()] = None,
    limit: Annotated[int | None, Query(ge=1)] = None,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> dict[str, Any]:
    settings = request.app.state.settings
    n = min(limit or settings.page_size_default, settings.page_size_max)
    with request.app.state.store.session() as s:
        q = select(Job).where(Job.tenant_id == principal.tenant_id, Job.kind.in_(_kinds(principal)))
        if status is not None:
            q = q.where(Job.status == status)
        rows = list(s.scalars(q.order_by(Job.created_at.desc(), Job.id).limit(n + 1).offset(offset)))
        scan_ids = [r.scan_id for r in rows[:n] if r.scan_id]
        scans = {sc.id: sc for sc in s.scalars(select(Scan).where(Scan.id.in_(scan_ids),
                                                                  Scan.tenant_id == principal.tenant_id))}
        items = [job_to_dict(r, scans.get(r.scan_id) if r.scan_id else None) for r in rows[:n]]
    return {"items": items, "limit": n, "offset": offset, "next_offset": offset + n if len(rows) > n else None}
