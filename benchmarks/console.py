"""Review console latency on a loaded store: queue pages, the alert page with a long room timeline, audio, export.

    python benchmarks/console.py [--alerts 20000] [--speakers 12] [--windows 3600] [--repeat 30] [--url URL]

Seeds a store (SQLite in a temp dir, or ``--url postgresql+psycopg://...``) with ``--alerts`` alerts over 50
rooms, 8 rules and 3 severities, plus one room where ``--speakers`` speakers each have ``--windows`` window
scores (3600 = an hour at a 1 s hop) and an alert with 30 s of evidence audio. Serves the app with uvicorn on
loopback and, logged in as a reviewer over real HTTP, times each page ``--repeat`` times (p50/p95 ms):
the unfiltered queue, a filtered queue (room + severity + score), a deep page, the alert page (SVG timeline
drawn on the server), its timeline JSON, the audio file, and the evidence export zip (with its size).
"""

from __future__ import annotations

import argparse
import io
import math
import random
import re
import socket
import sys
import tempfile
import threading
import time
import wave
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q)) if xs else float("nan")


def _wav(seconds: float, sr: int = 16000) -> bytes:
    t = np.arange(int(seconds * sr)) / sr
    x = (0.2 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t)) / 2 * 32767).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes(x.tobytes())
    return buf.getvalue()


def seed(store: object, n_alerts: int, speakers: int, windows: int) -> tuple[str, str]:
    """Bulk rows (benchmark seeding only; the service writes through the repo functions)."""
    from voxwarden.store import keys
    from voxwarden.store.alerts import alert_key
    from voxwarden.store.evidence import attach_evidence
    from voxwarden.store.models import Alert, Room, RoomSession, WindowScore

    rng = random.Random(0)
    now = datetime.now(UTC)
    with store.session() as s:
        t = keys.create_tenant(s, "bench")
        keys.create_user(s, t.id, "rev", "benchmark password", "reviewer")
        rooms = [Room(tenant_id=t.id, external_id=f"room-{i}") for i in range(50)]
        s.add_all(rooms)
        s.flush()
        rules = [f"rule-{i}" for i in range(8)]
        batch = []
        for i in range(n_alerts):
            room = rooms[i % 50]
            start = now.timestamp() - n_alerts + i
            spk = f"spk{i % 997}"
            rule = rules[i % 8]
            batch.append(Alert(tenant_id=t.id, natural_key=alert_key(room.id, spk, rule, start), room_id=room.id,
                               speaker=spk, start=start, end=start + 2, score=rng.uniform(0.5, 1.0), rule=rule,
                               status=rng.choice(["open", "open", "acknowledged", "resolved", "dismissed"]),
                               details={"severity": rng.choice(["info", "warning", "critical"]), "threshold": 0.5},
                               created_at=now - timedelta(seconds=n_alerts - i)))
        s.add_all(batch)
        big = Room(tenant_id=t.id, external_id="big-room")
        s.add(big)
        s.flush()
        t0 = now - timedelta(seconds=windows + 60)
        sessions = []
        for k in range(speakers):
            rs = RoomSession(tenant_id=t.id, room_id=big.id, speaker=f"speaker-{k}", external_id=f"big-{k}",
                             started_at=t0 + timedelta(seconds=k * 3), codec="pcm16", sample_rate=16000)
            s.add(rs)
            s.flush()
            sessions.append(rs)
            rows = []
            for i in range(windows):
                p = 0.9 if (k == 0 and windows // 2 <= i < windows // 2 + 20) else 0.1 + 0.05 * math.sin(i / 7 + k)
                rows.append(WindowScore(tenant_id=t.id, session_id=rs.id, seq=i, start=float(i), end=i + 2.0,
                                        score=math.log(p / (1 - p)), probability=p))
            s.add_all(rows)
        mid = windows // 2
        a = Alert(tenant_id=t.id, natural_key=alert_key(big.id, "speaker-0", "sustained", float(mid)),
                  room_id=big.id, session_id=sessions[0].id, speaker="speaker-0", start=t0.timestamp() + mid + 20,
                  end=t0.timestamp() + mid + 22, score=0.9, rule="sustained",
                  details={"severity": "critical", "start": mid + 20.0, "end": mid + 22.0, "run_start": float(mid),
                           "threshold": 0.5}, created_at=now)
        s.add(a)
        s.flush()
        ref = store.evidence.put(_wav(30.0), suffix="wav")
        attach_evidence(s, t.id, ref, alert_id=a.id, media_type="audio/wav")
        return t.id, a.id


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--alerts", type=int, default=20000)
    ap.add_argument("--speakers", type=int, default=12)
    ap.add_argument("--windows", type=int, default=3600)
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--url", default=None, help="PostgreSQL URL (an empty database); SQLite in a temp dir if absent")
    args = ap.parse_args()

    import httpx
    import uvicorn

    from voxwarden.api import Settings, create_app
    from voxwarden.store import Store

    tmp = Path(tempfile.mkdtemp(prefix="vw-console-bench-"))
    store = Store(args.url, evidence_dir=tmp / "evidence") if args.url else Store(data_dir=tmp)
    t = time.perf_counter()
    _, alert_id = seed(store, args.alerts, args.speakers, args.windows)
    print(f"seeded {args.alerts} alerts, {args.speakers}x{args.windows} windows in {time.perf_counter() - t:.1f} s "
          f"({'PostgreSQL' if args.url else 'SQLite'})")
    with socket.socket() as so:
        so.bind(("127.0.0.1", 0))
        port = so.getsockname()[1]
    app = create_app(Settings(data_dir=tmp, console_secure_cookies=False, port=port), store=store)
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    th = threading.Thread(target=srv.run, daemon=True)
    th.start()
    while not srv.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=base, timeout=60) as c:
        page = c.get("/console/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        r = c.post("/console/login", data={"csrf_token": token, "tenant": "bench", "username": "rev",
                                           "password": "benchmark password"})
        assert r.status_code == 303, r.text
        ev = re.search(r'src="(/console/evidence/[0-9a-f]+)"', c.get(f"/console/alerts/{alert_id}").text).group(1)
        pages = [
            ("queue, unfiltered (25 rows + count)", "/console/alerts"),
            ("queue, room+severity+score filter", "/console/alerts?room=room-7&severity=critical&min_score=0.8"),
            ("queue, page 400", "/console/alerts?page=400"),
            (f"alert page ({args.speakers}x{args.windows} windows, SVG)", f"/console/alerts/{alert_id}"),
            ("timeline JSON", f"/console/api/alerts/{alert_id}/timeline"),
            ("evidence audio (30 s WAV, 960 KB)", ev),
            ("evidence export zip", f"/console/alerts/{alert_id}/export.zip"),
        ]
        print(f"{'page':48s} {'p50 ms':>8s} {'p95 ms':>8s} {'bytes':>10s}")
        for name, url in pages:
            lat, size = [], 0
            for _ in range(args.repeat):
                t = time.perf_counter()
                r = c.get(url)
                lat.append((time.perf_counter() - t) * 1000)
                assert r.status_code == 200, (url, r.status_code)
                size = len(r.content)
            print(f"{name:48s} {pct(lat, 50):8.1f} {pct(lat, 95):8.1f} {size:10d}")
    srv.should_exit = True
    th.join(timeout=10)
    store.dispose()


if __name__ == "__main__":
    sys.exit(main())
