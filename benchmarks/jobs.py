"""Long uploads as jobs over HTTP: C clients POST long recordings to a real ``voxwarden serve``, then poll.

    python benchmarks/jobs.py [--jobs 8] [--clients 4] [--clip-seconds 300] [--workers 1] [--model NAME]

Starts ``voxwarden serve`` (see ``benchmarks/rooms.py`` for the harness) with ``job_workers = --workers``,
makes ``--jobs`` distinct WAV recordings of ``--clip-seconds`` of speech (../shared/data/train when present,
else espeak-ng), and has ``--clients`` clients post them to ``POST /v1/scans`` (each is longer than
``sync_max_seconds``, so each answer should be 202 with a job). The clients then poll ``GET /v1/jobs/{id}``
until every job is done or failed. Prints the 202 latency (spool + enqueue), the time from POST to done,
throughput in audio seconds scored per wall second, and how many jobs failed or were not 202.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rooms import SR, Server, load_speech, pct  # noqa: E402
from uploads import wav_bytes  # noqa: E402


async def run(base: str, token: str, clips: list[bytes], clip_s: float, n_clients: int) -> None:
    import httpx

    accept: list[float] = []
    statuses: Counter[str] = Counter()
    posted: dict[str, float] = {}
    finished: dict[str, float] = {}
    outcome: Counter[str] = Counter()
    queue = list(enumerate(clips))
    t0 = time.monotonic()

    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {token}"},
                                 timeout=httpx.Timeout(300.0)) as c:
        async def poster() -> None:
            while queue:
                i, body = queue.pop(0)
                t = time.monotonic()
                try:
                    r = await c.post("/v1/scans", files={"file": (f"long{i}.wav", body, "audio/wav")},
                                     headers={"Idempotency-Key": f"bench-{i}"})
                    statuses[str(r.status_code)] += 1
                    if r.status_code == 202:
                        posted[r.json()["id"]] = t
                except httpx.HTTPError as e:
                    statuses[type(e).__name__] += 1
                accept.append(time.monotonic() - t)

        await asyncio.gather(*(poster() for _ in range(n_clients)))
        while len(finished) < len(posted) and time.monotonic() - t0 < 3600:
            for jid in [j for j in posted if j not in finished]:
                body = (await c.get(f"/v1/jobs/{jid}")).json()
                if body["status"] in ("done", "failed"):
                    finished[jid] = time.monotonic()
                    outcome[body["status"]] += 1
            await asyncio.sleep(0.2)
    wall = max(finished.values(), default=time.monotonic()) - t0
    turnaround = [finished[j] - posted[j] for j in finished]
    done_audio = outcome.get("done", 0) * clip_s
    print(f"posts: {dict(statuses)}; jobs: {dict(outcome)}")
    print(f"202 latency (spool + enqueue): p50 {pct(accept, 50):.2f} s, p95 {pct(accept, 95):.2f} s, "
          f"max {max(accept, default=float('nan')):.2f} s")
    print(f"POST -> done: p50 {pct(turnaround, 50):.1f} s, p95 {pct(turnaround, 95):.1f} s, "
          f"max {max(turnaround, default=float('nan')):.1f} s")
    print(f"throughput: {done_audio / wall:.1f} audio s per wall s ({done_audio / 60:.0f} min of audio in "
          f"{wall:.1f} s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=8, help="long uploads in all (1..100)")
    ap.add_argument("--clients", type=int, default=4, help="concurrent posting clients (1..64)")
    ap.add_argument("--clip-seconds", type=float, default=300.0, help="length of each upload (61..1500)")
    ap.add_argument("--workers", type=int, default=1, help="job_workers of the server (1..16)")
    ap.add_argument("--model", default=None, help="model name or directory for the server")
    args = ap.parse_args()
    if not 1 <= args.jobs <= 100:
        ap.error("--jobs: between 1 and 100")
    if not 1 <= args.clients <= 64:
        ap.error("--clients: between 1 and 64")
    if not 61 <= args.clip_seconds <= 1500:
        ap.error("--clip-seconds: between 61 and 1500 (longer than sync_max_seconds, within 50 MB)")
    if not 1 <= args.workers <= 16:
        ap.error("--workers: between 1 and 16")

    tmp = Path(tempfile.mkdtemp(prefix="vw-bench-jobs-"))
    try:
        speech, what = load_speech(tmp, 120.0)
        n = int(args.clip_seconds * SR)
        base = np.tile(speech, n // speech.size + 2)
        shift = max(1, speech.size // (args.jobs + 1))
        clips = [wav_bytes(base[i * shift:i * shift + n]) for i in range(args.jobs)]  # distinct bytes each
        print(f"uploads: {args.jobs} x {args.clip_seconds:.0f} s WAV ({len(clips[0]) / 2**20:.1f} MiB) from "
              f"{what}; {args.clients} clients; server job_workers = {args.workers}", flush=True)
        with Server("scan", args.model, extra_config=f"job_workers = {args.workers}\n") as srv:
            print(f"server: pid {srv.proc.pid} on {srv.base}", flush=True)  # type: ignore[union-attr]
            asyncio.run(run(srv.base, srv.token, clips, args.clip_seconds, args.clients))
            print(f"server RSS after: {srv.rss_mib():.0f} MiB")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
