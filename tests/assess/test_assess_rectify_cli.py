"""`voxwarden rectify list|update|close` against a SQLite data directory."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from voxwarden.commands.rectify import rectify_app
from voxwarden.store import Store, assessments, audit
from voxwarden.store.keys import create_tenant

runner = CliRunner()


@pytest.fixture
def data(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    d = tmp_path / "vw"
    st = Store(data_dir=d, evidence_dir=d / "evidence")
    today = date.today()
    with st.session() as s:
        t = create_tenant(s, "acme").id
        create_tenant(s, "other")
        run = assessments.start_run(s, t, "cac-2018-security-assessment")
        late = assessments.add_item(s, t, finding="cac:LOG", title="Logs too short", severity="high",
                                    due_date=today - timedelta(days=3), run_id=run.id)
        later = assessments.add_item(s, t, finding="cac:FIELDS", title="Fields missing", severity="medium",
                                     due_date=today + timedelta(days=30), run_id=run.id)
        ids = {"tenant": t, "late": late.id, "later": later.id, "run": run.id}
    st.dispose()
    return d, ids


def _invoke(*args: str):
    return runner.invoke(rectify_app, list(args))


def _json_lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def test_list_filters_and_overdue_exit(data: tuple[Path, dict[str, str]]) -> None:
    d, ids = data
    r = _invoke("list", "--tenant", "acme", "--data-dir", str(d), "--json")
    assert r.exit_code == 1, r.output  # one item is overdue
    rows = _json_lines(r.output)
    assert [x["id"] for x in rows] == [ids["late"], ids["later"]]  # by due date
    r = _invoke("list", "--tenant", "acme", "--data-dir", str(d), "--overdue", "--json")
    assert [x["id"] for x in _json_lines(r.output)] == [ids["late"]]
    r = _invoke("list", "--tenant", "acme", "--data-dir", str(d), "--status", "done")
    assert r.exit_code == 0 and "no rectification items" in r.output
    r = runner.invoke(rectify_app, ["list", "--tenant", "acme", "--data-dir", str(d)], env={"COLUMNS": "250"})
    assert "Logs too short" in r.output and "overdue" in r.output
    r = _invoke("list", "--tenant", "other", "--data-dir", str(d), "--json")  # tenants do not see each other
    assert r.exit_code == 0 and _json_lines(r.output) == []


def test_update_and_close(data: tuple[Path, dict[str, str]]) -> None:
    d, ids = data
    due = (date.today() + timedelta(days=10)).isoformat()
    r = _invoke("update", ids["late"], "--tenant", "acme", "--data-dir", str(d), "--status", "in_progress",
                "--owner", "ops", "--due", due, "--note", "raising retention to 184 d")
    assert r.exit_code == 0, r.output
    row = _json_lines(r.output)[0]
    assert (row["status"], row["owner"], row["due_date"]) == ("in_progress", "ops", due)
    r = _invoke("list", "--tenant", "acme", "--data-dir", str(d), "--json")
    assert r.exit_code == 0  # nothing overdue any more
    r = _invoke("close", ids["late"], "--tenant", "acme", "--data-dir", str(d), "--evidence",
                "retention policy 184 d, purge job log 2026-03-02")
    assert r.exit_code == 0, r.output
    assert _json_lines(r.output)[0]["status"] == "done" and _json_lines(r.output)[0]["closed_at"]
    r = _invoke("close", ids["late"], "--tenant", "acme", "--data-dir", str(d), "--evidence", "again")
    assert r.exit_code == 3 and "already done" in r.output
    r = _invoke("close", ids["later"], "--tenant", "acme", "--data-dir", str(d), "--evidence", "n/a here",
                "--accept-risk")
    assert _json_lines(r.output)[0]["status"] == "accepted_risk"
    st = Store(data_dir=d, evidence_dir=d / "evidence")
    with st.session() as s:
        item = next(i for i in assessments.list_items(s, ids["tenant"]) if i.id == ids["late"])
        assert "raising retention" in (item.notes or "") and "purge job log" in (item.notes or "")
        entries = audit.entries(s, ids["tenant"])
        actions = [e.action for e in entries]
        history = [(h.action, h.details.get("previous_status"), h.details.get("status"))
                   for h in assessments.item_history(s, ids["tenant"], ids["late"])]
    st.dispose()
    assert actions == ["rectification.update", "rectification.close", "rectification.close"]
    assert history == [("rectification.update", "open", "in_progress"), ("rectification.close", "in_progress", "done")]
    r = _invoke("show", ids["late"], "--tenant", "acme", "--data-dir", str(d))
    assert r.exit_code == 0 and "rectification.close -> done" in r.output and "purge job log" in r.output
    r = _invoke("update", ids["late"], "--tenant", "acme", "--data-dir", str(d), "--status", "open",
                "--note", "the fix did not hold")  # reopening by hand is an audited update too
    assert r.exit_code == 0 and _json_lines(r.output)[0]["status"] == "open"
    assert _json_lines(r.output)[0]["closed_at"] is None
    r = _invoke("show", ids["late"], "--tenant", "acme", "--data-dir", str(d), "--json")
    hist = _json_lines(r.output)[0]["history"]
    assert [h["status"] for h in hist] == ["in_progress", "done", "open"]
    assert hist[-1]["details"]["previous_status"] == "done"


@pytest.mark.parametrize(("args", "words"), [
    (["update", "ID", "--status", "done"], "close an item"),
    (["update", "ID"], "nothing to change"),
    (["update", "ID", "--due", "next week"], "YYYY-MM-DD"),
    (["update", "nope", "--owner", "x"], "not found"),
    (["close", "ID", "--evidence", "  "], "--evidence"),
    (["list", "--status", "finished"], "bad status"),
    (["list", "--overdue", "--status", "finished"], "bad status"),
    (["list", "--tenant", "ghost"], "no tenant"),
])
def test_errors_are_clear(data: tuple[Path, dict[str, str]], args: list[str], words: str) -> None:
    d, ids = data
    args = [ids["late"] if a == "ID" else a for a in args]
    if "--tenant" not in args:
        args += ["--tenant", "acme"]
    r = _invoke(*args, "--data-dir", str(d))
    assert r.exit_code == 3, r.output
    assert words in r.output


def test_other_tenant_cannot_touch_item(data: tuple[Path, dict[str, str]]) -> None:
    d, ids = data
    r = _invoke("close", ids["late"], "--tenant", "other", "--data-dir", str(d), "--evidence", "x")
    assert r.exit_code == 3 and "not found" in r.output


def test_unusable_store(tmp_path: Path) -> None:
    bad = tmp_path / "vw"
    bad.mkdir()
    (bad / "voxwarden.db").write_bytes(b"this is not a database" * 100)
    r = _invoke("list", "--data-dir", str(bad))
    assert r.exit_code == 2
