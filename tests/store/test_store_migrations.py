"""Migrations from empty, model/schema agreement, facade errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from voxwarden.store import SchemaError, Store, StoreUnavailableError
from voxwarden.store.db import make_engine
from voxwarden.store.migrations import check_current, current_revision, downgrade, head_revision, upgrade
from voxwarden.store.models import Base

TABLES = {
    "tenants", "api_keys", "users", "scans", "jobs", "rooms", "room_sessions", "window_scores", "alerts",
    "cases", "case_notes", "evidence", "audit_log", "webhook_deliveries", "rectification_items",
    "assessment_runs", "watermark_checks", "console_revocations",
}  # fmt: skip


def test_upgrade_from_empty_creates_every_table(backend) -> None:
    engine = make_engine(backend.url)
    try:
        assert current_revision(engine) is None
        with pytest.raises(SchemaError):
            check_current(engine)
        assert upgrade(engine) == head_revision()
        check_current(engine)
        assert TABLES <= set(inspect(engine).get_table_names())
        assert upgrade(engine) == head_revision()  # second run is a no-op
    finally:
        engine.dispose()


def test_models_match_migrated_schema(backend) -> None:
    engine = make_engine(backend.url)
    try:
        upgrade(engine)
        with engine.connect() as conn:
            diff = compare_metadata(
                MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
            )
        assert diff == [], f"models and migrations disagree: {diff}"
    finally:
        engine.dispose()


def test_downgrade_to_base_and_up_again(backend) -> None:
    engine = make_engine(backend.url)
    try:
        upgrade(engine)
        assert downgrade(engine, "base") is None
        assert not TABLES & set(inspect(engine).get_table_names())
        assert upgrade(engine) == head_revision()
    finally:
        engine.dispose()


def test_readiness_check(backend, tmp_path: Path) -> None:
    store = Store(backend.url, evidence_dir=tmp_path / "ev", migrate=False)
    try:
        with pytest.raises(SchemaError):
            store.check()
        store.migrate()
        store.check()
    finally:
        store.dispose()


def test_sqlite_pragmas(tmp_path: Path) -> None:
    store = Store(data_dir=tmp_path)
    try:
        with store.engine.connect() as c:
            assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert c.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert c.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000
        assert (tmp_path / "voxwarden.db").is_file()
        assert store.evidence.root == (tmp_path / "evidence").resolve()
    finally:
        store.dispose()


@pytest.mark.parametrize(
    "url",
    ["not a url", "mysql://u@h/db", "sqlite://", "sqlite:////nonexistent-dir-xyz/sub/db.sqlite"],
)
def test_bad_urls_are_typed_errors(url: str) -> None:
    with pytest.raises(StoreUnavailableError):
        Store(url)


def test_unreachable_postgres_is_a_typed_error() -> None:
    with pytest.raises(StoreUnavailableError):
        Store(
            "postgresql+psycopg://nobody@127.0.0.1:1/none",
            engine_kwargs={"connect_args": {"connect_timeout": 2}},
        )


def test_corrupt_sqlite_file_is_a_typed_error(tmp_path: Path) -> None:
    (tmp_path / "voxwarden.db").write_bytes(np.random.default_rng(0).bytes(8192))
    with pytest.raises(StoreUnavailableError, match="not a database"):
        Store(data_dir=tmp_path)


def test_no_url_no_dir() -> None:
    with pytest.raises(StoreUnavailableError):
        Store()


def test_store_without_evidence_dir_says_so(backend) -> None:
    store = Store(backend.url)
    try:
        with pytest.raises(StoreUnavailableError, match="evidence"):
            _ = store.evidence
    finally:
        store.dispose()
