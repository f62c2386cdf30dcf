"""The HTTP service: `create_app(settings)` builds a FastAPI app with its store, model and metrics.

One app = one `Store` and one `Detector` (loaded once, shared by every request; scoring runs in worker
threads so the event loop keeps serving). Routes are versioned under ``/v1``; ``/openapi.json`` describes
them; ``/metrics`` is the Prometheus exposition (no tenant data in it); ``/v1/health`` needs no key.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

from voxwarden.api.errors import install_handlers
from voxwarden.api.settings import Settings
from voxwarden.store import Store, StoreError

API_VERSION = "v1"
log = logging.getLogger("voxwarden.api")
MULTIPART_OVERHEAD = 64 * 1024  # boundaries, part headers and small form fields around the file

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class Metrics:
    """The app's own Prometheus registry (one per app, so several apps in a process do not clash)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("voxwarden_http_requests_total", "HTTP requests by method, route and status.",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("voxwarden_http_request_duration_seconds", "HTTP request latency.",
                                 ["method", "route"], registry=self.registry,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
        self.scans = Counter("voxwarden_scans_total", "Scans stored, by detector decision.",
                             ["decision"], registry=self.registry)
        self.rejected = Counter("voxwarden_scans_rejected_total", "Uploads refused as unusable audio, by error.",
                                ["error"], registry=self.registry)
        self.verifications = Counter("voxwarden_verifications_total", "Verify requests, by verdict.",
                                     ["verdict"], registry=self.registry)
        self.jobs = Counter("voxwarden_jobs_total", "Scan jobs by event (queued, done, failed, requeued).",
                            ["outcome"], registry=self.registry)
        self.marks = Counter("voxwarden_mark_requests_total", "Mark endpoint calls, by operation.",
                             ["op"], registry=self.registry)


class _BodyTooLarge(Exception):
    pass


class BodyLimitMiddleware:
    """Answer 413 as soon as a request body exceeds `limit` bytes (by Content-Length or while streaming),
    before it is spooled anywhere; whatever the app was about to answer is replaced."""

    def __init__(self, app: ASGIApp, limit: int, upload_limit: int | None = None) -> None:
        self.app = app
        self.limit = limit
        self.upload_limit = upload_limit if upload_limit is not None else limit

    async def _send_413(self, send: Send) -> None:
        body = (b'{"type":"too_large","message":"upload larger than the limit of %d bytes"}'
                % self.upload_limit)
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for k, v in scope.get("headers", []):
            if k == b"content-length":
                if not v.isdigit() or int(v) > self.limit:
                    await self._send_413(send)
                    return
        state = {"received": 0, "exceeded": False, "started": False}

        async def limited_receive() -> Message:
            msg = await receive()
            if msg["type"] == "http.request":
                state["received"] += len(msg.get("body", b""))
                if state["received"] > self.limit:
                    state["exceeded"] = True
                    raise _BodyTooLarge()
            return msg

        async def guarded_send(msg: Message) -> None:
            if state["exceeded"]:
                if not state["started"]:
                    state["started"] = True
                    await self._send_413(send)
                return
            if msg["type"] == "http.response.start":
                state["started"] = True
            await send(msg)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except _BodyTooLarge:
            pass
        if state["exceeded"] and not state["started"]:
            await self._send_413(send)


class MetricsMiddleware:
    """Counts requests and their latency per route template (never the raw path: ids would explode it)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = {"code": 500}
        t0 = time.perf_counter()

        async def send_status(msg: Message) -> None:
            if msg["type"] == "http.response.start":
                status["code"] = int(msg["status"])
            await send(msg)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            label = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "?")
            self.metrics.requests.labels(method, label, str(status["code"])).inc()
            self.metrics.latency.labels(method, label).observe(time.perf_counter() - t0)


def open_store(settings: Settings) -> Store:
    """The store the settings name: `database_url`, else SQLite in `data_dir` (migrated to the newest schema)."""
    if settings.database_url:
        return Store(settings.database_url, evidence_dir=settings.resolved_evidence_dir)
    return Store(data_dir=settings.data_dir, evidence_dir=settings.resolved_evidence_dir)


def create_app(settings: Settings | None = None, *, store: Store | None = None, detector: Any = None) -> FastAPI:
    """Build the service. Opens (and migrates) the store and loads the model now, once for this app.

    `store` / `detector` may be given to share them (tests, embedding); the app then does not dispose
    the store at shutdown.
    """
    settings = settings or Settings()
    own_store = store is None
    store = store if store is not None else open_store(settings)
    if detector is None:
        from voxwarden.detect import Detector

        detector = Detector.load(settings.model)
    from voxwarden.mark.verify import Verifier

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if app.state.webhooks is not None:
            app.state.webhooks.start()
        await asyncio.to_thread(app.state.jobs.start)  # requeues jobs of dead workers first
        yield
        await asyncio.to_thread(app.state.jobs.stop)
        await asyncio.to_thread(app.state.live.stop)  # the live reaper, before the store goes
        if app.state.webhooks is not None:
            await asyncio.to_thread(app.state.webhooks.stop)
        if own_store:
            store.dispose()

    app = FastAPI(
        title="voxwarden",
        version=API_VERSION,
        description="Synthetic-speech detection, AI-label verification and audit for voice platforms.",
        lifespan=lifespan,
    )
    metrics = Metrics()
    app.state.settings = settings
    app.state.store = store
    app.state.detector = detector
    app.state.verifier = Verifier(detector=detector)
    app.state.metrics = metrics
    app.state.scan_slots = asyncio.Semaphore(settings.max_concurrent_scans)
    app.state.idempotency_locks = weakref.WeakValueDictionary()
    install_handlers(app)

    from voxwarden.api.live_sink import LiveService
    from voxwarden.api.routes_rooms import router as rooms_router
    from voxwarden.api.routes_scan import router as scan_router

    # live rooms: one hub per tenant on this app's detector; checkpoints beside the data
    from voxwarden.api.settings import SettingsError
    from voxwarden.api.webhooks import WebhookConfig, WebhookDispatcher
    from voxwarden.live import RulesError, StreamOptions

    # alert webhooks: queued with the alert, sent by a background thread (only with a signing secret)
    hooks = None
    app.state.webhooks = None
    if settings.webhook_secret:
        app.state.webhooks = WebhookDispatcher(store, settings.webhook_secret)
        hooks = WebhookConfig(urls=settings.webhook_urls, max_attempts=settings.webhook_max_attempts)
    from voxwarden.api.live_watermark import CheckBudget, tenant_checkers
    from voxwarden.api.tenant_keys import TenantKeys

    tenant_keys = TenantKeys(settings.data_dir / "tenant-keys")  # per-tenant mark keys: mark, verify, live rooms
    # live watermark checks with each tenant's own key, for tenants that have one, within one shared time budget
    watermark_for = (tenant_checkers(tenant_keys, CheckBudget(settings.live_watermark_budget))
                     if settings.live_watermark == "tenant" else None)
    try:
        app.state.live = LiveService(store, detector, checkpoint_dir=settings.data_dir / "live-checkpoints",
                                     rules_path=settings.rules_path, webhooks=hooks, watermark_for=watermark_for,
                                     options=StreamOptions(max_backlog=settings.live_max_backlog,
                                                           watermark_every=settings.live_watermark_every),
                                     score_threads=settings.live_score_threads,
                                     on_webhook=app.state.webhooks.wake if app.state.webhooks else None)
    except RulesError as e:  # a bad rules file stops the start, naming file and line
        raise SettingsError(f"rules_path: {e}") from e
    from voxwarden.api.responses import ERROR_RESPONSES

    app.include_router(scan_router, responses=ERROR_RESPONSES)
    app.include_router(rooms_router, responses=ERROR_RESPONSES)
    from voxwarden.api.jobs_worker import JobWorkers
    from voxwarden.api.routes_jobs import router as jobs_router
    from voxwarden.api.routes_mark import router as mark_router
    from voxwarden.api.routes_scan import tenant_verifier

    # long uploads: spooled jobs scored by background threads (docs/api.md "Jobs")
    app.state.jobs = JobWorkers(store, detector, settings.data_dir / "spool", workers=settings.job_workers,
                                lease_seconds=settings.job_lease_seconds, max_attempts=settings.job_max_attempts,
                                metrics=metrics, verifier_for=lambda tenant: tenant_verifier(app.state, tenant),
                                tenant_keys=tenant_keys,
                                result_hours=settings.job_result_hours)
    app.state.tenant_keys = app.state.jobs.tenant_keys
    app.include_router(jobs_router, responses=ERROR_RESPONSES)
    app.include_router(mark_router, responses=ERROR_RESPONSES)
    from voxwarden.api.console import install_console

    install_console(app)  # review console: /console pages + /console/static (docs/console.md)

    @app.get(f"/{API_VERSION}/health", tags=["service"], summary="Liveness and readiness (no key needed)")
    async def health(request: Request) -> JSONResponse:
        checks: dict[str, str] = {}
        ok = True
        try:
            await asyncio.to_thread(request.app.state.store.check)
            checks["store"] = "ok"
        except StoreError as e:  # the code only: the message may name hosts or paths, and health is public
            ok = False
            checks["store"] = e.code
            log.error("health: store check failed: %s", e)
        det = request.app.state.detector
        if det is not None and getattr(det, "model_id", None):
            checks["model"] = str(det.model_id)
        else:
            ok = False
            checks["model"] = "not loaded"
        body: dict[str, Any] = {"status": "ok" if ok else "unavailable", "version": API_VERSION, "checks": checks}
        if not ok:
            body.update(type="unavailable", message="; ".join(f"{k}: {v}" for k, v in checks.items()))
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics_endpoint(request: Request) -> Response:
        return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(BodyLimitMiddleware, limit=settings.max_upload_bytes + MULTIPART_OVERHEAD,
                       upload_limit=settings.max_upload_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    if settings.trusted_proxies:  # outermost: everything after it sees the forwarded client address
        from voxwarden.api.proxy import ProxyHeadersMiddleware

        app.add_middleware(ProxyHeadersMiddleware, trusted=settings.trusted_proxies)
    return app
