"""Long uploads as jobs (202 + /v1/jobs), crash recovery by lease, idempotency, tenant isolation, and
trusted-proxy client addresses in the audit log. Each DB test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from _api_support import CountingDetector, Env, TestClient, pg_empty
from sqlalchemy import func, select

from voxwarden.api import Settings, SettingsError, create_app
from voxwarden.api.jobs_worker import JobWorkers, probe_duration, write_spool
from voxwarden.api.proxy import ProxyHeadersMiddleware, parse_ip
from voxwarden.store import Store, audit, keys, verify_audit_chain
from voxwarden.store import jobs as job_repo
from voxwarden.store.columns import utcnow
from voxwarden.store.models import Job, Scan

ASYNC = {"sync_max_seconds": 1.0}  # the espeak clips (~3 s) are "long" here


def _post(client: TestClient, env: Env, data: bytes, who: str = "scan", mode: str = "auto",
          **headers: str) -> Any:
    return client.post(f"/v1/scans?mode={mode}", files={"file": ("long.wav", data, "audio/wav")},
                       headers={**env.auth(who), **headers})


def _wait(client: TestClient, env: Env, job_id: str, who: str = "scan", timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        r = client.get(f"/v1/jobs/{job_id}", headers=env.auth(who))
        assert r.status_code == 200, r.text
        body = r.json()
        if body["status"] in ("done", "failed") or time.monotonic() > deadline:
            return body
        time.sleep(0.05)


def _count(store: Store, model: Any, **where: Any) -> int:
    with store.session() as s:
        q = select(func.count()).select_from(model)
        for k, v in where.items():
            q = q.where(getattr(model, k) == v)
        return int(s.scalar(q) or 0)


@pytest.fixture
def jobs_env(request: pytest.FixtureRequest, env: Env, tmp_path: Path, detector: CountingDetector) -> Env:
    """`env`'s store and keys, but an app whose long-upload threshold is 1 s (lifespan not started yet)."""
    env.client.close()
    app = create_app(Settings(data_dir=tmp_path, max_upload_bytes=400_000, **ASYNC), store=env.store,
                     detector=detector)
    return Env(TestClient(app), env.store, app, env.tenant_a, env.tenant_b, env.tokens)


def test_long_upload_is_a_job_that_finishes_with_segments(jobs_env: Env, speech: bytes) -> None:
    env = jobs_env
    assert (probe_duration(speech) or 0) > ASYNC["sync_max_seconds"]
    with env.client as c:
        r = _post(c, env, speech, **{"User-Agent": "ua-jobs/1"})
        assert r.status_code == 202, r.text
        job = r.json()
        assert r.headers["location"] == f"/v1/jobs/{job['id']}"
        assert job["status"] in ("queued", "running", "done") and job["sha256"] and job["size"] == len(speech)
        done = _wait(c, env, job["id"])
        assert done["status"] == "done", done
        assert done["progress"] == 1.0 and done["attempts"] == 1 and done["error"] is None
        scan = done["scan"]
        assert scan["id"] == done["scan_id"] and scan["segments"] and scan["decision"] in ("synthetic", "bonafide")
        assert scan["name"] == "long.wav" and "spool" not in str(scan)
        # the scan is an ordinary stored scan of the tenant
        assert c.get(f"/v1/scans/{scan['id']}", headers=env.auth("scan")).json() == scan
        listed = c.get("/v1/jobs?status=done", headers=env.auth("scan")).json()["items"]
        assert [j["id"] for j in listed] == [job["id"]]
        metrics = c.get("/metrics").text
        assert 'voxwarden_jobs_total{outcome="done"} 1.0' in metrics
    assert not any((env.app.state.settings.data_dir / "spool").glob("*.upload"))  # spool removed after commit
    with env.store.session() as s:
        [created] = audit.entries(s, env.tenant_a, action="job.create")
        [stored] = audit.entries(s, env.tenant_a, action="scan.create")
        assert created.target_id == job["id"] and stored.target_id == scan["id"]
        assert stored.details["job_id"] == job["id"]
        assert stored.actor == created.actor and stored.user_agent == "ua-jobs/1"  # who uploaded, from where
        assert verify_audit_chain(s).ok


def test_short_upload_stays_sync_and_async_can_be_asked(sqlite_env: Env, tmp_path: Path,
                                                         detector: CountingDetector, speech: bytes) -> None:
    env = sqlite_env
    app = create_app(Settings(data_dir=tmp_path, sync_max_seconds=600), store=env.store, detector=detector)
    with TestClient(app) as c:
        r = _post(c, env, speech)
        assert r.status_code == 201 and "location" not in r.headers
        r = _post(c, env, speech, mode="async")
        assert r.status_code == 202
        assert _wait(c, env, r.json()["id"])["status"] == "done"
        assert _post(c, env, speech, mode="later").status_code == 422


def test_bad_audio_job_fails_once_with_the_audio_error(jobs_env: Env) -> None:
    env = jobs_env
    with env.client as c:
        r = _post(c, env, b"definitely not audio " * 50, mode="async")
        assert r.status_code == 202
        done = _wait(c, env, r.json()["id"])
    assert done["status"] == "failed" and done["attempts"] == 1
    assert done["error"]["type"] == "not_media" and "long.wav" in done["error"]["message"]
    assert "spool" not in done["error"]["message"]
    assert done["scan"] is None
    with env.store.session() as s:
        assert len(audit.entries(s, env.tenant_a, action="scan.rejected")) == 1


def test_worker_killed_mid_job_is_requeued_and_finished_by_next_process(
        env: Env, tmp_path: Path, detector: CountingDetector, speech: bytes) -> None:
    # process 1 enqueues and "dies" holding the job: its lease ran out, it never heartbeats again
    app1 = create_app(Settings(data_dir=tmp_path, job_workers=0, **ASYNC), store=env.store, detector=detector)
    with TestClient(app1) as c1:
        r = _post(c1, env, speech)
        assert r.status_code == 202
        job_id = r.json()["id"]
    with env.store.session() as s:
        dead = job_repo.claim(s, "host:4242:dead:0", now=utcnow() - timedelta(minutes=30),
                              lease=timedelta(seconds=60))
        assert dead is not None and dead.id == job_id
    assert (tmp_path / "spool").is_dir() and len(list((tmp_path / "spool").glob("*.upload"))) == 1
    # process 2 starts: expired lease → queued again → scored → done, one scan
    app2 = create_app(Settings(data_dir=tmp_path, **ASYNC), store=env.store, detector=detector)
    with TestClient(app2) as c2:
        done = _wait(c2, env, job_id)
    assert done["status"] == "done" and done["attempts"] == 2
    assert _count(env.store, Scan, tenant_id=env.tenant_a) == 1
    assert not list((tmp_path / "spool").glob("*.upload"))


def test_job_finished_twice_makes_one_scan(env: Env, tmp_path: Path, detector: CountingDetector,
                                           speech: bytes) -> None:
    app = create_app(Settings(data_dir=tmp_path, job_workers=0, **ASYNC), store=env.store, detector=detector)
    with TestClient(app) as c:
        job_id = _post(c, env, speech).json()["id"]
    workers = JobWorkers(env.store, detector, tmp_path / "spool", workers=0, lease_seconds=60)
    with env.store.session() as s:  # slow worker w1 claims; its lease lapses; w2 takes over
        job_repo.claim(s, "w1", now=utcnow() - timedelta(minutes=5), lease=timedelta(seconds=60))
        job = s.get(Job, job_id)
        assert job is not None
        payload = dict(job.payload)
    assert workers.requeue_expired() == 1
    keep = (tmp_path / "spool" / payload["spool"]).read_bytes()
    out = workers.run_once("w2")
    assert out is not None and out.outcome == "done"
    (tmp_path / "spool" / payload["spool"]).write_bytes(keep)  # w1 still had its input open
    assert workers._process(job_id, env.tenant_a, payload, "w1") == "skipped"  # w1 wakes up late
    assert _count(env.store, Scan, tenant_id=env.tenant_a) == 1
    with env.store.session() as s:
        j = s.get(Job, job_id)
        assert j is not None and j.status == "done" and j.worker == "w2"


class _Broken:
    """The real detector behind a fault: every score raises (a crashing decoder, a lost model)."""

    def __init__(self, inner: CountingDetector) -> None:
        self.inner = inner
        self.calls = 0

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    def decode(self, src: Any, sr: int | None = None) -> Any:
        self.calls += 1
        raise RuntimeError("decoder exploded")

    score = decode


def test_job_failing_every_attempt_ends_failed(env: Env, tmp_path: Path, detector: CountingDetector,
                                               speech: bytes) -> None:
    app = create_app(Settings(data_dir=tmp_path, job_workers=0, **ASYNC), store=env.store, detector=detector)
    with TestClient(app) as c:
        job_id = _post(c, env, speech).json()["id"]
        broken = _Broken(detector)
        workers = JobWorkers(env.store, broken, tmp_path / "spool", workers=0, max_attempts=3)
        outcomes = [workers.run_once("w") for _ in range(4)]
        assert [o.outcome if o else None for o in outcomes] == ["requeued", "requeued", "failed", None]
        body = c.get(f"/v1/jobs/{job_id}", headers=env.auth("scan")).json()
    assert broken.calls == 3
    assert body["status"] == "failed" and body["attempts"] == 3
    assert body["error"]["type"] == "internal" and "exploded" not in body["error"]["message"]
    assert not list((tmp_path / "spool").glob("*.upload"))


def test_idempotent_jobs_and_tenant_isolation(jobs_env: Env, speech: bytes, speech_other: bytes) -> None:
    env = jobs_env
    det = env.app.state.detector
    with env.client as c:
        before = det.calls
        first = _post(c, env, speech, **{"Idempotency-Key": "long-1"})
        again = _post(c, env, speech, **{"Idempotency-Key": "long-1"})
        assert first.status_code == again.status_code == 202
        assert again.json()["id"] == first.json()["id"] and again.headers["idempotent-replayed"] == "true"
        done = _wait(c, env, first.json()["id"])
        assert done["status"] == "done"
        after = _post(c, env, speech, **{"Idempotency-Key": "long-1"})  # still the same job, now done
        assert after.status_code == 202 and after.json()["id"] == done["id"] and after.json()["scan"]["id"]
        assert det.calls == before + 1  # scored once
        assert _post(c, env, speech_other, **{"Idempotency-Key": "long-1"}).status_code == 409
        # the other tenant: 404 for this job, its own key space, its own listing
        assert c.get(f"/v1/jobs/{done['id']}", headers=env.auth("other")).status_code == 404
        assert c.get(f"/v1/scans/{done['scan_id']}", headers=env.auth("other")).status_code == 404
        assert c.get("/v1/jobs", headers=env.auth("other")).json()["items"] == []
        theirs = _post(c, env, speech, who="other", **{"Idempotency-Key": "long-1"})
        assert theirs.status_code == 202 and theirs.json()["id"] != done["id"]
        _wait(c, env, theirs.json()["id"], who="other")
        # auth: no key 401, a key without the scan scope 403, unknown id 404
        assert c.get(f"/v1/jobs/{done['id']}").status_code == 401
        assert c.get(f"/v1/jobs/{done['id']}", headers=env.auth("rooms")).status_code == 403
        assert c.get("/v1/jobs/" + "f" * 32, headers=env.auth("scan")).status_code == 404
    assert _count(env.store, Job, tenant_id=env.tenant_a) == 1
    assert _count(env.store, Scan, tenant_id=env.tenant_a) == 1


def test_spool_files_are_atomic_and_orphans_are_swept(sqlite_env: Env, tmp_path: Path) -> None:
    spool = tmp_path / "spool-x"
    name = write_spool(spool, b"abc")
    assert (spool / name).read_bytes() == b"abc" and (spool / name).stat().st_mode & 0o777 == 0o600
    (spool / ".junk.upload.tmp").write_bytes(b"half")
    w = JobWorkers(sqlite_env.store, None, spool, workers=0)
    assert w.sweep_spool(min_age_s=3600) == 0  # too young: may belong to a request being enqueued
    assert w.sweep_spool(min_age_s=0) == 2 and not list(spool.iterdir())


# -- proxy headers ---------------------------------------------------------------------------------


def test_forwarded_for_is_believed_only_from_trusted_proxies(env: Env, tmp_path: Path,
                                                             detector: CountingDetector) -> None:
    app = create_app(Settings(data_dir=tmp_path, trusted_proxies=("10.0.0.0/8", "2001:db8::/32")),
                     store=env.store, detector=detector)
    spoof = {"X-Forwarded-For": "198.51.100.66, 203.0.113.7", "X-Forwarded-Proto": "https"}

    def verify_from(peer: str) -> str | None:
        with TestClient(app, client=(peer, 5555)) as c:
            r = c.post("/v1/verify", files={"file": ("x.wav", b"not audio" * 10)},
                       headers={**env.auth("scan"), **spoof})
            assert r.status_code == 422
        with env.store.session() as s:
            return audit.entries(s, env.tenant_a, action="verify.rejected")[-1].source_ip

    assert verify_from("10.1.2.3") == "203.0.113.7"  # trusted proxy: the rightmost untrusted hop
    assert verify_from("192.0.2.50") == "192.0.2.50"  # untrusted peer: its headers are ignored
    with env.store.session() as s:
        entries = audit.entries(s, env.tenant_a, action="verify.rejected")
        assert entries[0].source_port is None and entries[1].source_port == 5555


def test_proxy_chain_rules() -> None:
    mw = ProxyHeadersMiddleware(None, ["10.0.0.0/8", "192.168.1.1"])
    h = [(b"x-forwarded-for", b"1.1.1.1, 10.9.9.9"), (b"x-forwarded-for", b"192.168.1.1")]
    assert mw.client_for("10.0.0.1", h) == ("1.1.1.1", None)  # trusted hops skipped, all headers joined
    assert mw.client_for("10.0.0.1", [(b"x-forwarded-for", b"evil, 5.6.7.8")]) == ("5.6.7.8", None)
    assert mw.client_for("10.0.0.1", [(b"x-forwarded-for", b"1.2.3.4, garbage")]) == (None, None)
    assert mw.client_for("10.0.0.1", [(b"x-forwarded-proto", b"gopher")]) == (None, None)
    assert mw.client_for("10.0.0.1", [(b"x-forwarded-proto", b"http, HTTPS")]) == (None, "https")
    assert mw.client_for("8.8.8.8", h) == (None, None)
    assert mw.client_for("testclient", h) == (None, None)
    assert str(parse_ip("[2001:db8::1]:443")) == "2001:db8::1" and str(parse_ip("1.2.3.4:80")) == "1.2.3.4"
    assert str(parse_ip("::ffff:10.0.0.1")) == "10.0.0.1" and parse_ip("nope") is None


def test_new_settings_are_checked() -> None:
    assert Settings.from_mapping({"trusted_proxies": ["10.0.0.0/8", " ::1 "]}).trusted_proxies == ("10.0.0.0/8",
                                                                                                   "::1")
    for bad in ({"trusted_proxies": ["10.0.0.0/33"]}, {"trusted_proxies": [5]}, {"trusted_proxies": 5},
                {"sync_max_seconds": 0}, {"sync_max_seconds": True}, {"job_workers": -1},
                {"job_lease_seconds": 1}, {"job_max_attempts": 0}, {"sync_max_bytes": "big"}):
        with pytest.raises(SettingsError):
            Settings.from_mapping(bad)


# -- a real kill -9 ----------------------------------------------------------------------------------


def _serve(config: Path, log: Path, port: int) -> subprocess.Popen[bytes]:
    import httpx

    exe = Path(sys.executable).with_name("voxwarden")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "voxwarden"]
    with open(log, "ab") as logf:
        proc = subprocess.Popen([*cmd, "serve", "--config", str(config)], stdout=logf, stderr=subprocess.STDOUT,
                                start_new_session=True)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    pytest.fail("server not healthy:\n" + log.read_text(errors="replace")[-3000:])


@pytest.mark.slow
@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
def test_kill_9_mid_job_then_restart_finishes_it_exactly_once(request: pytest.FixtureRequest, db: str,
                                                              tmp_path: Path, speech_dir: Path) -> None:
    """`voxwarden serve` is SIGKILLed while its worker scores a long upload; the next start finishes it."""
    import httpx

    db_url = request.getfixturevalue("pg_schema_url") if db == "postgresql" else None
    minutes = 2 if os.environ.get("VOXWARDEN_SLOW") == "reduced" else 5
    x, sr = sf.read(speech_dir / "a.wav", dtype="int16")
    reps = int(minutes * 60 * sr / len(x)) + 1
    buf = io.BytesIO()
    sf.write(buf, np.tile(x, reps), sr, format="WAV", subtype="PCM_16")
    data = buf.getvalue()
    with socket.socket() as s_:
        s_.bind(("127.0.0.1", 0))
        port = int(s_.getsockname()[1])
    cfg, log, spool = tmp_path / "api.toml", tmp_path / "serve.log", tmp_path / "data" / "spool"
    cfg.write_text(f'data_dir = "{tmp_path / "data"}"\nport = {port}\njob_lease_seconds = 3\n'
                   f"max_upload_bytes = {len(data) + 1024}\n"
                   + (f"database_url = {json.dumps(db_url)}\n" if db_url else ""))
    store = Store(db_url) if db_url else Store(data_dir=tmp_path / "data")
    try:
        with store.session() as s:
            tenant = keys.create_tenant(s, "acme").id
            token = keys.create_api_key(s, tenant, "up", ["scan"]).token
    finally:
        store.dispose()
    url, auth = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {token}", "Idempotency-Key": "big-1"}
    proc = _serve(cfg, log, port)
    try:
        r = httpx.post(f"{url}/v1/scans", files={"file": ("big.wav", data, "audio/wav")}, headers=auth, timeout=60)
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
        deadline = time.monotonic() + 60
        status = "queued"
        while status == "queued" and time.monotonic() < deadline:
            status = httpx.get(f"{url}/v1/jobs/{job_id}", headers=auth, timeout=10).json()["status"]
            time.sleep(0.02)
        assert status == "running", status  # the worker has it: now it dies
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        assert len(list(spool.glob("*.upload"))) == 1  # the upload survived the crash
        proc = _serve(cfg, log, port)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            body = httpx.get(f"{url}/v1/jobs/{job_id}", headers=auth, timeout=10).json()
            if body["status"] in ("done", "failed"):
                break
            time.sleep(0.2)
        assert body["status"] == "done" and body["attempts"] == 2, body
        assert body["scan"]["duration"] > minutes * 60 - 1 and body["scan"]["segments"]
        again = httpx.post(f"{url}/v1/scans", files={"file": ("big.wav", data, "audio/wav")}, headers=auth,
                           timeout=60)
        assert again.status_code == 202 and again.json()["id"] == job_id and again.json()["status"] == "done"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(20)
    assert not list(spool.glob("*.upload"))
    store = Store(db_url) if db_url else Store(data_dir=tmp_path / "data")
    try:
        assert _count(store, Scan, tenant_id=tenant) == 1 and _count(store, Job, tenant_id=tenant) == 1
        with store.session() as s:
            assert verify_audit_chain(s).ok
    finally:
        store.dispose()
        if db_url:
            pg_empty(db_url)


def test_proxy_middleware_rewrites_websocket_scopes_too() -> None:
    import asyncio

    seen: list[dict[str, Any]] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope)

    mw = ProxyHeadersMiddleware(inner, ["127.0.0.1"])
    headers = [(b"x-forwarded-for", b"203.0.113.9"), (b"x-forwarded-proto", b"https")]
    for peer in ("127.0.0.1", "127.0.0.2"):
        asyncio.run(mw({"type": "websocket", "client": (peer, 999), "scheme": "ws", "headers": headers},
                       None, None))
    assert seen[0]["client"] == ("203.0.113.9", None) and seen[0]["scheme"] == "wss"
    assert seen[1]["client"] == ("127.0.0.2", 999) and seen[1]["scheme"] == "ws"


class _Slow:
    """The real detector, made slow: scoring takes `delay` seconds longer (a long recording)."""

    def __init__(self, inner: CountingDetector, delay: float) -> None:
        self.inner, self.delay = inner, delay

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    def decode(self, src: Any, sr: int | None = None) -> Any:
        return self.inner.decode(src, sr)

    def score_decoded(self, clip: Any) -> Any:
        time.sleep(self.delay)
        return self.inner.score_decoded(clip)


def test_heartbeats_keep_a_long_job_leased(sqlite_env: Env, tmp_path: Path, detector: CountingDetector,
                                           speech: bytes) -> None:
    import threading

    env = sqlite_env
    app = create_app(Settings(data_dir=tmp_path, job_workers=0, **ASYNC), store=env.store, detector=detector)
    with TestClient(app) as c:
        job_id = _post(c, env, speech).json()["id"]
    workers = JobWorkers(env.store, _Slow(detector, 1.2), tmp_path / "spool", workers=0, lease_seconds=0.3)
    out: list[Any] = []
    t = threading.Thread(target=lambda: out.append(workers.run_once("w-slow")))
    t.start()
    time.sleep(0.8)  # well past the first 0.3 s lease: only heartbeats keep it
    assert JobWorkers(env.store, detector, tmp_path / "spool", workers=0).requeue_expired() == 0
    with env.store.session() as s:
        job = s.get(Job, job_id)
        assert job is not None and job.status == "running" and job.worker == "w-slow" and job.attempts == 1
    t.join(30)
    assert out and out[0].outcome == "done"


def test_long_verify_is_a_job_whose_result_is_the_verdict(jobs_env: Env, speech: bytes) -> None:
    env = jobs_env
    with env.client as c:
        labelled = c.post("/v1/mark/label?mode=sync", files={"file": ("s.wav", speech)},
                          data={"producer": "acme-tts", "produce_id": "5"}, headers=env.auth("mark")).content
        r = c.post("/v1/verify", files={"file": ("../l.wav", labelled)},
                   headers={**env.auth("mark"), "Idempotency-Key": "v-1"})
        assert r.status_code == 202, r.text
        job = r.json()
        assert job["kind"] == "verify" and r.headers["location"] == f"/v1/jobs/{job['id']}"
        done = _wait(c, env, job["id"], who="mark")  # a mark-only key reads its verify job
        assert done["status"] == "done" and done["scan"] is None, done
        verdict = done["result"]
        assert verdict["verdict"] == "labelled-ai" and verdict["signature_valid"] is True
        assert verdict["path"] == "l.wav" and "spool" not in str(verdict) and verdict["sha256"] == job["sha256"]
        again = c.post("/v1/verify", files={"file": ("l.wav", labelled)},
                       headers={**env.auth("mark"), "Idempotency-Key": "v-1"})
        assert again.status_code == 202 and again.json()["id"] == job["id"]
        # one key, one kind: the same key for a scan is a conflict
        assert _post(c, env, labelled, **{"Idempotency-Key": "v-1"}).status_code == 409
        # scan jobs stay out of a mark-only key's reach; another tenant sees nothing
        scan_job = _post(c, env, speech).json()
        assert c.get(f"/v1/jobs/{scan_job['id']}", headers=env.auth("mark")).status_code == 403
        assert [j["kind"] for j in c.get("/v1/jobs", headers=env.auth("mark")).json()["items"]] == ["verify"]
        assert c.get(f"/v1/jobs/{job['id']}", headers=env.auth("other")).status_code == 404
        bad = c.post("/v1/verify?mode=async", files={"file": ("x.wav", b"no audio here " * 40)},
                     headers=env.auth("scan"))
        failed = _wait(c, env, bad.json()["id"])
        assert failed["status"] == "failed" and failed["error"]["type"] == "not_media" and failed["result"] is None
        _wait(c, env, scan_job["id"])
    with env.store.session() as s:  # the verdict is the job's own column, not part of its request payload
        row = s.get(Job, job["id"])
        assert row.result["verdict"] == "labelled-ai" and "result" not in (row.payload or {})
        [v] = audit.entries(s, env.tenant_a, action="verify")
        assert v.details["job_id"] == job["id"] and v.details["verdict"] == "labelled-ai"
        assert len(audit.entries(s, env.tenant_a, action="verify.rejected")) == 1
        assert verify_audit_chain(s).ok


def test_long_mark_uploads_are_jobs_with_downloadable_files(jobs_env: Env, speech: bytes) -> None:
    env = jobs_env
    with env.client as c:
        r = c.post("/v1/mark/embed", files={"file": ("voice.wav", speech)},
                   data={"provider": "acme", "content_id": "7"}, headers={**env.auth("mark"), "Idempotency-Key": "m-1"})
        assert r.status_code == 202 and r.json()["kind"] == "mark_embed", r.text
        done = _wait(c, env, r.json()["id"], who="mark")
        assert done["status"] == "done", done
        info = done["result"]["file"]
        assert info["url"] == f"/v1/jobs/{done['id']}/file" and info["filename"] == "voice.marked.wav"
        f = c.get(info["url"], headers=env.auth("mark"))
        assert f.status_code == 200 and f.headers["content-type"] == "audio/wav"
        assert hashlib.sha256(f.content).hexdigest() == info["sha256"] and len(f.content) == info["size"]
        assert 'filename="voice.marked.wav"' in f.headers["content-disposition"]
        # detect as a job: the result is the answer; the other tenant's key can neither read nor download
        d = c.post("/v1/mark/detect?mode=async", files={"file": ("m.wav", f.content)}, headers=env.auth("mark"))
        found = _wait(c, env, d.json()["id"], who="mark")["result"]
        assert found["present"] is True and found["payload"] == done["result"]["payload"]
        assert c.get(info["url"], headers=env.auth("other")).status_code == 404
        assert c.get(info["url"], headers=env.auth("scan")).status_code == 403
        assert c.get(f"/v1/jobs/{d.json()['id']}/file", headers=env.auth("mark")).status_code == 404  # no file
        with env.store.session() as s:  # a job finished before migration 0007 kept its result in the payload
            row = s.get(Job, done["id"])
            assert row.result == done["result"] and "result" not in row.payload
            row.payload, row.result = {**row.payload, "result": row.result}, None
        assert c.get(f"/v1/jobs/{done['id']}", headers=env.auth("mark")).json()["result"] == done["result"]
        assert c.get(info["url"], headers=env.auth("mark")).content == f.content
        lab = c.post("/v1/mark/label?mode=async", files={"file": ("m.wav", f.content)},
                     data={"producer": "acme", "produce_id": "7"}, headers=env.auth("mark"))
        lab_done = _wait(c, env, lab.json()["id"], who="mark")
        labelled = c.get(lab_done["result"]["file"]["url"], headers=env.auth("mark")).content
        v = c.post("/v1/verify?mode=sync", files={"file": ("l.wav", labelled)}, headers=env.auth("mark")).json()
        assert v["verdict"] == "labelled-ai" and v["watermark"]["present"] is True
        bad = c.post("/v1/mark/embed?mode=async", files={"file": ("x.wav", b"no audio " * 50)},
                     data={"payload": "01020304"}, headers=env.auth("mark"))
        failed = _wait(c, env, bad.json()["id"], who="mark")
        assert failed["status"] == "failed" and failed["error"]["type"] == "not_media"
    spool = env.app.state.settings.data_dir / "spool"
    assert sorted(p.name.split(".", 1)[1] for p in spool.iterdir()) == ["result.wav", "result.wav"]
    workers = env.app.state.jobs
    assert workers.sweep_spool(min_age_s=0) == 0  # fresh results are kept ...
    workers.result_ttl = timedelta(0)
    assert workers.sweep_spool(min_age_s=0) == 2 and not list(spool.iterdir())  # ... until they expire
    with env.store.session() as s:
        assert [e.details["job_id"] for e in audit.entries(s, env.tenant_a, action="mark.embed")] == [done["id"]]
        assert len(audit.entries(s, env.tenant_a, action="mark.rejected")) == 1
