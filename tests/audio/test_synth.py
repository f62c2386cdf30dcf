import numpy as np

from voxwarden.audio.synth import speech_like


def test_speech_like_is_deterministic_speech_band_audio() -> None:
    a = speech_like(2.0, 16000, seed=3)
    assert a.dtype == np.float32 and a.shape == (32000,)
    assert np.array_equal(a, speech_like(2.0, 16000, seed=3))
    assert not np.array_equal(a, speech_like(2.0, 16000, seed=4))
    assert abs(float(np.max(np.abs(a))) - 0.3) < 1e-6
    spec = np.abs(np.fft.rfft(a)) ** 2
    f = np.fft.rfftfreq(a.size, 1 / 16000)
    assert spec[(f > 80) & (f < 4000)].sum() > 0.6 * spec.sum()  # most energy where speech has it (white: 0.49)
    quiet = np.abs(a.reshape(-1, 160)).max(axis=1) < 1e-3  # pauses between syllables
    assert 0.02 < quiet.mean() < 0.6


def test_noise_floor_fills_the_pauses() -> None:
    a = speech_like(1.0, 8000, seed=0, noise_floor=1e-3)
    assert np.abs(a.reshape(-1, 80)).max(axis=1).min() > 0
