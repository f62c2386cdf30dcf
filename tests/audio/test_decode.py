"""audio.load: every supported format decodes with its metadata; every bad input gets its typed error."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voxwarden import audio
from voxwarden.audio import decode

# ext, container format, encoder, rate, channels, encoder options, substring of SourceInfo.container
FORMATS = [
    ("wav", None, "pcm_s16le", 44100, 2, {}, "wav", "pcm_s16le"),
    ("flac", None, "flac", 16000, 1, {}, "flac", "flac"),
    ("mp3", None, "libmp3lame", 44100, 2, {}, "mp3", "mp3"),
    ("m4a", "mp4", "aac", 48000, 2, {}, "mp4", "aac"),
    ("aac", "adts", "aac", 22050, 1, {}, "aac", "aac"),
    ("ogg", "ogg", "vorbis", 44100, 2, {"strict": "experimental"}, "ogg", "vorbis"),
    ("opus", "ogg", "libopus", 48000, 1, {}, "ogg", "opus"),
    ("amr", "amr", "libopencore_amrnb", 8000, 1, {}, "amr", "amr_nb"),
    ("webm", "webm", "libopus", 48000, 2, {}, "webm", "opus"),
]


def _dominant_hz(x: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spec) * sr / len(x))


@pytest.mark.parametrize("ext,fmt,codec,sr,ch,opts,cont,cname", FORMATS, ids=[f[0] for f in FORMATS])
def test_formats_decode_with_metadata(tmp_path, mk, ext, fmt, codec, sr, ch, opts, cont, cname):
    x = mk.tone(440.0, 1.5, sr, amp=0.5)
    if ch == 2:
        x = np.stack([x, 0.5 * x], axis=1)
    path = mk.encode_audio(
        tmp_path / f"tone.{ext}", x, sr, codec, fmt, options=opts, bit_rate=12200 if "amr" in codec else None
    )
    clip = audio.load(path)
    assert clip.sr == 16000
    assert clip.samples.dtype == np.float32 and clip.samples.ndim == 1
    assert abs(clip.duration - 1.5) < 0.1
    assert np.max(np.abs(clip.samples)) <= 1.0
    assert abs(_dominant_hz(clip.samples, 16000) - 440.0) < 5.0
    src = clip.source
    assert src.path == str(path)
    assert src.sample_rate == sr and src.channels == ch
    assert cont in (src.container or "") and src.codec == cname
    assert abs(src.duration - 1.5) < 0.1
    assert src.decode_errors == 0 and src.warnings == ()


def test_stereo_44k_wav_is_channel_mean_and_resampled(tmp_path, mk):
    left = mk.tone(1000.0, 1.0, 44100, amp=0.4)
    right = mk.tone(300.0, 1.0, 44100, amp=0.2)
    path = mk.encode_audio(tmp_path / "st.wav", np.stack([left, right], 1), 44100, "pcm_f32le")
    clip = audio.load(path)
    assert len(clip.samples) == 16000
    expected = audio.resample((left + right) / 2, 44100, 16000)
    np.testing.assert_allclose(clip.samples, expected, atol=1e-5)


def test_opposite_channels_cancel(tmp_path, mk):
    x = mk.tone(440.0, 0.5, 16000)
    path = mk.encode_audio(tmp_path / "anti.flac", np.stack([x, -x], 1), 16000, "flac")
    assert np.max(np.abs(audio.load(path).samples)) < 1e-3


def test_other_target_rate_and_bytes_input(tmp_path, mk):
    path = mk.encode_audio(tmp_path / "a.flac", mk.tone(440.0, 1.0, 44100), 44100, "flac")
    from_path = audio.load(path, sr=8000)
    from_bytes = audio.load(path.read_bytes(), sr=8000)
    assert from_path.sr == 8000 and len(from_path.samples) == 8000
    np.testing.assert_array_equal(from_path.samples, from_bytes.samples)
    assert from_bytes.source.path is None and from_bytes.source.sample_rate == 44100


@pytest.mark.parametrize("ext", ["mp4", "mkv", "mov"])
def test_video_audio_track(tmp_path, mk, ext):
    path = mk.encode_audio(tmp_path / f"v.{ext}", mk.tone(440.0, 1.5, 44100), 44100, "aac", video=True)
    clip = audio.load(path)
    assert abs(clip.duration - 1.5) < 0.1
    assert abs(_dominant_hz(clip.samples, 16000) - 440.0) < 5.0
    assert clip.source.codec == "aac" and clip.source.sample_rate == 44100


@pytest.mark.parametrize("ext", ["mp4", "mkv"])
def test_video_without_audio(tmp_path, mk, ext):
    path = mk.encode_video_only(tmp_path / f"silent_film.{ext}")
    with pytest.raises(audio.NoAudioStreamError, match="silent_film"):
        audio.load(path)


def test_decodes_espeak_speech(tmp_path, mk, espeak):
    x, sr = espeak("Hello world")
    path = mk.write_wav(tmp_path / "hello.wav", x, sr)
    clip = audio.load(path)
    assert clip.source.sample_rate == sr
    assert abs(clip.duration - len(x) / sr) < 1e-3
    assert np.sqrt(np.mean(clip.samples**2)) > 0.01


# ---------------------------------------------------------------- bad inputs


def test_zero_length_file(tmp_path):
    p = tmp_path / "empty.wav"
    p.write_bytes(b"")
    with pytest.raises(audio.EmptyFileError, match="empty.wav"):
        audio.load(p)
    with pytest.raises(audio.EmptyFileError):
        audio.load(b"")


def test_wav_without_samples(tmp_path, mk):
    p = mk.write_wav(tmp_path / "nosamples.wav", np.zeros(0, np.float32), 16000)
    with pytest.raises(audio.EmptyFileError, match="no audio samples"):
        audio.load(p)


def _png_bytes() -> bytes:
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    raw = b"".join(b"\x00" + b"\x80\x40\x20" * 8 for _ in range(8))
    ihdr = struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 0)
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


@pytest.mark.parametrize(
    "name,data",
    [
        ("notes.txt", b"This is a plain text file, not audio.\n" * 20),
        ("picture.png", _png_bytes()),
        ("script.sh", b"#!/bin/sh\necho hello\n"),
    ],
)
def test_not_media(tmp_path, name, data):
    p = tmp_path / name
    p.write_bytes(data)
    with pytest.raises(audio.NotMediaError, match=name.replace(".", r"\.")):
        audio.load(p)


def test_corrupt_flac_body(tmp_path, mk):
    p = mk.encode_audio(tmp_path / "c.flac", mk.tone(440.0, 2.0, 16000), 16000, "flac")
    data = bytearray(p.read_bytes())
    rng = np.random.default_rng(0)
    data[200:] = rng.integers(0, 256, len(data) - 200, dtype=np.uint8).tobytes()
    p.write_bytes(bytes(data))
    with pytest.raises(audio.CorruptMediaError, match="c.flac"):
        audio.load(p)


def test_damaged_mp4_header_is_corrupt_not_notmedia(tmp_path, mk):
    p = mk.encode_audio(tmp_path / "d.m4a", mk.tone(440.0, 1.0, 48000), 48000, "aac", "mp4")
    data = bytearray(p.read_bytes())
    data[40:] = bytes(len(data) - 40)  # keep 'ftyp', zero everything after
    p.write_bytes(bytes(data))
    with pytest.raises(audio.CorruptMediaError):
        audio.load(p)


def test_badly_truncated_flac_is_corrupt(tmp_path, mk):
    p = mk.encode_audio(tmp_path / "t.flac", mk.tone(440.0, 4.0, 16000, amp=0.3), 16000, "flac")
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 5])
    with pytest.raises(audio.CorruptMediaError, match="truncated"):
        audio.load(p)


def test_slightly_truncated_flac_keeps_what_decodes(tmp_path, mk):
    p = mk.encode_audio(tmp_path / "t.flac", mk.tone(440.0, 4.0, 16000, amp=0.3), 16000, "flac")
    data = p.read_bytes()
    p.write_bytes(data[: int(len(data) * 0.8)])
    clip = audio.load(p)
    assert 2.0 < clip.duration < 3.9
    assert any("truncated" in w for w in clip.source.warnings)


def test_too_long_from_metadata(tmp_path, mk):
    p = mk.encode_audio(tmp_path / "long.flac", mk.tone(440.0, 3.0, 16000), 16000, "flac")
    with pytest.raises(audio.TooLongError, match="3.0 s long"):
        audio.load(p, max_duration=2.0)
    assert abs(audio.load(p, max_duration=None).duration - 3.0) < 1e-6


def test_too_long_enforced_while_decoding(tmp_path, mk, monkeypatch):
    """A file whose container declares no length is still stopped once the decoded audio passes the limit."""
    p = mk.encode_audio(tmp_path / "long.flac", mk.tone(440.0, 3.0, 16000), 16000, "flac")
    monkeypatch.setattr(decode, "_declared_duration", lambda c, s: None)
    with pytest.raises(audio.TooLongError, match="stopped decoding"):
        audio.load(p, max_duration=1.0)


def test_missing_path_directory_and_dangling_symlink(tmp_path):
    with pytest.raises(audio.UnreadableError, match="no such file"):
        audio.load(tmp_path / "missing.wav")
    with pytest.raises(audio.UnreadableError, match="directory"):
        audio.load(tmp_path)
    link = tmp_path / "dangling.wav"
    link.symlink_to(tmp_path / "nowhere.wav")
    with pytest.raises(audio.UnreadableError, match="dangling"):
        audio.load(link)


def test_symlink_loop_file(tmp_path):
    a, b = tmp_path / "a.wav", tmp_path / "b.wav"
    a.symlink_to(b)
    b.symlink_to(a)
    with pytest.raises(audio.UnreadableError, match="a.wav"):
        audio.load(a)


def test_fifo_is_rejected_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    with pytest.raises(audio.UnreadableError, match="FIFO"):
        audio.load(fifo)


def test_permission_denied(open_tmp, mk, as_nobody):
    p = mk.write_wav(open_tmp / "secret.wav", mk.tone(440.0, 0.5, 16000), 16000)
    p.chmod(0)
    hidden = open_tmp / "private"
    hidden.mkdir(mode=0o700)
    q = mk.write_wav(hidden / "inner.wav", mk.tone(440.0, 0.5, 16000), 16000)

    def attempt() -> str:
        out = []
        for path in (p, q):
            try:
                audio.load(path)
                out.append("loaded")
            except audio.AudioError as e:
                out.append(f"{type(e).__name__}: {e}")
        return "\n".join(out)

    lines = as_nobody(attempt).splitlines()
    assert lines[0] == f"UnreadableError: {p}: permission denied"
    assert lines[1] == f"UnreadableError: {q}: permission denied"


def test_bad_arguments():
    with pytest.raises(TypeError):
        audio.load(123)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        audio.load(b"x", sr=0)


def test_fuzzed_inputs_only_raise_audio_errors(tmp_path, mk):
    """Bit flips and truncations of real files either decode or raise an AudioError: nothing else."""
    rng = np.random.default_rng(1)
    x = mk.tone(440.0, 1.0, 16000, amp=0.3)
    sources = [
        mk.encode_audio(tmp_path / "f.flac", x, 16000, "flac"),
        mk.encode_audio(tmp_path / "f.mp3", x, 16000, "libmp3lame"),
        mk.encode_audio(tmp_path / "f.ogg", x, 48000, "libopus", "ogg"),
        mk.encode_audio(tmp_path / "f.m4a", x, 16000, "aac", "mp4"),
    ]
    outcomes = set()
    for src in sources:
        data = src.read_bytes()
        for k in range(6):
            d = bytearray(data)
            if k % 2:
                d = d[: int(rng.integers(1, len(d)))]
            else:
                pos = rng.integers(0, len(d), size=max(1, len(d) // 50))
                d_arr = np.frombuffer(bytes(d), dtype=np.uint8).copy()
                d_arr[pos] ^= rng.integers(1, 256, size=pos.size, dtype=np.uint8)
                d = bytearray(d_arr.tobytes())
            try:
                clip = audio.load(bytes(d))
                assert np.isfinite(clip.samples).all()
                outcomes.add("ok")
            except audio.AudioError as e:
                assert str(e)
                outcomes.add(type(e).__name__)
    assert outcomes  # ran


@settings(max_examples=30, deadline=None)
@given(
    data=st.one_of(
        st.binary(min_size=1, max_size=4000),
        st.sampled_from([b"RIFF", b"OggS", b"fLaC", b"ID3", b"\x1aE\xdf\xa3", b"#!AMR\n"]).flatmap(
            lambda magic: st.binary(min_size=0, max_size=3000).map(lambda rest: magic + rest)
        ),
    )
)
def test_random_bytes_never_escape_as_other_errors(data):
    try:
        clip = audio.load(data)
    except audio.AudioError as e:
        assert str(e).startswith(f"<{len(data)} bytes>")
    else:
        assert clip.samples.dtype == np.float32 and np.isfinite(clip.samples).all()


def test_error_message_names_the_file(tmp_path):
    p = tmp_path / "named_input.mp3"
    p.write_bytes(b"\x00" * 100)
    with pytest.raises(audio.AudioError) as ei:
        audio.load(Path(p))
    assert "named_input.mp3" in str(ei.value)
    assert ei.value.to_dict()["type"] in {"not_media", "corrupt_media"}
