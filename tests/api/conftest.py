"""API fixtures: an app on a migrated SQLite copy (and on PostgreSQL in its own schema when reachable),
API keys of two tenants, and tiny speech files made with espeak-ng."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _api_support import CountingDetector, Env, make_env, pg_empty

from _pg_support import pg_schema
from voxwarden.store import Store
from voxwarden.store.db import make_engine
from voxwarden.store.migrations import upgrade


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
    with pg_schema("vwapi") as url:
        eng = make_engine(url)
        upgrade(eng)
        eng.dispose()
        yield url



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
