"""Jobs, rooms, cases, webhooks, assessments: state machines and tenant isolation."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from voxwarden.detect.result import ScanResult
from voxwarden.store import ConflictError, InvalidInputError, NotFoundError
from voxwarden.store import jobs as jobs_
from voxwarden.store.alerts import get_alert, list_alerts, raise_alert, set_status
from voxwarden.store.assessments import (
    add_item,
    finish_run,
    list_items,
    overdue_items,
    start_run,
    update_item,
)
from voxwarden.store.cases import (
    add_note,
    attach_alerts,
    close_case,
    list_cases,
    notes,
    open_case,
    reopen_case,
)
from voxwarden.store.columns import utcnow
from voxwarden.store.evidence import attach_evidence, evidence_for
from voxwarden.store.rooms import Peer, ack, active_sessions, end_session, ensure_room, open_session, windows
from voxwarden.store.rooms import record_window as rec_window
from voxwarden.store.scans import get_scan, list_scans, record_scan
from voxwarden.store.webhooks import (
    backoff,
    dead_letters,
    due,
    enqueue_delivery,
    record_failure,
    record_success,
    retry_dead,
)


def test_job_claim_complete_and_crash_recovery(store, tenant) -> None:
    t0 = utcnow()
    with store.session() as s:
        a = jobs_.enqueue(s, tenant, "scan", {"path": "/a"}).row
        b = jobs_.enqueue(s, tenant, "scan", {"path": "/b"}).row
    with store.session() as s:
        got = jobs_.claim(s, "w1", now=t0)
        assert got is not None and got.id == a.id and got.status == "running" and got.attempts == 1
        jobs_.heartbeat(s, got, progress=0.5, now=t0)
        with pytest.raises(InvalidInputError):
            jobs_.heartbeat(s, got, progress=2.0)
        scan = record_scan(s, tenant, ScanResult(path="/a", score=0.2), sha256="c" * 64).row
        jobs_.complete(s, got, scan_id=scan.id, now=t0)
        with pytest.raises(ConflictError):
            jobs_.complete(s, got)
    with store.session() as s:  # worker claims b, then dies; lease runs out; job returns to the queue
        assert jobs_.claim(s, "w2", now=t0).id == b.id
    with store.session() as s:
        assert jobs_.claim(s, "w3", now=t0) is None
        assert jobs_.requeue_expired(s, now=t0 + timedelta(hours=1)) == 1
    with store.session() as s:
        again = jobs_.claim(s, "w3", now=t0 + timedelta(hours=1))
        assert again.id == b.id and again.attempts == 2
        jobs_.fail(s, again, {"type": "corrupt_media", "message": "bad"})
    with store.session() as s:
        assert jobs_.get_job(s, tenant, a.id).status == "done"
        assert jobs_.get_job(s, tenant, b.id).error["type"] == "corrupt_media"


def test_job_lost_too_often_fails(store, tenant) -> None:
    t = utcnow()
    with store.session() as s:
        j = jobs_.enqueue(s, tenant, "scan", {}).row
    for _ in range(3):
        with store.session() as s:
            jobs_.claim(s, "w", now=t)
            t += timedelta(hours=1)
            jobs_.requeue_expired(s, now=t, max_attempts=3)
    with store.session() as s:
        job = jobs_.get_job(s, tenant, j.id)
        assert job.status == "failed" and job.error["type"] == "worker_lost"


def test_room_session_peer_and_ack(store, tenant) -> None:
    peer = Peer("198.51.100.9", 40000, "203.0.113.1", 8443, {"device": "iPhone", "app": "2.0"})
    with store.session() as s:
        room = ensure_room(s, tenant, "room-1", name="Lobby").row
        rs = open_session(s, tenant, room.id, "user-42", codec="opus", sample_rate=48000, peer=peer).row
        assert rs.last_ack_seq == -1
        for q in (0, 1):
            rec_window(s, tenant, rs.id, q, q * 1.0, q + 2.0, 0.4, probability=0.3)
        assert ack(s, tenant, rs.id, 1) == 1 and ack(s, tenant, rs.id, 0) == 1
        assert [w.seq for w in windows(s, tenant, rs.id, after_seq=0)] == [1]
        assert [x.id for x in active_sessions(s, tenant, room.id)] == [rs.id]
        end_session(s, tenant, rs.id)
        assert active_sessions(s, tenant, room.id) == []
        assert (rs.source_ip, rs.source_port, rs.dest_port, rs.client["device"]) == (
            "198.51.100.9", 40000, 8443, "iPhone",
        )  # fmt: skip
        for bad in (
            lambda: rec_window(s, tenant, rs.id, -1, 0, 1, 0),
            lambda: rec_window(s, tenant, rs.id, 5, 3, 1, 0),
            lambda: rec_window(s, tenant, rs.id, 5, 0, 1, float("nan")),
            lambda: ack(s, tenant, rs.id, -3),
            lambda: open_session(s, tenant, room.id, "u", peer=Peer(source_port=99999)),
            lambda: open_session(s, tenant, room.id, "u", sample_rate=5),
        ):
            with pytest.raises(InvalidInputError):
                bad()


def test_case_flow_sets_alert_statuses(store, tenant) -> None:
    with store.session() as s:
        room = ensure_room(s, tenant, "r").row
        a1 = raise_alert(s, tenant, room.id, "spk", start=0, end=4, score=3.0, rule="score").row
        a2 = raise_alert(s, tenant, room.id, "spk", start=8, end=12, score=3.5, rule="score").row
        c = open_case(s, tenant, "Suspected clone of host", opened_by="user:rev", alert_ids=[a1.id])
        assert get_alert(s, tenant, a1.id).status == "acknowledged"
        attach_alerts(s, tenant, c.id, [a2.id])
        other = open_case(s, tenant, "second look", opened_by="user:rev")
        with pytest.raises(ConflictError):
            attach_alerts(s, tenant, other.id, [a1.id])
        add_note(s, tenant, c.id, "user:rev", "Voice matches the TTS demo; spectral seams at 3.2 s.")
        ref = store.evidence.put(b"segment-audio", suffix="wav")
        attach_evidence(s, tenant, ref, alert_id=a1.id, case_id=c.id, start=0.0, end=4.0)
        assert len(evidence_for(s, tenant, case_id=c.id)) == 1
        close_case(s, tenant, c.id, "confirmed_synthetic")
        assert close_case(s, tenant, c.id, "confirmed_synthetic").status == "closed"
        with pytest.raises(ConflictError):
            close_case(s, tenant, c.id, "false_positive")
        assert {get_alert(s, tenant, x).status for x in (a1.id, a2.id)} == {"resolved"}
        assert len(notes(s, tenant, c.id)) == 1
        assert [x.id for x in list_cases(s, tenant, status="open")] == [other.id]
        reopen_case(s, tenant, c.id)
        close_case(s, tenant, c.id, "false_positive")
        assert get_alert(s, tenant, a1.id).status == "dismissed"
        with pytest.raises(InvalidInputError):
            close_case(s, tenant, other.id, "probably")
        with pytest.raises(InvalidInputError):
            set_status(s, tenant, a1.id, "deleted")
        assert len(list_alerts(s, tenant, status="dismissed")) == 2


def test_webhook_backoff_and_dead_letter(store, tenant) -> None:
    t = utcnow()
    with store.session() as s:
        d = enqueue_delivery(
            s, tenant, "https://hooks.example/vw", "alert.created", "e1", {"id": 1}, max_attempts=3, now=t
        ).row
        ok = enqueue_delivery(
            s, tenant, "https://hooks.example/vw", "alert.created", "e2", {"id": 2}, now=t
        ).row
        with pytest.raises(InvalidInputError):
            enqueue_delivery(s, tenant, "file:///etc/passwd", "x", "e3", {})
    with store.session() as s:
        assert {x.id for x in due(s, now=t)} == {d.id, ok.id}
        record_success(s, s.merge(ok), status_code=204, now=t)
        d = s.merge(d)
        record_failure(s, d, error="timeout", now=t)
        assert d.next_try_at == t + backoff(1) and d.status == "pending"
        assert due(s, now=t) == []
        record_failure(s, d, error="HTTP 500", status_code=500, now=t)
        record_failure(s, d, error="HTTP 500", status_code=500, now=t)
        assert d.status == "dead"
    assert backoff(1) < backoff(2) < backoff(3) and backoff(50) == timedelta(hours=6)
    with store.session() as s:
        assert [x.id for x in dead_letters(s, tenant)] == [d.id]
        retry_dead(s, tenant, d.id, now=t)
        with pytest.raises(ConflictError):
            retry_dead(s, tenant, d.id)
        assert [x.id for x in due(s, now=t)] == [d.id]


def test_assessment_run_and_rectification(store, tenant) -> None:
    with store.session() as s:
        run = start_run(s, tenant, "cac-2018")
        finish_run(s, tenant, run.id, {"eer": 0.071, "controls_passed": 11}, report_sha256="e" * 64)
        with pytest.raises(ConflictError):
            finish_run(s, tenant, run.id, {})
        i1 = add_item(s, tenant, finding="LOG-6M", title="Keep logs 6 months", severity="high",
                      owner="ops", due_date=date(2026, 1, 1), run_id=run.id)  # fmt: skip
        i2 = add_item(s, tenant, finding="LABEL", title="Audible notice", severity="medium", run_id=run.id)
        with pytest.raises(InvalidInputError):
            add_item(s, tenant, finding="X", title="x", severity="catastrophic")
        with pytest.raises(NotFoundError):
            add_item(s, tenant, finding="X", title="x", severity="low", evidence_id="nope")
        assert [x.id for x in list_items(s, tenant, run_id=run.id)] == [i1.id, i2.id]
        assert [x.id for x in overdue_items(s, tenant, date(2026, 6, 1))] == [i1.id]
        update_item(s, tenant, i1.id, status="done")
        assert i1.closed_at is not None and overdue_items(s, tenant, date(2026, 6, 1)) == []
        assert run.figures["eer"] == 0.071


def test_tenants_cannot_see_each_other(store, tenant, other_tenant) -> None:
    with store.session() as s:
        scan = record_scan(s, tenant, ScanResult(path="x"), sha256="d" * 64).row
        room = ensure_room(s, tenant, "r").row
        a = raise_alert(s, tenant, room.id, "spk", start=0, end=1, score=3, rule="r").row
        c = open_case(s, tenant, "t", opened_by="u")
        assert get_scan(s, tenant, scan.id).id == scan.id
        for f in (
            lambda: get_scan(s, other_tenant, scan.id),
            lambda: get_alert(s, other_tenant, a.id),
            lambda: add_note(s, other_tenant, c.id, "u", "x"),
            lambda: raise_alert(s, other_tenant, room.id, "spk", start=0, end=1, score=3, rule="r"),
            lambda: open_case(s, other_tenant, "t", opened_by="u", alert_ids=[a.id]),
        ):
            with pytest.raises(NotFoundError):
                f()
        assert list_scans(s, other_tenant) == [] and list_alerts(s, other_tenant) == []


def test_review_queue_comes_from_the_rules_review_action() -> None:
    from voxwarden.store.alerts import review_queue

    assert review_queue({"actions": [{"type": "alert"}, {"type": "review", "queue": "kids"}]}) == "kids"
    assert review_queue({"actions": [{"type": "review", "queue": ""}]}) == "default"
    assert review_queue({"actions": [{"type": "alert"}, {"type": "webhook", "url": "https://x.example"}]}) is None
    assert review_queue({"actions": "not a list of actions"}) is None
    assert review_queue(None) is None
