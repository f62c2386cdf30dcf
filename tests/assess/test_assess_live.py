"""The live-monitoring measurement: a real-time load run of the live core (2 rooms x 3 s), the ingest
queue dropping frames under a stall, the config of `live.load`, and the evidence it gives the controls.
Speech: the bundled example clips (an espeak-ng spoof and a human recording)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from voxwarden.assess.config import AssessConfigError, load_config
from voxwarden.assess.live_load import (
    LiveLoadConfig,
    default_rules_text,
    load_speech,
    measure_live,
    run_live_load,
)

REPO = Path(__file__).resolve().parents[2]
AUDIO = REPO / "examples" / "audio"
SPOOF = AUDIO / "espeak-bank-call.m4a"
HUMAN = AUDIO / "human-allison-prompt.flac"


@pytest.fixture(scope="module")
def det() -> Any:
    from voxwarden.detect import Detector

    return Detector.load()


def test_two_rooms_three_seconds_real_time(det: Any) -> None:
    cfg = LiveLoadConfig(rooms=2, seconds=3.0)
    res = run_live_load(det, default_rules_text(det.threshold), "test", load_speech([SPOOF], 3.0),
                        load_speech([HUMAN], 3.0), cfg, "example clips")
    f = res.to_figures()
    assert f["rooms"] == 2 and f["synthetic_rooms"] == 1 and f["bonafide_rooms"] == 1
    assert f["frames_sent"] == 2 * 150 and f["dropped_frames"] == 0 and f["kept_up"] is True
    assert 3.0 <= f["wall_s"] < 10.0  # fed in real time, not as fast as possible
    assert f["windows_scored"] >= 2  # a 3 s stream is shorter than a 4 s window: the tail window at close
    assert f["synthetic_rooms_alerted"] == 1 and f["bonafide_rooms_alerted"] == 0
    assert f["alerts"] >= 1 and 0.0 <= f["alert_latency_s_p50"] <= f["alert_latency_s_p95"] < 2.0
    assert 2.5 <= f["first_alert_s_max"] < 6.0  # the speaker's audio had to arrive first
    assert f["windows_per_s"] > 0 and f["rooms_held_realtime"] > 1.0
    assert f["window_latency_ms_p95"] is not None and f["window_latency_ms_p95"] > 0


class StepClock:
    """Virtual time for the drop test: sleeps advance it, each call ticks 1 ms, `stall` jumps ahead."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        self.t += 0.001
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s


def test_a_stalled_worker_drops_frames_past_the_queue_limit(det: Any) -> None:
    from voxwarden.live import Hub

    clock = StepClock()
    real_open = Hub.open

    def open_and_stall(self: Hub, hello: Any, checkpoint: Any = None) -> Any:  # the sink stalls 3 s per window
        s, ev = real_open(self, hello, checkpoint)
        inner = s.sink

        def slow_sink(e: Any) -> None:
            inner(e)
            if type(e).__name__ == "WindowScored":
                clock.t += 3.0

        s.sink = slow_sink
        return s, ev

    cfg = LiveLoadConfig(rooms=1, seconds=10.0, max_queue_s=0.5)
    mp = pytest.MonkeyPatch()
    mp.setattr(Hub, "open", open_and_stall)
    try:
        res = run_live_load(det, default_rules_text(det.threshold), "test", load_speech([SPOOF], 10.0), None,
                            cfg, "example clips", clock=clock, sleep=clock.sleep)
    finally:
        mp.undo()
    f = res.to_figures()
    assert f["frames_dropped"] > 100 and f["kept_up"] is False  # 3 s stalls vs a 0.5 s queue
    assert f["frames_sent"] == 500 and f["dropped_frames"] == f["frames_dropped"]
    assert f["max_lag_s"] >= 2.9


def test_measure_live_gives_control_evidence(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("version: 1\nrules:\n  - name: deployed-rule\n    threshold: 0.5\n", encoding="utf-8")
    cfg = LiveLoadConfig(rooms=2, seconds=3.0, rules=rules, synthetic_clips=[SPOOF], bonafide_clips=[HUMAN])
    m = measure_live(cfg, None, tmp_path / "live")
    assert m.evidence["monitoring_enabled"].value is True
    assert m.evidence["monitoring_enabled"].source == "measured:live-load"
    p95 = m.evidence["alert_latency_p95_s"].value
    assert 0.0 <= p95 < 2.0 and p95 == round(m.figures["alert_latency_s_p95"], 3)
    assert m.figures["rules"] == ["deployed-rule"] and m.figures["rules_source"] == str(rules)
    assert (tmp_path / "live" / "live_latency.png").stat().st_size > 1000
    assert m.errors == []


def test_measure_live_no_alert_is_reported_not_invented(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"  # a rule that can never fire: no latency to report
    rules.write_text("version: 1\nrules:\n  - name: never\n    threshold: 1.0\n", encoding="utf-8")
    cfg = LiveLoadConfig(rooms=1, seconds=3.0, rules=rules, synthetic_clips=[SPOOF])
    m = measure_live(cfg, None, tmp_path / "live")
    assert "alert_latency_p95_s" not in m.evidence and m.figures["alerts"] == 0
    assert any("no alert in 1 synthetic room" in e for e in m.errors)


def _cfg(tmp_path: Path, live: Any) -> Path:
    p = tmp_path / "a.yaml"
    p.write_text(yaml.safe_dump({"platform": {"name": "x", "features": ["live_rooms"]}, "live": live}),
                 encoding="utf-8")
    return p


def test_live_config_forms(tmp_path: Path) -> None:
    clip = tmp_path / "s.flac"
    clip.write_bytes(SPOOF.read_bytes())
    c = load_config(_cfg(tmp_path, {"monitoring_enabled": True}))  # the first (flat) form: declared facts
    assert c.live is None and c.declared["live"] == {"monitoring_enabled": True}
    c = load_config(_cfg(tmp_path, {"load": {"rooms": 2, "seconds": 3, "synthetic_clips": ["s.flac"]},
                                    "declared": {"synthetic_voice_allowed": False}}))
    assert c.live is not None and (c.live.rooms, c.live.seconds) == (2, 3.0)
    assert c.live.synthetic_clips == [clip] and c.declared["live"] == {"synthetic_voice_allowed": False}
    c = load_config(_cfg(tmp_path, {"load": None, "declared": {"monitoring_enabled": True}}))
    assert c.live is None


@pytest.mark.parametrize(
    ("load", "needle"),
    [
        ({"rooms": 0}, "live.load.rooms"),
        ({"rooms": 1000}, "live.load.rooms"),
        ({"seconds": 0.2}, "live.load.seconds"),
        ({"seconds": "long"}, "live.load.seconds"),
        ({"rooms": 2, "synthetic_rooms": 3}, "live.load.synthetic_rooms"),
        ({"roms": 2}, "unknown field(s) roms"),
        ({"max_queue_s": 0}, "live.load.max_queue_s"),
        ({"synthetic_clips": ["absent.wav"]}, "does not exist"),
        ({"rules": "bad-rules.yaml"}, "live.load.rules"),
    ],
)
def test_live_config_errors(tmp_path: Path, load: dict[str, Any], needle: str) -> None:
    (tmp_path / "bad-rules.yaml").write_text("version: 1\nrules:\n  - name: x\n    threshold: 7\n", encoding="utf-8")
    with pytest.raises(AssessConfigError, match=re.escape(needle)):
        load_config(_cfg(tmp_path, {"load": load}))


def test_undecodable_clips_are_a_clear_error(tmp_path: Path) -> None:
    from voxwarden.assess.live_load import LiveLoadError

    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all" * 10)
    x = load_speech([bad, HUMAN], 2.0)  # the bad clip is skipped, the good one used
    assert x.size >= 2 * 16000
    with pytest.raises(LiveLoadError, match="no decodable audio in the 1 clip"):
        load_speech([bad], 2.0)
