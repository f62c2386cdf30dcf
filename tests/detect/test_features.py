"""LFCC front end: shapes, the baseline recipe re-computed naively for one frame, deltas, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from voxwarden.detect.features import LfccConfig, deltas, lfcc, linear_filterbank, log_power_spectrogram


def _tone(f: float, sec: float = 1.0, sr: int = 16000) -> np.ndarray:
    t = np.arange(int(sec * sr)) / sr
    return (0.5 * np.sin(2 * np.pi * f * t)).astype(np.float32)


def test_shape_and_dtype() -> None:
    x = _tone(440.0)
    f = lfcc(x)
    # complete 320-sample frames every 160 samples: (16000 - 320) // 160 + 1 = 99
    assert f.shape == (99, 60)
    assert f.dtype == np.float32
    assert np.all(np.isfinite(f))
    assert lfcc(x, LfccConfig(deltas=False)).shape == (99, 20)


def test_short_input_gives_no_frames() -> None:
    assert lfcc(np.zeros(100, dtype=np.float32)).shape == (0, 60)
    assert lfcc(np.zeros(0, dtype=np.float32)).shape == (0, 60)


def test_filterbank_triangles() -> None:
    fb = linear_filterbank(16000, 512, 20)
    assert fb.shape == (257, 20)
    assert np.all(fb >= 0) and fb.max() <= 1.0 + 1e-12
    # each filter peaks at its centre edge (k+1) * 8000/21 Hz; bins are 31.25 Hz apart
    peaks = np.argmax(fb, axis=0) * 8000 / 256
    centres = np.arange(1, 21) * 8000 / 21
    assert np.all(np.abs(peaks - centres) <= 31.25)


def test_matches_naive_baseline_for_one_frame() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(0, 0.1, 640)
    # naive MATLAB-style recipe, frame index 1 (samples 160..480)
    y = np.concatenate([[x[0]], x[1:] - 0.97 * x[:-1]])
    n = np.arange(320)
    w = 0.54 - 0.46 * np.cos(2 * np.pi * n / 319)
    frame = y[160:480] * w
    spec = np.abs(np.fft.fft(frame, 512))[:257] ** 2
    f = np.linspace(0, 8000, 257)
    edges = np.linspace(0, 8000, 22)
    fb = np.zeros((257, 20))
    for i in range(20):
        a, b, c = edges[i], edges[i + 1], edges[i + 2]
        for j, fj in enumerate(f):
            if a <= fj <= b:
                fb[j, i] = (fj - a) / (b - a)
            elif b < fj <= c:
                fb[j, i] = (c - fj) / (c - b)
    logE = np.log10(spec @ fb + np.finfo(float).eps)
    k = np.arange(20)[:, None]
    m = np.arange(20)[None, :]
    basis = np.sqrt(2 / 20) * np.cos(np.pi * k * (2 * m + 1) / 40)
    basis[0] /= np.sqrt(2)
    ref = basis @ logE
    got = lfcc(x.astype(np.float64))[1, :20]
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)


def test_deltas_of_ramp() -> None:
    ramp = np.arange(10, dtype=np.float64)[:, None] * np.ones((1, 3))
    d = deltas(ramp)
    # interior: c[t+1] - c[t-1] = 2; edges repeated: 1
    np.testing.assert_allclose(d[1:-1], 2.0)
    np.testing.assert_allclose(d[0], 1.0)
    np.testing.assert_allclose(d[-1], 1.0)


def test_tone_frequency_changes_features() -> None:
    a, b = lfcc(_tone(300.0)), lfcc(_tone(5000.0))
    assert np.abs(a[:, :20].mean(0) - b[:, :20].mean(0)).max() > 1.0


def test_log_power_spectrogram_peak() -> None:
    s = log_power_spectrogram(_tone(1000.0))
    assert s.shape == (99, 257)
    assert abs(int(np.median(np.argmax(s, axis=1))) - 32) <= 1  # 1000 Hz / 31.25 Hz per bin


@pytest.mark.parametrize("bad", [np.zeros((10, 2)), np.array([0.0, np.nan] * 400)])
def test_bad_input_raises(bad: np.ndarray) -> None:
    with pytest.raises(ValueError):
        lfcc(bad)


def test_bad_config_raises() -> None:
    with pytest.raises(ValueError):
        LfccConfig.from_dict({"n_fft": 128})
    with pytest.raises(ValueError):
        LfccConfig.from_dict({"n_coefs": 30})
    assert LfccConfig.from_dict({"n_coefs": 19, "junk": 1}).n_coefs == 19


def test_defaults_are_the_plain_cepstra() -> None:
    from voxwarden.detect.features import lfcc_cepstra, lfcc_finish

    x = np.random.default_rng(3).normal(0, 0.1, 8000).astype(np.float32)
    full = lfcc_cepstra(x)
    assert lfcc_finish(full) is full  # the baseline recipe passes through untouched
    np.testing.assert_array_equal(lfcc(x), full)


def test_dynamic_only_drops_the_statics() -> None:
    x = np.random.default_rng(4).normal(0, 0.1, 8000).astype(np.float32)
    cfg = LfccConfig(statics=False)
    assert cfg.dim == 40
    f = lfcc(x, cfg)
    assert f.shape == (lfcc(x).shape[0], 40)
    np.testing.assert_array_equal(f, lfcc(x)[:, 20:])


def test_cms_centres_the_statics_only() -> None:
    x = _tone(300.0) + np.random.default_rng(5).normal(0, 0.05, 16000).astype(np.float32)
    plain, cms = lfcc(x), lfcc(x, LfccConfig(cms=True))
    assert np.abs(cms[:, :20].mean(axis=0)).max() < 1e-4
    assert np.abs(plain[:, :20].mean(axis=0)).max() > 0.1
    np.testing.assert_array_equal(cms[:, 20:], plain[:, 20:])
    # a gain change shifts c0 only, so mean subtraction removes it
    louder = lfcc(x * 4.0, LfccConfig(cms=True))
    np.testing.assert_allclose(louder[:, :20], cms[:, :20], atol=2e-3)


def test_sub_band_filterbank() -> None:
    cfg = LfccConfig(f_min=4000.0)
    assert cfg.band == (4000.0, 8000.0)
    fb = linear_filterbank(16000, 512, 20, 4000.0, None)
    freqs = np.linspace(0, 8000, 257)
    assert fb[freqs < 4000].max() == 0.0 and fb[freqs > 4100].max() > 0.5
    # a 1 kHz tone and a 6 kHz tone: only the second shows in the high band
    low, high = lfcc(_tone(1000.0), cfg), lfcc(_tone(6000.0), cfg)
    assert high[:, 0].mean() > low[:, 0].mean() + 5  # c0 in log10 units x sqrt(20): ~25 dB apart
    assert LfccConfig(f_max=4000.0).band == (0.0, 4000.0)


@pytest.mark.parametrize(
    "kw",
    [dict(statics=False, deltas=False), dict(f_min=5000.0, f_max=4000.0), dict(f_max=9000.0), dict(f_min=-1.0)],
)
def test_bad_new_fields(kw: dict) -> None:
    with pytest.raises(ValueError, match="bad LFCC config"):
        LfccConfig(**kw).validate()
