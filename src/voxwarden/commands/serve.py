"""`voxwarden serve` (the HTTP API), `voxwarden admin create-key` (API keys) and `admin create-user` (console users).

With no config file the service starts on embedded defaults: SQLite in `--data-dir`, port 8080 on
127.0.0.1. When the store holds no API key yet, it prints how to make the first admin key.
"""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from voxwarden.api.settings import Settings, SettingsError
from voxwarden.commands._common import EXIT_FAILED, EXIT_USAGE, err_console

if TYPE_CHECKING:
    from voxwarden.store import Store

ConfigOpt = Annotated[Path | None, typer.Option("--config", help="TOML settings file (see docs/api.md).")]
DataDirOpt = Annotated[
    Path | None, typer.Option("--data-dir", help="Data directory (SQLite + evidence); overrides the config.")
]

keys_app = typer.Typer(help="Administration: API keys for the HTTP service, review-console users.",
                       no_args_is_help=True)


def load_settings(config: Path | None, data_dir: Path | None = None, host: str | None = None,
                  port: int | None = None) -> Settings:
    """Defaults, then the config file, then command-line flags; exits with a usage error if invalid."""
    try:
        base = Settings.from_file(config) if config is not None else Settings()
        return base.with_overrides(data_dir=data_dir, host=host, port=port)
    except SettingsError as e:
        err_console.print(f"[red]config error:[/red] {e}")
        raise typer.Exit(EXIT_USAGE) from e


def _first_key_hint(settings: Settings, config: Path | None) -> str:
    where = f"--config {config}" if config is not None else f"--data-dir {settings.data_dir.resolve()}"
    return ("No API key exists yet. Create the first admin key (the token is shown once):\n"
            f"  voxwarden admin create-key --tenant <your-org> --scopes admin {where}")


def serve_cmd(
    config: ConfigOpt = None,
    host: Annotated[str | None, typer.Option("--host", help="Address to listen on (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Port to listen on (default 8080).")] = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Run the HTTP API (/v1, OpenAPI at /openapi.json, Prometheus at /metrics)."""
    settings = load_settings(config, data_dir, host, port)
    from sqlalchemy import func, select

    from voxwarden.api.app import create_app
    from voxwarden.store import StoreError
    from voxwarden.store.models import ApiKey

    try:
        app = create_app(settings)
        with app.state.store.session() as s:
            n_keys = s.scalar(select(func.count()).select_from(ApiKey)) or 0
    except StoreError as e:
        err_console.print(f"[red]store error:[/red] {e}")
        raise typer.Exit(EXIT_FAILED) from e
    if config is None:
        typer.echo(f"no --config: embedded defaults, data in {settings.data_dir.resolve()}", err=True)
    if n_keys == 0:
        typer.echo(_first_key_hint(settings, config), err=True)  # plain echo: no wrapping, copy-pasteable
    typer.echo(f"long uploads (> {settings.sync_max_seconds:g} s) become jobs: {settings.job_workers} worker "
               f"thread(s), spool in {(settings.data_dir / 'spool').resolve()}", err=True)
    if settings.trusted_proxies:
        typer.echo(f"X-Forwarded-For/-Proto believed only from: {', '.join(settings.trusted_proxies)}", err=True)
    import uvicorn

    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info", proxy_headers=False)


def _cli_actor() -> str:
    """The audit-log actor for an admin command: the local account that ran it."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


def _open_store_or_exit(settings: Settings) -> Store:
    """The settings' store, or a printed store error and exit code 2."""
    from voxwarden.api.app import open_store
    from voxwarden.store import StoreError

    try:
        return open_store(settings)
    except StoreError as e:
        err_console.print(f"[red]store error:[/red] {e}")
        raise typer.Exit(EXIT_FAILED) from e


@keys_app.command("create-key")
def create_key_cmd(
    tenant: Annotated[str, typer.Option("--tenant", help="Tenant name (created if it does not exist).")],
    scopes: Annotated[str, typer.Option("--scopes", help="Comma-separated: scan, mark, rooms, admin.")] = "scan",
    name: Annotated[str, typer.Option("--name", help="A label for the key (who or what uses it).")] = "cli",
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Create an API key and print its token once on stdout (only its hash is stored)."""
    settings = load_settings(config, data_dir)
    from voxwarden.store import AuditContext, StoreError, audit, keys

    wanted = [s.strip() for s in scopes.split(",") if s.strip()]
    store = _open_store_or_exit(settings)
    try:
        with store.session() as s:
            t = keys.tenant_by_name(s, tenant) or keys.create_tenant(s, tenant)
            new = keys.create_api_key(s, t.id, name, wanted)
            audit.record(s, AuditContext(actor=_cli_actor(), tenant_id=t.id), "api_key.create",
                         target_type="api_key", target_id=new.key.id,
                         details={"name": name, "scopes": new.key.scopes, "prefix": new.key.prefix})
            tenant_id, key_id, granted = t.id, new.key.id, new.key.scopes
    except StoreError as e:
        err_console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(EXIT_USAGE if e.code in ("invalid_input", "conflict") else EXIT_FAILED) from e
    finally:
        store.dispose()
    err_console.print(f"key {key_id} for tenant {tenant!r} ({tenant_id}), scopes: {granted}")
    err_console.print("Store this token now; it cannot be shown again:")
    typer.echo(new.token)


PASSWORD_ENV = "VOXWARDEN_USER_PASSWORD"


def _read_password(password_file: Path | None) -> str:
    """From --password-file (first line), else $VOXWARDEN_USER_PASSWORD, else a hidden prompt asked twice."""
    import os

    if password_file is not None:
        try:
            text = password_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            err_console.print(f"[red]error:[/red] cannot read password file {password_file}: {e}")
            raise typer.Exit(EXIT_USAGE) from e
        return text.splitlines()[0] if text.splitlines() else ""
    env = os.environ.get(PASSWORD_ENV)
    if env:
        return env
    return typer.prompt("Password", hide_input=True, confirmation_prompt=True)


@keys_app.command("create-user")
def create_user_cmd(
    tenant: Annotated[str, typer.Option("--tenant", help="Tenant name (created if it does not exist).")],
    username: Annotated[str, typer.Option("--username", help="Login name for the review console.")],
    role: Annotated[str, typer.Option("--role", help="reviewer, admin or auditor (read-only).")] = "reviewer",
    password_file: Annotated[Path | None, typer.Option(
        "--password-file", help=f"Read the password from this file's first line (else ${PASSWORD_ENV}, else a prompt)."
    )] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Create a review-console user (password >= 10 characters, stored as an scrypt hash)."""
    from voxwarden.store.models import USER_ROLES

    if role not in USER_ROLES:
        err_console.print(f"[red]error:[/red] bad role {role!r}: one of {', '.join(USER_ROLES)}")
        raise typer.Exit(EXIT_USAGE)
    settings = load_settings(config, data_dir)
    password = _read_password(password_file)
    from voxwarden.store import AuditContext, StoreError, audit, keys

    store = _open_store_or_exit(settings)
    try:
        with store.session() as s:
            t = keys.tenant_by_name(s, tenant) or keys.create_tenant(s, tenant)
            user = keys.create_user(s, t.id, username, password, role)
            audit.record(s, AuditContext(actor=_cli_actor(), tenant_id=t.id), "user.create", target_type="user",
                         target_id=user.username, details={"role": role, "user_id": user.id})
            user_id = user.id
    except StoreError as e:
        err_console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(EXIT_USAGE if e.code in ("invalid_input", "conflict") else EXIT_FAILED) from e
    finally:
        store.dispose()
    err_console.print(f"user {username!r} ({role}) created for tenant {tenant!r}: {user_id}")
    typer.echo(user_id)
