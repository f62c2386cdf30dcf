"""Fixtures for audio intake tests: tiny media files made on the fly with numpy, PyAV and espeak-ng."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest


def tone(freq: float, dur: float, sr: int, amp: float = 0.5, phase: float = 0.0) -> np.ndarray:
    t = np.arange(int(round(dur * sr))) / sr
    return (amp * np.sin(2 * np.pi * freq * t + phase)).astype(np.float32)


def encode_audio(
    path: Path,
    x: np.ndarray,
    sr: int,
    codec: str,
    fmt: str | None = None,
    *,
    options: dict[str, str] | None = None,
    video: bool = False,
    bit_rate: int | None = None,
) -> Path:
    """Write `x` (n,) or (n, ch) float32 with PyAV `codec` into container `fmt` (optionally + a video)."""
    import av

    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 1:
        x = x[:, None]
    ch = x.shape[1]
    layout = "mono" if ch == 1 else "stereo"
    with av.open(str(path), "w", format=fmt) as c:
        if video:
            vs = c.add_stream("mpeg4", rate=10)
            vs.width, vs.height, vs.pix_fmt = 64, 48, "yuv420p"
        s = c.add_stream(codec, rate=sr, layout=layout, options=options or {})
        if bit_rate:
            s.codec_context.bit_rate = bit_rate
        step = 1024
        n_vid = int(len(x) / sr * 10)
        for i in range(0, len(x), step):
            block = np.ascontiguousarray(x[i : i + step].T)
            f = av.AudioFrame.from_ndarray(block, format="fltp", layout=layout)
            f.sample_rate = sr
            f.pts = i
            f.time_base = Fraction(1, sr)
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
        if video:
            for k in range(n_vid):
                img = np.full((48, 64, 3), (k * 20) % 255, dtype=np.uint8)
                vf = av.VideoFrame.from_ndarray(img, format="rgb24")
                vf.pts = k
                for p in vs.encode(vf):
                    c.mux(p)
            for p in vs.encode(None):
                c.mux(p)
    return path


def encode_video_only(path: Path, dur: float = 1.0, fmt: str | None = None) -> Path:
    import av

    with av.open(str(path), "w", format=fmt) as c:
        vs = c.add_stream("mpeg4", rate=10)
        vs.width, vs.height, vs.pix_fmt = 64, 48, "yuv420p"
        for k in range(int(dur * 10)):
            vf = av.VideoFrame.from_ndarray(np.full((48, 64, 3), k * 20 % 255, np.uint8), format="rgb24")
            vf.pts = k
            for p in vs.encode(vf):
                c.mux(p)
        for p in vs.encode(None):
            c.mux(p)
    return path


def write_wav(path: Path, x: np.ndarray, sr: int) -> Path:
    import soundfile as sf

    sf.write(str(path), np.asarray(x, dtype=np.float32), sr, subtype="PCM_16")
    return path


@pytest.fixture(scope="session")
def espeak() -> Callable[[str], tuple[np.ndarray, int]]:
    """Synthesize English speech with espeak-ng -> (float32 mono, sr)."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        pytest.skip("espeak-ng not installed")
    cache: dict[str, tuple[np.ndarray, int]] = {}

    def say(text: str) -> tuple[np.ndarray, int]:
        if text not in cache:
            import io

            import soundfile as sf

            wav = subprocess.run([exe, "--stdout", text], check=True, capture_output=True, timeout=60).stdout
            x, sr = sf.read(io.BytesIO(wav), dtype="float32")
            cache[text] = (x, int(sr))
        return cache[text]

    return say


@pytest.fixture(scope="session")
def speech16k(espeak: Callable[[str], tuple[np.ndarray, int]]) -> np.ndarray:
    """~4 s of espeak-ng speech at 16 kHz with 1 s of silence before and after."""
    from voxwarden.audio import resample

    x, sr = espeak("The quick brown fox jumps over the lazy dog, and then it runs away.")
    y = resample(x, sr, 16000)
    z = np.zeros(16000, np.float32)
    return np.concatenate([z, y, z])


@pytest.fixture(scope="session")
def mk() -> SimpleNamespace:
    """The fixture-making helpers above, for tests to call."""
    return SimpleNamespace(
        tone=tone, encode_audio=encode_audio, encode_video_only=encode_video_only, write_wav=write_wav
    )


@pytest.fixture
def as_nobody() -> Callable[[Callable[[], str]], str]:
    """Run `fn` in a forked child with root privileges dropped to `nobody`; return what it returns.

    Lets permission-denied paths be tested even though the suite runs as root. Skips where impossible.
    """
    import os

    if not hasattr(os, "fork"):
        pytest.skip("needs os.fork")
    if os.geteuid() != 0:
        return lambda fn: fn()  # already unprivileged: permission bits apply directly

    def run(fn: Callable[[], str]) -> str:
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # child
            code = 0
            try:
                os.close(r)
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
                msg = fn()
            except BaseException as e:  # report anything back to the parent
                msg, code = f"child failed: {type(e).__name__}: {e}", 1
            os.write(w, msg.encode("utf-8", "replace"))
            os.close(w)
            os._exit(code)
        os.close(w)
        chunks = []
        while chunk := os.read(r, 65536):
            chunks.append(chunk)
        os.close(r)
        os.waitpid(pid, 0)
        return b"".join(chunks).decode()

    return run


@pytest.fixture
def open_tmp() -> Iterator[Path]:
    """A temp dir that other users may traverse (pytest's own base dir is private to root)."""
    import os
    import tempfile

    d = Path(tempfile.mkdtemp(prefix="vw-perm-"))
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)
