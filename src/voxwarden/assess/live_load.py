"""The live-monitoring measurement of `voxwarden assess`: a short in-process load run of the live core.

N rooms (one speaker each) stream speech as 20 ms PCM16 frames in real time through a `voxwarden.live.Hub`
with the deployment's rules; some rooms carry synthetic speech, the others bona fide speech. One worker
takes the frames in arrival order, as a server's ingest loop does; a frame that waited longer than
``max_queue_s`` is dropped (a bounded ingest buffer), so an overloaded run shows up as dropped frames,
not as an ever-growing delay. Measured:

- **alert latency**: wall time from the arrival of the frame that completed the window which made a rule
  fire to the moment the alert reached the event sink (queueing + decode + VAD + model + rules), p50/p95;
- **time to first alert** per synthetic room, from its first frame (includes the window length);
- windows scored per second, per-window processing latency, frames dropped, rejected or rate-limited;
- **real-time capacity**: seconds of audio processed per second of processing — the number of real-time
  rooms one worker holds; rooms alerted (synthetic: detection; bona fide: false alarms).
"""

from __future__ import annotations

import math
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

SR = 16000
FRAME_MS = 20
FRAME_N = SR * FRAME_MS // 1000
MAX_CLIPS = 40  # clips decoded per kind: enough speech for any load run, bounded memory and start-up time


class LiveLoadError(RuntimeError):
    """The load run could not start (no speech to stream, bad rules file, no model)."""


@dataclass
class LiveLoadConfig:
    """`live.load` of assessment.yaml: how many rooms, for how long, with which rules and speech."""

    rooms: int = 4
    seconds: float = 6.0
    synthetic_rooms: int | None = None  # None: half of the rooms, rounded up
    rules: Path | None = None  # the deployment's rules file; None: one rule at the model's threshold
    model: str | None = None  # None: detection.model (or the packaged default)
    max_queue_s: float = 2.0
    synthetic_clips: list[Path] = field(default_factory=list)  # empty: the detection set's spoofs, else TTS
    bonafide_clips: list[Path] = field(default_factory=list)  # empty: the detection set's bona fide


@dataclass
class LiveLoadResult:
    """What one load run measured (``to_figures`` is the ``live`` section of figures.json)."""

    rooms: int
    synthetic_rooms: int
    seconds: float
    rules: list[str]
    rules_source: str
    model_id: str
    speech_source: str
    wall_s: float
    busy_s: float
    frames_sent: int
    frames_dropped: int
    frames_rejected: int
    frames_rate_limited: int
    windows_scored: int
    windows_silent: int
    windows_skipped: int  # the live core's backlog bound skipped them unscored (overload)
    window_latency_ms: list[float]
    alert_latency_s: list[float]
    first_alert_s: dict[str, float]
    alerted_rooms: dict[str, int]  # room id -> alerts
    max_lag_s: float
    notes: list[str] = field(default_factory=list)

    @property
    def audio_s(self) -> float:
        return self.frames_sent * FRAME_MS / 1000.0

    def to_figures(self) -> dict[str, Any]:
        def pct(xs: list[float], q: float) -> float | None:
            return float(np.percentile(xs, q)) if xs else None

        syn = [f"room{r}" for r in range(self.synthetic_rooms)]
        bona = [f"room{r}" for r in range(self.synthetic_rooms, self.rooms)]
        processed_s = (self.frames_sent - self.frames_dropped) * FRAME_MS / 1000.0
        return {
            "rooms": self.rooms, "synthetic_rooms": self.synthetic_rooms, "bonafide_rooms": len(bona),
            "seconds": self.seconds, "rules": self.rules, "rules_source": self.rules_source,
            "model_id": self.model_id, "speech_source": self.speech_source,
            "wall_s": round(self.wall_s, 3), "busy_s": round(self.busy_s, 3),
            "frames_sent": self.frames_sent, "frames_dropped": self.frames_dropped,
            "frames_rejected": self.frames_rejected, "frames_rate_limited": self.frames_rate_limited,
            "dropped_frames": self.frames_dropped + self.frames_rejected + self.frames_rate_limited,
            "windows_scored": self.windows_scored, "windows_silent": self.windows_silent,
            "windows_skipped": self.windows_skipped,
            "windows_per_s": self.windows_scored / self.wall_s if self.wall_s > 0 else None,
            "window_latency_ms_p50": pct(self.window_latency_ms, 50),
            "window_latency_ms_p95": pct(self.window_latency_ms, 95),
            "alerts": len(self.alert_latency_s),
            "alert_latency_s_p50": pct(self.alert_latency_s, 50),
            "alert_latency_s_p95": pct(self.alert_latency_s, 95),
            "first_alert_s_p50": pct(list(self.first_alert_s.values()), 50),
            "first_alert_s_max": max(self.first_alert_s.values()) if self.first_alert_s else None,
            "synthetic_rooms_alerted": sum(1 for r in syn if self.alerted_rooms.get(r)),
            "bonafide_rooms_alerted": sum(1 for r in bona if self.alerted_rooms.get(r)),
            "rooms_held_realtime": (processed_s / self.busy_s) if self.busy_s > 0 else None,
            "kept_up": self.frames_dropped == 0 and self.windows_skipped == 0 and self.max_lag_s < 1.0,
            "max_lag_s": round(self.max_lag_s, 3),
            "notes": self.notes,
        }


def default_rules_text(threshold: float) -> str:
    """The rule used when the config names no rules file: one window at the model's threshold."""
    return ("version: 1\nrules:\n  - name: assess-synthetic-voice\n"
            f"    threshold: {threshold:.6g}\n    sustain: {{windows: 1}}\n    severity: critical\n")


def load_speech(paths: list[Path], seconds: float) -> np.ndarray:
    """The clips decoded to 16 kHz mono and concatenated (repeated) to at least `seconds` of audio; a clip
    that cannot be decoded is skipped (the detection step reports it), none usable is a `LiveLoadError`."""
    from voxwarden.audio import AudioError, load

    parts = []
    for p in paths:
        try:
            parts.append(load(p, sr=SR).samples)
        except AudioError:
            continue
    parts = [p for p in parts if p.size]
    if not parts:
        raise LiveLoadError(f"no decodable audio in the {len(paths)} clip(s) given for the live load run")
    x = np.concatenate(parts).astype(np.float32)
    reps = max(1, math.ceil(seconds * SR / x.size) + 1)
    return np.tile(x, reps)


def tts_speech(work: Path, seconds: float) -> np.ndarray:
    """Synthetic speech from espeak-ng (the fallback when no spoof clips are configured)."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise LiveLoadError("no synthetic clips configured and espeak-ng is not installed")
    work.mkdir(parents=True, exist_ok=True)
    text = ("Please confirm the transfer now, this is your bank calling about an urgent security matter "
            "on your account, and we need the code we just sent you.")
    out = work / "tts.wav"
    subprocess.run([exe, "-v", "en-us", "-s", "150", "-w", str(out), text], capture_output=True, timeout=60,
                   check=True)
    return load_speech([out], seconds)


def _frames(x: np.ndarray, offset: int, n_frames: int) -> list[bytes]:
    a = np.clip(np.round(x * 32767), -32768, 32767).astype("<i2")
    n = a.size
    out = []
    for k in range(n_frames):
        i = (offset + k * FRAME_N) % max(1, n - FRAME_N)
        out.append(a[i:i + FRAME_N].tobytes())
    return out


def plan_rooms(cfg: Any, bonafide: np.ndarray | None) -> tuple[int, list[str]]:
    """How many of `cfg.rooms` stream synthetic speech (default: half, rounded up; all when there is no
    bona fide speech), and the notes that explain a change to the plan."""
    n_syn = cfg.synthetic_rooms if cfg.synthetic_rooms is not None else (cfg.rooms + 1) // 2
    notes: list[str] = []
    if bonafide is None and n_syn < cfg.rooms:
        notes.append(f"no bona fide speech: all {cfg.rooms} rooms stream synthetic speech")
        n_syn = cfg.rooms
    return min(n_syn, cfg.rooms), notes


def run_live_load(det: Any, rules_text: str, rules_source: str, synthetic: np.ndarray,
                  bonafide: np.ndarray | None, cfg: LiveLoadConfig, speech_source: str,
                  *, clock: Any = time.perf_counter, sleep: Any = time.sleep) -> LiveLoadResult:
    """Stream `cfg.rooms` rooms for `cfg.seconds` in real time through a Hub and measure (module docstring)."""
    from voxwarden.live import (
        Alert,
        FrameError,
        Hub,
        RateLimitedError,
        RulesEngine,
        StreamOptions,
        WindowScored,
        load_rules,
    )

    ruleset = load_rules(rules_text, source=rules_source)
    n_syn, notes = plan_rooms(cfg, bonafide)
    n_frames = int(round(cfg.seconds * 1000 / FRAME_MS))
    hop_frames = max(1, int(round(float(det.card.hop) * 1000 / FRAME_MS)))
    starts = [r * hop_frames // max(1, cfg.rooms) for r in range(cfg.rooms)]  # speakers do not start together
    room_frames = []
    for r in range(cfg.rooms):
        src = synthetic if r < n_syn else bonafide
        assert src is not None
        room_frames.append(_frames(src, (r * 7919 * FRAME_N) % src.size, n_frames))

    current = {"arrival": 0.0}
    win_lat: list[float] = []
    alert_lat: list[float] = []
    first_alert: dict[str, float] = {}
    alerted: dict[str, int] = {}
    t0 = clock()
    first_arrival = {f"room{r}": t0 + starts[r] * FRAME_MS / 1000.0 for r in range(cfg.rooms)}

    def sink(ev: Any) -> None:
        now = clock()
        if isinstance(ev, WindowScored):
            win_lat.append(float(ev.latency_ms))
        elif isinstance(ev, Alert):
            alert_lat.append(now - current["arrival"])
            alerted[ev.room] = alerted.get(ev.room, 0) + 1
            first_alert.setdefault(ev.room, now - first_arrival[ev.room])

    hub = Hub(det, rules=RulesEngine(ruleset), sink=sink, options=StreamOptions(max_speed=None))
    sessions = []
    for r in range(cfg.rooms):
        s, _ = hub.open({"room": f"room{r}", "speaker": "speaker", "codec": "pcm16", "sample_rate": SR})
        sessions.append(s)

    busy = 0.0
    dropped = rejected = rate_limited = 0
    max_lag = 0.0
    sent = 0
    last_arrival = [t0] * cfg.rooms
    total_ticks = n_frames + max(starts)
    for tick in range(total_ticks):
        due = t0 + tick * FRAME_MS / 1000.0
        now = clock()
        if due > now:
            sleep(due - now)
        for r, s in enumerate(sessions):
            k = tick - starts[r]
            if not 0 <= k < n_frames:
                continue
            sent += 1
            last_arrival[r] = due
            now = clock()
            lag = now - due
            max_lag = max(max_lag, lag)
            if lag > cfg.max_queue_s:
                dropped += 1  # the bounded ingest buffer overflowed: this frame is lost
                continue
            current["arrival"] = due
            t = clock()
            try:
                s.push(k, room_frames[r][k])
            except RateLimitedError:
                rate_limited += 1
            except FrameError:
                rejected += 1
            busy += clock() - t
    for r, s in enumerate(sessions):  # speakers leave: each stream's tail window is scored at close
        current["arrival"] = last_arrival[r]
        t = clock()
        hub.close(s)
        busy += clock() - t
    wall = clock() - t0
    stats = [s.stats for s in sessions]
    return LiveLoadResult(
        rooms=cfg.rooms, synthetic_rooms=n_syn, seconds=cfg.seconds, rules=ruleset.names(),
        rules_source=rules_source, model_id=det.model_id, speech_source=speech_source, wall_s=wall,
        busy_s=busy, frames_sent=sent, frames_dropped=dropped, frames_rejected=rejected,
        frames_rate_limited=rate_limited, windows_scored=sum(st.windows_scored for st in stats),
        windows_silent=sum(st.windows_silent for st in stats),
        windows_skipped=sum(int(getattr(st, "windows_skipped", 0)) for st in stats), window_latency_ms=win_lat,
        alert_latency_s=alert_lat, first_alert_s=first_alert, alerted_rooms=alerted, max_lag_s=max_lag,
        notes=notes,
    )


def measure_live(cfg: LiveLoadConfig, detection: Any, out_dir: Path, service: Any = None) -> Any:
    """The assess step: pick speech (config clips, else the detection set, else TTS), run the load, and
    return a `Measured` with the ``live`` evidence (monitoring measured, alert latency p95) and a chart.
    With `service` (a `ServiceConfig`) the rooms stream through the deployed service's WebSocket instead."""
    from voxwarden.assess.checklist import Fact
    from voxwarden.assess.measure import Measured, bar_chart
    from voxwarden.live import RulesError

    m = Measured()
    syn_paths, bona_paths = list(cfg.synthetic_clips), list(cfg.bonafide_clips)
    syn_src = bona_src = "config clips"
    if detection is not None and (not syn_paths or not bona_paths):
        from voxwarden.detect.protocol import read_protocol, resolve_audio

        rows = read_protocol(detection.protocol)[: detection.max_trials]
        test_set = f"detection test set ({detection.eval_dataset})"
        if not syn_paths:
            syn_paths, syn_src = [resolve_audio(r, detection.audio_dir) for r in rows if r.is_spoof], test_set
        if not bona_paths:
            bona_paths, bona_src = [resolve_audio(r, detection.audio_dir) for r in rows if not r.is_spoof], test_set
    syn_paths = [p for p in syn_paths if Path(p).is_file()][:MAX_CLIPS]
    bona_paths = [p for p in bona_paths if Path(p).is_file()][:MAX_CLIPS]
    if syn_paths:
        synthetic = load_speech(syn_paths, cfg.seconds)
    else:
        with tempfile.TemporaryDirectory(prefix="voxwarden-live-") as td:
            synthetic = tts_speech(Path(td), cfg.seconds)
        syn_src = "espeak-ng TTS"
    bonafide = load_speech(bona_paths, cfg.seconds) if bona_paths else None
    source = f"synthetic: {syn_src}; bona fide: {bona_src if bonafide is not None else 'none'}"
    if service is not None:
        from voxwarden.assess.service import preflight, run_live_load_service

        res = run_live_load_service(service, cfg, synthetic, bonafide, source, preflight(service))
        if cfg.rules is not None:
            res.notes.append(f"live.load.rules {cfg.rules} not used: the service applies its own rules")
        return _live_measured(m, res, cfg, out_dir, Fact, bar_chart, via=service.url)
    from voxwarden.detect import Detector

    det = Detector.load(cfg.model or (detection.model if detection is not None else None))
    if cfg.rules is not None:
        try:
            rules_text = cfg.rules.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise LiveLoadError(f"cannot read rules file {cfg.rules}: {e}") from e
        rules_source = str(cfg.rules)
    else:
        rules_text, rules_source = default_rules_text(det.threshold), "built-in: one window at the model threshold"
    try:
        res = run_live_load(det, rules_text, rules_source, synthetic, bonafide, cfg, source)
    except RulesError as e:
        raise LiveLoadError(f"rules: {e}") from e
    return _live_measured(m, res, cfg, out_dir, Fact, bar_chart, via=None)


def _live_measured(m: Any, res: LiveLoadResult, cfg: LiveLoadConfig, out_dir: Path, Fact: Any,  # noqa: N803
                   bar_chart: Any, via: str | None) -> Any:
    """Figures, evidence, errors and the latency chart of a load run (in-process or via a service)."""
    f = res.to_figures()
    f["measured_via"] = f"via {via} (WebSocket /v1/rooms/{{id}}/stream)" if via else "in-process"
    m.figures = f
    detail = (f"{f['rooms']} rooms ({f['synthetic_rooms']} synthetic) x {cfg.seconds:g} s in real time, "
              f"{f['alerts']} alerts, {f['windows_scored']} windows, {f['dropped_frames']} frames dropped; "
              f"model {res.model_id}; rules {res.rules_source}" + (f"; measured via {via}" if via else ""))
    if f["windows_scored"] > 0:
        m.evidence["monitoring_enabled"] = Fact(True, source="measured:live-load", detail=detail)
    if f["alert_latency_s_p95"] is not None:
        m.evidence["alert_latency_p95_s"] = Fact(round(f["alert_latency_s_p95"], 3), source="measured:live-load",
                                                 detail=detail)
    elif f["synthetic_rooms"]:
        m.errors.append(f"live: no alert in {f['synthetic_rooms']} synthetic room(s) in {cfg.seconds:g} s: "
                        "alert latency not measured")
    if via:  # rooms the service refused or lost (key without scope `rooms`, capacity, connection errors)
        m.errors += [f"live via {via}: {n}" for n in res.notes if not n.startswith("live.load.rules")]
    if f["dropped_frames"]:
        m.errors.append(f"live: {f['dropped_frames']} frame(s) dropped under load")
    if f["windows_skipped"]:
        m.errors.append(f"live: {f['windows_skipped']} window(s) skipped unscored under load (backlog bound)")
    out_dir.mkdir(parents=True, exist_ok=True)
    bars = {k: v for k, v in (("alert p50", f["alert_latency_s_p50"]), ("alert p95", f["alert_latency_s_p95"]),
                              ("first alert p50", f["first_alert_s_p50"]),
                              ("first alert max", f["first_alert_s_max"])) if v is not None}
    if bars:
        p = out_dir / "live_latency.png"
        bar_chart(bars, p, f"Live alert latency (s), {f['rooms']} rooms", scale=1.0, ylabel="seconds")
        m.charts["live_latency"] = p
    return m
