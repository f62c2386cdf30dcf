"""Two-stage sessions (ingest now, score later) and the overload policy: a bounded scoring backlog whose
overflow skips the oldest waiting windows, never frames; checkpoints taken with windows still queued."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
from _live_helpers import frames_of, loudness_detector, pcm16, tone

from voxwarden.live import (
    Alert,
    Event,
    Hub,
    RulesEngine,
    StreamOptions,
    StreamSession,
    WindowScored,
    WindowsSkipped,
    load_rules,
    pack_frame,
    parse_hello,
)

SR = 16000
HELLO = {"room": "r", "speaker": "s", "codec": "pcm16", "sample_rate": SR, "stream_start": 1_700_000_000}


def session(detector: object = None, **opts: object) -> tuple[StreamSession, list[Event]]:
    sink: list[Event] = []
    s = StreamSession(parse_hello(HELLO), detector or loudness_detector(1.0, 0.5), sink=sink.append,
                      options=StreamOptions(vad=False, **opts))
    return s, sink


def wins(events: list[Event]) -> list[WindowScored]:
    return [e for e in events if isinstance(e, WindowScored)]


def test_ingest_queues_windows_and_score_pending_scores_them_in_order() -> None:
    s, sink = session()
    fr = frames_of(tone(3.0, SR), SR)
    for i, f in enumerate(fr):
        assert s.ingest(pack_frame(i, pcm16(f))) == []  # nothing scored while ingesting
    assert s.pending == 5 and s.detector.backend.calls == []
    assert s.last_acked_seq == len(fr) - 1  # every frame is taken and acknowledged at once
    out = wins(s.score_pending())
    assert [(w.start, w.end) for w in out] == [(0.5 * k, 0.5 * k + 1.0) for k in range(5)]
    assert [w.seq for w in out] == [49 + 25 * k for k in range(5)]  # the frame that completed each window
    assert s.detector.backend.calls == [5]  # one batch
    assert s.pending == 0 and wins(sink) == out and s.score_pending() == []


def test_backlog_bound_skips_the_oldest_windows_and_keeps_every_frame() -> None:
    s, sink = session(max_backlog=2.0)  # hop 0.5 s: at most 4 windows wait
    fr = frames_of(tone(5.0, SR), SR)  # 9 full windows
    skipped: list[WindowsSkipped] = []
    for i, f in enumerate(fr):
        skipped += [e for e in s.ingest(pack_frame(i, pcm16(f))) if isinstance(e, WindowsSkipped)]
    assert [(e.count, e.start, e.end, e.reason) for e in skipped] == \
        [(1, 0.5 * k, 0.5 * k + 1.0, "backlog") for k in range(5)]  # one at a time, oldest first
    assert [e.total for e in skipped] == [1, 2, 3, 4, 5]
    assert s.pending == 4 and s.stats.windows_skipped == 5
    assert s.stats.frames == len(fr) and s.last_acked_seq == len(fr) - 1  # no frame dropped
    out = wins(s.score_pending())
    assert [w.start for w in out] == [2.5, 3.0, 3.5, 4.0]  # the newest windows are scored
    assert [e for e in sink if isinstance(e, WindowsSkipped)] == skipped  # the sink (store) hears it too
    ended = s.close()[-1]
    assert ended.stats["windows_skipped"] == 5 and ended.stats["windows_scored"] == 4


def test_no_bound_means_no_skips() -> None:
    s, _ = session(max_backlog=None)
    for i, f in enumerate(frames_of(tone(5.0, SR), SR)):
        s.ingest(pack_frame(i, pcm16(f)))
    assert s.pending == 9 and len(wins(s.score_pending())) == 9 and s.stats.windows_skipped == 0


class GatedBackend:
    """Scores like the loudness backend, but each call waits until the test opens the gate."""

    def __init__(self) -> None:
        self.inner = loudness_detector(1.0, 0.5).backend
        self.entered = threading.Event()
        self.gate = threading.Event()

    def score_windows(self, windows: list[np.ndarray]) -> np.ndarray:
        self.entered.set()
        assert self.gate.wait(10)
        return self.inner.score_windows(windows)


def test_ingest_does_not_wait_for_the_model() -> None:
    det = loudness_detector(1.0, 0.5)
    det.backend = GatedBackend()
    s, _ = session(det)
    fr = [pack_frame(i, pcm16(f)) for i, f in enumerate(frames_of(tone(4.0, SR), SR))]
    for f in fr[:50]:  # completes the first window
        s.ingest(f)
    scorer_out: list[Event] = []
    t = threading.Thread(target=lambda: scorer_out.extend(s.score_pending()))
    t.start()
    try:
        assert det.backend.entered.wait(10)  # the scorer is inside the model call
        t0 = time.perf_counter()
        for f in fr[50:]:
            s.ingest(f)  # would block here if ingest took the scoring lock
        took = time.perf_counter() - t0
        assert s.last_acked_seq == len(fr) - 1 and took < 2.0
        cp = s.checkpoint()  # a checkpoint mid-scoring points back to the window being scored
        assert cp.next_window == 0 and cp.last_acked_seq is None
    finally:
        det.backend.gate.set()
        t.join(10)
    # the scorer finishes its batch and goes on with what arrived meanwhile, in order
    assert [w.start for w in wins(scorer_out)] == [0.5 * k for k in range(7)]


def test_checkpoint_with_queued_windows_replays_them_after_a_crash() -> None:
    rules = "rules:\n  - name: loud\n    threshold: 0.5\n    sustain: {windows: 2}\n    cooldown: 1\n"
    x = np.concatenate([tone(1.0, SR, amp=0.005), tone(4.0, SR, amp=0.05)])
    fr = [pcm16(f) for f in frames_of(x, SR)]
    hello = json.dumps(HELLO)

    def hub(events: list[Event]) -> Hub:
        return Hub(loudness_detector(1.0, 0.5), rules=RulesEngine(load_rules(rules)), sink=events.append,
                   options=StreamOptions(vad=False))

    ref: list[Event] = []
    s, _ = hub(ref).open(hello)
    for i, f in enumerate(fr):
        s.push(i, f)

    before: list[Event] = []
    s, _ = hub(before).open(hello)
    for i in range(100):
        s.ingest(pack_frame(i, fr[i]))
        if i == 60:
            s.score_pending()  # the scorer ran once; later windows are still queued at the crash
    assert s.pending == 2  # windows [0.5, 1.5) and [1.0, 2.0) were never scored
    cp = json.loads(json.dumps(s.checkpoint().to_dict()))
    assert cp["next_window"] == SR // 2 and cp["last_acked_seq"] < 25  # back to the frame opening 0.5 s
    assert cp["stats"]["windows_scored"] == 1 and cp["stats"]["frames"] == cp["last_acked_seq"] + 1

    after: list[Event] = []
    s2, started = hub(after).open(json.dumps({**HELLO, "resume": True}), checkpoint=cp)
    assert started.last_acked_seq == cp["last_acked_seq"]
    for i in range(started.last_acked_seq + 1, len(fr)):
        s2.push(i, fr[i])

    def summary(evs: list[Event]) -> list[tuple[float, float]]:
        return [(e.start, round(e.probability, 9)) for e in evs if isinstance(e, WindowScored)]

    assert summary(before) + summary(after) == summary(ref)  # none lost, none scored twice
    assert [e.key for e in before + after if isinstance(e, Alert)] == [e.key for e in ref if isinstance(e, Alert)]
    assert s2.stats.frames == len(fr) and s2.stats.windows_scored == len(summary(ref))


def test_a_window_the_sink_refused_holds_the_checkpoint_back() -> None:
    stored: list[Event] = []
    refuse = {"on": True}

    def sink(ev: Event) -> None:
        if refuse["on"] and isinstance(ev, WindowScored) and ev.start == 0.5:
            raise OSError("store down")
        stored.append(ev)

    s = StreamSession(parse_hello(HELLO), loudness_detector(1.0, 0.5), sink=sink,
                      options=StreamOptions(vad=False))
    fr = [pack_frame(i, pcm16(f)) for i, f in enumerate(frames_of(tone(3.0, SR), SR))]
    for f in fr[:100]:
        s.handle(f)  # windows [0, 1), [0.5, 1.5) (refused by the sink), [1, 2)
    assert s.stats.sink_failures == 1 and [w.start for w in wins(stored)] == [0.0, 1.0]
    cp = s.checkpoint()
    assert cp.next_window == SR // 2 and cp.last_acked_seq == 24  # a replay starts at the refused window
    refuse["on"] = False
    for f in fr[100:]:
        s.handle(f)
    assert s.checkpoint().next_window == SR // 2  # still held: the refused result was never stored
