"""Helpers shared by the API tests (a module of its own: conftest files cannot be imported by name)."""

from __future__ import annotations

import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from voxwarden.api import Settings, create_app
from voxwarden.store import Store, keys

with warnings.catch_warnings():  # starlette suggests httpx2; plain httpx still works
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

MAX_UPLOAD = 400_000


class CountingDetector:
    """The real packaged detector, counting how often it scores (to prove idempotent retries)."""

    def __init__(self) -> None:
        from voxwarden.detect import Detector

        self.inner = Detector.load()
        self.calls = 0
        self._lock = threading.Lock()

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    def score(self, src: Any, sr: int | None = None) -> Any:
        return self.score_decoded(self.decode(src, sr))

    def decode(self, src: Any, sr: int | None = None) -> Any:  # each scoring attempt starts here
        with self._lock:
            self.calls += 1
        return self.inner.decode(src, sr)

    def score_decoded(self, clip: Any) -> Any:
        return self.inner.score_decoded(clip)

    def scan(self, path: Any) -> Any:
        with self._lock:
            self.calls += 1
        return self.inner.scan(path)


@dataclass
class Env:
    """One running app with its store and keys: A has scan/mark/rooms/admin keys, B a scan key."""

    client: TestClient
    store: Store
    app: Any
    tenant_a: str
    tenant_b: str
    tokens: dict[str, str]

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}


def make_env(store: Store, detector: CountingDetector, tmp: Path, **settings: Any) -> Env:
    app = create_app(Settings(data_dir=tmp, max_upload_bytes=MAX_UPLOAD, **settings), store=store,
                     detector=detector)
    with store.session() as s:
        a = keys.create_tenant(s, "acme").id
        b = keys.create_tenant(s, "globex").id
        tokens = {
            "scan": keys.create_api_key(s, a, "scanner", ["scan"]).token,
            "mark": keys.create_api_key(s, a, "marker", ["mark"]).token,
            "rooms": keys.create_api_key(s, a, "rooms", ["rooms"]).token,
            "admin": keys.create_api_key(s, a, "admin", ["admin"]).token,
            "other": keys.create_api_key(s, b, "other", ["scan", "mark"]).token,
        }
    return Env(TestClient(app), store, app, a, b, tokens)


def pg_empty(url: str) -> None:
    """Empty the shared PostgreSQL test schema between tests (replica role keeps the audit triggers out)."""
    from sqlalchemy import text

    from voxwarden.store import make_engine
    from voxwarden.store.models import Base

    eng = make_engine(url)
    try:
        with eng.begin() as c:
            c.execute(text("SET LOCAL session_replication_role = replica"))
            for t in reversed(Base.metadata.sorted_tables):
                c.execute(t.delete())
    finally:
        eng.dispose()


def espeak_speech(out_dir: Path, text: str, *, rate: int = 150, sr: int = 16000) -> Any:
    """espeak-ng speech of `text` as float32 samples at `sr` (the live tests stream it); skips without espeak-ng."""
    import shutil
    import subprocess

    import numpy as np
    import pytest

    from voxwarden.audio import load

    exe = shutil.which("espeak-ng")
    if exe is None:
        pytest.skip("espeak-ng not installed")
    wav = Path(out_dir) / "speech.wav"
    subprocess.run([exe, "-w", str(wav), "-s", str(rate), text], check=True, capture_output=True, timeout=30)
    return load(str(wav), sr=sr).samples.astype(np.float32)

