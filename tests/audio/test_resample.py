"""resample / StreamResampler: lengths, spectra, and streaming == whole-signal."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voxwarden.audio import StreamResampler, resample

RATES = [8000, 11025, 16000, 22050, 44100, 48000]


@pytest.mark.parametrize("sr_in", RATES)
def test_tone_frequency_and_level_survive(sr_in):
    t = np.arange(sr_in) / sr_in
    x = (0.5 * np.sin(2 * np.pi * 1000.0 * t)).astype(np.float32)
    y = resample(x, sr_in, 16000)
    assert y.dtype == np.float32 and len(y) == 16000
    spec = np.abs(np.fft.rfft(y))
    assert abs(np.argmax(spec) - 1000) <= 1
    mid = y[2000:-2000]
    assert abs(np.sqrt(np.mean(mid**2)) - 0.5 / np.sqrt(2)) < 0.01


def test_downsampling_removes_content_above_new_nyquist():
    sr = 48000
    t = np.arange(sr) / sr
    x = np.sin(2 * np.pi * 12000.0 * t).astype(np.float32)  # above 8 kHz Nyquist of 16 kHz
    y = resample(x, sr, 16000)
    assert np.sqrt(np.mean(y[1000:-1000] ** 2)) < 0.01


def test_identity_returns_copy():
    x = np.arange(10, dtype=np.float32)
    y = resample(x, 16000, 16000)
    np.testing.assert_array_equal(x, y)
    assert y is not x


def test_bad_arguments():
    with pytest.raises(ValueError):
        resample(np.zeros(10), 0, 16000)
    with pytest.raises(ValueError):
        resample(np.zeros((2, 10)), 8000, 16000)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(min_value=0, max_value=3000),
    sr_in=st.sampled_from(RATES + [7, 96000]),
    sr_out=st.sampled_from([8000, 16000, 22050]),
)
def test_length_property(n, sr_in, sr_out):
    y = resample(np.ones(n, np.float32), sr_in, sr_out)
    assert len(y) == math.ceil(n * sr_out / sr_in)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(min_value=0, max_value=20000),
    sr_in=st.sampled_from(RATES),
    blocks=st.lists(st.integers(min_value=1, max_value=5000), min_size=1, max_size=20),
    block=st.sampled_from([None, 1, 300]),
    seed=st.integers(0, 2**16),
)
def test_stream_equals_whole(n, sr_in, blocks, block, seed):
    x = np.random.default_rng(seed).standard_normal(n).astype(np.float32)
    whole = resample(x, sr_in, 16000)
    r = StreamResampler(sr_in, 16000, block=block)
    parts, i, k = [], 0, 0
    while i < n:
        step = blocks[k % len(blocks)]
        parts.append(r.push(x[i : i + step]))
        i += step
        k += 1
    parts.append(r.flush())
    y = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    assert len(y) == len(whole)
    np.testing.assert_allclose(y, whole, atol=1e-6)


def test_hostile_prime_rate_is_approximated_not_huge():
    """A header claiming a prime rate must not make us design a 15M-tap filter."""
    x = np.random.default_rng(0).standard_normal(767_999).astype(np.float32)
    y = resample(x, 767_999, 16000)
    assert abs(len(y) - 16000) <= 1
    r = StreamResampler(767_999, 16000)
    assert r.down <= 10000
    z = np.concatenate([r.push(x[:300_000]), r.push(x[300_000:]), r.flush()])
    np.testing.assert_allclose(z, y, atol=1e-6)
