"""Live rooms check watermarks with the tenant's own key (SQLite).

espeak-ng speech (>= 8 s) marked with tenant A's `Marker` (the key `TenantKeys` keeps for /v1/mark/*) is
streamed as PCM16 over /v1/rooms/{room}/stream: a window event carries the check (present, payload,
confidence) and a `signal: watermark` rule raises a stored alert. Unmarked speech: checked, not present, no
alert. The same marked audio streamed by tenant B (its own key) is not present; a tenant without a key gets
no checks (none is created); `live_watermark = "off"` checks nothing; `live_watermark_every` sets the cadence;
a key made after the tenant's hub applies from the next stream.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _api_support import Env, make_env

from voxwarden.api import Settings
from voxwarden.api.live_watermark import SKIPPED, CheckBudget, MarkChecker, tenant_checkers
from voxwarden.api.settings import SettingsError
from voxwarden.api.tenant_keys import TenantKeys
from voxwarden.live import RulesEngine, StreamOptions, WindowScored, load_rules, pack_frame
from voxwarden.store import Store
from voxwarden.store import keys as key_repo

RULES = """\
version: 1
rules:
  - name: ai-label-present
    signal: watermark
    sustain: {windows: 1}
    cooldown: 0
    severity: info
    actions: [review]
"""
SR = 16000
FRAME = 320  # 20 ms
PAYLOAD = bytes.fromhex("a1b2c3d4")
TEXT = ("this live voice room carries a synthetic voice that was labelled by the platform that made it, and "
        "the speaker keeps on talking without a pause so that every window holds speech")


@pytest.fixture(scope="module")
def live_detector() -> Any:
    from voxwarden.detect import Detector

    return Detector.load()


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    """10-12 s of espeak-ng speech at 16 kHz (>= 8 s: a watermark check needs an 8 s span)."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        pytest.skip("espeak-ng not installed")
    wav = tmp_path_factory.mktemp("wm") / "s.wav"
    subprocess.run([exe, "-w", str(wav), "-s", "160", TEXT], check=True, capture_output=True, timeout=30)
    from voxwarden.audio import load

    x = load(str(wav), sr=SR).samples.astype(np.float32)
    assert x.size >= 10 * SR, x.size / SR
    return x[: 12 * SR]


def _env(tmp_path: Path, template: Path, detector: Any, **settings: Any) -> Env:
    """An app with the watermark rule; a large check budget unless given (on a busy test machine one
    unmarked check can take seconds, and the default budget would then skip the next one)."""
    settings.setdefault("live_watermark_budget", 64.0)
    db = tmp_path / "voxwarden.db"
    shutil.copyfile(template, db)
    (tmp_path / "rules.yaml").write_text(RULES)
    store = Store(f"sqlite:///{db}", evidence_dir=tmp_path / "evidence", migrate=False)
    e = make_env(store, detector, tmp_path, rules_path=tmp_path / "rules.yaml", **settings)
    with store.session() as s:
        e.tokens["other_rooms"] = key_repo.create_api_key(s, e.tenant_b, "other-rooms", ["rooms"]).token
    return e


def _close(e: Env) -> None:
    e.app.state.live.stop()
    e.client.close()
    e.store.dispose()


@pytest.fixture
def wm_env(tmp_path: Path, sqlite_template: Path, live_detector: Any) -> Iterator[Env]:
    e = _env(tmp_path, sqlite_template, live_detector)
    yield e
    _close(e)


def marked(e: Env, tenant: str, x: np.ndarray) -> np.ndarray:
    """`x` marked with the tenant's own key (made on first use, as /v1/mark/embed makes it)."""
    y = e.app.state.tenant_keys.marker(tenant).embed(x, SR, PAYLOAD)
    assert e.app.state.tenant_keys.marker(tenant).detect(y, SR).present  # the offline check agrees
    return y


_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="wm-recv")


def _receive(ws: Any, timeout: float = 30.0) -> dict[str, Any]:
    try:
        return _pool.submit(ws.receive_json).result(timeout=timeout)
    except FutureTimeout:
        pytest.fail(f"no message within {timeout} s")


def stream(e: Env, x: np.ndarray, *, who: str = "rooms", room: str = "r1", speaker: str = "alice") -> list[dict]:
    """Stream `x` as 20 ms PCM16 frames, end the session; every event the stream got back."""
    pcm = np.clip(np.round(x * 32767.0), -32768, 32767).astype("<i2")
    with e.client.websocket_connect(f"/v1/rooms/{room}/stream?token={e.tokens[who]}") as ws:
        ws.send_text(json.dumps({"type": "hello", "room": room, "speaker": speaker, "codec": "pcm16",
                                 "sample_rate": SR, "stream_start": 1_700_000_000.0}))
        assert _receive(ws)["type"] == "session_started"
        for i, j in enumerate(range(0, pcm.size, FRAME)):
            ws.send_bytes(pack_frame(i, pcm[j:j + FRAME].tobytes()))
        ws.send_text(json.dumps({"type": "end"}))
        out = []
        while True:
            m = _receive(ws)
            out.append(m)
            if m["type"] == "session_ended" or m.get("fatal"):
                return out


def of(msgs: list[dict], kind: str) -> list[dict]:
    return [m for m in msgs if m["type"] == kind]


def checks(msgs: list[dict]) -> list[dict]:
    """The window events on which a watermark check ran (with the window's end)."""
    return [{**w["watermark"], "end": w["end"]} for w in of(msgs, "window") if w["watermark"] is not None]


# -- end to end ----------------------------------------------------------------------------------------


def test_marked_stream_is_found_with_payload_and_alerts(wm_env: Env, speech: np.ndarray) -> None:
    msgs = stream(wm_env, marked(wm_env, wm_env.tenant_a, speech))
    wins = of(msgs, "window")
    assert len(wins) >= 4
    found = checks(msgs)
    # first check once 8 s have arrived (the window ending at 8 s), then every 8 s: 10-12 s of audio → one
    assert [c["end"] for c in found] == [8.0], found
    c = found[0]
    assert c["present"] is True and c["payload"] == PAYLOAD.hex() and c["confidence"] > 0.99
    assert c["seconds"] == 8.0
    assert all(w["watermark"] is None for w in wins if w["end"] != 8.0)  # windows without a check
    alerts = of(msgs, "alert")
    assert [(a["rule"], a["signal"], a["end"]) for a in alerts] == [("ai-label-present", "watermark", 8.0)]
    assert alerts[0]["probability"] > 0.99 and alerts[0]["actions"] == [{"type": "review", "queue": "default"}]
    assert of(msgs, "session_ended")[0]["stats"]["watermark_errors"] == 0
    r = wm_env.client.get("/v1/rooms/r1/alerts", headers=wm_env.auth("rooms"))
    assert r.status_code == 200, r.text
    assert [(i["rule"], i["key"]) for i in r.json()["items"]] == [("ai-label-present", alerts[0]["key"])]


def test_unmarked_speech_is_checked_and_not_present(wm_env: Env, speech: np.ndarray) -> None:
    wm_env.app.state.tenant_keys.marker(wm_env.tenant_a)  # the tenant has a key: checks run
    msgs = stream(wm_env, speech)
    found = checks(msgs)
    assert len(found) == 1 and found[0]["present"] is False and found[0]["payload"] is None
    assert 0.0 <= found[0]["confidence"] < 0.5
    assert of(msgs, "alert") == []


def test_keys_are_per_tenant(wm_env: Env, speech: np.ndarray) -> None:
    y = marked(wm_env, wm_env.tenant_a, speech)
    # tenant B has no watermark key: no check runs, and none is created for it
    msgs = stream(wm_env, y, who="other_rooms")
    assert checks(msgs) == [] and of(msgs, "window")
    assert not wm_env.app.state.tenant_keys.has_watermark_key(wm_env.tenant_b)
    # B gets its own key (e.g. by marking something): its hub checks from the next stream on, with B's key,
    # which does not see A's mark
    wm_env.app.state.tenant_keys.marker(wm_env.tenant_b)
    msgs = stream(wm_env, y, who="other_rooms", speaker="bob")
    found = checks(msgs)
    assert len(found) == 1 and found[0]["present"] is False and found[0]["payload"] is None
    assert of(msgs, "alert") == []
    # A's own stream of the same audio: found (same process, same rules file)
    assert [c["payload"] for c in checks(stream(wm_env, y))] == [PAYLOAD.hex()]


def test_off_means_no_checks(tmp_path: Path, sqlite_template: Path, live_detector: Any, speech: np.ndarray) -> None:
    e = _env(tmp_path, sqlite_template, live_detector, live_watermark="off")
    try:
        msgs = stream(e, marked(e, e.tenant_a, speech))
        assert of(msgs, "window") and checks(msgs) == [] and of(msgs, "alert") == []
    finally:
        _close(e)


def test_every_sets_the_cadence(tmp_path: Path, sqlite_template: Path, live_detector: Any,
                                speech: np.ndarray) -> None:
    e = _env(tmp_path, sqlite_template, live_detector, live_watermark_every=2.0)
    try:
        assert e.app.state.live.options.watermark_every == 2.0
        msgs = stream(e, marked(e, e.tenant_a, speech))
        found = checks(msgs)
        assert [c["end"] for c in found] == [8.0, 10.0]
        assert all(c["present"] and c["payload"] == PAYLOAD.hex() for c in found)
        assert len(of(msgs, "alert")) == 2  # cooldown 0, one per window that carries the mark
    finally:
        _close(e)


# -- the parts -----------------------------------------------------------------------------------------


def test_settings_accept_and_refuse(tmp_path: Path) -> None:
    s = Settings()
    assert s.live_watermark == "tenant" and s.live_watermark_every == StreamOptions().watermark_every
    assert s.live_watermark_budget == 0.25
    cfg = tmp_path / "api.toml"
    cfg.write_text('live_watermark = "off"\nlive_watermark_every = 30\nlive_watermark_budget = 1\n')
    s = Settings.from_file(cfg)
    assert s.live_watermark == "off" and s.live_watermark_every == 30.0 and s.live_watermark_budget == 1.0
    for bad in ({"live_watermark": "sometimes"}, {"live_watermark": True}, {"live_watermark_every": -1},
                {"live_watermark_every": "8"}, {"live_watermark_every": True}, {"live_watermark_every": 1e9},
                {"live_watermark_every": float("nan")}, {"live_watermark_budget": 0},
                {"live_watermark_budget": "all"}, {"live_watermark_budget": float("inf")}):
        with pytest.raises(SettingsError, match="live_watermark"):
            Settings.from_mapping(bad)


def test_checker_factory_needs_a_key_and_survives_a_damaged_one(tmp_path: Path, speech: np.ndarray) -> None:
    keys = TenantKeys(tmp_path / "keys")
    factory = tenant_checkers(keys)
    assert factory("t1") is None and not keys.has_watermark_key("t1")  # no key is made by asking
    m = keys.marker("t1")
    chk = factory("t1")
    assert isinstance(chk, MarkChecker)
    y = m.embed(speech[: 8 * SR], SR, PAYLOAD)
    assert chk(y, SR) == {"present": True, "payload": PAYLOAD.hex(),
                          "confidence": round(float(m.detect(y, SR).confidence), 6), "seconds": 8.0}
    # a damaged key file: logged, no checker (streams go on without checks)
    (tmp_path / "keys" / "t2").mkdir(mode=0o700)
    (tmp_path / "keys" / "t2" / "watermark.key").write_bytes(b"garbage")
    assert factory("t2") is None
    assert factory("../etc") is None  # not a tenant id: no key, no error


def test_budget_skips_checks_and_rules_treat_a_skip_as_unjudged(tmp_path: Path, speech: np.ndarray) -> None:
    now = [0.0]
    budget = CheckBudget(share=0.5, burst=1.0, clock=lambda: now[0])
    assert budget.try_start()
    assert not budget.try_start()  # one check at a time, even with credit left
    budget.charge(3.0)  # a slow check: credit 1 - 3 = -2, back above 0 after 4 s at half a second per second
    now[0] = 3.9
    assert not budget.try_start()
    now[0] = 4.1
    assert budget.try_start() and (budget.ran, budget.skipped) == (2, 2)
    budget.charge(0.0)
    now[0] = 1000.0  # credit is capped at `burst`: one 1.5 s check, then a skip
    assert budget.try_start()
    budget.charge(1.5)
    assert not budget.try_start()

    keys = TenantKeys(tmp_path / "keys")
    m = keys.marker("t1")
    y = m.embed(speech[: 8 * SR], SR, PAYLOAD)
    spent = CheckBudget(share=0.001, burst=0.001)
    spent.charge(1.0)
    assert MarkChecker(m, "t1", spent)(y, SR) == SKIPPED and spent.skipped == 1
    assert MarkChecker(m, "t1", CheckBudget())(y, SR)["present"] is True

    # a skipped check neither fires a watermark rule nor breaks its run (it is unjudged, not "absent")
    rules = RulesEngine(load_rules(RULES.replace("sustain: {windows: 1}", "sustain: {windows: 2}\n    max_gap: 4")))

    def win(start: float, wm: dict | None) -> WindowScored:
        return WindowScored(room="r", speaker="s", session="x", start=start, end=start + 4.0, stream_start=0.0,
                            probability=0.1, watermark=wm)

    hit = {"present": True, "payload": PAYLOAD.hex(), "confidence": 0.999999, "seconds": 8.0}
    assert rules.evaluate(win(4.0, hit)) == []
    assert rules.evaluate(win(6.0, dict(SKIPPED))) == []
    [alert] = rules.evaluate(win(8.0, hit))
    assert alert.windows == 2 and alert.signal == "watermark"


def test_checks_get_their_own_scoring_thread(tmp_path: Path, sqlite_template: Path, live_detector: Any) -> None:
    """A check holds a scorer for up to a second or two: with checks on, the pool has one thread more (unless
    the operator set the count), so one check never halves the scoring of every room."""
    counts = {}
    for name, extra in (("on", {}), ("off", {"live_watermark": "off"}), ("set", {"live_score_threads": 3})):
        d = tmp_path / name
        d.mkdir()
        e = _env(d, sqlite_template, live_detector, **extra)
        try:
            counts[name] = e.app.state.live.score_pool._max_workers
        finally:
            _close(e)
    assert counts["on"] == counts["off"] + 1 and counts["set"] == 3
