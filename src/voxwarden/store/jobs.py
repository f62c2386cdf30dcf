"""Background jobs for long uploads: queued → running → done | failed.

A worker `claim`s the oldest queued job with a lease; if it crashes, `requeue_expired` puts jobs whose
lease ran out back in the queue (up to `max_attempts`), so no upload is lost or processed twice at once.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from voxwarden.store.columns import as_utc, utcnow
from voxwarden.store.errors import ConflictError, InvalidInputError
from voxwarden.store.models import Job
from voxwarden.store.repo import Saved, check_text, get_or_create, get_scoped, normalise_json

DEFAULT_LEASE = timedelta(minutes=10)


def enqueue(
    session: Session,
    tenant_id: str,
    kind: str,
    payload: dict[str, Any],
    *,
    idempotency_key: str | None = None,
) -> Saved[Job]:
    """Queue a job; the same idempotency key again returns the existing job."""
    check_text(kind, 32, "job kind", required=True)
    check_text(idempotency_key, 200, "idempotency_key")
    values = {"kind": kind, "status": "queued", "payload": normalise_json(payload, "payload")}
    if idempotency_key is None:
        job = Job(tenant_id=tenant_id, **values)
        session.add(job)
        session.flush()
        return Saved(job, True)
    job, created = get_or_create(
        session, Job, lookup={"tenant_id": tenant_id, "idempotency_key": idempotency_key}, values=values
    )
    return Saved(job, created)


def get_job(session: Session, tenant_id: str, job_id: str) -> Job:
    return get_scoped(session, Job, tenant_id, job_id)


def claim(
    session: Session, worker: str, *, now: datetime | None = None, lease: timedelta = DEFAULT_LEASE
) -> Job | None:
    """Take the oldest queued job (any tenant) for `worker`, or None. Safe with concurrent workers."""
    now = as_utc(now) if now else utcnow()
    check_text(worker, 200, "worker", required=True)
    q = select(Job).where(Job.status == "queued").order_by(Job.created_at, Job.id).limit(1)
    if session.get_bind().dialect.name == "postgresql":
        q = q.with_for_update(skip_locked=True)
    job = session.scalars(q).first()
    if job is None:
        return None
    job.status, job.worker, job.lease_until = "running", worker, now + lease
    job.started_at = now
    job.attempts += 1
    session.flush()
    return job


def heartbeat(
    session: Session,
    job: Job,
    *,
    progress: float | None = None,
    now: datetime | None = None,
    lease: timedelta = DEFAULT_LEASE,
) -> None:
    """Extend the lease of a running job and record progress in [0, 1]."""
    if job.status != "running":
        raise ConflictError(f"job {job.id} is {job.status}, not running")
    now = as_utc(now) if now else utcnow()
    job.lease_until = now + lease
    if progress is not None:
        if not 0.0 <= progress <= 1.0:
            raise InvalidInputError("progress must be within [0, 1]")
        job.progress = progress


def complete(session: Session, job: Job, *, scan_id: str | None = None, now: datetime | None = None) -> None:
    """Mark a running job done (optionally pointing at the scan it produced)."""
    if job.status != "running":
        raise ConflictError(f"job {job.id} is {job.status}, not running")
    job.status, job.progress, job.scan_id = "done", 1.0, scan_id
    job.finished_at, job.lease_until = (as_utc(now) if now else utcnow()), None


def fail(session: Session, job: Job, error: dict[str, str], *, now: datetime | None = None) -> None:
    """Mark a running job failed with a typed error dict (`AudioError.to_dict()` etc.)."""
    if job.status != "running":
        raise ConflictError(f"job {job.id} is {job.status}, not running")
    job.status, job.error = "failed", normalise_json(error, "error")
    job.finished_at, job.lease_until = (as_utc(now) if now else utcnow()), None


def requeue_expired(session: Session, *, now: datetime | None = None, max_attempts: int = 3) -> int:
    """Return running jobs whose lease expired to the queue (or fail them after `max_attempts`)."""
    now = as_utc(now) if now else utcnow()
    expired = (Job.status == "running") & (Job.lease_until < now)
    failed = session.execute(
        update(Job)
        .where(expired, Job.attempts >= max_attempts)
        .values(
            status="failed",
            finished_at=now,
            lease_until=None,
            error={"type": "worker_lost", "message": "worker stopped responding too often"},
        )
    ).rowcount
    back = session.execute(
        update(Job).where(expired).values(status="queued", worker=None, lease_until=None)
    ).rowcount
    return int(back or 0) + int(failed or 0)
