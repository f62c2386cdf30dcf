"""The store's tables (SQLAlchemy 2 declarative). Every business table carries `tenant_id`.

The schema itself is created by the Alembic migrations in `voxwarden.store.migrations`, never by
`metadata.create_all`: a test checks that these models and the migrated database agree.
Natural keys (`idempotency_key`, `natural_key`, `(session_id, seq)`) are unique per tenant so a retried
request or a replay after a crash finds the row it already wrote instead of writing a second one.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    event,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from voxwarden.store.columns import BigIntPK, UTCDateTime, new_id, utcnow

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

API_SCOPES = ("scan", "mark", "rooms", "admin")
USER_ROLES = ("reviewer", "admin", "auditor")
JOB_STATUSES = ("queued", "running", "done", "failed")
ALERT_STATUSES = ("open", "acknowledged", "resolved", "dismissed")
CASE_STATUSES = ("open", "closed")
CASE_VERDICTS = ("confirmed_synthetic", "false_positive", "escalated")
DELIVERY_STATUSES = ("pending", "delivered", "dead")
SEVERITIES = ("low", "medium", "high", "critical")
RECTIFICATION_STATUSES = ("open", "in_progress", "done", "accepted_risk")
RUN_STATUSES = ("running", "done", "failed")


def _in(col: str, values: tuple[str, ...]) -> str:
    return f"{col} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON(), list[Any]: JSON()}


def _tenant_fk() -> Mapped[str]:
    return mapped_column(String(32), ForeignKey("tenants.id", ondelete="CASCADE"), index=True)


class Tenant(Base):
    """A platform using voxwarden; every other row belongs to exactly one."""

    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    retention_days: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKey(Base):
    """A machine credential: public `prefix` for lookup, only a hash of the secret is kept."""

    __tablename__ = "api_keys"
    __table_args__ = (UniqueConstraint("prefix"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = _tenant_fk()
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(16))
    secret_hash: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[str] = mapped_column(String(200))  # space-separated subset of API_SCOPES
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class User(Base):
    """A person using the review UI; password kept as an scrypt hash."""

    __tablename__ = "users"
    __table_args__ = (
        UniqueConstraint("tenant_id", "username"),
        CheckConstraint(_in("role", USER_ROLES), name="role"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = _tenant_fk()
    username: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    disabled_at: Mapped[datetime | None]


class ConsoleRevocation(Base):
    """A console session logged out before its expiry. Kept in the store, not in one process's memory,
    so a logout holds on every worker and replica that shares the store; a row is useless after
    `expires_at` and retention deletes it then."""

    __tablename__ = "console_revocations"

    sid_hash: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of the session id
    tenant_id: Mapped[str] = _tenant_fk()
    expires_at: Mapped[datetime] = mapped_column(index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Job(Base):
    """Background work for long uploads: queued → running → done | failed, with a lease for crash recovery."""

    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("tenant_id", "idempotency_key"),
        CheckConstraint(_in("status", JOB_STATUSES), name="status"),
        Index("ix_jobs_status_created", "status", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = _tenant_fk()
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker: Mapped[str | None] = mapped_column(String(200))
    lease_until: Mapped[datetime | None]
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # a verify/mark job's outcome (scans: scan_id)
    scan_id: Mapped[str | None] = mapped_column(String(32), ForeignKey("scans.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class Scan(Base):
    """The result of scanning one uploaded file (a record of what a user published)."""

    __tablename__ = "scans"
    __table_args__ = (
        UniqueConstraint("tenant_id", "idempotency_key"),
        Index("ix_scans_tenant_created", "tenant_id", "created_at"),
        Index("ix_scans_sha256", "tenant_id", "sha256"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = _tenant_fk()
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    name: Mapped[str | None] = mapped_column(String(1000))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int | None] = mapped_column(BigInteger)
    score: Mapped[float | None] = mapped_column(Float)
    probability: Mapped[float | None] = mapped_column(Float)
    decision: Mapped[str | None] = mapped_column(String(32))
    threshold: Mapped[float | None] = mapped_column(Float)
    model: Mapped[str | None] = mapped_column(String(200))
    duration: Mapped[float | None] = mapped_column(Float)
    segments: Mapped[list[Any]] = mapped_column(default=list)
    source: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    submitted_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Room(Base):
    """A live voice room watched by voxwarden; `external_id` is the platform's own room id."""

    __tablename__ = "rooms"
    __table_args__ = (UniqueConstraint("tenant_id", "external_id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = _tenant_fk()
    external_id: Mapped[str] = mapped_column(String(200))
    name: Mapped[str | None] = mapped_column(String(200))
    policy: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None]


class RoomSession(Base):
    """One speaker's stream in a room: codec, times, network origin and the last acknowledged sequence."""

    __tablename__ = "room_sessions"
    __table_args__ = (
        UniqueConstraint("tenant_id", "external_id"),
        Index("ix_room_sessions_room_started", "room_id", "started_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = _tenant_fk()
    room_id: Mapped[str] = mapped_column(String(32), ForeignKey("rooms.id", ondelete="CASCADE"))
    external_id: Mapped[str | None] = mapped_column(String(200))
    speaker: Mapped[str] = mapped_column(String(200))
    codec: Mapped[str | None] = mapped_column(String(32))
    sample_rate: Mapped[int | None] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None]
    last_ack_seq: Mapped[int] = mapped_column(BigInteger, default=-1)
    source_ip: Mapped[str | None] = mapped_column(String(45))
    source_port: Mapped[int | None] = mapped_column(Integer)
    dest_ip: Mapped[str | None] = mapped_column(String(45))
    dest_port: Mapped[int | None] = mapped_column(Integer)
    client: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class WindowScore(Base):
    """The detector's score for one live window; `(session_id, seq)` makes replays idempotent."""

    __tablename__ = "window_scores"
    __table_args__ = (UniqueConstraint("session_id", "seq"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = _tenant_fk()
    session_id: Mapped[str] = mapped_column(String(32), ForeignKey("room_sessions.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(BigInteger)
    start: Mapped[float] = mapped_column(Float)
    end: Mapped[float] = mapped_column(Float)
    score: Mapped[float] = mapped_column(Float)
    probability: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


WATERMARK_RESULTS = ("present", "absent", "error", "skipped")


class WatermarkCheck(Base):
    """One live watermark check of a session's audio span, stored whether or not it fired an alert, so an
    auditor can see which stretches of a room were checked for a label and what was found.
    `(session_id, start, end)` makes a replayed check idempotent."""

    __tablename__ = "watermark_checks"
    __table_args__ = (
        UniqueConstraint("session_id", "start", "end"),
        CheckConstraint(_in("result", WATERMARK_RESULTS), name="result"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = _tenant_fk()
    session_id: Mapped[str] = mapped_column(String(32), ForeignKey("room_sessions.id", ondelete="CASCADE"))
    start: Mapped[float] = mapped_column(Float)
    end: Mapped[float] = mapped_column(Float)
    result: Mapped[str] = mapped_column(String(16))
    payload: Mapped[str | None] = mapped_column(String(64))
    confidence: Mapped[float | None] = mapped_column(Float)
    seconds: Mapped[float | None] = mapped_column(Float)  # compute time of the check
    reason: Mapped[str | None] = mapped_column(String(500))  # why it did not judge (error / skipped)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class Case(Base):
    """A reviewer's investigation of alerts or a scan, ending in a verdict."""

    __tablename__ = "cases"
    __table_args__ = (
        CheckConstraint(_in("status", CASE_STATUSES), name="status"),
        CheckConstraint(f"verdict IS NULL OR {_in('verdict', CASE_VERDICTS)}", name="verdict"),
        CheckConstraint("status = 'open' OR verdict IS NOT NULL", name="closed_has_verdict"),
        Index("ix_cases_tenant_status", "tenant_id", "status"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = _tenant_fk()
    title: Mapped[str] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(16), default="open")
    verdict: Mapped[str | None] = mapped_column(String(32))
    assignee_id: Mapped[str | None] = mapped_column(String(32), ForeignKey("users.id", ondelete="SET NULL"))
    scan_id: Mapped[str | None] = mapped_column(String(32), ForeignKey("scans.id", ondelete="SET NULL"))
    opened_by: Mapped[str | None] = mapped_column(String(200))
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None]


class CaseNote(Base):
    """A reviewer's note on a case."""

    __tablename__ = "case_notes"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = _tenant_fk()
    case_id: Mapped[str] = mapped_column(String(32), ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    author: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Alert(Base):
    """A rule fired on a speaker in a room. `natural_key` (room, speaker, rule, start) dedups replays."""

    __tablename__ = "alerts"
    __table_args__ = (
        UniqueConstraint("tenant_id", "natural_key"),
        CheckConstraint(_in("status", ALERT_STATUSES), name="status"),
        Index("ix_alerts_tenant_created", "tenant_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = _tenant_fk()
    natural_key: Mapped[str] = mapped_column(String(600))
    room_id: Mapped[str] = mapped_column(String(32), ForeignKey("rooms.id", ondelete="CASCADE"))
    session_id: Mapped[str | None] = mapped_column(
        String(32), ForeignKey("room_sessions.id", ondelete="SET NULL")
    )
    speaker: Mapped[str] = mapped_column(String(200))
    start: Mapped[float] = mapped_column(Float)
    end: Mapped[float] = mapped_column(Float)
    score: Mapped[float] = mapped_column(Float)
    rule: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16), default="open")
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    case_id: Mapped[str | None] = mapped_column(
        String(32), ForeignKey("cases.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Evidence(Base):
    """A content-addressed audio file (flagged segment) linked to an alert, case and/or scan."""

    __tablename__ = "evidence"
    __table_args__ = (
        UniqueConstraint("tenant_id", "link_key"),
        Index("ix_evidence_sha256", "sha256"),
        Index("ix_evidence_created", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = _tenant_fk()
    link_key: Mapped[str] = mapped_column(String(300))  # sha256 + links: attaching twice is one row
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    path: Mapped[str] = mapped_column(String(300))  # relative to the evidence root
    media_type: Mapped[str | None] = mapped_column(String(100))
    alert_id: Mapped[str | None] = mapped_column(String(32), ForeignKey("alerts.id", ondelete="SET NULL"))
    case_id: Mapped[str | None] = mapped_column(String(32), ForeignKey("cases.id", ondelete="SET NULL"))
    scan_id: Mapped[str | None] = mapped_column(String(32), ForeignKey("scans.id", ondelete="SET NULL"))
    start: Mapped[float | None] = mapped_column(Float)
    end: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditLog(Base):
    """Append-only, hash-chained log of every operation (kept ≥ 6 months, never purged by retention)."""

    __tablename__ = "audit_log"
    __table_args__ = (
        UniqueConstraint("hash"),
        Index("ix_audit_log_tenant_at", "tenant_id", "at"),
        Index("ix_audit_log_action_at", "action", "at"),  # e.g. failed logins in a window (console lockouts)
    )

    seq: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str | None] = mapped_column(String(32))  # no FK: the log outlives tenants
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(100))
    target_type: Mapped[str | None] = mapped_column(String(50))
    target_id: Mapped[str | None] = mapped_column(String(200))
    source_ip: Mapped[str | None] = mapped_column(String(45))
    source_port: Mapped[int | None] = mapped_column(Integer)
    dest_ip: Mapped[str | None] = mapped_column(String(45))
    dest_port: Mapped[int | None] = mapped_column(Integer)
    user_agent: Mapped[str | None] = mapped_column(String(500))
    client: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class WebhookDelivery(Base):
    """One event to POST to a tenant's webhook: retried with backoff, dead-lettered after max attempts."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("tenant_id", "url", "event_id"),
        CheckConstraint(_in("status", DELIVERY_STATUSES), name="status"),
        Index("ix_webhook_deliveries_due", "status", "next_try_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = _tenant_fk()
    url: Mapped[str] = mapped_column(String(2000))
    event_type: Mapped[str] = mapped_column(String(100))
    event_id: Mapped[str] = mapped_column(String(200))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=8)
    next_try_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]


class AssessmentRun(Base):
    """One security-assessment run (issue 6) and its figures."""

    __tablename__ = "assessment_runs"
    __table_args__ = (CheckConstraint(_in("status", RUN_STATUSES), name="status"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = _tenant_fk()
    framework: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16), default="running")
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    figures: Mapped[dict[str, Any]] = mapped_column(default=dict)
    report_path: Mapped[str | None] = mapped_column(String(1000))
    report_sha256: Mapped[str | None] = mapped_column(String(64))


class RectificationItem(Base):
    """A hazard to fix, found by an assessment (issue 6): severity, owner, due date, status, evidence."""

    __tablename__ = "rectification_items"
    __table_args__ = (
        CheckConstraint(_in("severity", SEVERITIES), name="severity"),
        CheckConstraint(_in("status", RECTIFICATION_STATUSES), name="status"),
        UniqueConstraint("tenant_id", "run_id", "finding"),  # one item per finding per run (0003)
        Index("ix_rectification_items_tenant_status", "tenant_id", "status"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = _tenant_fk()
    run_id: Mapped[str | None] = mapped_column(
        String(32), ForeignKey("assessment_runs.id", ondelete="SET NULL"), index=True
    )
    finding: Mapped[str] = mapped_column(String(200))  # control / finding id from the assessment
    title: Mapped[str] = mapped_column(String(500))
    severity: Mapped[str] = mapped_column(String(16))
    owner: Mapped[str | None] = mapped_column(String(200))
    due_date: Mapped[date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default="open")
    evidence_id: Mapped[str | None] = mapped_column(
        String(32), ForeignKey("evidence.id", ondelete="SET NULL")
    )
    notes: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None]


@event.listens_for(AuditLog, "before_update")
def _refuse_audit_update(mapper: Any, connection: Any, target: AuditLog) -> None:
    from voxwarden.store.errors import AppendOnlyError

    raise AppendOnlyError("audit_log is append-only: rows cannot be changed")


@event.listens_for(AuditLog, "before_delete")
def _refuse_audit_delete(mapper: Any, connection: Any, target: AuditLog) -> None:
    from voxwarden.store.errors import AppendOnlyError

    raise AppendOnlyError("audit_log is append-only: rows cannot be deleted")
