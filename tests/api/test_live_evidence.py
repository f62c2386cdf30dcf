"""Evidence audio end to end (SQLite and PostgreSQL): a live room's alert keeps the audio of its span
(content-addressed WAV whose hash, length and samples are checked), the review console plays and exports
it; a replayed alert adds no second evidence row; a disk that refuses the file keeps the alert; a long span
is truncated and says so; flagged uploads (sync and as jobs) keep their audio once; the live settings."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import time
import wave
import zipfile
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from _api_support import Env, espeak_speech, make_env, pg_empty
from _console_support import PASSWORD, _password_hash, csrf_from
from sqlalchemy import select

from voxwarden.api import Settings
from voxwarden.api.scan_evidence import MAX_SECONDS, flagged_spans, scan_evidence
from voxwarden.api.settings import SettingsError
from voxwarden.live import Alert, EvidenceClip, SessionStarted, StreamOptions, pack_frame
from voxwarden.store import Store, keys
from voxwarden.store.evidence import evidence_for, ref_of
from voxwarden.store.models import Alert as AlertRow
from voxwarden.store.models import AuditLog, Evidence, User

SR = 16000
FRAME = 320
WINDOW = 4.0  # the packaged model's window (s)
RULES = """\
version: 1
rules:
  - name: two-windows
    signal: probability
    threshold: 0.0
    sustain: {windows: 2}
    cooldown: 600
    severity: critical
"""
EVERY_WINDOW = """\
version: 1
rules:
  - name: every-window
    signal: probability
    threshold: 0.0
    sustain: {windows: 1}
    cooldown: 0
"""


@pytest.fixture(scope="module")
def speech16k(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    x = espeak_speech(tmp_path_factory.mktemp("evidence"),
                      "the speaker in this room keeps talking so that two windows in a row are judged", sr=SR)
    return np.concatenate([x, x])[: SR * 9]


def _store(kind: str, request: pytest.FixtureRequest, tmp: Path) -> tuple[Store, str | None]:
    if kind == "sqlite":
        db = tmp / "voxwarden.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), db)
        return Store(f"sqlite:///{db}", evidence_dir=tmp / "evidence", migrate=False), None
    url = request.getfixturevalue("pg_schema_url")
    return Store(url, evidence_dir=tmp / "evidence", migrate=False), url


def _live_env(request: pytest.FixtureRequest, tmp: Path, detector: Any, kind: str, rules: str) -> Iterator[Env]:
    (tmp / "rules.yaml").write_text(rules)
    store, url = _store(kind, request, tmp)
    e = make_env(store, detector, tmp, rules_path=tmp / "rules.yaml")
    yield e
    e.app.state.live.stop()
    e.client.close()
    store.dispose()
    if url is not None:
        pg_empty(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def live_env(request: pytest.FixtureRequest, tmp_path: Path, live_detector: Any) -> Iterator[Env]:
    yield from _live_env(request, tmp_path, live_detector, request.param, RULES)


@pytest.fixture
def every_window_env(request: pytest.FixtureRequest, tmp_path: Path, live_detector: Any) -> Iterator[Env]:
    yield from _live_env(request, tmp_path, live_detector, "sqlite", EVERY_WINDOW)


def _frames(x: np.ndarray) -> list[bytes]:
    pcm = np.clip(np.round(x * 32767.0), -32768, 32767).astype("<i2")
    return [pack_frame(i, pcm[j:j + FRAME].tobytes()) for i, j in enumerate(range(0, pcm.size, FRAME))]


def _stream(env: Env, x: np.ndarray, session: str) -> list[dict[str, Any]]:
    hello = {"type": "hello", "room": "r1", "speaker": "alice", "codec": "pcm16", "sample_rate": SR,
             "stream_start": 1_700_000_000.0, "session": session}
    msgs = []
    with env.client.websocket_connect(f"/v1/rooms/r1/stream?token={env.tokens['rooms']}") as ws:
        ws.send_text(json.dumps(hello))
        assert ws.receive_json()["type"] == "session_started"
        for f in _frames(x):
            ws.send_bytes(f)
        ws.send_text(json.dumps({"type": "end"}))
        while True:
            m = ws.receive_json()
            msgs.append(m)
            if m["type"] == "session_ended":
                return msgs


def _wav(data: bytes) -> np.ndarray:
    with wave.open(io.BytesIO(data)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, SR)
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")


def _reviewer(env: Env) -> Any:
    """A logged-in console client for a reviewer of tenant A."""
    from fastapi.testclient import TestClient

    with env.store.session() as s:
        s.add(User(tenant_id=env.tenant_a, username="rita", role="reviewer", password_hash=_password_hash()))
        tenant_name = keys.get_tenant(s, env.tenant_a).name
    c = TestClient(env.app, base_url="https://testserver", follow_redirects=False)
    page = c.get("/console/login")
    r = c.post("/console/login", data={"csrf_token": csrf_from(page.text), "tenant": tenant_name,
                                       "username": "rita", "password": PASSWORD})
    assert r.status_code == 303, r.text
    return c


# -- live alerts -------------------------------------------------------------------------------------


def test_live_alert_keeps_the_audio_of_its_span(live_env: Env, speech16k: np.ndarray) -> None:
    msgs = _stream(live_env, speech16k, "s-ev")
    alerts = [m for m in msgs if m["type"] == "alert"]
    assert len(alerts) == 1, [m["type"] for m in msgs]  # two windows, then a long cooldown
    a = alerts[0]
    span = a["end"] - a["run_start"]
    assert a["evidence"]["truncated"] is False and a["evidence"]["start"] == a["run_start"]
    store = live_env.store
    with store.session() as s:
        row = s.scalars(select(AlertRow).where(AlertRow.tenant_id == live_env.tenant_a)).one()
        [ev] = evidence_for(s, live_env.tenant_a, alert_id=row.id)
        ev_id, ref, media = ev.id, ref_of(ev), ev.media_type
        assert (ev.start, ev.end) == (a["run_start"], a["end"])  # the console's shaded span
        assert row.details["evidence"]["sha256"] == ev.sha256
    assert media == "audio/wav"
    path = store.evidence.abspath(ref)
    data = path.read_bytes()
    assert hashlib.sha256(data).hexdigest() == ref.sha256 and len(data) == ref.size
    got = _wav(data)
    assert abs(got.size / SR - span) <= WINDOW  # the span's duration, ±1 window
    i = int(round(a["run_start"] * SR))
    want = np.clip(np.round(speech16k[i:i + got.size] * 32767.0), -32768, 32767).astype(np.int16)
    assert int(np.max(np.abs(got.astype(np.int32) - want))) <= 1  # the room's own audio, not any audio

    web = _reviewer(live_env)
    page = web.get(f"/console/alerts/{row.id}")
    assert page.status_code == 200 and f"/console/evidence/{ev_id}" in page.text
    assert "No audio evidence stored" not in page.text
    r = web.get(f"/console/evidence/{ev_id}")
    assert r.status_code == 200 and r.content == data
    assert r.headers["content-type"] == "audio/wav" and r.headers["x-evidence-sha256"] == ref.sha256
    z = zipfile.ZipFile(io.BytesIO(web.get(f"/console/alerts/{row.id}/export.zip").content))
    assert z.read(f"evidence/{ref.sha256}.wav") == data
    web.close()


def test_long_run_is_truncated_to_the_cap_and_says_so(every_window_env: Env, speech16k: np.ndarray) -> None:
    env = every_window_env
    env.app.state.live.options = StreamOptions(evidence_seconds=5.0)  # before the tenant's hub exists
    alerts = [m for m in _stream(env, speech16k, "s-long") if m["type"] == "alert"]
    assert len(alerts) >= 3
    late = [a for a in alerts if a["end"] - a["run_start"] > 5.0 + 1e-6]
    assert late and all(a["evidence"]["truncated"] for a in late)
    with env.store.session() as s:
        rows = {r.natural_key: r for r in s.scalars(select(AlertRow).where(AlertRow.tenant_id == env.tenant_a))}
        assert len(rows) == len(alerts)
        for r in rows.values():
            [ev] = evidence_for(s, env.tenant_a, alert_id=r.id)
            info = r.details["evidence"]
            seconds = _wav(env.store.evidence.read(ref_of(ev))).size / SR
            assert seconds <= 5.0 + 1e-9 and ev.end == r.details["end"]
            assert info["truncated"] is (r.details["end"] - r.details["run_start"] > 5.0 + 1e-6)
            assert info["requested_start"] == r.details["run_start"]


def _sink_alert(env: Env, audio: np.ndarray) -> Alert:
    clip = EvidenceClip(audio, SR, 2.0, 2.0 + audio.size / SR, 2.0, 2.0 + audio.size / SR)
    return Alert(room="r9", speaker="bob", session="s-replay", rule="two-windows", window_start=1_700_000_004.0,
                 window_end=1_700_000_008.0, start=4.0, end=8.0, run_start=2.0, windows=2, probability=0.9,
                 evidence=clip)


def test_a_replayed_alert_does_not_duplicate_its_evidence(live_env: Env) -> None:
    sink = live_env.app.state.live.tenant(live_env.tenant_a).sink
    sink(SessionStarted(room="r9", speaker="bob", session="s-replay", codec="pcm16", sample_rate=SR))
    first = (np.arange(SR * 2) % 200).astype(np.int16)
    sink(_sink_alert(live_env, first))
    sink(_sink_alert(live_env, first))  # the same event again
    sink(_sink_alert(live_env, first[::-1].copy()))  # a replay whose trail held other audio of the span
    with live_env.store.session() as s:
        [row] = s.scalars(select(AlertRow).where(AlertRow.tenant_id == live_env.tenant_a)).all()
        evs = s.scalars(select(Evidence).where(Evidence.tenant_id == live_env.tenant_a)).all()
        assert [e.alert_id for e in evs] == [row.id]
        assert evs[0].sha256 == hashlib.sha256(EvidenceClip(first, SR, 0, 2, 0, 2).wav()).hexdigest()


def test_evidence_that_cannot_be_written_keeps_the_alert(every_window_env: Env, tmp_path: Path) -> None:
    env = every_window_env
    blocker = tmp_path / "not-a-dir"
    blocker.write_bytes(b"x")
    sink = env.app.state.live.tenant(env.tenant_a).sink
    sink.evidence = type(sink.evidence)(blocker / "evidence")  # mkdir under a file fails: disk trouble
    sink(SessionStarted(room="r9", speaker="bob", session="s-replay", codec="pcm16", sample_rate=SR))
    sink(_sink_alert(env, np.ones(SR, dtype=np.int16)))
    with env.store.session() as s:
        [row] = s.scalars(select(AlertRow).where(AlertRow.tenant_id == env.tenant_a)).all()
        assert "error" in row.details["evidence"] and not evidence_for(s, env.tenant_a, alert_id=row.id)


# -- file scans ----------------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def flagging_env(request: pytest.FixtureRequest, tmp_path: Path, live_detector: Any) -> Iterator[Env]:
    """An app whose detector flags everything (threshold 0) and treats uploads over 1 s as jobs on demand."""
    from voxwarden.detect import Detector

    store, url = _store(request.param, request, tmp_path)
    e = make_env(store, Detector(live_detector.card, live_detector.backend, _options(threshold=0.0)), tmp_path)
    yield e
    e.client.close()
    store.dispose()
    if url is not None:
        pg_empty(url)


def _options(**kw: Any) -> Any:
    from voxwarden.detect.detector import DetectorOptions

    return DetectorOptions(**kw)


def _scan_evidence(env: Env, scan_id: str) -> list[Evidence]:
    with env.store.session() as s:
        return list(s.scalars(select(Evidence).where(Evidence.tenant_id == env.tenant_a, Evidence.scan_id == scan_id)))


def _wait_job(env: Env, c: Any, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        body = c.get(f"/v1/jobs/{job_id}", headers=env.auth("scan")).json()
        if body["status"] in ("done", "failed") or time.monotonic() > deadline:
            return body
        time.sleep(0.05)


def test_flagged_upload_keeps_its_audio_once(flagging_env: Env, speech: bytes) -> None:
    env = flagging_env
    with env.client as c:
        hdr = {**env.auth("scan"), "Idempotency-Key": "up-1"}
        r = c.post("/v1/scans?mode=sync", files={"file": ("a.wav", speech, "audio/wav")}, headers=hdr)
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["decision"] == "synthetic"
        [ev] = _scan_evidence(env, body["id"])
        data = env.store.evidence.read(ref_of(ev))  # re-hashed on read
        got = _wav(data)
        assert ev.media_type == "audio/wav" and ev.start == 0.0
        assert abs(got.size / SR - body["duration"]) < 0.05 and ev.end == pytest.approx(got.size / SR)
        again = c.post("/v1/scans?mode=sync", files={"file": ("a.wav", speech, "audio/wav")}, headers=hdr)
        assert again.status_code == 200 and len(_scan_evidence(env, body["id"])) == 1
        # the API lists and serves it, to the scan's tenant only, and logs the download
        listed = c.get(f"/v1/scans/{body['id']}/evidence", headers=env.auth("scan"))
        assert listed.status_code == 200, listed.text
        [item] = listed.json()["evidence"]
        assert item["id"] == ev.id and item["sha256"] == ev.sha256 and item["media_type"] == "audio/wav"
        url = f"/v1/scans/{body['id']}/evidence/{ev.id}"
        got_bytes = c.get(url, headers=env.auth("scan"))
        assert got_bytes.status_code == 200 and got_bytes.content == data
        assert got_bytes.headers["content-type"].startswith("audio/wav")
        assert hashlib.sha256(got_bytes.content).hexdigest() == got_bytes.headers["x-evidence-sha256"] == ev.sha256
        assert c.get(url, headers=env.auth("other")).status_code == 404
        assert c.get(f"/v1/scans/{body['id']}/evidence", headers=env.auth("other")).status_code == 404
        assert c.get(url, headers=env.auth("rooms")).status_code == 403
        assert c.get(f"/v1/scans/{body['id']}/evidence/{'0' * 32}", headers=env.auth("scan")).status_code == 404
        with env.store.session() as s:
            logged = s.scalars(select(AuditLog).where(AuditLog.action == "evidence.download")).all()
            assert [a.target_id for a in logged] == [ev.id]
        # a file altered on disk is refused, not served
        path = env.store.evidence.abspath(ref_of(ev))
        path.chmod(0o644)
        path.write_bytes(data[:-2] + b"\x00\x01")
        assert c.get(url, headers=env.auth("scan")).status_code == 409
        path.write_bytes(data)
        # the same upload as a job (another key): its scan keeps the same audio, linked to it
        job = c.post("/v1/scans?mode=async", files={"file": ("a.wav", speech, "audio/wav")},
                     headers={**env.auth("scan"), "Idempotency-Key": "up-2"})
        assert job.status_code == 202, job.text
        done = _wait_job(env, c, job.json()["id"])
        assert done["status"] == "done", done
        assert done["scan"]["decision"] == "synthetic"
        [jev] = _scan_evidence(env, done["scan_id"])
        assert jev.sha256 == ev.sha256


def test_bonafide_upload_keeps_no_audio(tmp_path: Path, sqlite_template: Path, speech: bytes,
                                       live_detector: Any) -> None:
    from voxwarden.detect import Detector

    assert scan_evidence(SimpleNamespace(decision="bonafide", segments=[], threshold=0.5), speech) == []
    db = tmp_path / "voxwarden.db"
    shutil.copyfile(sqlite_template, db)
    store = Store(f"sqlite:///{db}", evidence_dir=tmp_path / "evidence", migrate=False)
    never = Detector(live_detector.card, live_detector.backend, _options(threshold=1.01))  # flags nothing
    env = make_env(store, never, tmp_path)
    try:
        with env.client as c:
            r = c.post("/v1/scans?mode=sync", files={"file": ("a.wav", speech, "audio/wav")}, headers=env.auth("scan"))
            assert r.status_code == 201 and r.json()["decision"] == "bonafide"
            assert _scan_evidence(env, r.json()["id"]) == []
    finally:
        env.client.close()
        store.dispose()


def test_long_flagged_upload_keeps_its_flagged_segments(tmp_path: Path, speech16k: np.ndarray) -> None:
    from voxwarden.live import wav_pcm16

    x = np.concatenate([speech16k] * 5)  # 45 s: longer than what is kept whole
    src = tmp_path / "long.wav"
    src.write_bytes(wav_pcm16(x, SR))
    seg = SimpleNamespace
    segs = [seg(start=0.0, end=4.0, probability=0.2), seg(start=10.0, end=14.0, probability=0.9),
            seg(start=12.0, end=16.0, probability=0.8), seg(start=30.0, end=34.0, probability=0.95)]
    clips = scan_evidence(SimpleNamespace(decision="synthetic", segments=segs, threshold=0.7), src)
    assert [(c.start, c.end) for c in clips] == [(10.0, 16.0), (30.0, 34.0)]
    for c in clips:
        i = int(c.start * SR)
        want = np.clip(np.round(x[i:i + c.samples.size] * 32767.0), -32768, 32767).astype(np.int16)
        assert c.samples.size == int((c.end - c.start) * SR)
        assert int(np.max(np.abs(c.samples.astype(np.int32) - want))) <= 1
    # no single segment over the threshold: the most probable one; and the total is capped
    assert flagged_spans(segs[:1] + [seg(start=5.0, end=9.0, probability=0.3)], 0.7) == [(5.0, 9.0)]
    many = [seg(start=float(k), end=float(k) + 4.0, probability=0.9) for k in range(0, 40, 4)]
    capped = scan_evidence(SimpleNamespace(decision="synthetic", segments=many, threshold=0.5), src)
    assert sum(c.duration for c in capped) <= MAX_SECONDS + 1e-9
    assert flagged_spans([], 0.5) == []


# -- settings ---------------------------------------------------------------------------------------


def test_live_settings_are_checked_and_reach_the_live_service(tmp_path: Path, live_detector: Any,
                                                              sqlite_template: Path) -> None:
    assert Settings().live_max_backlog == 10.0 and Settings().live_score_threads is None
    s = Settings.from_mapping({"live_max_backlog": 4, "live_score_threads": 3})
    assert (s.live_max_backlog, s.live_score_threads) == (4.0, 3)
    assert Settings.from_mapping({"live_max_backlog": "none"}).live_max_backlog is None
    for bad in ({"live_max_backlog": 0}, {"live_max_backlog": -1.0}, {"live_max_backlog": True},
                {"live_max_backlog": "lots"}, {"live_max_backlog": float("inf")}, {"live_score_threads": 0},
                {"live_score_threads": 2.5}, {"live_score_threads": False}, {"live_score_threads": "many"}):
        with pytest.raises(SettingsError):
            Settings.from_mapping(bad)
    cfg = tmp_path / "vw.toml"
    cfg.write_text('live_max_backlog = 6.5\nlive_score_threads = 2\n')
    assert (Settings.from_file(cfg).live_max_backlog, Settings.from_file(cfg).live_score_threads) == (6.5, 2)
    db = tmp_path / "voxwarden.db"
    shutil.copyfile(sqlite_template, db)
    store = Store(f"sqlite:///{db}", evidence_dir=tmp_path / "evidence", migrate=False)
    env = make_env(store, live_detector, tmp_path, live_max_backlog=6.5, live_score_threads=3)
    try:
        live = env.app.state.live
        assert live.options.max_backlog == 6.5 and live.score_pool._max_workers == 3
    finally:
        env.app.state.live.stop()
        env.client.close()
        store.dispose()
