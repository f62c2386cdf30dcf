"""Engines, sessions and the `Store` facade.

SQLite (default, a file in a data directory) is opened in WAL mode with foreign keys on, a busy timeout
and `BEGIN IMMEDIATE` transactions, so two writers queue instead of failing half-way. PostgreSQL is
used when a `postgresql+psycopg://` URL is given. Repo functions live in their own modules
(`store.scans`, `store.alerts`, ...) and take a `Session`; `Store` only wires engine, sessions,
migrations and the evidence directory together.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    ArgumentError,
    DatabaseError,
    DBAPIError,
    InterfaceError,
    OperationalError,
)
from sqlalchemy.orm import Session, sessionmaker

from voxwarden.store.errors import StoreUnavailableError
from voxwarden.store.evidence import EvidenceStore

DB_FILENAME = "voxwarden.db"
SQLITE_BUSY_TIMEOUT_MS = 15_000


def _unavailable(e: DBAPIError) -> bool:
    """Connection loss, lock timeouts and corrupt files, as opposed to constraint or SQL errors."""
    return type(e) in (OperationalError, DatabaseError, InterfaceError) or bool(e.connection_invalidated)


def sqlite_url(data_dir: str | Path) -> str:
    """The SQLite URL for the database file inside `data_dir` (created if missing)."""
    d = Path(data_dir).expanduser().resolve()
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StoreUnavailableError(f"cannot create data directory {d}: {e.strerror or e}") from e
    return f"sqlite:///{d / DB_FILENAME}"


def _sqlite_setup(engine: Engine) -> None:
    """WAL, foreign keys, busy timeout; take the write lock at BEGIN (no upgrade deadlocks in WAL)."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (pysqlite's own handling is lax)
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = FULL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine for a SQLite or PostgreSQL URL with the store's connection settings."""
    try:
        u = make_url(url)
    except ArgumentError as e:
        raise StoreUnavailableError(f"not a database URL: {url!r}") from e
    backend = u.get_backend_name()
    if backend == "sqlite":
        if u.database in (None, "", ":memory:"):
            raise StoreUnavailableError("in-memory SQLite is not supported: give a data directory or file")
        parent = Path(u.database).expanduser().resolve().parent
        if not parent.is_dir():
            raise StoreUnavailableError(f"directory of the SQLite file does not exist: {parent}")
        kwargs.setdefault("connect_args", {}).setdefault("timeout", SQLITE_BUSY_TIMEOUT_MS / 1000)
        engine = create_engine(u, **kwargs)
        _sqlite_setup(engine)
        return engine
    if backend == "postgresql":
        kwargs.setdefault("pool_pre_ping", True)
        kwargs.setdefault("connect_args", {}).setdefault("connect_timeout", 10)
        try:
            return create_engine(u, **kwargs)
        except Exception as e:  # missing driver, bad option
            raise StoreUnavailableError(f"cannot use {u.render_as_string(hide_password=True)}: {e}") from e
    raise StoreUnavailableError(f"unsupported database {backend!r}: use sqlite or postgresql+psycopg")


class Store:
    """Facade: `Store(url)` or `Store(data_dir=...)`; `with store.session() as s:` is one transaction."""

    def __init__(
        self,
        url: str | None = None,
        *,
        data_dir: str | Path | None = None,
        evidence_dir: str | Path | None = None,
        migrate: bool = True,
        engine_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if url is None and data_dir is None:
            raise StoreUnavailableError("give a database URL or a data directory")
        if url is None:
            url = sqlite_url(data_dir)  # type: ignore[arg-type]
        self.url = url
        self.engine = make_engine(url, **(engine_kwargs or {}))
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        if evidence_dir is None and data_dir is not None:
            evidence_dir = Path(data_dir) / "evidence"
        self._evidence = EvidenceStore(evidence_dir) if evidence_dir is not None else None
        if migrate:
            try:
                self.migrate()
            except BaseException:
                self.engine.dispose()
                raise

    @property
    def evidence(self) -> EvidenceStore:
        """The evidence file store (under `data_dir/evidence` unless `evidence_dir` was given)."""
        if self._evidence is None:
            raise StoreUnavailableError("no evidence directory: give data_dir or evidence_dir to Store()")
        return self._evidence

    def migrate(self) -> str | None:
        """Bring the schema up to the newest migration; returns the revision now in place."""
        from voxwarden.store.migrations import upgrade

        return upgrade(self.engine)

    def check(self) -> None:
        """Readiness probe: raises `StoreUnavailableError` if unreachable, `SchemaError` if not migrated."""
        from voxwarden.store.migrations import check_current

        check_current(self.engine)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: commits when the block ends, rolls back if it raises."""
        s = self._sessions()
        try:
            with s.begin():
                yield s
        except DBAPIError as e:
            if _unavailable(e):
                raise StoreUnavailableError(f"database unavailable: {e.orig}") from e
            raise
        finally:
            s.close()

    def dispose(self) -> None:
        """Close pooled connections (call at shutdown and in tests)."""
        self.engine.dispose()

    def __repr__(self) -> str:
        return f"Store({make_url(self.url).render_as_string(hide_password=True)!r})"
