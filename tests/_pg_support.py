"""The PostgreSQL the store, API and assessment tests run on: one probe and throwaway schemas.

The server comes from $VOXWARDEN_TEST_PG_URL or postgresql+psycopg://postgres@127.0.0.1:5432/test. When it
does not answer, the PostgreSQL variants are skipped with a loud reason and a warning, never silently.
"""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine, text

PG_URL = os.environ.get("VOXWARDEN_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
_state: dict[str, str | None] = {}


def pg_unavailable() -> str | None:
    """None if PostgreSQL answers, else why not (probed once per test session)."""
    if "reason" not in _state:
        try:
            eng = create_engine(PG_URL, connect_args={"connect_timeout": 3})
            with eng.connect() as c:
                c.execute(text("SELECT 1"))
            eng.dispose()
            _state["reason"] = None
        except Exception as e:  # any failure to connect means: skip, loudly
            _state["reason"] = f"PostgreSQL at {PG_URL} unreachable ({type(e).__name__}: {str(e)[:200]})"
            warnings.warn(f"TESTS ON POSTGRESQL SKIPPED: {_state['reason']}", stacklevel=1)
    return _state["reason"]


def skip_without_pg() -> None:
    """Skip the calling test (loudly) when PostgreSQL is not reachable."""
    reason = pg_unavailable()
    if reason:
        pytest.skip(f"LOUD SKIP: {reason}")


def schema_url(schema: str) -> str:
    """`PG_URL` with `schema` as the search path."""
    sep = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{sep}options=-csearch_path%3D{schema}"


def create_schema(prefix: str) -> str:
    """A new empty schema named `prefix_<random>` (skips the test without PostgreSQL)."""
    skip_without_pg()
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    try:
        with admin.begin() as c:
            c.execute(text(f'CREATE SCHEMA "{schema}"'))
    finally:
        admin.dispose()
    return schema


def drop_schema(schema: str) -> None:
    admin = create_engine(PG_URL)
    try:
        with admin.begin() as c:
            c.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    finally:
        admin.dispose()


@contextmanager
def pg_schema(prefix: str) -> Iterator[str]:
    """A throwaway schema for the block: yields its URL, drops it afterwards."""
    schema = create_schema(prefix)
    try:
        yield schema_url(schema)
    finally:
        drop_schema(schema)
