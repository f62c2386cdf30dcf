"""The API side of live rooms: one ``live.Hub`` per tenant, a store sink, checkpoints and subscribers.

The live core (``voxwarden.live``) knows nothing of tenants or the store; this module binds the two:

* ``LiveService`` (one per app, ``app.state.live``) holds the app's detector and rules and lazily makes
  one ``Hub`` per tenant, so two tenants' rooms with the same platform id never share a session, rule
  state or alert key space.
* ``StoreSink`` (one per tenant hub) is the hub's event sink: it persists session open/end, every scored
  window (``rooms.record_window``, idempotent on the window index) and alerts (``alerts.raise_alert``,
  idempotent on the natural key) with their evidence: the audio of the alert's span (the session's
  ``EvidenceClip``) as a PCM16 WAV, stored content-addressed and attached in the alert's own transaction,
  and only while the alert has no evidence yet, so a replay never adds a second row. It runs inside the
  scoring thread (or the watermark worker), never on the event loop. Every ``watermark`` event becomes a
  ``watermark_checks`` row (span, present / absent / error / skipped, payload, confidence), idempotent on
  the span; a check that fires an alert is also in the alert's details (``details.watermark``).
* ``CheckpointStore`` keeps each speaker's latest ``SessionCheckpoint`` as a small JSON file, so a
  client resuming after a server restart continues from ``last_acked_seq`` on the same window grid.
* ``Broadcaster`` fans the events of a room out to ``/events`` subscribers (thread-safe, any loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import math
import os
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from voxwarden.api.webhooks import WebhookConfig, enqueue_alert
from voxwarden.live import (
    Alert,
    Event,
    HelloError,
    Hub,
    ResumeError,
    RulesEngine,
    RulesHolder,
    SessionCheckpoint,
    SessionEnded,
    SessionStarted,
    StreamOptions,
    StreamSession,
    WatermarkChecked,
    WatermarkWorker,
    WindowScored,
)
from voxwarden.store import EvidenceError, EvidenceStore, InvalidInputError, Store, StoreUnavailableError
from voxwarden.store import alerts as alert_repo
from voxwarden.store import evidence as evidence_repo
from voxwarden.store import rooms as room_repo
from voxwarden.store.models import Room as RoomRow
from voxwarden.store.models import RoomSession
from voxwarden.store.rooms import Peer

log = logging.getLogger("voxwarden.api.live")

MAX_CHECKPOINT_BYTES = 1_000_000
RETRY_DELAYS = (0.2, 1.0)  # seconds before retrying a store write that failed as unavailable
SUBSCRIBER_QUEUE = 1000  # events a slow subscriber may lag behind before it misses some
_PUBLISHED = "_vw_published"  # set on an event (not a field: not in its JSON) once watchers have it


def _jsonable(x: Any) -> Any:
    """JSON for numpy scalars and non-finite floats (which JSON cannot carry)."""
    if hasattr(x, "item"):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, (bytes, bytearray)):
        return None
    return str(x)


def event_json(ev: Event | dict[str, Any]) -> str:
    """The JSON text message for an event (``to_dict``) or an error dict; NaN/inf become null."""
    d = ev.to_dict() if isinstance(ev, Event) else ev
    return json.dumps(_scrub(d), default=_jsonable)


def _scrub(x: Any) -> Any:
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _scrub(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_scrub(v) for v in x]
    return x


def window_seq(ev: WindowScored) -> int:
    """The stored window's sequence number: its start in stream milliseconds. Unique within a session
    (grid windows and the closing tail window all start at different times, while ``index`` can repeat
    for the tail) and the same when a stream is replayed from a checkpoint, so storing is idempotent."""
    return int(round(float(ev.start) * 1000))


class CheckpointStore:
    """Latest checkpoint per (tenant, room, speaker) as JSON files under ``root`` (atomic replace).

    File names are hashes of the ids, so hostile room/speaker ids never become paths.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, tenant_id: str, room: str, speaker: str) -> Path:
        h = hashlib.sha256(json.dumps([tenant_id, room, speaker]).encode("utf-8")).hexdigest()
        t = hashlib.sha256(tenant_id.encode("utf-8")).hexdigest()[:16]
        return self.root / t / f"{h}.json"

    def save(self, tenant_id: str, cp: SessionCheckpoint) -> None:
        p = self._path(tenant_id, cp.room, cp.speaker)
        p.parent.mkdir(parents=True, exist_ok=True)
        data = json.dumps(cp.to_dict(), default=_jsonable).encode("utf-8")
        fd, tmp = tempfile.mkstemp(dir=p.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, p)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def load(self, tenant_id: str, room: str, speaker: str) -> dict[str, Any] | None:
        """The saved checkpoint dict, or None when there is none or it is unreadable (logged)."""
        p = self._path(tenant_id, room, speaker)
        try:
            if p.stat().st_size > MAX_CHECKPOINT_BYTES:
                log.warning("checkpoint %s too large, ignored", p)
                return None
            d = json.loads(p.read_text("utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            log.warning("checkpoint %s unreadable, ignored: %s", p, e)
            return None
        return d if isinstance(d, dict) else None

    def delete(self, tenant_id: str, room: str, speaker: str) -> None:
        with contextlib.suppress(OSError):
            self._path(tenant_id, room, speaker).unlink()

    def purge(self, cutoffs: dict[str, datetime]) -> int:
        """Delete the checkpoints (and stray temp files) of each tenant last written before its cutoff, as
        retention purges the sessions they belong to: a stream not resumed for that long never will be, and
        the file names its room and speaker. Returns how many files went."""
        n = 0
        for tenant_id, cutoff in cutoffs.items():
            d = self._path(tenant_id, "", "").parent
            if not d.is_dir():
                continue
            limit = cutoff.timestamp()
            for f in d.iterdir():
                try:
                    if f.is_file() and f.suffix in (".json", ".tmp") and f.stat().st_mtime < limit:
                        f.unlink()
                        n += 1
                except OSError as e:  # another process removed it, or it cannot be removed: the next purge
                    log.warning("checkpoint %s not purged: %s", f, e)
        return n


class Broadcaster:
    """Room → subscriber queues. ``publish`` may be called from any thread or event loop."""

    def __init__(self) -> None:
        self._subs: dict[tuple[str, str], set[Subscription]] = {}
        self._lock = threading.Lock()

    def subscribe(self, tenant_id: str, room: str) -> Subscription:
        sub = Subscription(asyncio.get_running_loop(), asyncio.Queue(maxsize=SUBSCRIBER_QUEUE))
        with self._lock:
            self._subs.setdefault((tenant_id, room), set()).add(sub)
        return sub

    def unsubscribe(self, tenant_id: str, room: str, sub: Subscription) -> None:
        with self._lock:
            s = self._subs.get((tenant_id, room))
            if s is not None:
                s.discard(sub)
                if not s:
                    del self._subs[(tenant_id, room)]

    def count(self, tenant_id: str, room: str) -> int:
        with self._lock:
            return len(self._subs.get((tenant_id, room), ()))

    def publish(self, tenant_id: str, room: str, messages: list[str]) -> None:
        if not messages:
            return
        with self._lock:
            subs = list(self._subs.get((tenant_id, room), ()))
        for sub in subs:
            for m in messages:
                sub.offer(m)


@dataclass(eq=False)
class Subscription:
    """One ``/events`` watcher: its loop and queue; ``dropped`` counts events it was too slow for."""

    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[str]
    dropped: int = 0

    def offer(self, message: str) -> None:
        def put() -> None:
            try:
                self.queue.put_nowait(message)
            except asyncio.QueueFull:
                self.dropped += 1

        try:
            self.loop.call_soon_threadsafe(put)
        except RuntimeError:  # the subscriber's loop is gone: it is about to unsubscribe
            pass


@dataclass
class _SessionRow:
    room_row: str
    session_row: str


class StoreSink:
    """A tenant hub's event sink: persists sessions, windows and alerts (see the module docstring).

    Called in a scoring thread (the watermark worker for ``watermark`` events and the alerts they fire).
    Each event is its own short transaction; a failure raises, and the
    live core logs and counts it (``sink_failures``) without ending the stream.

    With `webhooks`, an alert's webhook deliveries are queued in the alert's own transaction (see
    ``api.webhooks``); `on_webhook` is then called (e.g. to wake the dispatcher) when one was new.
    """

    def __init__(self, store: Store, tenant_id: str, *, webhooks: WebhookConfig | None = None,
                 on_webhook: Callable[[], None] | None = None) -> None:
        self.store = store
        self.tenant_id = tenant_id
        self.webhooks = webhooks
        self.on_webhook = on_webhook
        self._rooms: dict[str, str] = {}  # external room id → row id
        self._sessions: dict[str, _SessionRow] = {}  # live session id → rows
        self._peers: dict[tuple[str, str], Peer] = {}
        self._lock = threading.Lock()
        try:
            self.evidence: EvidenceStore | None = store.evidence
        except StoreUnavailableError:  # a store without an evidence directory: alerts keep no audio
            log.warning("no evidence directory: live alerts are stored without their audio")
            self.evidence = None

    def set_peer(self, room: str, speaker: str, peer: Peer) -> None:
        """Network origin of the connection about to open (room, speaker), stored with its session."""
        with self._lock:
            self._peers[(room, speaker)] = peer

    def room_row(self, room: str) -> str:
        """The store's row id of this tenant's room (created on first sight)."""
        with self._lock:
            rid = self._rooms.get(room)
        if rid is None:
            with self.store.session() as s:
                rid = room_repo.ensure_room(s, self.tenant_id, room).row.id
            with self._lock:
                self._rooms[room] = rid
        return rid

    def check_session(self, room: str, speaker: str, session: str | None, *, resume: bool) -> None:
        """Refuse a client-chosen session id whose stored windows would mix with the new stream's: one
        the tenant used for another room or speaker, one that has ended, or (without ``resume``) one
        that exists at all. ``HelloError`` / ``ResumeError`` name the reason."""
        if session is None:
            return
        with self.store.session() as s:
            rs = s.scalars(select(RoomSession).where(RoomSession.tenant_id == self.tenant_id,
                                                     RoomSession.external_id == session)).first()
            if rs is None:
                return
            room_ext = s.scalars(select(RoomRow.external_id).where(RoomRow.id == rs.room_id)).first()
            if room_ext != room or rs.speaker != speaker:
                raise HelloError(f"field 'session': {session!r} is already used by another room or speaker")
            if rs.ended_at is not None:
                raise ResumeError(f"session {session!r} has ended; start a new session id")
            if not resume:
                raise HelloError(f"field 'session': {session!r} exists; send \"resume\": true to continue "
                                 "it, or choose a new session id")

    def session_row(self, session: str) -> str | None:
        with self._lock:
            r = self._sessions.get(session)
        return r.session_row if r is not None else None

    def __call__(self, ev: Event) -> None:
        """Persist one event; a store that is briefly unavailable (lock timeout, lost connection) is
        retried ``len(RETRY_DELAYS)`` times, every write being idempotent. Then the error is raised."""
        if isinstance(ev, SessionStarted):
            write = self._started
        elif isinstance(ev, WindowScored):
            write = self._window
        elif isinstance(ev, Alert):
            write = self._alert
        elif isinstance(ev, SessionEnded):
            write = self._ended
        elif isinstance(ev, WatermarkChecked):
            write = self._watermark
        else:
            return
        for delay in (*RETRY_DELAYS, None):
            try:
                write(ev)  # type: ignore[arg-type]
                return
            except StoreUnavailableError as e:
                if delay is None:
                    raise
                log.warning("store unavailable for a %s event of %s/%s, retrying: %s", ev.type, ev.room,
                            ev.speaker, e)
                time.sleep(delay)

    def _rows(self, room: str, speaker: str, session: str) -> _SessionRow:
        with self._lock:
            r = self._sessions.get(session)
        if r is None:  # e.g. events after a restart before the hello was seen: open it now
            self._open(room, speaker, session, None, None)
            with self._lock:
                r = self._sessions[session]
        return r

    def _open(self, room: str, speaker: str, session: str, codec: str | None, rate: int | None) -> None:
        room_row = self.room_row(room)
        with self._lock:
            peer = self._peers.pop((room, speaker), None)
        with self.store.session() as s:
            rs = room_repo.open_session(s, self.tenant_id, room_row, speaker, external_id=session,
                                        codec=codec, sample_rate=rate, peer=peer).row
            sid = rs.id
        with self._lock:
            self._sessions[session] = _SessionRow(room_row, sid)

    def _started(self, ev: SessionStarted) -> None:
        self._open(ev.room, ev.speaker, ev.session, ev.codec, ev.sample_rate)

    def _window(self, ev: WindowScored) -> None:
        r = self._rows(ev.room, ev.speaker, ev.session)
        with self.store.session() as s:
            room_repo.record_window(s, self.tenant_id, r.session_row, window_seq(ev), float(ev.start),
                                    float(ev.end), float(ev.score), probability=float(ev.probability))

    def _alert(self, ev: Alert) -> None:
        r = self._rows(ev.room, ev.speaker, ev.session)
        details = {k: v for k, v in ev.to_dict().items() if k not in ("room", "speaker", "type")}
        details = _scrub(details)
        wav = None
        if ev.evidence is not None and self.evidence is not None:
            wav = ev.evidence.wav()
            details["evidence"] = {**(details.get("evidence") or {}), "sha256": hashlib.sha256(wav).hexdigest(),
                                   "size": len(wav), "media_type": "audio/wav"}
        queued = 0
        with self.store.session() as s:
            saved = alert_repo.raise_alert(s, self.tenant_id, r.room_row, ev.speaker,
                                           start=float(ev.window_start),
                                           end=max(float(ev.window_end), float(ev.window_start)),
                                           score=float(ev.probability), rule=ev.rule, session_id=r.session_row,
                                           details=details)
            if wav is not None and ev.evidence is not None:
                self._attach(s, saved.row, ev, wav)
            if self.webhooks is not None:  # idempotent on the alert's key: a replay queues nothing new
                queued = enqueue_alert(s, self.tenant_id, saved.row, ev.actions, self.webhooks,
                                       severity=ev.severity)
        if queued and self.on_webhook is not None:
            self.on_webhook()

    def _attach(self, s: Any, row: Any, ev: Alert, wav: bytes) -> None:
        """Store the alert's audio and link it, unless the alert already has evidence (a replay after a
        crash, whose trail may hold other audio of the same span). The file is written inside the alert's
        transaction: a crash before the commit leaves an unreferenced file that ``sweep_orphans`` removes.
        A file that cannot be written (disk full) is logged and noted on the alert; the alert stays."""
        assert self.evidence is not None and ev.evidence is not None
        if evidence_repo.evidence_for(s, self.tenant_id, alert_id=row.id):
            return
        clip = ev.evidence
        try:
            ref = self.evidence.put(wav, suffix="wav")
        except (EvidenceError, InvalidInputError) as e:
            log.error("evidence of alert %s (%s/%s) not stored: %s", row.id, ev.room, ev.speaker, e)
            info = dict((row.details or {}).get("evidence") or {})
            info["error"] = str(e)[:500]
            row.details = {**(row.details or {}), "evidence": info}
            return
        evidence_repo.attach_evidence(s, self.tenant_id, ref, alert_id=row.id, start=float(clip.start),
                                      end=float(clip.end), media_type="audio/wav")

    def _watermark(self, ev: WatermarkChecked) -> None:
        sid = self.session_row(ev.session)
        with self.store.session() as s:
            if sid is None:  # the session ended (or the server restarted) before its check finished
                sid = s.scalars(select(RoomSession.id).where(RoomSession.tenant_id == self.tenant_id,
                                                            RoomSession.external_id == ev.session)).first()
                if sid is None:
                    log.warning("watermark check of unknown session %s/%s/%s not stored", ev.room, ev.speaker,
                                ev.session)
                    return
            result = ("present" if ev.present else "absent" if ev.present is False
                      else "error" if ev.error else "skipped")
            room_repo.record_watermark_check(
                s, self.tenant_id, sid, float(ev.start), float(ev.end), result,
                payload=ev.payload.lower() if ev.payload else None, confidence=ev.confidence,
                seconds=float(ev.seconds) if ev.seconds else None, reason=ev.error or ev.skipped)

    def _ended(self, ev: SessionEnded) -> None:
        r = self._rows(ev.room, ev.speaker, ev.session)
        with self.store.session() as s:
            room_repo.end_session(s, self.tenant_id, r.session_row)
        with self._lock:
            self._sessions.pop(ev.session, None)

    def ack(self, session: str, seq: int | None) -> None:
        """Record the resume point (``last_acked_seq`` of the latest checkpoint) on the session row."""
        sid = self.session_row(session)
        if sid is None or seq is None or seq < 0:
            return
        with self.store.session() as s:
            room_repo.ack(s, self.tenant_id, sid, int(seq))


@dataclass
class TenantLive:
    """One tenant's hub and its sink."""

    hub: Hub
    sink: StoreSink


@dataclass
class LiveService:
    """Live rooms of one app: per-tenant hubs sharing the detector and rules, checkpoints, subscribers."""

    store: Store
    detector: Any
    checkpoint_dir: Path
    rules_path: Path | None = None
    options: StreamOptions = field(default_factory=StreamOptions)
    linger: float = 60.0
    checkpoint_every: int = 1  # save a checkpoint after every this many frames that scored a window
    room_type_of: Callable[[str], str] | None = None
    reap_interval: float = 5.0  # seconds between closing sessions whose linger ran out
    ingest_threads: int = 2  # threads decoding/resampling frames of codecs that need it
    score_threads: int | None = None  # threads scoring windows (VAD + model); None: the CPU count (2..8)
    broadcaster: Broadcaster = field(default_factory=Broadcaster)
    webhooks: WebhookConfig | None = None  # None: alert webhook actions are stored, not sent
    on_webhook: Callable[[], None] | None = None  # called after a new delivery was queued
    # tenant id → its watermark checker (`(samples, sr) -> result`, see live_watermark.py), or None for a
    # tenant without one; asked when the tenant's hub is made and, while it has none, at each new stream
    # (so a key made later applies from the next session). None: no watermark checks at all
    watermark_for: Callable[[str], Callable[[Any, int], Any] | None] | None = None

    def __post_init__(self) -> None:
        self._tenants: dict[str, TenantLive] = {}
        self._owners: dict[tuple[str, str, str], int] = {}  # (tenant, room, speaker) → connection number
        self._next_owner = 0
        self._lock = threading.Lock()
        self.checkpoints = CheckpointStore(self.checkpoint_dir)
        # a bad rules file fails the app's start (RulesError names the line), not the first stream
        self._rules_holder = RulesHolder(self.rules_path) if self.rules_path is not None else None
        self._stop = threading.Event()
        self._reaper: threading.Thread | None = None
        # frames that need decoding or resampling (Opus, 8/48 kHz) are ingested here, never behind a
        # model call in the default pool, so a busy model cannot stall reading the sockets
        self.ingest_pool = ThreadPoolExecutor(max_workers=self.ingest_threads, thread_name_prefix="vw-live-ingest")
        # windows are scored in their own pool: a room backlog never queues ahead of the HTTP side's
        # worker threads (uploads, auth, store calls use the default pool)
        n = self.score_threads or min(8, max(2, os.cpu_count() or 2))
        self.score_pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="vw-live-score")
        # watermark checks of every tenant run in one thread of their own, off the window path, paced by
        # the checkers' shared budget (live/watermark.py); their results come as `watermark` events
        self.watermark_worker = WatermarkWorker()

    def start_reaper(self) -> None:
        """Start (once) the daemon thread that ends lingering sessions every ``reap_interval`` s and
        tells the room's watchers. Started with the first live session, stopped by ``stop``."""
        with self._lock:
            if self._reaper is not None or self._stop.is_set():
                return
            self._reaper = threading.Thread(target=self._reap_loop, name="voxwarden-live-reaper", daemon=True)
            self._reaper.start()

    def _reap_loop(self) -> None:
        while not self._stop.wait(self.reap_interval):
            try:
                for tid, ev in self.reap():
                    self.publish(tid, [ev])
            except Exception:  # noqa: BLE001 - the reaper must outlive a store hiccup
                log.exception("live reaper failed")

    def stop(self) -> None:
        """Stop the reaper (server shutdown). Sessions are not ended: their checkpoints let clients
        resume on the next start."""
        self._stop.set()
        self.ingest_pool.shutdown(wait=False, cancel_futures=True)
        self.score_pool.shutdown(wait=False, cancel_futures=True)
        self.watermark_worker.stop(timeout=0)
        t = self._reaper
        if t is not None and t is not threading.current_thread():
            t.join(timeout=10)

    @property
    def available(self) -> bool:
        """Whether the detector can score live windows (it needs ``score_windows`` and a model card)."""
        return callable(getattr(self.detector, "score_windows", None)) and hasattr(self.detector, "card")

    def tenant(self, tenant_id: str) -> TenantLive:
        """The tenant's hub (created on first use), with the tenant's watermark checker when it has one."""
        with self._lock:
            t = self._tenants.get(tenant_id)
            if t is None:
                sink = StoreSink(self.store, tenant_id, webhooks=self.webhooks, on_webhook=self.on_webhook)
                rules = RulesEngine(self._rules_holder) if self._rules_holder is not None else None
                hub = Hub(self.detector, rules=rules, sink=sink, options=self.options,
                          room_type_of=self.room_type_of, linger=self.linger,
                          watermark=self.watermark_for(tenant_id) if self.watermark_for is not None else None,
                          watermark_worker=self.watermark_worker, notify=self._notifier(tenant_id))
                t = self._tenants[tenant_id] = TenantLive(hub, sink)
            elif t.hub.watermark is None and self.watermark_for is not None:
                self._install_watermark(tenant_id, t.hub)
        self.start_reaper()
        return t

    def _install_watermark(self, tenant_id: str, hub: Hub) -> None:
        """Give a hub made before its tenant had a watermark key the tenant's checker: its rooms' new
        sessions check marks from now on (open sessions keep going without)."""
        checker = self.watermark_for(tenant_id) if self.watermark_for is not None else None
        if checker is None:
            return
        hub.watermark = checker
        for room in list(hub.rooms.values()):
            room.watermark = checker

    def claim(self, tenant_id: str, session: StreamSession) -> int:
        """Mark the calling connection as the one feeding this speaker's session; returns its number."""
        with self._lock:
            self._next_owner += 1
            self._owners[(tenant_id, session.room, session.speaker)] = self._next_owner
            return self._next_owner

    def release(self, tenant_id: str, session: StreamSession, owner: int) -> bool:
        """The connection `owner` is gone. True when it was still the session's feeder (so the session
        should be detached); False when a newer connection has resumed it meanwhile."""
        key = (tenant_id, session.room, session.speaker)
        with self._lock:
            if self._owners.get(key) != owner:
                return False
            del self._owners[key]
            return True

    def tenants(self) -> list[tuple[str, TenantLive]]:
        with self._lock:
            return list(self._tenants.items())

    def reap(self) -> list[tuple[str, Event]]:
        """Close sessions whose linger ran out in every tenant's hub; returns (tenant, event) pairs."""
        out: list[tuple[str, Event]] = []
        for tid, t in self.tenants():
            for ev in t.hub.reap():
                out.append((tid, ev))
                if isinstance(ev, SessionEnded):
                    self.checkpoints.delete(tid, ev.room, ev.speaker)
        return out

    def _notifier(self, tenant_id: str) -> Callable[[list[Event]], None]:
        """The hub's ``notify``: a finished watermark check's events go to the room's watchers at once (the
        stream's own client gets them with its next ``score_pending``, which publishes nothing twice)."""

        def notify(events: list[Event]) -> None:
            self.publish(tenant_id, events)
            for ev in events:  # called before the session hands them to its caller: no race
                ev.__dict__[_PUBLISHED] = True

        return notify

    def publish(self, tenant_id: str, events: list[Event]) -> None:
        """Send events to the room's ``/events`` watchers (events already published are left out)."""
        by_room: dict[str, list[str]] = {}
        for ev in events:
            if ev.__dict__.get(_PUBLISHED):
                continue
            by_room.setdefault(ev.room, []).append(event_json(ev))
        for room, msgs in by_room.items():
            self.broadcaster.publish(tenant_id, room, msgs)
