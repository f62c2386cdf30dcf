"""Alert webhooks: signed deliveries to a real HTTP server on 127.0.0.1, retries and dead letters,
idempotent replays, the background thread, the app wiring, and the rectification-item constraint (0003).

Store-level tests run on SQLite and on PostgreSQL (skipped loudly when unreachable, see conftest)."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from _api_support import pg_empty
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from voxwarden.api import Settings
from voxwarden.api.live_sink import StoreSink
from voxwarden.api.settings import SettingsError
from voxwarden.api.webhooks import (
    SIGNATURE_HEADER,
    WebhookConfig,
    WebhookDispatcher,
    alert_event_id,
    sign,
    verify_signature,
)
from voxwarden.live import Alert, SessionStarted
from voxwarden.store import Store, keys
from voxwarden.store import webhooks as outbox
from voxwarden.store.assessments import add_item, start_run
from voxwarden.store.errors import StoreError
from voxwarden.store.models import WebhookDelivery

SECRET = "test-secret-0123456789"


class Receiver:
    """A real HTTP server in a thread that records every POST and answers ``status`` (settable)."""

    def __init__(self, status: int = 204) -> None:
        self.status = status
        self.requests: list[dict[str, Any]] = []
        self.got = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                outer.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                code = outer.status
                self.send_response(code)
                if 300 <= code < 400:
                    self.send_header("Location", "/elsewhere")
                self.send_header("Content-Length", "0")
                self.end_headers()
                outer.got.set()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """The receiver is on 127.0.0.1: a proxy from the environment must not take the requests."""
    for k in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(k, raising=False)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()



@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        db = tmp_path / "voxwarden.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), db)
        st = Store(f"sqlite:///{db}", evidence_dir=tmp_path / "evidence", migrate=False)
        url = None
    else:
        url = request.getfixturevalue("pg_schema_url")
        st = Store(url, evidence_dir=tmp_path / "evidence", migrate=False)
    yield st
    st.dispose()
    if url is not None:
        pg_empty(url)


def tenant(store: Store, name: str = "acme") -> str:
    with store.session() as s:
        return keys.create_tenant(s, name).id


def alert(url: str | None, *, start: float = 1_700_000_000.5, rule: str = "sustained") -> Alert:
    actions: list[dict[str, Any]] = [{"type": "alert"}]
    if url:
        actions.append({"type": "webhook", "url": url})
    return Alert(room="r1", speaker="alice", session="s1", rule=rule, severity="critical", window_start=start,
                 window_end=start + 2.0, start=3.0, end=5.0, probability=0.97, threshold=0.9, windows=3,
                 actions=actions, reason="3 windows above 0.9")


def sink_with_session(store: Store, tid: str, config: WebhookConfig | None, **kw: Any) -> StoreSink:
    sink = StoreSink(store, tid, webhooks=config, **kw)
    sink(SessionStarted(room="r1", speaker="alice", session="s1", codec="pcm16", sample_rate=16000))
    return sink


def deliveries(store: Store) -> list[WebhookDelivery]:
    with store.session() as s:
        rows = list(s.scalars(select(WebhookDelivery).order_by(WebhookDelivery.created_at)))
        s.expunge_all()
        return rows


class Clock:
    """A settable clock for the dispatcher (to step over backoff without sleeping)."""

    def __init__(self) -> None:
        self.t = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.t


# -- signatures ----------------------------------------------------------------------------------


def test_signature_round_trip_and_refusals() -> None:
    body = b'{"id":"alert:x","type":"alert.raised"}'
    now = 1_800_000_000
    h = sign(SECRET, body, now)
    assert h.startswith(f"t={now},v1=") and len(h.split("v1=")[1]) == 64
    assert verify_signature(SECRET, h, body, now=now + 10)
    assert not verify_signature(SECRET, h, body + b" ", now=now)  # body changed
    assert not verify_signature("another-secret-xxxxxx", h, body, now=now)  # wrong secret
    assert not verify_signature(SECRET, h, body, now=now + 301)  # too old: a replay
    assert not verify_signature(SECRET, sign(SECRET, body, now + 1), body.replace(b"x", b"y"), now=now)
    for bad in (None, "", "garbage", "t=abc,v1=00", f"t={now}", f"v1={h.split('v1=')[1]}", "t=1," * 1000):
        assert not verify_signature(SECRET, bad, body, now=now)
    # several v1 values (secret rotation): any match is enough
    assert verify_signature(SECRET, f"t={now},v1={'0' * 64},{h.split(',')[1]}", body, now=now)


# -- outbox + dispatcher against a real HTTP server ------------------------------------------------


def test_alert_with_webhook_action_is_delivered_signed(store: Store, receiver: Receiver) -> None:
    tid = tenant(store)
    sink = sink_with_session(store, tid, WebhookConfig())
    ev = alert(receiver.url)
    sink(ev)
    [d] = deliveries(store)
    with store.session() as s:
        from voxwarden.store.models import Alert as AlertRow

        natural_key = s.scalars(select(AlertRow.natural_key)).one()
    assert d.status == "pending" and d.url == receiver.url and d.event_id == alert_event_id(natural_key)

    report = WebhookDispatcher(store, SECRET).run_once()
    assert (report.delivered, report.failed, report.dead) == (1, 0, 0)
    [req] = receiver.requests
    body = req["body"]
    assert verify_signature(SECRET, req["headers"][SIGNATURE_HEADER], body)
    assert not verify_signature("wrong-secret-xxxxxxxxx", req["headers"][SIGNATURE_HEADER], body)
    assert req["headers"]["Content-Type"] == "application/json"
    assert req["headers"]["X-Voxwarden-Event"] == "alert.raised"
    msg = json.loads(body)
    assert msg["id"] == alert_event_id(natural_key) and msg["type"] == "alert.raised" and msg["tenant"] == tid
    assert msg["data"]["key"] == natural_key and msg["data"]["details"]["key"] == ev.key
    assert msg["data"]["rule"] == "sustained"
    assert msg["data"]["severity"] == "critical" and msg["data"]["score"] == pytest.approx(0.97)
    [d] = deliveries(store)
    assert d.status == "delivered" and d.attempts == 1 and d.last_status_code == 204
    assert WebhookDispatcher(store, SECRET).run_once().delivered == 0  # nothing left to send
    assert len(receiver.requests) == 1


def test_replayed_alert_is_delivered_once(store: Store, receiver: Receiver) -> None:
    tid = tenant(store)
    calls: list[int] = []
    sink = sink_with_session(store, tid, WebhookConfig(), on_webhook=lambda: calls.append(1))
    sink(alert(receiver.url))
    # a crash and a replay: a fresh sink (as after a restart) sees the same alert again, twice
    sink2 = sink_with_session(store, tid, WebhookConfig())
    sink2(alert(receiver.url))
    sink2(alert(receiver.url))
    assert len(deliveries(store)) == 1 and calls == [1]
    WebhookDispatcher(store, SECRET).run_once()
    sink2(alert(receiver.url))  # replayed again after it was delivered
    WebhookDispatcher(store, SECRET).run_once()
    assert len(receiver.requests) == 1
    # a different alert (another window start) is a new delivery
    sink2(alert(receiver.url, start=1_700_000_010.0))
    assert WebhookDispatcher(store, SECRET).run_once().delivered == 1
    assert len(receiver.requests) == 2


def test_failing_receiver_is_retried_with_backoff_then_dead_lettered(store: Store, receiver: Receiver) -> None:
    receiver.status = 500
    tid = tenant(store)
    sink_with_session(store, tid, WebhookConfig(max_attempts=3))(alert(receiver.url))
    clock = Clock()
    disp = WebhookDispatcher(store, SECRET, clock=clock)

    r = disp.run_once()
    assert (r.delivered, r.failed, r.dead) == (0, 1, 0)
    [d] = deliveries(store)
    assert d.status == "pending" and d.attempts == 1 and d.last_status_code == 500
    wait = d.next_try_at - clock.t  # UTCDateTime gives aware datetimes on both databases
    assert timedelta(seconds=29) <= wait <= timedelta(seconds=31)  # 30 s after the first failure
    assert disp.run_once().failed == 0  # not due yet: no request
    assert len(receiver.requests) == 1

    clock.t += timedelta(seconds=31)
    assert disp.run_once().failed == 1
    [d] = deliveries(store)
    assert d.attempts == 2
    clock.t += timedelta(seconds=61)  # 60 s after the second
    assert disp.run_once().dead == 1
    [d] = deliveries(store)
    assert d.status == "dead" and d.attempts == 3 and "500" in (d.last_error or "")
    assert len(receiver.requests) == 3
    clock.t += timedelta(hours=7)
    assert disp.run_once().failed == 0 and len(receiver.requests) == 3  # dead letters are not retried

    with store.session() as s:
        [dead] = outbox.dead_letters(s, tid)
        outbox.retry_dead(s, tid, dead.id, now=clock.t)
    receiver.status = 200
    assert disp.run_once().delivered == 1
    assert deliveries(store)[0].status == "delivered"
    assert all(verify_signature(SECRET, q["headers"][SIGNATURE_HEADER], q["body"]) for q in receiver.requests)


def test_unreachable_and_redirecting_receivers_are_failures(store: Store, receiver: Receiver) -> None:
    tid = tenant(store)
    dead_port = Receiver()
    dead_url = dead_port.url
    dead_port.close()  # nothing listens there any more: connection refused
    receiver.status = 302  # a redirect must not be followed (it would turn the POST into a GET)
    sink = sink_with_session(store, tid, WebhookConfig(urls=(dead_url,)))
    sink(alert(receiver.url))
    assert len(deliveries(store)) == 2  # the rule's endpoint and the configured one
    r = WebhookDispatcher(store, SECRET, timeout=3).run_once()
    assert (r.delivered, r.failed) == (0, 2)
    by_url = {d.url: d for d in deliveries(store)}
    assert by_url[receiver.url].last_status_code == 302
    assert by_url[dead_url].last_status_code is None and by_url[dead_url].last_error
    assert [q["path"] for q in receiver.requests] == ["/hook"]


def test_no_webhook_without_action_or_config(store: Store, receiver: Receiver) -> None:
    tid = tenant(store)
    sink_with_session(store, tid, WebhookConfig())(alert(None))  # rule without a webhook action
    sink_with_session(store, tid, None)(alert(receiver.url, rule="other"))  # webhooks switched off
    assert deliveries(store) == []
    # configured URLs get every alert, even one whose rule names no webhook
    sink_with_session(store, tid, WebhookConfig(urls=(receiver.url,)))(alert(None, rule="third"))
    assert [d.url for d in deliveries(store)] == [receiver.url]


def test_sender_crash_is_a_failed_try_not_a_dead_dispatcher(store: Store) -> None:
    tid = tenant(store)
    sink_with_session(store, tid, WebhookConfig())(alert("http://127.0.0.1:9/x"))

    def boom(url: str, body: bytes, headers: dict[str, str]) -> Any:
        raise RuntimeError("sender bug")

    r = WebhookDispatcher(store, SECRET, sender=boom).run_once()
    assert r.failed == 1 and "sender bug" in (deliveries(store)[0].last_error or "")


def test_claimed_delivery_is_leased_from_a_second_dispatcher(store: Store, receiver: Receiver) -> None:
    """While one dispatcher is sending, another (another worker process) must not send the same row."""
    tid = tenant(store)
    sink_with_session(store, tid, WebhookConfig())(alert(receiver.url))
    second: list[int] = []

    def slow_sender(url: str, body: bytes, headers: dict[str, str]) -> Any:
        second.append(WebhookDispatcher(store, SECRET).run_once().delivered)  # runs mid-send
        from voxwarden.api.webhooks import post_json

        return post_json(url, body, headers, timeout=5)

    assert WebhookDispatcher(store, SECRET, sender=slow_sender).run_once().delivered == 1
    assert second == [0] and len(receiver.requests) == 1


def test_background_thread_delivers_and_stops(store: Store, receiver: Receiver) -> None:
    tid = tenant(store)
    disp = WebhookDispatcher(store, SECRET, interval=30.0)  # long poll: only wake() makes it prompt
    disp.start()
    try:
        sink = sink_with_session(store, tid, WebhookConfig(), on_webhook=disp.wake)
        t0 = time.monotonic()
        sink(alert(receiver.url))  # returns at once: the POST happens on the dispatcher thread
        assert time.monotonic() - t0 < 5
        assert receiver.got.wait(10)
    finally:
        disp.stop()
    assert disp._thread is not None and not disp._thread.is_alive()
    deadline = time.monotonic() + 5
    while deliveries(store)[0].status != "delivered" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert deliveries(store)[0].status == "delivered"


# -- settings and app wiring -----------------------------------------------------------------------


def test_settings_validate_webhooks(tmp_path: Path) -> None:
    s = Settings.from_mapping({"webhook_secret": SECRET, "webhook_urls": ["https://h.example/a"],
                               "webhook_max_attempts": 5})
    assert s.webhook_urls == ("https://h.example/a",) and s.webhook_max_attempts == 5
    for bad in ({"webhook_urls": ["https://h.example/a"]},  # no secret: deliveries must be signed
                {"webhook_secret": "short"},
                {"webhook_secret": SECRET, "webhook_urls": ["ftp://h.example/a"]},
                {"webhook_secret": SECRET, "webhook_urls": ["https:///nohost"]},
                {"webhook_secret": SECRET, "webhook_urls": [3]},
                {"webhook_secret": 123},
                {"webhook_max_attempts": 0}, {"webhook_max_attempts": 101}, {"webhook_max_attempts": True}):
        with pytest.raises(SettingsError):
            Settings.from_mapping(bad)
    with pytest.raises(ValueError):
        WebhookDispatcher(None, "")  # type: ignore[arg-type]


def test_app_starts_and_stops_the_dispatcher(tmp_path: Path, sqlite_template: Path, detector: Any,
                                             receiver: Receiver) -> None:
    from _api_support import make_env

    db = tmp_path / "voxwarden.db"
    shutil.copyfile(sqlite_template, db)
    st = Store(f"sqlite:///{db}", evidence_dir=tmp_path / "evidence", migrate=False)
    try:
        e = make_env(st, detector, tmp_path, webhook_secret=SECRET, webhook_urls=(receiver.url,))
        disp = e.app.state.webhooks
        assert isinstance(disp, WebhookDispatcher) and e.app.state.live.webhooks.urls == (receiver.url,)
        with e.client:  # lifespan: start ... stop
            assert disp._thread is not None and disp._thread.is_alive()
            sink = e.app.state.live.tenant(e.tenant_a).sink
            sink(SessionStarted(room="r1", speaker="alice", session="s1", codec="pcm16", sample_rate=16000))
            sink(alert(None))
            assert receiver.got.wait(10)
        assert not disp._thread.is_alive()
        req = receiver.requests[0]
        assert verify_signature(SECRET, req["headers"][SIGNATURE_HEADER], req["body"])
        assert json.loads(req["body"])["tenant"] == e.tenant_a
        from voxwarden.api import create_app

        off = create_app(Settings(data_dir=tmp_path / "off"), store=st, detector=detector)
        assert off.state.webhooks is None and off.state.live.webhooks is None
    finally:
        st.dispose()


# -- migration 0003 ------------------------------------------------------------------------------------


def test_rectification_item_is_unique_per_run_and_finding(store: Store) -> None:
    tid = tenant(store)
    with store.session() as s:
        run = start_run(s, tid, "cac")
        run_id = run.id
        add_item(s, tid, finding="LOG-6M", title="Keep logs", severity="high", run_id=run_id)
        add_item(s, tid, finding="LOG-6M", title="Keep logs", severity="high")  # no run: not constrained
        add_item(s, tid, finding="LOG-6M", title="Keep logs", severity="high")
    with pytest.raises((IntegrityError, StoreError)), store.session() as s:
        add_item(s, tid, finding="LOG-6M", title="again", severity="high", run_id=run_id)
        s.flush()
    with store.session() as s:
        from voxwarden.store.models import RectificationItem

        n = s.scalar(select(func.count()).select_from(RectificationItem).where(RectificationItem.run_id == run_id))
        assert n == 1
