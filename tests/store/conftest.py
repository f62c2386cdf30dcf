"""Store fixtures: every store test runs on SQLite (WAL file in tmp) and on PostgreSQL (own schema).

PostgreSQL comes from $VOXWARDEN_TEST_PG_URL or postgresql+psycopg://postgres@127.0.0.1:5432/test.
If the server is unreachable the PostgreSQL variants are skipped with a loud reason (and a warning).
"""

from __future__ import annotations

import os
import shutil
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from voxwarden.store import Store
from voxwarden.store.db import make_engine
from voxwarden.store.keys import create_tenant
from voxwarden.store.migrations import downgrade, upgrade
from voxwarden.store.models import Base

PG_URL = os.environ.get("VOXWARDEN_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
_pg_state: dict[str, str | None] = {}


def pg_unavailable() -> str | None:
    """None if PostgreSQL answers, else why not (cached for the session)."""
    if "reason" not in _pg_state:
        try:
            eng = create_engine(PG_URL, connect_args={"connect_timeout": 3})
            with eng.connect() as c:
                c.execute(text("SELECT 1"))
            eng.dispose()
            _pg_state["reason"] = None
        except Exception as e:  # any failure to connect means: skip, loudly
            _pg_state["reason"] = f"PostgreSQL at {PG_URL} unreachable ({type(e).__name__}: {str(e)[:200]})"
            warnings.warn(f"STORE TESTS ON POSTGRESQL SKIPPED: {_pg_state['reason']}", stacklevel=1)
    return _pg_state["reason"]


def _pg_schema_url(schema: str) -> str:
    sep = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{sep}options=-csearch_path%3D{schema}"


class Backend:
    """A fresh, empty database for one test: `url` to give the store, `cleanup()` afterwards."""

    def __init__(self, kind: str, tmp: Path) -> None:
        self.kind = kind
        if kind == "sqlite":
            self.url = f"sqlite:///{tmp / 'vw.db'}"
            self.schema = None
        else:
            reason = pg_unavailable()
            if reason:
                pytest.skip(f"LOUD SKIP: {reason}")
            self.schema = f"vwt_{uuid.uuid4().hex[:16]}"
            admin = create_engine(PG_URL)
            with admin.begin() as c:
                c.execute(text(f'CREATE SCHEMA "{self.schema}"'))
            admin.dispose()
            self.url = _pg_schema_url(self.schema)

    def cleanup(self) -> None:
        if self.schema:
            admin = create_engine(PG_URL)
            with admin.begin() as c:
                c.execute(text(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE'))
            admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """A brand-new empty database (for migration tests)."""
    b = Backend(request.param, tmp_path)
    yield b
    b.cleanup()


# Most tests need a migrated database, not the act of migrating: migrate once per run, then give each
# test a copy (SQLite) or the same schema with every table emptied afterwards (PostgreSQL).


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "vw.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()  # last connection closed: the WAL is checkpointed into the file
    return path


@pytest.fixture(scope="session")
def pg_migrated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    b = Backend("postgresql", tmp_path_factory.mktemp("pg"))
    engine = make_engine(b.url)
    upgrade(engine)
    engine.dispose()
    yield b
    b.cleanup()


def _pg_reset(backend: Backend) -> None:
    """Empty every table (triggers off for the session) and restore the audit triggers if a test
    dropped them. Without superuser rights (no replica role) rebuild the schema instead."""
    engine = make_engine(backend.url)
    try:
        try:
            with engine.begin() as c:  # DELETE beats TRUNCATE on tiny tables; replica role skips triggers
                c.execute(text("SET LOCAL session_replication_role = replica"))
                for t in reversed(Base.metadata.sorted_tables):
                    c.execute(t.delete())
        except DBAPIError:
            with engine.begin() as c:
                c.execute(text(f'DROP SCHEMA "{backend.schema}" CASCADE'))
                c.execute(text(f'CREATE SCHEMA "{backend.schema}"'))
            upgrade(engine)
        with engine.connect() as c:
            n = c.execute(
                text(
                    "SELECT count(*) FROM pg_trigger "
                    "WHERE tgrelid = 'audit_log'::regclass AND NOT tgisinternal"
                )
            ).scalar()
        if n != 2:
            downgrade(engine, "0001")
            upgrade(engine)
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def migrated_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        dst = tmp_path / "vw.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), dst)
        yield f"sqlite:///{dst}"
    else:
        if pg_unavailable():
            pytest.skip(f"LOUD SKIP: {pg_unavailable()}")
        pg = request.getfixturevalue("pg_migrated")
        yield pg.url
        _pg_reset(pg)


@pytest.fixture
def store(migrated_url: str, tmp_path: Path) -> Iterator[Store]:
    s = Store(migrated_url, evidence_dir=tmp_path / "evidence")
    yield s
    s.dispose()


@pytest.fixture
def tenant(store: Store) -> str:
    with store.session() as s:
        return create_tenant(s, "acme").id


@pytest.fixture
def other_tenant(store: Store) -> str:
    with store.session() as s:
        return create_tenant(s, "globex").id
