"""Hello validation, frame splitting, PCM16 at 8/16/48 kHz, Opus round trip, malformed/oversized frames."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from _live_helpers import frames_of, loudness_detector, opus_packets, pcm16, tone

from voxwarden.live import (
    FrameRejected,
    HelloError,
    MalformedFrameError,
    OversizedFrameError,
    StreamOptions,
    StreamSession,
    pack_frame,
    parse_hello,
    split_frame,
)
from voxwarden.live.codecs import CodecSpec, Pcm16Decoder

GOOD = {"type": "hello", "room": "r1", "speaker": "alice", "codec": "pcm16", "sample_rate": 16000}


def hello(**kw: object) -> dict:
    d = dict(GOOD)
    d.update(kw)
    return {k: v for k, v in d.items() if v is not None}


def test_good_hello_parses_from_bytes_and_lists_ignored_keys() -> None:
    h = parse_hello(json.dumps(hello(extra=1, session="s-1", resume=True)).encode())
    assert (h.room, h.speaker, h.session, h.resume) == ("r1", "alice", "s-1", True)
    assert h.codec == CodecSpec("pcm16", 16000, 1)
    assert h.ignored == ("extra",)
    assert parse_hello({"room": "r", "speaker": "s", "codec": "opus"}).codec.sample_rate == 48000


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (json.dumps(hello(room=None)), "missing 'room'"),
        (json.dumps(hello(speaker="")), "'speaker' must be a non-empty string"),
        (json.dumps(hello(speaker=5)), "'speaker' must be a non-empty string"),
        (json.dumps(hello(speaker="a|b")), "without '|'"),
        (json.dumps(hello(room="x" * 200)), "longer than 128"),
        (json.dumps(hello(codec="mp3")), "'codec' must be one of pcm16, opus"),
        (json.dumps(hello(sample_rate=44100)), "8000, 16000, 48000"),
        (json.dumps(hello(sample_rate=None)), "'sample_rate' for pcm16"),
        (json.dumps(hello(sample_rate=True)), "'sample_rate'"),
        (json.dumps(hello(channels=6)), "'channels' must be 1 or 2"),
        (json.dumps(hello(resume="yes")), "'resume' must be true or false"),
        (json.dumps(hello(stream_start=12)), "not a plausible time"),
        (json.dumps(hello(stream_start=time.time() + 10 * 86400)), "not a plausible time"),
        (json.dumps(hello(type="audio")), "expected a hello"),
        (json.dumps(hello(version=2)), "unsupported hello version"),
        (b"{" + b" " * 20000 + b"}", "larger than"),
        ("[" * 100000 + "]" * 100000, "larger than"),
    ],
)
def test_bad_hello_is_a_clear_hello_error(data: bytes | str, needle: str) -> None:
    with pytest.raises(HelloError) as ei:
        parse_hello(data)
    assert needle in str(ei.value)
    assert ei.value.fatal and ei.value.to_dict()["type"] == "bad_hello"


def test_split_and_pack_frame() -> None:
    assert split_frame(pack_frame(7, b"\x01\x02")) == (7, b"\x01\x02")
    with pytest.raises(MalformedFrameError):
        split_frame(b"\x00\x00\x00")
    with pytest.raises(ValueError):
        pack_frame(-1, b"x")


@pytest.mark.parametrize("sr", [8000, 16000, 48000])
def test_pcm16_rates_resample_to_16k_and_keep_the_tone(sr: int) -> None:
    det = loudness_detector(window=1.0, hop=0.5)
    got: list[np.ndarray] = []
    backend = det.backend
    orig = backend.score_windows

    def spy(ws: list[np.ndarray]) -> np.ndarray:
        got.extend(ws)
        return orig(ws)

    backend.score_windows = spy  # type: ignore[method-assign]
    s = StreamSession(parse_hello(hello(sample_rate=sr)), det, options=StreamOptions(vad=False))
    x = tone(2.0, sr, freq=440.0)
    for i, f in enumerate(frames_of(x, sr)):
        s.push(i, pcm16(f))
    assert abs(s.position - 2.0) < 0.005  # the resampler holds back at most a few ms
    assert len(got) >= 2
    s.close()  # flushes the resampler: the last grid window completes, no extra tail window
    assert len(got) == 3 and all(w.size == 16000 for w in got)  # windows at 0, 0.5, 1.0 s
    spec = np.abs(np.fft.rfft(got[1]))
    assert abs(np.argmax(spec) * 16000 / 16000 - 440.0) <= 2.0  # 1 s window: 1 Hz bins
    assert 0.25 < float(np.max(np.abs(got[1]))) < 0.35


def test_pcm16_stereo_is_averaged() -> None:
    dec = Pcm16Decoder(CodecSpec("pcm16", 16000, 2))
    y = dec.decode(pcm16(np.array([0.5, -0.25], dtype=np.float32), channels=2))
    np.testing.assert_allclose(y, [0.5, -0.25], atol=1e-4)


def test_malformed_and_oversized_pcm_frames_do_not_kill_the_session() -> None:
    s = StreamSession(parse_hello(hello()), loudness_detector(), options=StreamOptions(vad=False))
    with pytest.raises(MalformedFrameError, match="not a whole number"):
        s.push(0, b"\x00\x01\x02")
    with pytest.raises(OversizedFrameError):
        s.push(1, b"\x00" * (16000 * 2 + 2))
    with pytest.raises(MalformedFrameError, match="empty"):
        s.push(2, b"")
    with pytest.raises(MalformedFrameError, match="sequence number"):
        s.push(-1, b"\x00\x00")
    ev = s.handle(b"\x00\x01")  # shorter than the header: refused as an event, no exception
    assert isinstance(ev[0], FrameRejected) and ev[0].error["type"] == "malformed_frame"
    ev = s.handle(pack_frame(3, b"\x00\x01\x02"))
    assert isinstance(ev[0], FrameRejected) and ev[0].seq == 3
    assert s.stats.rejected == 5
    assert s.last_acked_seq == 3
    for i, f in enumerate(frames_of(tone(1.0, 16000), 16000), start=4):
        s.handle(pack_frame(i, pcm16(f)))
    assert s.stats.windows_scored == 1 and s.stats.gaps == 0


def test_opus_round_trip_through_the_session() -> None:
    x = tone(2.0, 48000, freq=440.0, amp=0.4)
    packets = opus_packets(x)
    det = loudness_detector(window=1.0, hop=0.5)
    got: list[np.ndarray] = []
    orig = det.backend.score_windows
    det.backend.score_windows = lambda ws: (got.extend(ws), orig(ws))[1]  # type: ignore[method-assign]
    s = StreamSession(parse_hello({"room": "r", "speaker": "s", "codec": "opus"}), det,
                      options=StreamOptions(vad=False))
    for i, p in enumerate(packets):
        s.handle(pack_frame(i, p))
    assert s.stats.frames == len(packets) and s.stats.rejected == 0
    assert 1.9 < s.position < 2.1
    assert len(got) == 3
    w = got[2]
    spec = np.abs(np.fft.rfft(w))
    assert abs(np.argmax(spec) - 440) <= 2
    rms = float(np.sqrt(np.mean(w**2)))
    assert 0.2 < rms < 0.35  # 0.4 / sqrt(2) = 0.28 survives the codec


def test_garbage_opus_packet_is_rejected_and_stream_goes_on() -> None:
    packets = opus_packets(tone(1.5, 48000, amp=0.4))
    s = StreamSession(parse_hello({"room": "r", "speaker": "s", "codec": "opus"}), loudness_detector(),
                      options=StreamOptions(vad=False))
    rng = np.random.default_rng(1)
    seq = 0
    for junk in [b"\xff" * 50, rng.bytes(7), rng.bytes(400)]:
        try:
            s.push(seq, junk)
        except MalformedFrameError:
            pass
        seq += 1
    with pytest.raises(OversizedFrameError):
        s.push(seq, b"\x00" * 70000)
    seq += 1
    for p in packets:
        s.push(seq, p)
        seq += 1
    assert s.stats.windows_scored >= 1
    assert s.stats.rejected >= 2
