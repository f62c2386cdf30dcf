"""Review console over HTTP (TestClient on https://testserver, so Secure cookies flow): login, lockout, cookie
flags, CSRF, roles, tenant isolation, verdicts and notes, evidence audio and the export zip, rectification,
users. The security-relevant tests run on SQLite and PostgreSQL (the `env` fixture)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import warnings
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
from _api_support import Env
from _console_support import OTHER_USER, PASSWORD, Seeded, csrf_from, seed_console

from voxwarden.api import Settings, SettingsError, create_app
from voxwarden.commands import serve as serve_mod
from voxwarden.store import Store, audit, keys
from voxwarden.store import alerts as alert_repo
from voxwarden.store import cases as case_repo
from voxwarden.store import rooms as room_repo
from voxwarden.store.audit import compute_hash
from voxwarden.store.models import Alert, AuditLog, RectificationItem, User

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient
    from typer.testing import CliRunner


@pytest.fixture
def seeded(env: Env, speech: bytes) -> Seeded:
    return seed_console(env.store, env.tenant_a, env.tenant_b, speech)


@pytest.fixture
def seeded_lite(sqlite_env: Env, speech: bytes) -> Seeded:
    return seed_console(sqlite_env.store, sqlite_env.tenant_a, sqlite_env.tenant_b, speech)


def _client(e: Env) -> TestClient:
    return TestClient(e.app, base_url="https://testserver", follow_redirects=False)


@pytest.fixture
def web(env: Env) -> Iterator[TestClient]:
    with _client(env) as c:
        yield c


@pytest.fixture
def web_lite(sqlite_env: Env) -> Iterator[TestClient]:
    with _client(sqlite_env) as c:
        yield c


def login(c: TestClient, tenant: str, username: str, password: str = PASSWORD, nxt: str | None = None):
    page = c.get("/console/login")
    assert page.status_code == 200
    data = {"csrf_token": csrf_from(page.text), "tenant": tenant, "username": username, "password": password}
    if nxt:
        data["next"] = nxt
    return c.post("/console/login", data=data)


def logged_in(c: TestClient, sd: Seeded, role: str = "reviewer") -> str:
    """Log in as the seeded user of `role`; returns the CSRF token of the alert page."""
    r = login(c, sd.tenant_a_name, sd.users[role])
    assert r.status_code == 303, r.text
    return csrf_from(c.get(f"/console/alerts/{sd.alert_id}").text)


def _actions(e: Env, tenant: str | None = None) -> list[str]:
    with e.store.session() as s:
        return [r.action for r in audit.entries(s, tenant or e.tenant_a, limit=10_000)]


# -- login, cookies, lockout ---------------------------------------------------------------------


def test_login_sets_hardened_session_cookie(env: Env, seeded: Seeded, web: TestClient) -> None:
    assert web.get("/console/alerts").status_code == 303  # not logged in: to the login form
    r = login(web, seeded.tenant_a_name, "rita", nxt="/console/rectification")
    assert r.status_code == 303 and r.headers["location"] == "/console/rectification"
    cookie = next(h for h in r.headers.get_list("set-cookie") if h.startswith("__Host-vw_session="))
    flags = {p.strip().split("=")[0].lower(): p for p in cookie.split(";")}
    assert "httponly" in flags and "secure" in flags
    assert flags["samesite"].split("=")[1].lower() == "strict"
    assert flags["path"].split("=")[1] == "/"
    assert int(flags["max-age"].split("=")[1]) == 480 * 60
    page = web.get("/console/alerts")
    assert page.status_code == 200 and "rita · reviewer" in page.text
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY" and page.headers["cache-control"] == "no-store"
    assert "console.login" in _actions(env)


def test_bad_password_and_unknown_user_are_refused_alike(env: Env, seeded: Seeded, web: TestClient) -> None:
    bad = login(web, seeded.tenant_a_name, "rita", "wrong password!")
    nobody = login(web, seeded.tenant_a_name, "nobody", "wrong password!")
    no_tenant = login(web, "no-such-tenant", "rita")
    for r in (bad, nobody, no_tenant):
        assert r.status_code == 401 and "wrong tenant, username or password" in r.text
        assert not any(h.startswith("__Host-vw_session=") for h in r.headers.get_list("set-cookie"))
    assert web.get("/console/alerts").status_code == 303
    assert _actions(env).count("console.login_failed") == 2  # the unknown tenant's is a system entry
    with env.store.session() as s:
        assert [e.action for e in audit.entries(s, None)] == ["console.login_failed"]


def test_lockout_after_failures_survives_a_restart(env: Env, seeded: Seeded, web: TestClient) -> None:
    for _ in range(5):
        assert login(web, seeded.tenant_a_name, "rita", "wrong password!").status_code == 401
    r = login(web, seeded.tenant_a_name, "rita")  # the right password no longer helps
    assert r.status_code == 429 and "locked until" in r.text
    assert "console.login_locked" in _actions(env)
    # another account of the tenant is not affected
    assert login(web, seeded.tenant_a_name, "aude").status_code == 303
    # a new app on the same store (a restart) still sees the lockout: it is counted from the audit log
    app2 = create_app(Settings(data_dir=env.app.state.settings.data_dir), store=env.store,
                      detector=env.app.state.detector)
    with TestClient(app2, base_url="https://testserver", follow_redirects=False) as c2:
        assert login(c2, seeded.tenant_a_name, "rita").status_code == 429


def test_per_address_limit(sqlite_env: Env, seeded_lite: Seeded, web_lite: TestClient) -> None:
    guard = sqlite_env.app.state.console.guard
    for i in range(guard.per_address):
        assert login(web_lite, seeded_lite.tenant_a_name, f"guess{i}", "wrong password!").status_code == 401
    r = login(web_lite, seeded_lite.tenant_a_name, "rita")
    assert r.status_code == 429 and "address" in r.text
    # counted from the audit log: another worker (or a restart) on the same store blocks the address too
    app2 = create_app(Settings(data_dir=sqlite_env.app.state.settings.data_dir), store=sqlite_env.store,
                      detector=sqlite_env.app.state.detector)
    with TestClient(app2, base_url="https://testserver", follow_redirects=False) as c2:
        assert login(c2, seeded_lite.tenant_a_name, "rita").status_code == 429
    with sqlite_env.store.session() as s:
        assert audit.entries(s, None, action="console.login_throttled")


def test_per_address_limit_counts_the_forwarded_client(tmp_path: Path, sqlite_env: Env,
                                                       seeded_lite: Seeded) -> None:
    """Behind a trusted proxy each client address is counted on its own (not the proxy's)."""
    app = create_app(Settings(data_dir=tmp_path, trusted_proxies=("10.0.0.0/8",)),
                     store=sqlite_env.store, detector=sqlite_env.app.state.detector)
    guard = app.state.console.guard
    with TestClient(app, base_url="https://testserver", follow_redirects=False, client=("10.1.2.3", 5000)) as c:
        for i in range(guard.per_address):
            c.headers["X-Forwarded-For"] = "203.0.113.7"
            assert login(c, seeded_lite.tenant_a_name, f"g{i}", "wrong password!").status_code == 401
        assert login(c, seeded_lite.tenant_a_name, "rita").status_code == 429
        c.headers["X-Forwarded-For"] = "203.0.113.8"  # another client behind the same proxy
        assert login(c, seeded_lite.tenant_a_name, "rita").status_code == 303


def test_login_form_needs_its_csrf_cookie(sqlite_env: Env, seeded_lite: Seeded, web_lite: TestClient) -> None:
    r = web_lite.post("/console/login", data={"csrf_token": "x" * 43, "tenant": seeded_lite.tenant_a_name,
                                              "username": "rita", "password": PASSWORD})
    assert r.status_code == 403
    web_lite.get("/console/login")
    r = web_lite.post("/console/login", data={"csrf_token": "y" * 43, "tenant": seeded_lite.tenant_a_name,
                                              "username": "rita", "password": PASSWORD})
    assert r.status_code == 403


def test_open_redirect_refused(sqlite_env: Env, seeded_lite: Seeded, web_lite: TestClient) -> None:
    r = login(web_lite, seeded_lite.tenant_a_name, "rita", nxt="//evil.example/x")
    assert r.status_code == 303 and r.headers["location"] == "/console/alerts"


def test_forged_or_expired_cookie_is_no_session(sqlite_env: Env, seeded_lite: Seeded, web_lite: TestClient) -> None:
    logged_in(web_lite, seeded_lite)
    st = sqlite_env.app.state.console
    value = web_lite.cookies.get(st.cookie)
    body, sig = value.split(".")
    web_lite.cookies.set(st.cookie, body + "." + sig[:-2] + ("AA" if sig[-2:] != "AA" else "BB"))
    assert web_lite.get("/console/alerts").status_code == 303
    with sqlite_env.store.session() as s:
        u = s.query(User).filter_by(username="rita").one()
        expired, _ = st.signer.issue(u, now=0)
    web_lite.cookies.set(st.cookie, expired)
    assert web_lite.get("/console/alerts").status_code == 303
    assert web_lite.get(f"/console/api/alerts/{seeded_lite.alert_id}/timeline").status_code == 401


def test_logout_revokes_the_cookie(env: Env, seeded: Seeded, web: TestClient) -> None:
    token = logged_in(web, seeded)
    st = env.app.state.console
    old = web.cookies.get(st.cookie)
    r = web.post("/console/logout", data={"csrf_token": token})
    assert r.status_code == 303 and r.headers["location"] == "/console/login"
    web.cookies.set(st.cookie, old)  # a copied cookie is dead too
    assert web.get("/console/alerts").status_code == 303
    assert "console.logout" in _actions(env)
    # and on another worker (a second app on the same store and secret, its own memory): the logout is
    # in the store, so the copied cookie is refused there as well
    app2 = create_app(Settings(data_dir=env.app.state.settings.data_dir), store=env.store,
                      detector=env.app.state.detector)
    with TestClient(app2, base_url="https://testserver", follow_redirects=False) as c2:
        c2.cookies.set(st.cookie, old)
        assert c2.get("/console/alerts").status_code == 303
        fresh = logged_in(c2, seeded)  # a new login there works (only the logged-out session is refused)
        assert fresh and c2.get("/console/alerts").status_code == 200


def test_password_change_and_disable_end_sessions(sqlite_env: Env, seeded_lite: Seeded, web_lite: TestClient) -> None:
    logged_in(web_lite, seeded_lite)
    with sqlite_env.store.session() as s:
        u = s.query(User).filter_by(username="rita").one()
        keys.set_password(s, u.tenant_id, u.id, "another long password")
    assert web_lite.get("/console/alerts").status_code == 303
    assert login(web_lite, seeded_lite.tenant_a_name, "rita", "another long password").status_code == 303
    with sqlite_env.store.session() as s:
        u = s.query(User).filter_by(username="rita").one()
        keys.disable_user(s, u.tenant_id, u.id)
    assert web_lite.get("/console/alerts").status_code == 303


# -- CSRF and roles ------------------------------------------------------------------------------


def _status(e: Env, alert_id: str) -> str:
    with e.store.session() as s:
        return s.get(Alert, alert_id).status


def test_csrf_refused_without_or_with_wrong_token(env: Env, seeded: Seeded, web: TestClient) -> None:
    token = logged_in(web, seeded)
    url = f"/console/alerts/{seeded.alert_id}/verdict"
    assert web.post(url, data={"verdict": "confirmed_synthetic"}).status_code == 403
    assert web.post(url, data={"verdict": "confirmed_synthetic", "csrf_token": token[:-3] + "abc"}).status_code == 403
    other = TestClient(env.app, base_url="https://testserver", follow_redirects=False)  # another session's token
    other_token = logged_in(other, seeded, "admin")
    other.close()
    assert web.post(url, data={"verdict": "confirmed_synthetic", "csrf_token": other_token}).status_code == 403
    assert _status(env, seeded.alert_id) == "open"
    assert _actions(env).count("console.forbidden") == 3
    # the header works as well as the form field (for scripts)
    r = web.post(url, data={"verdict": "confirmed_synthetic"}, headers={"X-CSRF-Token": token})
    assert r.status_code == 303
    assert _status(env, seeded.alert_id) == "resolved"


def test_auditor_reads_but_gets_403_on_every_write(env: Env, seeded: Seeded, web: TestClient) -> None:
    token = logged_in(web, seeded, "auditor")
    page = web.get(f"/console/alerts/{seeded.alert_id}")
    assert page.status_code == 200 and "verdict-confirmed_synthetic" not in page.text and "Read-only" in page.text
    writes = [
        (f"/console/alerts/{seeded.alert_id}/verdict", {"verdict": "false_positive"}),
        (f"/console/alerts/{seeded.alert_id}/notes", {"body": "hello"}),
        (f"/console/rectification/{seeded.item_id}", {"status": "done"}),
        ("/console/admin/users", {"username": "eve", "role": "admin", "password": "x" * 12}),
    ]
    for url, data in writes:
        r = web.post(url, data={**data, "csrf_token": token})
        assert r.status_code == 403, url
    assert _status(env, seeded.alert_id) == "open"
    with env.store.session() as s:
        assert s.get(RectificationItem, seeded.item_id).status == "open"
    assert web.get(f"/console/alerts/{seeded.alert_id}/export.zip").status_code == 200  # reading is allowed
    assert web.get("/console/admin/users").status_code == 403


def test_other_tenants_alert_is_404(env: Env, seeded: Seeded, web: TestClient) -> None:
    r = login(web, seeded.tenant_b_name, OTHER_USER)
    assert r.status_code == 303
    token = csrf_from(web.get("/console/alerts").text)
    for url in (f"/console/alerts/{seeded.alert_id}", f"/console/alerts/{seeded.alert_id}/export.zip",
                f"/console/evidence/{seeded.evidence_id}", f"/console/api/alerts/{seeded.alert_id}/timeline"):
        assert web.get(url).status_code == 404, url
    r = web.post(f"/console/alerts/{seeded.alert_id}/verdict",
                 data={"verdict": "false_positive", "csrf_token": token})
    assert r.status_code == 404
    r = web.post(f"/console/rectification/{seeded.item_id}", data={"status": "done", "csrf_token": token})
    assert r.status_code == 404
    queue = web.get("/console/alerts").text
    assert seeded.foreign_alert_id in queue and seeded.alert_id not in queue and "lobby-7" not in queue
    assert _status(env, seeded.alert_id) == "open"


def test_hostile_inputs_get_4xx_not_5xx(env: Env, seeded: Seeded, web: TestClient) -> None:
    page = web.get("/console/login")
    tok = csrf_from(page.text)
    for data in ({"tenant": "ac\x00me", "username": "rita", "password": PASSWORD},
                 {"tenant": "a" * 300, "username": "rita", "password": PASSWORD},
                 {"tenant": "acme", "username": "rita", "password": "p" * 2000}):
        assert web.post("/console/login", data={"csrf_token": tok, **data}).status_code == 422, data
    r = web.post("/console/login", data={"csrf_token": tok, "tenant": "acme", "username": "rita"},
                 files={"password": ("pw.txt", b"secret", "text/plain")})
    assert r.status_code == 422
    token = logged_in(web, seeded)
    for url in ("/console/alerts/%00", "/console/alerts/" + "x" * 5000, "/console/evidence/abc%00def",
                "/console/api/alerts/'%20OR%201=1/timeline", "/console/alerts/..%2f..%2fetc/export.zip"):
        assert web.get(url).status_code == 404, url
    for params in ({"room": "a\x00b"}, {"rule": "\x00"}, {"page": "9" * 50}):
        assert web.get("/console/alerts", params=params).status_code in (200, 422), params
    posts = [(f"/console/alerts/{seeded.alert_id}/notes", {"body": "a\x00b"}),
             (f"/console/alerts/{seeded.alert_id}/notes", {"body": "a" * 30_000}),
             (f"/console/rectification/{seeded.item_id}", {"owner": "x\x00y"}),
             ("/console/alerts/%00/verdict", {"verdict": "escalated"})]
    for url, data in posts:
        assert web.post(url, data={"csrf_token": token, **data}).status_code in (404, 422), url
    for rng in ("bytes=abc", "bytes=999999999-", "items=0-1"):
        r = web.get(f"/console/evidence/{seeded.evidence_id}", headers={"Range": rng})
        assert r.status_code in (400, 416), rng


# -- review: verdicts, notes, audio, export ------------------------------------------------------


def test_verdicts_drive_case_and_alert_status(env: Env, seeded: Seeded, web: TestClient) -> None:
    token = logged_in(web, seeded)
    url = f"/console/alerts/{seeded.alert_id}/verdict"
    assert web.post(url, data={"verdict": "escalated", "csrf_token": token}).status_code == 303
    with env.store.session() as s:
        a = s.get(Alert, seeded.alert_id)
        c = case_repo.get_case(s, env.tenant_a, a.case_id)
        assert (a.status, c.status, c.verdict) == ("acknowledged", "open", "escalated")
    assert web.post(url, data={"verdict": "false_positive", "csrf_token": token}).status_code == 303
    with env.store.session() as s:
        a = s.get(Alert, seeded.alert_id)
        c = case_repo.get_case(s, env.tenant_a, a.case_id)
        assert (a.status, c.status, c.verdict) == ("dismissed", "closed", "false_positive")
    # a changed mind reopens and closes again with the new verdict
    assert web.post(url, data={"verdict": "confirmed_synthetic", "csrf_token": token}).status_code == 303
    with env.store.session() as s:
        a = s.get(Alert, seeded.alert_id)
        c = case_repo.get_case(s, env.tenant_a, a.case_id)
        assert (a.status, c.status, c.verdict) == ("resolved", "closed", "confirmed_synthetic")
    assert web.post(url, data={"verdict": "delete_everything", "csrf_token": token}).status_code == 422
    assert _actions(env).count("alert.verdict") == 3
    page = web.get(f"/console/alerts/{seeded.alert_id}?done=verdict").text
    assert "Verdict recorded." in page and "confirmed_synthetic" in page


def test_notes_open_a_case_and_are_escaped(sqlite_env: Env, seeded_lite: Seeded, web_lite: TestClient) -> None:
    token = logged_in(web_lite, seeded_lite)
    url = f"/console/alerts/{seeded_lite.alert_id}/notes"
    assert web_lite.post(url, data={"body": "  ", "csrf_token": token}).status_code == 422
    r = web_lite.post(url, data={"body": "voice matches <script>alert(1)</script> the TTS", "csrf_token": token})
    assert r.status_code == 303
    page = web_lite.get(f"/console/alerts/{seeded_lite.alert_id}").text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert(1)" not in page
    with sqlite_env.store.session() as s:
        a = s.get(Alert, seeded_lite.alert_id)
        notes = case_repo.notes(s, sqlite_env.tenant_a, a.case_id)
        assert [n.author for n in notes] == ["rita"] and a.status == "acknowledged"
    assert {"case.open", "case.note"} <= set(_actions(sqlite_env))


def test_audio_endpoint_streams_the_evidence(env: Env, seeded: Seeded, web: TestClient) -> None:
    logged_in(web, seeded)
    url = f"/console/evidence/{seeded.evidence_id}"
    r = web.get(url)
    assert r.status_code == 200 and r.content == seeded.audio
    assert r.headers["content-type"] == "audio/wav"
    assert r.headers["x-evidence-sha256"] == hashlib.sha256(seeded.audio).hexdigest()
    part = web.get(url, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == seeded.audio[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(seeded.audio)}"
    assert _actions(env).count("evidence.play") == 1  # the range request is not a new playback
    assert web.get("/console/evidence/0123456789abcdef0123456789abcdef").status_code == 404


def test_tampered_evidence_is_not_served(sqlite_env: Env, seeded_lite: Seeded, web_lite: TestClient) -> None:
    logged_in(web_lite, seeded_lite)
    sha = hashlib.sha256(seeded_lite.audio).hexdigest()
    path = next(Path(sqlite_env.store.evidence.root).rglob(f"{sha}.wav"))
    path.write_bytes(b"RIFF" + seeded_lite.audio[4:-1] + b"\x00\x01")
    r = web_lite.get(f"/console/evidence/{seeded_lite.evidence_id}")
    assert r.status_code == 409 and "does not match" in r.text


def test_export_zip_contents_and_hashes_verify(env: Env, seeded: Seeded, web: TestClient) -> None:
    token = logged_in(web, seeded)
    web.post(f"/console/alerts/{seeded.alert_id}/notes", data={"body": "checked by ear", "csrf_token": token})
    web.post(f"/console/alerts/{seeded.alert_id}/verdict", data={"verdict": "confirmed_synthetic",
                                                                "csrf_token": token})
    r = web.get(f"/console/alerts/{seeded.alert_id}/export.zip")
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    assert f'filename="voxwarden-alert-{seeded.alert_id}.zip"' in r.headers["content-disposition"]
    zf = zipfile.ZipFile(io.BytesIO(r.content))
    assert zf.testzip() is None
    names = set(zf.namelist())
    sha = hashlib.sha256(seeded.audio).hexdigest()
    assert {"alert.json", "case.json", "windows.json", "watermark_checks.json", "evidence.json", "audit.json",
            "manifest.json", "SHA256SUMS", f"evidence/{sha}.wav"} == names
    assert zf.read(f"evidence/{sha}.wav") == seeded.audio
    manifest = json.loads(zf.read("manifest.json"))
    assert manifest["alert_id"] == seeded.alert_id and manifest["exported_by"] == "user:rita"
    listed = {f["name"]: f for f in manifest["files"]}
    assert set(listed) == names - {"manifest.json", "SHA256SUMS"}
    for name, f in listed.items():
        data = zf.read(name)
        assert hashlib.sha256(data).hexdigest() == f["sha256"] and len(data) == f["size"], name
    assert listed[f"evidence/{sha}.wav"]["intact"] is True
    assert listed[f"evidence/{sha}.wav"]["recorded_sha256"] == sha
    sums = dict(reversed(line.split("  ", 1)) for line in zf.read("SHA256SUMS").decode().splitlines())
    assert sums == {n: f["sha256"] for n, f in listed.items()}
    alert = json.loads(zf.read("alert.json"))
    assert alert["room"]["external_id"] == "lobby-7" and alert["session"]["source_ip"] == "203.0.113.5"
    assert alert["status"] == "resolved"
    case = json.loads(zf.read("case.json"))
    assert case["verdict"] == "confirmed_synthetic" and [n["body"] for n in case["notes"]] == ["checked by ear"]
    assert len(json.loads(zf.read("windows.json"))) == 60
    checks = json.loads(zf.read("watermark_checks.json"))  # the session's label checks, alert or not
    assert [(c["start"], c["result"]) for c in checks] == [(8.0 * k, "absent") for k in range(6)] + [(48.0, "error")]
    assert checks[-1]["reason"] == "decoder failed"
    trail = json.loads(zf.read("audit.json"))
    actions = [e["action"] for e in trail["entries"]]
    assert {"case.open", "case.note", "alert.verdict", "alert.export"} <= set(actions)
    # each exported entry still carries a hash that re-computes from its fields
    for e in trail["entries"]:
        row = AuditLog(**{k: e[k] for k in e if k not in ("seq", "hash", "at")})
        row.at = datetime.fromisoformat(e["at"])
        assert compute_hash(row) == e["hash"]


# -- queue filters, timeline ---------------------------------------------------------------------


def test_queue_filters_and_paging(env: Env, seeded: Seeded, web: TestClient) -> None:
    logged_in(web, seeded)

    def ids(**params: str) -> set[str]:
        r = web.get("/console/alerts", params=params)
        assert r.status_code == 200, r.text
        return {aid for aid in (seeded.alert_id, seeded.other_alert_id) if aid in r.text}

    both = {seeded.alert_id, seeded.other_alert_id}
    assert ids() == both
    assert ids(room="lobby-7") == {seeded.alert_id}
    assert ids(rule="spike") == {seeded.other_alert_id}
    assert ids(severity="critical") == {seeded.alert_id}
    assert ids(severity="warning") == {seeded.other_alert_id}
    assert ids(min_score="0.9") == {seeded.alert_id}
    assert ids(max_score="0.8") == {seeded.other_alert_id}
    assert ids(queue="trust-safety") == {seeded.alert_id}  # the rule's review action names the queue
    assert ids(queue="other-team") == set()
    assert ids(status="resolved") == set()
    today = datetime.now(UTC).date()
    assert ids(since=today.isoformat(), until=today.isoformat()) == both
    assert ids(until=(today - timedelta(days=1)).isoformat()) == set()
    for bad in ({"status": "nope"}, {"min_score": "abc"}, {"since": "2026-13-01"}, {"min_score": "nan"},
                {"since": "2026-02-02", "until": "2026-01-01"}):
        assert web.get("/console/alerts", params=bad).status_code == 422, bad
    # paging: 30 more alerts, 25 per page
    with env.store.session() as s:
        room = room_repo.ensure_room(s, env.tenant_a, "bulk").row
        for i in range(30):
            alert_repo.raise_alert(s, env.tenant_a, room.id, f"spk{i}", start=float(i), end=i + 1.0,
                                   score=0.8, rule="bulk-rule")
    p1 = web.get("/console/alerts", params={"rule": "bulk-rule"}).text
    assert "30 alerts · page 1 of 2" in p1 and p1.count('data-alert="') == 25
    assert "page=2" in p1 and "rule=bulk-rule" in p1
    p2 = web.get("/console/alerts", params={"rule": "bulk-rule", "page": "2"}).text
    assert p2.count('data-alert="') == 5
    assert web.get("/console/alerts", params={"page": "x"}).status_code == 422


def test_timeline_json_and_svg(sqlite_env: Env, seeded_lite: Seeded, web_lite: TestClient) -> None:
    logged_in(web_lite, seeded_lite)
    tl = web_lite.get(f"/console/api/alerts/{seeded_lite.alert_id}/timeline").json()
    by = {s["speaker"]: s for s in tl["series"]}
    assert set(by) == {"alice", "bob"} and by["alice"]["flagged"] and not by["bob"]["flagged"]
    assert len(by["alice"]["points"]) == 60
    # the span is alice's sustained run, 22-32 s into her stream; bob starts 5 s later
    assert tl["span"] == pytest.approx([22.0, 32.0], abs=0.01)
    assert by["bob"]["points"][0][0] == pytest.approx(5.0 + 1.0, abs=0.01)
    high = [p for t, p in by["alice"]["points"] if 23 <= t <= 34]
    assert min(high) > 0.8 and max(p for _, p in by["bob"]["points"]) < 0.2
    assert tl["threshold"] == 0.7
    page = web_lite.get(f"/console/alerts/{seeded_lite.alert_id}").text
    assert '<svg id="timeline"' in page and 'id="alert-span"' in page and page.count('class="curve"') == 2
    assert f'src="/console/evidence/{seeded_lite.evidence_id}"' in page
    # alice's watermark checks sit on the same axis (her stream's clock), bob has none
    assert [c[2] for c in by["alice"]["watermark_checks"]] == ["absent"] * 6 + ["error"]
    assert by["alice"]["watermark_checks"][1][1] - by["alice"]["watermark_checks"][1][0] == pytest.approx(8.0)
    assert by["bob"]["watermark_checks"] == []
    assert page.count('class="wm-check"') == 7 and page.count('data-result="error"') == 1


# -- rectification, users ------------------------------------------------------------------------


def test_rectification_list_filter_update(sqlite_env: Env, seeded_lite: Seeded, web_lite: TestClient) -> None:
    logged_in(web_lite, seeded_lite)
    page = web_lite.get("/console/rectification")
    assert "LOG-RETENTION" in page.text and "WM-SURVIVAL" in page.text
    high = web_lite.get("/console/rectification", params={"severity": "high"}).text
    assert "LOG-RETENTION" in high and "WM-SURVIVAL" not in high
    assert web_lite.get("/console/rectification", params={"status": "bogus"}).status_code == 422
    token = csrf_from(page.text)
    url = f"/console/rectification/{seeded_lite.item_id}"
    assert web_lite.post(url, data={"csrf_token": token, "due_date": "31/12/2026"}).status_code == 422
    assert web_lite.post(url, data={"csrf_token": token, "status": "closed-ish"}).status_code == 422
    r = web_lite.post(url, data={"csrf_token": token, "status": "in_progress", "owner": "ops team",
                                 "due_date": "2026-12-31", "note": "raising retention to 200 days"})
    assert r.status_code == 303
    with sqlite_env.store.session() as s:
        it = s.get(RectificationItem, seeded_lite.item_id)
        assert (it.status, it.owner, it.due_date.isoformat()) == ("in_progress", "ops team", "2026-12-31")
        assert "user:rita] raising retention to 200 days" in it.notes and it.closed_at is None
    web_lite.post(url, data={"csrf_token": token, "status": "done"})
    with sqlite_env.store.session() as s:
        assert s.get(RectificationItem, seeded_lite.item_id).closed_at is not None
    acts = _actions(sqlite_env)
    assert "rectification.update" in acts and "rectification.close" in acts
    done = web_lite.get("/console/rectification", params={"status": "done"}).text
    assert "LOG-RETENTION" in done and "WM-SURVIVAL" not in done


def test_admin_manages_users(sqlite_env: Env, seeded_lite: Seeded, web_lite: TestClient) -> None:
    logged_in(web_lite, seeded_lite, "reviewer")
    assert web_lite.get("/console/admin/users").status_code == 403
    web_lite.cookies.clear()
    logged_in(web_lite, seeded_lite, "admin")
    page = web_lite.get("/console/admin/users")
    assert page.status_code == 200 and "rita" in page.text and OTHER_USER not in page.text
    token = csrf_from(page.text)
    assert web_lite.post("/console/admin/users", data={"csrf_token": token, "username": "newbie", "role": "root",
                                                       "password": "long enough pw"}).status_code == 422
    assert web_lite.post("/console/admin/users", data={"csrf_token": token, "username": "newbie", "role": "auditor",
                                                       "password": "short"}).status_code == 422
    r = web_lite.post("/console/admin/users", data={"csrf_token": token, "username": "newbie", "role": "auditor",
                                                    "password": "long enough pw"})
    assert r.status_code == 303
    assert web_lite.post("/console/admin/users", data={"csrf_token": token, "username": "newbie", "role": "auditor",
                                                       "password": "long enough pw"}).status_code == 409
    with sqlite_env.store.session() as s:
        me = s.query(User).filter_by(username="adam").one()
        newbie = s.query(User).filter_by(username="newbie").one()
    assert web_lite.post(f"/console/admin/users/{me.id}/disable", data={"csrf_token": token}).status_code == 409
    assert web_lite.post(f"/console/admin/users/{newbie.id}/disable", data={"csrf_token": token}).status_code == 303
    assert {"user.create", "user.disable"} <= set(_actions(sqlite_env))


# -- settings and secret -------------------------------------------------------------------------


def test_console_secret_is_generated_once_and_private(sqlite_env: Env) -> None:
    path = sqlite_env.app.state.settings.data_dir / "console-secret"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    first = path.read_text()
    from voxwarden.api.console.security import load_secret

    assert load_secret(None, path.parent) == first.encode() and len(first) >= 32
    assert load_secret("z" * 40, path.parent) == b"z" * 40


@pytest.mark.parametrize("values", [{"console_secret": "short"}, {"console_secure_cookies": "yes"},
                                    {"console_session_minutes": 0}, {"console_login_max_failures": True},
                                    {"console_lockout_minutes": 100000}])
def test_bad_console_settings_are_refused(values: dict) -> None:
    with pytest.raises(SettingsError):
        Settings.from_mapping(values)


def test_plain_http_cookie_mode(sqlite_env: Env, seeded_lite: Seeded, tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path / "d2", console_secure_cookies=False),
                     store=sqlite_env.store, detector=sqlite_env.app.state.detector)
    with TestClient(app, follow_redirects=False) as c:  # http://testserver
        r = login(c, seeded_lite.tenant_a_name, "rita")
        cookie = next(h for h in r.headers.get_list("set-cookie") if h.startswith("vw_session="))
        assert "secure" not in cookie.lower() and "httponly" in cookie.lower()
        assert c.get("/console/alerts").status_code == 200


# -- voxwarden admin create-user -----------------------------------------------------------------


def _admin_cli() -> typer.Typer:
    app = typer.Typer()
    app.command("serve")(serve_mod.serve_cmd)
    app.add_typer(serve_mod.keys_app, name="admin")
    return app


def test_cli_create_user_then_login(tmp_path: Path, detector: object) -> None:
    pw = tmp_path / "pw.txt"
    pw.write_text("a long console password\n")
    data = tmp_path / "data"
    runner = CliRunner()
    r = runner.invoke(_admin_cli(), ["admin", "create-user", "--tenant", "acme", "--username", "ines",
                                     "--role", "auditor", "--password-file", str(pw), "--data-dir", str(data)])
    assert r.exit_code == 0, r.output
    user_id = r.stdout.strip().splitlines()[-1]
    # prompt (typed twice) and env variable work too; a taken name, a bad role, a short password do not
    r = runner.invoke(_admin_cli(), ["admin", "create-user", "--tenant", "acme", "--username", "joe",
                                     "--data-dir", str(data)], input="prompted password\nprompted password\n")
    assert r.exit_code == 0, r.output
    r = runner.invoke(_admin_cli(), ["admin", "create-user", "--tenant", "acme", "--username", "kim", "--role",
                                     "admin", "--data-dir", str(data)],
                      env={"VOXWARDEN_USER_PASSWORD": "env password 1"})
    assert r.exit_code == 0, r.output
    for args, env in ((["--username", "ines", "--password-file", str(pw)], {}),
                      (["--username", "lee", "--role", "root", "--password-file", str(pw)], {}),
                      (["--username", "lee"], {"VOXWARDEN_USER_PASSWORD": "short"}),
                      (["--username", "lee", "--password-file", str(tmp_path / "missing")], {})):
        r = runner.invoke(_admin_cli(), ["admin", "create-user", "--tenant", "acme", "--data-dir", str(data), *args],
                          env=env)
        assert r.exit_code == 3, (args, r.output)
    store = Store(data_dir=data)
    try:
        with store.session() as s:
            u = s.get(User, user_id)
            assert u.role == "auditor" and u.password_hash.startswith("scrypt$")
            assert keys.authenticate_user(s, u.tenant_id, "joe", "prompted password").role == "reviewer"
            assert keys.authenticate_user(s, u.tenant_id, "kim", "env password 1").role == "admin"
            created = audit.entries(s, u.tenant_id, action="user.create")
            assert len(created) == 3 and all(e.actor.startswith("cli:") for e in created)
        app = create_app(Settings(data_dir=data), store=store, detector=detector)
        with TestClient(app, base_url="https://testserver", follow_redirects=False) as c:
            assert login(c, "acme", "ines", "a long console password").status_code == 303
            assert "ines · auditor" in c.get("/console/alerts").text
    finally:
        store.dispose()
