"""`voxwarden assess` with ``service:``: detection scored by a real running voxwarden service (uvicorn on
`create_app` in a thread, SQLite in a tmp dir, a real API key) on the example protocol. Checks that the
figures equal the in-process run's, that a repeated run adds no scans (idempotency keys), config errors
(bad URL, missing key → exit 3), and that a service going away mid-run gives per-clip errors, not a crash."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from typer.testing import CliRunner

from voxwarden.assess.config import AssessConfigError, ServiceConfig, load_config
from voxwarden.assess.run import AssessRunError, run_assessment

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "assessment.yaml"
KEY_ENV = "VOXWARDEN_TEST_ASSESS_KEY"


@pytest.fixture(autouse=True)
def _no_chromium(monkeypatch: pytest.MonkeyPatch) -> None:
    import voxwarden.assess.run as run_mod

    monkeypatch.setattr(run_mod, "CHROMIUM_NAMES", ("voxwarden-test-no-such-browser",))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Svc:
    url: str
    token: str
    store: Any
    tenant_id: str

    def scan_count(self) -> int:
        from voxwarden.store.models import Scan

        with self.store.session() as s:
            return s.query(Scan).filter(Scan.tenant_id == self.tenant_id).count()


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Svc]:
    import uvicorn

    from voxwarden.api import Settings, create_app
    from voxwarden.store import Store, keys

    tmp = tmp_path_factory.mktemp("assess-service")
    store = Store(data_dir=tmp / "data")
    with store.session() as s:
        tid = keys.create_tenant(s, "deployed").id
        token = keys.create_api_key(s, tid, "assessor", ["scan", "rooms"]).token
    port = _free_port()
    rules = EXAMPLE.parent / "assessment" / "live-rules.yaml"  # the service's own rules file
    app = create_app(Settings(data_dir=tmp / "data", port=port, rules_path=rules), store=store)
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    th = threading.Thread(target=srv.run, daemon=True)
    th.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        if time.monotonic() > deadline or not th.is_alive():
            pytest.fail("uvicorn did not start")
        time.sleep(0.05)
    yield Svc(f"http://127.0.0.1:{port}", token, store, tid)
    srv.should_exit = True
    th.join(timeout=15)
    store.dispose()


def _config(tmp: Path, service: dict[str, Any] | None, name: str = "assessment.yaml") -> Path:
    """The example config (absolute paths, no live load run: it is in-process either way and costs 6 s)."""
    doc = yaml.safe_load(EXAMPLE.read_text())
    base = EXAMPLE.parent
    doc["detection"]["protocol"] = str(base / doc["detection"]["protocol"])
    doc["detection"]["audio_dir"] = str(base / doc["detection"]["audio_dir"])
    doc["labelling"] = {"attacks": []}
    doc["live"] = {"declared": doc["live"]["declared"]}
    if service is not None:
        doc["service"] = service
    p = tmp / name
    p.write_text(yaml.safe_dump(doc))
    return p


def _close(a: Any, b: Any) -> None:
    assert a == pytest.approx(b, abs=1e-6), (a, b)


def test_service_figures_match_in_process_and_runs_are_idempotent(
        svc: Svc, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, svc.token)
    local = run_assessment(load_config(_config(tmp_path, None)), tmp_path / "local", pdf=False).figures["detection"]
    cfg = load_config(_config(tmp_path, {"url": svc.url + "/", "api_key_env": KEY_ENV}, "svc.yaml"))
    assert cfg.service is not None and cfg.service.url == svc.url and cfg.service.api_key == svc.token
    assert svc.token not in repr(cfg.service)  # the key never lands in logs via repr
    before = svc.scan_count()
    o1 = run_assessment(cfg, tmp_path / "svc1", pdf=False)
    remote = o1.figures["detection"]
    n_uploads = 5 * 3  # 5 trials, clean + mp3:64k + opus:16k
    assert svc.scan_count() - before == n_uploads
    st = remote["service"]
    assert st["uploads"] == n_uploads and st["scored"] == n_uploads and st["errors"] == 0 and st["replayed"] == 0
    assert remote["measured_via"] == svc.url and local["measured_via"] == "in-process"
    assert remote["model_id"] == local["model_id"] == st["model_id"]
    assert remote["threshold"] == pytest.approx(local["threshold"]) and remote["threshold_source"] == "service"
    assert remote["n_failed"] == local["n_failed"] == 0
    for k in ("eer", "miss_rate", "fa_rate", "min_dcf", "eer_threshold"):
        _close(remote[k], local[k])
    assert set(remote["per_system"]) == set(local["per_system"]) == {"espeak-ng", "espeak-ng-opus"}
    for table in ("per_system", "per_condition", "per_length"):
        assert set(remote[table]) == set(local[table]), table
        for key, row in local[table].items():
            for field, v in row.items():
                if isinstance(v, float):
                    _close(remote[table][key][field], v)
                else:
                    assert remote[table][key][field] == v, (table, key, field)
    figs = json.loads((tmp_path / "svc1" / "figures.json").read_text())
    assert figs["service"] == svc.url
    assert f"measured via {svc.url}" in figs["evidence"]["detection.eer"]["detail"]
    assert svc.url in (tmp_path / "svc1" / "report.html").read_text(encoding="utf-8")

    o2 = run_assessment(cfg, tmp_path / "svc2", pdf=False)  # a repeated run replays, scores nothing new
    assert svc.scan_count() - before == n_uploads
    st2 = o2.figures["detection"]["service"]
    assert st2["replayed"] == n_uploads and st2["scored"] == 0 and st2["errors"] == 0
    _close(o2.figures["detection"]["eer"], remote["eer"])


def test_bad_url_and_missing_key_are_config_errors(svc: Svc, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from voxwarden.commands.assess import assess_cmd

    app = typer.Typer()
    app.command()(assess_cmd)
    monkeypatch.delenv(KEY_ENV, raising=False)
    p = _config(tmp_path, {"url": svc.url, "api_key_env": KEY_ENV})
    with pytest.raises(AssessConfigError, match=f"service.api_key_env: environment variable {KEY_ENV} is not set"):
        load_config(p)
    r = CliRunner().invoke(app, ["--config", str(p), "--out", str(tmp_path / "o"), "--no-pdf"])
    assert r.exit_code == 3 and KEY_ENV in r.output, r.output
    monkeypatch.setenv(KEY_ENV, svc.token)
    for url, why in (("ftp://127.0.0.1:1", "must start with http"), ("http://", "has no host"),
                     ("http://h:99999", "is not a URL"), ("http://u:pw@h", "must not carry credentials"),
                     (42, "must be a non-empty string")):
        q = _config(tmp_path, {"url": url, "api_key_env": KEY_ENV}, "bad.yaml")
        with pytest.raises(AssessConfigError, match=why):
            load_config(q)
        r = CliRunner().invoke(app, ["--config", str(q), "--out", str(tmp_path / "o"), "--no-pdf"])
        assert r.exit_code == 3, (url, r.output)
    q = _config(tmp_path, {"url": svc.url, "api_key_env": KEY_ENV, "token": "x"}, "bad.yaml")
    with pytest.raises(AssessConfigError, match="unknown field"):
        load_config(q)
    # a key the service refuses, and a service that is not there: the run fails before it starts (exit 2)
    monkeypatch.setenv(KEY_ENV, "not-a-real-key")
    cfg = load_config(_config(tmp_path, {"url": svc.url, "api_key_env": KEY_ENV}, "svc.yaml"))
    with pytest.raises(AssessRunError, match="HTTP 401"):
        run_assessment(cfg, tmp_path / "o401", pdf=False)
    monkeypatch.setenv(KEY_ENV, svc.token)
    cfg = load_config(_config(tmp_path, {"url": f"http://127.0.0.1:{_free_port()}", "api_key_env": KEY_ENV,
                                         "retries": 0, "timeout_s": 5}, "svc.yaml"))
    with pytest.raises(AssessRunError, match="unreachable"):
        run_assessment(cfg, tmp_path / "odown", pdf=False)
    r = CliRunner().invoke(app, ["--config", str(tmp_path / "svc.yaml"), "--out", str(tmp_path / "o"), "--no-pdf"])
    assert r.exit_code == 2 and "unreachable" in r.output, r.output


class CutProxy:
    """A real TCP relay to the service that serves `allow` connections, then stops listening (refused)."""

    def __init__(self, upstream_port: int, allow: int) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = int(self.sock.getsockname()[1])
        self.upstream, self.allow, self.served = upstream_port, allow, 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while self.served < self.allow:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.served += 1
            up = socket.create_connection(("127.0.0.1", self.upstream))
            for a, b in ((conn, up), (up, conn)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()
        self.sock.close()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def test_service_gone_mid_run_gives_errors_per_clip(svc: Svc, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from voxwarden.assess.service import measure_detection_service

    monkeypatch.setenv(KEY_ENV, svc.token)
    upstream = int(svc.url.rsplit(":", 1)[1])
    proxy = CutProxy(upstream, allow=2 + 4)  # health + key check + 4 uploads, then the service is gone
    cfg = load_config(_config(tmp_path, {"url": f"http://127.0.0.1:{proxy.port}", "api_key_env": KEY_ENV,
                                         "retries": 1, "timeout_s": 10}))
    assert cfg.detection is not None and isinstance(cfg.service, ServiceConfig)
    m = measure_detection_service(cfg.detection, cfg.service, tmp_path / "det")
    st = m.figures["service"]
    assert st["uploads"] == 15 and st["errors"] == 11 and st["scored"] + st["replayed"] == 4
    assert st["error_kinds"] == {"unreachable": 11}
    # trial 1 (3 conditions) and trial 2 clean were scored; the clean run lost trials 3-5
    assert m.figures["n_failed"] == 3 and len(m.figures["failed"]) == 3
    assert all("unreachable" in f["error"] for f in m.figures["failed"])
    pc = m.figures["per_condition"]
    assert (pc["none"]["n_failed"], pc["mp3:64k"]["n_failed"], pc["opus:16k"]["n_failed"]) == (3, 4, 4)
    assert any("11 of 15 upload(s) failed (unreachable: 11)" in e for e in m.errors)


def test_live_load_streams_through_the_service_websocket(svc: Svc, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from voxwarden.assess.live_load import measure_live
    from voxwarden.store.models import Alert

    monkeypatch.setenv(KEY_ENV, svc.token)
    p = _config(tmp_path, {"url": svc.url, "api_key_env": KEY_ENV})
    doc = yaml.safe_load(p.read_text())
    doc["live"]["load"] = {"rooms": 2, "seconds": 3}
    p.write_text(yaml.safe_dump(doc))
    cfg = load_config(p)
    assert cfg.live is not None and cfg.service is not None
    with svc.store.session() as s:
        alerts_before = s.query(Alert).filter(Alert.tenant_id == svc.tenant_id).count()
    m = measure_live(cfg.live, cfg.detection, tmp_path / "live", cfg.service)
    f = m.figures
    assert f["measured_via"].startswith(f"via {svc.url}") and not f["notes"], f
    assert f["rooms"] == 2 and f["synthetic_rooms"] == 1 and f["frames_sent"] == 2 * 150
    assert f["dropped_frames"] == 0 and f["windows_scored"] >= 2 and f["window_latency_ms_p50"] is not None
    assert f["rules"] == ["synthetic-voice"] and f["synthetic_rooms_alerted"] == 1
    assert f["alerts"] >= 1 and 0 < f["alert_latency_s_p95"] < 5 and f["first_alert_s_max"] is not None
    assert f["rooms_held_realtime"] is None  # the service's processing time is not visible from outside
    assert m.evidence["alert_latency_p95_s"].source == "measured:live-load"
    assert svc.url in m.evidence["monitoring_enabled"].detail
    with svc.store.session() as s:  # the service stored what it sent us
        assert s.query(Alert).filter(Alert.tenant_id == svc.tenant_id).count() - alerts_before == f["alerts"]


def test_float_wav_decodes_to_the_same_samples_and_keys_are_stable() -> None:
    import numpy as np

    from voxwarden.assess.service import float_wav, idempotency_key
    from voxwarden.audio import load

    x = (np.random.default_rng(1).standard_normal(16000 * 2) * 0.1).astype(np.float32)
    y = load(float_wav(x, 16000), sr=16000).samples
    assert y.dtype == np.float32 and np.array_equal(y, x)  # no second quantisation of a degraded copy
    k = idempotency_key("m@1", "a.wav", "mp3:64k", b"abc")
    assert k == idempotency_key("m@1", "a.wav", "mp3:64k", b"abc") and 1 <= len(k) <= 200 and k.isascii()
    others = {idempotency_key("m@2", "a.wav", "mp3:64k", b"abc"), idempotency_key("m@1", "b.wav", "mp3:64k", b"abc"),
              idempotency_key("m@1", "a.wav", "opus:16k", b"abc"), idempotency_key("m@1", "a.wav", "mp3:64k", b"abd")}
    assert k not in others and len(others) == 4


def test_live_rooms_refused_by_the_service_are_reported_not_fatal(svc: Svc, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from voxwarden.assess.live_load import measure_live
    from voxwarden.store import keys

    with svc.store.session() as s:  # a key that may scan but not stream into rooms
        monkeypatch.setenv(KEY_ENV, keys.create_api_key(s, svc.tenant_id, "scan-only", ["scan"]).token)
    p = _config(tmp_path, {"url": svc.url, "api_key_env": KEY_ENV})
    doc = yaml.safe_load(p.read_text())
    doc["live"]["load"] = {"rooms": 2, "seconds": 1}
    p.write_text(yaml.safe_dump(doc))
    cfg = load_config(p)
    assert cfg.live is not None
    m = measure_live(cfg.live, cfg.detection, tmp_path / "live", cfg.service)
    assert m.figures["windows_scored"] == 0 and m.figures["alerts"] == 0 and len(m.figures["notes"]) == 2
    assert all("403" in n for n in m.figures["notes"]), m.figures["notes"]
    assert sum("live via" in e and "403" in e for e in m.errors) == 2
    assert "monitoring_enabled" not in m.evidence and "alert_latency_p95_s" not in m.evidence
