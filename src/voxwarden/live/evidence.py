"""Alert evidence: the recent audio of each speaker, kept so a firing rule can hand its span's samples on.

A ``StreamSession`` with rules writes every window it scores into an ``AudioTrail`` (a ring of 16 kHz
PCM16 samples addressed by stream position, so overlapping windows land on the same samples). When a rule
fires, ``AudioTrail.clip`` cuts the alert's span (``run_start`` .. ``end``) into an ``EvidenceClip`` that
travels with the ``Alert`` event to the sink, which stores it content-addressed (``wav_pcm16``).

Memory is bounded: the ring holds at most ``StreamOptions.evidence_seconds`` (default 30 s, ~0.96 MB per
speaker) and, below that, only what the current rules can ask for (their sustained span plus one window).
A span longer than what is kept yields the kept tail with ``truncated`` set; audio that never reached the
scorer (windows skipped under overload, long gaps) is silence in the clip and counted in
``missing_seconds``.
"""

from __future__ import annotations

import io
import wave
from dataclasses import dataclass, field
from typing import Any

import numpy as np


def to_pcm16(x: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1] → int16 (clipped, rounded); int16 input is returned as is."""
    a = np.asarray(x)
    if a.dtype == np.int16:
        return a
    return np.clip(np.round(a.astype(np.float32) * 32767.0), -32768, 32767).astype(np.int16)


def wav_pcm16(samples: np.ndarray, sample_rate: int) -> bytes:
    """A mono PCM16 WAV file of `samples` (float in [-1, 1] or int16). The same samples always give the
    same bytes (no timestamps in the header), so stored evidence deduplicates by its hash."""
    if not isinstance(sample_rate, int) or isinstance(sample_rate, bool) or not 1 <= sample_rate <= 384_000:
        raise ValueError(f"sample_rate must be a positive integer, got {sample_rate!r}")
    pcm = to_pcm16(np.asarray(samples).reshape(-1))
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm.astype("<i2", copy=False).tobytes())
    return buf.getvalue()


@dataclass
class EvidenceClip:
    """The audio of an alert's span as kept by the trail (mono int16 at `sample_rate`).

    ``start``/``end`` are the stream seconds the samples cover; ``requested_start``/``requested_end`` the
    span the alert asked for. ``truncated``: the span reached back further than the trail keeps.
    ``missing_seconds``: parts of the kept range that never reached the scorer, filled with silence.
    """

    samples: np.ndarray = field(repr=False)
    sample_rate: int
    start: float
    end: float
    requested_start: float
    requested_end: float
    truncated: bool = False
    missing_seconds: float = 0.0

    @property
    def duration(self) -> float:
        return self.samples.size / self.sample_rate

    def wav(self) -> bytes:
        """The clip as a PCM16 WAV file."""
        return wav_pcm16(self.samples, self.sample_rate)

    def summary(self) -> dict[str, Any]:
        """What the alert's JSON (and its stored details) says about the clip; no samples."""
        return {"start": round(self.start, 3), "end": round(self.end, 3), "seconds": round(self.duration, 3),
                "sample_rate": self.sample_rate, "requested_start": round(self.requested_start, 3),
                "requested_end": round(self.requested_end, 3), "truncated": self.truncated,
                "missing_seconds": round(self.missing_seconds, 3)}


class AudioTrail:
    """A ring of the most recent PCM16 samples by absolute stream position, with the ranges that hold audio.

    Writes must come in non-decreasing start order (windows are scored in order); a write may overlap the
    previous one (overlapping windows) and may leave a hole after it (skipped windows, long gaps).
    """

    def __init__(self, capacity: int, sample_rate: int) -> None:
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        self.capacity = int(capacity)
        self.sample_rate = int(sample_rate)
        self._a = np.zeros(self.capacity, dtype=np.int16)
        self.end = 0  # samples up to here have been written (or skipped)
        self._valid: list[list[int]] = []  # [start, stop) ranges holding written audio, oldest first

    @property
    def oldest(self) -> int:
        """Absolute index of the oldest sample still kept."""
        return max(0, self.end - self.capacity)

    def resized(self, capacity: int) -> AudioTrail:
        """A trail of another capacity holding the newest samples of this one."""
        t = AudioTrail(capacity, self.sample_rate)
        lo = max(self.oldest, self.end - t.capacity)
        for a, b in self._valid:
            a = max(a, lo)
            if a < b:
                t.write(a, self._read(a, b))
        t.end = max(t.end, self.end)
        t._prune()
        return t

    def write(self, at: int, x: np.ndarray) -> None:
        """Write samples (float or int16) at absolute position `at`. Samples a previous write already put
        there (the overlap of consecutive windows: the same stream audio) are not converted again."""
        x = np.asarray(x).reshape(-1)
        at = int(at)
        if self._valid and self._valid[-1][0] <= at < self._valid[-1][1]:
            skip = min(x.size, self._valid[-1][1] - at)
            x, at = x[skip:], at + skip
        pcm = to_pcm16(x)
        stop = at + pcm.size
        lo = max(self.end, stop) - self.capacity  # what this write leaves in the ring
        if pcm.size == 0 or stop <= lo:
            return
        if at < lo:
            pcm, at = pcm[lo - at:], lo
        i = at % self.capacity
        k = min(pcm.size, self.capacity - i)
        self._a[i:i + k] = pcm[:k]
        self._a[:pcm.size - k] = pcm[k:]
        self.end = max(self.end, stop)
        if self._valid and at <= self._valid[-1][1]:
            self._valid[-1][1] = max(self._valid[-1][1], stop)
            self._valid[-1][0] = min(self._valid[-1][0], at)
        else:
            self._valid.append([at, stop])
        self._prune()

    def clip(self, start_s: float, end_s: float) -> EvidenceClip | None:
        """The audio of stream seconds [start_s, end_s) as far as it is kept; None when nothing is."""
        sr = self.sample_rate
        a, b = int(round(start_s * sr)), int(round(end_s * sr))
        lo, hi = max(a, self.oldest), min(b, self.end)
        if hi <= lo:
            return None
        out = self._read_filled(lo, hi)
        held = sum(max(0, min(v1, hi) - max(v0, lo)) for v0, v1 in self._valid)
        if held == 0:
            return None
        return EvidenceClip(out, sr, lo / sr, hi / sr, float(start_s), float(end_s), truncated=lo > a,
                            missing_seconds=(hi - lo - held) / sr)

    # -- internals ---------------------------------------------------------------------------------

    def _prune(self) -> None:
        lo = self.oldest
        while self._valid and self._valid[0][1] <= lo:
            self._valid.pop(0)
        if self._valid and self._valid[0][0] < lo:
            self._valid[0][0] = lo

    def _read(self, a: int, b: int) -> np.ndarray:
        i, n = a % self.capacity, b - a
        if i + n <= self.capacity:
            return self._a[i:i + n].copy()
        return np.concatenate([self._a[i:], self._a[:n - (self.capacity - i)]])

    def _read_filled(self, lo: int, hi: int) -> np.ndarray:
        out = np.zeros(hi - lo, dtype=np.int16)
        for v0, v1 in self._valid:
            a, b = max(v0, lo), min(v1, hi)
            if a < b:
                out[a - lo:b - lo] = self._read(a, b)
        return out


__all__ = ["AudioTrail", "EvidenceClip", "to_pcm16", "wav_pcm16"]
