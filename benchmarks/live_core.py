"""Live core throughput and latency on one core: N simulated rooms fed speech in real-time order.

    python benchmarks/live_core.py [--rooms 1,8,32] [--seconds 30] [--codec pcm16|opus] [--model PATH]
                                   [--no-vad] [--pace]

Each room has one speaker streaming 20 ms frames; frames are interleaved tick by tick across rooms the
way a server receives them, the speakers' starts spread over one hop. Without ``--pace`` the ticks run
back to back (a capacity measurement: CPU seconds per second of audio); with ``--pace`` each tick waits
for its real time, so the latency is the latency under that load. Prints windows/s, per-window latency
p50/p95 (wall time of the frame call that completes a window: decode + resample + VAD + model + rules),
where the time goes, and how many real-time rooms one core holds (audio seconds per CPU second).

Speech: ../shared/data/train clips when present (real human speech), else espeak-ng speech.
Model: ``--model`` (a model directory or packaged name); else the packaged default; else (no packaged
model yet) a small LFCC-GMM trained here in ~20 s on that speech vs espeak-ng speech, which costs the
same per window as a packaged LFCC-GMM of the same size.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED_TRAIN = ROOT.parent / "shared" / "data" / "train" / "audio"
SR = 16000
FRAME_MS = 20


def load_speech(tmp: Path, seconds: float) -> tuple[np.ndarray, str]:
    """About `seconds` of 16 kHz speech, clips concatenated (real speech when shared/ is there)."""
    from voxwarden.audio import load

    parts: list[np.ndarray] = []
    total = 0
    if SHARED_TRAIN.is_dir():
        for p in sorted(SHARED_TRAIN.glob("*.flac")):
            parts.append(load(str(p), sr=SR).samples)
            total += parts[-1].size
            if total >= seconds * SR:
                break
        return np.concatenate(parts), f"shared/data/train ({len(parts)} clips of real speech)"
    return espeak_speech(tmp, seconds), "espeak-ng speech (shared/ not present)"


def espeak_speech(tmp: Path, seconds: float) -> np.ndarray:
    from voxwarden.audio import load

    text = "The quick brown fox jumps over the lazy dog while the band plays on in the square. " * 4
    parts, total, i = [], 0, 0
    while total < seconds * SR:
        out = tmp / f"e{i}.wav"
        subprocess.run(["espeak-ng", "-s", str(140 + 10 * (i % 5)), "-v", ["en", "en-us", "en+f3"][i % 3],
                        "-w", str(out), text], check=True, capture_output=True)
        parts.append(load(str(out), sr=SR).samples)
        total += parts[-1].size
        i += 1
    return np.concatenate(parts)


def get_detector(model: str | None, speech: np.ndarray, tmp: Path):  # noqa: ANN201 - Detector
    from voxwarden.detect import Detector, ModelError

    try:
        return Detector.load(model), "given/packaged"
    except ModelError as e:
        if model is not None:
            raise
        print(f"(no packaged model: {e}; training a small LFCC-GMM for the benchmark)", flush=True)
    from voxwarden.detect.gmm import train_gmm

    spoof = espeak_speech(tmp, 60)
    bona = speech[: 60 * SR]
    items = [(bona[i:i + 4 * SR], 0) for i in range(0, bona.size - 4 * SR, 4 * SR)]
    items += [(spoof[i:i + 4 * SR], 1) for i in range(0, spoof.size - 4 * SR, 4 * SR)]
    d = tmp / "model"
    fields = train_gmm(items, d, n_components=128, max_iter=5, max_frames=40_000)
    card = {"name": "bench-lfcc-gmm", "version": "0", "window": 4.0, "hop": 2.0, "threshold": 0.5, **fields}
    (d / "card.json").write_text(json.dumps(card))
    return Detector.load(d), "small LFCC-GMM (128 comps) trained here"


def encode_frames(x: np.ndarray, codec: str) -> tuple[list[bytes], dict]:
    if codec == "pcm16":
        n = SR * FRAME_MS // 1000
        a = np.clip(np.round(x * 32767), -32768, 32767).astype("<i2")
        return [a[i:i + n].tobytes() for i in range(0, a.size - n + 1, n)], {"sample_rate": SR}
    import fractions

    import av

    from voxwarden.audio import resample

    y = resample(x, SR, 48000)
    enc = av.codec.CodecContext.create("libopus", "w")
    enc.sample_rate, enc.layout, enc.format, enc.bit_rate = 48000, "mono", "s16", 32000
    enc.time_base = fractions.Fraction(1, 48000)
    enc.open()
    s16 = np.clip(np.round(y * 32767), -32768, 32767).astype(np.int16)
    out: list[bytes] = []
    for i in range(0, s16.size - 960 + 1, 960):
        fr = av.AudioFrame.from_ndarray(s16[None, i:i + 960], format="s16", layout="mono")
        fr.sample_rate, fr.pts = 48000, i
        out += [bytes(p) for p in enc.encode(fr)]
    return out, {"sample_rate": 48000}


class Timed:
    """Wraps a callable and adds up the wall time spent in it."""

    def __init__(self, f) -> None:  # noqa: ANN001
        self.f, self.total, self.calls = f, 0.0, 0

    def __call__(self, *a, **k):  # noqa: ANN002, ANN003, ANN204
        t = time.perf_counter()
        try:
            return self.f(*a, **k)
        finally:
            self.total += time.perf_counter() - t
            self.calls += 1


def run(n_rooms: int, frames: list[bytes], codec_hello: dict, codec: str, det, vad: bool,  # noqa: ANN001
        pace: bool) -> dict:
    """Stream `frames` into `n_rooms` one-speaker rooms; return counts, CPU/wall time, latencies."""
    from voxwarden.live import Hub, RulesEngine, StreamOptions, WindowScored, load_rules
    from voxwarden.live.stream import silero_speech_seconds

    rules = RulesEngine(load_rules("rules:\n  - name: synth\n    threshold: 0.9\n"
                                   "    sustain: {windows: 2}\n"))
    events: list = []
    meter = Timed(silero_speech_seconds)
    score = Timed(det.backend.score_windows)
    det.backend.score_windows = score
    hub = Hub(det, rules=rules, sink=events.append, speech_meter=meter,
              options=StreamOptions(vad=vad, max_speed=None))
    sessions = []
    for r in range(n_rooms):
        hello = {"room": f"room{r}", "speaker": "spk", "codec": codec, **codec_hello}
        s, _ = hub.open(hello)
        sessions.append(s)
    n = len(frames)
    offs = [(r * 997) % n for r in range(n_rooms)]  # rooms start at different places in the speech
    # Speakers do not start in the same 20 ms: spread the starts over one hop so windows complete
    # spread out too, as in real rooms (all at once would be a burst every hop).
    hop_ticks = int(round(float(det.card.hop) * 1000 / FRAME_MS))
    starts = [r * hop_ticks // max(1, n_rooms) for r in range(n_rooms)]
    t_wall, t_cpu = time.perf_counter(), time.process_time()
    lag = 0.0
    for tick in range(n + max(starts)):
        if pace:
            due = t_wall + tick * FRAME_MS / 1000.0
            now = time.perf_counter()
            if due > now:
                time.sleep(due - now)
            else:
                lag = max(lag, now - due)
        for r, s in enumerate(sessions):
            k = tick - starts[r]
            if 0 <= k < n:
                s.push(k, frames[(offs[r] + k) % n])
    cpu = time.process_time() - t_cpu
    wall = time.perf_counter() - t_wall
    det.backend.score_windows = score.f
    wins = [e for e in events if isinstance(e, WindowScored)]
    lat = np.array([w.latency_ms for w in wins]) if wins else np.zeros(1)
    audio_s = n_rooms * n * FRAME_MS / 1000.0
    stats = [s.stats for s in sessions]
    considered = sum(st.windows_scored + st.windows_silent for st in stats)
    return {
        "rooms": n_rooms, "audio_s": audio_s, "cpu_s": cpu, "wall_s": wall, "windows": len(wins),
        "gated": sum(st.windows_silent for st in stats), "considered": considered,
        "p50": float(np.percentile(lat, 50)), "p95": float(np.percentile(lat, 95)),
        "max": float(lat.max()), "vad_s": meter.total, "model_s": score.total, "lag": lag,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rooms", default="1,8,32", help="comma-separated room counts")
    ap.add_argument("--seconds", type=float, default=30.0, help="seconds of audio each room streams")
    ap.add_argument("--codec", choices=("pcm16", "opus"), default="pcm16")
    ap.add_argument("--model", default=None)
    ap.add_argument("--no-vad", action="store_true", help="score every window (no Silero gating)")
    ap.add_argument("--pace", action="store_true", help="feed at real time (latency under load)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        speech, src = load_speech(tmp, max(args.seconds, 60.0))
        det, how = get_detector(args.model, speech, tmp)
        frames, hello = encode_frames(speech[: int(args.seconds * SR)], args.codec)
        print(f"model      {det.model_id} ({how}); window {det.card.window:g} s, hop {det.card.hop:g} s")
        mode = "paced at real time" if args.pace else "unpaced (capacity)"
        print(f"speech     {src}; codec {args.codec}; {FRAME_MS} ms frames; "
              f"VAD {'off' if args.no_vad else 'on'}; {mode}; python {sys.version.split()[0]}")
        run(1, frames[:200], hello, args.codec, det, not args.no_vad, False)  # warm-up (VAD/model load)
        print(f"{'rooms':>5} {'audio s':>8} {'cpu s':>7} {'windows':>7} {'win/s':>7} {'p50 ms':>7} "
              f"{'p95 ms':>7} {'max ms':>7} {'vad %':>6} {'model %':>7} {'rooms/core':>10}")
        for n in [int(v) for v in args.rooms.split(",") if v.strip()]:
            r = run(n, frames, hello, args.codec, det, not args.no_vad, args.pace)
            per_core = r["audio_s"] / r["cpu_s"]  # real-time speakers one core keeps up with
            print(f"{n:>5} {r['audio_s']:>8.0f} {r['cpu_s']:>7.2f} {r['windows']:>7} "
                  f"{r['windows'] / r['cpu_s']:>7.1f} {r['p50']:>7.1f} {r['p95']:>7.1f} {r['max']:>7.1f} "
                  f"{100 * r['vad_s'] / r['wall_s']:>6.0f} {100 * r['model_s'] / r['wall_s']:>7.0f} "
                  f"{per_core:>10.0f}" + (f"   max lag {r['lag'] * 1000:.0f} ms" if args.pace else ""))
        print("rooms/core = seconds of audio handled per CPU second: one-speaker rooms one core keeps in "
              "real time (before the WebSocket layer). win/s = windows scored per CPU second. "
              "vad %/model % = share of wall time. Latency is wall time, so it grows on a busy machine.")


if __name__ == "__main__":
    main()
