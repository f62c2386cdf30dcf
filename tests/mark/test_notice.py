"""Explicit audible AI notice: placement, level matching, fades, rates, channels, files, CLI."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from voxwarden.audio.errors import EmptyFileError, NotMediaError, UnreadableError
from voxwarden.mark.notice import (
    NoticeError,
    active_rms,
    add_notice,
    add_notice_file,
    notice_clip,
    rhythm_prompt,
)

DATA = Path(__file__).resolve().parents[2] / "src" / "voxwarden" / "mark" / "data"


def speech_like(sr: int, seconds: float = 1.0, level: float = 0.2, seed: int = 0) -> np.ndarray:
    """Bursts of harmonic 'syllables' separated by pauses (so active level ≠ overall level)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    ph = 2 * np.pi * np.cumsum(140 + 20 * np.sin(2 * np.pi * 2 * t)) / sr
    x = sum(np.sin(k * ph) / k for k in range(1, 6))
    gate = (np.sin(2 * np.pi * 2.5 * t) > 0).astype(float)  # 50 % talk, 50 % pause
    y = x * gate + 0.001 * rng.standard_normal(len(t))
    return (level * y / np.max(np.abs(y))).astype(np.float32)


def _db(a: float, b: float) -> float:
    return 20 * np.log10(a / b)


@pytest.mark.parametrize("sr", [8000, 16000, 44100, 48000])
@pytest.mark.parametrize("style", ["voice", "rhythm"])
def test_start_placement_keeps_content_and_matches_level(sr: int, style: str) -> None:
    x = speech_like(sr, level=0.3)
    y = add_notice(x, sr, lang="en", where="start", style=style, gap=0.3)
    n = len(notice_clip(sr, lang="en", style=style))
    gap = int(round(0.3 * sr))
    assert y.dtype == np.float32 and len(y) == n + gap + len(x)
    np.testing.assert_array_equal(y[n + gap:], x)  # the content itself is untouched
    assert np.all(y[n: n + gap] == 0)
    assert abs(_db(active_rms(y[:n], sr), active_rms(x, sr))) < 1.0  # level-matched within 1 dB
    assert abs(y[0]) < 1e-3 and abs(y[n - 1]) < 1e-3  # faded in/out: no click


def test_level_follows_content() -> None:
    sr = 16000
    quiet, loud = speech_like(sr, level=0.02), speech_like(sr, level=0.5)
    nq = len(notice_clip(sr))
    lq = active_rms(add_notice(quiet, sr)[:nq], sr)
    ll = active_rms(add_notice(loud, sr)[:nq], sr)
    assert 20 < _db(ll, lq) < 35  # 0.5/0.02 = 28 dB apart, like the content


def test_silent_content_gets_default_level() -> None:
    sr = 16000
    y = add_notice(np.zeros(sr, np.float32), sr)
    n = len(notice_clip(sr))
    assert -23 < 20 * np.log10(active_rms(y[:n], sr)) < -17


def test_end_and_both() -> None:
    sr = 16000
    x = speech_like(sr)
    n = len(notice_clip(sr, lang="zh"))
    gap = int(round(0.3 * sr))
    y_end = add_notice(x, sr, lang="zh", where="end")
    np.testing.assert_array_equal(y_end[: len(x)], x)
    assert len(y_end) == len(x) + gap + n
    y_both = add_notice(x, sr, lang="zh", where="both")
    assert len(y_both) == len(x) + 2 * (gap + n)
    np.testing.assert_array_equal(y_both[n + gap: n + gap + len(x)], x)
    np.testing.assert_allclose(y_both[:n], y_both[-n:])


def test_stereo_and_int16() -> None:
    sr = 22050
    x = speech_like(sr)
    st = np.stack([x, 0.5 * x], axis=1)
    y = add_notice(st, sr, where="both")
    assert y.ndim == 2 and y.shape[1] == 2
    n = len(notice_clip(sr))
    np.testing.assert_array_equal(y[:n, 0], y[:n, 1])  # same notice in every channel
    pcm = (st * 32767).astype(np.int16)
    yi = add_notice(pcm, sr, where="start")
    assert yi.dtype == np.int16 and yi.shape[1] == 2
    np.testing.assert_array_equal(yi[-len(pcm):], pcm)


def test_languages_differ_and_are_speech_length() -> None:
    sr = 16000
    en, zh = notice_clip(sr, lang="en"), notice_clip(sr, lang="zh")
    assert 1.0 < len(en) / sr < 4.0 and 1.5 < len(zh) / sr < 5.0
    assert len(en) != len(zh)


def test_rhythm_prompt_is_the_documented_chime() -> None:
    sr = 16000
    r = rhythm_prompt(sr)
    assert np.array_equal(r, rhythm_prompt(sr))  # deterministic
    assert 1.0 < len(r) / sr < 1.5
    # the first note's spectrum peaks at A5 = 880 Hz
    note = r[: int(0.14 * sr)]
    spec = np.abs(np.fft.rfft(note * np.hanning(len(note)), 8 * len(note)))
    f = np.fft.rfftfreq(8 * len(note), 1 / sr)
    assert abs(f[np.argmax(spec)] - 880) < 15
    # 8 kHz: no partial above Nyquist, still finite and non-silent
    r8 = rhythm_prompt(8000)
    assert np.all(np.isfinite(r8)) and np.max(np.abs(r8)) > 0.4


def test_loud_content_never_clips() -> None:
    sr = 16000
    x = np.clip(speech_like(sr, level=1.0) * 3, -1, 1).astype(np.float32)
    y = add_notice(x, sr)
    assert np.max(np.abs(y[: len(y) - len(x)])) <= 0.98 + 1e-6


@pytest.mark.parametrize(
    "kwargs",
    [{"lang": "fr"}, {"where": "middle"}, {"style": "beep"}, {"gap": -1.0}],
)
def test_bad_arguments(kwargs: dict) -> None:
    with pytest.raises(NoticeError):
        add_notice(speech_like(16000), 16000, **kwargs)


def test_bad_content() -> None:
    with pytest.raises(NoticeError):
        add_notice(np.zeros(0, np.float32), 16000)
    with pytest.raises(NoticeError):
        add_notice(np.array([0.1, np.nan, 0.2], np.float32), 16000)
    with pytest.raises(NoticeError):
        add_notice(np.zeros((10, 2, 2), np.float32), 16000)
    with pytest.raises(NoticeError):
        add_notice(np.zeros(100, np.float32), 4000)
    with pytest.raises(NoticeError):
        add_notice(np.array(["a", "b"]), 16000)


def test_shipped_clips_match_manifest() -> None:
    man = json.loads((DATA / "notice_manifest.json").read_text(encoding="utf-8"))
    for lang, entry in man["notices"].items():
        blob = (DATA / entry["file"]).read_bytes()
        assert hashlib.sha256(blob).hexdigest() == entry["sha256"], lang
        assert len(blob) < 200_000


# ----------------------------------------------------------------------------------------------- files


def test_file_round_trip_keeps_rate_channels_subtype(tmp_path: Path) -> None:
    import soundfile as sf

    sr = 44100
    x = speech_like(sr, seconds=0.5)
    st = np.stack([x, -x], axis=1)
    src = tmp_path / "in.wav"
    sf.write(str(src), st, sr, subtype="PCM_24")
    r = add_notice_file(src, tmp_path / "out.wav", lang="zh", where="end")
    info = sf.info(str(tmp_path / "out.wav"))
    assert (info.samplerate, info.channels, info.subtype) == (sr, 2, "PCM_24")
    assert r.duration_out > r.duration_in + 1.5
    add_notice_file(src, tmp_path / "out.flac", style="rhythm")
    assert sf.info(str(tmp_path / "out.flac")).channels == 2


def test_file_lossy_in_and_out(tmp_path: Path) -> None:
    import soundfile as sf

    sr = 16000
    src = tmp_path / "in.mp3"
    sf.write(str(src), speech_like(sr), sr, format="MP3")
    r = add_notice_file(src, tmp_path / "out.opus", lang="en", where="start")
    assert r.sample_rate == 16000 and abs(r.duration_in - 1.0) < 0.1
    y, sr_out = sf.read(str(tmp_path / "out.opus"))
    assert sr_out == 16000 and len(y) / sr_out > r.duration_in + 1.0


def test_file_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(UnreadableError):
        add_notice_file(tmp_path / "missing.wav", tmp_path / "o.wav")
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(EmptyFileError):
        add_notice_file(tmp_path / "empty.wav", tmp_path / "o.wav")
    (tmp_path / "t.wav").write_text("not audio\n" * 50)
    with pytest.raises(NotMediaError):
        add_notice_file(tmp_path / "t.wav", tmp_path / "o.wav")
    with pytest.raises(NoticeError):
        add_notice_file(tmp_path / "t.wav", tmp_path / "o.xyz")
    assert not (tmp_path / "o.wav").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_notice_cli(tmp_path: Path) -> None:
    import soundfile as sf
    import typer
    from typer.testing import CliRunner

    from voxwarden.commands.label import notice_cmd

    app = typer.Typer()
    app.command("notice")(notice_cmd)
    app.command("other")(lambda: None)  # force sub-command mode, as in the real CLI
    src = tmp_path / "in.wav"
    sf.write(str(src), speech_like(16000), 16000)
    runner = CliRunner()
    res = runner.invoke(app, ["notice", str(src), str(tmp_path / "o.wav"), "--lang", "zh", "--where", "both"])
    assert res.exit_code == 0, res.output
    assert sf.info(str(tmp_path / "o.wav")).duration > 1.0 + 2 * 1.5
    res = runner.invoke(app, ["notice", str(tmp_path / "nope.wav"), str(tmp_path / "o2.wav")])
    assert res.exit_code == 2
    res = runner.invoke(app, ["notice", str(src), str(tmp_path / "o.wav"), "--where", "middle"])
    assert res.exit_code != 0


def test_file_m4a_input_and_length_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import av
    import soundfile as sf

    from voxwarden.audio.errors import TooLongError
    from voxwarden.mark import notice

    sr = 16000
    x = speech_like(sr)
    src = tmp_path / "in.m4a"
    with av.open(str(src), "w", format="ipod") as c:  # AAC in MP4: soundfile cannot read it, PyAV path
        st = c.add_stream("aac", rate=sr, layout="mono")
        fr = av.AudioFrame.from_ndarray(x[None, :], format="fltp", layout="mono")
        fr.sample_rate = sr
        for pkt in list(st.encode(fr)) + list(st.encode(None)):
            c.mux(pkt)
    r = add_notice_file(src, tmp_path / "o.wav", where="end")
    assert r.sample_rate == sr and r.channels == 1 and 0.9 < r.duration_in < 1.2
    assert sf.info(str(tmp_path / "o.wav")).duration > r.duration_in + 1.0
    monkeypatch.setattr(notice, "MAX_FILE_SECONDS", 0.5)
    with pytest.raises(TooLongError):
        add_notice_file(src, tmp_path / "o2.wav")
    wav = tmp_path / "long.wav"
    sf.write(str(wav), x, sr)
    with pytest.raises(TooLongError):
        add_notice_file(wav, tmp_path / "o3.wav")
