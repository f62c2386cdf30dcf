"""One speaker's live stream: hello → frames → 16 kHz ring buffer → VAD-gated windows → scores → events.

Windowing is the file scan's: windows of ``card.window`` seconds every ``card.hop`` seconds (window k
covers stream time [k*hop, k*hop + window)), scored by the same ``Detector.score_windows`` and
calibration, so figures measured offline hold live.

Two stages, so a server can keep reading frames while the model works:

* ``ingest(frame)`` (cheap: decode, acknowledge, ring buffer) cuts every window the frame completes and
  queues it for scoring. At most ``StreamOptions.max_backlog`` seconds of windows wait; when more are
  due, the oldest waiting ones are skipped (counted, ``WindowsSkipped`` event). Frames are never dropped.
* ``score_pending()`` (VAD, model, rules; seconds of CPU under load) scores the queue in order. It takes
  the state lock only to pick up and retire windows, so ``ingest`` never waits for the model.

``handle``/``push`` do both in one call (the synchronous form, used offline and by simple callers).
One ingesting caller and one scoring caller per session at a time is the intended use; locks make
anything else (an old and a resumed connection at once) safe, not fast.

Frames carry sequence numbers: a number at or below ``last_acked_seq`` is a duplicate and ignored (so a
resuming client may resend from anywhere); a jump is a gap, counted, filled with silence when short
(``max_conceal`` seconds) or, when longer, restarting the windowing so no window splices across it.
"""

from __future__ import annotations

import json
import math
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np

from voxwarden.live.codecs import (
    CODECS,
    MAX_SEQ,
    OPUS_RATES,
    PCM16_RATES,
    CodecSpec,
    make_decoder,
    split_frame,
)
from voxwarden.live.events import (
    Alert,
    Event,
    EventSink,
    FrameError,
    FrameRejected,
    GapDetected,
    HelloError,
    MalformedFrameError,
    RateLimitedError,
    ResumeError,
    SessionClosedError,
    SessionEnded,
    SessionStarted,
    WatermarkChecked,
    WindowScored,
    WindowsSkipped,
    emit,
    log,
)
from voxwarden.live.evidence import AudioTrail, EvidenceClip, to_pcm16
from voxwarden.live.rules import DEFAULT_ROOM_TYPE, RulesEngine, RuleSet
from voxwarden.live.watermark import WatermarkWorker

MAX_HELLO_BYTES = 16 * 1024
MAX_ID_LENGTH = 128
MAX_MARKS = 30_000  # frame marks kept to hold a checkpoint before an unstored window (10 min of 20 ms)
HELLO_KEYS = ("type", "room", "speaker", "codec", "sample_rate", "channels", "session", "resume",
              "stream_start", "version")

#: A watermark checker gets (samples, sample rate) and returns a ``mark`` result (an object with
#: ``present``/``confidence``/``to_dict``, e.g. ``voxwarden.mark.Marker(key).detect``), a dict, or a bool.
WatermarkChecker = Callable[[np.ndarray, int], Any]
#: Called (in the watermark worker's thread) with the events of a finished check — its ``WatermarkChecked``
#: and the alerts it fired — after the sink took them: e.g. to publish them to a room's watchers at once.
AsyncNotify = Callable[[list[Event]], None]
#: A VAD gets (window samples, sample rate) and returns the seconds of speech in it.
SpeechMeter = Callable[[np.ndarray, int], float]


class WindowScorer(Protocol):
    """What a session needs of a ``detect.Detector``."""

    card: Any  # .window, .hop, .sample_rate

    @property
    def threshold(self) -> float: ...

    @property
    def model_id(self) -> str: ...

    def score_windows(self, windows: list[np.ndarray]) -> np.ndarray: ...

    def calibrate(self, raw: np.ndarray | float) -> np.ndarray | float: ...


# -- hello ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hello:
    """A validated hello: who speaks in which room, and how the frames are encoded."""

    room: str
    speaker: str
    codec: CodecSpec
    session: str | None = None
    resume: bool = False
    stream_start: float | None = None
    ignored: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["codec"] = self.codec.codec
        d["sample_rate"] = self.codec.sample_rate
        d["channels"] = self.codec.channels
        return d


def _check_id(d: Mapping[str, Any], key: str, *, required: bool) -> str | None:
    v = d.get(key)
    if v is None:
        if required:
            raise HelloError(f"hello: missing '{key}' (a string id)")
        return None
    if not isinstance(v, str) or not v:
        raise HelloError(f"hello: '{key}' must be a non-empty string, got {type(v).__name__}")
    if len(v) > MAX_ID_LENGTH:
        raise HelloError(f"hello: '{key}' is longer than {MAX_ID_LENGTH} characters")
    if not v.isprintable() or "|" in v or v != v.strip():
        raise HelloError(f"hello: '{key}' must be printable, without '|' or surrounding spaces")
    return v


def parse_hello(data: bytes | bytearray | str | Mapping[str, Any]) -> Hello:
    """Validate a client's hello (JSON text/bytes or an already parsed mapping); raises ``HelloError``.

    Fields: ``room``, ``speaker`` (ids), ``codec`` ("pcm16" | "opus"), ``sample_rate`` (PCM16: 8000,
    16000 or 48000; Opus: 8000-48000, default 48000), ``channels`` (1 or 2, default 1), optional
    ``session`` (client-chosen stream id), ``resume`` (bool), ``stream_start`` (Unix seconds when the
    stream began: keeps alert keys stable across reconnects and replays). Unknown keys are ignored and
    listed in ``Hello.ignored``.
    """
    if isinstance(data, bytes | bytearray | str):
        if len(data) > MAX_HELLO_BYTES:
            raise HelloError(f"hello is larger than {MAX_HELLO_BYTES} bytes")
        try:
            d = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise HelloError(f"hello is not valid JSON ({e})") from None
        except RecursionError:
            raise HelloError("hello is nested too deeply") from None
    else:
        d = data
    if not isinstance(d, Mapping):
        raise HelloError(f"hello must be a JSON object, got {type(d).__name__}")
    if d.get("type", "hello") != "hello":
        raise HelloError(f"expected a hello message first, got type {d.get('type')!r}")
    if d.get("version", 1) != 1:
        raise HelloError(f"unsupported hello version {d.get('version')!r} (this server speaks version 1)")
    room = _check_id(d, "room", required=True)
    speaker = _check_id(d, "speaker", required=True)
    session = _check_id(d, "session", required=False)
    codec = d.get("codec")
    if codec not in CODECS:
        raise HelloError(f"hello: 'codec' must be one of {', '.join(CODECS)}, got {codec!r}")
    rate = d.get("sample_rate", 48000 if codec == "opus" else None)
    allowed = PCM16_RATES if codec == "pcm16" else OPUS_RATES
    if isinstance(rate, bool) or not isinstance(rate, int) or rate not in allowed:
        raise HelloError(f"hello: 'sample_rate' for {codec} must be one of "
                         f"{', '.join(map(str, allowed))}, got {rate!r}")
    channels = d.get("channels", 1)
    if isinstance(channels, bool) or channels not in (1, 2):
        raise HelloError(f"hello: 'channels' must be 1 or 2, got {channels!r}")
    resume = d.get("resume", False)
    if not isinstance(resume, bool):
        raise HelloError(f"hello: 'resume' must be true or false, got {resume!r}")
    start = d.get("stream_start")
    if start is not None:
        if isinstance(start, bool) or not isinstance(start, int | float) or not math.isfinite(start):
            raise HelloError(f"hello: 'stream_start' must be Unix seconds, got {start!r}")
        if not 946684800 <= start <= time.time() + 86400:  # 2000-01-01 .. tomorrow
            raise HelloError(f"hello: 'stream_start' {start} is not a plausible time (Unix seconds)")
        start = float(start)
    ignored = tuple(sorted(str(k) for k in d if k not in HELLO_KEYS))
    return Hello(room=room, speaker=speaker, codec=CodecSpec(codec, int(rate), int(channels)),
                 session=session, resume=resume, stream_start=start, ignored=ignored)


# -- buffer and VAD ------------------------------------------------------------------------------


class RingBuffer:
    """Fixed-capacity float32 ring addressed by absolute sample index (``end`` = samples written)."""

    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        self.capacity = int(capacity)
        self._a = np.zeros(self.capacity, dtype=np.float32)
        self.end = 0

    def write(self, x: np.ndarray, at: int | None = None) -> None:
        """Write ``x`` at absolute index ``at`` (default: ``end``); ``end`` becomes ``at + len(x)``."""
        start = self.end if at is None else int(at)
        x = np.asarray(x, dtype=np.float32)
        if x.size > self.capacity:
            start += x.size - self.capacity
            x = x[-self.capacity:]
        i = start % self.capacity
        k = min(x.size, self.capacity - i)
        self._a[i:i + k] = x[:k]
        self._a[:x.size - k] = x[k:]
        self.end = start + x.size

    def read(self, start: int, stop: int) -> np.ndarray:
        """A copy of absolute samples [start, stop); they must still be in the buffer."""
        if stop < start or start < self.end - self.capacity or stop > self.end:
            raise IndexError(f"samples [{start}, {stop}) outside [{self.end - self.capacity}, {self.end})")
        i, n = start % self.capacity, stop - start
        if i + n <= self.capacity:
            return self._a[i:i + n].copy()
        return np.concatenate([self._a[i:], self._a[:n - (self.capacity - i)]])


def silero_speech_seconds(x: np.ndarray, sr: int) -> float:
    """Seconds of speech in a window by the package VAD (Silero, the same as the file scan uses)."""
    from voxwarden.audio.vad import speech_regions

    return float(sum(b - a for a, b in speech_regions(x, sr)))


# -- the session ---------------------------------------------------------------------------------


@dataclass
class SessionCheckpoint:
    """A session's resumable state (small, JSON-able): timeline, sequence numbers, rule run state.

    Audio is not kept: after a restore, windows reaching back before ``position`` are lost (counted in
    ``windows_lost``), the next window starts on the same grid as before.
    """

    room: str
    speaker: str
    session: str
    codec: str
    sample_rate: int
    channels: int
    stream_start: float
    last_acked_seq: int | None
    model_rate: int
    position: int  # samples at the model rate since the stream began
    next_window: int  # start sample of the next grid window
    rules: dict[str, dict[str, Any]] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    version: int = 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SessionCheckpoint:
        """Rebuild from ``to_dict`` output (e.g. read back from the store); ``ResumeError`` if unusable."""
        if not isinstance(d, Mapping) or d.get("version") != 1:
            raise ResumeError("checkpoint is not a version 1 checkpoint object")
        types = {"room": str, "speaker": str, "session": str, "codec": str, "sample_rate": int,
                 "channels": int, "stream_start": (int, float), "model_rate": int, "position": int,
                 "next_window": int, "rules": dict, "stats": dict}
        for k, t in types.items():
            v = d.get(k)
            if not isinstance(v, t) or isinstance(v, bool):
                raise ResumeError(f"checkpoint field {k!r} is missing or of the wrong type")
        seq = d.get("last_acked_seq")
        if seq is not None and (not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq <= MAX_SEQ):
            raise ResumeError("checkpoint field 'last_acked_seq' is not a sequence number")
        if d["position"] < 0 or d["next_window"] < 0 or d["model_rate"] <= 0:
            raise ResumeError("checkpoint position, next_window and model_rate must be non-negative")
        return cls(**{k: d[k] for k in (*types, "last_acked_seq")}, version=1)




@dataclass(frozen=True)
class StreamOptions:
    """Per-session policy: frame limits, gap concealment, speech gating."""

    max_frame_seconds: float = 1.0  # PCM16 frames longer than this are refused (Opus: 120 ms by design)
    max_conceal: float = 0.5  # gaps up to this many seconds are filled with silence
    vad: bool = True  # gate windows on speech; False: score every window
    min_speech_fraction: float = 0.5  # of the window, by the VAD
    silence_dbfs: float = -65.0  # windows quieter than this are skipped without running the VAD
    min_tail: float = 0.5  # at close, unscored trailing audio at least this long gets a final window
    watermark_span: float = 8.0  # seconds of audio the watermark checker gets (a mark needs ~6 s)
    watermark_every: float = 8.0  # stream seconds between watermark checks (a check costs ~0.2-1 s CPU)
    watermark_wait: float = 10.0  # at close, seconds to wait for the speaker's last check (0: do not wait)
    max_speed: float | None = 2.0  # audio may arrive at most this much faster than real time (None: no
    burst: float = 30.0  # limit) after a head start of this many seconds (a resume's backlog)
    # overload: seconds of complete windows (window starts `hop` apart) that may wait for scoring; when
    # more are due the oldest waiting ones are skipped and counted (None: no bound)
    max_backlog: float | None = 10.0
    # alert evidence: at most this many seconds of recent scored audio are kept per speaker (PCM16, ~32 kB/s)
    # so a firing rule's span can be stored with the alert; below it, only what the rules can span plus one
    # window. None or 0: alerts carry no audio.
    evidence_seconds: float | None = 30.0


@dataclass
class SessionStats:
    """Counters of one session (sent with ``SessionEnded`` and available live)."""

    frames: int = 0
    bytes: int = 0
    duplicates: int = 0
    gaps: int = 0
    missing_frames: int = 0
    concealed_seconds: float = 0.0
    rejected: int = 0
    rate_limited: int = 0
    windows_scored: int = 0
    windows_silent: int = 0
    windows_lost: int = 0
    windows_skipped: int = 0  # overload: waited past the backlog bound, not scored
    alerts: int = 0
    sink_failures: int = 0
    watermark_checks: int = 0  # checks that ran (results sent as `watermark` events)
    watermark_dropped: int = 0  # a check still waiting behind others when the session closed (not run)
    watermark_errors: int = 0
    score_errors: int = 0
    seconds: float = 0.0


class StreamSession:
    """One speaker's stream in one room. Feed it with ``handle(binary_frame)`` or ``push(seq, payload)``."""

    def __init__(
        self,
        hello: Hello,
        detector: WindowScorer,
        *,
        room_type: str = DEFAULT_ROOM_TYPE,
        rules: RulesEngine | None = None,
        sink: EventSink | None = None,
        watermark: WatermarkChecker | None = None,
        speech_meter: SpeechMeter | None = None,
        options: StreamOptions | None = None,
        checkpoint: SessionCheckpoint | None = None,
        clock: Callable[[], float] = time.monotonic,
        watermark_worker: WatermarkWorker | None = None,
        notify: AsyncNotify | None = None,
    ) -> None:
        self.hello = hello
        self.room, self.speaker = hello.room, hello.speaker
        self.session_id = hello.session or uuid.uuid4().hex
        self.stream_start = hello.stream_start if hello.stream_start is not None else round(time.time(), 3)
        self.detector = detector
        self.room_type = room_type
        self.rules = rules
        self.sink = sink
        self.watermark = watermark
        # checks run here, off the window path (one worker per hub; a session of its own makes its own)
        self.watermark_worker = watermark_worker if watermark_worker is not None or watermark is None \
            else WatermarkWorker()
        self.notify = notify
        self.options = options or StreamOptions()
        self.speech_meter = speech_meter or silero_speech_seconds
        self.stats = SessionStats()
        self.last_acked_seq: int | None = None
        self.closed = False
        card = detector.card
        self.sr = int(card.sample_rate)
        self.window_n = int(round(float(card.window) * self.sr))
        self.hop_n = int(round(float(card.hop) * self.sr))
        if self.window_n <= 0 or self.hop_n <= 0:
            raise ValueError("detector window and hop must be positive")
        self._decoder = make_decoder(hello.codec, max_frame_seconds=self.options.max_frame_seconds)
        self._resampler = self._new_resampler()
        self.wm_span_n = max(1, int(round(self.options.watermark_span * self.sr)))
        self.wm_every_n = max(0, int(round(self.options.watermark_every * self.sr)))
        self._ring = RingBuffer(max(self.window_n, self.wm_span_n if watermark else 0) + self.hop_n)
        self._wm_next = self.wm_span_n  # the first check once a full span has arrived
        self._valid_from = 0  # absolute index from which audio is contiguous (after a long gap)
        self._next_win = 0  # absolute start of the next grid window
        self._last_frame_native = 0  # samples (at the codec rate) of the last decoded frame
        self._covered_to = 0  # end of the last window considered (scored or skipped)
        # complete windows not yet scored, oldest first; the first `_inflight` are being scored right now
        self._pending: list[_Pending] = []
        self._inflight = 0
        self._outbox: list[Event] = []  # events of finished watermark checks, not yet returned to the caller
        self._unsaved_from: int | None = None  # start of the oldest window whose result the sink refused
        # recent scored audio for alert evidence (scorer-only state, under `_score_lock`), sized by the rules
        self._trail: AudioTrail | None = None
        self._trail_rules: RuleSet | None = None
        self._lock = threading.Lock()  # state: timeline, ring, queue, counters (held briefly)
        self._score_lock = threading.Lock()  # one scorer at a time, windows in order (held while scoring)
        self._clock = clock
        # (seq, stream position of its first sample) of frames from just before the next window on:
        # a checkpoint restarts there so a restored session rescores the same windows from the same audio.
        self._marks: deque[tuple[int, int]] = deque()
        self._native = 0  # codec-rate samples fed since the anchor
        self._anchor = 0  # stream position of the anchor (stream start, a long gap, a restore)
        if checkpoint is not None:
            self._restore(checkpoint)
        self._t0, self._audio_in = clock(), 0  # for the real-time rate limit: decoded samples only

    # -- public ----------------------------------------------------------------------------------

    @property
    def position(self) -> float:
        """Stream time in seconds (audio received plus concealed/skipped gaps)."""
        return self._ring.end / self.sr

    def started_event(self, *, resumed: bool = False) -> SessionStarted:
        """The event that acknowledges a hello (tells a resuming client where to restart)."""
        c = self.hello.codec
        return SessionStarted(room=self.room, speaker=self.speaker, session=self.session_id, codec=c.codec,
                              sample_rate=c.sample_rate, channels=c.channels, room_type=self.room_type,
                              resumed=resumed, last_acked_seq=self.last_acked_seq,
                              window=self.window_n / self.sr, hop=self.hop_n / self.sr,
                              model=getattr(self.detector, "model_id", None))

    @property
    def cheap_ingest(self) -> bool:
        """Whether ``ingest`` costs only microseconds (PCM16 at the model's rate: no decoder, no
        resampler), so a server may call it on its event loop; otherwise call it in a worker thread."""
        return self.hello.codec.codec == "pcm16" and self._resampler is None

    @property
    def pending(self) -> int:
        """Complete windows waiting to be scored (including any being scored right now), plus events of
        finished watermark checks waiting to be returned by ``score_pending``: either means "call it"."""
        with self._lock:
            return len(self._pending) + len(self._outbox)

    def handle(self, data: bytes | bytearray | memoryview) -> list[Event]:
        """Take one binary frame (4-byte sequence number + payload) and score what it completes. Never
        raises for a bad frame: the refusal comes back (and goes to the sink) as a ``FrameRejected`` event.
        Raises only the fatal ``SessionClosedError``."""
        events = self.ingest(data)
        return events + self.score_pending()

    def push(self, seq: int, payload: bytes) -> list[Event]:
        """Take frame ``seq`` and score what it completes; returns the events (also sent to the sink).
        Raises a ``FrameError`` for a bad frame (see ``ingest_frame``)."""
        events = self.ingest_frame(seq, payload)
        return events + self.score_pending()

    def ingest(self, data: bytes | bytearray | memoryview) -> list[Event]:
        """Take one binary frame without scoring (cheap: the windows it completes are queued for
        ``score_pending``). A bad frame comes back as ``FrameRejected``; raises only ``SessionClosedError``."""
        seq: int | None = None
        try:
            seq, payload = split_frame(data)
            return self.ingest_frame(seq, payload)
        except FrameError as e:
            with self._lock:
                if seq is None:
                    self.stats.rejected += 1
            ev: list[Event] = [FrameRejected(room=self.room, speaker=self.speaker, session=self.session_id,
                                             seq=seq, error=e.to_dict())]
            self._emit(ev)
            return ev

    def ingest_frame(self, seq: int, payload: bytes) -> list[Event]:
        """Take frame ``seq`` (acknowledge, decode, buffer, queue completed windows); returns the events it
        caused at once (gap, windows skipped by the backlog bound), also sent to the sink. Raises a
        ``FrameError`` for a bad frame (the session stays usable; its number counts as received, except
        after ``RateLimitedError``: that frame must be sent again)."""
        if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq <= MAX_SEQ:
            raise MalformedFrameError(f"sequence number must be an integer in 0..{MAX_SEQ}, got {seq!r}")
        with self._lock:
            if self.closed:
                raise SessionClosedError(f"session {self.session_id} of {self.speaker} is closed")
            if self.last_acked_seq is not None and seq <= self.last_acked_seq:
                self.stats.duplicates += 1
                return []
            self._check_rate()
            events: list[Event] = []
            try:
                x = self._decoder.decode(bytes(payload))
            except FrameError:
                self.stats.rejected += 1
                self._ack(seq, events)  # received and refused: resending it would not help
                self.stats.sink_failures += emit(self.sink, events)
                raise
            self.stats.frames += 1
            self.stats.bytes += len(payload)
            self._ack(seq, events)
            if x.size:
                self._last_frame_native = x.size
                self._audio_in += x.size
                self._marks.append((seq, self._native_pos()))
                self._feed(x)
            events += self._enforce_backlog()
            self.stats.seconds = self.position
        self._emit(events)
        return events

    def score_pending(self) -> list[Event]:
        """Score the queued windows in order (VAD, model, calibration, watermark, rules); returns their
        events (also sent to the sink). The model runs without the state lock, so frames keep coming in."""
        out: list[Event] = []
        with self._score_lock:
            while True:
                with self._lock:
                    batch = list(self._pending)
                    self._inflight = len(batch)
                if not batch:
                    return out + self._take_outbox()
                try:
                    events = self._score(batch)
                    self._emit(events)  # stored before the windows leave the queue (and the checkpoint)
                finally:
                    with self._lock:
                        del self._pending[:self._inflight]  # backlog skips never touch the in-flight head
                        self._inflight = 0
                        self._prune_marks()
                self._submit_checks(batch)  # after the windows' events: checks never delay a window
                out += events

    def close(self, *, wait_checks: bool = True) -> list[Event]:
        """End the stream: score what is queued and the unscored tail (if long enough), emit ``SessionEnded``.

        With `wait_checks` (a speaker who ends the stream) the speaker's last watermark check, when it runs
        or is next in line, is awaited up to ``watermark_wait`` s so its event comes before
        ``SessionEnded``. Otherwise (a session reaped or replaced, or a check behind other speakers') a
        check still waiting is dropped (``watermark_dropped``): the worker's time goes to live speakers."""
        with self._lock:
            if self.closed:
                return []
            if self._resampler is not None:
                self._append(self._resampler.flush())
            end = self._ring.end
            start = max(self._valid_from, end - self.window_n, end - self._ring.capacity)
            if end - max(self._covered_to, start) >= self.options.min_tail * self.sr and end > start:
                self._covered_to = end
                self._pending.append(_Pending(start, end, self._ring.read(start, end), None,
                                              self.last_acked_seq, time.perf_counter()))
            self.closed = True
        events = self.score_pending()
        w = self.watermark_worker
        if w is not None:
            ahead = w.ahead(self)
            # wait for a check that runs or is next in line; one behind other speakers' checks (many rooms
            # ending at once) is dropped, so that the worker's time goes to the speakers still talking
            if wait_checks and self.options.watermark_wait > 0 and ahead is not None and ahead <= 1:
                if not w.wait(self, self.options.watermark_wait):
                    log.warning("%s/%s: watermark check not over at close; its result goes to the store only",
                                self.room, self.speaker)
            elif ahead is not None and w.cancel(self):
                with self._lock:
                    self.stats.watermark_dropped += 1
            events += self._take_outbox()
        with self._lock:
            self.stats.seconds = self.position
            ended = SessionEnded(room=self.room, speaker=self.speaker, session=self.session_id,
                                 stats=asdict(self.stats))
        self._emit([ended])
        return [*events, ended]

    def checkpoint(self) -> SessionCheckpoint:
        """What a store must keep so that, after a server crash, a resumed stream continues on the same
        timeline (same window grid, same alert keys) and frames already handled are not scored twice.

        It points back to the frame that opens the oldest window not yet scored (queued windows count as
        not scored: a crash loses them, the replay scores them)."""
        with self._lock:
            c = self.hello.codec
            rules = self.rules.export_state(self.room, self.speaker) if self.rules is not None else {}
            position, acked = self._ring.end, self.last_acked_seq
            frontier = self._frontier()
            stats = asdict(self.stats)
            if self._marks and self._marks[0][1] <= frontier:  # restart at the frame that opens the
                seq, position = self._marks[0]  # oldest unscored window: its audio will be sent again
                acked = seq - 1 if seq > 0 else None
                stats["frames"] = max(0, stats["frames"] - len(self._marks))  # they will be counted again
            return SessionCheckpoint(
                room=self.room, speaker=self.speaker, session=self.session_id, codec=c.codec,
                sample_rate=c.sample_rate, channels=c.channels, stream_start=self.stream_start,
                last_acked_seq=acked, model_rate=self.sr, position=position,
                next_window=frontier, rules=rules, stats=stats)

    # -- internals -------------------------------------------------------------------------------

    def _restore(self, cp: SessionCheckpoint) -> None:
        c = self.hello.codec
        if (cp.room, cp.speaker) != (self.room, self.speaker):
            raise ResumeError(f"checkpoint of {cp.speaker!r} in {cp.room!r} given to {self.speaker!r} in "
                              f"{self.room!r}")
        if (cp.codec, cp.sample_rate, cp.channels) != (c.codec, c.sample_rate, c.channels):
            raise ResumeError(f"resume with {c.codec}/{c.sample_rate} Hz/{c.channels} ch, the checkpoint has "
                              f"{cp.codec}/{cp.sample_rate} Hz/{cp.channels} ch")
        if self.hello.session is not None and self.hello.session != cp.session:
            raise ResumeError(f"resume names session {self.hello.session!r}, checkpoint has {cp.session!r}")
        if cp.model_rate != self.sr:
            raise ResumeError(f"checkpoint at {cp.model_rate} Hz, the model runs at {self.sr} Hz")
        self.session_id = cp.session
        self.stream_start = cp.stream_start
        self.last_acked_seq = cp.last_acked_seq
        self._ring.end = self._valid_from = self._covered_to = self._anchor = cp.position
        self._wm_next = cp.position + self.wm_span_n
        first = -(-cp.position // self.hop_n) * self.hop_n  # windows reaching back before it are lost
        self._next_win = max(cp.next_window, first)
        for k, v in cp.stats.items():
            ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
            if ok and k in SessionStats.__dataclass_fields__:
                setattr(self.stats, k, type(getattr(self.stats, k))(v))
        self.stats.windows_lost += max(0, (self._next_win - cp.next_window) // self.hop_n)
        if self.rules is not None and cp.rules:
            self.rules.import_state(self.room, self.speaker, cp.rules)

    def _check_rate(self) -> None:
        o = self.options
        if o.max_speed is None:
            return
        received = self._audio_in / self._decoder.sample_rate
        allowed = o.burst + o.max_speed * (self._clock() - self._t0)
        if received > allowed:
            self.stats.rate_limited += 1
            raise RateLimitedError(f"audio arrives faster than {o.max_speed:g}x real time "
                                   f"({received:.1f} s in {self._clock() - self._t0:.1f} s); resend later")

    def _new_resampler(self) -> Any:
        from voxwarden.audio.resample import StreamResampler

        sr_in = self._decoder.sample_rate
        if sr_in == self.sr:
            return None
        # A small block keeps latency at one frame; the filter still lines up with a whole-file resample.
        return StreamResampler(sr_in, self.sr, block=max(1, sr_in // 100))

    def _ack(self, seq: int, events: list[Event]) -> None:
        last = self.last_acked_seq
        self.last_acked_seq = seq
        if last is None or seq == last + 1:
            return
        missing = seq - last - 1
        self.stats.gaps += 1
        self.stats.missing_frames += missing
        sr_in = self._decoder.sample_rate
        est = missing * self._last_frame_native
        seconds = est / sr_in
        concealed = seconds <= self.options.max_conceal
        if concealed:
            if est:
                self._feed(np.zeros(est, dtype=np.float32))
            self.stats.concealed_seconds += seconds
        else:  # a long hole: finish what we have, jump stream time, restart windows after it
            if self._resampler is not None:
                self._append(self._resampler.flush())
                self._resampler = self._new_resampler()
            jump = int(round(seconds * self.sr))
            self._ring.end += jump
            self._valid_from = self._anchor = self._ring.end
            self._wm_next = max(self._wm_next, self._valid_from + self.wm_span_n)
            self._native = 0
            first = -(-self._valid_from // self.hop_n) * self.hop_n
            self.stats.windows_lost += max(0, (first - self._next_win) // self.hop_n)
            self._next_win = max(self._next_win, first)
        events.append(GapDetected(room=self.room, speaker=self.speaker, session=self.session_id,
                                  expected_seq=last + 1, got_seq=seq, missing=missing,
                                  seconds=round(seconds, 3), concealed=concealed))

    def _feed(self, x: np.ndarray) -> None:
        """Add samples at the codec rate (decoded or concealment) through the resampler."""
        self._native += x.size
        self._append(self._resampler.push(x) if self._resampler is not None else x)

    def _native_pos(self) -> int:
        """Stream position (model-rate samples) where the next codec-rate sample belongs."""
        return self._anchor + (self._native * self.sr) // self._decoder.sample_rate

    def _append(self, y: np.ndarray) -> None:
        """Add model-rate samples, in pieces of at most one hop so every window is cut (copied into the
        scoring queue) before the ring overwrites it."""
        for i in range(0, y.size, self.hop_n):
            self._ring.write(y[i:i + self.hop_n])
            while self._next_win + self.window_n <= self._ring.end:
                s, e = self._next_win, self._next_win + self.window_n
                wm = None
                if self.watermark is not None and e >= self._wm_next:
                    lo = max(self._valid_from, e - self.wm_span_n, self._ring.end - self._ring.capacity)
                    wm = self._ring.read(lo, e)
                    self._wm_next = e + self.wm_every_n
                self._pending.append(_Pending(s, e, self._ring.read(s, e), wm, self.last_acked_seq,
                                              time.perf_counter()))
                self._covered_to = max(self._covered_to, e)
                self._next_win += self.hop_n
                self._prune_marks()

    def _frontier(self) -> int:
        """Start sample of the oldest window not yet scored (queued, being scored, or the next to cut),
        or of an older one whose result the sink failed to store."""
        f = self._pending[0].start if self._pending else self._next_win
        return f if self._unsaved_from is None else min(f, self._unsaved_from)

    def _prune_marks(self) -> None:
        """Keep frame marks from the frame that holds the frontier's first sample on."""
        if self._unsaved_from is not None and len(self._marks) > MAX_MARKS:  # the store has been refusing
            log.error("%s/%s: results unstored for %d frames; checkpoints move on without them", self.room,
                      self.speaker, len(self._marks))
            self._unsaved_from = None
        f = self._frontier()
        while len(self._marks) > 1 and self._marks[1][1] <= f:
            self._marks.popleft()

    def _enforce_backlog(self) -> list[Event]:
        """Overload policy: skip the oldest waiting windows beyond ``max_backlog`` seconds of them."""
        if self.options.max_backlog is None:
            return []
        limit = max(1, int(self.options.max_backlog * self.sr) // self.hop_n)
        waiting = len(self._pending) - self._inflight
        if waiting <= limit:
            return []
        k = waiting - limit
        lo = self._inflight
        skipped = self._pending[lo:lo + k]
        del self._pending[lo:lo + k]
        self.stats.windows_skipped += k
        self._prune_marks()
        log.warning("%s/%s: scoring backlog over %.0f s, skipped %d window(s)", self.room, self.speaker,
                    self.options.max_backlog, k)
        return [WindowsSkipped(room=self.room, speaker=self.speaker, session=self.session_id, count=k,
                               start=round(skipped[0].start / self.sr, 3), end=round(skipped[-1].end / self.sr, 3),
                               reason="backlog", total=self.stats.windows_skipped)]

    def _emit(self, events: list[Event]) -> None:
        """Hand events to the sink. One that fails is logged and counted; when it is a window's result or
        alert, the checkpoint stays before that window (``_unsaved_from``) so a replay stores it."""
        if not events or self.sink is None:
            return
        for ev in events:
            if emit(self.sink, [ev]) == 0:
                continue
            with self._lock:
                self.stats.sink_failures += 1
                if isinstance(ev, WindowScored | Alert):
                    at = int(round(float(ev.start) * self.sr)) // self.hop_n * self.hop_n  # on the grid
                    self._unsaved_from = at if self._unsaved_from is None else min(self._unsaved_from, at)

    def _score(self, batch: list[_Pending]) -> list[Event]:
        """Score a batch of queued windows (no state lock held: VAD and model are the slow part)."""
        keep: list[tuple[_Pending, float]] = []
        silent = 0
        for p in batch:
            frac = self._speech_fraction(p.samples)
            if frac is None:
                silent += 1
                p.mark = None  # no check on audio that is not scored (silence, no speech by the VAD)
                continue
            keep.append((p, frac))
        if silent:
            with self._lock:
                self.stats.windows_silent += silent
        trail = self._evidence_trail()
        if not keep:
            self._keep_audio(trail, batch)
            return []
        try:
            raw = self.detector.score_windows([p.samples for p, _ in keep])
            raw = np.atleast_1d(np.asarray(raw, dtype=np.float64))
            probs = np.atleast_1d(np.asarray(self.detector.calibrate(raw), dtype=np.float64))
            if raw.shape != (len(keep),) or probs.shape != raw.shape:
                raise ValueError(f"model returned {raw.shape} scores for {len(keep)} windows")
        except Exception:  # noqa: BLE001 - a model failure on odd audio must not end the stream
            with self._lock:
                self.stats.score_errors += len(keep)
            log.exception("scoring %d window(s) of %s/%s failed", len(keep), self.room, self.speaker)
            self._keep_audio(trail, batch)
            return []
        threshold = float(self.detector.threshold)
        model = getattr(self.detector, "model_id", None)
        events: list[Event] = []
        n_alerts = 0
        scored = {id(p): (frac, r, pr) for (p, frac), r, pr in zip(keep, raw, probs, strict=True)}
        for p in batch:
            self._keep_audio(trail, [p])  # silent windows too: the evidence of a run is continuous audio
            got = scored.get(id(p))
            if got is None:
                continue
            frac, r, pr = got
            ev = WindowScored(
                room=self.room, speaker=self.speaker, session=self.session_id, index=p.start // self.hop_n,
                start=round(p.start / self.sr, 3), end=round(p.end / self.sr, 3), stream_start=self.stream_start,
                score=float(r), probability=float(pr), flagged=bool(pr >= threshold),
                speech_fraction=round(frac, 3), seq=p.seq, model=model,
            )
            ev.latency_ms = round((time.perf_counter() - p.cut_at) * 1000.0, 3)
            events.append(ev)
            if self.rules is not None:
                alerts = self.rules.evaluate(ev, self.room_type)
                if trail is not None:
                    for a in alerts:  # the run's audio, as far as the trail keeps it
                        a.evidence = trail.clip(a.run_start, a.end)
                n_alerts += len(alerts)
                events.extend(alerts)
        with self._lock:
            self.stats.windows_scored += len(keep)
            self.stats.alerts += n_alerts
        return events

    def _evidence_trail(self) -> AudioTrail | None:
        """The trail of recent scored audio, (re)sized for the current rules: their longest first-alert
        span plus one window, at most ``evidence_seconds``. None without rules or with evidence off."""
        cap = self.options.evidence_seconds
        if self.rules is None or not cap or cap <= 0:
            return None
        rs = self.rules.current()
        if self._trail is None or rs is not self._trail_rules:
            window, hop = self.window_n / self.sr, self.hop_n / self.sr
            need = self.rules.span_needed(window, hop, rs) + window
            n = max(1, int(round(min(float(cap), need) * self.sr)))
            if self._trail is None:
                self._trail = AudioTrail(n, self.sr)
            elif n != self._trail.capacity:
                self._trail = self._trail.resized(n)
            self._trail_rules = rs
        return self._trail

    @staticmethod
    def _keep_audio(trail: AudioTrail | None, batch: list[_Pending]) -> None:
        if trail is not None:
            for p in batch:
                trail.write(p.start, p.samples)

    def _speech_fraction(self, w: np.ndarray) -> float | None:
        """Fraction of the window that is speech, or None when the window should not be scored."""
        if w.size == 0:
            return None
        rms = float(np.sqrt(np.mean(np.square(w, dtype=np.float64))))
        if rms <= 0 or 20.0 * math.log10(rms) < self.options.silence_dbfs:
            return None
        if not self.options.vad:
            return 1.0
        frac = min(1.0, self.speech_meter(w, self.sr) / (w.size / self.sr))
        return frac if frac >= self.options.min_speech_fraction else None

    def _take_outbox(self) -> list[Event]:
        with self._lock:
            out, self._outbox = self._outbox, []
        return out

    def _submit_checks(self, batch: list[_Pending]) -> None:
        """Hand the spans due with these windows to the watermark worker (newest wins: a speaker has at
        most one check waiting). A window skipped as silence still has its span checked: the span is the
        last 8 s, not the window."""
        w = self.watermark_worker
        checker = self.watermark
        if w is None or checker is None:
            return
        for p in batch:
            if p.mark is None:
                continue
            span, start, end, cut_at = p.mark, p.end - p.mark.size, p.end, p.cut_at
            budget = getattr(checker, "budget", None)
            pace = getattr(budget, "delay", None)
            w.submit(self, lambda c=checker, x=span, a=start, b=end, t=cut_at: self._run_check(c, x, a, b, t),
                     pace=pace if callable(pace) else None)

    def _run_check(self, checker: WatermarkChecker, span: np.ndarray, start: int, end: int, cut_at: float) -> None:
        """Worker thread: run one check, judge it by the rules, emit and queue its events."""
        error: str | None = None
        try:
            d = _watermark_dict(checker(span, self.sr))
        except Exception as e:  # noqa: BLE001 - a checker bug must not end the stream
            d = {}
            error = f"{type(e).__name__}: {e}"
        if d.get("error") is not None:
            error = str(d["error"])
        present = d.get("present") if error is None else None
        conf = d.get("confidence")
        payload = d.get("payload")
        if isinstance(payload, bytes | bytearray):
            payload = payload.hex()
        ev = WatermarkChecked(
            room=self.room, speaker=self.speaker, session=self.session_id, start=round(start / self.sr, 3),
            end=round(end / self.sr, 3), stream_start=self.stream_start,
            present=None if present is None else bool(present),
            payload=payload if isinstance(payload, str) else None,
            confidence=float(conf) if isinstance(conf, int | float) and not isinstance(conf, bool) else None,
            seconds=round(span.size / self.sr, 3), error=error,
            skipped=str(d["skipped"]) if d.get("skipped") is not None else None,
            latency_ms=round((time.perf_counter() - cut_at) * 1000.0, 3))
        events: list[Event] = [ev]
        alerts = self.rules.evaluate(ev, self.room_type) if self.rules is not None else []
        for a in alerts:  # the evidence is the audio checked (the part of the run's span it covers)
            lo = max(0, int(round((a.run_start - ev.start) * self.sr)))
            clip = span[lo:]
            a.evidence = EvidenceClip(samples=to_pcm16(clip),
                                      sample_rate=self.sr, start=ev.end - clip.size / self.sr, end=ev.end,
                                      requested_start=a.run_start, requested_end=a.end,
                                      truncated=a.run_start < ev.start - 1e-6)
        events += alerts
        with self._lock:
            self.stats.watermark_checks += 1
            self.stats.watermark_errors += int(error is not None)
            self.stats.alerts += len(alerts)
        # to the sink; a failure is logged and counted but never holds the checkpoint back (a check is
        # not replayed: it is best effort, like one superseded by a newer span)
        failures = emit(self.sink, events)
        if self.notify is not None:  # before the outbox: the caller then sees them already handed on
            try:
                self.notify(events)
            except Exception:  # noqa: BLE001 - a watcher hiccup must not stop the checks
                log.exception("watermark notify failed for %s/%s", self.room, self.speaker)
        with self._lock:
            self.stats.sink_failures += failures
            self._outbox += events


@dataclass
class _Pending:
    """A complete window waiting to be scored: stream samples [start, end) at the model rate, a copy of
    its audio, the watermark span (ending at ``end``) when a check is due, the frame that completed it and
    when. The span goes to the watermark worker once the window is scored."""

    start: int
    end: int
    samples: np.ndarray
    mark: np.ndarray | None
    seq: int | None
    cut_at: float


def _watermark_dict(res: Any) -> dict[str, Any]:
    if res is None:
        return {"present": False}
    if isinstance(res, bool):
        return {"present": res}
    if isinstance(res, Mapping):
        return dict(res)
    if hasattr(res, "to_dict"):
        d = res.to_dict()
        if isinstance(d, Mapping):
            return dict(d)
    out: dict[str, Any] = {}
    for k in ("present", "confidence", "payload"):
        if hasattr(res, k):
            out[k] = getattr(res, k)
    return out or {"present": bool(res)}


__all__ = [
    "AsyncNotify",
    "Hello",
    "RingBuffer",
    "SessionCheckpoint",
    "SessionStats",
    "StreamOptions",
    "StreamSession",
    "WatermarkChecker",
    "SpeechMeter",
    "parse_hello",
    "silero_speech_seconds",
]
