"""Concurrent writers: SQLite WAL with two threads (and PostgreSQL) never fail and keep the chain whole."""

from __future__ import annotations

import threading

from sqlalchemy import func, select

from voxwarden.detect.result import ScanResult
from voxwarden.store import AuditContext, Store, verify_audit_chain
from voxwarden.store.audit import record
from voxwarden.store.models import AuditLog, Scan
from voxwarden.store.rooms import ack, ensure_room, open_session
from voxwarden.store.scans import record_scan

N = 25


def _writer(
    store: Store, tenant: str, name: str, errors: list[BaseException], barrier: threading.Barrier
) -> None:
    try:
        barrier.wait()
        for i in range(N):
            with store.session() as s:  # read-then-write transactions: what WAL lock upgrades get wrong
                ctx = AuditContext(actor=f"key:{name}", tenant_id=tenant)
                record(s, ctx, "scan.request", target_id=str(i))
                result = ScanResult(path=f"{name}-{i}.wav", score=0.1)
                saved = record_scan(s, tenant, result, sha256=f"{i:064x}", idempotency_key=f"{name}{i}")
                record(s, ctx, "scan.create", target_id=saved.row.id)
    except BaseException as e:  # noqa: BLE001 - reported by the test
        errors.append(e)


def test_two_threads_write_without_errors(store, tenant) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)
    threads = [threading.Thread(target=_writer, args=(store, tenant, n, errors, barrier)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(Scan)) == 2 * N
        assert s.scalar(select(func.count()).select_from(AuditLog)) == 4 * N
        check = verify_audit_chain(s)
    assert check.ok and check.count == 4 * N


def test_two_stores_same_sqlite_file(tmp_path, tenant, store) -> None:
    """Two processes' worth of engines on one file (simulated with two Store objects)."""
    if store.engine.dialect.name != "sqlite":
        return
    other = Store(store.url, evidence_dir=tmp_path / "ev2")
    try:
        errors: list[BaseException] = []
        barrier = threading.Barrier(2)
        threads = [
            threading.Thread(target=_writer, args=(st, tenant, n, errors, barrier))
            for st, n in ((store, "p1"), (other, "p2"))
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not errors, errors
        with store.session() as s:
            assert verify_audit_chain(s).count == 4 * N
    finally:
        other.dispose()


def test_ack_only_moves_forward_under_races(store, tenant) -> None:
    with store.session() as s:
        room = ensure_room(s, tenant, "r").row
        sid = open_session(s, tenant, room.id, "spk").row.id
    errors: list[BaseException] = []

    def acker(seqs: range) -> None:
        try:
            for q in seqs:
                with store.session() as s:
                    ack(s, tenant, sid, q)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=acker, args=(r,)) for r in (range(0, 40, 2), range(39, 0, -2))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    with store.session() as s:
        assert ack(s, tenant, sid, 5) == 39
