"""The error responses every authenticated ``/v1`` route can give, declared once for the OpenAPI document.

Why: clients (and schemathesis) read the spec to learn which statuses to expect; every error body is the
same ``{"type", "message"}`` object (see `voxwarden.api.errors`), so it is described once and attached to
each router when the app includes it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel


class ErrorBody(BaseModel):
    """Every error: a stable machine-readable `type` and a human `message`."""

    type: str
    message: str


_WHY = {
    400: "Malformed request body (e.g. broken multipart framing)",
    401: "No, malformed, unknown, revoked or expired API key",
    403: "The key lacks the route's scope",
    404: "No such id for this tenant (another tenant's ids look the same)",
    409: "Conflict: e.g. an Idempotency-Key reused for other bytes",
    413: "Upload larger than max_upload_bytes",
    422: "Invalid parameters or form, or unusable audio (type names the audio error)",
    503: "Store unreachable or not migrated",
}

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": why} for code, why in _WHY.items()
}


class JobBody(BaseModel):
    """A job (``POST /v1/scans`` 202, ``GET /v1/jobs/{id}``): see docs/api.md "Jobs"."""

    id: str
    kind: str
    status: Literal["queued", "running", "done", "failed"]
    progress: float
    attempts: int
    created_at: str | None
    started_at: str | None
    finished_at: str | None
    idempotency_key: str | None
    name: str | None
    sha256: str | None
    size: int | None
    declared_duration: float | None
    scan_id: str | None
    scan: dict[str, Any] | None  # scan jobs: the stored scan, as GET /v1/scans/{id} gives it, once done
    result: dict[str, Any] | None  # verify jobs: the verdict, as POST /v1/verify gives it, once done
    error: dict[str, Any] | None  # {type, message} once failed (or the last retried error)


class JobPage(BaseModel):
    """``GET /v1/jobs``: newest first."""

    items: list[JobBody]
    limit: int
    offset: int
    next_offset: int | None
