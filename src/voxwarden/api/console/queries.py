"""Reads the console pages need: the filtered alert queue, an alert with its room timeline, case and evidence.

Everything is scoped to one tenant; lookups by id go through `get_scoped`, so another tenant's alert is
`NotFoundError` exactly like a missing one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from voxwarden.store import cases as case_repo
from voxwarden.store.evidence import evidence_for
from voxwarden.store.models import (
    ALERT_STATUSES,
    Alert,
    Case,
    CaseNote,
    Evidence,
    Room,
    RoomSession,
    WatermarkCheck,
    WindowScore,
)
from voxwarden.store.repo import get_scoped

ALERT_SEVERITIES = ("info", "warning", "critical")  # live rules' severities (docs/live.md)
MAX_SPEAKERS = 12  # curves on one timeline
MAX_CHECKS = 2000  # watermark checks drawn per speaker (one per 8 s: over 4 hours)
MAX_POINTS = 1200  # per curve; longer sessions are reduced keeping each bucket's peak
ABSOLUTE_EPOCH = 1e8  # alert start/end above this are Unix seconds, below are stream seconds


class FilterError(ValueError):
    """A queue filter value is not usable (bad status, date, number)."""


@dataclass(frozen=True)
class AlertFilter:
    """Queue filters: status, room (platform id), rule, severity, review queue, created date range, score range."""

    status: str | None = None
    room: str | None = None
    rule: str | None = None
    severity: str | None = None
    queue: str | None = None  # the review queue a rule's `review` action named
    since: date | None = None
    until: date | None = None
    min_score: float | None = None
    max_score: float | None = None

    @classmethod
    def parse(cls, params: dict[str, str]) -> AlertFilter:
        """From query parameters (empty values mean no filter); `FilterError` names the bad one."""
        def text(name: str, limit: int = 200) -> str | None:
            v = (params.get(name) or "").strip()
            if "\x00" in v:
                raise FilterError(f"{name} must not contain NUL characters")
            if len(v) > limit:
                raise FilterError(f"{name} is longer than {limit} characters")
            return v or None

        def day(name: str) -> date | None:
            v = text(name, 10)
            if v is None:
                return None
            try:
                return date.fromisoformat(v)
            except ValueError as e:
                raise FilterError(f"{name} must be a date YYYY-MM-DD, got {v!r}") from e

        def num(name: str) -> float | None:
            v = text(name, 30)
            if v is None:
                return None
            try:
                x = float(v)
            except ValueError as e:
                raise FilterError(f"{name} must be a number, got {v!r}") from e
            if not math.isfinite(x):
                raise FilterError(f"{name} must be a finite number")
            return x

        status, severity = text("status"), text("severity")
        if status is not None and status not in ALERT_STATUSES:
            raise FilterError(f"status must be one of {', '.join(ALERT_STATUSES)}")
        if severity is not None and severity not in ALERT_SEVERITIES:
            raise FilterError(f"severity must be one of {', '.join(ALERT_SEVERITIES)}")
        f = cls(status=status, room=text("room"), rule=text("rule", 100), severity=severity,
                queue=text("queue", 100), since=day("since"), until=day("until"),
                min_score=num("min_score"), max_score=num("max_score"))
        if f.since and f.until and f.since > f.until:
            raise FilterError("since must not be after until")
        if f.min_score is not None and f.max_score is not None and f.min_score > f.max_score:
            raise FilterError("min_score must not exceed max_score")
        return f

    def as_params(self) -> dict[str, str]:
        """The non-empty filters as query parameters (for paging links and the export of a view)."""
        out = {}
        for k, v in self.__dict__.items():
            if v is not None:
                out[k] = v.isoformat() if isinstance(v, date) else str(v)
        return out


def _severity_expr() -> Any:
    return Alert.details["severity"].as_string()


def _filtered(q: Select[Any], tenant_id: str, f: AlertFilter) -> Select[Any]:
    q = q.where(Alert.tenant_id == tenant_id)
    if f.status:
        q = q.where(Alert.status == f.status)
    if f.room:
        q = q.where(Room.external_id == f.room)
    if f.rule:
        q = q.where(Alert.rule == f.rule)
    if f.severity:
        q = q.where(_severity_expr() == f.severity)
    if f.queue:
        q = q.where(Alert.details["review_queue"].as_string() == f.queue)
    if f.since:
        q = q.where(Alert.created_at >= datetime.combine(f.since, time(), UTC))
    if f.until:
        q = q.where(Alert.created_at < datetime.combine(f.until + timedelta(days=1), time(), UTC))
    if f.min_score is not None:
        q = q.where(Alert.score >= f.min_score)
    if f.max_score is not None:
        q = q.where(Alert.score <= f.max_score)
    return q


@dataclass(frozen=True)
class QueueRow:
    """One alert in the queue with its room's platform id and severity."""

    alert: Alert
    room: str
    severity: str | None


@dataclass(frozen=True)
class AlertPage:
    """A page of the queue: rows, total matching, page number (1-based) and page count."""

    rows: list[QueueRow]
    total: int
    page: int
    pages: int
    per_page: int


def alert_queue(s: Session, tenant_id: str, f: AlertFilter, *, page: int = 1, per_page: int = 25) -> AlertPage:
    """Newest first, filtered and paginated."""
    base = select(Alert, Room.external_id).join(Room, Room.id == Alert.room_id)
    total = s.scalar(_filtered(select(func.count()).select_from(Alert).join(Room, Room.id == Alert.room_id),
                               tenant_id, f)) or 0
    pages = max(1, math.ceil(total / per_page))
    page = min(max(1, page), pages)
    q = _filtered(base, tenant_id, f).order_by(Alert.created_at.desc(), Alert.id)
    rows = [QueueRow(a, ext, _severity(a)) for a, ext in s.execute(q.limit(per_page).offset((page - 1) * per_page))]
    return AlertPage(rows, int(total), page, pages, per_page)


def queue_choices(s: Session, tenant_id: str) -> dict[str, list[str]]:
    """Rooms and rules the tenant's alerts use (for the filter form's suggestions)."""
    rooms = s.scalars(select(Room.external_id).where(Room.tenant_id == tenant_id).order_by(Room.external_id)
                      .limit(500))
    rules = s.scalars(select(Alert.rule).where(Alert.tenant_id == tenant_id).distinct().order_by(Alert.rule)
                      .limit(200))
    queues = s.scalars(select(Alert.details["review_queue"].as_string()).where(
        Alert.tenant_id == tenant_id, Alert.details["review_queue"].as_string().is_not(None)).distinct().limit(100))
    return {"rooms": list(rooms), "rules": list(rules), "queues": sorted(q for q in queues if q)}


def _severity(a: Alert) -> str | None:
    v = (a.details or {}).get("severity")
    return v if isinstance(v, str) else None


# -- alert detail and timeline -------------------------------------------------------------------


@dataclass
class Series:
    """One speaker's session on the timeline: points are (seconds since t0, probability 0-1)."""

    speaker: str
    session_id: str
    points: list[tuple[float, float]]
    flagged: bool  # the alert's own session
    checks: list[tuple[float, float, str]] = field(default_factory=list)  # watermark checks: start, end, result


@dataclass
class Timeline:
    """Per-speaker score curves of the room around an alert, on one time axis starting at `t0`."""

    t0: datetime | None
    duration: float
    series: list[Series] = field(default_factory=list)
    span: tuple[float, float] | None = None  # the alert's sustained run, seconds since t0
    threshold: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "t0": self.t0.isoformat() if self.t0 else None,
            "duration": self.duration,
            "span": list(self.span) if self.span else None,
            "threshold": self.threshold,
            "series": [{"speaker": x.speaker, "session_id": x.session_id, "flagged": x.flagged,
                        "points": [[round(t, 3), round(p, 4)] for t, p in x.points],
                        "watermark_checks": [[round(a, 3), round(b, 3), r] for a, b, r in x.checks]}
                       for x in self.series],
        }


def _prob(probability: float | None, score: float) -> float:
    if probability is not None:
        return float(probability)
    z = max(-60.0, min(60.0, float(score)))
    return 1.0 / (1.0 + math.exp(-z))


def _reduce(points: list[tuple[float, float]], limit: int = MAX_POINTS) -> list[tuple[float, float]]:
    """At most `limit` points, each bucket represented by its highest score (peaks stay visible)."""
    if len(points) <= limit:
        return points
    step = len(points) / limit
    out = []
    for i in range(limit):
        bucket = points[int(i * step):max(int((i + 1) * step), int(i * step) + 1)]
        out.append(max(bucket, key=lambda p: p[1]))
    return out


def _num(d: dict[str, Any], key: str) -> float | None:
    v = d.get(key)
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) else None


def alert_timeline(s: Session, tenant_id: str, alert: Alert) -> Timeline:
    """The room's sessions overlapping the alert's session (the alert's own first), as score curves."""
    details = alert.details or {}
    own = s.get(RoomSession, alert.session_id) if alert.session_id else None
    if own is not None and own.tenant_id != tenant_id:
        own = None
    q = select(RoomSession).where(RoomSession.tenant_id == tenant_id, RoomSession.room_id == alert.room_id)
    if own is not None:
        own_last = s.scalar(select(func.max(WindowScore.end)).where(WindowScore.session_id == own.id)) or 0.0
        own_end = own.ended_at or (own.started_at + timedelta(seconds=float(own_last)))
        q = q.where(RoomSession.started_at <= own_end,
                    (RoomSession.ended_at.is_(None)) | (RoomSession.ended_at >= own.started_at))
    sessions = list(s.scalars(q.order_by(RoomSession.started_at).limit(200)))
    if own is not None:
        sessions = [own] + [x for x in sessions if x.id != own.id]
    sessions = sessions[:MAX_SPEAKERS]
    if not sessions:
        return Timeline(None, 0.0, threshold=_num(details, "threshold"))

    def epoch(rs: RoomSession) -> float:
        start_in_stream = _num(details, "start")
        if own is not None and rs.id == own.id and start_in_stream is not None and alert.start > ABSOLUTE_EPOCH:
            return float(alert.start) - start_in_stream  # the stream's own clock, exact for the alert
        return rs.started_at.timestamp()

    epochs = {rs.id: epoch(rs) for rs in sessions}
    t0 = min(epochs.values())
    series: list[Series] = []
    end = 0.0
    for rs in sessions:
        ws = s.execute(select(WindowScore.start, WindowScore.end, WindowScore.probability, WindowScore.score)
                       .where(WindowScore.tenant_id == tenant_id, WindowScore.session_id == rs.id)
                       .order_by(WindowScore.seq))  # plain rows: no ORM objects for hours of windows
        off = epochs[rs.id] - t0
        pts = [(off + (ws_ + we) / 2.0, _prob(p, sc)) for ws_, we, p, sc in ws]
        if pts:
            end = max(end, pts[-1][0])
        checks = [(off + a, off + b, r) for a, b, r in s.execute(
            select(WatermarkCheck.start, WatermarkCheck.end, WatermarkCheck.result)
            .where(WatermarkCheck.tenant_id == tenant_id, WatermarkCheck.session_id == rs.id)
            .order_by(WatermarkCheck.start).limit(MAX_CHECKS))]
        series.append(Series(rs.speaker, rs.id, _reduce(pts), own is not None and rs.id == own.id, checks))
    span = None
    if own is not None:
        e0 = epochs[own.id]
        run_start, run_end = _num(details, "run_start"), _num(details, "end")
        if run_start is not None and run_end is not None:
            span = (e0 + run_start - t0, e0 + run_end - t0)
        elif alert.start > ABSOLUTE_EPOCH:
            span = (alert.start - t0, alert.end - t0)
        else:
            span = (e0 + alert.start - t0, e0 + alert.end - t0)
    elif alert.start > ABSOLUTE_EPOCH:
        span = (alert.start - t0, alert.end - t0)
    if span is not None:
        end = max(end, span[1])
    return Timeline(datetime.fromtimestamp(t0, UTC), end, series, span, _num(details, "threshold"))


@dataclass
class AlertView:
    """Everything the alert page shows."""

    alert: Alert
    room: Room
    session: RoomSession | None
    case: Case | None
    notes: list[CaseNote]
    evidence: list[Evidence]
    timeline: Timeline
    severity: str | None


def alert_view(s: Session, tenant_id: str, alert_id: str) -> AlertView:
    """The alert (404 for another tenant's), its room, session, case with notes, evidence and timeline."""
    a = get_scoped(s, Alert, tenant_id, alert_id)
    room = get_scoped(s, Room, tenant_id, a.room_id)
    rs = get_scoped(s, RoomSession, tenant_id, a.session_id) if a.session_id else None
    case = get_scoped(s, Case, tenant_id, a.case_id) if a.case_id else None
    notes = case_repo.notes(s, tenant_id, case.id) if case else []
    return AlertView(a, room, rs, case, notes, alert_evidence(s, tenant_id, a), alert_timeline(s, tenant_id, a),
                     _severity(a))


def alert_evidence(s: Session, tenant_id: str, a: Alert) -> list[Evidence]:
    """Evidence linked to the alert, then to its case (each stored file once)."""
    rows = evidence_for(s, tenant_id, alert_id=a.id)
    if a.case_id:
        rows += evidence_for(s, tenant_id, case_id=a.case_id)
    seen: set[str] = set()
    out = []
    for r in rows:
        if r.id not in seen:
            seen.add(r.id)
            out.append(r)
    return out
