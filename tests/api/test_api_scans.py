"""POST/GET /v1/scans and POST /v1/verify: scoring, idempotency, size limit, bad audio, audit, paging."""

from __future__ import annotations

import hashlib

from _api_support import MAX_UPLOAD, Env

from voxwarden.api.routes_scan import display_name
from voxwarden.detect.result import ScanResult
from voxwarden.mark.verify import VERDICTS
from voxwarden.store import audit, verify_audit_chain
from voxwarden.store import scans as scan_repo


def _post(env: Env, data: bytes, who: str = "scan", name: str = "clip.wav", **headers: str):  # noqa: ANN202
    return env.client.post("/v1/scans", files={"file": (name, data, "audio/wav")},
                           headers={**env.auth(who), **headers})


def test_scan_is_scored_stored_audited_and_readable(env: Env, speech: bytes) -> None:
    r = _post(env, speech, name="../../etc/passwd", **{"User-Agent": "pytest-agent/1"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["decision"] in ("synthetic", "bonafide")
    assert 0.0 <= body["probability"] <= 1.0
    assert body["sha256"] == hashlib.sha256(speech).hexdigest() and body["size"] == len(speech)
    assert body["segments"] and body["model"] == env.app.state.detector.model_id
    assert body["name"] == "passwd"  # a hostile name is stored as text only, path parts dropped
    got = env.client.get(f"/v1/scans/{body['id']}", headers=env.auth("scan"))
    assert got.status_code == 200 and got.json() == body
    with env.store.session() as s:
        [entry] = audit.entries(s, env.tenant_a, action="scan.create")
        assert entry.target_id == body["id"]
        assert entry.source_ip == "testclient" and entry.source_port is not None
        assert entry.user_agent == "pytest-agent/1"
        assert entry.actor.startswith("key:")
        assert verify_audit_chain(s).ok


def test_idempotent_retry_returns_stored_result_without_rescoring(env: Env, speech: bytes,
                                                                    speech_other: bytes) -> None:
    det = env.app.state.detector
    before = det.calls
    first = _post(env, speech, **{"Idempotency-Key": "upload-42"})
    assert first.status_code == 201
    again = _post(env, speech, **{"Idempotency-Key": "upload-42"})
    assert again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert det.calls == before + 1  # scored once
    conflict = _post(env, speech_other, **{"Idempotency-Key": "upload-42"})
    assert conflict.status_code == 409 and conflict.json()["type"] == "conflict"
    assert det.calls == before + 1
    # the same key in another tenant is another upload
    assert _post(env, b"not audio at all", who="other", **{"Idempotency-Key": "upload-42"}).status_code == 422
    listed = env.client.get("/v1/scans", headers=env.auth("scan")).json()["items"]
    assert [i["id"] for i in listed] == [first.json()["id"]]


def test_bad_idempotency_key_is_422(sqlite_env: Env) -> None:
    r = _post(sqlite_env, b"x", **{"Idempotency-Key": "a" * 201})
    assert r.status_code == 422 and r.json()["type"] == "invalid_request"


def test_bad_audio_is_422_with_type_and_message(env: Env) -> None:
    for data, kind in ((b"this is plainly not audio" * 20, "not_media"), (b"", "empty_file"),
                       (b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\xff" * 40, None)):
        r = _post(env, data)
        assert r.status_code == 422, r.text
        body = r.json()
        assert set(body) == {"type", "message"} and body["message"]
        if kind:
            assert body["type"] == kind
    assert env.client.get("/v1/scans", headers=env.auth("scan")).json()["items"] == []
    with env.store.session() as s:
        assert len(audit.entries(s, env.tenant_a, action="scan.rejected")) == 3


def test_missing_file_field_is_422(sqlite_env: Env) -> None:
    r = sqlite_env.client.post("/v1/scans", data={"x": "1"}, headers=sqlite_env.auth("scan"))
    assert r.status_code == 422 and r.json()["type"] == "invalid_request"


def test_upload_too_large_is_413(env: Env) -> None:
    det = env.app.state.detector
    before = det.calls
    just_over = _post(env, b"\0" * (MAX_UPLOAD + 1))  # within the multipart allowance: the route refuses
    assert just_over.status_code == 413 and just_over.json()["type"] == "too_large"
    far_over = _post(env, b"\0" * (MAX_UPLOAD * 3))  # Content-Length beyond it: the middleware refuses
    assert far_over.status_code == 413 and far_over.json()["type"] == "too_large"
    at_limit = _post(env, b"\0" * MAX_UPLOAD)  # not too large, just not audio
    assert at_limit.status_code == 422
    assert det.calls == before + 1


def test_streamed_body_without_length_is_cut_at_limit(sqlite_env: Env) -> None:
    def chunks():  # noqa: ANN202
        yield b"--xx\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\r\n"
        for _ in range(40):
            yield b"\0" * 65536  # 2.6 MB, no Content-Length header (chunked)

    r = sqlite_env.client.post("/v1/scans", content=chunks(),
                               headers={**sqlite_env.auth("scan"),
                                        "Content-Type": "multipart/form-data; boundary=xx"})
    assert r.status_code == 413


def test_list_is_paginated_newest_first(sqlite_env: Env) -> None:
    env = sqlite_env
    with env.store.session() as s:
        for i in range(5):
            res = ScanResult(path=None, score=float(i), probability=0.1, decision="bonafide", threshold=0.5, model="m")
            scan_repo.record_scan(s, env.tenant_a, res, sha256=hashlib.sha256(bytes([i])).hexdigest())
    seen: list[str] = []
    offset: int | None = 0
    while offset is not None:
        page = env.client.get(f"/v1/scans?limit=2&offset={offset}", headers=env.auth("scan")).json()
        assert len(page["items"]) <= 2
        seen += [i["id"] for i in page["items"]]
        offset = page["next_offset"]
    assert len(seen) == len(set(seen)) == 5
    assert env.client.get("/v1/scans?limit=0", headers=env.auth("scan")).status_code == 422
    big = env.client.get("/v1/scans?limit=100000", headers=env.auth("scan")).json()
    assert big["limit"] == env.app.state.settings.page_size_max
    only = env.client.get("/v1/scans?decision=synthetic", headers=env.auth("scan")).json()
    assert only["items"] == []


def test_verify_gives_a_verdict_and_hides_server_paths(env: Env, speech: bytes) -> None:
    r = env.client.post("/v1/verify", files={"file": ("..\\..\\evil name.wav", speech, "audio/wav")},
                        headers=env.auth("mark"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["verdict"] in VERDICTS and body["verdict"] != "error"
    assert body["path"] == "evil name.wav"
    assert "voxwarden-upload-" not in r.text and "/tmp" not in r.text
    assert body["sha256"] == hashlib.sha256(speech).hexdigest()
    bad = env.client.post("/v1/verify", files={"file": ("x.wav", b"garbage" * 30, "audio/wav")},
                          headers=env.auth("scan"))
    assert bad.status_code == 422 and set(bad.json()) == {"type", "message"}
    assert "/tmp" not in bad.text
    with env.store.session() as s:
        assert [e.action for e in audit.entries(s, env.tenant_a)] == ["verify", "verify.rejected"]


def test_display_name_is_inert_text() -> None:
    assert display_name("../../etc/passwd") == "passwd"
    assert display_name("C:\\Windows\\x.wav") == "x.wav"
    assert display_name("a\x00b\nc.wav") == "a?b?c.wav"
    assert display_name("dir/") is None and display_name(None) is None
    assert len(display_name("x" * 5000) or "") == 255


def test_concurrent_retries_with_one_key_score_once(sqlite_env: Env, speech: bytes) -> None:
    import asyncio

    import httpx

    env = sqlite_env
    det = env.app.state.detector
    before = det.calls

    async def go() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=env.app, client=("10.0.0.7", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            def one() -> object:
                return c.post("/v1/scans", files={"file": ("a.wav", speech, "audio/wav")},
                              headers={**env.auth("scan"), "Idempotency-Key": "same"})
            return list(await asyncio.gather(one(), one(), one(), c.get("/v1/health")))

    *posts, health = asyncio.run(go())
    assert sorted(r.status_code for r in posts) == [200, 200, 201]
    assert len({r.json()["id"] for r in posts}) == 1
    assert det.calls == before + 1
    assert health.status_code == 200
    with env.store.session() as s:
        [created] = audit.entries(s, env.tenant_a, action="scan.create")
        assert created.source_ip == "10.0.0.7" and created.source_port == 40000
