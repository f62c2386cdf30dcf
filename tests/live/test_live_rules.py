"""Rules YAML (good, bad with line numbers), sustained-high logic, cooldown, reload, idempotent alert keys."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from voxwarden.live import Alert, RulesEngine, RulesError, RulesHolder, WindowScored, load_rules

GOOD = textwrap.dedent("""\
    version: 1
    rules:
      - name: sustained-synthetic
        threshold: {default: 0.9, broadcast: 0.8}
        sustain: {windows: 3}
        cooldown: 10
        severity: critical
        actions:
          - alert
          - webhook: https://hooks.example.org/vw
          - review: trust-safety
      - name: kids-any
        threshold: 0.7
        room_types: [kids]
      - name: labelled
        signal: watermark
        actions: [review]
    """)


def win(i: int, p: float, *, hop: float = 2.0, length: float = 4.0, speaker: str = "s",
        wm: dict | None = None, start0: float = 1_700_000_000.0) -> WindowScored:
    return WindowScored(room="r", speaker=speaker, session="x", index=i, start=i * hop, end=i * hop + length,
                        stream_start=start0, score=0.0, probability=p, watermark=wm)


def feed(engine: RulesEngine, probs: list[float | None], room_type: str = "default",
         **kw: object) -> list[Alert]:
    out: list[Alert] = []
    for i, p in enumerate(probs):
        if p is not None:  # None: the window was gated (no speech) and never reaches the rules
            out += engine.evaluate(win(i, p, **kw), room_type)
    return out


def test_good_rules_parse() -> None:
    rs = load_rules(GOOD)
    assert rs.names() == ["sustained-synthetic", "kids-any", "labelled"]
    r = rs.rules[0]
    assert r.threshold_for("broadcast") == 0.8 and r.threshold_for("lobby") == 0.9
    assert r.sustain_windows == 3 and r.cooldown == 10 and r.line == 3
    assert r.actions == ({"type": "alert"}, {"type": "webhook", "url": "https://hooks.example.org/vw"},
                         {"type": "review", "queue": "trust-safety"})
    assert rs.rules[1].threshold_for("default") is None and rs.rules[1].threshold_for("kids") == 0.7
    assert rs.rules[2].signal == "watermark"
    assert rs.rules[2].actions == ({"type": "review", "queue": "default"},)


@pytest.mark.parametrize(
    ("text", "line", "needle"),
    [
        ("rules:\n  - name: a\n    threshold: 0.5\n   bad: [\n", 4, "invalid YAML"),
        ("rules:\n  - name: a\n    treshold: 0.5\n", 3, "unknown key 'treshold'"),
        ("rules:\n  - name: a\n    threshold: 1.5\n", 3, "must be in [0.0, 1.0]"),
        ("rules:\n  - name: a\n    threshold: high\n", 3, "must be a number"),
        ("rules:\n  - name: a\n    threshold: .nan\n", 3, "must be a number"),
        ("rules:\n  - name: a\n    threshold: 0.5\n  - name: a\n    threshold: 0.6\n", 4, "duplicate rule"),
        ("rules:\n  - name: a\n    threshold: 0.5\n    threshold: 0.6\n", 4, "duplicate key 'threshold'"),
        ("rules:\n  - name: a\n    threshold: 0.5\n    sustain: {windows: 0}\n", 4, "between 1 and"),
        ("rules:\n  - name: a\n    threshold: 0.5\n    sustain: {windows: 2, seconds: 3}\n", 4, "exactly"),
        ("rules:\n  - name: a\n    threshold: 0.5\n    actions:\n      - webhook: ftp://x\n", 5, "http(s)"),
        ("rules:\n  - name: a\n    threshold: 0.5\n    actions: [page]\n", 4, "unknown action 'page'"),
        ("rules:\n  - name: a\n    threshold: 0.5\n    actions: [webhook]\n", 4, "needs a URL"),
        ("rules:\n  - name: a\n    threshold: 0.5\n    severity: loud\n", 4, "severity must be one of"),
        ("rules:\n  - threshold: 0.5\n", 2, "missing 'name'"),
        ("rules:\n  - name: a\n", 2, "missing 'threshold'"),
        ("rules:\n  - name: a\n    threshold: {}\n", 3, "empty"),
        ("version: 2\nrules: []\n", 1, "unsupported version"),
        ("rulez: []\n", 1, "unknown key 'rulez'"),
        ("version: 1\n", 1, "missing key 'rules'"),
        ("", 1, "empty rules file"),
        ("rules: 5\n", 1, "must be a list"),
        ("- a\n- b\n", 1, "must be a mapping"),
        ("rules:\n  - name: a\n    threshold: &x [1, 2]\n", 3, "single value"),
    ],
)
def test_bad_rules_name_line_and_reason(text: str, line: int, needle: str) -> None:
    with pytest.raises(RulesError) as ei:
        load_rules(text, source="rooms.yaml")
    e = ei.value
    assert e.line == line, str(e)
    assert needle in e.reason, str(e)
    assert str(e).startswith(f"rooms.yaml:{line}: ")


def test_hostile_rules_inputs() -> None:
    with pytest.raises(RulesError, match="larger than"):
        load_rules("#" * (2 << 20))
    with pytest.raises(RulesError, match="not UTF-8"):
        load_rules(b"rules: [\xff]")
    with pytest.raises(RulesError):  # python-specific tags are refused by the safe loader
        load_rules("rules:\n  - name: !!python/object/apply:os.system ['true']\n    threshold: 0.5\n")


def test_sustained_high_needs_consecutive_windows() -> None:
    eng = RulesEngine(load_rules("rules:\n  - name: s\n    threshold: 0.8\n    sustain: {windows: 3}\n"
                                 "    cooldown: 1000\n"))
    assert feed(eng, [0.9, 0.95, 0.2, 0.9, 0.9], speaker="a") == []  # a low window breaks the run
    alerts = feed(eng, [0.9, 0.95, 0.99, 0.9], speaker="b")
    assert len(alerts) == 1
    a = alerts[0]
    assert (a.start, a.run_start, a.windows, a.rule, a.speaker) == (4.0, 0.0, 3, "s", "b")
    assert a.window_start == 1_700_000_004.0 and a.key == "r|b|s|1700000004000"
    assert a.to_dict()["key"] == a.key and a.to_dict()["type"] == "alert"


def test_sustain_seconds_and_gated_windows() -> None:
    eng = RulesEngine(load_rules("rules:\n  - name: s\n    threshold: 0.8\n    sustain: {seconds: 8}\n"))
    # windows of 4 s every 2 s: the span first start → last end reaches 8 s at the third window
    assert [a.start for a in feed(eng, [0.9, 0.9, 0.9], speaker="a")] == [4.0]
    # one gated window in between still touches the run (start 4 <= previous end 4) ...
    assert [a.start for a in feed(eng, [0.9, None, 0.9], speaker="b")] == [4.0]
    # ... two gated windows leave unjudged audio: the run restarts
    assert feed(eng, [0.9, None, None, 0.9], speaker="c") == []
    eng2 = RulesEngine(load_rules("rules:\n  - name: s\n    threshold: 0.8\n    sustain: {seconds: 8}\n"
                                  "    max_gap: 2\n"))
    assert [a.start for a in feed(eng2, [0.9, None, None, 0.9], speaker="c")] == [6.0]


def test_cooldown_is_in_stream_time() -> None:
    eng = RulesEngine(load_rules("rules:\n  - name: s\n    threshold: 0.5\n    cooldown: 10\n"))
    alerts = feed(eng, [0.9] * 12)  # windows end at 4, 6, ..., 26 s
    assert [a.end for a in alerts] == [4.0, 14.0, 24.0]


def test_thresholds_per_room_type_and_room_filter() -> None:
    eng = RulesEngine(load_rules(GOOD))
    assert feed(eng, [0.85] * 3, room_type="default", speaker="a") == []
    got = feed(eng, [0.85] * 3, room_type="broadcast", speaker="b")
    assert [a.rule for a in got] == ["sustained-synthetic"] and got[0].threshold == 0.8
    assert got[0].severity == "critical" and got[0].actions[1]["url"].startswith("https://")
    assert [a.rule for a in feed(eng, [0.75], room_type="kids", speaker="c")] == ["kids-any"]


def test_watermark_signal() -> None:
    eng = RulesEngine(load_rules(GOOD))
    out = eng.evaluate(win(0, 0.1, wm={"present": True, "confidence": 0.95}))
    assert [a.rule for a in out] == ["labelled"] and out[0].signal == "watermark"
    assert eng.evaluate(win(1, 0.1, wm={"error": "boom"}), "default") == []
    assert eng.evaluate(win(2, 0.1, wm=None, speaker="z")) == []


def test_alert_keys_are_stable_across_a_replay_and_never_repeat() -> None:
    rules = load_rules("rules:\n  - name: s\n    threshold: 0.5\n    sustain: {windows: 2}\n"
                       "    cooldown: 4\n")
    probs = [0.1, 0.9, 0.9, 0.9, 0.2, 0.9, 0.9, 0.9, 0.9]
    first = [a.key for a in feed(RulesEngine(rules), probs)]
    replay = [a.key for a in feed(RulesEngine(rules), probs)]  # a fresh process after a crash
    assert first and first == replay
    assert len(set(first)) == len(first)
    eng = RulesEngine(rules)
    feed(eng, probs)
    assert all(eng.seen(k) for k in first)
    eng.forget("r", "s")  # the speaker reconnects without resume: run state resets, keys do not
    assert feed(eng, probs) == []


def test_holder_reloads_on_mtime_and_keeps_old_rules_on_error(tmp_path: Path) -> None:
    p = tmp_path / "rules.yaml"
    p.write_text("rules:\n  - name: one\n    threshold: 0.5\n")
    h = RulesHolder(p, check_interval=0.0)
    assert h.get().names() == ["one"]
    assert h.reload_if_changed() is False  # unchanged
    p.write_text("rules:\n  - name: two\n    threshold: 0.5\n")
    os.utime(p, ns=(1, 2_000_000_000_000_000_000))
    assert h.get().names() == ["two"] and h.reloads == 1
    p.write_text("rules:\n  - name: three\n    threshold: 7\n")
    os.utime(p, ns=(1, 3_000_000_000_000_000_000))
    assert h.get().names() == ["two"]
    assert h.last_error is not None and h.last_error.line == 3
    p.unlink()
    assert h.get().names() == ["two"] and "cannot read" in str(h.last_error)
    p.write_text("rules:\n  - name: four\n    threshold: 0.5\n")
    assert h.get().names() == ["four"] and h.last_error is None
    eng = RulesEngine(h)
    assert [a.rule for a in feed(eng, [0.9])] == ["four"]


def test_holder_first_load_must_succeed(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="cannot read"):
        RulesHolder(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - name: x\n")
    with pytest.raises(RulesError) as ei:
        RulesHolder(bad)
    assert ei.value.line == 2
