"""recipes/corpus/paired_spectra.py: the per-band figures of a copy against its original."""

from __future__ import annotations

import numpy as np
from tests._recipes import load_recipe

ps = load_recipe("corpus/paired_spectra")


def _speechlike(seed: int = 0, n: int = 32000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    env = 0.2 + np.abs(np.sin(np.linspace(0, 12 * np.pi, n)))  # syllable-like level changes
    return (rng.standard_normal(n) * env).astype(np.float32)


def test_a_copy_equal_to_its_original_changes_nothing() -> None:
    x = _speechlike()
    dev, gain = ps.band_figures(x, x.copy())
    assert np.allclose(dev, 0.0, atol=1e-6) and np.allclose(gain, 0.0, atol=1e-6)


def test_a_brighter_copy_shows_its_tilt_in_the_high_bands_only() -> None:
    x = _speechlike(1)
    spec = np.fft.rfft(x)
    f = np.fft.rfftfreq(len(x), 1 / 16000)
    y = np.fft.irfft(spec * np.where(f >= 4000, 10 ** (6 / 20), 1.0), len(x)).astype(np.float32)
    dev, gain = ps.band_figures(x, y)
    assert len(gain) == len(ps.EDGES) - 1
    assert all(abs(g) < 0.5 for g in gain[:4])  # 0-3 kHz: unchanged
    assert all(5.0 < g < 7.0 for g in gain[6:])  # 5-8 kHz: +6 dB
    assert dev[7] > 5.0 > dev[1]


def test_unreadable_and_short_files_are_skipped_with_a_message(tmp_path, capsys) -> None:
    import pytest
    import soundfile as sf

    good, bad, short = tmp_path / "good.wav", tmp_path / "bad.wav", tmp_path / "short.wav"
    sf.write(good, _speechlike(2, 64000) * 0.1, 16000)
    bad.write_bytes(b"RIFF not really audio")
    sf.write(short, _speechlike(3, 1000) * 0.1, 16000)
    clips = ps.read_clips([good, bad, short])
    assert len(clips) == 1 and len(clips[0]) == 48000  # the first 3 s
    err = capsys.readouterr().err
    assert "skipped" in err and "bad.wav" in err and "short.wav" in err
    with pytest.raises(SystemExit, match="no readable clip"):
        ps.read_clips([bad])
