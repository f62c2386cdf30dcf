"""`voxwarden rectify list|show|update|close`: follow up the rectification items an assessment filed.

Re-assessments close items whose control is now met and reopen items whose finding fails again; every
change (by a person or by an assessment run) is an audit entry, and `show` prints that status history."""

from __future__ import annotations

import getpass
import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated

import typer

from voxwarden.commands._common import EXIT_FAILED, EXIT_USAGE, err_console

rectify_app = typer.Typer(help="Rectification items found by security assessments: list, show, update, close.",
                          no_args_is_help=True)

UrlOpt = Annotated[str | None, typer.Option("--url", help="Database URL (e.g. postgresql+psycopg://...).")]
DirOpt = Annotated[Path, typer.Option("--data-dir", help="Data directory (SQLite + evidence) when no --url.")]
TenantOpt = Annotated[str, typer.Option("--tenant", envvar="VOXWARDEN_TENANT", help="Tenant name.")]

OPEN_STATUSES = ("open", "in_progress")
CLOSE_STATUSES = ("done", "accepted_risk")


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


def _open(url: str | None, data_dir: Path):
    from voxwarden.store import Store, StoreError

    try:
        return Store(url, data_dir=data_dir if url is None else None, evidence_dir=data_dir / "evidence")
    except StoreError as e:
        err_console.print(f"[red]store error:[/red] {e}")
        raise typer.Exit(EXIT_FAILED) from e


def _tenant_id(session, tenant: str) -> str:
    from voxwarden.store import keys

    t = keys.tenant_by_name(session, tenant)
    if t is None:
        err_console.print(f"[red]error:[/red] no tenant named {tenant!r}")
        raise typer.Exit(EXIT_USAGE)
    return t.id


def _parse_due(due: str | None) -> date | None:
    if due is None:
        return None
    try:
        return date.fromisoformat(due)
    except ValueError as e:
        err_console.print(f"[red]error:[/red] --due must be a date YYYY-MM-DD, got {due!r}")
        raise typer.Exit(EXIT_USAGE) from e


def _item_dict(it) -> dict:
    return {"id": it.id, "finding": it.finding, "title": it.title, "severity": it.severity, "status": it.status,
            "owner": it.owner, "due_date": it.due_date.isoformat() if it.due_date else None,
            "run_id": it.run_id, "evidence_id": it.evidence_id,
            "updated_at": it.updated_at.isoformat() if it.updated_at else None,
            "closed_at": it.closed_at.isoformat() if it.closed_at else None}


def _history_dict(e) -> dict:
    d = e.details or {}
    return {"at": e.at.isoformat() if e.at else None, "actor": e.actor, "action": e.action,
            "status": d.get("status"), "run_id": d.get("run_id"), "details": d}


def _append_note(old: str | None, text: str, now: datetime) -> str:
    line = f"[{now.strftime('%Y-%m-%d %H:%M')}Z {_actor()}] {text}"
    return f"{old}\n{line}" if old else line


def _run(fn):
    """Map store errors to exit codes: bad input or unknown id → 3, anything else → 2."""
    from voxwarden.store import StoreError

    try:
        return fn()
    except StoreError as e:
        err_console.print(f"[red]error:[/red] {e}")
        code = EXIT_USAGE if e.code in ("invalid_input", "not_found", "conflict") else EXIT_FAILED
        raise typer.Exit(code) from e


@rectify_app.command("list")
def list_cmd(
    tenant: TenantOpt = "default",
    status: Annotated[str | None, typer.Option(help="open, in_progress, done or accepted_risk.")] = None,
    overdue: Annotated[bool, typer.Option("--overdue", help="Only open items past their due date.")] = False,
    run: Annotated[str | None, typer.Option("--run", help="Only items found by this assessment run.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line instead of a table.")] = False,
    url: UrlOpt = None,
    data_dir: DirOpt = Path("voxwarden-data"),
) -> None:
    """List rectification items by due date (undated last). Exit 1 when any listed item is overdue."""
    from voxwarden.store import assessments
    from voxwarden.store.models import RECTIFICATION_STATUSES

    if status is not None and status not in RECTIFICATION_STATUSES:
        err_console.print(f"[red]error:[/red] bad status {status!r}: one of {', '.join(RECTIFICATION_STATUSES)}")
        raise typer.Exit(EXIT_USAGE)
    store = _open(url, data_dir)
    today = datetime.now(UTC).date()

    def go():
        with store.session() as s:
            tid = _tenant_id(s, tenant)
            if overdue:
                items = assessments.overdue_items(s, tid, today)
                if status is not None:
                    items = [i for i in items if i.status == status]
                if run is not None:
                    items = [i for i in items if i.run_id == run]
            else:
                items = assessments.list_items(s, tid, status=status, run_id=run)
            return [_item_dict(i) for i in items]

    try:
        rows = _run(go)
    finally:
        store.dispose()
    late = [r for r in rows if r["status"] in OPEN_STATUSES and r["due_date"] and r["due_date"] < today.isoformat()]
    if as_json:
        for r in rows:
            typer.echo(json.dumps(r, ensure_ascii=False))
    elif not rows:
        typer.echo("no rectification items")
    else:
        from rich.console import Console
        from rich.table import Table

        t = Table("id", "severity", "status", "due", "owner", "finding", "title")
        for r in rows:
            due = r["due_date"] or "-"
            if r in late:
                due = f"[red]{due} overdue[/red]"
            t.add_row(r["id"], r["severity"], r["status"], due, r["owner"] or "-", r["finding"], r["title"])
        Console().print(t)
    if late:
        raise typer.Exit(1)


@rectify_app.command("show")
def show_cmd(
    item_id: Annotated[str, typer.Argument(help="Rectification item id.")],
    tenant: TenantOpt = "default",
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object (item + history).")] = False,
    url: UrlOpt = None,
    data_dir: DirOpt = Path("voxwarden-data"),
) -> None:
    """One item with its notes and status history (its audit entries: created, updated, closed, reopened)."""
    from voxwarden.store import assessments
    from voxwarden.store.models import RectificationItem
    from voxwarden.store.repo import get_scoped

    store = _open(url, data_dir)

    def go():
        with store.session() as s:
            tid = _tenant_id(s, tenant)
            it = get_scoped(s, RectificationItem, tid, item_id)
            return {**_item_dict(it), "notes": it.notes,
                    "history": [_history_dict(e) for e in assessments.item_history(s, tid, item_id)]}

    try:
        row = _run(go)
    finally:
        store.dispose()
    if as_json:
        typer.echo(json.dumps(row, ensure_ascii=False))
        return
    typer.echo(f"{row['id']}  {row['severity']}  {row['status']}  due {row['due_date'] or '-'}  "
               f"owner {row['owner'] or '-'}")
    typer.echo(f"{row['finding']}: {row['title']}")
    if row["run_id"]:
        typer.echo(f"found by assessment run {row['run_id']}")
    typer.echo("history:")
    for h in row["history"]:
        extra = h["details"].get("evidence") or h["details"].get("note") or h["details"].get("control_status") or ""
        run = f" run {h['run_id']}" if h["run_id"] else ""
        typer.echo(f"  {h['at']}  {h['actor']}  {h['action']}{' -> ' + h['status'] if h['status'] else ''}{run}"
                   f"{'  ' + str(extra) if extra else ''}")
    if row["notes"]:
        typer.echo("notes:")
        for line in row["notes"].splitlines():
            typer.echo(f"  {line}")


@rectify_app.command("update")
def update_cmd(
    item_id: Annotated[str, typer.Argument(help="Rectification item id.")],
    tenant: TenantOpt = "default",
    status: Annotated[str | None, typer.Option(help="open or in_progress (use `close` to finish).")] = None,
    owner: Annotated[str | None, typer.Option(help="Who is responsible.")] = None,
    due: Annotated[str | None, typer.Option(help="Due date YYYY-MM-DD.")] = None,
    note: Annotated[str | None, typer.Option(help="A note appended (timestamped) to the item.")] = None,
    url: UrlOpt = None,
    data_dir: DirOpt = Path("voxwarden-data"),
) -> None:
    """Change an item's status, owner or due date, or add a note; every change is audited."""
    from voxwarden.store import AuditContext, assessments, audit
    from voxwarden.store.models import RectificationItem
    from voxwarden.store.repo import get_scoped

    if status is not None and status not in OPEN_STATUSES:
        err_console.print(f"[red]error:[/red] --status must be one of {', '.join(OPEN_STATUSES)}; "
                          "close an item with `voxwarden rectify close ID --evidence ...`")
        raise typer.Exit(EXIT_USAGE)
    due_date = _parse_due(due)
    if status is None and owner is None and due_date is None and note is None:
        err_console.print("[red]error:[/red] nothing to change: give --status, --owner, --due or --note")
        raise typer.Exit(EXIT_USAGE)
    store = _open(url, data_dir)
    now = datetime.now(UTC)

    def go():
        with store.session() as s:
            tid = _tenant_id(s, tenant)
            old = get_scoped(s, RectificationItem, tid, item_id, lock=True)
            previous = old.status
            notes = _append_note(old.notes, note, now) if note else None
            it = assessments.update_item(s, tid, item_id, status=status, owner=owner, due_date=due_date,
                                         notes=notes, now=now)
            changed = {k: v for k, v in {"status": status, "owner": owner, "due_date": due, "note": note}.items()
                       if v is not None}
            if status is not None:
                changed["previous_status"] = previous  # the status history reads from these entries
            audit.record(s, AuditContext(actor=_actor(), tenant_id=tid), "rectification.update",
                         target_type="rectification_item", target_id=it.id, details=changed)
            return _item_dict(it)

    try:
        row = _run(go)
    finally:
        store.dispose()
    typer.echo(json.dumps(row, ensure_ascii=False))


@rectify_app.command("close")
def close_cmd(
    item_id: Annotated[str, typer.Argument(help="Rectification item id.")],
    evidence: Annotated[str, typer.Option("--evidence", help="What shows the hazard is fixed (required).")],
    tenant: TenantOpt = "default",
    accept_risk: Annotated[bool, typer.Option("--accept-risk",
                                              help="Close as an accepted risk instead of done.")] = False,
    url: UrlOpt = None,
    data_dir: DirOpt = Path("voxwarden-data"),
) -> None:
    """Close an item as done (or accepted risk), recording the evidence of the fix in its notes and the audit."""
    from voxwarden.store import AuditContext, assessments, audit
    from voxwarden.store.models import RectificationItem
    from voxwarden.store.repo import get_scoped

    if not evidence.strip():
        err_console.print("[red]error:[/red] --evidence must say what shows the fix")
        raise typer.Exit(EXIT_USAGE)
    new_status = "accepted_risk" if accept_risk else "done"
    store = _open(url, data_dir)
    now = datetime.now(UTC)

    def go():
        with store.session() as s:
            tid = _tenant_id(s, tenant)
            old = get_scoped(s, RectificationItem, tid, item_id, lock=True)
            if old.status in CLOSE_STATUSES:
                from voxwarden.store import ConflictError

                raise ConflictError(f"rectification item {item_id} is already {old.status}")
            previous = old.status
            notes = _append_note(old.notes, f"closed ({new_status}): {evidence.strip()}", now)
            it = assessments.update_item(s, tid, item_id, status=new_status, notes=notes, now=now)
            audit.record(s, AuditContext(actor=_actor(), tenant_id=tid), "rectification.close",
                         target_type="rectification_item", target_id=it.id,
                         details={"status": new_status, "previous_status": previous,
                                  "evidence": evidence.strip()})
            return _item_dict(it)

    try:
        row = _run(go)
    finally:
        store.dispose()
    typer.echo(json.dumps(row, ensure_ascii=False))
