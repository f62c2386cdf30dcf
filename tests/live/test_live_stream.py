"""StreamSession: window timing, sequence numbers (duplicates, gaps, resume), VAD gating, hooks, tail."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _live_helpers import espeak, frames_of, loudness_detector, pcm16, tone

from voxwarden.live import (
    GapDetected,
    SessionClosedError,
    SessionEnded,
    StreamOptions,
    StreamSession,
    WatermarkChecked,
    WindowScored,
    parse_hello,
)
from voxwarden.live.stream import RingBuffer

SR = 16000


def session(window: float = 1.0, hop: float = 0.5, **opts: object) -> StreamSession:
    h = parse_hello({"room": "r", "speaker": "s", "codec": "pcm16", "sample_rate": SR,
                     "stream_start": 1_700_000_000})
    return StreamSession(h, loudness_detector(window, hop), options=StreamOptions(vad=False, **opts))


def windows(events: list) -> list[WindowScored]:
    return [e for e in events if isinstance(e, WindowScored)]


def test_ring_buffer_wraps_and_refuses_overwritten_samples() -> None:
    rb = RingBuffer(10)
    rb.write(np.arange(7, dtype=np.float32))
    rb.write(np.arange(7, 15, dtype=np.float32))
    np.testing.assert_array_equal(rb.read(5, 15), np.arange(5, 15))
    with pytest.raises(IndexError):
        rb.read(4, 8)
    rb.write(np.arange(100, 125, dtype=np.float32))  # larger than capacity: keeps the newest
    np.testing.assert_array_equal(rb.read(30, 40), np.arange(115, 125))


def test_each_window_is_scored_in_the_frame_call_that_completes_it() -> None:
    s = session(window=1.0, hop=0.5)
    completed_at: list[tuple[int, float, float]] = []
    for i, f in enumerate(frames_of(tone(3.0, SR), SR, frame_ms=20)):
        for w in windows(s.push(i, pcm16(f))):
            completed_at.append((i, w.start, w.end))
    # frame i covers [i*20 ms, (i+1)*20 ms): window [k*0.5, k*0.5 + 1) completes with frame 49 + 25k
    assert completed_at == [(49 + 25 * k, 0.5 * k, 0.5 * k + 1.0) for k in range(5)]
    ev = s.close()
    assert isinstance(ev[-1], SessionEnded) and ev[-1].stats["windows_scored"] == 5
    assert s.detector.backend.calls == [1] * 5  # one scoring call per completing frame


def test_window_event_fields() -> None:
    s = session()
    evs = []
    for i, f in enumerate(frames_of(tone(1.0, SR, amp=0.3), SR)):
        evs += s.push(i, pcm16(f))
    (w,) = windows(evs)
    d = w.to_dict()
    assert d["type"] == "window" and d["room"] == "r" and d["speaker"] == "s" and d["seq"] == 49
    assert d["stream_start"] == 1_700_000_000 and d["model"] == "loudness-test@0"
    assert w.probability > 0.99 and w.flagged and w.latency_ms >= 0


def test_duplicates_are_ignored_and_gaps_counted_and_concealed() -> None:
    s = session()
    fr = [pcm16(f) for f in frames_of(tone(2.0, SR), SR)]
    for i in range(10):
        s.push(i, fr[i])
    assert s.push(5, fr[5]) == [] and s.push(9, fr[9]) == []
    assert s.stats.duplicates == 2 and s.last_acked_seq == 9
    pos = s.position
    ev = s.push(13, fr[13])  # frames 10, 11, 12 lost: 60 ms filled with silence
    gap = [e for e in ev if isinstance(e, GapDetected)][0]
    assert (gap.expected_seq, gap.got_seq, gap.missing, gap.concealed) == (10, 13, 3, True)
    assert s.position == pytest.approx(pos + 0.08)
    assert s.stats.gaps == 1 and s.stats.missing_frames == 3 and s.last_acked_seq == 13


def test_long_gap_restarts_windows_without_splicing() -> None:
    s = session(window=1.0, hop=0.5, max_conceal=0.2)
    fr = [pcm16(f) for f in frames_of(tone(6.0, SR), SR)]
    evs = []
    for i in range(30):  # 0.6 s
        evs += s.push(i, fr[i])
    evs += s.push(130, fr[130])  # 100 frames (2 s) lost
    gap = [e for e in evs if isinstance(e, GapDetected)][0]
    assert not gap.concealed and gap.seconds == pytest.approx(2.0)
    for i in range(131, 200):
        evs += s.push(i, fr[i])
    starts = [w.start for w in windows(evs)]
    assert starts and starts[0] == pytest.approx(3.0)  # first grid window after the hole at 2.6 s
    assert all(b - a == pytest.approx(0.5) for a, b in zip(starts, starts[1:], strict=False))
    assert s.stats.windows_lost >= 1


def test_resume_resend_is_deduplicated() -> None:
    s = session()
    fr = [pcm16(f) for f in frames_of(tone(2.0, SR), SR)]
    for i in range(60):
        s.push(i, fr[i])
    acked = s.last_acked_seq
    n_before = s.stats.windows_scored
    for i in range(40, 100):  # the client resends what it is unsure about
        s.push(i, fr[i])
    assert acked == 59 and s.stats.duplicates == 20
    assert s.stats.windows_scored == n_before + 2 and s.stats.gaps == 0


def test_silence_is_gated_and_vad_gates_non_speech(tmp_path: Path) -> None:
    s = session()
    for i, f in enumerate(frames_of(np.zeros(SR * 2, np.float32), SR)):
        s.push(i, pcm16(f))
    assert s.stats.windows_scored == 0 and s.stats.windows_silent == 3

    speech = espeak("Voice rooms need live detection of cloned speech, every day.", tmp_path / "a")
    if speech is None:
        pytest.skip("espeak-ng not installed")
    noise = (np.random.default_rng(0).normal(0, 0.05, SR * 4)).astype(np.float32)
    h = parse_hello({"room": "r", "speaker": "v", "codec": "pcm16", "sample_rate": SR})
    v = StreamSession(h, loudness_detector(2.0, 1.0))  # the real (Silero) VAD
    x = np.concatenate([noise, speech[: SR * 3]])
    evs = []
    for i, f in enumerate(frames_of(x, SR)):
        evs += v.push(i, pcm16(f))
    ws = windows(evs)
    assert ws, "speech windows must be scored"
    assert min(w.start for w in ws) >= 3.0  # noise-only windows [0,2), [1,3), [2,4) are gated by the VAD
    assert all(w.speech_fraction >= 0.5 for w in ws)
    assert v.stats.windows_silent >= 3


def _push_waiting_for_checks(s: StreamSession, x: np.ndarray) -> list:
    """Push 20 ms frames; after each, wait for the session's watermark check (so none is superseded)."""
    evs = []
    for i, f in enumerate(frames_of(x, SR)):
        evs += s.push(i, pcm16(f))
        assert s.watermark_worker is not None and s.watermark_worker.wait(s, 10)
    return evs + s.close()


def test_watermark_hook_runs_per_window_and_its_errors_are_contained() -> None:
    calls: list[int] = []

    def checker(x: np.ndarray, sr: int) -> dict:
        calls.append(x.size)
        if len(calls) == 2:
            raise RuntimeError("decoder bug")
        return {"present": True, "confidence": 0.9, "payload": "ai:tts"}

    h = parse_hello({"room": "r", "speaker": "s", "codec": "pcm16", "sample_rate": SR})
    opts = StreamOptions(vad=False, watermark_span=1.0, watermark_every=0.0)  # every window, its own audio
    s = StreamSession(h, loudness_detector(), watermark=checker, options=opts)
    evs = _push_waiting_for_checks(s, tone(2.0, SR))
    ws = windows(evs)
    checks = [e for e in evs if isinstance(e, WatermarkChecked)]
    assert calls == [SR] * len(ws) and len(ws) == 3 and all(w.watermark is None for w in ws)
    assert [(c.start, c.end) for c in checks] == [(w.start, w.end) for w in ws]  # span 1 s = the window
    assert (checks[0].present, checks[0].confidence, checks[0].payload) == (True, 0.9, "ai:tts")
    assert checks[1].present is None and "RuntimeError" in (checks[1].error or "")
    assert s.stats.watermark_errors == 1 and s.stats.watermark_checks == 3


def test_watermark_checks_get_a_longer_span_at_their_own_cadence() -> None:
    calls: list[tuple[int, float]] = []

    def checker(x: np.ndarray, sr: int) -> bool:
        calls.append((x.size, float(np.max(np.abs(x)))))
        return False

    h = parse_hello({"room": "r", "speaker": "s", "codec": "pcm16", "sample_rate": SR})
    opts = StreamOptions(vad=False, watermark_span=3.0, watermark_every=2.0)
    s = StreamSession(h, loudness_detector(1.0, 0.5), watermark=checker, options=opts)
    x = np.concatenate([tone(1.0, SR, amp=0.5), tone(6.0, SR, amp=0.1)])
    checked = [e for e in _push_waiting_for_checks(s, x) if isinstance(e, WatermarkChecked)]
    assert [(c.start, c.end) for c in checked] == [(0.0, 3.0), (2.0, 5.0), (4.0, 7.0)]  # once 3 s exist, every 2 s
    assert all(c.present is False for c in checked)
    assert [n for n, _ in calls] == [3 * SR] * 3
    assert calls[0][1] > 0.45 and calls[1][1] < 0.15  # spans [0, 3) then [2, 5)


def test_real_watermark_is_found_live(tmp_path: Path) -> None:
    mark = pytest.importorskip("voxwarden.mark")
    speech = espeak("The quick brown fox jumps over the lazy dog while the band plays on in the square, "
                    "and voice rooms need live detection of cloned speech.", tmp_path / "m")
    if speech is None:
        pytest.skip("espeak-ng not installed")
    marker = mark.Marker(mark.DEMO_KEY)
    y = marker.embed(speech[: 7 * SR], SR, payload=b"\x01\x02\x03\x04")
    h = parse_hello({"room": "r", "speaker": "tts", "codec": "pcm16", "sample_rate": SR})
    opts = StreamOptions(vad=False, watermark_span=6.5, watermark_every=60.0)
    s = StreamSession(h, loudness_detector(2.0, 1.0), watermark=marker.detect, options=opts)
    evs = []
    for i, f in enumerate(frames_of(y, SR)):
        evs += s.push(i, pcm16(f))
    evs += s.close()
    (c,) = [e for e in evs if isinstance(e, WatermarkChecked)]
    assert (c.start, c.end) == (0.5, 7.0) and c.present is True and c.payload == "01020304"


def test_close_scores_a_short_stream_and_tail() -> None:
    s = session(window=1.0, hop=0.5)
    for i, f in enumerate(frames_of(tone(0.7, SR), SR)):
        s.push(i, pcm16(f))
    ev = s.close()
    (w,) = windows(ev)
    assert (w.start, w.end) == (0.0, 0.7)
    assert s.close() == []
    with pytest.raises(SessionClosedError):
        s.push(100, pcm16(tone(0.02, SR)))

    t = session(window=1.0, hop=1.0)
    for i, f in enumerate(frames_of(tone(2.2, SR), SR)):
        t.push(i, pcm16(f))
    assert windows(t.close()) == []  # grid windows cover [0, 2); 0.2 s left < min_tail

    u = session(window=1.0, hop=1.0)
    for i, f in enumerate(frames_of(tone(2.6, SR), SR)):
        u.push(i, pcm16(f))
    (w,) = windows(u.close())  # 0.6 s left: one window aligned to the end, like the file scan
    assert (w.start, w.end) == (1.6, 2.6)


def test_failing_sink_does_not_break_the_stream() -> None:
    seen: list[str] = []

    def sink(ev: object) -> None:
        seen.append(ev.type)  # type: ignore[attr-defined]
        raise OSError("database is down")

    h = parse_hello({"room": "r", "speaker": "s", "codec": "pcm16", "sample_rate": SR})
    s = StreamSession(h, loudness_detector(), sink=sink, options=StreamOptions(vad=False))
    for i, f in enumerate(frames_of(tone(1.5, SR), SR)):
        s.push(i, pcm16(f))
    assert seen == ["window", "window"] and s.stats.sink_failures == 2


def test_a_failing_model_is_counted_not_fatal(caplog: pytest.LogCaptureFixture) -> None:
    s = session()
    calls = []

    def broken(ws: list[np.ndarray]) -> np.ndarray:
        calls.append(len(ws))
        if len(calls) == 1:
            raise ValueError("no frames to score")
        return np.zeros(len(ws))

    s.detector.backend.score_windows = broken  # type: ignore[method-assign]
    evs = []
    for i, f in enumerate(frames_of(tone(1.5, SR), SR)):
        evs += s.push(i, pcm16(f))
    assert s.stats.score_errors == 1 and len(windows(evs)) == 1 and windows(evs)[0].start == 0.5
    assert "scoring 1 window(s) of r/s failed" in caplog.text
