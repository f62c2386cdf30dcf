"""Health, Prometheus metrics, the OpenAPI document and settings files."""

from __future__ import annotations

from pathlib import Path

import pytest
from _api_support import CountingDetector, Env, TestClient
from openapi_spec_validator import validate

from voxwarden.api import Settings, SettingsError, create_app
from voxwarden.store import Store


def test_health_reports_store_and_model(env: Env) -> None:
    r = env.client.get("/v1/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok"
    assert body["checks"] == {"store": "ok", "model": env.app.state.detector.model_id}


def test_health_is_503_when_schema_missing(tmp_path: Path, detector: CountingDetector) -> None:
    store = Store(f"sqlite:///{tmp_path / 'empty.db'}", migrate=False)  # never migrated
    try:
        client = TestClient(create_app(Settings(data_dir=tmp_path), store=store, detector=detector))
        r = client.get("/v1/health")
        assert r.status_code == 503
        assert r.json()["status"] == "unavailable" and r.json()["type"] == "unavailable"
        assert r.json()["checks"]["store"] == "schema_outdated"
        assert str(tmp_path) not in r.text  # no server paths to unauthenticated callers
    finally:
        store.dispose()


def test_metrics_count_requests_by_route_and_scans_by_decision(sqlite_env: Env, speech: bytes) -> None:
    env = sqlite_env
    r = env.client.post("/v1/scans", files={"file": ("a.wav", speech, "audio/wav")}, headers=env.auth("scan"))
    assert r.status_code == 201
    decision = r.json()["decision"]
    env.client.get(f"/v1/scans/{r.json()['id']}", headers=env.auth("scan"))
    env.client.get("/v1/scans/nonexistent", headers=env.auth("scan"))
    text = env.client.get("/metrics").text
    assert f'voxwarden_scans_total{{decision="{decision}"}} 1.0' in text
    assert 'voxwarden_http_requests_total{method="POST",route="/v1/scans",status="201"} 1.0' in text
    assert 'route="/v1/scans/{scan_id}",status="200"} 1.0' in text
    assert 'route="/v1/scans/{scan_id}",status="404"} 1.0' in text
    assert r.json()["id"] not in text  # ids never become labels
    assert "voxwarden_http_request_duration_seconds_bucket" in text


def test_openapi_document_is_valid(sqlite_env: Env) -> None:
    doc = sqlite_env.client.get("/openapi.json").json()
    validate(doc)
    assert {"/v1/health", "/v1/scans", "/v1/scans/{scan_id}", "/v1/verify"} <= set(doc["paths"])
    assert "/metrics" not in doc["paths"]
    schemes = doc["components"]["securitySchemes"]
    assert any(s.get("scheme") == "bearer" for s in schemes.values())
    assert doc["paths"]["/v1/scans"]["post"].get("security")


def test_unknown_route_is_json_404(sqlite_env: Env) -> None:
    r = sqlite_env.client.get("/v2/nothing")
    assert r.status_code == 404 and set(r.json()) == {"type", "message"}


def test_settings_file(tmp_path: Path) -> None:
    cfg = tmp_path / "vw.toml"
    cfg.write_text('data_dir = "/srv/vw"\n[server]\nport = 9000\nmax_upload_bytes = 1024\n')
    s = Settings.from_file(cfg)
    assert s.port == 9000 and s.max_upload_bytes == 1024 and s.data_dir == Path("/srv/vw")
    assert s.resolved_evidence_dir == Path("/srv/vw/evidence")
    assert s.with_overrides(port=None, host="0.0.0.0").port == 9000


@pytest.mark.parametrize("text, why", [
    ("portt = 1\n", "unknown setting"),
    ("port = 70000\n", "port"),
    ("max_upload_bytes = -1\n", "max_upload_bytes"),
    ("port = \n", "not valid TOML"),
    ('data_dir = 3\n', "data_dir"),
])
def test_bad_settings_file_is_refused(tmp_path: Path, text: str, why: str) -> None:
    cfg = tmp_path / "vw.toml"
    cfg.write_text(text)
    with pytest.raises(SettingsError, match=why):
        Settings.from_file(cfg)


def test_missing_settings_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="cannot read"):
        Settings.from_file(tmp_path / "nope.toml")
