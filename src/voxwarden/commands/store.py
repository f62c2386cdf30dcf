"""`voxwarden store migrate|verify-audit|purge`: operate the database and evidence store."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from voxwarden.commands._common import EXIT_FAILED, EXIT_USAGE, err_console

store_app = typer.Typer(help="Database migrations, audit-log integrity and retention purge.", no_args_is_help=True)

UrlOpt = Annotated[str | None, typer.Option("--url", help="Database URL (e.g. postgresql+psycopg://...).")]
DirOpt = Annotated[Path, typer.Option("--data-dir", help="Data directory (SQLite + evidence) when no --url.")]


def _open(url: str | None, data_dir: Path, migrate: bool = True):
    from voxwarden.store import Store, StoreError

    try:
        return Store(url, data_dir=data_dir if url is None else None,
                     evidence_dir=data_dir / "evidence", migrate=migrate)
    except StoreError as e:
        err_console.print(f"[red]store error:[/red] {e}")
        raise typer.Exit(EXIT_FAILED) from e


@store_app.command("migrate")
def migrate_cmd(url: UrlOpt = None, data_dir: DirOpt = Path("voxwarden-data")) -> None:
    """Create or upgrade the schema to the newest migration."""
    store = _open(url, data_dir, migrate=False)
    rev = store.migrate()
    typer.echo(f"schema at revision {rev}")


@store_app.command("verify-audit")
def verify_audit_cmd(
    url: UrlOpt = None,
    data_dir: DirOpt = Path("voxwarden-data"),
    expect_head: Annotated[str | None, typer.Option(help="A head hash exported earlier (catches truncation).")] = None,
) -> None:
    """Re-hash the append-only audit log and check its chain. Exit 2 when it was tampered with."""
    from voxwarden.store import verify_audit_chain

    store = _open(url, data_dir)
    with store.session() as s:
        check = verify_audit_chain(s, expect_head=expect_head)
    typer.echo(f"entries {check.count}  head {check.head_hash}")
    if not check.ok:
        err_console.print(f"[red]audit chain broken[/red] at seq {check.first_bad_seq}: {check.reason}")
        raise typer.Exit(EXIT_FAILED)
    typer.echo("audit chain intact")


@store_app.command("purge")
def purge_cmd(
    url: UrlOpt = None,
    data_dir: DirOpt = Path("voxwarden-data"),
    days: Annotated[int, typer.Option(help="Retention in days (>= 184 unless --force with --reason).")] = 184,
    force: Annotated[bool, typer.Option(help="Allow retention below six months.")] = False,
    reason: Annotated[str | None, typer.Option(help="Why retention is shortened (required with --force).")] = None,
) -> None:
    """Delete expired records and evidence files, never what an open case holds."""
    from voxwarden.store import RetentionError, RetentionPolicy, purge
    from voxwarden.store.retention import sweep_orphans

    try:
        policy = RetentionPolicy(days=days, force=force, reason=reason)
    except RetentionError as e:
        err_console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(EXIT_USAGE) from e
    store = _open(url, data_dir)
    with store.session() as s:
        report = purge(s, datetime.now(UTC), store.evidence, policy=policy)
    with store.session() as s:
        orphans = sweep_orphans(s, store.evidence)
    checkpoints = 0
    cp_dir = data_dir / "live-checkpoints"  # where `voxwarden serve --data-dir` keeps live resume points
    if cp_dir.is_dir():
        from voxwarden.api.live_sink import CheckpointStore

        checkpoints = CheckpointStore(cp_dir).purge(report.cutoffs)
    deleted = ", ".join(f"{k} {v}" for k, v in sorted(report.deleted.items()) if v) or "nothing"
    kept = ", ".join(f"{k} {v}" for k, v in sorted(report.kept_for_open_cases.items()) if v) or "nothing"
    typer.echo(f"deleted: {deleted}; kept for open cases: {kept}; files deleted {report.files_deleted} "
               f"({report.bytes_freed} bytes), orphan files swept {orphans}, live checkpoints {checkpoints}")
