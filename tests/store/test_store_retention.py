"""Retention: six-month floor, purge of expired rows and files, open cases hold their evidence."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from voxwarden.detect.result import ScanResult
from voxwarden.store import RetentionError, RetentionPolicy, purge, verify_audit_chain
from voxwarden.store.alerts import raise_alert
from voxwarden.store.assessments import add_item
from voxwarden.store.audit import entries
from voxwarden.store.cases import close_case, open_case
from voxwarden.store.evidence import attach_evidence
from voxwarden.store.keys import create_tenant
from voxwarden.store.models import Alert, Case, Evidence, RoomSession, Scan, WatermarkCheck, WindowScore
from voxwarden.store.retention import MIN_RETENTION_DAYS, sweep_orphans
from voxwarden.store.rooms import end_session, ensure_room, open_session, record_watermark_check, record_window
from voxwarden.store.scans import record_scan

NOW = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)  # rows made now are "recent"
OLD = NOW - timedelta(days=200)
RECENT = NOW - timedelta(days=10)


def test_policy_floor() -> None:
    assert RetentionPolicy().days >= MIN_RETENTION_DAYS >= 183
    for bad in (dict(days=30), dict(days=30, force=True), dict(days=30, force=True, reason="  ")):
        with pytest.raises(RetentionError):
            RetentionPolicy(**bad)
    with pytest.raises(RetentionError):
        RetentionPolicy(days=0, force=True, reason="x")
    assert RetentionPolicy(days=30, force=True, reason="court order 2027-17").days == 30


def test_tenant_retention_below_floor_refused(store) -> None:
    with pytest.raises(RetentionError), store.session() as s:
        create_tenant(s, "short", retention_days=90)


def _world(store, tenant):
    """Old and recent records; some old ones held by an open case. Returns ids and file refs."""
    ev = store.evidence
    refs = {
        k: ev.put(f"audio-{k}".encode(), suffix="wav") for k in ("free", "held", "case", "recent", "item")
    }
    with store.session() as s:
        room = ensure_room(s, tenant, "room").row
        old_sess = open_session(s, tenant, room.id, "spk-old", started_at=OLD).row
        end_session(s, tenant, old_sess.id, now=OLD + timedelta(hours=1))
        held_sess = open_session(s, tenant, room.id, "spk-held", started_at=OLD).row
        end_session(s, tenant, held_sess.id, now=OLD + timedelta(hours=1))
        for seq, sess in enumerate((old_sess, held_sess)):
            record_window(s, tenant, sess.id, seq, 0.0, 4.0, 0.3).row.created_at = OLD
            record_watermark_check(s, tenant, sess.id, 0.0, 8.0, "absent", confidence=0.1).row.created_at = OLD
        a_free = raise_alert(
            s, tenant, room.id, "spk-old", start=1, end=5, score=3, rule="r", session_id=old_sess.id
        )
        a_held = raise_alert(
            s, tenant, room.id, "spk-held", start=1, end=5, score=3, rule="r", session_id=held_sess.id
        )
        a_recent = raise_alert(s, tenant, room.id, "spk-new", start=1, end=5, score=3, rule="r")
        scan_free = record_scan(s, tenant, ScanResult(path="a.wav", score=1.0), sha256="1" * 64).row
        scan_held = record_scan(s, tenant, ScanResult(path="b.wav", score=1.0), sha256="2" * 64).row
        scan_recent = record_scan(s, tenant, ScanResult(path="c.wav", score=1.0), sha256="3" * 64).row
        open_c = open_case(
            s, tenant, "held", opened_by="user:r", alert_ids=[a_held.row.id], scan_id=scan_held.id
        )
        closed_c = open_case(s, tenant, "done", opened_by="user:r", now=OLD)
        close_case(s, tenant, closed_c.id, "false_positive", now=OLD + timedelta(days=1))
        e_free = attach_evidence(s, tenant, refs["free"], alert_id=a_free.row.id)
        e_held = attach_evidence(s, tenant, refs["held"], alert_id=a_held.row.id)
        e_case = attach_evidence(s, tenant, refs["case"], case_id=open_c.id)
        e_recent = attach_evidence(s, tenant, refs["recent"], alert_id=a_recent.row.id)
        e_item = attach_evidence(s, tenant, refs["item"], scan_id=scan_free.id)
        add_item(s, tenant, finding="CAC-2018-logs", title="fix", severity="high", evidence_id=e_item.id)
        for row in (a_free.row, a_held.row, scan_free, scan_held, e_free, e_held, e_case, e_item):
            row.created_at = OLD
        for row in (a_recent.row, scan_recent, e_recent):
            row.created_at = RECENT
        ids = dict(
            a_free=a_free.row.id, a_held=a_held.row.id, a_recent=a_recent.row.id, scan_free=scan_free.id,
            scan_held=scan_held.id, scan_recent=scan_recent.id, open_case=open_c.id, closed_case=closed_c.id,
            e_free=e_free.id, e_held=e_held.id, e_case=e_case.id, e_recent=e_recent.id, e_item=e_item.id,
            old_sess=old_sess.id, held_sess=held_sess.id,
        )  # fmt: skip
    return ids, refs


def test_purge_deletes_expired_but_keeps_open_case_holdings(store, tenant) -> None:
    ids, refs = _world(store, tenant)
    with store.session() as s:
        report = purge(s, NOW, store.evidence)
        assert not report.committed and report.files_deleted == 0  # files go only after commit
    assert report.committed
    assert report.deleted["alerts"] == 1 and report.deleted["scans"] == 1 and report.deleted["evidence"] == 1
    assert report.deleted["cases"] == 1 and report.deleted["room_sessions"] == 1
    assert report.deleted["watermark_checks"] == 1 and report.kept_for_open_cases["watermark_checks"] == 1
    assert report.kept_for_open_cases["evidence"] == 3  # alert-held, case-held, rectification-held
    assert report.files_planned == 1 and report.files_deleted == 1 and report.bytes_freed == refs["free"].size
    ev = store.evidence
    assert not ev.exists(refs["free"])
    for k in ("held", "case", "recent", "item"):
        assert ev.verify(refs[k]), k
    with store.session() as s:
        assert s.get(Alert, ids["a_free"]) is None and s.get(Alert, ids["a_held"]) is not None
        assert s.get(Alert, ids["a_recent"]) is not None
        assert s.get(Scan, ids["scan_free"]) is None and s.get(Scan, ids["scan_held"]) is not None
        assert s.get(Scan, ids["scan_recent"]) is not None
        assert s.get(Case, ids["closed_case"]) is None and s.get(Case, ids["open_case"]) is not None
        assert (
            s.get(RoomSession, ids["old_sess"]) is None and s.get(RoomSession, ids["held_sess"]) is not None
        )
        assert s.scalar(select(func.count()).select_from(WindowScore)) == 1
        # watermark checks go with their session's windows; the held session's check stays
        assert [c.session_id for c in s.scalars(select(WatermarkCheck))] == [ids["held_sess"]]
        assert {e.id for e in s.scalars(select(Evidence))} == {
            ids[k] for k in ("e_held", "e_case", "e_recent", "e_item")
        }
        (log,) = entries(s, None, action="retention.purge")
        assert log.details["deleted"]["alerts"] == 1 and log.actor == "system:retention"
        assert verify_audit_chain(s).ok


def test_closing_the_case_releases_its_holdings(store, tenant) -> None:
    ids, refs = _world(store, tenant)
    with store.session() as s:
        purge(s, NOW, store.evidence)
    with store.session() as s:
        close_case(s, tenant, ids["open_case"], "confirmed_synthetic", now=NOW)
    with store.session() as s:  # closed *now*: the case row stays six months, its old alert/evidence go
        report = purge(s, NOW + timedelta(days=1), store.evidence)
    assert report.deleted["alerts"] == 1 and report.deleted["evidence"] == 2
    assert not store.evidence.exists(refs["held"]) and not store.evidence.exists(refs["case"])
    with store.session() as s:
        assert s.get(Case, ids["open_case"]) is not None


def test_shared_file_survives_while_another_row_uses_it(store, tenant) -> None:
    ref = store.evidence.put(b"same bytes", suffix="wav")
    with store.session() as s:
        room = ensure_room(s, tenant, "r").row
        old = raise_alert(s, tenant, room.id, "a", start=0, end=1, score=3, rule="r").row
        new = raise_alert(s, tenant, room.id, "b", start=0, end=1, score=3, rule="r").row
        attach_evidence(s, tenant, ref, alert_id=old.id).created_at = OLD
        attach_evidence(s, tenant, ref, alert_id=new.id)
        old.created_at = OLD
    with store.session() as s:
        report = purge(s, NOW, store.evidence)
    assert report.deleted["evidence"] == 1 and report.files_planned == 0
    assert store.evidence.verify(ref)


def test_rolled_back_purge_keeps_rows_and_files(store, tenant) -> None:
    ids, refs = _world(store, tenant)
    with pytest.raises(RuntimeError), store.session() as s:
        report = purge(s, NOW, store.evidence)
        raise RuntimeError("crash before commit")
    assert not report.committed and report.files_deleted == 0
    assert store.evidence.verify(refs["free"])
    with store.session() as s:
        assert s.get(Alert, ids["a_free"]) is not None
        assert entries(s, None, action="retention.purge") == []


def test_forced_short_retention_is_logged(store, tenant) -> None:
    with store.session() as s:
        scan = record_scan(s, tenant, ScanResult(path="x"), sha256="4" * 64).row
        scan.created_at = NOW - timedelta(days=40)
    with store.session() as s:
        assert purge(s, NOW, store.evidence).deleted["scans"] == 0  # default: kept
    policy = RetentionPolicy(days=30, force=True, reason="data-subject erasure request #7")
    with store.session() as s:
        report = purge(s, NOW, store.evidence, policy=policy)
        logs = entries(s, None, action="retention.purge")
    assert report.deleted["scans"] == 1
    assert logs[-1].details["forced_reason"] == "data-subject erasure request #7"


def test_sweep_orphans_spares_fresh_and_referenced_files(store, tenant) -> None:
    ev = store.evidence
    orphan, fresh, used = (ev.put(x, suffix="wav") for x in (b"orphan", b"fresh", b"used"))
    with store.session() as s:
        room = ensure_room(s, tenant, "r").row
        a = raise_alert(s, tenant, room.id, "a", start=0, end=1, score=3, rule="r").row
        attach_evidence(s, tenant, used, alert_id=a.id)
    old = time.time() - 7200
    for r in (orphan, used):
        os.utime(ev.abspath(r), (old, old))
    with store.session() as s:
        assert sweep_orphans(s, ev) == 1
    assert not ev.exists(orphan) and ev.exists(fresh) and ev.verify(used)


def test_expired_console_logouts_are_purged(store, tenant) -> None:
    from voxwarden.store.keys import console_session_revoked, revoke_console_session

    with store.session() as s:
        revoke_console_session(s, tenant, "sid-old", NOW - timedelta(hours=1))
        revoke_console_session(s, tenant, "sid-live", NOW + timedelta(hours=1))
        revoke_console_session(s, tenant, "sid-live", NOW + timedelta(hours=1))  # twice: one row
        assert console_session_revoked(s, "sid-old") and console_session_revoked(s, "sid-live")
        assert not console_session_revoked(s, "sid-other")
    with store.session() as s:
        report = purge(s, NOW, store.evidence)
    assert report.deleted["console_revocations"] == 1
    with store.session() as s:
        assert not console_session_revoked(s, "sid-old") and console_session_revoked(s, "sid-live")


def test_sessions_that_never_ended_expire_from_their_last_window(store, tenant) -> None:
    """A server stop leaves live sessions open for a resume; one never resumed must not outlive retention."""
    with store.session() as s:
        room = ensure_room(s, tenant, "room").row
        ids = {}
        for name, started, window_at, check_at in (
            ("abandoned", OLD, OLD, OLD),  # stopped streaming 200 days ago
            ("silent", OLD, None, None),  # opened, nothing recorded
            ("streaming", OLD, RECENT, None),  # started long ago, a window 10 days ago
            ("checked", OLD, OLD, RECENT),  # a watermark check 10 days ago
            ("young", RECENT, None, None),
        ):
            ids[name] = sid = open_session(s, tenant, room.id, f"spk-{name}", started_at=started).row.id
            if window_at is not None:
                record_window(s, tenant, sid, 0, 0.0, 4.0, 0.3).row.created_at = window_at
            if check_at is not None:
                record_watermark_check(s, tenant, sid, 0.0, 8.0, "absent", confidence=0.1).row.created_at = check_at
    with store.session() as s:
        report = purge(s, NOW, store.evidence)
    assert report.deleted["room_sessions"] == 2
    with store.session() as s:
        left = {k for k, v in ids.items() if s.get(RoomSession, v) is not None}
    assert left == {"streaming", "checked", "young"}


def test_purge_command_also_removes_stale_live_checkpoints(tmp_path) -> None:
    """`voxwarden store purge --data-dir D`: the never-ended session and its resume file under
    D/live-checkpoints go once they are older than the retention; a recent checkpoint stays."""
    from typer.testing import CliRunner

    from voxwarden.api.live_sink import CheckpointStore
    from voxwarden.commands.store import store_app
    from voxwarden.store import Store

    data = tmp_path / "data"
    store = Store(data_dir=data, evidence_dir=data / "evidence")
    now = datetime.now(UTC)
    with store.session() as s:
        t = create_tenant(s, "acme").id
        room = ensure_room(s, t, "room").row
        gone_id = open_session(s, t, room.id, "spk-a", started_at=now - timedelta(days=200)).row.id
    store.engine.dispose()
    cps = CheckpointStore(data / "live-checkpoints")
    old, fresh, tmp = cps._path(t, "room", "spk-a"), cps._path(t, "room", "spk-b"), cps._path(t, "room", "x")
    old.parent.mkdir(parents=True)
    for f in (old, fresh, tmp.with_suffix(".tmp")):
        f.write_text("{}")
    stale = (now - timedelta(days=200)).timestamp()
    os.utime(old, (stale, stale))
    os.utime(tmp.with_suffix(".tmp"), (stale, stale))
    res = CliRunner().invoke(store_app, ["purge", "--data-dir", str(data)])
    assert res.exit_code == 0, res.output
    assert "room_sessions 1" in res.output and "live checkpoints 2" in res.output
    assert not old.exists() and not tmp.with_suffix(".tmp").exists() and fresh.exists()
    store = Store(data_dir=data, evidence_dir=data / "evidence")
    with store.session() as s:
        assert s.get(RoomSession, gone_id) is None
    store.engine.dispose()
