"""Live voice rooms: per-speaker streams scored in rolling windows, rules that raise alerts, events out.

Core only (no HTTP): a server layer parses nothing itself, it hands hellos and binary frames to a
``Hub`` and forwards the returned events. See docs/live.md for the wire format and the design.
"""

from voxwarden.live.codecs import CodecSpec, pack_frame, split_frame
from voxwarden.live.events import (
    Alert,
    CapacityError,
    Event,
    EventSink,
    FrameError,
    FrameRejected,
    GapDetected,
    HelloError,
    LiveError,
    MalformedFrameError,
    OversizedFrameError,
    RateLimitedError,
    ResumeError,
    SessionClosedError,
    SessionEnded,
    SessionStarted,
    WatermarkChecked,
    WindowScored,
    WindowsSkipped,
    alert_key,
)
from voxwarden.live.evidence import AudioTrail, EvidenceClip, wav_pcm16
from voxwarden.live.room import Hub, Room
from voxwarden.live.rules import (
    Rule,
    RulesEngine,
    RulesError,
    RuleSet,
    RulesHolder,
    load_rules,
    load_rules_file,
)
from voxwarden.live.stream import (
    Hello,
    RingBuffer,
    SessionCheckpoint,
    SessionStats,
    StreamOptions,
    StreamSession,
    parse_hello,
)
from voxwarden.live.watermark import WatermarkWorker

__all__ = [
    "Alert",
    "AudioTrail",
    "CapacityError",
    "CodecSpec",
    "Event",
    "EventSink",
    "EvidenceClip",
    "FrameError",
    "FrameRejected",
    "GapDetected",
    "Hello",
    "HelloError",
    "Hub",
    "LiveError",
    "MalformedFrameError",
    "OversizedFrameError",
    "RateLimitedError",
    "ResumeError",
    "RingBuffer",
    "Room",
    "Rule",
    "RuleSet",
    "RulesEngine",
    "RulesError",
    "RulesHolder",
    "SessionCheckpoint",
    "SessionClosedError",
    "SessionEnded",
    "SessionStarted",
    "SessionStats",
    "StreamOptions",
    "StreamSession",
    "WatermarkChecked",
    "WatermarkWorker",
    "WindowScored",
    "WindowsSkipped",
    "alert_key",
    "load_rules",
    "load_rules_file",
    "pack_frame",
    "parse_hello",
    "split_frame",
    "wav_pcm16",
]
