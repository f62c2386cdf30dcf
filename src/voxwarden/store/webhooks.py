"""Outgoing webhook deliveries: an outbox written in the same transaction as the event, retried with
exponential backoff, dead-lettered after `max_attempts`. `(tenant, url, event_id)` is unique, so an
event re-emitted after a crash is queued once."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from voxwarden.store.columns import as_utc, utcnow
from voxwarden.store.errors import ConflictError, InvalidInputError
from voxwarden.store.models import WebhookDelivery
from voxwarden.store.repo import Saved, check_text, get_or_create, get_scoped, normalise_json

BACKOFF_BASE = timedelta(seconds=30)
BACKOFF_CAP = timedelta(hours=6)


def enqueue_delivery(
    session: Session,
    tenant_id: str,
    url: str,
    event_type: str,
    event_id: str,
    payload: dict[str, Any],
    *,
    max_attempts: int = 8,
    now: datetime | None = None,
) -> Saved[WebhookDelivery]:
    """Queue one event for one endpoint (once per event id)."""
    check_text(url, 2000, "url", required=True)
    if not url.lower().startswith(("https://", "http://")):
        raise InvalidInputError("webhook url must be http(s)")
    check_text(event_type, 100, "event_type", required=True)
    check_text(event_id, 200, "event_id", required=True)
    if not 1 <= max_attempts <= 100:
        raise InvalidInputError("max_attempts must be 1-100")
    row, created = get_or_create(
        session,
        WebhookDelivery,
        lookup={"tenant_id": tenant_id, "url": url, "event_id": event_id},
        values={
            "event_type": event_type,
            "payload": normalise_json(payload, "payload"),
            "max_attempts": max_attempts,
            "next_try_at": as_utc(now) if now else utcnow(),
        },
    )
    return Saved(row, created)


def due(session: Session, *, now: datetime | None = None, limit: int = 100) -> list[WebhookDelivery]:
    """Pending deliveries whose next try is due, oldest first (row-locked on PostgreSQL)."""
    now = as_utc(now) if now else utcnow()
    q = (
        select(WebhookDelivery)
        .where(WebhookDelivery.status == "pending", WebhookDelivery.next_try_at <= now)
        .order_by(WebhookDelivery.next_try_at, WebhookDelivery.id)
        .limit(max(1, min(limit, 10_000)))
    )
    if session.get_bind().dialect.name == "postgresql":
        q = q.with_for_update(skip_locked=True)
    return list(session.scalars(q))


def backoff(attempts: int) -> timedelta:
    """Wait before try number `attempts + 1`: 30 s, 60 s, 120 s, ... capped at 6 h."""
    return min(BACKOFF_BASE * (2 ** max(0, min(attempts - 1, 20))), BACKOFF_CAP)


def record_success(
    session: Session, d: WebhookDelivery, *, status_code: int, now: datetime | None = None
) -> WebhookDelivery:
    """The endpoint accepted the event."""
    d.attempts += 1
    d.status, d.last_status_code, d.last_error = "delivered", status_code, None
    d.delivered_at = as_utc(now) if now else utcnow()
    return d


def record_failure(
    session: Session,
    d: WebhookDelivery,
    *,
    error: str,
    status_code: int | None = None,
    now: datetime | None = None,
) -> WebhookDelivery:
    """A failed try: schedule the next with backoff, or dead-letter after `max_attempts`."""
    now = as_utc(now) if now else utcnow()
    d.attempts += 1
    d.last_status_code, d.last_error = status_code, (error or "")[:10_000]
    if d.attempts >= d.max_attempts:
        d.status = "dead"
    else:
        d.next_try_at = now + backoff(d.attempts)
    return d


def dead_letters(session: Session, tenant_id: str, *, limit: int = 100) -> list[WebhookDelivery]:
    q = select(WebhookDelivery).where(
        WebhookDelivery.tenant_id == tenant_id, WebhookDelivery.status == "dead"
    )
    return list(session.scalars(q.order_by(WebhookDelivery.created_at).limit(limit)))


def retry_dead(
    session: Session, tenant_id: str, delivery_id: str, *, now: datetime | None = None
) -> WebhookDelivery:
    """Put a dead-lettered delivery back in the queue with a fresh attempt budget."""
    d = get_scoped(session, WebhookDelivery, tenant_id, delivery_id)
    if d.status != "dead":
        raise ConflictError(f"delivery {delivery_id} is {d.status}, not dead")
    d.status, d.attempts, d.next_try_at = "pending", 0, as_utc(now) if now else utcnow()
    return d
