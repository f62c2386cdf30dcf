"""Live rooms end to end: N WebSocket clients stream speech in real time to a real ``voxwarden serve``.

    python benchmarks/rooms.py [--rooms 10,25,50] [--seconds 20] [--model NAME_OR_DIR] [--level-timeout 60]
                               [--watermark [--watermark-every S]] [--set KEY=TOML_VALUE ...]

Starts ``voxwarden serve`` as a subprocess on 127.0.0.1 (free port, temporary data dir, a ``rooms`` key
created first with ``voxwarden admin create-key``), then for each N in ``--rooms`` opens N rooms (one
speaker each) on ``/v1/rooms/{room}/stream`` and sends 20 ms PCM16 16 kHz frames paced in real time
for ``--seconds`` (speakers' starts spread over one hop). Speech: ../shared/data/train when present,
else espeak-ng.

Per window: latency = receipt of its ``window`` event minus the moment the frame that completed it
(the event's ``seq``) was due to arrive in real time (the scheduled send time; if the client sent it
late, the later actual time is used and the client lag is reported separately). Also counted:
``frame_rejected`` and ``gap`` events, ``windows_skipped`` (the server's overload policy: windows that
waited past its scoring backlog bound), frames the server never acknowledged, streams closed by the
server (e.g. a keepalive timeout), and the lag (how long after the last frame the last window arrived: a
server that keeps up answers within about one frame's scoring). A level "held in real time" means
p95 <= 1.5 s, nothing rejected, skipped or lost, every expected window received. Everything is loopback
only, bounded in time, and the server is stopped at the end.

``--watermark``: the tenant gets a watermark key first (one ``POST /v1/mark/embed`` of a 5 s clip, which
makes it), so the server checks every stream with it (``live_watermark = "tenant"``, a check of the last
8 s every ``--watermark-every`` s of stream time, default the server's); the speech streamed is unmarked,
the costly case (the detector then runs its whole speed search). Checks run in the server's watermark
worker, off the window path, and come back as ``watermark`` events: the ``wm run/skip`` column counts the
checks each client got (run) and those that did not judge (``present`` null: skipped or failed); ``wm
/spk-min`` is checks run per speaker-minute of audio, ``wm lat`` the median time from the due window's cut
to the check's result (server side, the event's ``latency_ms``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED_TRAIN = ROOT.parent / "shared" / "data" / "train" / "audio"
SR = 16000
FRAME_MS = 20
FRAME_S = FRAME_MS / 1000.0
P95_TARGET_S = 1.5


# --------------------------------------------------------------------------------------------- speech
def load_speech(tmp: Path, seconds: float, *, synthetic: bool = False) -> tuple[np.ndarray, str]:
    """About ``seconds`` of 16 kHz mono float speech (real speech from shared/ when it is there, unless
    `synthetic`: then espeak-ng, which the detector flags — the path that also stores evidence)."""
    from voxwarden.audio import load

    parts: list[np.ndarray] = []
    total = 0
    if SHARED_TRAIN.is_dir() and not synthetic:
        for p in sorted(SHARED_TRAIN.glob("*.flac")):
            parts.append(load(str(p), sr=SR).samples)
            total += parts[-1].size
            if total >= seconds * SR:
                return np.concatenate(parts), f"shared/data/train ({len(parts)} clips of real speech)"
    text = "The quick brown fox jumps over the lazy dog while the band plays on in the square. " * 4
    parts, total, i = [], 0, 0
    while total < seconds * SR:
        out = tmp / f"e{i}.wav"
        subprocess.run(["espeak-ng", "-s", str(140 + 10 * (i % 5)), "-v", ["en", "en-us", "en+f3"][i % 3],
                        "-w", str(out), text], check=True, capture_output=True, timeout=60)
        parts.append(load(str(out), sr=SR).samples)
        total += parts[-1].size
        i += 1
    return np.concatenate(parts), "espeak-ng speech" + ("" if synthetic else " (shared/ not present)")


def pcm16_frames(x: np.ndarray) -> list[bytes]:
    """Split float audio into 20 ms PCM16 LE frames."""
    n = SR * FRAME_MS // 1000
    a = np.clip(np.round(x * 32767), -32768, 32767).astype("<i2")
    return [a[i:i + n].tobytes() for i in range(0, a.size - n + 1, n)]


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(xs, q)) if xs else float("nan")


# --------------------------------------------------------------------------------------------- server
def _cli() -> list[str]:
    exe = Path(sys.executable).with_name("voxwarden")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "voxwarden"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``voxwarden serve`` in a subprocess on loopback with a temporary data dir and one API key."""

    def __init__(self, scopes: str, model: str | None = None, extra_config: str = "") -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="vw-bench-serve-"))
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        cfg = self.tmp / "api.toml"
        lines = [f'data_dir = "{self.tmp / "data"}"', 'host = "127.0.0.1"', f"port = {self.port}"]
        if model:
            lines.append(f'model = "{model}"')
        cfg.write_text("\n".join(lines) + "\n" + extra_config)
        self.config = cfg
        self.scopes = scopes
        self.proc: subprocess.Popen | None = None
        self.token = ""
        self.log = self.tmp / "serve.log"

    def __enter__(self) -> Server:
        # a SIGTERM (e.g. from `timeout`) unwinds like Ctrl-C, so __exit__ still stops the server
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        r = subprocess.run([*_cli(), "admin", "create-key", "--tenant", "bench", "--scopes", self.scopes,
                            "--config", str(self.config)], capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise RuntimeError(f"create-key failed: {r.stderr.strip()[-2000:]}")
        self.token = r.stdout.strip().splitlines()[-1]
        with open(self.log, "wb") as logf:
            self.proc = subprocess.Popen([*_cli(), "serve", "--config", str(self.config)], stdout=logf,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        self._wait_healthy(timeout=120)
        return self

    def _wait_healthy(self, timeout: float) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"server exited ({self.proc.returncode}):\n{self.tail()}")
            try:
                if httpx.get(f"{self.base}/v1/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"server not healthy after {timeout:.0f} s:\n{self.tail()}")

    def tail(self, n: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def rss_mib(self) -> float:
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():  # type: ignore[union-attr]
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except (OSError, AttributeError, ValueError):
            pass
        return float("nan")

    def __exit__(self, *exc: object) -> None:
        p = self.proc
        if p is not None and p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(timeout=15)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait(timeout=5)
        shutil.rmtree(self.tmp, ignore_errors=True)


# --------------------------------------------------------------------------------------------- clients
@dataclass
class ClientResult:
    """What one streaming client saw."""

    latencies: list[float] = field(default_factory=list)
    windows: int = 0
    rejected: int = 0
    skipped: int = 0  # windows the server skipped under overload (windows_skipped events)
    wm_checks: int = 0  # watermark events of checks that judged (present true/false)
    wm_skipped: int = 0  # watermark events that did not judge (skipped, failed)
    wm_latency_ms: list[float] = field(default_factory=list)  # cut of the due window → check result
    gaps: int = 0
    sent: int = 0
    max_send_lag: float = 0.0
    end_lag: float = float("nan")  # last window's receipt minus the last frame's due time
    stats: dict | None = None  # session_ended.stats (server counters)
    error: str | None = None


async def stream_client(url: str, token: str, room: str, frames: list[bytes], offset: float,
                        t_start: float, timeout: float) -> ClientResult:
    """One speaker: hello, real-time frames, end; collects window latencies and problems."""
    import websockets

    res = ClientResult()
    due: dict[int, float] = {}
    last_window = [0.0]

    async def receive(ws) -> None:  # noqa: ANN001
        async for msg in ws:
            if isinstance(msg, bytes):
                continue
            ev = json.loads(msg)
            t = time.monotonic()
            typ = ev.get("type")
            if typ == "window":
                res.windows += 1
                last_window[0] = t
                s = ev.get("seq")
                if s is not None and s in due:
                    res.latencies.append(t - due[s])
            elif typ == "watermark":
                if ev.get("present") is None:
                    res.wm_skipped += 1
                else:
                    res.wm_checks += 1
                if isinstance(ev.get("latency_ms"), int | float):
                    res.wm_latency_ms.append(float(ev["latency_ms"]))
            elif typ == "frame_rejected":
                res.rejected += 1
            elif typ == "gap":
                res.gaps += 1
            elif typ == "windows_skipped":
                res.skipped += int(ev.get("count", 0))
            elif typ == "session_ended":
                res.stats = ev.get("stats") or {}
                return
            elif ev.get("fatal"):
                res.error = f"{typ}: {ev.get('message', '')}"
                return

    try:
        await asyncio.sleep(max(0.0, t_start + offset - time.monotonic()))
        async with websockets.connect(f"{url}/v1/rooms/{room}/stream?token={token}", max_size=2**20,
                                      open_timeout=30, close_timeout=5,
                                      ping_interval=None) as ws:  # only the server's keepalive counts
            await ws.send(json.dumps({"room": room, "speaker": "spk", "codec": "pcm16", "sample_rate": SR}))
            first = json.loads(await asyncio.wait_for(ws.recv(), 30))
            if first.get("type") != "session_started":
                res.error = f"hello refused: {first}"
                return res
            rx = asyncio.create_task(receive(ws))
            t0 = time.monotonic()
            for seq, payload in enumerate(frames):
                when = t0 + (seq + 1) * FRAME_S  # the frame's audio is complete at its end
                now = time.monotonic()
                if when > now:
                    await asyncio.sleep(when - now)
                sent_at = time.monotonic()
                res.max_send_lag = max(res.max_send_lag, sent_at - when)
                due[seq] = max(when, sent_at)
                await ws.send(_pack(seq, payload))
                res.sent += 1
            t_last = due[len(frames) - 1] if frames else time.monotonic()
            await ws.send(json.dumps({"type": "end"}))
            try:
                await asyncio.wait_for(rx, timeout)
            except TimeoutError:
                res.error = "no session_ended before the timeout"
                rx.cancel()
            if last_window[0]:
                res.end_lag = last_window[0] - t_last
    except Exception as e:  # noqa: BLE001 - a benchmark reports every failure and goes on
        res.error = f"{type(e).__name__}: {e}"
    return res


def make_watermark_key(srv: Server, clip: np.ndarray) -> None:
    """Give the server's tenant its watermark key: the first /v1/mark/embed makes it (the service never
    makes one just to check streams)."""
    import io
    import wave

    import httpx

    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SR)
        w.writeframes(np.clip(np.round(clip * 32767), -32768, 32767).astype("<i2").tobytes())
    r = httpx.post(f"{srv.base}/v1/mark/embed", headers={"Authorization": f"Bearer {srv.token}"},
                   files={"file": ("key.wav", buf.getvalue(), "audio/wav")}, data={"payload": "00000001"},
                   timeout=120)
    if r.status_code != 200:
        raise RuntimeError(f"/v1/mark/embed answered {r.status_code}: {r.text[:500]}")


def _pack(seq: int, payload: bytes) -> bytes:
    from voxwarden.live import pack_frame

    return pack_frame(seq, payload)


async def run_level(url: str, token: str, n: int, speech_frames: list[bytes], seconds: float,
                    hop: float, timeout: float) -> list[ClientResult]:
    """N clients at once, each with its own slice of the speech, starts spread over one hop."""
    per = int(round(seconds / FRAME_S))
    tasks = []
    t_start = time.monotonic() + 0.5
    for i in range(n):
        k = (i * 397) % max(1, len(speech_frames) - per)
        frames = (speech_frames[k:k + per] if len(speech_frames) >= per
                  else (speech_frames * (per // max(1, len(speech_frames)) + 1))[:per])
        tasks.append(stream_client(url, token, f"bench-{n}-{i}", frames, hop * i / n, t_start, timeout))
    return list(await asyncio.wait_for(asyncio.gather(*tasks), seconds + hop + 2 * timeout))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rooms", default="10,25,50", help="comma-separated room counts (each at most 200)")
    ap.add_argument("--seconds", type=float, default=20.0, help="audio seconds per room (4..300)")
    ap.add_argument("--model", default=None, help="model name or directory for the server")
    ap.add_argument("--level-timeout", type=float, default=60.0,
                    help="seconds to wait after the last frame for a room's session_ended")
    ap.add_argument("--watermark", action="store_true",
                    help="give the tenant a watermark key, so the server checks every stream with it")
    ap.add_argument("--watermark-every", type=float, default=None,
                    help="with --watermark: the server's live_watermark_every (stream seconds between checks)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="an extra server setting as a TOML line, e.g. --set live_score_threads=3 (repeatable)")
    args = ap.parse_args()
    if any("=" not in kv or "\n" in kv for kv in args.set):
        ap.error("--set: KEY=VALUE (a TOML value: 3, 0.5, \"text\")")
    if args.watermark_every is not None and (not args.watermark or not 0 <= args.watermark_every <= 3600):
        ap.error("--watermark-every: needs --watermark, seconds between 0 and 3600")
    levels = [int(v) for v in args.rooms.split(",") if v.strip()]
    if not levels or any(not 1 <= n <= 200 for n in levels):
        ap.error("--rooms: counts between 1 and 200")
    if not 4 <= args.seconds <= 300:
        ap.error("--seconds: between 4 and 300")

    tmp = Path(tempfile.mkdtemp(prefix="vw-bench-rooms-"))
    try:
        speech, what = load_speech(tmp, max(60.0, args.seconds * 3))
        frames = pcm16_frames(speech)
        print(f"speech: {what}, {len(frames) * FRAME_S:.0f} s; {args.seconds:.0f} s per room, 20 ms PCM16 "
              f"16 kHz frames in real time; cores: {os.cpu_count()} (shared with the clients)", flush=True)
        extra = "".join(f"{kv.split('=', 1)[0].strip()} = {kv.split('=', 1)[1].strip()}\n" for kv in args.set)
        if args.watermark_every is not None:
            extra += f"live_watermark_every = {args.watermark_every}\n"
        if extra:
            print("server settings: " + "; ".join(extra.strip().splitlines()), flush=True)
        with Server("rooms,mark" if args.watermark else "rooms", args.model, extra) as srv:
            url = f"ws://127.0.0.1:{srv.port}"
            if args.watermark:
                print(f"watermark: tenant key made by /v1/mark/embed; checks every "
                      f"{args.watermark_every if args.watermark_every is not None else 'default'} s", flush=True)
                make_watermark_key(srv, speech[: 5 * SR])
            print(f"server: pid {srv.proc.pid} on {srv.base}, RSS {srv.rss_mib():.0f} MiB", flush=True)  # type: ignore[union-attr]
            hdr = (f"{'rooms':>5} {'windows':>8} {'exp':>5} {'p50 s':>7} {'p95 s':>7} {'max s':>7} "
                   f"{'silent':>6} {'rej':>4} {'gaps':>4} {'dropped':>7} {'lost':>4} {'skip':>4} {'wm run/skip':>11} "
                   f"{'wm/spk-min':>10} {'wm lat s':>8} "
                   f"{'end lag s':>9} "
                   f"{'cli lag s':>9} "
                   f"{'err':>4} "
                   f"{'RSS MiB':>7}  held")
            rows, best = [], None
            for n in levels:
                t = time.monotonic()
                results = asyncio.run(run_level(url, srv.token, n, frames, args.seconds, 2.0,
                                                args.level_timeout))
                wall = time.monotonic() - t
                lat = [x for r in results for x in r.latencies]
                wins = sum(r.windows for r in results)
                expected = n * max(0, int((args.seconds - 4.0) // 2.0) + 1)  # full 4 s windows, 2 s hop
                rej = sum(r.rejected for r in results)
                gaps = sum(r.gaps for r in results)
                st = [r.stats or {} for r in results]
                # frames the server did not take: sent but not counted, rate-limited, windows lost (rooms
                # that ended with an error have no counters: they show in the err column)
                unacked = sum(max(0, r.sent - int(s.get("frames", 0)))
                              for r, s in zip(results, st, strict=True) if r.stats is not None)
                unacked += sum(int(s.get("rate_limited", 0)) + int(s.get("missing_frames", 0)) for s in st)
                lost = sum(int(s.get("windows_lost", 0)) + int(s.get("score_errors", 0)) for s in st)
                skipped = sum(r.skipped for r in results)
                silent = sum(int(s.get("windows_silent", 0)) for s in st)
                errs = [r.error for r in results if r.error]
                end_lag = max((r.end_lag for r in results if r.end_lag == r.end_lag), default=float("nan"))
                cli_lag = max(r.max_send_lag for r in results)
                p95 = pct(lat, 95)
                ran = sum(r.wm_checks for r in results)
                wm = f"{ran}/{sum(r.wm_skipped for r in results)}"
                wm_rate = ran / (n * args.seconds / 60.0)
                wm_lat = pct([x / 1000.0 for r in results for x in r.wm_latency_ms], 50)
                held = (not errs and rej == 0 and gaps == 0 and unacked == 0 and lost == 0 and skipped == 0
                        and wins + silent >= expected and p95 <= P95_TARGET_S)
                if held:
                    best = max(best or 0, n)
                rows.append(f"{n:>5} {wins:>8} {expected:>5} {pct(lat, 50):>7.3f} {p95:>7.3f} "
                            f"{max(lat, default=float('nan')):>7.3f} {silent:>6} {rej:>4} {gaps:>4} "
                            f"{unacked:>7} {lost:>4} {skipped:>4} {wm:>11} {wm_rate:>10.2f} {wm_lat:>8.2f} "
                            f"{end_lag:>9.3f} {cli_lag:>9.3f} {len(errs):>4} {srv.rss_mib():>7.0f}  "
                            f"{'yes' if held else 'no'}")
                print(hdr if len(rows) == 1 else "", end="\n" if len(rows) == 1 else "")
                print(rows[-1] + f"   ({wall:.0f} s wall)", flush=True)
                for e, k in Counter(errs).most_common(3):
                    print(f"      error x{k}: {e}")
        print(f"\nmost rooms held in real time (p95 <= {P95_TARGET_S} s, no drops): "
              f"{best if best is not None else 'none of ' + args.rooms}")
        print("exp = full 4 s windows expected (hop 2 s); silent = windows skipped as silence (no event);\n"
              "dropped = frames sent but not counted, rate-limited or missing; lost = windows lost or failed to\n"
              "score; skip = windows skipped by the server's overload policy (backlog bound); end lag = last\n"
              "window after the last frame (max over rooms); cli lag = worst client send delay behind real\n"
              "time (the clients share the CPUs with the server); wm run/skip = watermark events that\n"
              "judged / that did not (--watermark); wm/spk-min = checks run per speaker-minute; wm lat = median\n"
              "due window cut → check result.")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
