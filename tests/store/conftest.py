"""Store fixtures: every store test runs on SQLite (WAL file in tmp) and on PostgreSQL (own schema).

PostgreSQL comes from $VOXWARDEN_TEST_PG_URL or postgresql+psycopg://postgres@127.0.0.1:5432/test.
If the server is unreachable the PostgreSQL variants are skipped with a loud reason (and a warning).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from _pg_support import create_schema, drop_schema, schema_url, skip_without_pg
from voxwarden.store import Store
from voxwarden.store.db import make_engine
from voxwarden.store.keys import create_tenant
from voxwarden.store.migrations import downgrade, upgrade
from voxwarden.store.models import Base


class Backend:
    """A fresh, empty database for one test: `url` to give the store, `cleanup()` afterwards."""

    def __init__(self, kind: str, tmp: Path) -> None:
        self.kind = kind
        if kind == "sqlite":
            self.url = f"sqlite:///{tmp / 'vw.db'}"
            self.schema = None
        else:
            self.schema = create_schema("vwt")
            self.url = schema_url(self.schema)

    def cleanup(self) -> None:
        if self.schema:
            drop_schema(self.schema)


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
        skip_without_pg()
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
