"""Seed data for the review-console tests (API and browser): users of every role, a room with two speakers'
window scores, an alert with espeak-ng evidence audio, a second alert elsewhere, a rectification item, and
an alert of another tenant."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from voxwarden.store import Store, assessments, keys
from voxwarden.store import alerts as alert_repo
from voxwarden.store import rooms as room_repo
from voxwarden.store.evidence import attach_evidence
from voxwarden.store.models import User

PASSWORD = "correct horse battery"
USERS = {"reviewer": "rita", "auditor": "aude", "admin": "adam"}
OTHER_USER = "otto"  # a reviewer of the other tenant


@dataclass
class Seeded:
    tenant_a: str
    tenant_b: str
    tenant_a_name: str
    tenant_b_name: str
    alert_id: str
    other_alert_id: str
    foreign_alert_id: str
    evidence_id: str
    audio: bytes
    item_id: str
    users: dict[str, str]


def _curve(i: int, high: tuple[int, int]) -> float:
    """A probability that rises inside `high` (window indices) and stays low elsewhere."""
    if high[0] <= i <= high[1]:
        return 0.88 + 0.05 * math.sin(i)
    return 0.08 + 0.04 * math.sin(i / 3)


def seed_console(store: Store, tenant_a: str, tenant_b: str, audio: bytes, *, now: datetime | None = None) -> Seeded:
    """Write the console's test data through the store's own functions."""
    now = now or datetime.now(UTC)
    t0 = now - timedelta(minutes=5)
    with store.session() as s:
        a_name = keys.get_tenant(s, tenant_a).name
        b_name = keys.get_tenant(s, tenant_b).name
        for tenant, name, role in [(tenant_a, n, r) for r, n in USERS.items()] + [(tenant_b, OTHER_USER, "reviewer")]:
            s.add(User(tenant_id=tenant, username=name, role=role, password_hash=_password_hash()))
        s.flush()

        room = room_repo.ensure_room(s, tenant_a, "lobby-7", name="Lobby 7").row
        peer = room_repo.Peer("203.0.113.5", 50123, "10.0.0.2", 8080, {"app": "test"})
        alice = room_repo.open_session(s, tenant_a, room.id, "alice", external_id="sess-alice", codec="pcm16",
                                       sample_rate=16000, peer=peer, started_at=t0).row
        bob = room_repo.open_session(s, tenant_a, room.id, "bob", external_id="sess-bob", codec="opus",
                                     sample_rate=48000, started_at=t0 + timedelta(seconds=5)).row
        for i in range(60):
            p = _curve(i, (22, 33))
            room_repo.record_window(s, tenant_a, alice.id, i, float(i), i + 2.0, math.log(p / (1 - p)),
                                    probability=p)
            q = _curve(i, (-1, -1))
            room_repo.record_window(s, tenant_a, bob.id, i, float(i), i + 2.0, math.log(q / (1 - q)),
                                    probability=q)
        for k in range(7):  # a watermark check every 8 s of alice's audio: no mark, then one error
            room_repo.record_watermark_check(s, tenant_a, alice.id, 8.0 * k, 8.0 * k + 8.0,
                                             "error" if k == 6 else "absent", confidence=None if k == 6 else 0.1,
                                             reason="decoder failed" if k == 6 else None)
        start_abs = t0.timestamp() + 30.0
        alert = alert_repo.raise_alert(
            s, tenant_a, room.id, "alice", start=start_abs, end=start_abs + 2.0, score=0.93,
            rule="sustained-synthetic", session_id=alice.id,
            details={"severity": "critical", "start": 30.0, "end": 32.0, "run_start": 22.0, "threshold": 0.7,
                     "windows": 9, "reason": "probability >= 0.70 for 8.0 s of audio",
                     "actions": [{"type": "alert"}, {"type": "review", "queue": "trust-safety"}]}).row
        stage = room_repo.ensure_room(s, tenant_a, "stage-2").row
        other = alert_repo.raise_alert(s, tenant_a, stage.id, "carol", start=now.timestamp() - 50,
                                       end=now.timestamp() - 48, score=0.75, rule="spike",
                                       details={"severity": "warning", "threshold": 0.6}).row
        ref = store.evidence.put(audio, suffix="wav")
        ev = attach_evidence(s, tenant_a, ref, alert_id=alert.id, start=22.0, end=32.0, media_type="audio/wav")
        item = assessments.add_item(s, tenant_a, finding="LOG-RETENTION", title="Retention below six months",
                                    severity="high")
        assessments.add_item(s, tenant_a, finding="WM-SURVIVAL", title="Watermark lost under mp3 32k",
                             severity="medium")
        b_room = room_repo.ensure_room(s, tenant_b, "b-room").row
        foreign = alert_repo.raise_alert(s, tenant_b, b_room.id, "mallory", start=now.timestamp() - 10,
                                         end=now.timestamp() - 8, score=0.99, rule="spike").row
        ref_b = store.evidence.put(audio[:-100], suffix="wav")
        attach_evidence(s, tenant_b, ref_b, alert_id=foreign.id)
        return Seeded(tenant_a, tenant_b, a_name, b_name, alert.id, other.id, foreign.id, ev.id, audio, item.id,
                      dict(USERS))


_HASH: list[str] = []


def _password_hash() -> str:
    """One scrypt hash of PASSWORD per test process (each is ~60 ms; `keys.create_user` is tested by the CLI test)."""
    if not _HASH:
        _HASH.append(keys.hash_password(PASSWORD))
    return _HASH[0]


_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_from(html: str) -> str:
    """The CSRF token a console page embeds in its forms."""
    m = _CSRF.search(html)
    assert m, "no csrf_token in page"
    return m.group(1)
