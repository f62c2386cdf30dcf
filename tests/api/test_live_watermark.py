"""Live rooms check watermarks with the tenant's own key, off the window path (SQLite).

espeak-ng speech (>= 8 s) marked with tenant A's `Marker` (the key `TenantKeys` keeps for /v1/mark/*) is
streamed as PCM16 over /v1/rooms/{room}/stream: the check runs in the watermark worker after its window and
comes back as its own `watermark` event (room, speaker, span, present, payload, confidence) to the stream and
to /events watchers; a `signal: watermark` rule raises a stored alert whose details keep the check. Windows
carry no check. Unmarked speech: checked, not present, no alert. The same marked audio streamed by tenant B
(its own key) is not present; a tenant without a key gets no checks (none is created); `live_watermark =
"off"` checks nothing; `live_watermark_every` sets the cadence; a key made after the tenant's hub applies
from the next stream. The worker itself (newest wins per speaker, pacing by the budget, bounded queue) is
tested with a slow fake check and a fake clock.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _api_support import Env, espeak_speech, make_env

from voxwarden.api import Settings
from voxwarden.api.live_watermark import SKIPPED, CheckBudget, MarkChecker, tenant_checkers
from voxwarden.api.settings import SettingsError
from voxwarden.api.tenant_keys import TenantKeys
from voxwarden.live import (
    RulesEngine,
    StreamOptions,
    WatermarkChecked,
    WatermarkWorker,
    WindowScored,
    load_rules,
    pack_frame,
)
from voxwarden.store import Store
from voxwarden.store import keys as key_repo
from voxwarden.store.models import RoomSession

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
def speech(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    """10-12 s of espeak-ng speech at 16 kHz (>= 8 s: a watermark check needs an 8 s span)."""
    x = espeak_speech(tmp_path_factory.mktemp("wm"), TEXT, rate=160, sr=SR)
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
    """The watermark events (one per check that ran); no window carries a check any more."""
    assert all(w["watermark"] is None for w in of(msgs, "window"))
    return of(msgs, "watermark")


# -- end to end ----------------------------------------------------------------------------------------


def test_marked_stream_is_found_with_payload_and_alerts(wm_env: Env, speech: np.ndarray) -> None:
    y = marked(wm_env, wm_env.tenant_a, speech)
    with wm_env.client.websocket_connect(f"/v1/rooms/r1/events?token={wm_env.tokens['rooms']}") as sub, \
            wm_env.client.websocket_connect(f"/v1/rooms/r1/events?token={wm_env.tokens['other_rooms']}") as other:
        assert _receive(sub)["type"] == "subscribed" and _receive(other)["type"] == "subscribed"
        msgs = stream(wm_env, y)
        seen = []
        while not seen or seen[-1]["type"] != "session_ended":
            seen.append(_receive(sub))
        # the other tenant's watcher of a room with the same id got none of it (no check, no alert): its
        # first message is its own tenant's stream opening
        stream(wm_env, speech[: 2 * SR], who="other_rooms", speaker="bob")
        assert (m := _receive(other))["type"] == "session_started" and m["speaker"] == "bob", m
    wins = of(msgs, "window")
    assert len(wins) >= 4
    found = checks(msgs)
    # first check once 8 s have arrived (the window ending at 8 s), then every 8 s: 10-12 s of audio → one
    assert [(c["start"], c["end"]) for c in found] == [(0.0, 8.0)], found
    c = found[0]
    assert (c["room"], c["speaker"], c["session"]) == ("r1", "alice", wins[0]["session"])
    assert c["present"] is True and c["payload"] == PAYLOAD.hex() and c["confidence"] > 0.99
    assert c["seconds"] == 8.0 and c["error"] is None and c["skipped"] is None and c["latency_ms"] > 0
    # after the window that was due with it; before the session's end (close waits for the last check)
    types = [m["type"] for m in msgs]
    assert types.index("watermark") > types.index("window") and types[-1] == "session_ended"
    alerts = of(msgs, "alert")
    assert [(a["rule"], a["signal"], a["start"], a["end"]) for a in alerts] == [
        ("ai-label-present", "watermark", 0.0, 8.0)]
    assert alerts[0]["probability"] > 0.99 and alerts[0]["actions"] == [{"type": "review", "queue": "default"}]
    assert alerts[0]["watermark"]["payload"] == PAYLOAD.hex() and alerts[0]["watermark"]["present"] is True
    stats = of(msgs, "session_ended")[0]["stats"]
    assert stats["watermark_errors"] == 0 and stats["watermark_checks"] == 1
    # the room's watchers got the check and its alert once each, like the stream
    assert of(seen, "watermark") == found and [a["key"] for a in of(seen, "alert")] == [alerts[0]["key"]]
    # stored: the alert's details keep the check, its evidence is the audio checked (8 s)
    r = wm_env.client.get("/v1/rooms/r1/alerts", headers=wm_env.auth("rooms"))
    assert r.status_code == 200, r.text
    [item] = r.json()["items"]
    assert (item["rule"], item["key"]) == ("ai-label-present", alerts[0]["key"])
    wm = item["details"]["watermark"]
    assert (wm["present"], wm["payload"], wm["start"], wm["end"]) == (True, PAYLOAD.hex(), 0.0, 8.0)
    ev = item["details"]["evidence"]
    assert ev["seconds"] == 8.0 and len(ev["sha256"]) == 64 and ev["size"] == 44 + 8 * SR * 2
    # every check is stored as its own row too, and only this tenant sees it
    r = wm_env.client.get("/v1/rooms/r1/watermark-checks", headers=wm_env.auth("rooms"))
    assert r.status_code == 200, r.text
    [row] = r.json()["items"]
    assert (row["session"], row["speaker"], row["start"], row["end"]) == (wins[0]["session"], "alice", 0.0, 8.0)
    assert row["result"] == "present" and row["payload"] == PAYLOAD.hex() and row["confidence"] > 0.99
    other_rows = wm_env.client.get("/v1/rooms/r1/watermark-checks", headers=wm_env.auth("other_rooms")).json()
    assert all(x["speaker"] == "bob" for x in other_rows["items"])
    assert wm_env.client.get("/v1/rooms/r1/watermark-checks", params={"session": "nope"},
                             headers=wm_env.auth("rooms")).json()["items"] == []
    assert wm_env.client.get("/v1/rooms/nope/watermark-checks", headers=wm_env.auth("rooms")).status_code == 404


def test_unmarked_speech_is_checked_and_not_present(wm_env: Env, speech: np.ndarray) -> None:
    wm_env.app.state.tenant_keys.marker(wm_env.tenant_a)  # the tenant has a key: checks run
    msgs = stream(wm_env, speech)
    found = checks(msgs)
    assert len(found) == 1 and found[0]["present"] is False and found[0]["payload"] is None
    assert 0.0 <= found[0]["confidence"] < 0.5
    assert of(msgs, "alert") == []
    r = wm_env.client.get("/v1/rooms/r1/alerts", headers=wm_env.auth("rooms"))
    assert r.json()["items"] == []
    # no alert, but the check is on record: the span was checked and carried no mark
    [row] = wm_env.client.get("/v1/rooms/r1/watermark-checks", headers=wm_env.auth("rooms")).json()["items"]
    assert (row["start"], row["end"], row["result"], row["payload"]) == (0.0, 8.0, "absent", None)


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
        # due at 8 s and 10 s; when both wait for the worker at once the newer span wins (counted)
        w = e.app.state.live.watermark_worker.stats
        assert len(found) + w.superseded == 2 and found[-1]["end"] == 10.0, (found, w)
        assert all((c["end"] - c["start"], c["end"]) in ((8.0, 8.0), (8.0, 10.0)) for c in found)
        assert all(c["present"] and c["payload"] == PAYLOAD.hex() for c in found)
        assert len(of(msgs, "alert")) == len(found)  # cooldown 0, one per check that finds the mark
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
    assert budget.delay() == 0.0 and budget.try_start()
    budget.charge(1.5)
    assert not budget.try_start()
    assert budget.delay() == pytest.approx((0.5 + 1e-3) / 0.5)  # what the worker waits: credit back above 0
    now[0] += budget.delay()
    assert budget.delay() == 0.0 and budget.try_start()
    budget.charge(0.0)

    keys = TenantKeys(tmp_path / "keys")
    m = keys.marker("t1")
    y = m.embed(speech[: 8 * SR], SR, PAYLOAD)
    spent = CheckBudget(share=0.001, burst=0.001)
    spent.charge(1.0)
    assert MarkChecker(m, "t1", spent)(y, SR) == SKIPPED and spent.skipped == 1
    assert MarkChecker(m, "t1", CheckBudget())(y, SR)["present"] is True

    # a skipped or failed check neither fires a watermark rule nor breaks its run (unjudged, not "absent");
    # windows never judge a watermark rule, checks never judge a probability rule
    two = RULES.replace("sustain: {windows: 1}", "sustain: {windows: 2}\n    max_gap: 8")
    rules = RulesEngine(load_rules(two + "  - {name: prob, threshold: 0.0}\n"))

    def check(start: float, present: bool | None, **kw: Any) -> WatermarkChecked:
        return WatermarkChecked(room="r", speaker="s", session="x", start=start, end=start + 8.0, stream_start=0.0,
                                present=present, confidence=0.999999 if present else 0.1, **kw)

    def win(start: float) -> WindowScored:
        return WindowScored(room="r", speaker="s", session="x", start=start, end=start + 4.0, stream_start=0.0,
                            probability=0.1)

    assert rules.evaluate(check(0.0, True)) == []
    assert [a.rule for a in rules.evaluate(win(4.0))] == ["prob"]  # a window: probability rules only
    assert rules.evaluate(check(8.0, None, skipped="budget", error="spent")) == []
    assert rules.evaluate(check(16.0, None, error="ValueError: bad")) == []
    [alert] = rules.evaluate(check(16.0, True, payload=PAYLOAD.hex()))
    assert alert.windows == 2 and alert.signal == "watermark" and (alert.run_start, alert.end) == (0.0, 24.0)
    assert alert.watermark is not None and alert.watermark["payload"] == PAYLOAD.hex()
    assert alert.to_dict()["watermark"]["end"] == 24.0
    assert rules.evaluate(check(24.0, False)) == []  # absent: ends the run
    assert rules.evaluate(check(32.0, True)) == []


def test_checks_run_in_their_own_worker_not_a_scoring_thread(tmp_path: Path, sqlite_template: Path,
                                                              live_detector: Any) -> None:
    """Checks no longer hold a scorer: the scoring pool is the same size with checks on or off, and every
    tenant's hub hands its checks to the service's one watermark worker."""
    counts, workers = {}, {}
    for name, extra in (("on", {}), ("off", {"live_watermark": "off"}), ("set", {"live_score_threads": 3})):
        d = tmp_path / name
        d.mkdir()
        e = _env(d, sqlite_template, live_detector, **extra)
        try:
            live = e.app.state.live
            counts[name] = live.score_pool._max_workers
            workers[name] = {live.tenant(e.tenant_a).hub.watermark_worker, live.tenant(e.tenant_b).hub.watermark_worker}
            assert workers[name] == {live.watermark_worker}
        finally:
            _close(e)
    assert counts["on"] == counts["off"] and counts["set"] == 3


# -- the worker ----------------------------------------------------------------------------------------


def _until(cond: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


def test_worker_runs_one_at_a_time_newest_wins_per_speaker() -> None:
    w = WatermarkWorker(max_queue=2)
    gate = threading.Event()
    ran: list[str] = []
    active = [0, 0]  # now, most at once

    def job(name: str, block: bool = False) -> Any:
        def run() -> None:
            active[0] += 1
            active[1] = max(active[1], active[0])
            if block:
                gate.wait(10)
            ran.append(name)
            active[0] -= 1
        return run

    try:
        w.submit("a", job("a1", block=True))
        _until(lambda: w.busy("a") and w.queued() == 0)  # a1 runs and holds the thread
        w.submit("a", job("a2"))
        w.submit("b", job("b1"))
        w.submit("a", job("a3"))  # replaces a2 in place: a keeps its turn before b
        assert (w.queued(), w.stats.superseded) == (2, 1)
        assert (w.ahead("a"), w.ahead("b"), w.ahead("zzz")) == (0, 2, None)  # a1 runs; a3 then b1 wait
        w.submit("c", job("c1"))  # the queue holds 2: the oldest waiting (a3) is dropped
        assert (w.queued(), w.stats.dropped) == (2, 1) and (w.ahead("b"), w.ahead("c")) == (1, 2)
        assert not w.wait("b", 0.05)  # still queued behind a1
        gate.set()
        assert w.wait("b", 10) and w.wait("c", 10)
        assert ran == ["a1", "b1", "c1"] and active[1] == 1 and w.stats.ran == 3
        assert w.cancel("zzz") is False and not w.busy("a")
    finally:
        gate.set()
        w.stop()
    assert w.submit("d", job("d1")) is False  # stopped


def test_worker_waits_for_the_budget_instead_of_skipping() -> None:
    """Through the worker a spent budget delays checks (then the newest span runs); nothing is skipped.
    The check here is a 0.1 s sleep charged to the budget as `MarkChecker` charges a detect."""
    budget = CheckBudget(share=0.5, burst=0.001)
    cost = 0.1
    results: list[bool] = []

    def check() -> None:
        ok = budget.try_start()
        results.append(ok)
        if ok:
            time.sleep(cost)
            budget.charge(cost)

    w = WatermarkWorker()
    try:
        t0 = time.monotonic()
        for _ in range(3):
            w.submit("s", check, pace=budget.delay)
            assert w.wait("s", 30)
        took = time.monotonic() - t0
    finally:
        w.stop()
    assert results == [True, True, True] and budget.skipped == 0 and budget.ran == 3
    # at a share of 0.5 a 0.1 s check may start every 0.2 s (credit accrues while it runs too): after the
    # first, each waits ~0.1 s, so 3 checks take their busy time + ~0.2 s (without pacing: + ~0). The busy
    # time is measured (a loaded machine sleeps longer than asked), the waits come from the charged cost.
    assert took >= w.stats.busy_seconds + 0.15 and took >= 0.45, (took, w.stats)


def test_sink_stores_every_check_even_after_its_session_ended(tmp_path: Path, sqlite_template: Path) -> None:
    from voxwarden.api.live_sink import StoreSink
    from voxwarden.live import SessionEnded, SessionStarted, WatermarkChecked
    from voxwarden.store.models import WatermarkCheck

    db = tmp_path / "v.db"
    shutil.copyfile(sqlite_template, db)
    store = Store(f"sqlite:///{db}", evidence_dir=tmp_path / "ev", migrate=False)
    with store.session() as s:
        tid = key_repo.create_tenant(s, "t").id
    sink = StoreSink(store, tid)
    sink(SessionStarted(room="r", speaker="a", session="s1", codec="pcm16", sample_rate=16000))
    sink(WatermarkChecked(room="r", speaker="a", session="s1", start=0.0, end=8.0, present=False, confidence=0.1,
                          seconds=8.0))
    sink(SessionEnded(room="r", speaker="a", session="s1"))
    # the last check of a session finishes after its end: stored on that session, no new session opened
    sink(WatermarkChecked(room="r", speaker="a", session="s1", start=8.0, end=16.0, present=True,
                          payload="ABCD" * 4, confidence=0.999, seconds=8.0))
    sink(WatermarkChecked(room="r", speaker="a", session="s1", start=8.0, end=16.0, present=True,
                          payload="ABCD" * 4, confidence=0.999, seconds=8.0))  # a replay: one row
    sink(WatermarkChecked(room="r", speaker="a", session="s1", start=16.0, end=20.0, error="decoder failed"))
    sink(WatermarkChecked(room="r", speaker="a", session="s1", start=20.0, end=24.0, skipped="budget"))
    sink(WatermarkChecked(room="r", speaker="a", session="never-opened", start=0.0, end=8.0, present=True))
    with store.session() as s:
        rows = s.query(WatermarkCheck).order_by(WatermarkCheck.start).all()
        assert [(r.start, r.result, r.payload, r.reason) for r in rows] == [
            (0.0, "absent", None, None), (8.0, "present", "abcd" * 4, None), (16.0, "error", None, "decoder failed"),
            (20.0, "skipped", None, "budget")]
        assert len({r.session_id for r in rows}) == 1
        assert s.query(RoomSession).count() == 1
