"""File scans over HTTP: C concurrent clients POST ~10 s clips to a real ``voxwarden serve``.

    python benchmarks/uploads.py [--clients 4] [--seconds 60] [--clip-seconds 10] [--model M] [--source espeak]

Starts ``voxwarden serve`` as a subprocess on 127.0.0.1 (free port, temporary data dir, a ``scan`` key
created first; see ``benchmarks/rooms.py`` for the server harness), makes a few distinct WAV clips of
``--clip-seconds`` of speech (../shared/data/train when present, else espeak-ng), then runs ``--clients``
clients, each posting clip after clip to ``POST /v1/scans`` (multipart ``file``) for ``--seconds``.
Prints throughput (scans/s and audio seconds per wall second), p50/p95/max latency per request and the
error rate (any status other than 201, or a transport error). Loopback only; the server is stopped at
the end. The server scores at most ``max_concurrent_scans`` (default 2) files at once.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import shutil
import sys
import tempfile
import time
import wave
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rooms import SR, Server, load_speech, pct  # noqa: E402


def wav_bytes(x: np.ndarray) -> bytes:
    """16 kHz mono PCM16 WAV file bytes."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SR)
        w.writeframes(np.clip(np.round(x * 32767), -32768, 32767).astype("<i2").tobytes())
    return buf.getvalue()


@dataclass
class Tally:
    """Requests of all clients."""

    latencies: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    decisions: Counter = field(default_factory=Counter)  # stored scans' decision, a sanity check
    models: Counter = field(default_factory=Counter)
    audio_seconds: float = 0.0


async def client(base: str, token: str, clips: list[bytes], clip_s: float, k: int, stop_at: float,
                 tally: Tally) -> None:
    """Post clips back to back until ``stop_at`` (a request started before it is waited for)."""
    import httpx

    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {token}"},
                                 timeout=httpx.Timeout(120.0)) as c:
        i = k
        while time.monotonic() < stop_at:
            body = clips[i % len(clips)]
            i += 1
            t = time.monotonic()
            try:
                r = await c.post("/v1/scans", files={"file": (f"clip{i}.wav", body, "audio/wav")})
                status = str(r.status_code)
                if r.status_code == 201:
                    j = r.json()
                    tally.decisions[str(j.get("decision"))] += 1
                    tally.models[str(j.get("model"))] += 1
            except httpx.HTTPError as e:
                status = type(e).__name__
            tally.latencies.append(time.monotonic() - t)
            tally.statuses[status] += 1
            if status == "201":
                tally.audio_seconds += clip_s


async def run(base: str, token: str, clips: list[bytes], clip_s: float, n: int, seconds: float) -> float:
    tally = Tally()
    t0 = time.monotonic()
    await asyncio.wait_for(
        asyncio.gather(*(client(base, token, clips, clip_s, k, t0 + seconds, tally) for k in range(n))),
        seconds + 180)
    wall = time.monotonic() - t0
    total = sum(tally.statuses.values())
    ok = tally.statuses.get("201", 0)
    lat = tally.latencies
    print(f"requests: {total} in {wall:.1f} s wall; statuses: {dict(tally.statuses)}")
    print(f"throughput: {ok / wall:.2f} scans/s, {tally.audio_seconds / wall:.1f} audio s per wall s")
    print(f"latency: p50 {pct(lat, 50):.2f} s, p95 {pct(lat, 95):.2f} s, max {max(lat, default=float('nan')):.2f} s")
    print(f"decisions: {dict(tally.decisions)}; model: {', '.join(tally.models)}")
    print(f"error rate: {(total - ok) / total if total else float('nan'):.1%}")
    return wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=4, help="concurrent clients (1..64)")
    ap.add_argument("--seconds", type=float, default=60.0, help="how long to keep posting (5..600)")
    ap.add_argument("--clip-seconds", type=float, default=10.0, help="length of each clip (1..120)")
    ap.add_argument("--model", default=None, help="model name or directory for the server")
    ap.add_argument("--source", choices=("real", "espeak"), default="real",
                    help="real speech (shared/ when present) or espeak-ng speech, which is flagged and so also "
                         "stores evidence audio")
    args = ap.parse_args()
    if not 1 <= args.clients <= 64:
        ap.error("--clients: between 1 and 64")
    if not 5 <= args.seconds <= 600:
        ap.error("--seconds: between 5 and 600")
    if not 1 <= args.clip_seconds <= 120:
        ap.error("--clip-seconds: between 1 and 120")

    tmp = Path(tempfile.mkdtemp(prefix="vw-bench-uploads-"))
    try:
        n_clips = 6
        speech, what = load_speech(tmp, args.clip_seconds * n_clips, synthetic=args.source == "espeak")
        step = int(args.clip_seconds * SR)
        clips = [wav_bytes(speech[i * step:(i + 1) * step]) for i in range(speech.size // step)][:n_clips]
        print(f"clips: {len(clips)} x {args.clip_seconds:.0f} s WAV ({len(clips[0]) / 1024:.0f} KiB) from {what}; "
              f"{args.clients} clients for {args.seconds:.0f} s", flush=True)
        with Server("scan", args.model) as srv:
            print(f"server: pid {srv.proc.pid} on {srv.base}", flush=True)  # type: ignore[union-attr]
            asyncio.run(run(srv.base, srv.token, clips, args.clip_seconds, args.clients, args.seconds))
            print(f"server RSS after: {srv.rss_mib():.0f} MiB")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
