"""Crash-safety keys: the same request or replay twice writes one row."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from voxwarden.detect.result import ScanResult, Segment
from voxwarden.store import ConflictError, InvalidInputError
from voxwarden.store.alerts import raise_alert
from voxwarden.store.evidence import attach_evidence
from voxwarden.store.jobs import enqueue
from voxwarden.store.models import Alert, Evidence, Job, Scan, WatermarkCheck, WebhookDelivery, WindowScore
from voxwarden.store.rooms import ensure_room, open_session, record_watermark_check, record_window, watermark_checks
from voxwarden.store.scans import record_scan
from voxwarden.store.webhooks import enqueue_delivery

SHA_A = "a" * 64
SHA_B = "b" * 64


def _result(score: float = 2.5) -> ScanResult:
    return ScanResult(
        path="upload.m4a",
        score=score,
        probability=0.93,
        decision="synthetic",
        segments=[Segment(0.0, 4.0, 2.1, 0.9), Segment(4.0, 8.0, 2.9, 0.97)],
        threshold=0.5,
        model="vw-gmm-0.1",
        duration=8.0,
    )


def _count(store, model) -> int:
    with store.session() as s:
        return s.scalar(select(func.count()).select_from(model))


def test_scan_same_key_twice_is_one_row(store, tenant) -> None:
    with store.session() as s:
        first = record_scan(s, tenant, _result(), sha256=SHA_A, size=1234, idempotency_key="req-1")
    with store.session() as s:
        again = record_scan(s, tenant, _result(score=9.9), sha256=SHA_A, size=1234, idempotency_key="req-1")
    assert first.created and not again.created
    assert again.row.id == first.row.id and again.row.score == 2.5
    assert _count(store, Scan) == 1
    with store.session() as s:
        row = s.get(Scan, first.row.id)
        assert row.segments[1] == {"start": 4.0, "end": 8.0, "score": 2.9, "probability": 0.97}


def test_scan_key_reused_for_other_upload_conflicts(store, tenant) -> None:
    with store.session() as s:
        record_scan(s, tenant, _result(), sha256=SHA_A, idempotency_key="k")
    with pytest.raises(ConflictError), store.session() as s:
        record_scan(s, tenant, _result(), sha256=SHA_B, idempotency_key="k")


def test_scan_keys_are_per_tenant(store, tenant, other_tenant) -> None:
    with store.session() as s:
        a = record_scan(s, tenant, _result(), sha256=SHA_A, idempotency_key="k")
        b = record_scan(s, other_tenant, _result(), sha256=SHA_A, idempotency_key="k")
        c = record_scan(s, tenant, _result(), sha256=SHA_A)  # no key: always a new row
        d = record_scan(s, tenant, _result(), sha256=SHA_A)
    assert a.row.id != b.row.id and b.created and c.created and d.created
    assert _count(store, Scan) == 4


def test_scan_input_checks(store, tenant) -> None:
    with store.session() as s:
        with pytest.raises(InvalidInputError):
            record_scan(s, tenant, _result(), sha256="nothex")
        with pytest.raises(InvalidInputError):
            record_scan(s, tenant, _result(score=float("inf")), sha256=SHA_A)
        with pytest.raises(InvalidInputError):
            record_scan(s, tenant, _result(), sha256=SHA_A, size=-1)
        with pytest.raises(InvalidInputError):
            record_scan(s, tenant, _result(), sha256=SHA_A, idempotency_key="k" * 500)
        failed = ScanResult(path="x\x00y.mp3", error={"type": "not_media", "message": "not audio"})
        saved = record_scan(s, tenant, failed, sha256=SHA_B)
        assert (
            saved.row.error == {"type": "not_media", "message": "not audio"} and saved.row.name == "x?y.mp3"
        )


def test_alert_replay_is_one_row(store, tenant) -> None:
    with store.session() as s:
        room = ensure_room(s, tenant, "room-9").row
        a1 = raise_alert(s, tenant, room.id, "spk-1", start=12.0, end=16.0, score=3.1, rule="score>2")
    with store.session() as s:  # replay after a crash: same natural key
        a2 = raise_alert(s, tenant, room.id, "spk-1", start=12.0004, end=16.0, score=3.1, rule="score>2")
        a3 = raise_alert(s, tenant, room.id, "spk-1", start=20.0, end=24.0, score=3.3, rule="score>2")
        a4 = raise_alert(s, tenant, room.id, "spk-2", start=12.0, end=16.0, score=3.1, rule="score>2")
    assert a1.created and not a2.created and a2.row.id == a1.row.id
    assert a3.created and a4.created
    assert _count(store, Alert) == 3


def test_window_replay_and_room_session_resume(store, tenant) -> None:
    with store.session() as s:
        room = ensure_room(s, tenant, "r1")
        assert room.created and not ensure_room(s, tenant, "r1").created
        sess = open_session(s, tenant, room.row.id, "spk", external_id="conn-1", codec="opus")
        again = open_session(s, tenant, room.row.id, "spk", external_id="conn-1")
        assert sess.created and not again.created and again.row.id == sess.row.id
        for seq in (0, 1, 2, 1, 2):
            record_window(s, tenant, sess.row.id, seq, seq * 2.0, seq * 2.0 + 4.0, 0.1 * seq)
    assert _count(store, WindowScore) == 3


def test_watermark_check_replay_and_validation(store, tenant) -> None:
    with store.session() as s:
        room = ensure_room(s, tenant, "rw").row
        sess = open_session(s, tenant, room.id, "spk", external_id="conn-w").row
        first = record_watermark_check(s, tenant, sess.id, 8.0, 16.0, "present", payload="00ff" * 4,
                                       confidence=0.999, seconds=8.0)
        again = record_watermark_check(s, tenant, sess.id, 8.0, 16.0, "present", payload="00ff" * 4)
        assert first.created and not again.created and again.row.id == first.row.id
        record_watermark_check(s, tenant, sess.id, 0.0, 8.0, "skipped", reason="budget")
        rows = watermark_checks(s, tenant, sess.id)
        assert [(r.start, r.result, r.reason) for r in rows] == [(0.0, "skipped", "budget"), (8.0, "present", None)]
        assert watermark_checks(s, "other-tenant", sess.id) == []
        for bad in (dict(result="maybe"), dict(start=-1.0), dict(end=1.0), dict(start=float("nan")),
                    dict(payload="XYZ"), dict(payload="0" * 65), dict(confidence=float("inf"))):
            args = {"start": 2.0, "end": 3.0, "result": "absent", **bad}
            with pytest.raises(InvalidInputError):
                record_watermark_check(s, tenant, sess.id, args.pop("start"), args.pop("end"), args.pop("result"),
                                       **args)
    assert _count(store, WatermarkCheck) == 2


def test_job_webhook_and_evidence_keys(store, tenant) -> None:
    ref = store.evidence.put(b"RIFF-fake-audio", suffix="wav")
    with store.session() as s:
        j1 = enqueue(s, tenant, "scan", {"path": "/up/1"}, idempotency_key="u1")
        j2 = enqueue(s, tenant, "scan", {"path": "/up/1"}, idempotency_key="u1")
        w1 = enqueue_delivery(s, tenant, "https://hook.example/x", "alert.created", "evt-1", {"a": 1})
        w2 = enqueue_delivery(s, tenant, "https://hook.example/x", "alert.created", "evt-1", {"a": 1})
        room = ensure_room(s, tenant, "r").row
        alert = raise_alert(s, tenant, room.id, "spk", start=0, end=4, score=3, rule="r").row
        e1 = attach_evidence(s, tenant, ref, alert_id=alert.id, start=0.0, end=4.0)
        e2 = attach_evidence(s, tenant, ref, alert_id=alert.id, start=0.0, end=4.0)
    assert j1.created and not j2.created and j1.row.id == j2.row.id
    assert w1.created and not w2.created
    assert e1.id == e2.id
    assert (_count(store, Job), _count(store, WebhookDelivery), _count(store, Evidence)) == (1, 1, 1)


def test_concurrent_same_key_writes_one_row(store, tenant) -> None:
    """Two writers racing with one idempotency key: both succeed, one row, same id."""
    ids: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def work() -> None:
        try:
            barrier.wait()
            with store.session() as s:
                ids.append(record_scan(s, tenant, _result(), sha256=SHA_A, idempotency_key="race").row.id)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(ids) == 2 and ids[0] == ids[1]
    assert _count(store, Scan) == 1
