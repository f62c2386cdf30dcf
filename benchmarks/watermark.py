"""Watermark benchmark: robustness (attack x clip length table), quality (SNR, PESQ), speed, false positives.

    python benchmarks/watermark.py                     # robustness + quality + speed, 8 clips per cell
    python benchmarks/watermark.py --clips 20 --rates 16000,48000 --lengths 1,2,3,10
    python benchmarks/watermark.py --fp 20000          # false-positive run on unmarked clips (slow)
    python benchmarks/watermark.py --clips 4 --lengths 3 --attacks mp3:64k,speed:+3% --speed-reps 0   # quick subset

Speech: ../shared/data/train clips (real human speech, 16 kHz; upsampled for 44.1/48 kHz rows, so they carry
nothing above 8 kHz) when present, plus espeak-ng TTS (22.05 kHz, resampled) when installed; otherwise a
numpy speech-like signal. The FP run mixes unmarked real speech crops, espeak, speech-like, music-like
(chords + percussive noise), white/pink noise and near-silence, 0.5-6 s, gains 0.05-1.

Targets (issue 4): detection >= 99 % and payload bit accuracy >= 99 % after every attack; FP <= 1e-5 per
clip; SNR >= 30 dB; PESQ >= 4.0; embed and detect >= 500x real time on one core. Cells print
``det%/bit%``: det = payload found and equal to the embedded one; bit = payload bit accuracy over all
clips, a missed payload counting as chance (50 %). ``-`` = attack not applicable (crop 2 s on 1 s clips).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")  # one core, as the target says

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
from scipy.signal import lfilter, resample_poly  # noqa: E402

from voxwarden.audio.synth import speech_like  # noqa: E402
from voxwarden.mark import Marker  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED_TRAIN = ROOT.parent / "shared" / "data" / "train" / "audio"
SENTENCES = [
    "Please confirm your account number before we continue with the transfer today.",
    "The weather tomorrow will be sunny with light winds from the west and a high of twenty degrees.",
    "Thank you for calling, all of our agents are busy, please stay on the line.",
    "Our new product launches next week, and early customers will receive a special discount.",
    "I am sorry, but I cannot share that information over the phone without verification.",
    "Breaking news this evening: the city council has approved the new transport plan.",
]
ATTACKS = ["none", "mp3:64k", "aac:64k", "opus:16k", "resample:8k", "noise:20db", "gain:0.3",
           "gain:2+clip", "crop:2s", "paste", "speed:+3%", "speed:-3%", "speed:rand"]
#: speed:rand: a seeded random factor per clip, uniform in [0.97, 1.03] (to 0.01 %), so most speeds fall
#: between the detector's search grid points; drawn from its own generator, so the other cells are unchanged


# ---- speech sources -------------------------------------------------------------------------------------


def speechlike(seconds: float, sr: int, seed: int) -> np.ndarray:
    return speech_like(seconds, sr, seed)


def _rs(x: np.ndarray, sr_from: int, sr_to: int) -> np.ndarray:
    if sr_from == sr_to:
        return x.astype(np.float32)
    g = np.gcd(sr_from, sr_to)
    return resample_poly(x, sr_to // g, sr_from // g).astype(np.float32)


def load_sources(tmp: Path) -> dict[str, list[tuple[np.ndarray, int]]]:
    """Long speech recordings per source: 'real' (shared/data/train), 'tts' (espeak-ng), or 'synthetic'."""
    src: dict[str, list[tuple[np.ndarray, int]]] = {}
    if SHARED_TRAIN.is_dir():
        files = sorted(SHARED_TRAIN.glob("*.flac"))
        real = []
        for f in files[:: max(1, len(files) // 60)]:
            x, sr = sf.read(f, dtype="float32")
            if x.ndim == 1 and len(x) >= 3 * sr:
                real.append((x, sr))
        src["real"] = real
    else:
        print("note: ../shared/data/train not found: no real-speech rows", file=sys.stderr)
    if shutil.which("espeak-ng"):
        tts = []
        for i, s in enumerate(SENTENCES * 2):
            p = tmp / f"tts{i}.wav"
            voice = ["en-us", "en", "en-gb-x-rp", "en+f3", "en-us+m2", "en+f2"][i % 6]
            subprocess.run(["espeak-ng", "-v", voice, "-s", str(140 + 10 * (i % 4)), "-w", str(p),
                            s + " " + s], check=True, capture_output=True)
            x, sr = sf.read(p, dtype="float32")
            tts.append((x, sr))
        src["tts"] = tts
    else:
        print("note: espeak-ng not installed: no TTS rows", file=sys.stderr)
    if not src:
        src["synthetic"] = [(speechlike(12.0, 16000, s), 16000) for s in range(20)]
    return src


def clip_from(rec: tuple[np.ndarray, int], seconds: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    x, rsr = rec
    x = _rs(x, rsr, sr)
    n = int(seconds * sr)
    if len(x) < n:
        x = np.tile(x, int(np.ceil(n / len(x))))
    st = int(rng.integers(0, len(x) - n + 1))
    y = x[st : st + n]
    peak = float(np.max(np.abs(y))) or 1.0
    return (y * (0.5 / peak)).astype(np.float32)


# ---- attacks --------------------------------------------------------------------------------------------


def attack(
    name: str, y: np.ndarray, sr: int, rng: np.random.Generator, filler: np.ndarray
) -> np.ndarray | None:
    from voxwarden.audio.degrade import degrade

    if name == "none":
        return y
    if name in ("mp3:64k", "aac:64k", "opus:16k", "resample:8k"):
        return degrade(y, sr, name, seed=int(rng.integers(1 << 30)))
    if name == "noise:20db":  # white noise at 20 dB SNR
        p = float(np.mean(y.astype(np.float64) ** 2))
        return (y + rng.normal(0, np.sqrt(p / 100.0), len(y))).astype(np.float32)
    if name == "gain:0.3":
        return y * 0.3
    if name == "gain:2+clip":
        return np.clip(y * 2.0, -1.0, 1.0)
    if name == "crop:2s":
        n = 2 * sr
        if len(y) <= n:
            return None
        st = int(rng.integers(0, len(y) - n))
        return y[st : st + n]
    if name == "paste":
        a = int(rng.integers(sr // 2, 2 * sr))
        return np.concatenate([filler[:a], y, filler[a : a + 2 * sr]]).astype(np.float32)
    if name == "speed:rand":
        s = float(rng.uniform(0.97, 1.03))  # rng: the speed generator of robustness(), not the clip generator
        return resample_poly(y, 10000, int(round(10000 * s))).astype(np.float32)
    if name.startswith("speed:"):
        s = 1.0 + float(name[6:-1]) / 100.0  # resampling speed change: tempo and pitch x s
        return resample_poly(y, 1000, int(round(1000 * s))).astype(np.float32)
    raise ValueError(name)


# ---- runs -----------------------------------------------------------------------------------------------


def robustness(args: argparse.Namespace, sources: dict, m: Marker) -> None:
    try:
        from pesq import pesq
    except ImportError:
        pesq = None
        print("note: `pip install pesq` for PESQ figures", file=sys.stderr)
    rates = [int(r) for r in args.rates.split(",")]
    lengths = [float(v) for v in args.lengths.split(",")]
    for sr in rates:
        for name, recs in sources.items():
            rng = np.random.default_rng(args.seed)
            speed_rng = np.random.default_rng([args.seed, 1])  # speed:rand only: other cells keep their draws
            cells: dict[tuple[str, float], list[tuple[bool, float]]] = {}
            snrs: list[float] = []
            pesqs: list[float] = []
            t0 = time.perf_counter()
            for L in lengths:
                for _ in range(args.clips):
                    rec = recs[int(rng.integers(len(recs)))]
                    x = clip_from(rec, L, sr, rng)
                    payload = rng.bytes(4)
                    y = m.embed(x, sr, payload)
                    e_w = max(float(np.sum((y.astype(np.float64) - x) ** 2)), 1e-30)
                    snrs.append(10 * np.log10(np.sum(x.astype(np.float64) ** 2) / e_w))
                    if pesq is not None and L >= 2:
                        try:
                            pesqs.append(pesq(16000, _rs(x, sr, 16000), _rs(y, sr, 16000), "wb"))
                        except Exception:
                            pass
                    filler = clip_from(recs[int(rng.integers(len(recs)))], L + 4, sr, rng)
                    for a in ATTACKS:
                        z = attack(a, y, sr, speed_rng if a == "speed:rand" else rng, filler)
                        if z is None:
                            continue
                        r = m.detect(np.asarray(z, dtype=np.float32), sr)
                        ok = r.present and r.payload == payload
                        if r.present and r.payload is not None:
                            diff = bytes(a_ ^ b_ for a_, b_ in zip(r.payload, payload, strict=True))
                            acc = 1.0 - np.unpackbits(np.frombuffer(diff, dtype=np.uint8)).mean()
                        else:
                            acc = 0.5
                        cells.setdefault((a, L), []).append((ok, acc))
            el = time.perf_counter() - t0
            print(f"\n## {name} speech, {sr} Hz, {args.clips} clips per cell ({el:.0f} s)")
            print(f"SNR dB: min {min(snrs):.1f} median {np.median(snrs):.1f}   "
                  + (f"PESQ-WB (>=2 s clips, at 16 kHz): min {min(pesqs):.2f} median {np.median(pesqs):.2f}"
                     if pesqs else "PESQ: n/a"))
            print("attack        " + "".join(f"{L:>6g}s det/bit   " for L in lengths))
            for a in ATTACKS:
                row = f"{a:13s} "
                for L in lengths:
                    c = cells.get((a, L))
                    if not c:
                        row += "        -          "
                    else:
                        det, bit = 100 * np.mean([o for o, _ in c]), 100 * np.mean([b for _, b in c])
                        row += f"{det:7.1f}/{bit:5.1f}      "
                print(row)
            sys.stdout.flush()


def speed(args: argparse.Namespace, sources: dict, m: Marker) -> None:
    print("\n## speed (one core; x real time = audio seconds / CPU seconds of this process, so other load on"
          " the machine does not count)")
    rng = np.random.default_rng(1)
    recs = next(iter(sources.values()))
    for sr in (16000, 48000):
        for L in (3.0, 10.0):
            x = clip_from(recs[0], L, sr, rng)
            y = m.embed(x, sr, b"\x01\x02\x03\x04")
            te, td, tu = [], [], []
            for _ in range(args.speed_reps):
                t = time.process_time()
                m.embed(x, sr, b"\x01\x02\x03\x04")
                te.append(time.process_time() - t)
                t = time.process_time()
                m.detect(y, sr)
                td.append(time.process_time() - t)
                t = time.process_time()
                m.detect(x, sr)
                tu.append(time.process_time() - t)
            print(f"{sr:6d} Hz {L:4.0f} s: embed {L / np.median(te):7.0f}x   "
                  f"detect marked {L / np.median(td):7.0f}x   "
                  f"detect unmarked (full speed search) {L / np.median(tu):7.0f}x")


def false_positives(args: argparse.Namespace, sources: dict, m: Marker) -> None:
    rng = np.random.default_rng(args.seed + 7)
    kinds = ["speech", "tts", "speechlike", "music", "noise", "quiet"]
    counts = dict.fromkeys(kinds, 0)
    hits: list[str] = []
    t0 = time.perf_counter()
    total_s = 0.0
    for i in range(args.fp):
        kind = kinds[i % len(kinds)]
        sr = int(rng.choice([8000, 16000, 22050, 44100, 48000]))
        L = float(rng.uniform(0.5, 6.0))
        n = int(L * sr)
        recs = sources.get({"speech": "real", "tts": "tts"}.get(kind, ""))
        if recs:
            x = clip_from(recs[int(rng.integers(len(recs)))], L, sr, rng)
        elif kind in ("speech", "tts", "speechlike"):
            x = speechlike(L, sr, int(rng.integers(1 << 30)))
        elif kind == "music":
            t = np.arange(n) / sr
            x = np.zeros(n)
            for _ in range(int(rng.integers(2, 6))):
                f = 110 * 2 ** (rng.integers(0, 36) / 12)
                for h in range(1, 6):
                    if f * h < sr / 2:
                        x += rng.uniform(0.1, 1) / h * np.sin(2 * np.pi * f * h * t + rng.uniform(0, 6.3))
            beats = (np.sin(2 * np.pi * rng.uniform(1, 3) * t) > 0.95).astype(float)
            x = x / max(np.max(np.abs(x)), 1e-9) + 0.3 * beats * rng.normal(0, 1, n)
        elif kind == "noise":
            w = rng.normal(0, 1, n)
            x = lfilter([1], [1, -0.97], w) if rng.random() < 0.5 else w
        else:
            x = rng.normal(0, 1e-4, n)
        x = (x / max(np.max(np.abs(x)), 1e-9) * rng.uniform(0.05, 1.0)).astype(np.float32)
        total_s += L
        r = m.detect(x, sr)
        if r.present:
            counts[kind] += 1
            hits.append(f"{kind} sr={sr} L={L:.2f} payload={r.payload.hex() if r.payload else None}")
        if (i + 1) % 1000 == 0:
            el = time.perf_counter() - t0
            print(f"  {i + 1} clips, {sum(counts.values())} false positives, {el:.0f} s", file=sys.stderr)
    fp = sum(counts.values())
    print(f"\n## false positives: {fp} / {args.fp} unmarked clips ({total_s / 3600:.1f} h of audio) = "
          f"{fp / max(args.fp, 1):.2e} per clip (target <= 1e-5)")
    print("per kind: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    for h in hits:
        print("  hit:", h)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=8, help="clips per (attack, length) cell")
    ap.add_argument("--rates", default="16000,48000")
    ap.add_argument("--lengths", default="1,2,3,10")
    ap.add_argument("--attacks", default="", help="comma list of attacks (default: all)")
    ap.add_argument("--sources", default="", help="comma list of real,tts,synthetic (default: all found)")
    ap.add_argument("--fp", type=int, default=0, help="run only the false-positive test on this many clips")
    ap.add_argument("--speed-reps", type=int, default=5, help="0 skips the speed run")
    ap.add_argument("--no-robustness", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--key", default=None, help="key file (default: a fixed benchmark key)")
    args = ap.parse_args()
    m = Marker.from_key_file(args.key) if args.key else Marker(b"voxwarden-benchmark-key-000000000")
    with tempfile.TemporaryDirectory() as td:
        sources = load_sources(Path(td))
    if args.sources:
        keep = set(args.sources.split(","))
        sources = {k: v for k, v in sources.items() if k in keep} or sources
    if args.attacks:
        bad = set(args.attacks.split(",")) - set(ATTACKS)
        if bad:
            ap.error(f"unknown attacks {sorted(bad)}; choose from {ATTACKS}")
        ATTACKS[:] = [a for a in ATTACKS if a in args.attacks.split(",")]
    print("sources: " + ", ".join(f"{k} ({len(v)} recordings)" for k, v in sources.items()))
    if args.fp:
        false_positives(args, sources, m)
        return
    if args.speed_reps > 0:
        speed(args, sources, m)
    if not args.no_robustness:
        robustness(args, sources, m)


if __name__ == "__main__":
    main()
