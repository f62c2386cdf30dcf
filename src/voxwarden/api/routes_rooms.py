"""Live rooms over WebSocket: ``/v1/rooms/{room}/stream`` (a speaker's audio in, events out),
``/v1/rooms/{room}/events`` (everyone watching a room) and ``GET /v1/rooms/{room}/alerts``.

Protocol (docs/api-rooms.md, wire format in docs/live.md): API key with scope ``rooms`` in the
``Authorization: Bearer`` header or ``?token=`` (browsers cannot set WebSocket headers); a bad key or
scope is refused before the handshake completes (close 1008 → HTTP 403). First message: the JSON hello
(its ``room`` must be the path's). Then binary frames (4-byte big-endian seq + payload); each frame's
events come back as JSON text messages. ``{"type": "end"}`` as text ends the session (tail window,
``session_ended``, close 1000); a dropped connection keeps the session ``linger`` s for a resume.

Each stream connection runs two tasks: a reader that takes every frame as it arrives (``ingest``: cheap,
on the event loop or, for codecs that need decoding, in the live ingest pool; so the socket and its
keepalive pings stay responsive however busy the model is) and a scorer that scores the session's
queued windows in the live scoring pool. Under overload the queue grows to
``StreamOptions.max_backlog`` seconds of windows; beyond it the oldest waiting windows are skipped and
the client is told (``windows_skipped``). Frames are never dropped and the socket is never closed for
slowness (docs/live.md, "Overload").
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Query, Request, WebSocket, WebSocketDisconnect
from sqlalchemy import select
from starlette.websockets import WebSocketState

from voxwarden.api.auth import Principal, audit_context, authenticate, require
from voxwarden.api.errors import ApiError
from voxwarden.api.live_sink import LiveService, TenantLive, event_json
from voxwarden.live import (
    Event,
    Hello,
    HelloError,
    LiveError,
    SessionEnded,
    StreamSession,
    WindowScored,
    parse_hello,
)
from voxwarden.store import AuditContext, Store, StoreError, audit
from voxwarden.store import alerts as alert_repo
from voxwarden.store.models import Alert as AlertRow
from voxwarden.store.models import Room as RoomRow
from voxwarden.store.models import RoomSession, WatermarkCheck
from voxwarden.store.rooms import Peer

log = logging.getLogger("voxwarden.api.rooms")
router = APIRouter(prefix="/v1/rooms", tags=["rooms"])

HELLO_TIMEOUT = 10.0  # seconds a client has to send its hello after the handshake
MAX_HELLO_BYTES = 16 * 1024
MAX_ROOM_ID = 200

# WebSocket close codes
CLOSE_NORMAL = 1000
CLOSE_POLICY = 1008  # auth, bad hello / resume
CLOSE_INTERNAL = 1011
CLOSE_TRY_LATER = 1013  # capacity

UNEXPECTED_TEXT = {"type": "unexpected_text", "fatal": False,
                   "message": 'text messages after the hello: only {"type": "end"}; audio goes in binary frames'}
MAX_INBOX_BYTES = 1 << 20  # frames waiting for the ingest pool before the reader waits for it (~1 MiB)
MAX_PENDING_REPLIES = 100  # unexpected_text answers owed at once (a flood of text gets no more)


# -- auth ----------------------------------------------------------------------------------------


def ws_token(websocket: WebSocket) -> str | None:
    """The API key from ``Authorization: Bearer`` or ``?token=``; None when absent or malformed."""
    header = websocket.headers.get("authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        token = token.strip()
        return token if scheme.lower() == "bearer" and token and len(token) <= 200 else None
    token = websocket.query_params.get("token")
    return token if token and len(token) <= 200 else None


async def ws_principal(websocket: WebSocket, scope: str = "rooms") -> Principal | None:
    """Authenticate before accepting; on failure close with 1008 (the client sees HTTP 403) → None."""
    token = ws_token(websocket)
    reason = "missing or malformed API key"
    if token is not None:
        try:
            principal = await asyncio.to_thread(authenticate, websocket.app.state.store, token)
        except ApiError as e:
            reason = e.message
        except StoreError as e:
            log.error("websocket auth: store error: %s", e)
            await websocket.close(code=CLOSE_TRY_LATER, reason="store unavailable")
            return None
        else:
            if principal.allows(scope):
                return principal
            reason = f"API key lacks the {scope!r} scope"
    await websocket.close(code=CLOSE_POLICY, reason=reason[:120])
    return None



def _audit(store: Store, ctx: AuditContext, action: str, target_id: str | None, details: dict[str, Any]) -> None:
    try:
        with store.session() as s:
            audit.record(s, ctx, action, target_type="room_session", target_id=target_id, details=details)
    except StoreError as e:  # an audit hiccup must not take the room down; it is logged loudly
        log.error("audit %s failed: %s", action, e)


# -- helpers -------------------------------------------------------------------------------------


async def _send(websocket: WebSocket, message: str) -> bool:
    """Send a text message; False when the client is already gone."""
    if websocket.application_state != WebSocketState.CONNECTED:
        return False
    try:
        await websocket.send_text(message)
        return True
    except (WebSocketDisconnect, RuntimeError, OSError):
        return False


async def _fatal(websocket: WebSocket, error: dict[str, Any], code: int) -> None:
    """Tell the client why (an error message) and close with `code` and the error type as reason."""
    await _send(websocket, json.dumps(error))
    with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
        if websocket.application_state == WebSocketState.CONNECTED:
            await websocket.close(code=code, reason=str(error.get("type", "error"))[:120])


def _close_code(e: LiveError) -> int:
    return CLOSE_TRY_LATER if e.code == "capacity" else CLOSE_POLICY


def _score_pending(live: LiveService, tenant_id: str, tl: TenantLive, session: StreamSession) -> list[Event]:
    """Worker thread: score the session's queued windows; after a scored window, checkpoint and record the
    resume point (after the windows' results and alerts are stored: a crash in between replays them; a
    window the store did not take holds the checkpoint back, see ``StreamSession.checkpoint``)."""
    events = session.score_pending()
    if any(isinstance(ev, WindowScored) for ev in events):
        try:
            cp = session.checkpoint()
            live.checkpoints.save(tenant_id, cp)
            tl.sink.ack(session.session_id, cp.last_acked_seq)
        except (OSError, StoreError) as e:  # resumability degrades; the stream goes on
            log.error("checkpoint of %s/%s failed: %s", session.room, session.speaker, e)
    return events


def _ingest_many(session: StreamSession, frames: list[bytes]) -> list[Event]:
    """Ingest pool: take frames in order (decode, resample, queue windows); their immediate events."""
    out: list[Event] = []
    for f in frames:
        out += session.ingest(f)
    return out


def _open(live: LiveService, tenant_id: str, tl: TenantLive, hello: Hello, peer: Peer) -> tuple[StreamSession, Event]:
    """Worker thread: open or resume the speaker's session (store writes happen in the sink)."""
    tl.sink.check_session(hello.room, hello.speaker, hello.session, resume=hello.resume)
    checkpoint = None
    if hello.resume:
        cp = live.checkpoints.load(tenant_id, hello.room, hello.speaker)
        if cp is not None and (hello.session is None or cp.get("session") == hello.session):
            checkpoint = cp
    else:
        live.checkpoints.delete(tenant_id, hello.room, hello.speaker)
    tl.sink.set_peer(hello.room, hello.speaker, peer)
    return tl.hub.open(hello, checkpoint=checkpoint)


# -- stream --------------------------------------------------------------------------------------


@router.websocket("/{room_id}/stream")
async def room_stream(websocket: WebSocket, room_id: str) -> None:
    """One speaker's live audio: hello, then binary frames; every frame's events come back as JSON."""
    principal = await ws_principal(websocket)
    if principal is None:
        return
    live: LiveService = websocket.app.state.live
    if not live.available:
        await websocket.close(code=CLOSE_INTERNAL, reason="live scoring unavailable for this model")
        return
    await websocket.accept()
    tid = principal.tenant_id
    try:
        first = await asyncio.wait_for(websocket.receive(), HELLO_TIMEOUT)
    except TimeoutError:
        await _fatal(websocket, HelloError(f"no hello within {HELLO_TIMEOUT:g} s").to_dict(), CLOSE_POLICY)
        return
    if first["type"] == "websocket.disconnect":
        return
    raw = first.get("text") if first.get("text") is not None else first.get("bytes")
    try:
        if raw is None or len(raw) > MAX_HELLO_BYTES:
            raise HelloError(f"the first message must be a JSON hello of at most {MAX_HELLO_BYTES} bytes")
        hello = parse_hello(raw)
        if hello.room != room_id:
            raise HelloError(f"field 'room': hello names room {hello.room!r}, the URL room {room_id!r}")
    except HelloError as e:
        await _fatal(websocket, e.to_dict(), CLOSE_POLICY)
        return

    # off the event loop: a tenant's first stream may read its watermark key file and build its hub
    tl = await asyncio.to_thread(live.tenant, tid)
    ctx = audit_context(websocket, principal)
    peer = Peer(source_ip=ctx.source_ip, source_port=ctx.source_port, dest_ip=ctx.dest_ip,
                dest_port=ctx.dest_port, client={"user_agent": ctx.user_agent} if ctx.user_agent else None)
    try:
        session, started = await asyncio.to_thread(_open, live, tid, tl, hello, peer)
    except LiveError as e:
        await _fatal(websocket, e.to_dict(), _close_code(e))
        return
    except Exception:  # noqa: BLE001 - unexpected: close with a generic reason, details to the log
        log.exception("opening live session %s/%s failed", hello.room, hello.speaker)
        await _fatal(websocket, {"type": "internal", "message": "could not open the session", "fatal": True},
                     CLOSE_INTERNAL)
        return
    owner = live.claim(tid, session)
    await _send(websocket, event_json(started))
    live.publish(tid, [started])
    await asyncio.to_thread(_audit, live.store, ctx, "room.connect", tl.sink.session_row(session.session_id),
                            {"room": hello.room, "speaker": hello.speaker, "session": session.session_id,
                             "codec": hello.codec.codec, "resumed": bool(getattr(started, "resumed", False))})
    conn = _Connection(websocket, live, tid, tl, session)
    try:
        await conn.run()
    finally:
        if live.release(tid, session, owner) and not conn.ended:
            tl.hub.detach(session)
        stats = dict(vars(session.stats))
        target = tl.sink.session_row(session.session_id)
        with anyio.CancelScope(shield=True):  # a cancelled handler (server shutdown) still audits
            await asyncio.to_thread(_audit, live.store, ctx, "room.disconnect", target,
                                    {"room": session.room, "speaker": session.speaker,
                                     "session": session.session_id, "reason": conn.reason, "stats": stats})
            reaped = await asyncio.to_thread(live.reap)
        for rt, ev in reaped:
            live.publish(rt, [ev])


class _Connection:
    """One stream connection after the hello: a reader task and a scorer task (module docstring).

    The reader ingests frames on the event loop (decode and buffer: tens of microseconds) and wakes the
    scorer; the scorer scores the queued windows in the scoring pool and sends their events. Outgoing
    messages are serialised by a lock, so each frame's immediate events and the windows keep their order.
    ``{"type": "end"}`` is handled by the scorer after the windows queued before it, so ``session_ended``
    is the last message. When the client disconnects, the scorer still scores what is queued (results and
    alerts go to the store and watchers) before the session is detached.
    """

    def __init__(self, websocket: WebSocket, live: LiveService, tid: str, tl: TenantLive,
                 session: StreamSession) -> None:
        self.ws, self.live, self.tid, self.tl, self.session = websocket, live, tid, tl, session
        self.wake = asyncio.Event()
        self.send_lock = asyncio.Lock()
        self.ending = False  # "end" received: no more frames, the scorer closes the session
        self.gone = False  # the client disconnected (or the connection failed): drain and stop
        self.ended = False  # the session was closed by this connection
        self.reason = "disconnect"
        self.fatal: tuple[dict[str, Any], int] | None = None
        self.replies = 0  # unexpected text messages to answer once the windows queued before them are sent
        self.cheap = session.cheap_ingest
        self.inbox: deque[bytes] = deque()  # frames waiting for the ingest pool (codecs that need decoding)
        self.inbox_bytes = 0
        self.ingester: asyncio.Task[None] | None = None

    async def run(self) -> None:
        reader = asyncio.create_task(self._reader())
        scorer = asyncio.create_task(self._scorer())
        try:
            await asyncio.wait({reader, scorer}, return_when=asyncio.FIRST_COMPLETED)
            if scorer.done():  # ended or failed: nothing more to read
                reader.cancel()
            with anyio.CancelScope(shield=True):
                if not scorer.done():  # the reader ended (disconnect or fatal): frames already read are
                    if self.ingester is not None:  # ingested, the scorer drains the queue, then stops
                        await asyncio.gather(self.ingester, return_exceptions=True)
                    self.gone = True
                    self.wake.set()
                await asyncio.gather(reader, scorer, return_exceptions=True)
        finally:
            for t in (reader, scorer, self.ingester):
                if t is not None:
                    t.cancel()
        if self.fatal is not None:
            await _fatal(self.ws, *self.fatal)

    async def send(self, events: list[Event] | list[dict[str, Any]]) -> bool:
        """Send events (or error dicts) in order; False once the client is gone."""
        if not events:
            return True
        async with self.send_lock:
            for ev in events:
                if not await _send(self.ws, event_json(ev)):
                    return False
        return True

    async def _reader(self) -> None:
        try:
            while True:
                msg = await self.ws.receive()
                if msg["type"] == "websocket.disconnect":
                    return
                data = msg.get("bytes")
                if data is not None:
                    if self.ending:
                        continue  # after "end": nothing more is taken
                    if self.cheap and not self.inbox:  # PCM16 at the model rate: microseconds, on the loop
                        await self._took(self.session.ingest(data))
                    else:  # decoding/resampling: in the ingest pool, in order, batched
                        self.inbox.append(data)
                        self.inbox_bytes += len(data)
                        if self.ingester is None or self.ingester.done():
                            self.ingester = asyncio.create_task(self._ingest_inbox())
                        if self.inbox_bytes > MAX_INBOX_BYTES:  # back-pressure by decoding speed only
                            await asyncio.shield(self.ingester)
                    continue
                if self.ingester is not None:  # "end" and barriers come after the frames before them
                    await asyncio.shield(self.ingester)
                if await self._control(msg.get("text") or ""):
                    self.ending = True
                    self.wake.set()
        except WebSocketDisconnect:
            return
        except LiveError as e:  # fatal for this connection (e.g. the session was closed by a newer hello)
            self.reason = e.code
            self.fatal = (e.to_dict(), _close_code(e))
        except Exception:  # noqa: BLE001 - keep the server up; the client gets a reason
            self.reason = "internal"
            log.exception("live stream %s/%s: reader failed", self.session.room, self.session.speaker)
            self.fatal = ({"type": "internal", "message": "internal error", "fatal": True}, CLOSE_INTERNAL)

    async def _took(self, events: list[Event]) -> None:
        """After ingesting: wake the scorer if windows wait, send and publish the immediate events."""
        if self.session.pending:
            self.wake.set()
        if events:
            await self.send(events)
            self.live.publish(self.tid, events)

    async def _ingest_inbox(self) -> None:
        """Ingest queued frames in the live ingest pool until the inbox is empty (one task at a time)."""
        loop = asyncio.get_running_loop()
        while self.inbox:
            batch = list(self.inbox)
            self.inbox.clear()
            self.inbox_bytes = 0
            events = await loop.run_in_executor(self.live.ingest_pool, _ingest_many, self.session, batch)
            await self._took(events)

    async def _scorer(self) -> None:
        try:
            while True:
                await self.wake.wait()
                self.wake.clear()
                if self.session.pending:
                    events = await asyncio.get_running_loop().run_in_executor(
                        self.live.score_pool, _score_pending, self.live, self.tid, self.tl, self.session)
                    if events:
                        if not self.gone:
                            await self.send(events)
                        self.live.publish(self.tid, events)
                    if self.session.pending:
                        self.wake.set()
                        continue
                if self.replies and not self.gone:
                    n, self.replies = self.replies, 0
                    await self.send([UNEXPECTED_TEXT] * n)
                if self.ending:
                    await self._end()
                    return
                if self.gone:
                    return
        except Exception:  # noqa: BLE001 - keep the server up; the client gets a reason
            self.reason = "internal"
            log.exception("live stream %s/%s: scorer failed", self.session.room, self.session.speaker)
            self.fatal = ({"type": "internal", "message": "internal error", "fatal": True}, CLOSE_INTERNAL)

    async def _end(self) -> None:
        """``{"type": "end"}``: close the session (tail window, ``session_ended``), then the socket."""
        events = await asyncio.to_thread(self.tl.hub.close, self.session)
        if any(isinstance(ev, SessionEnded) for ev in events):
            self.live.checkpoints.delete(self.tid, self.session.room, self.session.speaker)
        self.ended = True
        self.reason = "end"
        await self.send(events)
        self.live.publish(self.tid, events)
        with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
            if self.ws.application_state == WebSocketState.CONNECTED:
                await self.ws.close(code=CLOSE_NORMAL, reason="session ended")

    async def _control(self, text: str) -> bool:
        """A text message on the stream: True for ``{"type": "end"}``. Anything else is answered with a
        non-fatal ``unexpected_text`` by the scorer, after the events of the windows queued before it (so
        clients can use it as an in-order barrier), and otherwise ignored."""
        try:
            d = json.loads(text) if len(text) <= MAX_HELLO_BYTES else None
        except ValueError:
            d = None
        if isinstance(d, dict) and d.get("type") == "end":
            return True
        if self.replies < MAX_PENDING_REPLIES:
            self.replies += 1
        self.wake.set()
        return False


# -- subscription --------------------------------------------------------------------------------


@router.websocket("/{room_id}/events")
async def room_events(websocket: WebSocket, room_id: str) -> None:
    """Every event of the tenant's room (all speakers) as JSON text messages, for as long as connected."""
    principal = await ws_principal(websocket)
    if principal is None:
        return
    if not room_id or len(room_id) > MAX_ROOM_ID:
        await websocket.close(code=CLOSE_POLICY, reason="bad room id")
        return
    live: LiveService = websocket.app.state.live
    await websocket.accept()
    tid = principal.tenant_id
    sub = live.broadcaster.subscribe(tid, room_id)
    recv: asyncio.Task[Any] = asyncio.ensure_future(websocket.receive())
    get: asyncio.Task[str] = asyncio.ensure_future(sub.queue.get())
    reported = 0
    try:
        if not await _send(websocket, json.dumps({"type": "subscribed", "room": room_id})):
            return
        while True:
            done, _ = await asyncio.wait({recv, get}, return_when=asyncio.FIRST_COMPLETED)
            if get in done:
                if sub.dropped > reported:
                    await _send(websocket, json.dumps({"type": "dropped", "count": sub.dropped - reported}))
                    reported = sub.dropped
                if not await _send(websocket, get.result()):
                    break
                get = asyncio.ensure_future(sub.queue.get())
            if recv in done:
                if recv.result()["type"] == "websocket.disconnect":
                    break
                recv = asyncio.ensure_future(websocket.receive())  # client messages are ignored
    except WebSocketDisconnect:
        pass
    finally:
        for t in (recv, get):
            t.cancel()
        live.broadcaster.unsubscribe(tid, room_id, sub)


# -- alerts --------------------------------------------------------------------------------------


def alert_to_dict(a: AlertRow, room_id: str) -> dict[str, Any]:
    """An alert as the API shows it (the room by the platform's id)."""
    return {
        "id": a.id,
        "room": room_id,
        "speaker": a.speaker,
        "rule": a.rule,
        "status": a.status,
        "start": a.start,
        "end": a.end,
        "score": a.score,
        "severity": (a.details or {}).get("severity"),
        "key": (a.details or {}).get("key"),
        "details": a.details,
        "created_at": a.created_at.isoformat() if a.created_at else None,
    }


def _room_or_404(s: Any, tenant_id: str, room_id: str) -> RoomRow:
    """The tenant's room by its platform id; another tenant's room looks exactly like a missing one."""
    room = s.scalars(select(RoomRow).where(RoomRow.tenant_id == tenant_id, RoomRow.external_id == room_id)).first()
    if room is None:
        raise ApiError(404, "not_found", "no such room")
    return room


@router.get("/{room_id}/alerts", summary="Alerts raised in a room (newest first)")
def list_room_alerts(
    request: Request,
    room_id: str,
    principal: Annotated[Principal, Depends(require("rooms"))],
    status: Annotated[str | None, Query(max_length=16)] = None,
    limit: Annotated[int | None, Query(ge=1)] = None,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> dict[str, Any]:
    settings = request.app.state.settings
    limit = min(limit or settings.page_size_default, settings.page_size_max)
    with request.app.state.store.session() as s:
        room = _room_or_404(s, principal.tenant_id, room_id)
        rows = alert_repo.list_alerts(s, principal.tenant_id, status=status, room_id=room.id, limit=limit,
                                      offset=offset)
        items = [alert_to_dict(a, room_id) for a in rows]
    return {"items": items, "limit": limit, "offset": offset}


@router.get("/{room_id}/watermark-checks", summary="Watermark checks of a room's audio (stream order per session)")
def list_room_watermark_checks(
    request: Request,
    room_id: str,
    principal: Annotated[Principal, Depends(require("rooms"))],
    session: Annotated[str | None, Query(max_length=128, description="Only this session (hello id)")] = None,
    limit: Annotated[int | None, Query(ge=1)] = None,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> dict[str, Any]:
    """Every live watermark check of the room's speakers, whether or not a rule fired on it: which spans
    were checked for a label, and with what result (present / absent / error / skipped)."""
    settings = request.app.state.settings
    limit = min(limit or settings.page_size_default, settings.page_size_max)
    with request.app.state.store.session() as s:
        room = _room_or_404(s, principal.tenant_id, room_id)
        q = (select(WatermarkCheck, RoomSession.external_id, RoomSession.speaker)
             .join(RoomSession, RoomSession.id == WatermarkCheck.session_id)
             .where(WatermarkCheck.tenant_id == principal.tenant_id, RoomSession.room_id == room.id))
        if session is not None:
            q = q.where(RoomSession.external_id == session)
        q = q.order_by(RoomSession.started_at, WatermarkCheck.session_id, WatermarkCheck.start).limit(limit)
        rows = s.execute(q.offset(offset)).all()
        items = [{"session": ext, "speaker": spk, "start": c.start, "end": c.end, "result": c.result,
                  "payload": c.payload, "confidence": c.confidence, "seconds": c.seconds, "reason": c.reason,
                  "created_at": c.created_at.isoformat() if c.created_at else None}
                 for c, ext, spk in rows]
    return {"items": items, "limit": limit, "offset": offset}
