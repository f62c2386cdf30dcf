"""Rooms hold the speakers' stream sessions; the ``Hub`` maps hellos to rooms (what a server talks to).

    hub = Hub(Detector.load(), rules=RulesEngine(RulesHolder("rules.yaml")), sink=store_events)
    session, started = hub.open(hello_json)      # HelloError / ResumeError on a bad hello
    for frame in websocket: send(session.handle(frame))
    hub.detach(session)                           # connection dropped: kept `linger` s for a resume
    hub.close(session)                            # speaker left: tail window, SessionEnded

Room types (which thresholds apply) are the server's decision, never the client's: pass
``room_type_of(room_id)``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from voxwarden.live.events import CapacityError, Event, EventSink, ResumeError, emit
from voxwarden.live.rules import DEFAULT_ROOM_TYPE, RulesEngine
from voxwarden.live.stream import (
    AsyncNotify,
    Hello,
    SessionCheckpoint,
    SpeechMeter,
    StreamOptions,
    StreamSession,
    WatermarkChecker,
    WindowScorer,
    parse_hello,
)
from voxwarden.live.watermark import WatermarkWorker


@dataclass
class _Entry:
    session: StreamSession
    detached_at: float | None = None


@dataclass
class Room:
    """One voice room: its type, and the live session of each speaker in it."""

    room_id: str
    detector: WindowScorer
    room_type: str = DEFAULT_ROOM_TYPE
    rules: RulesEngine | None = None
    sink: EventSink | None = None
    watermark: WatermarkChecker | None = None
    speech_meter: SpeechMeter | None = None
    options: StreamOptions = field(default_factory=StreamOptions)
    linger: float = 60.0  # seconds a detached session waits for its speaker to resume
    max_speakers: int = 1000
    clock: Callable[[], float] = time.monotonic
    watermark_worker: WatermarkWorker | None = None  # None: the room makes its own (thread started on use)
    notify: AsyncNotify | None = None  # gets the events of finished watermark checks (worker thread)

    def __post_init__(self) -> None:
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()
        if self.watermark_worker is None:
            self.watermark_worker = WatermarkWorker()

    @property
    def sessions(self) -> dict[str, StreamSession]:
        """Speaker id → session (attached or waiting for a resume)."""
        with self._lock:
            return {k: e.session for k, e in self._entries.items()}

    def open(self, hello: Hello, checkpoint: SessionCheckpoint | None = None) -> tuple[StreamSession, Event]:
        """Start (or, with ``resume``, continue) the speaker's session; returns it and its started event.

        A resume continues the existing session when codec, rate, channels and (if given) session id
        match, so the client resends from ``last_acked_seq + 1``. With no live session but a
        ``checkpoint`` (the store's copy, after a server restart) the session is rebuilt from it; with
        neither a fresh one starts (``resumed`` false, ``last_acked_seq`` None: the client sends all it
        still has). A plain hello for a speaker who already has a session closes the old one first.
        """
        if hello.room != self.room_id:
            raise ValueError(f"hello for room {hello.room!r} given to room {self.room_id!r}")
        ended: list[Event] = []
        with self._lock:
            self._reap_locked(ended)
            entry = self._entries.get(hello.speaker)
            if entry is not None and hello.resume:
                old = entry.session
                if old.hello.codec != hello.codec:
                    raise ResumeError(
                        f"resume of {hello.speaker!r} with {hello.codec}, the session uses {old.hello.codec}")
                if hello.session is not None and hello.session != old.session_id:
                    raise ResumeError(f"resume names session {hello.session!r}, the speaker's session is "
                                      f"{old.session_id!r}")
                entry.detached_at = None
                started = old.started_event(resumed=True)
                self._emit([started])
                return old, started
            if entry is not None:
                ended += entry.session.close(wait_checks=False)
                del self._entries[hello.speaker]
            elif len(self._entries) >= self.max_speakers:
                raise CapacityError(f"room {self.room_id!r} already has {self.max_speakers} speakers")
            if self.rules is not None:
                self.rules.forget(self.room_id, hello.speaker)
            cp = checkpoint if hello.resume else None
            session = StreamSession(hello, self.detector, room_type=self.room_type, rules=self.rules,
                                    sink=self.sink, watermark=self.watermark, speech_meter=self.speech_meter,
                                    options=self.options, checkpoint=cp, clock=self.clock,
                                    watermark_worker=self.watermark_worker, notify=self.notify)
            self._entries[hello.speaker] = _Entry(session)
        started = session.started_event(resumed=cp is not None)
        self._emit([started])
        return session, started

    def detach(self, speaker: str) -> None:
        """The speaker's connection dropped: keep the session ``linger`` seconds for a resume."""
        with self._lock:
            e = self._entries.get(speaker)
            if e is not None and e.detached_at is None:
                e.detached_at = self.clock()

    def close(self, speaker: str) -> list[Event]:
        """The speaker left: score the tail, emit ``SessionEnded``, forget the rules' run state."""
        with self._lock:
            e = self._entries.pop(speaker, None)
        if e is None:
            return []
        events = e.session.close()
        if self.rules is not None:
            self.rules.forget(self.room_id, speaker)
        return events

    def reap(self) -> list[Event]:
        """Close sessions detached for longer than ``linger``; returns their end events."""
        ended: list[Event] = []
        with self._lock:
            self._reap_locked(ended)
        return ended

    def _reap_locked(self, ended: list[Event]) -> None:
        now = self.clock()
        for speaker in [k for k, e in self._entries.items()
                        if e.detached_at is not None and now - e.detached_at > self.linger]:
            ended += self._entries.pop(speaker).session.close(wait_checks=False)
            if self.rules is not None:
                self.rules.forget(self.room_id, speaker)

    def close_all(self) -> list[Event]:
        """Close every session (room shut down)."""
        out: list[Event] = []
        for speaker in list(self.sessions):
            out += self.close(speaker)
        return out

    def _emit(self, events: list[Event]) -> None:
        emit(self.sink, events)


@dataclass
class Hub:
    """All rooms of one process, created on first hello. One detector (one model session) serves all."""

    detector: WindowScorer
    rules: RulesEngine | None = None
    sink: EventSink | None = None
    watermark: WatermarkChecker | None = None
    speech_meter: SpeechMeter | None = None
    options: StreamOptions = field(default_factory=StreamOptions)
    room_type_of: Callable[[str], str] | Mapping[str, str] | None = None
    linger: float = 60.0
    max_rooms: int = 10_000
    clock: Callable[[], float] = time.monotonic
    # one worker runs the watermark checks of every room, one at a time (None: the hub makes its own)
    watermark_worker: WatermarkWorker | None = None
    notify: AsyncNotify | None = None  # gets the events of finished watermark checks (worker thread)

    def __post_init__(self) -> None:
        self.rooms: dict[str, Room] = {}
        self._lock = threading.Lock()
        if self.watermark_worker is None:
            self.watermark_worker = WatermarkWorker()

    def room(self, room_id: str) -> Room:
        """The room of that id, created (with its server-side room type) when first needed."""
        with self._lock:
            r = self.rooms.get(room_id)
            if r is None:
                if len(self.rooms) >= self.max_rooms:
                    self._drop_empty_rooms_locked()
                if len(self.rooms) >= self.max_rooms:
                    raise CapacityError(f"too many live rooms (limit {self.max_rooms})")
                r = Room(room_id, self.detector, room_type=self._room_type(room_id), rules=self.rules,
                         sink=self.sink, watermark=self.watermark, speech_meter=self.speech_meter,
                         options=self.options, linger=self.linger, clock=self.clock,
                         watermark_worker=self.watermark_worker, notify=self.notify)
                self.rooms[room_id] = r
            return r

    def open(self, hello: bytes | str | Mapping[str, Any] | Hello,
             checkpoint: SessionCheckpoint | Mapping[str, Any] | None = None) -> tuple[StreamSession, Event]:
        """Validate a hello and open (or resume) the speaker's session in its room (see ``Room.open``)."""
        h = hello if isinstance(hello, Hello) else parse_hello(hello)
        if checkpoint is not None and not isinstance(checkpoint, SessionCheckpoint):
            checkpoint = SessionCheckpoint.from_dict(checkpoint)
        return self.room(h.room).open(h, checkpoint)

    def detach(self, session: StreamSession) -> None:
        room = self.rooms.get(session.room)
        if room is not None:
            room.detach(session.speaker)

    def close(self, session: StreamSession) -> list[Event]:
        room = self.rooms.get(session.room)
        return room.close(session.speaker) if room is not None else []

    def reap(self) -> list[Event]:
        """Close lingering sessions past their time and drop empty rooms (call it every few seconds)."""
        out: list[Event] = []
        for r in list(self.rooms.values()):
            out += r.reap()
        with self._lock:
            self._drop_empty_rooms_locked()
        return out

    def _drop_empty_rooms_locked(self) -> None:
        for rid in [rid for rid, r in self.rooms.items() if not r.sessions]:
            del self.rooms[rid]

    def _room_type(self, room_id: str) -> str:
        f = self.room_type_of
        if f is None:
            return DEFAULT_ROOM_TYPE
        if isinstance(f, Mapping):
            return str(f.get(room_id, DEFAULT_ROOM_TYPE))
        return str(f(room_id))
