"""Watermark checks in the live core run off the window path (live/watermark.py, docs/live.md).

A check that takes 0.4 s no longer makes its window late: windows come back at once, the check's result
comes later as a `WatermarkChecked` event (to the sink, to `notify`, and from the next `score_pending` /
`close`), and `signal: watermark` rules fire on it with the audio checked as evidence. A failing checker
gives an unjudged event (present None) and is counted. A hub's rooms share one worker.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
from _live_helpers import loudness_detector, pcm16, tone

from voxwarden.live import (
    Alert,
    Event,
    Hub,
    RulesEngine,
    StreamOptions,
    StreamSession,
    WatermarkChecked,
    WindowScored,
    load_rules,
    parse_hello,
)

SR = 16000
FRAME = 320
RULES = """\
version: 1
rules:
  - {name: marked, signal: watermark, cooldown: 0}
"""
OPTS = StreamOptions(vad=False, watermark_span=2.0, watermark_every=2.0, max_speed=None)


class SlowChecker:
    """Finds a 'mark' when the span is loud (a real feature of the audio), after `delay` s of work."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.calls: list[int] = []
        self.threads: set[str] = set()

    def __call__(self, x: np.ndarray, sr: int) -> dict[str, Any]:
        self.calls.append(x.size)
        self.threads.add(threading.current_thread().name)
        time.sleep(self.delay)
        loud = float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) > 0.1
        return {"present": loud, "payload": "a1b2c3d4" if loud else None, "confidence": 0.99 if loud else 0.1,
                "seconds": x.size / sr}


def _session(checker: Any, sink: list[Event], notified: list[Event] | None = None) -> StreamSession:
    hello = parse_hello({"room": "r", "speaker": "s", "codec": "pcm16", "sample_rate": SR,
                         "stream_start": 1_700_000_000.0})
    return StreamSession(hello, loudness_detector(), rules=RulesEngine(load_rules(RULES)), sink=sink.append,
                         watermark=checker, options=OPTS, notify=notified.extend if notified is not None else None)


def _push(s: StreamSession, x: np.ndarray) -> list[Event]:
    out: list[Event] = []
    for i, j in enumerate(range(0, x.size, FRAME)):
        out += s.push(i, pcm16(x[j:j + FRAME]))
    return out


def test_a_slow_check_does_not_delay_windows_and_comes_as_its_own_event() -> None:
    chk = SlowChecker(0.4)
    sink: list[Event] = []
    notified: list[Event] = []
    s = _session(chk, sink, notified)
    t0 = time.perf_counter()
    live = _push(s, tone(4.0, SR, amp=0.3))
    pushed = time.perf_counter() - t0
    wins = [e for e in live if isinstance(e, WindowScored)]
    assert len(wins) == 7 and all(w.watermark is None for w in wins)
    assert pushed < 0.35, pushed  # a check runs 0.4 s: none of it was on the window path
    assert max(w.latency_ms for w in wins) < 300
    assert not any(isinstance(e, WatermarkChecked) for e in live)  # not back yet
    end = s.close()
    checks = [e for e in end if isinstance(e, WatermarkChecked)]
    # due with the window ending at 2 s (span 0-2 s) and at 4 s (span 2-4 s; it replaces the first if that
    # still waits: newest wins); the last check is always the newest span
    assert 1 <= len(checks) <= 2 and (checks[-1].start, checks[-1].end) == (2.0, 4.0)
    assert all(c.present is True and c.payload == "a1b2c3d4" and c.seconds == 2.0 for c in checks)
    assert all(c.latency_ms >= 400 for c in checks)
    assert chk.threads == {"vw-live-watermark"}
    alerts = [e for e in end if isinstance(e, Alert)]
    assert len(alerts) == len(checks) and all(a.signal == "watermark" for a in alerts)
    a = alerts[-1]
    assert a.watermark is not None and (a.watermark["start"], a.watermark["end"]) == (2.0, 4.0)
    assert a.evidence is not None and a.evidence.samples.size == 2 * SR
    assert (a.evidence.start, a.evidence.end) == (2.0, 4.0)
    assert a.to_dict()["evidence"]["seconds"] == 2.0
    assert end[-1].type == "session_ended" and end[-1].stats["watermark_checks"] == len(checks)
    # the sink and notify got each check and alert once, in that order
    got = [e for e in sink if isinstance(e, WatermarkChecked | Alert)]
    assert got == [e for e in end if isinstance(e, WatermarkChecked | Alert)] == notified


def test_a_quiet_span_is_checked_absent_and_a_failing_checker_is_unjudged() -> None:
    sink: list[Event] = []
    s = _session(SlowChecker(0.0), sink)
    _push(s, tone(2.0, SR, amp=0.05))
    end = s.close()
    [c] = [e for e in end if isinstance(e, WatermarkChecked)]
    assert c.present is False and c.payload is None and not any(isinstance(e, Alert) for e in end)

    def broken(x: np.ndarray, sr: int) -> Any:
        raise ValueError("bad span")

    s = _session(broken, sink)
    _push(s, tone(2.0, SR, amp=0.3))
    end = s.close()
    [c] = [e for e in end if isinstance(e, WatermarkChecked)]
    assert c.present is None and c.error == "ValueError: bad span" and not any(isinstance(e, Alert) for e in end)
    assert end[-1].stats["watermark_errors"] == 1 and end[-1].stats["watermark_checks"] == 1


def test_silent_windows_get_no_check_and_a_hub_shares_one_worker() -> None:
    hub = Hub(loudness_detector(), watermark=SlowChecker(0.0), options=StreamOptions(
        watermark_span=2.0, watermark_every=2.0, max_speed=None, vad=False))
    sessions = []
    for room in ("a", "b"):
        s, _ = hub.open({"room": room, "speaker": "s", "codec": "pcm16", "sample_rate": SR})
        sessions.append(s)
    assert {s.watermark_worker for s in sessions} == {hub.watermark_worker}
    _push(sessions[0], np.zeros(2 * SR, dtype=np.float32))  # silence: no window scored, no check
    _push(sessions[1], tone(2.0, SR, amp=0.3))
    ends = [hub.close(s) for s in sessions]
    assert [sum(isinstance(e, WatermarkChecked) for e in end) for end in ends] == [0, 1]
    assert hub.watermark_worker.stats.ran == 1


def test_a_closing_speaker_waits_for_a_check_next_in_line_and_drops_one_behind_others() -> None:
    gate = threading.Event()
    started = threading.Event()

    def gated(x: np.ndarray, sr: int) -> dict[str, Any]:
        started.set()
        gate.wait(10)
        return {"present": False, "confidence": 0.1}

    hub = Hub(loudness_detector(), watermark=gated, options=OPTS)
    ss = []
    for room in ("a", "b", "c"):
        s, _ = hub.open({"room": room, "speaker": "s", "codec": "pcm16", "sample_rate": SR})
        ss.append(s)
    try:
        _push(ss[0], tone(2.0, SR, amp=0.3))
        assert started.wait(10)  # a's check runs (and blocks the worker)
        _push(ss[1], tone(2.0, SR, amp=0.3))
        _push(ss[2], tone(2.0, SR, amp=0.3))
        w = hub.watermark_worker
        assert w is not None and (w.ahead(ss[0]), w.ahead(ss[1]), w.ahead(ss[2])) == (0, 1, 2)
        end_c = hub.close(ss[2])  # behind b's: dropped at once, no waiting
        assert not any(isinstance(e, WatermarkChecked) for e in end_c)
        assert end_c[-1].stats["watermark_dropped"] == 1 and w.ahead(ss[2]) is None
        gate.set()
        end_a, end_b = hub.close(ss[0]), hub.close(ss[1])  # running / next in line: waited for
        assert [sum(isinstance(e, WatermarkChecked) for e in end) for end in (end_a, end_b)] == [1, 1]
        assert end_b[-1].stats["watermark_dropped"] == 0
    finally:
        gate.set()


def test_the_checkers_budget_paces_the_worker() -> None:
    """A checker's ``budget.delay()`` (the service's `CheckBudget`) is what the worker waits before a check."""

    class Budget:  # 0.3 s from the worker's first question (after the window's cut, however slow the push)
        until: float | None = None

        def delay(self) -> float:
            if self.until is None:
                self.until = time.monotonic() + 0.3
            return max(0.0, self.until - time.monotonic())

    chk = SlowChecker(0.0)
    chk.budget = Budget()  # type: ignore[attr-defined]
    s = _session(chk, [])
    _push(s, tone(2.0, SR, amp=0.3))
    [c] = [e for e in s.close() if isinstance(e, WatermarkChecked)]
    assert c.present is True and c.latency_ms >= 290  # waited for the budget, then ran
