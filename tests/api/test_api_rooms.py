"""Live rooms over WebSocket: auth, hello errors, espeak-ng speech → scored windows stored, duplicates,
malformed frames, reconnect/restart resume, subscribers, alerts endpoint tenant isolation (SQLite);
overload (a slow model: windows skipped and reported, frames all taken, the socket kept), hostile hellos,
oversized frames and text floods, 48 kHz through the ingest pool, store hiccups."""

from __future__ import annotations

import json
import shutil
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _api_support import Env, espeak_speech, make_env
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
def speech16k(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    x = espeak_speech(tmp_path_factory.mktemp("live"),
                      "this is a live voice room and the speaker keeps talking for a few seconds more")
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


# -- overload ------------------------------------------------------------------------------------


class SlowDetector:
    """The real detector, taking `delay` s more per window: a model far slower than real time."""

    def __init__(self, inner: Any, delay: float) -> None:
        self.inner, self.delay = inner, delay

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def score_windows(self, windows: list[np.ndarray]) -> np.ndarray:
        import time

        time.sleep(self.delay * len(windows))
        return self.inner.score_windows(windows)


def test_overload_skips_windows_not_frames_and_keeps_reading(tmp_path: Path, sqlite_template: Path,
                                                             live_detector: Any, speech16k: np.ndarray) -> None:
    from voxwarden.live import StreamOptions

    db = tmp_path / "voxwarden.db"
    shutil.copyfile(sqlite_template, db)
    store = Store(f"sqlite:///{db}", evidence_dir=tmp_path / "evidence", migrate=False)
    env = make_env(store, SlowDetector(live_detector, 0.4), tmp_path)
    env.app.state.live.options = StreamOptions(vad=False, max_backlog=4.0)  # at most 2 windows wait
    try:
        x = np.concatenate([speech16k, speech16k])[: 16000 * 16]  # 16 s: 7 full windows
        fr = frames(x)
        with env.client.websocket_connect(url(env)) as ws:
            ws.send_text(hello(session="s-o"))
            assert ws.receive_json()["type"] == "session_started"
            for f in fr:  # as fast as possible: ~16 s of audio within the 30 s burst allowance
                ws.send_bytes(f)
            ws.send_bytes(pack_frame(len(fr), b"\x01"))  # odd length: refused by the reader at once
            msgs = until(ws, "frame_rejected")
            ws.send_text(json.dumps({"type": "end"}))
            msgs += until(ws, "session_ended")
            with pytest.raises(WebSocketDisconnect) as ei:
                ws.receive_json()
            assert ei.value.code == 1000  # ended normally, never closed for slowness
        scored = of(msgs, "window")
        skipped = of(msgs, "windows_skipped")
        stats = of(msgs, "session_ended")[0]["stats"]
        # the reader answered the last frame while the model was still busy with the backlog
        before = [m["type"] for m in msgs[:msgs.index(of(msgs, "frame_rejected")[0])]]
        assert before.count("window") < len(scored)
        assert skipped and sum(s["count"] for s in skipped) == stats["windows_skipped"] == skipped[-1]["total"]
        assert stats["frames"] == len(fr) and stats["rejected"] == 1  # every frame taken
        assert stats["windows_scored"] == len(scored)
        assert len(scored) + stats["windows_skipped"] >= 7  # every full window judged or reported skipped
        assert not {w["start"] for w in scored} & {s["start"] for s in skipped}
    finally:
        env.app.state.live.stop()
        env.client.close()
        store.dispose()


# -- hostile input -------------------------------------------------------------------------------


@pytest.mark.parametrize("first,needle", [
    (hello(pad="x" * 17_000), "16384 bytes"),  # oversized hello
    (b"\xff\xfe\x00 not utf-8", ""),  # binary, not UTF-8
    ("[" * 5000 + "]" * 5000, ""),  # nested far too deep
    (json.dumps([1, 2, 3]), "object"),
    (json.dumps({"type": "end"}), "hello"),
    (hello(speaker="a|b"), "speaker"),
    (hello(speaker="bell\x07"), "speaker"),
    (hello(speaker="x" * 129), "speaker"),
    (hello(session=" padded "), "session"),
    (hello(codec="mp3"), "codec"),
    (hello(channels=6), "channels"),
    (hello(stream_start=4_102_444_800), "stream_start"),  # 2100: not plausible
    (hello(sample_rate=True), "sample_rate"),
    (hello(resume="yes"), "resume"),
    (hello(version=2), "version"),
])
def test_hostile_hello_is_refused_with_a_reason(live_env: Env, first: str | bytes, needle: str) -> None:
    with live_env.client.websocket_connect(url(live_env)) as ws:
        if isinstance(first, bytes):
            ws.send_bytes(first)
        else:
            ws.send_text(first)
        err = receive(ws)
        assert err["type"] == "bad_hello" and err["fatal"] is True and needle in err["message"]
        with pytest.raises(WebSocketDisconnect) as ei:
            ws.receive_json()
        assert ei.value.code == 1008


def test_silent_client_is_refused_after_the_hello_timeout(live_env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    from voxwarden.api import routes_rooms

    monkeypatch.setattr(routes_rooms, "HELLO_TIMEOUT", 0.2)
    with live_env.client.websocket_connect(url(live_env)) as ws:
        err = receive(ws)
        assert err["type"] == "bad_hello" and "no hello" in err["message"]
        with pytest.raises(WebSocketDisconnect) as ei:
            ws.receive_json()
        assert ei.value.code == 1008


def test_oversized_and_malformed_frames_and_text_floods_keep_the_stream(live_env: Env,
                                                                         speech16k: np.ndarray) -> None:
    from voxwarden.api.routes_rooms import MAX_PENDING_REPLIES

    fr = frames(speech16k[: 16000 * 5])
    with live_env.client.websocket_connect(url(live_env)) as ws:
        ws.send_text(hello(speaker="mallory", session="s-m"))
        assert receive(ws)["type"] == "session_started"
        ws.send_bytes(pack_frame(0, b"\x00" * (16000 * 2 * 2)))  # 2 s of PCM: over the 1 s frame limit
        ws.send_bytes(pack_frame(1, b"\x00" * (4 * 1024 * 1024)))  # 4 MiB
        ws.send_bytes(b"\x00\x00\x00")  # shorter than the header
        ws.send_bytes(pack_frame(2, b"\x01\x02\x03"))  # odd byte count
        for i, f in enumerate(fr):  # then real audio, numbered after the refused frames
            ws.send_bytes(pack_frame(3 + i, f[4:]))
        flood = MAX_PENDING_REPLIES + 50  # at most MAX_PENDING_REPLIES answers are owed at any time
        for _ in range(flood):
            ws.send_text("x" * 20_000)
        ws.send_text(json.dumps({"type": "end"}))
        msgs = until(ws, "session_ended")
    rejected = [m["error"]["type"] for m in of(msgs, "frame_rejected")]
    assert rejected == ["oversized_frame", "oversized_frame", "malformed_frame", "malformed_frame"]
    assert all(m["fatal"] is False for m in of(msgs, "unexpected_text"))
    assert 1 <= len(of(msgs, "unexpected_text")) <= flood
    stats = of(msgs, "session_ended")[0]["stats"]
    assert stats["frames"] == len(fr) and stats["rejected"] == 4 and stats["gaps"] == 0
    assert of(msgs, "window")  # the real audio after the hostile frames was scored


def test_48khz_frames_go_through_the_ingest_pool_in_order(live_env: Env, speech16k: np.ndarray) -> None:
    from voxwarden.audio.resample import resample

    x48 = resample(speech16k[: 16000 * 7], 16000, 48000)
    pcm = np.clip(np.round(x48 * 32767.0), -32768, 32767).astype("<i2").tobytes()
    n = 960 * 2  # 20 ms at 48 kHz
    fr = [pack_frame(i, pcm[j:j + n]) for i, j in enumerate(range(0, len(pcm) - n + 1, n))]
    with live_env.client.websocket_connect(url(live_env)) as ws:
        ws.send_text(hello(speaker="hi-fi", sample_rate=48000))
        assert receive(ws)["type"] == "session_started"
        for f in fr[:100]:
            ws.send_bytes(f)
        ws.send_bytes(pack_frame(100, b"\x01"))  # refused in its place in the sequence
        for i, f in enumerate(fr[101:], start=101):
            ws.send_bytes(f if i != 150 else pack_frame(150, b"\x01\x02\x03"))
        ws.send_text(json.dumps({"type": "end"}))
        msgs = until(ws, "session_ended")
    assert [m["seq"] for m in of(msgs, "frame_rejected")] == [100, 150]
    stats = of(msgs, "session_ended")[0]["stats"]
    assert stats["frames"] == len(fr) - 2 and stats["gaps"] == 0 and stats["rejected"] == 2
    assert [w["start"] for w in of(msgs, "window")][:2] == [0.0, 2.0]


def test_store_hiccups_are_retried_and_refusals_hold_the_checkpoint(live_env: Env, speech16k: np.ndarray,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from voxwarden.api import live_sink
    from voxwarden.store import StoreUnavailableError

    monkeypatch.setattr(live_sink, "RETRY_DELAYS", (0.01, 0.01))
    sink = live_env.app.state.live.tenant(live_env.tenant_a).sink
    real_alert = sink._alert
    calls = {"n": 0}

    def flaky_alert(ev: Any) -> None:  # first alert: unavailable once (retried); second: always refused
        calls["n"] += 1
        if calls["n"] == 1 or ev.start == 2.0:
            raise StoreUnavailableError("database is locked")
        real_alert(ev)

    monkeypatch.setattr(sink, "_alert", flaky_alert)
    fr = frames(speech16k)
    with live_env.client.websocket_connect(url(live_env)) as ws:
        ws.send_text(hello(session="s-f"))
        receive(ws)
        for f in fr[:400]:  # 8 s: windows at 0, 2 and 4 s
            ws.send_bytes(f)
        msgs = barrier(ws)
        cp = live_env.app.state.live.checkpoints.load(live_env.tenant_a, "r1", "alice")
    alerts = of(msgs, "alert")
    assert [a["start"] for a in alerts] == [0.0, 2.0, 4.0]
    stored = live_env.client.get("/v1/rooms/r1/alerts", headers=live_env.auth("rooms")).json()["items"]
    assert sorted(i["key"] for i in stored) == sorted([alerts[0]["key"], alerts[2]["key"]])  # 0 s after a retry
    assert cp["next_window"] == 2 * 16000  # a restart replays from the refused alert's window


def test_keepalive_holds_while_a_slow_model_scores_on_real_uvicorn(tmp_path: Path, sqlite_template: Path,
                                                                   live_detector: Any,
                                                                   speech16k: np.ndarray) -> None:
    """The known problem this design fixes: a handler that reads frames only between scoring calls lets
    uvicorn's message queue fill, so keepalive pongs go unread and the stream is closed (1011)."""
    import asyncio
    import socket
    import threading
    import time

    import uvicorn
    import websockets

    from voxwarden.api import Settings
    from voxwarden.store import keys

    db = tmp_path / "voxwarden.db"
    shutil.copyfile(sqlite_template, db)
    store = Store(f"sqlite:///{db}", evidence_dir=tmp_path / "evidence", migrate=False)
    app = create_app(Settings(data_dir=tmp_path), store=store, detector=SlowDetector(live_detector, 1.0))
    with store.session() as s:
        token = keys.create_api_key(s, keys.create_tenant(s, "ka").id, "rooms", ["rooms"]).token
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, ws="auto", log_level="warning",
                                           ws_ping_interval=0.2, ws_ping_timeout=0.5, ws_max_queue=16))
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    fr = frames(speech16k[: 16000 * 9])
    got: list[dict[str, Any]] = []

    async def client() -> int | None:
        async with websockets.connect(f"ws://127.0.0.1:{port}/v1/rooms/r1/stream?token={token}",
                                      ping_interval=None, open_timeout=10) as ws:
            await ws.send(hello(session="s-k"))
            got.append(json.loads(await ws.recv()))

            async def rx() -> None:
                async for m in ws:
                    got.append(json.loads(m))

            t = asyncio.create_task(rx())
            for f in fr:  # twice real time: the 1 s-per-window model falls far behind
                await ws.send(f)
                await asyncio.sleep(0.01)
            await ws.send(json.dumps({"type": "end"}))
            await asyncio.wait_for(t, 30)
            return ws.close_code

    try:
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline and th.is_alive()
            time.sleep(0.05)
        code = asyncio.run(client())
    finally:
        server.should_exit = True
        th.join(20)
        store.dispose()
    assert code == 1000, (code, [m["type"] for m in got])  # not 1011 (keepalive ping timeout)
    stats = of(got, "session_ended")[0]["stats"]
    assert stats["frames"] == len(fr) and of(got, "window")
    assert stats["windows_scored"] + stats["windows_skipped"] + stats["windows_silent"] >= 3
