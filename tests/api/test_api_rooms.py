"""Live rooms over WebSocket: auth, hello errors, espeak-ng speech → scored windows stored, duplicates,
malformed frames, reconnect/restart resume, subscribers, alerts endpoint tenant isolation (SQLite)."""

from __future__ import annotations

import json
import shutil
import subprocess
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _api_support import Env, make_env
from starlette.websockets import WebSocketDisconnect

from voxwarden.api import create_app
from voxwarden.live import pack_frame
from voxwarden.store import Store, audit, verify_audit_chain
from voxwarden.store import rooms as room_repo
from voxwarden.store.models import RoomSession

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

RULES = """\
version: 1
rules:
  - name: any-speech
    signal: probability
    threshold: 0.0
    sustain: {windows: 1}
    cooldown: 0
    severity: warning
"""
FRAME = 320  # 20 ms at 16 kHz


@pytest.fixture(scope="module")
def live_detector() -> Any:
    from voxwarden.detect import Detector

    return Detector.load()


@pytest.fixture(scope="module")
def speech16k(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    exe = shutil.which("espeak-ng")
    if exe is None:
        pytest.skip("espeak-ng not installed")
    wav = tmp_path_factory.mktemp("live") / "s.wav"
    subprocess.run([exe, "-w", str(wav), "-s", "150",
                    "this is a live voice room and the speaker keeps talking for a few seconds more"],
                   check=True, capture_output=True, timeout=30)
    from voxwarden.audio import load

    x = load(str(wav), sr=16000).samples
    assert x.size > 4 * 16000
    return np.concatenate([x, x])  # ~10 s: several 4 s / 2 s windows, one or more on each side of a resume


@pytest.fixture
def live_env(tmp_path: Path, sqlite_template: Path, live_detector: Any) -> Iterator[Env]:
    db = tmp_path / "voxwarden.db"
    shutil.copyfile(sqlite_template, db)
    (tmp_path / "rules.yaml").write_text(RULES)
    store = Store(f"sqlite:///{db}", evidence_dir=tmp_path / "evidence", migrate=False)
    e = make_env(store, live_detector, tmp_path, rules_path=tmp_path / "rules.yaml")
    with store.session() as s:
        from voxwarden.store import keys

        e.tokens["other_rooms"] = keys.create_api_key(s, e.tenant_b, "other-rooms", ["rooms"]).token
    yield e
    e.app.state.live.stop()
    e.client.close()
    store.dispose()


def frames(x: np.ndarray, first_seq: int = 0) -> list[bytes]:
    pcm = np.clip(np.round(x * 32767.0), -32768, 32767).astype("<i2")
    return [pack_frame(first_seq + i, pcm[j:j + FRAME].tobytes()) for i, j in enumerate(range(0, pcm.size, FRAME))]


def hello(room: str = "r1", speaker: str = "alice", **kw: Any) -> str:
    return json.dumps({"type": "hello", "room": room, "speaker": speaker, "codec": "pcm16",
                       "sample_rate": 16000, "stream_start": 1_700_000_000.0, **kw})


def url(env: Env, room: str = "r1", kind: str = "stream", who: str = "rooms") -> str:
    return f"/v1/rooms/{room}/{kind}?token={env.tokens[who]}"


_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="ws-recv")


def receive(ws: Any, timeout: float = 20.0) -> dict[str, Any]:
    """The next JSON message, failing the test (not hanging it) when none comes within `timeout`."""
    try:
        return _pool.submit(ws.receive_json).result(timeout=timeout)
    except FutureTimeout:
        pytest.fail(f"no message within {timeout} s")


def until(ws: Any, kind: str) -> list[dict[str, Any]]:
    """Messages up to and including the first of type `kind`."""
    out = []
    while True:
        m = receive(ws)
        out.append(m)
        if m["type"] == kind:
            return out


def barrier(ws: Any) -> list[dict[str, Any]]:
    """Wait until the server has handled everything sent so far (a text message it answers in order)."""
    ws.send_text("sync")
    return until(ws, "unexpected_text")[:-1]


def ms(w: dict[str, Any]) -> int:
    return int(round(w["start"] * 1000))


def of(msgs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [m for m in msgs if m["type"] == kind]


# -- auth and hello ------------------------------------------------------------------------------


@pytest.mark.parametrize("who,headers", [(None, {}), ("scan", {}), ("bad", {}), (None, {"Authorization": "Basic x"})])
def test_stream_refuses_missing_bad_or_unscoped_keys_before_accepting(live_env: Env, who: str | None,
                                                                      headers: dict[str, str]) -> None:
    tok = {"scan": live_env.tokens["scan"], "bad": "vw_nope_nope"}.get(who or "")
    path = "/v1/rooms/r1/stream" + (f"?token={tok}" if tok else "")
    with pytest.raises(WebSocketDisconnect) as ei, live_env.client.websocket_connect(path, headers=headers):
        pass
    assert ei.value.code == 1008
    with pytest.raises(WebSocketDisconnect) as ei, live_env.client.websocket_connect(
            "/v1/rooms/r1/events" + (f"?token={tok}" if tok else ""), headers=headers):
        pass
    assert ei.value.code == 1008


def test_bearer_header_is_accepted(live_env: Env) -> None:
    with live_env.client.websocket_connect("/v1/rooms/r1/stream", headers=live_env.auth("rooms")) as ws:
        ws.send_text(hello())
        assert ws.receive_json()["type"] == "session_started"


@pytest.mark.parametrize("first,needle", [
    (hello(room="elsewhere"), "room"),
    ("not json", ""),
    (json.dumps({"room": "r1", "speaker": "a"}), "codec"),
    (json.dumps({"room": "r1", "speaker": "a", "codec": "pcm16", "sample_rate": 12345}), "sample_rate"),
])
def test_bad_hello_gets_a_reason_and_close_1008(live_env: Env, first: str, needle: str) -> None:
    with live_env.client.websocket_connect(url(live_env)) as ws:
        ws.send_text(first)
        err = ws.receive_json()
        assert err["type"] == "bad_hello" and err["fatal"] is True and needle in err["message"]
        with pytest.raises(WebSocketDisconnect) as ei:
            ws.receive_json()
        assert ei.value.code == 1008 and ei.value.reason == "bad_hello"


def test_session_id_of_another_room_is_refused(live_env: Env) -> None:
    with live_env.client.websocket_connect(url(live_env)) as ws:
        ws.send_text(hello(session="taken"))
        assert ws.receive_json()["type"] == "session_started"
    with live_env.client.websocket_connect(url(live_env, room="r2")) as ws:
        ws.send_text(hello(room="r2", session="taken"))
        err = ws.receive_json()
        assert err["type"] == "bad_hello" and "session" in err["message"]
    with live_env.client.websocket_connect(url(live_env)) as ws:  # a plain hello may not reuse it either
        ws.send_text(hello(session="taken"))
        assert ws.receive_json()["type"] == "bad_hello"
    with live_env.client.websocket_connect(url(live_env)) as ws:
        ws.send_text(hello(session="taken", resume=True))
        assert ws.receive_json()["resumed"] is True
        ws.send_text(json.dumps({"type": "end"}))
        until(ws, "session_ended")
    with live_env.client.websocket_connect(url(live_env)) as ws:  # ended: no resume into stored windows
        ws.send_text(hello(session="taken", resume=True))
        assert ws.receive_json()["type"] == "bad_resume"


def test_detector_without_window_scoring_closes_with_1011(sqlite_env: Env) -> None:
    with pytest.raises(WebSocketDisconnect) as ei, sqlite_env.client.websocket_connect(url(sqlite_env)):
        pass
    assert ei.value.code == 1011


# -- streaming -----------------------------------------------------------------------------------


def test_speech_is_scored_stored_alerted_and_audited(live_env: Env, speech16k: np.ndarray) -> None:
    fr = frames(speech16k)
    with live_env.client.websocket_connect(url(live_env)) as ws:
        ws.send_text(hello(session="s-1"))
        started = ws.receive_json()
        assert started["type"] == "session_started" and started["resumed"] is False
        assert started["window"] == 4.0 and started["hop"] == 2.0 and started["last_acked_seq"] is None
        ws.send_bytes(b"\x00\x01")  # malformed (no 4-byte header): refused, stream goes on
        for f in fr[:10]:
            ws.send_bytes(f)
        ws.send_bytes(pack_frame(10, b"\x01\x02\x03"))  # odd PCM16 length
        for f in fr[11:]:
            ws.send_bytes(f)
        for f in fr[:50]:  # duplicates: ignored
            ws.send_bytes(f)
        msgs = barrier(ws)
        ws.send_text(json.dumps({"type": "end"}))
        msgs += until(ws, "session_ended")
        with pytest.raises(WebSocketDisconnect) as ei:
            ws.receive_json()
        assert ei.value.code == 1000
    rejected = of(msgs, "frame_rejected")
    assert [r["error"]["type"] for r in rejected] == ["malformed_frame", "malformed_frame"]
    wins = of(msgs, "window")
    assert len(wins) >= 2 and all(0.0 <= w["probability"] <= 1.0 for w in wins)
    assert [w["start"] for w in wins] == sorted({w["start"] for w in wins})
    alerts = of(msgs, "alert")
    assert len(alerts) == len(wins)  # threshold 0, sustain 1 window, no cooldown: one per window
    ended = of(msgs, "session_ended")[0]
    assert ended["stats"]["duplicates"] == 50 and ended["stats"]["rejected"] == 2
    with live_env.store.session() as s:
        [rs] = s.query(RoomSession).filter_by(tenant_id=live_env.tenant_a, external_id="s-1").all()
        assert rs.ended_at is not None and rs.codec == "pcm16" and rs.sample_rate == 16000
        assert rs.source_ip == "testclient"
        stored = room_repo.windows(s, live_env.tenant_a, rs.id)
        assert [w.seq for w in stored] == [ms(w) for w in wins]
        assert [round(w.probability, 6) for w in stored] == [round(w["probability"], 6) for w in wins]
        actions = [e.action for e in audit.entries(s, live_env.tenant_a)]
        assert "room.connect" in actions and "room.disconnect" in actions
        assert verify_audit_chain(s).ok
    r = live_env.client.get("/v1/rooms/r1/alerts", headers=live_env.auth("rooms"))
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert sorted(i["key"] for i in items) == sorted(a["key"] for a in alerts)
    assert all(i["room"] == "r1" and i["rule"] == "any-speech" for i in items)
    # another tenant: the room does not exist for them; scan-only key: forbidden
    assert live_env.client.get("/v1/rooms/r1/alerts", headers=live_env.auth("other_rooms")).status_code == 404
    assert live_env.client.get("/v1/rooms/r1/alerts", headers=live_env.auth("scan")).status_code == 403
    assert live_env.client.get("/v1/rooms/r1/alerts").status_code == 401


def test_same_room_id_in_two_tenants_stays_apart(live_env: Env, speech16k: np.ndarray) -> None:
    fr = frames(speech16k[: 16000 * 5])
    for who in ("rooms", "other_rooms"):
        with live_env.client.websocket_connect(url(live_env, who=who)) as ws:
            ws.send_text(hello(session="same"))
            assert ws.receive_json()["resumed"] is False
            for f in fr:
                ws.send_bytes(f)
            ws.send_text(json.dumps({"type": "end"}))
            assert of(until(ws, "session_ended"), "window")
    a = live_env.client.get("/v1/rooms/r1/alerts", headers=live_env.auth("rooms")).json()["items"]
    b = live_env.client.get("/v1/rooms/r1/alerts", headers=live_env.auth("other_rooms")).json()["items"]
    assert a and b and not {i["id"] for i in a} & {i["id"] for i in b}


# -- resume --------------------------------------------------------------------------------------


def test_reconnect_resumes_from_last_acked_seq(live_env: Env, speech16k: np.ndarray) -> None:
    fr = frames(speech16k)
    half = len(fr) // 2
    with live_env.client.websocket_connect(url(live_env)) as ws:
        ws.send_text(hello(session="s-r"))
        ws.receive_json()
        for f in fr[:half]:
            ws.send_bytes(f)
        first = of(barrier(ws), "window")
    with live_env.client.websocket_connect(url(live_env)) as ws:
        ws.send_text(hello(session="s-r", resume=True))
        started = ws.receive_json()
        assert started["resumed"] is True and started["last_acked_seq"] == half - 1
        for f in fr[half - 20:]:  # a client resends a little more than needed: duplicates dropped
            ws.send_bytes(f)
        ws.send_text(json.dumps({"type": "end"}))
        msgs = until(ws, "session_ended")
    second = of(msgs, "window")
    assert first and second and second[0]["index"] == first[-1]["index"] + 1
    assert of(msgs, "session_ended")[0]["stats"]["duplicates"] == 20
    with live_env.store.session() as s:
        [rs] = s.query(RoomSession).filter_by(tenant_id=live_env.tenant_a, external_id="s-r").all()
        assert [w.seq for w in room_repo.windows(s, live_env.tenant_a, rs.id)] == \
            [ms(w) for w in first + second]


def test_restart_resumes_from_the_stored_checkpoint(live_env: Env, speech16k: np.ndarray,
                                                    live_detector: Any) -> None:
    fr = frames(speech16k)
    half = len(fr) // 2
    with live_env.client.websocket_connect(url(live_env)) as ws:
        ws.send_text(hello(session="s-c"))
        ws.receive_json()
        for f in fr[:half]:
            ws.send_bytes(f)
        first = of(barrier(ws), "window")
    assert first
    # a new process: same store and data dir, empty hubs
    app2 = create_app(live_env.app.state.settings, store=live_env.store, detector=live_detector)
    with TestClient(app2) as c2, c2.websocket_connect(url(live_env)) as ws:
        ws.send_text(hello(session="s-c", resume=True))
        started = ws.receive_json()
        assert started["resumed"] is True
        acked = started["last_acked_seq"]
        assert acked is not None and acked < half - 1  # back to the frame that opens the next window
        with live_env.store.session() as s:
            [rs] = s.query(RoomSession).filter_by(tenant_id=live_env.tenant_a, external_id="s-c").all()
            assert rs.last_ack_seq == acked
        for f in fr[acked + 1:]:
            ws.send_bytes(f)
        ws.send_text(json.dumps({"type": "end"}))
        second = of(until(ws, "session_ended"), "window")
    assert second and second[0]["index"] == first[-1]["index"] + 1
    with live_env.store.session() as s:
        stored = room_repo.windows(s, live_env.tenant_a, rs.id)
        assert [w.seq for w in stored] == [ms(w) for w in first + second]


def test_resume_with_another_codec_is_refused(live_env: Env) -> None:
    with live_env.client.websocket_connect(url(live_env)) as ws:
        ws.send_text(hello(speaker="bob", session="s-b"))
        ws.receive_json()
        barrier(ws)
    with live_env.client.websocket_connect(url(live_env)) as ws:
        ws.send_text(hello(speaker="bob", session="s-b", resume=True, codec="opus", sample_rate=48000))
        err = ws.receive_json()
        assert err["type"] == "bad_resume"
        with pytest.raises(WebSocketDisconnect) as ei:
            ws.receive_json()
        assert ei.value.code == 1008


def test_a_speaker_who_never_comes_back_is_ended_by_the_reaper(live_env: Env, speech16k: np.ndarray) -> None:
    live = live_env.app.state.live
    live.linger, live.reap_interval = 0.2, 0.05  # before the tenant's hub exists
    with live_env.client.websocket_connect(url(live_env, kind="events")) as sub:
        sub.receive_json()
        with live_env.client.websocket_connect(url(live_env)) as ws:
            ws.send_text(hello(speaker="erin", session="s-e"))
            ws.receive_json()
            for f in frames(speech16k[: 16000 * 3]):
                ws.send_bytes(f)
            barrier(ws)  # dropped without "end": detached, lingering
        ended = until(sub, "session_ended")[-1]
    assert ended["speaker"] == "erin" and ended["stats"]["frames"] == 150
    with live_env.store.session() as s:
        [rs] = s.query(RoomSession).filter_by(tenant_id=live_env.tenant_a, external_id="s-e").all()
        assert rs.ended_at is not None
        assert len(room_repo.windows(s, live_env.tenant_a, rs.id)) == 1  # the 3 s tail, scored at the end


# -- subscription --------------------------------------------------------------------------------


def test_subscriber_receives_the_rooms_events(live_env: Env, speech16k: np.ndarray) -> None:
    fr = frames(speech16k[: 16000 * 5])
    with live_env.client.websocket_connect(url(live_env, kind="events")) as sub, \
            live_env.client.websocket_connect(url(live_env, room="r1", kind="events", who="other_rooms")) as other:
        assert receive(sub) == {"type": "subscribed", "room": "r1"}
        assert receive(other)["type"] == "subscribed"
        with live_env.client.websocket_connect(url(live_env)) as ws:
            ws.send_text(hello(speaker="carol"))
            ws.receive_json()
            for f in fr:
                ws.send_bytes(f)
            ws.send_text(json.dumps({"type": "end"}))
            sent = until(ws, "session_ended")
        seen = until(sub, "session_ended")
        assert [m["type"] for m in seen] == ["session_started"] + [m["type"] for m in sent]
        assert of(seen, "window") == of(sent, "window")
        # the other tenant's watcher of a room with the same id saw none of it: its next message is its
        # own tenant's first event
        with live_env.client.websocket_connect(url(live_env, who="other_rooms")) as ws2:
            ws2.send_text(hello(speaker="dave"))
            ws2.receive_json()
        got = receive(other)
        assert got["type"] == "session_started" and got["speaker"] == "dave"
