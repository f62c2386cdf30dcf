"""Alerts raised by live rules. Idempotent by a natural key (room, speaker, rule, start in ms), so the
live pipeline replaying windows after a crash re-raises the same alert without duplicating it."""

from __future__ import annotations

import hashlib
import json
import math
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from voxwarden.store.columns import as_utc, utcnow
from voxwarden.store.errors import InvalidInputError
from voxwarden.store.models import ALERT_STATUSES, Alert
from voxwarden.store.repo import Saved, check_choice, check_text, get_or_create, get_scoped, normalise_json
from voxwarden.store.rooms import get_room, get_session


def alert_key(room_id: str, speaker: str, rule: str, start: float) -> str:
    """The natural key of an alert: sha256 of (room, speaker, rule, start rounded to the millisecond)."""
    blob = json.dumps([room_id, speaker, rule, round(float(start) * 1000)], ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def review_queue(details: dict[str, Any] | None) -> str | None:
    """The review queue a rule's ``review`` action names (the first one), or None when none asks for review."""
    for a in (details or {}).get("actions") or ():
        if isinstance(a, dict) and a.get("type") == "review":
            q = a.get("queue")
            return str(q)[:100] if q else "default"
    return None


def raise_alert(
    session: Session,
    tenant_id: str,
    room_id: str,
    speaker: str,
    *,
    start: float,
    end: float,
    score: float,
    rule: str,
    session_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> Saved[Alert]:
    """Store an alert once; the same (room, speaker, rule, start) again returns the stored alert."""
    check_text(speaker, 200, "speaker", required=True)
    check_text(rule, 100, "rule", required=True)
    try:
        s, e, sc = float(start), float(end), float(score)
    except (TypeError, ValueError) as err:
        raise InvalidInputError("start, end and score must be numbers") from err
    if not (math.isfinite(s) and math.isfinite(e) and math.isfinite(sc)) or e < s or s < 0:
        raise InvalidInputError("alert needs finite 0 <= start <= end and a finite score")
    get_room(session, tenant_id, room_id)
    if session_id is not None:
        get_session(session, tenant_id, session_id)
    row, created = get_or_create(
        session,
        Alert,
        lookup={"tenant_id": tenant_id, "natural_key": alert_key(room_id, speaker, rule, s)},
        values={
            "room_id": room_id,
            "session_id": session_id,
            "speaker": speaker,
            "start": s,
            "end": e,
            "score": sc,
            "rule": rule,
            "details": _with_queue(normalise_json(details or {}, "details")),
        },
    )
    return Saved(row, created)


def _with_queue(details: dict[str, Any]) -> dict[str, Any]:
    """`details` with ``review_queue`` set from its actions, so the review console can filter on one key."""
    q = review_queue(details)
    return {**details, "review_queue": q} if q is not None else details


def get_alert(session: Session, tenant_id: str, alert_id: str) -> Alert:
    return get_scoped(session, Alert, tenant_id, alert_id)


def set_status(
    session: Session, tenant_id: str, alert_id: str, status: str, *, now: datetime | None = None
) -> Alert:
    """Move an alert to open / acknowledged / resolved / dismissed."""
    a = get_alert(session, tenant_id, alert_id)
    a.status = check_choice(status, ALERT_STATUSES, "alert status")
    a.updated_at = as_utc(now) if now else utcnow()
    return a


def list_alerts(
    session: Session,
    tenant_id: str,
    *,
    status: str | None = None,
    room_id: str | None = None,
    since: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[Alert]:
    """Newest first."""
    q = select(Alert).where(Alert.tenant_id == tenant_id)
    if status is not None:
        q = q.where(Alert.status == check_choice(status, ALERT_STATUSES, "alert status"))
    if room_id is not None:
        q = q.where(Alert.room_id == room_id)
    if since is not None:
        q = q.where(Alert.created_at >= as_utc(since))
    q = q.order_by(Alert.created_at.desc(), Alert.id).limit(max(1, min(limit, 10_000))).offset(max(0, offset))
    return list(session.scalars(q))
