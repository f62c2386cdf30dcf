"""What the live core tells the outside world: typed errors and event dataclasses.

Every event has a ``type`` and a ``to_dict()`` that is the JSON the server sends to clients and hands to
the store. Errors carry a stable ``code`` so the edges can map them to WebSocket close codes / HTTP
statuses without parsing messages.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

from voxwarden.live.evidence import EvidenceClip

log = logging.getLogger("voxwarden.live")


# -- errors --------------------------------------------------------------------------------------


class LiveError(Exception):
    """Base class of every error the live core raises on bad client input."""

    code = "live_error"
    #: False: the session stays usable after this error (a bad frame); True: the client must start over.
    fatal = False

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.code, "message": str(self), "fatal": self.fatal}


class HelloError(LiveError):
    """The hello message is not valid JSON, misses a field or names something we do not support."""

    code = "bad_hello"
    fatal = True


class FrameError(LiveError):
    """One audio frame could not be used; the session goes on with the next frame."""

    code = "bad_frame"


class MalformedFrameError(FrameError):
    """The frame's bytes are not what the codec promised (odd PCM length, undecodable Opus, bad header)."""

    code = "malformed_frame"


class OversizedFrameError(FrameError):
    """The frame is larger than the configured maximum (bytes or seconds)."""

    code = "oversized_frame"


class RateLimitedError(FrameError):
    """Audio arrives much faster than real time; the frame is not acknowledged, the client should slow
    down and resend it."""

    code = "rate_limited"


class CapacityError(LiveError):
    """The server holds as many rooms, or the room as many speakers, as it is configured for."""

    code = "capacity"
    fatal = True


class SessionClosedError(LiveError):
    """Audio was pushed to a session that has been closed."""

    code = "session_closed"
    fatal = True


class ResumeError(LiveError):
    """A resume hello (or checkpoint) that does not match the session it tries to resume."""

    code = "bad_resume"
    fatal = True


# -- events --------------------------------------------------------------------------------------


@dataclass
class Event:
    """Base of all events: which room and speaker it is about."""

    type: ClassVar[str] = "event"
    room: str
    speaker: str

    def to_dict(self) -> dict[str, Any]:
        d = {"type": self.type}
        d.update(asdict(self))
        return d


@dataclass
class SessionStarted(Event):
    """A hello was accepted. ``last_acked_seq`` tells a resuming client where to restart sending."""

    type: ClassVar[str] = "session_started"
    session: str = ""
    codec: str = ""
    sample_rate: int = 0
    channels: int = 1
    room_type: str = "default"
    resumed: bool = False
    last_acked_seq: int | None = None
    window: float = 0.0
    hop: float = 0.0
    model: str | None = None


@dataclass
class WindowScored(Event):
    """One scored window of a speaker's audio (the live twin of ``detect.Segment``).

    ``start``/``end`` are seconds since the stream began; ``stream_start`` is the stream's epoch (Unix
    seconds), so ``stream_start + start`` is wall-clock time. ``seq`` is the last frame in the window.
    """

    type: ClassVar[str] = "window"
    session: str = ""
    index: int = 0
    start: float = 0.0
    end: float = 0.0
    stream_start: float = 0.0
    score: float = 0.0
    probability: float = 0.0
    flagged: bool = False
    speech_fraction: float = 0.0
    seq: int | None = None
    model: str | None = None
    watermark: dict[str, Any] | None = None
    latency_ms: float = 0.0


@dataclass
class Alert(Event):
    """A rule fired. ``key`` is the natural key (room, speaker, rule, window start): a replay of the same
    stream after a crash produces the same key, so a store that upserts on it never duplicates alerts."""

    type: ClassVar[str] = "alert"
    session: str = ""
    rule: str = ""
    severity: str = "warning"
    window_start: float = 0.0  # absolute, Unix seconds, millisecond precision
    window_end: float = 0.0
    start: float = 0.0  # seconds since the stream began (the window that made the rule fire)
    end: float = 0.0
    run_start: float = 0.0  # where the sustained run began (stream seconds)
    windows: int = 0  # windows in the sustained run
    probability: float = 0.0
    threshold: float = 0.0
    signal: str = "probability"
    actions: list[dict[str, Any]] = field(default_factory=list)
    reason: str = ""
    # a watermark alert: the check that fired it (present, payload, confidence, seconds, span start/end)
    watermark: dict[str, Any] | None = None
    # the audio of run_start..end as the session kept it (see live.evidence); the sink stores it. Not in
    # the JSON: ``to_dict`` carries only its summary (kept span, truncation) under "evidence".
    evidence: EvidenceClip | None = field(default=None, repr=False, compare=False)

    @property
    def key(self) -> str:
        return alert_key(self.room, self.speaker, self.rule, self.window_start)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": self.type}
        for f in fields(self):
            if f.name != "evidence":
                d[f.name] = copy.deepcopy(getattr(self, f.name))
        d["evidence"] = self.evidence.summary() if self.evidence is not None else None
        d["key"] = self.key
        return d


@dataclass
class WatermarkChecked(Event):
    """The result of one watermark check, sent when the check is over (after the window that was due
    with it: checks run in their own worker, off the window path). ``start``/``end``: the span checked,
    stream seconds. ``present``: True / False, or None when the check did not judge (``error`` or
    ``skipped`` set), which rules treat as unjudged. ``latency_ms``: from the window's cut to the result."""

    type: ClassVar[str] = "watermark"
    session: str = ""
    start: float = 0.0
    end: float = 0.0
    stream_start: float = 0.0
    present: bool | None = None
    payload: str | None = None
    confidence: float | None = None
    seconds: float = 0.0
    error: str | None = None
    skipped: str | None = None
    latency_ms: float = 0.0

    def result(self) -> dict[str, Any]:
        """The check as the alert it fires keeps it (``Alert.watermark``, stored in the alert's details)."""
        return {k: getattr(self, k) for k in ("present", "payload", "confidence", "seconds", "start", "end",
                                               "error", "skipped")}


@dataclass
class FrameRejected(Event):
    """A frame was refused (malformed, oversized); the session goes on."""

    type: ClassVar[str] = "frame_rejected"
    session: str = ""
    seq: int | None = None
    error: dict[str, Any] = field(default_factory=dict)


@dataclass
class GapDetected(Event):
    """Sequence numbers jumped: ``missing`` frames never arrived. Short gaps are filled with silence;
    longer ones restart the windowing so no window splices audio across the hole."""

    type: ClassVar[str] = "gap"
    session: str = ""
    expected_seq: int = 0
    got_seq: int = 0
    missing: int = 0
    seconds: float = 0.0
    concealed: bool = True


@dataclass
class WindowsSkipped(Event):
    """Overload: complete windows waited longer than the backlog bound allows and were skipped, oldest
    first, without being scored. Their frames were taken (acknowledged) and stay on the timeline; only the
    judgement of ``start``..``end`` (stream seconds) is missing. ``total`` counts the session's skips."""

    type: ClassVar[str] = "windows_skipped"
    session: str = ""
    count: int = 0
    start: float = 0.0
    end: float = 0.0
    reason: str = "backlog"
    total: int = 0


@dataclass
class SessionEnded(Event):
    """The session was closed; carries its final counters."""

    type: ClassVar[str] = "session_ended"
    session: str = ""
    stats: dict[str, Any] = field(default_factory=dict)


EventSink = Callable[[Event], None]


def alert_key(room: str, speaker: str, rule: str, window_start: float) -> str:
    """The natural key of an alert; window start in whole milliseconds so float noise cannot split it."""
    return f"{room}|{speaker}|{rule}|{int(round(window_start * 1000))}"


def emit(sink: EventSink | None, events: list[Event]) -> int:
    """Hand events to a sink; a failing sink is logged, never allowed to kill the stream. Returns failures."""
    if sink is None:
        return 0
    failures = 0
    for ev in events:
        try:
            sink(ev)
        except Exception:  # noqa: BLE001 - a store hiccup must not end a live room
            failures += 1
            log.exception("event sink failed on %s event for %s/%s", ev.type, ev.room, ev.speaker)
    return failures
