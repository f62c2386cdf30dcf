"""Authorisation on every endpoint: no key 401, bad/revoked key 401, wrong scope 403, other tenant 404."""

from __future__ import annotations

import hashlib

import pytest
from _api_support import Env

from voxwarden.detect.result import ScanResult, Segment
from voxwarden.store import keys
from voxwarden.store import scans as scan_repo


def _stored_scan(env: Env, tenant: str, n: int = 0) -> str:
    """A scan row written straight to the store (no scoring needed to test who may read it)."""
    res = ScanResult(path=None, score=1.5, probability=0.8, decision="synthetic", threshold=0.5, model="m",
                     duration=2.0, segments=[Segment(0.0, 2.0, 1.5, 0.8)])
    with env.store.session() as s:
        sha = hashlib.sha256(f"{tenant}-{n}".encode()).hexdigest()
        return scan_repo.record_scan(s, tenant, res, sha256=sha, size=10, name=f"clip{n}.wav").row.id


def _calls(scan_id: str) -> list[tuple[str, str, dict]]:
    upload = {"files": {"file": ("x.wav", b"RIFF0000WAVE", "audio/wav")}}
    return [
        ("POST", "/v1/scans", upload),
        ("GET", "/v1/scans", {}),
        ("GET", f"/v1/scans/{scan_id}", {}),
        ("POST", "/v1/verify", upload),
    ]


def test_no_key_is_401_everywhere(env: Env) -> None:
    sid = _stored_scan(env, env.tenant_a)
    for method, url, kw in _calls(sid):
        r = env.client.request(method, url, **kw)
        assert r.status_code == 401, (method, url, r.text)
        assert r.json()["type"] == "unauthorized"
        assert r.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("header", [
    "Bearer vw_0123456789ab_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",  # well-formed, unknown
    "Bearer not-a-key",
    "Basic dXNlcjpwYXNz",
    "Bearer ",
])
def test_bad_key_is_401(sqlite_env: Env, header: str) -> None:
    r = sqlite_env.client.get("/v1/scans", headers={"Authorization": header})
    assert r.status_code == 401
    assert set(r.json()) == {"type", "message"}


def test_wrong_scope_is_403_everywhere(env: Env) -> None:
    sid = _stored_scan(env, env.tenant_a)
    for method, url, kw in _calls(sid):
        r = env.client.request(method, url, headers=env.auth("rooms"), **kw)
        assert r.status_code == 403, (method, url, r.text)
        assert r.json()["type"] == "forbidden"
    # a mark-only key may verify but not scan
    r = env.client.get("/v1/scans", headers=env.auth("mark"))
    assert r.status_code == 403


def test_admin_key_holds_every_scope(sqlite_env: Env) -> None:
    r = sqlite_env.client.get("/v1/scans", headers=sqlite_env.auth("admin"))
    assert r.status_code == 200


def test_other_tenant_sees_404_and_empty_list(env: Env) -> None:
    sid = _stored_scan(env, env.tenant_a)
    assert env.client.get(f"/v1/scans/{sid}", headers=env.auth("scan")).status_code == 200
    r = env.client.get(f"/v1/scans/{sid}", headers=env.auth("other"))
    assert r.status_code == 404
    assert r.json()["type"] == "not_found"
    missing = env.client.get("/v1/scans/0123456789abcdef0123456789abcdef", headers=env.auth("other"))
    assert missing.status_code == 404 and missing.json()["message"] == r.json()["message"].replace(sid, missing.url.path.rsplit("/", 1)[1])  # noqa: E501
    assert env.client.get("/v1/scans", headers=env.auth("other")).json()["items"] == []
    assert [i["id"] for i in env.client.get("/v1/scans", headers=env.auth("scan")).json()["items"]] == [sid]


def test_revoked_key_is_401(sqlite_env: Env) -> None:
    env = sqlite_env
    assert env.client.get("/v1/scans", headers=env.auth("scan")).status_code == 200
    with env.store.session() as s:
        key = keys.authenticate_key(s, env.tokens["scan"])
        keys.revoke_api_key(s, env.tenant_a, key.id)
    assert env.client.get("/v1/scans", headers=env.auth("scan")).status_code == 401


def test_health_and_openapi_need_no_key(sqlite_env: Env) -> None:
    assert sqlite_env.client.get("/v1/health").status_code == 200
    assert sqlite_env.client.get("/openapi.json").status_code == 200
    assert sqlite_env.client.get("/metrics").status_code == 200
