"""Live rooms, speakers' sessions in them, and the detector's per-window scores.

A session keeps `last_ack_seq`: the highest window sequence number whose result is safely stored.
After a crash or reconnect the streamer resumes from `last_ack_seq + 1`; windows replayed anyway are
deduplicated by the `(session_id, seq)` unique key.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from voxwarden.store.columns import as_utc, utcnow
from voxwarden.store.errors import ConflictError, InvalidInputError
from voxwarden.store.models import WATERMARK_RESULTS, Room, RoomSession, WatermarkCheck, WindowScore
from voxwarden.store.repo import Saved, check_text, get_or_create, get_scoped, normalise_json


@dataclass(frozen=True)
class Peer:
    """Network origin and client traits of a stream (kept for the ≥ 6-month log duty)."""

    source_ip: str | None = None
    source_port: int | None = None
    dest_ip: str | None = None
    dest_port: int | None = None
    client: dict[str, Any] | None = None


def _port(p: int | None) -> int | None:
    if p is not None and (isinstance(p, bool) or not isinstance(p, int) or not 0 <= p <= 65535):
        raise InvalidInputError(f"bad port {p!r}")
    return p


def ensure_room(
    session: Session,
    tenant_id: str,
    external_id: str,
    *,
    name: str | None = None,
    policy: dict[str, Any] | None = None,
) -> Saved[Room]:
    """The tenant's room with the platform's id `external_id`, created on first sight."""
    check_text(external_id, 200, "room id", required=True)
    check_text(name, 200, "room name")
    return Saved(
        *get_or_create(
            session,
            Room,
            lookup={"tenant_id": tenant_id, "external_id": external_id},
            values={"name": name, "policy": normalise_json(policy or {}, "policy")},
        )
    )


def get_room(session: Session, tenant_id: str, room_id: str) -> Room:
    return get_scoped(session, Room, tenant_id, room_id)


def open_session(
    session: Session,
    tenant_id: str,
    room_id: str,
    speaker: str,
    *,
    external_id: str | None = None,
    codec: str | None = None,
    sample_rate: int | None = None,
    peer: Peer | None = None,
    started_at: datetime | None = None,
) -> Saved[RoomSession]:
    """Start (or, with the same `external_id`, resume) a speaker's session in a room."""
    get_room(session, tenant_id, room_id)
    check_text(speaker, 200, "speaker", required=True)
    check_text(external_id, 200, "session id")
    check_text(codec, 32, "codec")
    if sample_rate is not None and (not isinstance(sample_rate, int) or not 1000 <= sample_rate <= 384000):
        raise InvalidInputError(f"bad sample rate {sample_rate!r}")
    peer = peer or Peer()
    check_text(peer.source_ip, 45, "source_ip")
    check_text(peer.dest_ip, 45, "dest_ip")
    values = {
        "room_id": room_id,
        "speaker": speaker,
        "codec": codec,
        "sample_rate": sample_rate,
        "started_at": as_utc(started_at) if started_at else utcnow(),
        "last_ack_seq": -1,
        "source_ip": peer.source_ip,
        "source_port": _port(peer.source_port),
        "dest_ip": peer.dest_ip,
        "dest_port": _port(peer.dest_port),
        "client": normalise_json(peer.client, "client") if peer.client is not None else None,
    }
    if external_id is None:
        rs = RoomSession(tenant_id=tenant_id, **values)
        session.add(rs)
        session.flush()
        return Saved(rs, True)
    rs, created = get_or_create(
        session, RoomSession, lookup={"tenant_id": tenant_id, "external_id": external_id}, values=values
    )
    if not created and rs.room_id != room_id:
        raise ConflictError("session id already used in another room")
    return Saved(rs, created)


def get_session(session: Session, tenant_id: str, session_id: str) -> RoomSession:
    return get_scoped(session, RoomSession, tenant_id, session_id)


def ack(session: Session, tenant_id: str, session_id: str, seq: int) -> int:
    """Advance `last_ack_seq` to `seq` if higher (never backwards); returns the value now stored."""
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        raise InvalidInputError("seq must be a non-negative integer")
    session.execute(
        update(RoomSession)
        .where(
            RoomSession.id == session_id, RoomSession.tenant_id == tenant_id, RoomSession.last_ack_seq < seq
        )
        .values(last_ack_seq=seq)
    )
    return get_session(session, tenant_id, session_id).last_ack_seq


def end_session(
    session: Session, tenant_id: str, session_id: str, *, now: datetime | None = None
) -> RoomSession:
    """Close a session (idempotent: the first end time stays)."""
    rs = get_session(session, tenant_id, session_id)
    if rs.ended_at is None:
        rs.ended_at = as_utc(now) if now else utcnow()
    return rs


def record_window(
    session: Session,
    tenant_id: str,
    session_id: str,
    seq: int,
    start: float,
    end: float,
    score: float,
    *,
    probability: float | None = None,
) -> Saved[WindowScore]:
    """Store one window's score; the same `(session, seq)` again returns the stored row."""
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        raise InvalidInputError("seq must be a non-negative integer")
    vals = [float(v) for v in (start, end, score)]
    if not all(math.isfinite(v) for v in vals) or vals[1] < vals[0] or vals[0] < 0:
        raise InvalidInputError("window needs finite 0 <= start <= end and a finite score")
    if probability is not None and not (math.isfinite(probability) and 0.0 <= probability <= 1.0):
        raise InvalidInputError("probability must be within [0, 1]")
    get_session(session, tenant_id, session_id)
    return Saved(
        *get_or_create(
            session,
            WindowScore,
            lookup={"session_id": session_id, "seq": seq},
            values={
                "tenant_id": tenant_id,
                "start": vals[0],
                "end": vals[1],
                "score": vals[2],
                "probability": probability,
            },
        )
    )


def windows(session: Session, tenant_id: str, session_id: str, *, after_seq: int = -1) -> list[WindowScore]:
    """Window scores of a session in sequence order, after `after_seq`."""
    q = (
        select(WindowScore)
        .where(WindowScore.tenant_id == tenant_id, WindowScore.session_id == session_id)
        .where(WindowScore.seq > after_seq)
        .order_by(WindowScore.seq)
    )
    return list(session.scalars(q))


def record_watermark_check(
    session: Session,
    tenant_id: str,
    session_id: str,
    start: float,
    end: float,
    result: str,
    *,
    payload: str | None = None,
    confidence: float | None = None,
    seconds: float | None = None,
    reason: str | None = None,
) -> Saved[WatermarkCheck]:
    """Store one watermark check of a session span (`result`: present / absent / error / skipped); the same
    `(session, start, end)` again returns the stored row."""
    if result not in WATERMARK_RESULTS:
        raise InvalidInputError(f"result must be one of {', '.join(WATERMARK_RESULTS)}")
    a, b = float(start), float(end)
    if not (math.isfinite(a) and math.isfinite(b)) or a < 0 or b < a:
        raise InvalidInputError("check needs finite 0 <= start <= end")
    for name, v in (("confidence", confidence), ("seconds", seconds)):
        if v is not None and not math.isfinite(float(v)):
            raise InvalidInputError(f"{name} must be finite")
    if payload is not None and (len(payload) > 64 or any(c not in "0123456789abcdef" for c in payload)):
        raise InvalidInputError("payload must be at most 64 lower-case hex digits")
    get_session(session, tenant_id, session_id)
    return Saved(
        *get_or_create(
            session,
            WatermarkCheck,
            lookup={"session_id": session_id, "start": a, "end": b},
            values={
                "tenant_id": tenant_id,
                "result": result,
                "payload": payload,
                "confidence": None if confidence is None else float(confidence),
                "seconds": None if seconds is None else float(seconds),
                "reason": None if reason is None else str(reason)[:500],
            },
        )
    )


def watermark_checks(session: Session, tenant_id: str, session_id: str) -> list[WatermarkCheck]:
    """A session's watermark checks in stream order."""
    q = (
        select(WatermarkCheck)
        .where(WatermarkCheck.tenant_id == tenant_id, WatermarkCheck.session_id == session_id)
        .order_by(WatermarkCheck.start, WatermarkCheck.end)
    )
    return list(session.scalars(q))


def active_sessions(session: Session, tenant_id: str, room_id: str) -> list[RoomSession]:
    """Sessions in a room that have not ended."""
    q = select(RoomSession).where(
        RoomSession.tenant_id == tenant_id, RoomSession.room_id == room_id, RoomSession.ended_at.is_(None)
    )
    return list(session.scalars(q.order_by(RoomSession.started_at)))


def count_windows(session: Session, tenant_id: str) -> int:
    return int(
        session.scalar(
            select(func.count()).select_from(WindowScore).where(WindowScore.tenant_id == tenant_id)
        )
        or 0
    )
