"""Speech activity detection with Silero VAD (vendored ONNX model, bare onnxruntime, no torch).

Silero VAD is a small LSTM run on 32 ms chunks (512 samples at 16 kHz, each with the previous 64 samples
as context), carrying its state from chunk to chunk. The stock `silero_vad.onnx` takes one chunk per
`session.run`, so a Python loop pays the call overhead every 32 ms. We vendor the same weights exported
as a *sequence* model (`silero_vad_16k_sequence.onnx`, from the same wheel): it takes a block of up to
`BLOCK` chunks and the LSTM (h, c) state, and returns one probability per chunk in one call. Its output
equals the chunk-by-chunk model's (max abs difference 0.0 over 96 s of speech on our check), at about
twice its speed on short clips and without the boundary effects of cutting a clip into parallel pieces.

`VadStream` keeps the state between pushes, so a live stream fed in arbitrary pieces gets the same
probabilities as a file scan of the same audio. The ONNX session is created once per process, lazily.
"""

from __future__ import annotations

import hashlib
import threading
from importlib import resources
from typing import Any

import numpy as np

from .clip import Clip
from .errors import SilenceError, TooLittleSpeechError
from .resample import resample

__all__ = [
    "speech_regions",
    "speech_probs",
    "regions_from_probs",
    "check_speech",
    "check_silence",
    "rms_dbfs",
    "VadStream",
    "VAD_SR",
    "FRAME_SECONDS",
    "MODEL_SHA256",
]

VAD_SR = 16000
FRAME = 512  # samples per model chunk at 16 kHz
CONTEXT = 64  # samples of the previous chunk prepended to each chunk
FRAME_SECONDS = FRAME / VAD_SR
BLOCK = 512  # chunks per session.run (~16 s of audio, ~1.2 MB of input)
MODEL_FILE = "silero_vad_16k_sequence.onnx"
MODEL_SHA256 = "9ccdacc4719d8aa7e45a77536bfabec45a03ba1f2fad5e241ab4060b24238a85"

_session: Any = None
_session_lock = threading.Lock()


def _get_session() -> Any:
    """The process-wide onnxruntime session for the vendored model (created on first call)."""
    global _session
    if _session is not None:
        return _session
    with _session_lock:
        if _session is None:
            import onnxruntime as ort

            data = resources.files("voxwarden.audio").joinpath("data").joinpath(MODEL_FILE).read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            if digest != MODEL_SHA256:
                raise RuntimeError(f"VAD model {MODEL_FILE} has sha256 {digest}, expected {MODEL_SHA256}")
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1
            opts.inter_op_num_threads = 1
            opts.log_severity_level = 3
            _session = ort.InferenceSession(data, sess_options=opts, providers=["CPUExecutionProvider"])
    return _session


def _clean(samples: np.ndarray) -> np.ndarray:
    x = np.asarray(samples, dtype=np.float32).reshape(-1)
    if not np.isfinite(x).all():
        x = np.nan_to_num(x, nan=0.0, posinf=1.0, neginf=-1.0)
    return x


class VadStream:
    """Incremental VAD over 16 kHz audio: `push` samples, get probabilities of the chunks completed.

    Chunk i covers samples [512 i, 512 (i + 1)) of everything pushed so far. `flush()` scores a final
    partial chunk (zero-padded) and ends the stream. Pushing a clip in any pieces gives the same
    probabilities as `speech_probs` on the whole clip.
    """

    def __init__(self) -> None:
        self._h = np.zeros((1, 1, 128), dtype=np.float32)
        self._c = np.zeros((1, 1, 128), dtype=np.float32)
        self._context = np.zeros(CONTEXT, dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)
        self.frames = 0  # chunks scored so far

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Add 16 kHz samples; return float32 probabilities for each chunk completed by them."""
        x = _clean(samples)
        if self._pending.size:
            x = np.concatenate([self._pending, x])
        n = x.size // FRAME
        self._pending = x[n * FRAME :].copy()
        if n == 0:
            return np.zeros(0, dtype=np.float32)
        return self._run(x[: n * FRAME])

    def flush(self) -> np.ndarray:
        """Score the last partial chunk (zero-padded), if any."""
        if self._pending.size == 0:
            return np.zeros(0, dtype=np.float32)
        last = np.zeros(FRAME, dtype=np.float32)
        last[: self._pending.size] = self._pending
        self._pending = np.zeros(0, dtype=np.float32)
        return self._run(last)

    def _run(self, x: np.ndarray) -> np.ndarray:
        """x: a whole number of chunks. Builds [context | chunk] rows block by block and runs them."""
        n = x.size // FRAME
        sess = _get_session()
        out = np.empty(n, dtype=np.float32)
        for i in range(0, n, BLOCK):
            k = min(BLOCK, n - i)
            padded = np.concatenate([self._context, x[i * FRAME : (i + k) * FRAME]])
            rows = np.lib.stride_tricks.sliding_window_view(padded, CONTEXT + FRAME)[::FRAME][:k]
            self._context = padded[-CONTEXT:].copy()
            feeds = {"input": np.ascontiguousarray(rows), "h": self._h, "c": self._c}
            probs, self._h, self._c = sess.run(None, feeds)
            out[i : i + k] = np.asarray(probs, dtype=np.float32).reshape(-1)
        self.frames += n
        return out


def speech_probs(samples: np.ndarray, sr: int = VAD_SR) -> np.ndarray:
    """Per-chunk speech probability of a clip (chunk i covers [i, i+1) * 32 ms), float32 in [0, 1].

    Input at another rate is resampled to 16 kHz first (`resample`)."""
    x = _clean(samples)
    if sr != VAD_SR:
        x = resample(x, sr, VAD_SR)
    stream = VadStream()
    a = stream.push(x)
    b = stream.flush()
    return np.concatenate([a, b]) if b.size else a


def regions_from_probs(
    probs: np.ndarray,
    duration: float,
    *,
    threshold: float = 0.5,
    min_speech: float = 0.25,
    min_silence: float = 0.15,
    pad: float = 0.05,
) -> list[tuple[float, float]]:
    """Turn per-chunk probabilities into speech regions (seconds), Silero-style.

    Hysteresis: speech starts at p >= threshold and ends at p < threshold - 0.15; pauses shorter than
    `min_silence` are bridged, regions shorter than `min_speech` dropped, the rest padded by `pad` on
    each side (clipped to [0, duration]) and overlaps merged.
    """
    p = np.asarray(probs, dtype=np.float32).reshape(-1)
    neg = max(threshold - 0.15, 0.01)
    raw: list[list[int]] = []
    start: int | None = None
    for i, v in enumerate(p.tolist()):
        if start is None:
            if v >= threshold:
                start = i
        elif v < neg:
            raw.append([start, i])
            start = None
    if start is not None:
        raw.append([start, p.size])

    gap = min_silence / FRAME_SECONDS
    merged: list[list[int]] = []
    for a, b in raw:
        if merged and a - merged[-1][1] < gap:
            merged[-1][1] = b
        else:
            merged.append([a, b])

    out: list[tuple[float, float]] = []
    for a, b in merged:
        t0, t1 = a * FRAME_SECONDS, min(b * FRAME_SECONDS, duration)
        if t1 - t0 < min_speech:
            continue
        t0, t1 = max(0.0, t0 - pad), min(duration, t1 + pad)
        if out and t0 <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], t1))
        else:
            out.append((t0, t1))
    return [(round(a, 4), round(b, 4)) for a, b in out]


def speech_regions(
    samples: np.ndarray,
    sr: int = VAD_SR,
    *,
    threshold: float = 0.5,
    min_speech: float = 0.25,
    min_silence: float = 0.15,
    pad: float = 0.05,
) -> list[tuple[float, float]]:
    """Speech regions [(start, end), ...] in seconds of the given clip, sorted and non-overlapping."""
    if int(sr) != sr or sr <= 0:
        raise ValueError(f"sr must be a positive integer, got {sr!r}")
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    x = np.asarray(samples).reshape(-1)
    duration = x.size / float(sr)
    probs = speech_probs(x, int(sr))
    return regions_from_probs(
        probs, duration, threshold=threshold, min_speech=min_speech, min_silence=min_silence, pad=pad
    )


def rms_dbfs(samples: np.ndarray) -> float:
    """RMS level in dB relative to full scale (-inf for empty or all-zero input)."""
    x = np.asarray(samples, dtype=np.float32).reshape(-1)
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0
    return 20.0 * float(np.log10(rms)) if rms > 0 else float("-inf")


def check_silence(clip: Clip, *, silence_dbfs: float = -65.0) -> None:
    """Raise SilenceError if the clip is (near) digital silence: RMS below `silence_dbfs`.

    Cheap; run it before the VAD to skip the model on silent input."""
    level = rms_dbfs(clip.samples)
    if level < silence_dbfs:
        name = clip.source.path or "<audio>"
        shown = "-inf" if level == float("-inf") else f"{level:.1f}"
        raise SilenceError(f"{name}: silent (RMS {shown} dBFS, below {silence_dbfs:g} dBFS)")


def check_speech(
    clip: Clip,
    regions: list[tuple[float, float]],
    *,
    min_speech: float = 0.5,
    silence_dbfs: float = -65.0,
) -> None:
    """Raise SilenceError if the clip is (near) digital silence (checked first, cheap), else
    TooLittleSpeechError if `regions` (from `speech_regions`) hold under `min_speech` seconds."""
    check_silence(clip, silence_dbfs=silence_dbfs)
    speech = float(sum(max(0.0, b - a) for a, b in regions))
    if speech < min_speech:
        name = clip.source.path or "<audio>"
        raise TooLittleSpeechError(
            f"{name}: only {speech:.2f} s of speech in {clip.duration:.2f} s (need {min_speech:g} s)"
        )
