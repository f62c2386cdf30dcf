"""Hash-chained, append-only audit log: verify, tamper detection, triggers, ORM refusal."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from voxwarden.store import AppendOnlyError, AuditContext, InvalidInputError, Store, verify_audit_chain
from voxwarden.store.audit import GENESIS, entries, record
from voxwarden.store.models import AuditLog

CTX = AuditContext(
    actor="user:alice",
    tenant_id=None,
    source_ip="203.0.113.7",
    source_port=51234,
    dest_ip="198.51.100.2",
    dest_port=443,
    user_agent="pytest/1",
    client={"device": "Pixel 8", "os": "Android 15", "app": "1.2.3"},
)


def _fill(store, n: int = 5) -> list[int]:
    seqs = []
    with store.session() as s:
        for i in range(n):
            row = record(
                s, CTX, "scan.create", target_type="scan", target_id=f"s{i}", details={"i": i, "p": 0.5}
            )
            seqs.append(row.seq)
    return seqs


def _drop_triggers(store) -> None:
    with store.engine.begin() as c:
        if c.dialect.name == "postgresql":
            c.execute(text("DROP TRIGGER audit_log_no_update_delete ON audit_log"))
        else:
            c.execute(text("DROP TRIGGER audit_log_no_update"))
            c.execute(text("DROP TRIGGER audit_log_no_delete"))


def test_chain_verifies_and_links(store) -> None:
    seqs = _fill(store, 6)
    with store.session() as s:
        check = verify_audit_chain(s)
        rows = list(s.scalars(select(AuditLog).order_by(AuditLog.seq)))
    assert check.ok and check.count == 6 and check.first_bad_seq is None
    assert rows[0].prev_hash == GENESIS
    assert all(b.prev_hash == a.hash for a, b in zip(rows, rows[1:], strict=False))
    assert check.head_hash == rows[-1].hash
    assert [r.seq for r in rows] == seqs
    r = rows[0]  # the regulator's log fields round-trip
    assert (r.source_ip, r.source_port, r.dest_ip, r.dest_port) == ("203.0.113.7", 51234, "198.51.100.2", 443)
    assert r.client == {"device": "Pixel 8", "os": "Android 15", "app": "1.2.3"}
    assert r.at.tzinfo is not None


def test_empty_chain_is_ok(store) -> None:
    with store.session() as s:
        check = verify_audit_chain(s)
    assert check.ok and check.count == 0 and check.head_hash == GENESIS


def test_tampered_row_is_detected(store) -> None:
    seqs = _fill(store, 5)
    _drop_triggers(store)
    with store.engine.begin() as c:
        c.execute(text("UPDATE audit_log SET actor = 'user:mallory' WHERE seq = :s"), {"s": seqs[2]})
    with store.session() as s:
        check = verify_audit_chain(s)
    assert not check.ok
    assert check.first_bad_seq == seqs[2]
    assert check.count == 2
    assert "altered" in check.reason


def test_tampered_details_json_is_detected(store) -> None:
    seqs = _fill(store, 3)
    _drop_triggers(store)
    with store.engine.begin() as c:
        c.execute(
            text('UPDATE audit_log SET details = \'{"i": 99, "p": 0.5}\' WHERE seq = :s'), {"s": seqs[1]}
        )
    with store.session() as s:
        assert verify_audit_chain(s).first_bad_seq == seqs[1]


def test_deleted_row_is_detected(store) -> None:
    seqs = _fill(store, 5)
    _drop_triggers(store)
    with store.engine.begin() as c:
        c.execute(text("DELETE FROM audit_log WHERE seq = :s"), {"s": seqs[1]})
    with store.session() as s:
        check = verify_audit_chain(s)
    assert not check.ok and check.first_bad_seq == seqs[2] and "link" in check.reason


def test_truncated_tail_is_detected_against_anchor(store) -> None:
    seqs = _fill(store, 4)
    with store.session() as s:
        anchor = verify_audit_chain(s).head_hash
    _drop_triggers(store)
    with store.engine.begin() as c:
        c.execute(text("DELETE FROM audit_log WHERE seq = :s"), {"s": seqs[-1]})
    with store.session() as s:
        assert verify_audit_chain(s).ok  # the remaining prefix is self-consistent...
        assert not verify_audit_chain(s, expect_head=anchor).ok  # ...but the anchor exposes the cut


@pytest.mark.parametrize("sql", ["UPDATE audit_log SET actor = 'x'", "DELETE FROM audit_log"])
def test_triggers_refuse_update_and_delete(store, sql: str) -> None:
    _fill(store, 2)
    with pytest.raises(DBAPIError, match="append-only"):
        with store.engine.begin() as c:
            c.execute(text(sql))
    with store.session() as s:
        assert verify_audit_chain(s).count == 2


def test_postgres_refuses_truncate(store) -> None:
    if store.engine.dialect.name != "postgresql":
        pytest.skip("TRUNCATE exists only on PostgreSQL")
    _fill(store, 1)
    with pytest.raises(DBAPIError, match="append-only"):
        with store.engine.begin() as c:
            c.execute(text("TRUNCATE audit_log"))


def test_orm_refuses_update_and_delete(store) -> None:
    _fill(store, 1)
    with pytest.raises(AppendOnlyError):
        with store.session() as s:
            row = s.scalars(select(AuditLog)).one()
            row.actor = "someone else"
            s.flush()
    with pytest.raises(AppendOnlyError):
        with store.session() as s:
            s.delete(s.scalars(select(AuditLog)).one())
            s.flush()
    with store.session() as s:
        assert verify_audit_chain(s).ok


def test_rolled_back_entry_leaves_chain_intact(store) -> None:
    _fill(store, 2)
    with pytest.raises(RuntimeError):
        with store.session() as s:
            record(s, CTX, "scan.create")
            raise RuntimeError("boom")
    _fill(store, 2)
    with store.session() as s:
        check = verify_audit_chain(s)
    assert check.ok and check.count == 4


def test_bad_inputs_are_refused(store) -> None:
    with store.session() as s:
        with pytest.raises(InvalidInputError):
            record(s, CTX, "x", details={"v": float("nan")})
        with pytest.raises(InvalidInputError):
            record(s, CTX, "x", details={"v": object()})
        with pytest.raises(InvalidInputError):
            record(s, AuditContext(actor=""), "x")
        with pytest.raises(InvalidInputError):
            record(s, AuditContext(actor="a", source_port=70000), "x")
        with pytest.raises(ValueError):
            record(s, CTX, "x", at=datetime(2026, 1, 1))  # naive time


def test_unicode_and_huge_user_agent(store) -> None:
    ctx = AuditContext(actor="用户:张三", tenant_id="t1", user_agent="A" * 5000)
    with store.session() as s:
        record(
            s, ctx, "login", details={"note": "声音 ✓", "tuple": (1, 2)}, at=datetime(2026, 5, 1, tzinfo=UTC)
        )
    with store.session() as s:
        assert verify_audit_chain(s).ok
        (row,) = entries(s, "t1")
        assert len(row.user_agent) == 500 and row.details["tuple"] == [1, 2]
        assert entries(s, "t1", since=datetime(2026, 6, 1, tzinfo=UTC)) == []


def test_unparseable_row_fails_the_check(backend, tmp_path) -> None:
    store = Store(backend.url, evidence_dir=tmp_path / "ev")  # own schema: this test alters a column
    seqs = _fill(store, 3)
    _drop_triggers(store)
    with store.engine.begin() as c:
        if c.dialect.name == "postgresql":
            c.execute(text("ALTER TABLE audit_log ALTER COLUMN details TYPE text"))
        c.execute(text("UPDATE audit_log SET details = '{not json' WHERE seq = :s"), {"s": seqs[1]})
    with store.session() as s:
        check = verify_audit_chain(s)
    store.dispose()
    assert not check.ok and check.count <= 1


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)  # fmt: skip


def test_any_json_details_round_trip_through_the_chain(store) -> None:
    """Whatever JSON a caller logs, the database gives back exactly what was hashed."""

    @settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(
        details=st.dictionaries(st.text(max_size=12), _json, max_size=5),
        actor=st.text(min_size=1, max_size=40),
    )
    def one(details: dict, actor: str) -> None:
        if "\x00" in actor or not actor.strip():
            return
        with store.session() as s:
            record(s, AuditContext(actor=actor, client={"k": details}), "prop", details=details)

    one()
    with store.session() as s:
        check = verify_audit_chain(s)
    assert check.ok and check.count >= 1, check
