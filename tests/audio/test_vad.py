"""Silero VAD via onnxruntime: finds espeak-ng speech, not noise or silence; speech checks."""

from __future__ import annotations

import numpy as np
import pytest

from voxwarden import audio
from voxwarden.audio import vad


def _speech_seconds(regions: list[tuple[float, float]]) -> float:
    return sum(b - a for a, b in regions)


def test_finds_speech_between_silences(speech16k):
    regions = audio.speech_regions(speech16k, 16000)
    dur = len(speech16k) / 16000
    assert regions, "no speech found in espeak-ng speech"
    assert regions[0][0] > 0.6 and regions[-1][1] < dur - 0.6  # 1 s of silence each side
    assert _speech_seconds(regions) > 0.6 * (dur - 2.0)
    assert all(b > a for a, b in regions)
    assert all(r1[1] < r2[0] for r1, r2 in zip(regions, regions[1:], strict=False))


def test_no_speech_in_noise_silence_or_tone():
    rng = np.random.default_rng(0)
    noise = (0.1 * rng.standard_normal(3 * 16000)).astype(np.float32)
    assert audio.speech_regions(noise) == []
    assert audio.speech_regions(np.zeros(3 * 16000, np.float32)) == []
    assert audio.speech_regions(np.zeros(0, np.float32)) == []


def test_other_input_rates(speech16k):
    x8 = audio.resample(speech16k, 16000, 8000)
    r16 = audio.speech_regions(speech16k, 16000)
    r8 = audio.speech_regions(x8, 8000)
    assert r8 and abs(_speech_seconds(r8) - _speech_seconds(r16)) < 0.5


def test_probs_shape_and_range(speech16k):
    p = audio.speech_probs(speech16k)
    assert p.shape == (-(-len(speech16k) // 512),)
    assert p.dtype == np.float32 and p.min() >= 0 and p.max() <= 1
    assert p[:20].max() < 0.5 and p.max() > 0.9  # leading second is silence


def test_stream_in_pieces_equals_whole_clip(speech16k):
    """A live stream fed in odd-sized pieces gets exactly the probabilities of a file scan."""
    rng = np.random.default_rng(3)
    x = np.concatenate([speech16k] * 3)  # ~18 s: more than one model block
    whole = audio.speech_probs(x)
    stream = vad.VadStream()
    parts, i = [], 0
    while i < x.size:
        k = int(rng.integers(1, 9000))
        parts.append(stream.push(x[i : i + k]))
        i += k
    parts.append(stream.flush())
    got = np.concatenate(parts)
    assert got.shape == whole.shape and stream.frames == whole.size
    np.testing.assert_allclose(got, whole, atol=1e-5)
    assert stream.push(np.zeros(100, np.float32)).size == 0  # under one chunk: nothing yet


def test_postprocessing_rules():
    fs = vad.FRAME_SECONDS
    p = np.zeros(200, np.float32)
    p[10:40] = 0.9  # ~0.96 s speech
    p[42:60] = 0.9  # after a 64 ms pause: bridged (< min_silence)
    p[100:104] = 0.9  # 128 ms: dropped (< min_speech)
    p[150:170] = 0.9
    regs = vad.regions_from_probs(p, 200 * fs, pad=0.0)
    assert len(regs) == 2
    assert regs[0] == pytest.approx((10 * fs, 60 * fs), abs=1e-3)
    assert regs[1] == pytest.approx((150 * fs, 170 * fs), abs=1e-3)
    padded = vad.regions_from_probs(p, 200 * fs, pad=0.05)
    assert padded[0][0] == pytest.approx(10 * fs - 0.05, abs=1e-3)


def test_session_is_created_once():
    assert vad._get_session() is vad._get_session()


def test_check_speech_errors(speech16k):
    silent = audio.Clip(np.zeros(16000, np.float32), 16000)
    with pytest.raises(audio.SilenceError):
        audio.check_speech(silent, [])
    dither = audio.Clip((1e-5 * np.random.default_rng(0).standard_normal(16000)).astype(np.float32), 16000)
    with pytest.raises(audio.SilenceError, match="dBFS"):
        audio.check_speech(dither, [(0.0, 1.0)])
    noise = audio.Clip((0.1 * np.random.default_rng(0).standard_normal(32000)).astype(np.float32), 16000)
    with pytest.raises(audio.TooLittleSpeechError):
        audio.check_speech(noise, audio.speech_regions(noise.samples))
    clip = audio.Clip(speech16k, 16000)
    audio.check_speech(clip, audio.speech_regions(speech16k))  # enough speech: no error
    with pytest.raises(audio.TooLittleSpeechError, match="need 60 s"):
        audio.check_speech(clip, audio.speech_regions(speech16k), min_speech=60)


def test_too_little_speech_in_short_word(espeak):
    x, sr = espeak("a")
    y = np.concatenate([np.zeros(sr, np.float32), x[: int(0.3 * sr)], np.zeros(sr, np.float32)])
    clip = audio.Clip(y, sr)
    with pytest.raises(audio.TooLittleSpeechError):
        audio.check_speech(clip, audio.speech_regions(y, sr), min_speech=0.5)


def test_end_to_end_file(tmp_path, mk, speech16k):
    p = mk.encode_audio(tmp_path / "s.mp3", speech16k, 16000, "libmp3lame")
    clip = audio.load(p)
    regions = audio.speech_regions(clip.samples, clip.sr)
    audio.check_speech(clip, regions)
    ws = audio.windows(clip.samples, clip.sr, regions)
    assert ws and ws[0].start >= regions[0][0] - 1e-6 and ws[-1].end <= regions[-1][1] + 1e-3


def test_vendored_model_matches_its_recorded_digest():
    import hashlib
    from importlib import resources

    data_dir = resources.files("voxwarden.audio").joinpath("data")
    model = data_dir.joinpath(vad.MODEL_FILE).read_bytes()
    assert hashlib.sha256(model).hexdigest() == vad.MODEL_SHA256
    readme = data_dir.joinpath("README.md").read_text()
    assert vad.MODEL_SHA256 in readme and vad.MODEL_FILE in readme
    assert "MIT License" in data_dir.joinpath("LICENSE-silero-vad").read_text()
