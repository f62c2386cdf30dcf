"""File-scan results: one row per scanned upload, idempotent per tenant by `idempotency_key`."""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from voxwarden.store.columns import as_utc
from voxwarden.store.errors import ConflictError, InvalidInputError
from voxwarden.store.models import Scan
from voxwarden.store.repo import Saved, check_text, get_or_create, get_scoped, normalise_json

if TYPE_CHECKING:  # only the type: importing voxwarden.detect would load the detector stack
    from voxwarden.detect.result import ScanResult

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def _finite(x: float | None, what: str) -> float | None:
    if x is None:
        return None
    try:
        f = float(x)
    except (TypeError, ValueError) as e:
        raise InvalidInputError(f"{what} must be a number") from e
    if not math.isfinite(f):
        raise InvalidInputError(f"{what} must be finite, got {x!r}")
    return f


def record_scan(
    session: Session,
    tenant_id: str,
    result: ScanResult,
    *,
    sha256: str,
    size: int | None = None,
    name: str | None = None,
    idempotency_key: str | None = None,
    submitted_by: str | None = None,
) -> Saved[Scan]:
    """Store a detector result for an upload. The same idempotency key again returns the first row.

    Re-using a key for a *different* upload (other sha256) is a client bug: `ConflictError`.
    """
    sha = (sha256 or "").lower()
    if not _HEX64.match(sha):
        raise InvalidInputError("sha256 must be 64 hex characters")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        raise InvalidInputError("size must be a non-negative integer")
    check_text(idempotency_key, 200, "idempotency_key")
    check_text(submitted_by, 200, "submitted_by")
    shown = name if name is not None else result.path
    if shown is not None:
        shown = check_text(shown.replace("\x00", "?")[:1000], 1000, "name")
    d = result.to_dict()
    values = {
        "name": shown,
        "sha256": sha,
        "size": size,
        "score": _finite(result.score, "score"),
        "probability": _finite(result.probability, "probability"),
        "decision": check_text(result.decision, 32, "decision"),
        "threshold": _finite(result.threshold, "threshold"),
        "model": check_text(result.model, 200, "model"),
        "duration": _finite(result.duration, "duration"),
        "segments": normalise_json(d["segments"], "segments"),
        "source": normalise_json(result.source, "source") if result.source is not None else None,
        "error": normalise_json(result.error, "error") if result.error is not None else None,
        "submitted_by": submitted_by,
    }
    if idempotency_key is None:
        row = Scan(tenant_id=tenant_id, idempotency_key=None, **values)
        session.add(row)
        session.flush()
        return Saved(row, True)
    row, created = get_or_create(
        session, Scan, lookup={"tenant_id": tenant_id, "idempotency_key": idempotency_key}, values=values
    )
    if not created and row.sha256 != sha:
        raise ConflictError("idempotency key already used for a different upload")
    return Saved(row, created)


def get_scan(session: Session, tenant_id: str, scan_id: str) -> Scan:
    return get_scoped(session, Scan, tenant_id, scan_id)


def list_scans(
    session: Session,
    tenant_id: str,
    *,
    since: datetime | None = None,
    decision: str | None = None,
    sha256: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[Scan]:
    """Newest first, filtered by time, decision or upload hash."""
    q = select(Scan).where(Scan.tenant_id == tenant_id)
    if since is not None:
        q = q.where(Scan.created_at >= as_utc(since))
    if decision is not None:
        q = q.where(Scan.decision == decision)
    if sha256 is not None:
        q = q.where(Scan.sha256 == sha256.lower())
    q = q.order_by(Scan.created_at.desc(), Scan.id).limit(max(1, min(limit, 10_000))).offset(max(0, offset))
    return list(session.scalars(q))
