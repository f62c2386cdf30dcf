"""A deterministic speech-like signal, for self-tests and benchmarks that must not depend on recordings.

Voiced syllables (a gliding pulse train at 90–220 Hz through three formant resonators), noise bursts for
fricatives, and pauses: enough spectral and temporal structure that a watermark or codec behaves as on
speech, generated from a seed alone (no data files, same samples on every machine).
"""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter


def speech_like(seconds: float, sr: int, seed: int = 0, *, noise_floor: float = 0.0) -> np.ndarray:
    """`seconds` of speech-like float32 audio at `sr`, peak 0.3; `noise_floor` adds white noise (std) first."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    out = np.zeros(n)
    t = 0
    while t < n:
        dur = int(rng.uniform(0.12, 0.3) * sr)
        if rng.random() < 0.8:
            f0 = rng.uniform(90, 220) * np.linspace(1, rng.uniform(0.8, 1.2), dur)
            ph = np.cumsum(f0 / sr)
            seg = np.zeros(dur)
            seg[np.nonzero(np.diff(np.floor(ph), prepend=0))[0]] = 1.0
            for fc, bw in ((rng.uniform(300, 900), 80), (rng.uniform(900, 2200), 120),
                           (rng.uniform(2200, 3400), 200)):
                if fc < sr / 2 - 200:
                    r = np.exp(-np.pi * bw / sr)
                    seg = seg + 3 * lfilter([1 - r], [1, -2 * r * np.cos(2 * np.pi * fc / sr), r * r], seg)
        else:
            seg = rng.normal(0, 0.3, dur)
        out[t : t + dur] += (seg * np.sin(np.linspace(0, np.pi, dur)) ** 0.5)[: n - t]
        t += dur + int(rng.uniform(0.02, 0.15) * sr)
    if noise_floor > 0:
        out += rng.normal(0, noise_floor, n)
    return (0.3 * out / max(float(np.max(np.abs(out))), 1e-9)).astype(np.float32)
