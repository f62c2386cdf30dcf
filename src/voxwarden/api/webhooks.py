"""Alert webhooks: signed JSON POSTs sent by a background thread from the store's delivery outbox.

* ``enqueue_alert`` (called by ``live_sink.StoreSink`` in the same transaction that stores the alert)
  queues one delivery per endpoint: the alert's ``webhook`` actions plus ``Settings.webhook_urls``. The
  event id is derived from the alert's natural key, and ``(tenant, url, event id)`` is unique in the
  store, so an alert replayed after a crash is queued once.
* ``WebhookDispatcher`` polls ``store.webhooks.due``, leases the rows (so a second dispatcher, e.g. in
  another worker process, skips them), POSTs each outside any transaction, then records success or
  failure (exponential backoff, dead letter after ``max_attempts``). Scoring never waits on HTTP.
* Every POST carries ``X-Voxwarden-Signature: t=<unix>,v1=<hex>`` where ``hex`` is
  HMAC-SHA256(secret, ``"<t>." + body``); ``verify_signature`` is the receiver's check (docs/webhooks.md).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from voxwarden.store import Store
from voxwarden.store import webhooks as outbox
from voxwarden.store.columns import as_utc, utcnow
from voxwarden.store.errors import InvalidInputError, StoreError
from voxwarden.store.models import Alert as AlertRow

log = logging.getLogger("voxwarden.api.webhooks")

SIGNATURE_HEADER = "X-Voxwarden-Signature"
EVENT_HEADER = "X-Voxwarden-Event"
DELIVERY_HEADER = "X-Voxwarden-Delivery"
ALERT_EVENT = "alert.raised"
MAX_RESPONSE_BYTES = 64 * 1024  # read (and drop) at most this much of a receiver's answer
DEFAULT_TOLERANCE_S = 300


def sign(secret: str | bytes, body: bytes, timestamp: int) -> str:
    """The ``X-Voxwarden-Signature`` value for `body` sent at `timestamp` (Unix seconds)."""
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    mac = hmac.new(key, str(int(timestamp)).encode("ascii") + b"." + body, hashlib.sha256).hexdigest()
    return f"t={int(timestamp)},v1={mac}"


def verify_signature(
    secret: str | bytes,
    header: str | None,
    body: bytes,
    *,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> bool:
    """Receiver side: True when `header` is a valid signature of `body` by `secret`, made no more than
    `tolerance_s` seconds from `now` (replay protection). Any malformed header is simply False."""
    if not header or len(header) > 2000:
        return False
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        k, sep, v = item.strip().partition("=")
        if sep:
            parts.setdefault(k, []).append(v)
    try:
        ts = int(parts.get("t", [""])[0])
    except ValueError:
        return False
    now = time.time() if now is None else now
    if abs(now - ts) > tolerance_s:
        return False
    expected = sign(secret, body, ts).split("v1=", 1)[1]
    return any(hmac.compare_digest(expected, v) for v in parts.get("v1", []))


@dataclass(frozen=True)
class WebhookConfig:
    """What the service needs to queue alert webhooks: endpoints for every alert and the retry budget."""

    urls: tuple[str, ...] = ()
    max_attempts: int = 8


def alert_event_id(natural_key: str) -> str:
    """The delivery event id of an alert: stable across replays (it is the alert's natural key)."""
    return f"alert:{natural_key}"


def alert_payload(tenant_id: str, row: AlertRow, *, severity: str | None = None) -> dict[str, Any]:
    """The JSON body of an ``alert.raised`` delivery."""
    return {
        "id": alert_event_id(row.natural_key),
        "type": ALERT_EVENT,
        "tenant": tenant_id,
        "data": {
            "alert_id": row.id,
            "key": row.natural_key,
            "room_id": row.room_id,
            "session_id": row.session_id,
            "speaker": row.speaker,
            "rule": row.rule,
            "severity": severity,
            "start": row.start,
            "end": row.end,
            "score": row.score,
            "status": row.status,
            "details": row.details,
        },
    }


def webhook_urls(actions: Sequence[Any], config: WebhookConfig) -> list[str]:
    """Endpoints for one alert: its rule's ``webhook`` actions, then the configured ones (no repeats)."""
    out: list[str] = []
    for a in actions or ():
        if isinstance(a, dict) and a.get("type") == "webhook" and isinstance(a.get("url"), str):
            out.append(a["url"])
    out.extend(config.urls)
    return list(dict.fromkeys(out))


def enqueue_alert(
    session: Session,
    tenant_id: str,
    row: AlertRow,
    actions: Sequence[Any],
    config: WebhookConfig,
    *,
    severity: str | None = None,
) -> int:
    """Queue the alert for each endpoint, in the caller's transaction; returns how many were new.

    Idempotent: the event id is the alert's natural key, so calling it again for the same alert (a
    replay after a crash) queues nothing. A URL the outbox refuses is logged and skipped, so a bad
    endpoint never loses the alert itself.
    """
    created = 0
    payload = alert_payload(tenant_id, row, severity=severity)
    for url in webhook_urls(actions, config):
        try:
            saved = outbox.enqueue_delivery(session, tenant_id, url, ALERT_EVENT, payload["id"], payload,
                                            max_attempts=config.max_attempts)
        except InvalidInputError as e:
            log.warning("webhook for alert %s not queued: %s", row.id, e)
            continue
        created += int(saved.created)
    return created


@dataclass(frozen=True)
class SendResult:
    """One POST's outcome: `status_code` (None when no HTTP answer came) and an error text on failure."""

    ok: bool
    status_code: int | None = None
    error: str | None = None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is a failure: following it would turn the POST into a GET or send it elsewhere."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None



def post_json(url: str, body: bytes, headers: dict[str, str], *, timeout: float) -> SendResult:
    """POST `body` with urllib; 2xx is success, anything else (3xx, 4xx, 5xx, network error) a failure."""
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Content-Type": "application/json",
                                          "User-Agent": "voxwarden-webhooks/1", **headers})
    try:
        # built per call: the usual proxy variables (HTTPS_PROXY, NO_PROXY) are read as they are now
        with urllib.request.build_opener(_NoRedirect()).open(req, timeout=timeout) as resp:
            resp.read(MAX_RESPONSE_BYTES)
            code = int(resp.status)
    except urllib.error.HTTPError as e:
        code = int(e.code)
        e.close()
        return SendResult(False, code, f"HTTP {code}")
    except (urllib.error.URLError, OSError, ValueError) as e:  # refused, DNS, timeout, bad URL
        reason = getattr(e, "reason", e)
        return SendResult(False, None, f"{type(e).__name__}: {reason}"[:1000])
    if 200 <= code < 300:
        return SendResult(True, code)
    return SendResult(False, code, f"HTTP {code}")


Sender = Callable[[str, bytes, dict[str, str]], SendResult]


@dataclass
class DispatchReport:
    """What one ``run_once`` did."""

    delivered: int = 0
    failed: int = 0  # failed tries that will be retried
    dead: int = 0  # failed tries that exhausted the budget (dead-lettered now)


@dataclass
class _Job:
    id: str
    url: str
    event_type: str
    body: bytes


@dataclass
class WebhookDispatcher:
    """Background sender of the store's webhook outbox (one per app; see the module docstring).

    `secret` signs every POST. `lease_s` is how long a claimed delivery is hidden from other
    dispatchers while it is being sent; a dispatcher that dies mid-send leaves it to be retried after
    that (at-least-once: receivers deduplicate on the ``id`` field / ``X-Voxwarden-Delivery``).
    """

    store: Store
    secret: str = field(repr=False)
    interval: float = 1.0
    timeout: float = 10.0
    batch: int = 20
    lease_s: float = 60.0
    sender: Sender | None = None
    clock: Callable[[], datetime] = field(default=utcnow)

    def __post_init__(self) -> None:
        if not self.secret:
            raise ValueError("webhook dispatcher needs a non-empty signing secret")
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _claim(self, now: datetime) -> list[_Job]:
        jobs: list[_Job] = []
        lease_until = now + timedelta(seconds=max(self.lease_s, self.timeout + 5))
        with self.store.session() as s:
            for d in outbox.due(s, now=now, limit=self.batch):
                d.next_try_at = lease_until
                body = json.dumps(d.payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
                jobs.append(_Job(d.id, d.url, d.event_type, body))
        return jobs

    def _send(self, job: _Job) -> SendResult:
        headers = {SIGNATURE_HEADER: sign(self.secret, job.body, int(time.time())),
                   EVENT_HEADER: job.event_type, DELIVERY_HEADER: job.id}
        try:
            if self.sender is not None:
                return self.sender(job.url, job.body, headers)
            return post_json(job.url, job.body, headers, timeout=self.timeout)
        except Exception as e:  # noqa: BLE001 - a sender bug is a failed try, not a dead dispatcher
            return SendResult(False, None, f"{type(e).__name__}: {e}"[:1000])

    def _record(self, job: _Job, res: SendResult, report: DispatchReport) -> None:
        from voxwarden.store.models import WebhookDelivery

        now = as_utc(self.clock())
        with self.store.session() as s:
            d = s.get(WebhookDelivery, job.id)
            if d is None or d.status != "pending":  # purged or handled meanwhile
                return
            if res.ok:
                outbox.record_success(s, d, status_code=res.status_code or 200, now=now)
                report.delivered += 1
                return
            outbox.record_failure(s, d, error=res.error or "failed", status_code=res.status_code, now=now)
            if d.status == "dead":
                report.dead += 1
                log.warning("webhook delivery %s to %s dead-lettered after %d tries: %s",
                            d.id, d.url, d.attempts, d.last_error)
            else:
                report.failed += 1

    def run_once(self) -> DispatchReport:
        """Send every delivery due now (one batch); safe to call from several threads or processes."""
        report = DispatchReport()
        with self._lock:
            for job in self._claim(as_utc(self.clock())):
                self._record(job, self._send(job), report)
        return report

    def wake(self) -> None:
        """Ask the thread to look at the outbox now instead of at the next poll."""
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                r = self.run_once()
                busy = r.delivered + r.failed + r.dead >= self.batch
            except StoreError as e:
                log.error("webhook dispatcher: store unavailable: %s", e)
                busy = False
            except Exception:  # noqa: BLE001 - the dispatcher must outlive any one bad row
                log.exception("webhook dispatcher failed")
                busy = False
            if not busy:
                self._wake.wait(self.interval)
                self._wake.clear()

    def start(self) -> None:
        """Start the daemon thread (once)."""
        if self._thread is not None or self._stop.is_set():
            return
        self._thread = threading.Thread(target=self._loop, name="voxwarden-webhooks", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the thread after its current POST; undelivered rows stay queued for the next start."""
        self._stop.set()
        self._wake.set()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout=timeout)
