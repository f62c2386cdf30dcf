"""Rooms and the hub: session lifecycle, resume after reconnect, alerts end to end, a real GMM model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from _live_helpers import frames_of, loudness_detector, pcm16, tone

from voxwarden.detect.detector import Detector
from voxwarden.live import (
    Alert,
    CapacityError,
    Event,
    Hub,
    RateLimitedError,
    ResumeError,
    RulesEngine,
    SessionEnded,
    SessionStarted,
    StreamOptions,
    WindowScored,
    load_rules,
    pack_frame,
)

SR = 16000
RULES = "rules:\n  - name: loud\n    threshold: {default: 0.9, stage: 0.5}\n    sustain: {windows: 2}\n"


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def make_hub(**kw: object) -> tuple[Hub, list[Event], Clock]:
    events: list[Event] = []
    clock = Clock()
    hub = Hub(loudness_detector(1.0, 0.5), rules=RulesEngine(load_rules(RULES)), sink=events.append,
              options=StreamOptions(vad=False), clock=clock, **kw)
    return hub, events, clock


def hello(speaker: str = "alice", room: str = "r1", **kw: object) -> str:
    d = {"room": room, "speaker": speaker, "codec": "pcm16", "sample_rate": SR, "stream_start": 1_700_000_000}
    d.update(kw)
    return json.dumps(d)


def test_open_stream_alert_close() -> None:
    hub, events, _ = make_hub(room_type_of={"r1": "stage"})
    s, started = hub.open(hello())
    assert isinstance(started, SessionStarted) and started.room_type == "stage" and not started.resumed
    assert started.window == 1.0 and started.hop == 0.5 and started.last_acked_seq is None
    for i, f in enumerate(frames_of(tone(2.0, SR, amp=0.05), SR)):  # -29 dBFS: score ~1, p ~0.73
        s.handle(pack_frame(i, pcm16(f)))
    alerts = [e for e in events if isinstance(e, Alert)]
    assert len(alerts) == 1 and alerts[0].start == 0.5 and alerts[0].key == "r1|alice|loud|1700000000500"
    ended = hub.close(s)
    assert isinstance(ended[-1], SessionEnded) and ended[-1].stats["alerts"] == 1
    assert isinstance(events[0], SessionStarted) and isinstance(events[-1], SessionEnded)
    assert hub.reap() == [] and "r1" not in hub.rooms


def test_room_type_decides_thresholds() -> None:
    hub, events, _ = make_hub()  # "r1" is a default room: the same audio as on stage stays below 0.9
    s, _ = hub.open(hello())
    for i, f in enumerate(frames_of(tone(2.0, SR, amp=0.05), SR)):
        s.push(i, pcm16(f))
    ws = [e for e in events if isinstance(e, WindowScored)]
    assert len(ws) == 3 and all(0.5 < w.probability < 0.9 for w in ws)
    assert not [e for e in events if isinstance(e, Alert)]


def test_resume_after_reconnect_continues_the_session() -> None:
    hub, events, clock = make_hub(linger=30.0)
    s, _ = hub.open(hello())
    fr = [pcm16(f) for f in frames_of(tone(3.0, SR), SR)]
    for i in range(70):
        s.handle(pack_frame(i, fr[i]))
    hub.detach(s)
    clock.t = 10.0
    s2, started = hub.open(hello(resume=True))
    assert s2 is s and started.resumed and started.last_acked_seq == 69
    for i in range(60, 150):  # the client resends from a bit earlier: duplicates are dropped
        s2.handle(pack_frame(i, fr[i]))
    assert s.stats.duplicates == 10 and s.stats.gaps == 0
    starts = [e.start for e in events if isinstance(e, WindowScored)]
    assert starts == [0.5 * k for k in range(5)]  # windows [0,1) .. [2,3): none twice, none lost


def test_resume_mismatch_and_expiry() -> None:
    hub, _, clock = make_hub(linger=30.0)
    s, _ = hub.open(hello(session="abc"))
    with pytest.raises(ResumeError, match="codec|CodecSpec"):
        hub.open(hello(resume=True, sample_rate=8000))
    with pytest.raises(ResumeError, match="session"):
        hub.open(hello(resume=True, session="other"))
    hub.detach(s)
    clock.t = 31.0
    ended = hub.reap()
    assert [type(e) for e in ended] == [SessionEnded] and s.closed
    s3, started = hub.open(hello(resume=True, session="abc"))  # nothing left to resume: fresh session
    assert s3 is not s and not started.resumed and started.last_acked_seq is None


def test_plain_hello_replaces_an_existing_session_and_rooms_are_separate() -> None:
    hub, _, _ = make_hub()
    a, _ = hub.open(hello())
    b, _ = hub.open(hello())
    assert a.closed and not b.closed and hub.room("r1").sessions == {"alice": b}
    c, _ = hub.open(hello(room="r2"))
    assert set(hub.rooms) == {"r1", "r2"} and c.room == "r2"
    assert len(hub.room("r1").close_all()) >= 1


@pytest.fixture(scope="module")
def tiny_gmm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real LFCC-GMM model trained in seconds: 'bona fide' = noise, 'spoof' = harmonic buzz."""
    from voxwarden.detect.gmm import train_gmm

    rng = np.random.default_rng(0)
    t = np.arange(SR * 2) / SR
    items = []
    for k in range(4):
        noise = rng.normal(0, 0.1, t.size).astype(np.float32)
        f0 = 110 + 20 * k
        buzz = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 12)).astype(np.float32) * 0.1
        items += [(noise, 0), (buzz, 1)]
    d = tmp_path_factory.mktemp("gmm")
    fields = train_gmm(items, d, n_components=4, max_iter=8)
    card = {"name": "tiny-gmm", "version": "test", "window": 1.0, "hop": 0.5, "threshold": 0.5,
            "calibration": {"a": 1.0, "b": 0.0}, **fields}
    (d / "card.json").write_text(json.dumps(card))
    return d


def test_real_gmm_detector_in_a_live_room(tiny_gmm_dir: Path) -> None:
    det = Detector.load(tiny_gmm_dir)
    events: list[Event] = []
    hub = Hub(det, rules=RulesEngine(load_rules(RULES)), sink=events.append, options=StreamOptions(vad=False))
    t = np.arange(SR * 2) / SR
    buzz = (sum(np.sin(2 * np.pi * 125 * h * t) / h for h in range(1, 12)) * 0.1).astype(np.float32)
    noise = np.random.default_rng(5).normal(0, 0.1, SR * 2).astype(np.float32)
    sb, _ = hub.open(hello(speaker="bot"))
    sh, _ = hub.open(hello(speaker="human"))
    for i, (fb, fh) in enumerate(zip(frames_of(buzz, SR), frames_of(noise, SR), strict=True)):
        sb.push(i, pcm16(fb))
        sh.push(i, pcm16(fh))
    ws = [e for e in events if isinstance(e, WindowScored)]
    bot = [w.probability for w in ws if w.speaker == "bot"]
    human = [w.probability for w in ws if w.speaker == "human"]
    assert len(bot) == len(human) == 3
    assert min(bot) > 0.9 and max(human) < 0.1
    assert ws[0].model == "tiny-gmm@test"
    # the live windows score exactly as the detector scores the same samples offline
    offline = det.calibrate(det.score_windows([buzz[:SR]]))
    assert bot[0] == pytest.approx(float(np.atleast_1d(offline)[0]), rel=1e-3, abs=1e-4)
    assert [a.speaker for a in events if isinstance(a, Alert)] == ["bot"]


def test_crash_replay_from_a_checkpoint_gives_the_same_windows_and_alert_keys() -> None:
    rules = "rules:\n  - name: loud\n    threshold: 0.5\n    sustain: {windows: 3}\n    cooldown: 1\n"
    x = np.concatenate([tone(1.0, SR, amp=0.005), tone(4.0, SR, amp=0.05)])  # quiet, then 'synthetic'
    fr = [pcm16(f) for f in frames_of(x, SR)]

    def hub_with(events: list[Event]) -> Hub:
        return Hub(loudness_detector(1.0, 0.5), rules=RulesEngine(load_rules(rules)), sink=events.append,
                   options=StreamOptions(vad=False))

    ref: list[Event] = []
    s, _ = hub_with(ref).open(hello())
    for i, f in enumerate(fr):
        s.push(i, f)

    before: list[Event] = []
    s, _ = hub_with(before).open(hello())
    for i in range(87):  # 1.74 s in, mid-window; the server saves a checkpoint, then crashes
        s.push(i, fr[i])
    cp = json.loads(json.dumps(s.checkpoint().to_dict()))  # what the store would keep
    assert cp["next_window"] == SR and cp["position"] <= cp["next_window"]  # window [1, 2) is open

    after: list[Event] = []
    s2, started = hub_with(after).open(hello(resume=True), checkpoint=cp)
    assert started.resumed and started.last_acked_seq == cp["last_acked_seq"] < 86
    for i in range(40, len(fr)):  # the client resends what it still buffers (older ones are dropped)
        s2.push(i, fr[i])

    def summary(evs: list[Event]) -> list[tuple]:
        return [(e.start, round(e.probability, 9)) for e in evs if isinstance(e, WindowScored)]

    keys = [e.key for e in ref if isinstance(e, Alert)]
    replay_keys = [e.key for e in before + after if isinstance(e, Alert)]
    assert s2.stats.gaps == 0 and s2.stats.duplicates == 10
    assert len(keys) >= 2 and replay_keys == keys  # same alerts, none twice, none lost
    assert summary(before) + summary(after) == summary(ref)


def test_bad_checkpoint_is_a_resume_error() -> None:
    hub, _, _ = make_hub()
    s, _ = hub.open(hello(speaker="bob"))
    cp = s.checkpoint().to_dict()
    for bad in [{**cp, "version": 9}, {**cp, "position": -5}, {**cp, "last_acked_seq": "x"},
                {**cp, "room": 3}, "nope"]:
        with pytest.raises(ResumeError):
            hub.open(hello(speaker="bob", resume=True), checkpoint=bad)  # type: ignore[arg-type]
    hub.close(s)
    with pytest.raises(ResumeError, match="checkpoint"):
        hub.open(hello(speaker="bob", resume=True, sample_rate=8000), checkpoint=cp)
    with pytest.raises(ResumeError):
        hub.open(hello(speaker="eve", resume=True), checkpoint=cp)


def test_faster_than_real_time_audio_is_rate_limited() -> None:
    clock = Clock()
    h = hello()
    from voxwarden.live import StreamSession, parse_hello

    s = StreamSession(parse_hello(h), loudness_detector(), clock=clock,
                      options=StreamOptions(vad=False, max_speed=2.0, burst=1.0))
    fr = [pcm16(f) for f in frames_of(tone(4.0, SR), SR)]
    for i in range(51):  # the burst allowance (1 s) is used up
        s.push(i, fr[i])
    with pytest.raises(RateLimitedError):
        s.push(51, fr[51])
    assert s.last_acked_seq == 50 and s.stats.rate_limited == 1  # not acknowledged: resend it later
    clock.t = 0.5  # half a second later, one more second of audio is allowed at 2x
    for i in range(51, 100):
        s.push(i, fr[i])
    assert s.last_acked_seq == 99


def test_capacity_limits() -> None:
    hub, _, _ = make_hub(max_rooms=1)
    hub.open(hello())
    with pytest.raises(CapacityError):
        hub.open(hello(room="r2"))
    room = hub.room("r1")
    room.max_speakers = 1
    with pytest.raises(CapacityError):
        hub.open(hello(speaker="bob"))
