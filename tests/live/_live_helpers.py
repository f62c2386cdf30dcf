"""Shared helpers for the live tests: a small real scorer, signal makers, PCM16/Opus encoders."""

from __future__ import annotations

import fractions
import shutil
import subprocess
from pathlib import Path

import numpy as np

from voxwarden.detect.card import ModelCard
from voxwarden.detect.detector import Detector


class LoudnessBackend:
    """Test double that scores by a real feature: window RMS level (dBFS + 30). Loud → 'synthetic'."""

    def __init__(self) -> None:
        self.calls: list[int] = []  # batch sizes, to check windows are scored in the frame call

    def score_windows(self, windows: list[np.ndarray]) -> np.ndarray:
        self.calls.append(len(windows))
        out = []
        for w in windows:
            rms = float(np.sqrt(np.mean(np.square(w, dtype=np.float64)))) if w.size else 0.0
            out.append(20.0 * np.log10(rms + 1e-9) + 30.0)
        return np.array(out, dtype=np.float64)


def loudness_detector(window: float = 1.0, hop: float = 0.5) -> Detector:
    card = ModelCard(name="loudness-test", version="0", kind="test", file="none", sha256="",
                     window=window, hop=hop, threshold=0.5)
    return Detector(card, LoudnessBackend())


def tone(seconds: float, sr: int, freq: float = 220.0, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(round(seconds * sr))) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def pcm16(x: np.ndarray, channels: int = 1) -> bytes:
    a = np.clip(np.round(np.asarray(x) * 32767.0), -32768, 32767).astype("<i2")
    if channels > 1:
        a = np.repeat(a[:, None], channels, axis=1).reshape(-1)
    return a.tobytes()


def frames_of(x: np.ndarray, sr: int, frame_ms: int = 20) -> list[np.ndarray]:
    n = sr * frame_ms // 1000
    return [x[i:i + n] for i in range(0, len(x), n)]


def opus_packets(x: np.ndarray, sr: int = 48000, bitrate: int = 32000) -> list[bytes]:
    """Encode mono float audio at 48 kHz into 20 ms Opus packets with PyAV's libopus encoder."""
    import av

    enc = av.codec.CodecContext.create("libopus", "w")
    enc.sample_rate = sr
    enc.layout = "mono"
    enc.format = "s16"
    enc.bit_rate = bitrate
    enc.time_base = fractions.Fraction(1, sr)
    enc.open()
    s16 = np.clip(np.round(x * 32767), -32768, 32767).astype(np.int16)
    out: list[bytes] = []
    n = enc.frame_size or 960
    for i in range(0, len(s16) - n + 1, n):
        fr = av.AudioFrame.from_ndarray(s16[None, i:i + n], format="s16", layout="mono")
        fr.sample_rate = sr
        fr.pts = i
        out += [bytes(p) for p in enc.encode(fr)]
    out += [bytes(p) for p in enc.encode(None)]
    return out


def espeak(text: str, path: Path, sr: int = 16000) -> np.ndarray | None:
    """Speech from espeak-ng at `sr` (None when espeak-ng is not installed)."""
    if shutil.which("espeak-ng") is None:
        return None
    wav = path.with_suffix(".wav")
    subprocess.run(["espeak-ng", "-w", str(wav), "-s", "160", text], check=True, capture_output=True)
    from voxwarden.audio import load

    return load(str(wav), sr=sr).samples
