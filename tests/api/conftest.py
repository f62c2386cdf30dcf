"""API fixtures: an app on a migrated SQLite copy (and on PostgreSQL in its own schema when reachable),
API keys of two tenants, and tiny speech files made with espeak-ng."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _api_support import CountingDetector, Env, make_env, pg_empty
from sqlalchemy import create_engine, text

from voxwarden.store import Store
from voxwarden.store.db import make_engine
from voxwarden.store.migrations import upgrade

PG_URL = os.environ.get("VOXWARDEN_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
_pg: dict[str, Any] = {}


def _pg_reason() -> str | None:
    if "reason" not in _pg:
        try:
            eng = create_engine(PG_URL, connect_args={"connect_timeout": 3})
            with eng.connect() as c:
                c.execute(text("SELECT 1"))
            eng.dispose()
            _pg["reason"] = None
        except Exception as e:  # any failure: skip the PostgreSQL variants loudly
            _pg["reason"] = f"PostgreSQL at {PG_URL} unreachable ({type(e).__name__})"
            warnings.warn(f"API TESTS ON POSTGRESQL SKIPPED: {_pg['reason']}", stacklevel=1)
    return _pg["reason"]


@pytest.fixture(scope="session")
def detector() -> CountingDetector:
    return CountingDetector()


@pytest.fixture(scope="session")
def live_detector() -> Any:
    """The packaged default model, loaded once: the live-room tests need real window scores."""
    from voxwarden.detect import Detector

    return Detector.load()


@pytest.fixture(scope="session")
def speech_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    exe = shutil.which("espeak-ng")
    if exe is None:
        pytest.skip("espeak-ng not installed")
    d = tmp_path_factory.mktemp("speech")
    for name, words in (("a.wav", "hello this is a short test of the voice scanning service"),
                        ("b.wav", "a different sentence spoken for the conflict check")):
        subprocess.run([exe, "-w", str(d / name), words], check=True, capture_output=True, timeout=30)
    return d


@pytest.fixture(scope="session")
def speech(speech_dir: Path) -> bytes:
    return (speech_dir / "a.wav").read_bytes()


@pytest.fixture(scope="session")
def speech_other(speech_dir: Path) -> bytes:
    return (speech_dir / "b.wav").read_bytes()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "voxwarden.db"
    eng = make_engine(f"sqlite:///{path}")
    upgrade(eng)
    eng.dispose()
    return path


@pytest.fixture(scope="session")
def pg_schema_url() -> Iterator[str]:
    reason = _pg_reason()
    if reason:
        pytest.skip(f"LOUD SKIP: {reason}")
    schema = f"vwapi_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    with admin.begin() as c:
        c.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in PG_URL else "?"
    url = f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    eng = make_engine(url)
    upgrade(eng)
    eng.dispose()
    yield url
    with admin.begin() as c:
        c.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    admin.dispose()



@pytest.fixture(params=["sqlite", "postgresql"])
def env(request: pytest.FixtureRequest, tmp_path: Path, detector: CountingDetector) -> Iterator[Env]:
    if request.param == "sqlite":
        db = tmp_path / "voxwarden.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), db)
        store = Store(f"sqlite:///{db}", evidence_dir=tmp_path / "evidence", migrate=False)
        url = None
    else:
        url = request.getfixturevalue("pg_schema_url")
        store = Store(url, evidence_dir=tmp_path / "evidence", migrate=False)
    e = make_env(store, detector, tmp_path)
    yield e
    e.client.close()
    store.dispose()
    if url is not None:
        pg_empty(url)


@pytest.fixture
def sqlite_env(tmp_path: Path, sqlite_template: Path, detector: CountingDetector) -> Iterator[Env]:
    """SQLite only: for tests whose point is not the database (keeps the suite fast)."""
    db = tmp_path / "voxwarden.db"
    shutil.copyfile(sqlite_template, db)
    store = Store(f"sqlite:///{db}", evidence_dir=tmp_path / "evidence", migrate=False)
    e = make_env(store, detector, tmp_path)
    yield e
    e.client.close()
    store.dispose()
