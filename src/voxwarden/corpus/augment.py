"""Label-blind post-processing shared by every corpus clip, bona fide or spoof.

Why: whatever differs between the classes besides generation (length, silence, level, channel) becomes a
shortcut. Every clip goes through `trim_silence`, `random_crop` and `finish_clip` with an rng seeded by
its own key; a spoof's `channel` is the native channel of its bona fide partner.
"""

from __future__ import annotations

import numpy as np

from voxwarden.audio.degrade import degrade

SR = 16000

__all__ = ["AUGMENTATIONS", "AUG_PROB", "finish_clip", "random_crop", "trim_silence"]

# One of these (or none, with probability 1 - AUG_PROB) is applied to every clip, independent of label.
AUGMENTATIONS = [
    "mp3:16k", "mp3:32k", "mp3:64k", "aac:24k", "aac:32k", "opus:12k", "opus:16k", "opus:24k", "opus:32k",
    "amr:12.2k", "amr:7.95k", "gsm", "mulaw", "resample:8k", "noise:5db", "noise:10db", "noise:20db",
    "noise:30db", "reverb:0.3", "reverb:0.6", "clip:0.6", "opus:16k+noise:20db", "mp3:32k+reverb:0.4",
]
AUG_PROB = 0.6


def trim_silence(x: np.ndarray, sr: int = SR) -> np.ndarray:
    """Drop leading/trailing silence (20 ms frames below -40 dB re. the loudest frame, or -60 dBFS)."""
    hop = sr // 50
    n = len(x) // hop
    if n < 3:
        return x
    e = 10 * np.log10(np.mean(x[: n * hop].reshape(n, hop).astype(np.float64) ** 2, axis=1) + 1e-12)
    active = np.flatnonzero(e > max(e.max() - 40.0, -60.0))
    if not len(active):
        return x[:0]
    a, b = max(0, active[0] - 2) * hop, min(len(x), (active[-1] + 3) * hop)
    return x[a:b]


def random_crop(x: np.ndarray, rng: np.random.Generator, crop_max: float) -> np.ndarray:
    """A random excerpt of 1..`crop_max` s (the whole clip when shorter)."""
    dur = float(rng.uniform(1.0, crop_max))
    n = int(dur * SR)
    if len(x) <= n:
        return x
    s = int(rng.integers(0, len(x) - n + 1))
    return x[s : s + n]


def finish_clip(x: np.ndarray, rng: np.random.Generator, channel: str) -> tuple[np.ndarray, str]:
    """Label-blind post-processing: native channel, padding, level, random degradation, peak limit."""
    if channel:
        x = degrade(x, SR, channel, rng=rng)
    pad_a, pad_b = (int(rng.uniform(0.02, 0.4) * SR) for _ in range(2))
    floor_db = float(rng.uniform(-80, -50))
    x = np.concatenate([np.zeros(pad_a, np.float32), x, np.zeros(pad_b, np.float32)])
    x = x + (10 ** (floor_db / 20) * rng.standard_normal(len(x))).astype(np.float32)
    rms = float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) or 1e-9
    x = x * (10 ** (float(rng.uniform(-34, -18)) / 20) / rms)
    aug = ""
    if rng.random() < AUG_PROB:
        aug = AUGMENTATIONS[int(rng.integers(len(AUGMENTATIONS)))]
        x = degrade(x, SR, aug, rng=rng)
    peak = float(np.max(np.abs(x), initial=0.0))
    if peak > 0.99:
        x = x * (0.99 / peak)
    return x.astype(np.float32), aug
