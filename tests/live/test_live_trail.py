"""Alert evidence in the live core: the audio trail (ring by stream position, holes, truncation, resize),
deterministic PCM16 WAV, and a session whose alerts carry exactly the audio of their span."""

from __future__ import annotations

import io
import json
import wave

import numpy as np
import pytest
from _live_helpers import frames_of, loudness_detector, pcm16, tone

from voxwarden.live import (
    Alert,
    AudioTrail,
    EvidenceClip,
    RulesEngine,
    StreamOptions,
    StreamSession,
    load_rules,
    parse_hello,
    wav_pcm16,
)
from voxwarden.live.evidence import to_pcm16

SR = 16000
RULES = """\
version: 1
rules:
  - name: loud
    signal: probability
    threshold: 0.9
    sustain: {windows: 3}
    cooldown: 600
"""


def ramp(a: int, b: int) -> np.ndarray:
    """int16 samples whose value tells their absolute position (mod 30000)."""
    return (np.arange(a, b) % 30000).astype(np.int16)


def test_trail_keeps_overlapping_windows_by_position_and_fills_holes_with_silence() -> None:
    t = AudioTrail(100, SR)
    t.write(0, ramp(0, 40))
    t.write(20, ramp(20, 60))  # overlaps the first window: the same positions
    t.write(80, ramp(80, 90))  # a hole 60..80 (a skipped window)
    c = t.clip(10 / SR, 90 / SR)
    assert c is not None and not c.truncated
    want = ramp(10, 90)
    want[50:70] = 0
    np.testing.assert_array_equal(c.samples, want)
    assert c.missing_seconds == pytest.approx(20 / SR)
    assert (c.start, c.end) == (10 / SR, 90 / SR)


def test_trail_truncates_to_what_it_keeps_and_says_so() -> None:
    t = AudioTrail(50, SR)
    for a in range(0, 200, 20):
        t.write(a, ramp(a, a + 40))
    c = t.clip(0.0, 240 / SR)
    assert c is not None and c.truncated and c.requested_start == 0.0
    assert (int(round(c.start * SR)), int(round(c.end * SR))) == (170, 220)
    np.testing.assert_array_equal(c.samples, ramp(170, 220))
    assert c.missing_seconds == 0.0
    assert t.clip(0.0, 100 / SR) is None  # long gone


def test_trail_write_reaching_back_past_the_ring_does_not_clobber_newer_audio() -> None:
    t = AudioTrail(50, SR)
    t.write(100, ramp(100, 140))
    t.write(60, ramp(60, 100))  # older than what the ring holds for 90..: only 90..100 may land
    c = t.clip(90 / SR, 140 / SR)
    assert c is not None
    np.testing.assert_array_equal(c.samples, ramp(90, 140))


def test_resized_trail_keeps_the_newest_audio() -> None:
    t = AudioTrail(100, SR)
    t.write(0, ramp(0, 100))
    small = t.resized(30)
    assert small.capacity == 30 and small.end == 100
    np.testing.assert_array_equal(small.clip(0, 100 / SR).samples, ramp(70, 100))
    big = small.resized(200)
    big.write(100, ramp(100, 150))
    c = big.clip(0, 150 / SR)
    assert int(round(c.start * SR)) == 0 and c.missing_seconds == pytest.approx(70 / SR)
    np.testing.assert_array_equal(c.samples[70:], ramp(70, 150))


def test_wav_is_pcm16_mono_and_deterministic() -> None:
    x = tone(0.5, SR)
    a, b = wav_pcm16(x, SR), wav_pcm16(x.copy(), SR)
    assert a == b
    with wave.open(io.BytesIO(a)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()) == (1, 2, SR, x.size)
        got = np.frombuffer(w.readframes(x.size), dtype="<i2")
    np.testing.assert_array_equal(got, to_pcm16(x))
    with pytest.raises(ValueError):
        wav_pcm16(x, 0)


def test_alert_json_carries_a_summary_not_the_samples() -> None:
    clip = EvidenceClip(np.zeros(SR, dtype=np.int16), SR, 1.0, 2.0, 0.0, 2.0, truncated=True)
    a = Alert(room="r", speaker="s", session="x", rule="loud", run_start=0.0, start=1.0, end=2.0, evidence=clip)
    d = a.to_dict()
    json.dumps(d)  # plain JSON
    assert d["evidence"] == {"start": 1.0, "end": 2.0, "seconds": 1.0, "sample_rate": SR, "requested_start": 0.0,
                             "requested_end": 2.0, "truncated": True, "missing_seconds": 0.0}
    assert d["type"] == "alert" and d["key"] == a.key and "samples" not in json.dumps(d)
    assert Alert(room="r", speaker="s").to_dict()["evidence"] is None


def _session(**opts: object) -> StreamSession:
    h = parse_hello({"room": "r", "speaker": "s", "codec": "pcm16", "sample_rate": SR, "stream_start": 1_700_000_000})
    return StreamSession(h, loudness_detector(1.0, 0.5), rules=RulesEngine(load_rules(RULES)),
                         options=StreamOptions(vad=False, max_speed=None, **opts))


def _stream(s: StreamSession, x: np.ndarray) -> list:
    out: list = []
    for i, f in enumerate(frames_of(x, SR)):
        out += s.push(i, pcm16(f))
    return out + s.close()


def test_session_alert_carries_the_audio_of_its_span() -> None:
    rng = np.random.default_rng(0)
    x = np.concatenate([tone(2.0, SR, amp=0.001), tone(4.0, SR, amp=0.3)])
    x = x + rng.normal(0, 1e-4, x.size).astype(np.float32)  # not periodic: a misplaced cut would show
    s = _session()
    alerts = [e for e in _stream(s, x) if isinstance(e, Alert)]
    assert len(alerts) == 1
    a = alerts[0]
    assert a.windows == 3 and a.evidence is not None
    c = a.evidence
    assert (c.start, c.end, c.truncated) == (a.run_start, a.end, False)
    i, j = int(round(a.run_start * SR)), int(round(a.end * SR))
    want = to_pcm16(x[i:j])
    assert c.samples.size == want.size == j - i
    assert int(np.max(np.abs(c.samples.astype(np.int32) - want))) <= 1  # PCM16 in, PCM16 out
    # the ring is sized by the rule (3 windows: 1 s + 2 hops, plus one window), not the 30 s cap
    assert s._trail is not None and s._trail.capacity == 3 * SR


def test_evidence_cap_truncates_a_long_span_and_zero_turns_it_off() -> None:
    x = tone(6.0, SR, amp=0.3)
    a = [e for e in _stream(_session(evidence_seconds=1.5), x) if isinstance(e, Alert)][0]
    assert a.evidence is not None and a.evidence.truncated
    assert a.evidence.duration == pytest.approx(1.5) and a.evidence.end == a.end
    assert a.to_dict()["evidence"]["truncated"] is True
    off = [e for e in _stream(_session(evidence_seconds=0), x) if isinstance(e, Alert)][0]
    assert off.evidence is None and off.to_dict()["evidence"] is None
