"""Embedding is pinned to the format-3 mark: speed work on `Marker.embed` must not change its output.

The references were computed with the embedder as it was before the embed speed work (issue 4, 2026-11-26):
the mark w = y - x of fixed clips, quantised to 1e-6 (far above float64 rounding, which the faster code may
change, and far below any change of the mark), as a digest, plus w's energy and a few samples for a readable
failure. A mark change (other layout, dither, ECC, gains, iterations, resampling filter) fails them.
They were re-pinned once, on purpose, when the embedder gained its budgeted allocation (session 5).
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from voxwarden.mark import Marker
from voxwarden.mark import watermark as wm

KEY = bytes(range(7, 39))
PAYLOAD = b"\x5a\x17\xc3\x08"

#: name: (rate, seconds, channels, dtype)
CLIPS = {
    "16k_mono_f32": (16000, 3.0, 1, np.float32),
    "48k_mono_f32": (48000, 2.0, 1, np.float32),
    "44k1_stereo_f64": (44100, 2.0, 2, np.float64),
    "8k_mono_i16": (8000, 2.5, 1, np.int16),
}

#: name: (digest of round(w * 1e6), sum of w^2, w at SAMPLE_AT of the clip's length); from the original code,
#: re-pinned when the embedder gained its budgeted allocation (session 5: an intended change of the mark)
REFERENCE: dict[str, tuple[str, float, list[float]]] = {
    "16k_mono_f32": (
        "034c862e90294c14db287ef0", 0.403706997025326,
        [0.0030609220266342163, 2.65585258603096e-05, 3.962032496929169e-05, 0.0019813477993011475,
         0.0014196783304214478, -0.0018858686089515686, 9.208079427480698e-05, 0.0003557233139872551],
    ),
    "48k_mono_f32": (
        "0291be0d3b2b58036a4b8dc2", 0.756484516655,
        [0.002807021141052246, -0.0014652609825134277, -0.00015570968389511108, 4.95249405503273e-05,
         0.0002631712704896927, -0.0050199925899505615, -0.001708298921585083, -6.6533684730529785e-06],
    ),
    "44k1_stereo_f64": (
        "dca24061bc64a5fbd881c8fd", 0.48307763975940454,
        [0.00469548410601861, -0.001203269395977813, -0.0002577334826404385, 5.9743333788546404e-05,
         0.00030045242306657796, -0.00237891374182736, 0.00031614784650885186, 8.991047124669782e-05],
    ),
    "8k_mono_i16": (
        "814e8e3357e636725669115b", 0.1572593068704009,
        [-0.001251220703125, 0.000274658203125, 9.1552734375e-05, 0.0028076171875,
         0.000335693359375, -0.002227783203125, -0.0052490234375, 0.014434814453125],
    ),
}

SAMPLE_AT = np.linspace(0.05, 0.95, 8)


def clip(sr: int, seconds: float, channels: int, dtype: type) -> np.ndarray:
    """A fixed speech-like clip: a gliding 120-220 Hz harmonic voice with syllable envelopes, plus noise."""
    n = int(seconds * sr)
    t = np.arange(n) / sr
    rng = np.random.default_rng(20261126)
    f0 = 170.0 + 50.0 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    voice = sum(np.sin(k * phase) / k for k in range(1, 20) if k * 220.0 < min(sr / 2, 4000.0))
    env = np.clip(np.sin(2 * np.pi * 3.1 * t), 0.0, None) ** 0.5
    x = 0.3 * env * voice + 0.01 * rng.standard_normal(n)
    x = 0.5 * x / np.max(np.abs(x))
    if channels == 2:
        x = np.stack([x, 0.7 * x + 0.005 * rng.standard_normal(n)], axis=1)
    if dtype is np.int16:
        return np.round(x * 32767).astype(np.int16)
    return x.astype(dtype)


def fingerprint(x: np.ndarray, y: np.ndarray) -> tuple[str, float, list[float]]:
    """(digest, energy, samples) of the mark w = y - x (channel 0; int16 as full scale 1)."""
    scale = 1.0 / 32768.0 if x.dtype == np.int16 else 1.0
    w = (y.astype(np.float64) - x.astype(np.float64)) * scale
    if w.ndim == 2:
        w = w[:, 0]
    q = np.round(w * 1e6).astype(np.int64)
    digest = hashlib.sha256(q.tobytes()).hexdigest()[:24]
    at = (SAMPLE_AT * (len(w) - 1)).astype(np.int64)
    return digest, float(np.sum(w**2)), [float(v) for v in w[at]]


def marked(name: str) -> tuple[np.ndarray, np.ndarray]:
    x = clip(*CLIPS[name])
    return x, Marker(KEY).embed(x, CLIPS[name][0], PAYLOAD)


@pytest.mark.parametrize("name", list(CLIPS))
def test_embed_output_equals_the_reference(name: str) -> None:
    x, y = marked(name)
    assert y.shape == x.shape and y.dtype == x.dtype
    digest, energy, samples = fingerprint(x, y)
    ref_digest, ref_energy, ref_samples = REFERENCE[name]
    np.testing.assert_allclose(samples, ref_samples, rtol=0, atol=1e-7 if x.dtype != np.int16 else 2.0 / 32768)
    assert energy == pytest.approx(ref_energy, rel=1e-6)
    assert digest == ref_digest


def test_the_reference_catches_a_changed_mark(monkeypatch: pytest.MonkeyPatch) -> None:
    # one embedding pass fewer moves the mark by far less than a quantiser step; the digest must still see it
    monkeypatch.setattr(wm, "EMBED_ITERS", wm.EMBED_ITERS - 1)
    x, y = marked("16k_mono_f32")
    assert fingerprint(x, y)[0] != REFERENCE["16k_mono_f32"][0]


# ---- the faster forms against the plain ones they replace ------------------------------------------------


@pytest.mark.parametrize(
    ("sr_from", "sr_to", "wide"),
    [(16000, 8000, False), (8000, 16000, False), (48000, 16000, True), (16000, 48000, True), (24000, 8000, False),
     (8000, 32000, False), (44100, 16000, True)],
)
def test_poly_equals_resample_poly(sr_from: int, sr_to: int, wide: bool) -> None:
    from scipy.signal import resample_poly

    up, down, h = wm._fir_for(sr_from, sr_to, wide)
    rng = np.random.default_rng(sr_from + sr_to)
    for n in (1, 2, 5, 31, 61, 1000, 16001):
        x = rng.standard_normal(n)
        ref = resample_poly(x, up, down, window=h.copy())
        got = wm._poly(x, sr_from, sr_to, wide)
        assert got.shape == ref.shape
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-13)


def test_band_energies_and_tiles_equal_the_plain_forms_bit_for_bit() -> None:
    x = clip(8000, 2.3, 1, np.float64)
    spec = wm._stft(x)
    sub = spec[:, wm.BIN0 : wm.BIN0 + wm.N_BANDS * wm.BAND_BINS]
    re, im = sub.real.astype(np.float64), sub.imag.astype(np.float64)
    plain = (re * re + im * im).reshape(-1, wm.N_BANDS, wm.BAND_BINS).sum(axis=2)
    be = wm._band_energies(spec)
    assert np.array_equal(be, plain)
    cum = np.concatenate([np.zeros((1, wm.N_BANDS)), np.cumsum(plain, axis=0)])
    t = np.arange(int(((len(plain) - 1.5) * wm.HOP) // wm.SLOT))
    lo, hi = t * wm.HOPS_PER_SLOT + 2, t * wm.HOPS_PER_SLOT + 7  # frames 8t+2 .. 8t+6: windows inside slot t
    assert np.array_equal(wm._tiles(be), cum[hi] - cum[lo])


@pytest.mark.parametrize("n", [1, 2, 3, 6, 7, 11, 16, 42, 93, 312])
def test_percentile90_exact_equals_numpy_bit_for_bit(n: int) -> None:
    a = np.random.default_rng(n).normal(0, 10, (3, n))
    assert np.array_equal(wm._percentile90_exact(a), np.percentile(a, 90, axis=1))
