"""Audio intake speed: decode (per format) and VAD, in x real time on one core, plus peak RSS.

    python benchmarks/audio_speed.py [--minutes 3] [--repeat 3]

Builds `--minutes` of espeak-ng speech (falls back to noise-modulated tones if espeak-ng is missing),
encodes it as WAV 44.1 kHz stereo, FLAC 16 kHz, MP3 44.1 kHz, AAC/M4A 48 kHz, Opus/Ogg 48 kHz in a temp
dir, then times `audio.load` on each, `audio.resample` 44.1->16 kHz, `audio.speech_regions` on the whole
audio and on 4 s / 30 s clips, and a `VadStream` fed 20 ms pieces (live use). Best of `--repeat`.
onnxruntime uses 1 thread.
Timings use process CPU time by default (`--clock wall` for elapsed time): all of it runs on one thread,
so CPU time gives x real time per core even on a busy shared machine. Target (issue 2): VAD >= 300x.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

from voxwarden import audio
from voxwarden.audio import vad

TEXT = (
    "The quick brown fox jumps over the lazy dog. Voice platforms need to know when a voice is real. "
    "She sells sea shells by the sea shore, and the shells she sells are surely seashells. "
)


def _speech(seconds: float, sr: int = 44100) -> np.ndarray:
    exe = shutil.which("espeak-ng")
    if exe is None:
        t = np.arange(int(seconds * sr)) / sr
        env = 0.5 * (1 + np.sin(2 * np.pi * 3 * t))
        return (0.3 * env * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    import io

    import soundfile as sf

    wav = subprocess.run([exe, "--stdout", TEXT * 3], check=True, capture_output=True).stdout
    x, esr = sf.read(io.BytesIO(wav), dtype="float32")
    x = audio.resample(x, esr, sr)
    reps = int(np.ceil(seconds * sr / len(x)))
    return np.tile(x, reps)[: int(seconds * sr)]


def _encode(path: Path, x: np.ndarray, sr: int, codec: str, fmt: str | None, ch: int) -> Path:
    import av

    layout = "mono" if ch == 1 else "stereo"
    data = np.stack([x] * ch) if ch > 1 else x[None]
    with av.open(str(path), "w", format=fmt) as c:
        s = c.add_stream(codec, rate=sr, layout=layout)
        for i in range(0, data.shape[1], 4096):
            block = np.ascontiguousarray(data[:, i : i + 4096])
            f = av.AudioFrame.from_ndarray(block, format="fltp", layout=layout)
            f.sample_rate, f.pts, f.time_base = sr, i, Fraction(1, sr)
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    return path


def _stream_in_20ms_pieces(x: np.ndarray) -> None:
    stream = vad.VadStream()
    for i in range(0, x.size, 320):
        stream.push(x[i : i + 320])
    stream.flush()


CLOCK = time.process_time


def _best(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = CLOCK()
        fn()
        best = min(best, CLOCK() - t)
    return max(best, 1e-9)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=3.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument(
        "--clock",
        choices=["cpu", "wall"],
        default="cpu",
        help="cpu: process CPU time (x real time per core, robust on a shared machine); wall: elapsed",
    )
    args = ap.parse_args()
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    secs = args.minutes * 60.0
    x44 = _speech(secs, 44100)
    x16 = audio.resample(x44, 44100, 16000)
    x48 = audio.resample(x44, 44100, 48000)
    kind = "espeak-ng speech" if shutil.which("espeak-ng") else "tones"
    print(f"clock: {args.clock} time; audio: {secs:.0f} s of {kind}")
    with tempfile.TemporaryDirectory() as d:
        files = [
            ("wav 44.1k stereo", _encode(Path(d) / "a.wav", x44, 44100, "pcm_s16le", None, 2)),
            ("flac 16k mono", _encode(Path(d) / "a.flac", x16, 16000, "flac", None, 1)),
            ("mp3 44.1k mono", _encode(Path(d) / "a.mp3", x44, 44100, "libmp3lame", None, 1)),
            ("aac/m4a 48k mono", _encode(Path(d) / "a.m4a", x48, 48000, "aac", "mp4", 1)),
            ("opus/ogg 48k mono", _encode(Path(d) / "a.opus", x48, 48000, "libopus", "ogg", 1)),
        ]
        audio.load(files[0][1])  # import PyAV once, outside the timings
        for name, path in files:
            t = _best(lambda p=path: audio.load(p), args.repeat)
            print(f"decode {name:<20} {secs / t:8.0f}x real time  ({t * 1000:.0f} ms)")
    t = _best(lambda: audio.resample(x44, 44100, 16000), args.repeat)
    print(f"resample 44.1k->16k        {secs / t:8.0f}x real time  ({t * 1000:.0f} ms)")

    t0 = time.perf_counter()
    vad._get_session()
    print(f"vad session start          {(time.perf_counter() - t0) * 1000:8.0f} ms")
    t = _best(lambda: audio.speech_regions(x16), args.repeat)
    speech = sum(b - a for a, b in audio.speech_regions(x16))
    label = f"vad {secs:.0f} s clip"
    print(f"{label:<27}{secs / t:8.0f}x real time  ({t * 1000:.0f} ms; {speech:.0f} s speech)")
    for short in (4.0, 30.0):
        n = int(short * 16000)
        ts = _best(lambda n=n: audio.speech_regions(x16[:n]), args.repeat * 3)
        print(f"vad {short:>4.0f} s clip           {short / ts:8.0f}x real time  ({ts * 1000:.1f} ms)")
    t = _best(lambda: _stream_in_20ms_pieces(x16), 1)
    print(f"vad stream, 20 ms pushes   {secs / t:8.0f}x real time  ({t * 1000:.0f} ms)")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS                   {rss:8.0f} MB")


if __name__ == "__main__":
    main()
