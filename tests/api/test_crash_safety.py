"""kill -9 while rooms stream and uploads run: restart, resume, and nothing accepted is lost or doubled.

A real ``voxwarden serve`` subprocess (SQLite in a temporary data dir; PostgreSQL in its own schema when
reachable) with a rules file that alerts on every scored window. Three rooms stream espeak-ng speech at
three times real time while two threads upload clips with Idempotency-Keys. Once every room has had alerts,
the server gets SIGKILL. It is started again on the same data; the clients reconnect with
``{"resume": true}`` and resend from the ``last_acked_seq`` the server names; the uploaders retry every
key. Then, in the store: every alert and window a client received is there exactly once, the sessions'
counters match the stored windows (nothing counted twice), every upload that got a 201 is one scan row,
and the audit log's hash chain verifies.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from voxwarden.live import pack_frame
from voxwarden.store import EvidenceStore, Store, verify_audit_chain
from voxwarden.store import rooms as room_repo
from voxwarden.store.evidence import evidence_for, ref_of
from voxwarden.store.models import Alert, Room, RoomSession, Scan

RULES = """\
version: 1
rules:
  - name: every-window
    signal: probability
    threshold: 0.0
    sustain: {windows: 1}
    cooldown: 0
    severity: warning
"""
SR = 16000
FRAME = 320  # 20 ms
PACE = 0.007  # seconds between 20 ms frames: ~3x real time (well inside the rate limit and backlog)
STREAM_START = 1_700_000_000.0
ROOMS = ("crash-a", "crash-b", "crash-c")
SENTENCES = (
    "the quarterly numbers look fine but we should check the shipping costs again before friday",
    "please read the account number back to me slowly so that I can confirm the transfer",
    "this is the captain speaking we will be landing in about twenty minutes local time",
)


# -- the server ------------------------------------------------------------------------------------


def _cli() -> list[str]:
    exe = Path(sys.executable).with_name("voxwarden")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "voxwarden"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``voxwarden serve`` as a subprocess on loopback; ``kill()`` is SIGKILL, ``start()`` again reuses it all."""

    def __init__(self, tmp: Path, database_url: str | None) -> None:
        self.port = _free_port()
        self.data = tmp / "data"
        (tmp / "rules.yaml").write_text(RULES)
        lines = [f'data_dir = "{self.data}"', 'host = "127.0.0.1"', f"port = {self.port}",
                 f'rules_path = "{tmp / "rules.yaml"}"']
        if database_url:
            lines.append(f"database_url = {json.dumps(database_url)}")
        self.config = tmp / "api.toml"
        self.config.write_text("\n".join(lines) + "\n")
        self.log = tmp / "serve.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def create_key(self) -> str:
        r = subprocess.run([*_cli(), "admin", "create-key", "--tenant", "crash", "--scopes", "rooms,scan",
                            "--config", str(self.config)], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr[-2000:]
        return r.stdout.strip().splitlines()[-1]

    def start(self) -> None:
        import httpx

        with open(self.log, "ab") as logf:
            self.proc = subprocess.Popen([*_cli(), "serve", "--config", str(self.config)], stdout=logf,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"server exited:\n{self.tail()}"
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/v1/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        pytest.fail(f"server not healthy:\n{self.tail()}")

    def kill(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        p = self.proc
        if p is not None and p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


# -- clients ---------------------------------------------------------------------------------------


@dataclass
class RoomClient:
    """One speaker: keeps every frame it made (so it can resend) and every event it received."""

    room: str
    frames: list[bytes]
    events: list[list[dict[str, Any]]] = field(default_factory=lambda: [[], []])  # per connection
    started: list[dict[str, Any]] = field(default_factory=list)
    closed_by_crash: bool = False

    @property
    def session(self) -> str:
        return f"s-{self.room}"

    def of(self, kind: str, phase: int | None = None) -> list[dict[str, Any]]:
        evs = self.events[phase] if phase is not None else self.events[0] + self.events[1]
        return [e for e in evs if e["type"] == kind]

    async def run(self, url: str, token: str, phase: int, stop: asyncio.Event | None) -> None:
        """Connect, hello (resume on the second connection), send from the server's resume point, end."""
        import websockets

        hello = {"room": self.room, "speaker": "spk", "codec": "pcm16", "sample_rate": SR,
                 "session": self.session, "stream_start": STREAM_START, "resume": phase == 1}
        async with websockets.connect(f"{url}/v1/rooms/{self.room}/stream?token={token}",
                                      open_timeout=30, close_timeout=5, max_size=2**20) as ws:
            await ws.send(json.dumps(hello))
            started = json.loads(await asyncio.wait_for(ws.recv(), 30))
            assert started["type"] == "session_started", started
            self.started.append(started)
            first = 0 if started["last_acked_seq"] is None else started["last_acked_seq"] + 1

            async def receive() -> None:
                async for msg in ws:
                    ev = json.loads(msg)
                    self.events[phase].append(ev)
                    if ev["type"] == "session_ended" or ev.get("fatal"):
                        return

            rx = asyncio.create_task(receive())
            try:
                for seq in range(first, len(self.frames)):
                    if rx.done():
                        break
                    await ws.send(self.frames[seq])
                    await asyncio.sleep(PACE)
                if stop is None:
                    await ws.send(json.dumps({"type": "end"}))
                await asyncio.wait_for(rx, 60)
            except websockets.ConnectionClosed:
                self.closed_by_crash = True
            await asyncio.gather(rx, return_exceptions=True)


def speech_frames(tmp: Path, text: str) -> list[bytes]:
    from voxwarden.audio import load

    wav = tmp / f"{abs(hash(text))}.wav"
    subprocess.run(["espeak-ng", "-w", str(wav), "-s", "150", text], check=True, capture_output=True, timeout=30)
    x = load(str(wav), sr=SR).samples
    x = np.concatenate([x, x, x])[: SR * 12]  # 12 s: 5 full windows
    pcm = np.clip(np.round(x * 32767.0), -32768, 32767).astype("<i2")
    return [pack_frame(i, pcm[j:j + FRAME].tobytes()) for i, j in enumerate(range(0, pcm.size - FRAME + 1, FRAME))]


class Uploader(threading.Thread):
    """Uploads clips with Idempotency-Keys until told to stop; remembers what each key got back."""

    def __init__(self, base: str, token: str, clip: bytes, prefix: str, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.base, self.token, self.clip, self.prefix, self.stop_ev = base, token, clip, prefix, stop
        self.results: dict[str, tuple[int, str | None]] = {}  # key → (status, scan id); 0 = no answer
        self.n = 0

    def upload(self, key: str) -> tuple[int, str | None]:
        import httpx

        try:
            r = httpx.post(f"{self.base}/v1/scans?mode=sync", files={"file": ("c.wav", self.clip, "audio/wav")},
                           headers={"Authorization": f"Bearer {self.token}", "Idempotency-Key": key}, timeout=30)
        except httpx.HTTPError:
            return 0, None
        return r.status_code, (r.json().get("id") if r.status_code in (200, 201) else None)

    def run(self) -> None:
        while not self.stop_ev.is_set():
            key = f"{self.prefix}-{self.n}"
            self.n += 1
            self.results[key] = self.upload(key)
            if self.results[key][0] == 0:
                return  # the server is gone


# -- the test --------------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest) -> Iterator[str | None]:
    if request.param == "sqlite":
        yield None
        return
    from _api_support import pg_empty

    url = request.getfixturevalue("pg_schema_url")
    yield url
    pg_empty(url)


def test_kill_9_mid_stream_loses_and_duplicates_nothing(tmp_path: Path, database: str | None) -> None:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed")
    srv = Server(tmp_path, database)
    token = srv.create_key()
    clients = [RoomClient(room, speech_frames(tmp_path, text)) for room, text in zip(ROOMS, SENTENCES, strict=True)]
    subprocess.run(["espeak-ng", "-w", str(tmp_path / "clip.wav"), "a short clip to upload"], check=True,
                   capture_output=True, timeout=30)
    clip = (tmp_path / "clip.wav").read_bytes()
    url, base = f"ws://127.0.0.1:{srv.port}", f"http://127.0.0.1:{srv.port}"
    try:
        srv.start()
        # -- phase 0: stream and upload, then SIGKILL once every room has had two alerts
        stop_up = threading.Event()
        uploaders = [Uploader(base, token, clip, f"up{i}", stop_up) for i in range(2)]
        for u in uploaders:
            u.start()

        async def phase0() -> None:
            stop = asyncio.Event()
            tasks = [asyncio.create_task(c.run(url, token, 0, stop)) for c in clients]
            deadline = time.monotonic() + 60
            while not all(len(c.of("alert", 0)) >= 2 for c in clients):
                assert time.monotonic() < deadline, f"no alerts in time:\n{srv.tail()}"
                assert not any(t.done() for t in tasks), [t.exception() for t in tasks if t.done()]
                await asyncio.sleep(0.05)
            srv.kill()
            await asyncio.wait_for(asyncio.gather(*tasks), 30)

        asyncio.run(phase0())
        for u in uploaders:
            u.join(30)
        assert all(c.closed_by_crash for c in clients)  # the server died mid-stream, not at the end
        assert all(c.of("session_ended", 0) == [] for c in clients)
        before = {k: v for u in uploaders for k, v in u.results.items()}
        assert sum(1 for st, _ in before.values() if st == 201) >= 2

        # -- phase 1: restart on the same data; clients resume, uploaders retry every key
        srv.start()

        async def phase1() -> None:
            await asyncio.wait_for(asyncio.gather(*(c.run(url, token, 1, None) for c in clients)), 120)

        asyncio.run(phase1())
        retry = Uploader(base, token, clip, "", threading.Event())
        after = {k: retry.upload(k) for k in before}
        srv.stop()
    finally:
        srv.stop()

    # -- the resumed streams continued where the server said
    for c in clients:
        s0, s1 = c.started
        assert s0["resumed"] is False and s1["resumed"] is True and s1["session"] == c.session
        assert s1["last_acked_seq"] is not None  # a checkpoint was there to resume from
        assert c.of("session_ended", 1), f"{c.room}: no session_ended after the resume:\n{srv.tail()}"
        last0 = max(w["start"] for w in c.of("window", 0))
        assert c.of("window", 1) and min(w["start"] for w in c.of("window", 1)) > last0

    # -- uploads: every key the server answered 201 (or 200) for is one scan, the same one on retry
    answered = {k: v for k, v in before.items() if v[0] in (200, 201)}
    assert all(st in (200, 201) for st, _ in after.values()), after
    assert all(after[k] == (200, sid) for k, (_, sid) in answered.items())  # replayed, not rescored

    store = Store(database, migrate=False) if database else Store(data_dir=tmp_path / "data", migrate=False)
    evidence = EvidenceStore(tmp_path / "data" / "evidence")
    try:
        with store.session() as s:
            scans = Counter(k for (k,) in s.query(Scan.idempotency_key).all())
            assert all(scans[k] == 1 for k in before), {k: scans[k] for k in before if scans[k] != 1}
            ids = {k: sid for (k, sid) in s.query(Scan.idempotency_key, Scan.id).all()}
            assert all(ids[k] == sid for k, (_, sid) in answered.items())
            for c in clients:
                [rs] = s.query(RoomSession).filter_by(external_id=c.session).all()
                stored = [w.seq for w in room_repo.windows(s, rs.tenant_id, rs.id)]
                got = [int(round(w["start"] * 1000)) for w in c.of("window")]
                assert len(got) == len(set(got)), f"{c.room}: a window was sent twice: {sorted(got)}"
                assert set(got) <= set(stored), f"{c.room}: windows the client got are missing"
                assert len(stored) == len(set(stored))
                ended = c.of("session_ended", 1)[0]["stats"]
                assert ended["windows_scored"] == len(stored)  # counted once across the crash
                assert ended["frames"] == len(c.frames) and ended["gaps"] == 0
                assert ended["windows_lost"] == ended["windows_skipped"] == ended["score_errors"] == 0
                assert rs.ended_at is not None
                room = s.query(Room).filter_by(id=rs.room_id).one()
                rows = s.query(Alert).filter_by(room_id=room.id).all()
                keys = [a.details["key"] for a in rows]
                assert len(keys) == len(set(keys)) == len(stored)  # one alert per stored window, none twice
                assert {a["key"] for a in c.of("alert")} <= set(keys)  # every alert the client saw is stored
                assert sorted(round((a.start - STREAM_START) * 1000) for a in rows) == stored
                for a in rows:  # each alert kept its audio once, intact, across the crash and the replay
                    evs = evidence_for(s, a.tenant_id, alert_id=a.id)
                    assert len(evs) == 1 and evidence.verify(ref_of(evs[0])), (a.id, len(evs))
            chain = verify_audit_chain(s)
            assert chain.ok, chain
    finally:
        store.dispose()
