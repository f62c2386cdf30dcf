"""Schema migrations (Alembic scripts inside the package), run programmatically.

`upgrade(url_or_engine)` brings a database to the newest revision; it is safe to call at every start
(a no-op when already current) and from several processes at once (PostgreSQL: advisory lock;
SQLite: the write lock taken by `BEGIN IMMEDIATE`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from voxwarden.store.errors import SchemaError, StoreUnavailableError

HERE = Path(__file__).resolve().parent
_PG_LOCK_KEY = 0x766F78_6D6967  # "vox" "mig": serialises concurrent upgrades on PostgreSQL


def _config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.attributes["connection"] = connection
    return cfg


def _engine(target: str | Engine) -> tuple[Engine, bool]:
    if isinstance(target, Engine):
        return target, False
    from voxwarden.store.db import make_engine

    return make_engine(target), True


@contextmanager
def _connected(engine: Engine, *, begin: bool = True) -> Iterator[Connection]:
    """A connection (in a transaction), with connection failures as `StoreUnavailableError`."""
    try:
        conn = engine.connect()
    except DBAPIError as e:  # refused, auth failed, "file is not a database", ...
        raise StoreUnavailableError(f"database unavailable: {e.orig}") from e
    with conn:
        if begin:
            with conn.begin():
                yield conn
        else:
            yield conn


def head_revision() -> str | None:
    """The newest revision shipped with this code."""
    return ScriptDirectory.from_config(_config()).get_current_head()


def current_revision(target: str | Engine) -> str | None:
    """The revision the database is at (None for an empty database)."""
    engine, own = _engine(target)
    try:
        with _connected(engine, begin=False) as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        if own:
            engine.dispose()


def upgrade(target: str | Engine, revision: str = "head") -> str | None:
    """Migrate the database at `target` (URL or engine) up to `revision`; returns the revision reached."""
    engine, own = _engine(target)
    try:
        with _connected(engine) as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
            command.upgrade(_config(conn), revision)
        return current_revision(engine)
    finally:
        if own:
            engine.dispose()


def downgrade(target: str | Engine, revision: str) -> str | None:
    """Migrate down to `revision` ("base" drops everything). For development and tests."""
    engine, own = _engine(target)
    try:
        with _connected(engine) as conn:
            command.downgrade(_config(conn), revision)
        return current_revision(engine)
    finally:
        if own:
            engine.dispose()


def check_current(target: str | Engine) -> None:
    """Raise `SchemaError` unless the database is at the newest revision."""
    have, want = current_revision(target), head_revision()
    if have != want:
        raise SchemaError(f"database schema is at {have or 'nothing'}, this code needs {want}: run upgrade")
