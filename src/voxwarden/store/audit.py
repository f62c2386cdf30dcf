"""Append-only, hash-chained audit log (CAC 2018: logs ≥ 6 months with account, operation time and type,
source/destination addresses and ports, client traits).

Each row stores `prev_hash` (the previous row's hash) and `hash = sha256(canonical JSON of its fields +
prev_hash)`. Changing, deleting or reordering any row breaks the chain from that row on, which
`verify_audit_chain` reports. Removing rows at the *end* is only visible against an anchor kept
elsewhere (`AuditCheck.head_hash` / `count`, e.g. exported daily), which `expect_head` checks.
Appends are serialised (SQLite: `BEGIN IMMEDIATE`; PostgreSQL: a transaction-scoped advisory lock)
so two writers never chain onto the same predecessor. Write the audit row in the same transaction as
the change it describes, last, so both commit or neither does.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.exc import StatementError
from sqlalchemy.orm import Session

from voxwarden.store.columns import as_utc, utcnow
from voxwarden.store.errors import InvalidInputError
from voxwarden.store.models import AuditLog
from voxwarden.store.repo import check_text, normalise_json

GENESIS = "0" * 64
_PG_LOCK_KEY = 0x766F78_617564  # "vox" "aud"
_HASH_VERSION = 1


@dataclass(frozen=True)
class AuditContext:
    """Who did it and from where: filled by the edge (HTTP request, CLI) and passed down."""

    actor: str  # account: "user:<id>", "key:<prefix>", "system", "cli:<os user>"
    tenant_id: str | None = None
    source_ip: str | None = None
    source_port: int | None = None
    dest_ip: str | None = None
    dest_port: int | None = None
    user_agent: str | None = None
    client: dict[str, Any] | None = None  # client hardware/software traits the platform passes on


@dataclass(frozen=True)
class AuditCheck:
    """Outcome of walking the chain: `ok`, rows checked, last hash, and where and why it broke."""

    ok: bool
    count: int
    head_hash: str
    first_bad_seq: int | None = None
    reason: str | None = None


def _fmt_time(t: datetime) -> str:
    return as_utc(t).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def compute_hash(row: AuditLog) -> str:
    """The hash a row must carry given its fields and `prev_hash`."""
    body = {
        "v": _HASH_VERSION,
        "prev": row.prev_hash,
        "tenant_id": row.tenant_id,
        "at": _fmt_time(row.at),
        "actor": row.actor,
        "action": row.action,
        "target_type": row.target_type,
        "target_id": row.target_id,
        "source_ip": row.source_ip,
        "source_port": row.source_port,
        "dest_ip": row.dest_ip,
        "dest_port": row.dest_port,
        "user_agent": row.user_agent,
        "client": row.client,
        "details": row.details,
    }
    blob = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _check_port(p: int | None, what: str) -> int | None:
    if p is None:
        return None
    if isinstance(p, bool) or not isinstance(p, int) or not 0 <= p <= 65535:
        raise InvalidInputError(f"{what} must be a port number 0-65535, got {p!r}")
    return p


def _lock_chain(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
    # SQLite: the transaction already holds the database write lock (BEGIN IMMEDIATE).


def record(
    session: Session,
    ctx: AuditContext,
    action: str,
    *,
    target_type: str | None = None,
    target_id: str | None = None,
    details: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> AuditLog:
    """Append one entry to the chain inside the caller's transaction and return it."""
    check_text(ctx.actor, 200, "actor", required=True)
    check_text(action, 100, "action", required=True)
    check_text(target_type, 50, "target_type")
    check_text(target_id, 200, "target_id")
    check_text(ctx.source_ip, 45, "source_ip")
    check_text(ctx.dest_ip, 45, "dest_ip")
    check_text(ctx.tenant_id, 32, "tenant_id")
    ua = ctx.user_agent[:500] if ctx.user_agent else ctx.user_agent  # client-controlled: truncate, keep
    check_text(ua, 500, "user_agent")
    d = normalise_json(details or {}, "details")
    if not isinstance(d, dict):
        raise InvalidInputError("details must be a JSON object")
    client = normalise_json(ctx.client, "client") if ctx.client is not None else None
    when = as_utc(at) if at is not None else utcnow()

    _lock_chain(session)
    prev = session.scalars(select(AuditLog.hash).order_by(AuditLog.seq.desc()).limit(1)).first()
    row = AuditLog(
        tenant_id=ctx.tenant_id,
        at=when,
        actor=ctx.actor,
        action=action,
        target_type=target_type,
        target_id=target_id,
        source_ip=ctx.source_ip,
        source_port=_check_port(ctx.source_port, "source_port"),
        dest_ip=ctx.dest_ip,
        dest_port=_check_port(ctx.dest_port, "dest_port"),
        user_agent=ua,
        client=client,
        details=d,
        prev_hash=prev or GENESIS,
    )
    row.hash = compute_hash(row)
    session.add(row)
    session.flush()
    return row


def verify_audit_chain(session: Session, *, expect_head: str | None = None, batch: int = 2000) -> AuditCheck:
    """Walk the whole log in order, re-hash every row and check the links (and an optional anchor)."""
    prev = GENESIS
    count = 0
    last_seq = None
    while True:
        q = select(AuditLog).order_by(AuditLog.seq).limit(batch).execution_options(populate_existing=True)
        if last_seq is not None:
            q = q.where(AuditLog.seq > last_seq)
        try:
            rows = list(session.scalars(q))
        except (ValueError, TypeError, StatementError) as e:  # e.g. JSON or a time no longer parseable
            nxt = (last_seq or 0) + 1
            return AuditCheck(False, count, prev, nxt, f"row after seq {last_seq} unreadable: {e}")
        if not rows:
            break
        for r in rows:
            if r.prev_hash != prev:
                why = "link broken: a row before it was removed or altered"
                return AuditCheck(False, count, prev, r.seq, why)
            try:
                h = compute_hash(r)
            except (TypeError, ValueError) as e:
                return AuditCheck(False, count, prev, r.seq, f"row unreadable: {e}")
            if h != r.hash:
                return AuditCheck(False, count, prev, r.seq, "hash mismatch: the row was altered")
            prev = r.hash
            count += 1
            last_seq = r.seq
    if expect_head is not None and expect_head != prev:
        found = session.scalar(select(func.count()).select_from(AuditLog).where(AuditLog.hash == expect_head))
        if not found:
            return AuditCheck(False, count, prev, None, "anchor not found: rows at the end were removed")
    return AuditCheck(True, count, prev)


def entries(
    session: Session,
    tenant_id: str | None,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    action: str | None = None,
    limit: int = 1000,
) -> list[AuditLog]:
    """Entries of one tenant (None: system entries), oldest first, for auditors and the assessment."""
    q = select(AuditLog).where(AuditLog.tenant_id == tenant_id if tenant_id else AuditLog.tenant_id.is_(None))
    if since is not None:
        q = q.where(AuditLog.at >= as_utc(since))
    if until is not None:
        q = q.where(AuditLog.at < as_utc(until))
    if action is not None:
        q = q.where(AuditLog.action == action)
    return list(session.scalars(q.order_by(AuditLog.seq).limit(max(1, min(limit, 100_000)))))
