"""Assessment against a running voxwarden service (``service:`` in `assessment.yaml`).

Detection trials are scored by the deployed service, not by an in-process model: each clip (its original
bytes) and each degraded copy (degraded here with `voxwarden.audio.degrade`, sent as a 32-bit float WAV so
no second quantisation changes the samples) is POSTed to ``/v1/scans?mode=sync``; score, probability,
decision and threshold come back from the service, so the report measures the model and threshold that are
actually deployed. Every upload carries an ``Idempotency-Key`` derived from the deployed model id, the
trial's file, the degradation and the uploaded bytes' sha256: a retried or repeated assessment replays the
stored scans instead of scoring (and storing) them again, while a newly deployed model is measured afresh.

Only the standard library talks HTTP here (``urllib``), so the runtime needs no HTTP client dependency.
A failed upload (bad audio, HTTP error, service gone mid-run) is an error record for that trial; the run
goes on. The live load run streams through the service's WebSocket ``/v1/rooms/{id}/stream`` with the
``websockets`` client (already a runtime dependency, uvicorn's WebSocket support): `run_live_load_service`.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from voxwarden.assess.config import DetectionConfig, ServiceConfig
from voxwarden.assess.measure import Measured, detection_conditions, read_trials, summarize_detection

USER_AGENT = "voxwarden-assess"
SAMPLE_RATE = 16000  # degraded copies are made and sent at this rate (the rate the service's models take)
RETRY_STATUS = {429, 502, 503, 504}


class ServiceError(RuntimeError):
    """The service could not be reached, refused the key, or answered something that is not a scan."""

    def __init__(self, message: str, *, status: int | None = None, kind: str = "service") -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind


@dataclass
class ServiceStats:
    """What the service run did: uploads, replays (idempotent hits), errors by kind."""

    url: str
    model_id: str | None = None
    uploads: int = 0
    scored: int = 0
    replayed: int = 0
    errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)
    thresholds: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"url": self.url, "model_id": self.model_id, "uploads": self.uploads, "scored": self.scored,
                "replayed": self.replayed, "errors": self.errors, "error_kinds": dict(self.error_kinds),
                "thresholds": sorted(set(self.thresholds))}


def float_wav(samples: np.ndarray, sr: int) -> bytes:
    """Mono 32-bit IEEE-float WAV bytes of `samples` (exact: the service decodes the same float32 values)."""
    data = np.ascontiguousarray(np.asarray(samples, dtype="<f4")).tobytes()
    fmt = (3).to_bytes(2, "little") + (1).to_bytes(2, "little") + int(sr).to_bytes(4, "little") \
        + (int(sr) * 4).to_bytes(4, "little") + (4).to_bytes(2, "little") + (32).to_bytes(2, "little") \
        + (0).to_bytes(2, "little")
    n_frames = (len(data) // 4).to_bytes(4, "little")
    body = b"WAVE" + b"fmt " + len(fmt).to_bytes(4, "little") + fmt + b"fact" + (4).to_bytes(4, "little") \
        + n_frames + b"data" + len(data).to_bytes(4, "little") + data
    return b"RIFF" + len(body).to_bytes(4, "little") + body


def idempotency_key(model_id: str, file: str, condition: str, payload: bytes) -> str:
    """A stable key per (deployed model, trial, degradation, bytes): a repeat replays, a new model re-scores."""
    h = hashlib.sha256()
    for part in (model_id, file, condition, hashlib.sha256(payload).hexdigest()):
        h.update(part.encode("utf-8") + b"\0")
    return f"assess-{h.hexdigest()[:48]}"


class ServiceClient:
    """The few calls an assessment makes to a voxwarden service (stdlib HTTP, bearer key, per-call timeout)."""

    def __init__(self, cfg: ServiceConfig) -> None:
        self.base = cfg.url.rstrip("/")
        self.api_key = cfg.api_key
        self.timeout = cfg.timeout_s
        self.retries = cfg.retries

    def _request(self, method: str, path: str, *, body: bytes | None = None, headers: dict[str, str] | None = None,
                 auth: bool = True) -> tuple[int, dict[str, str], Any]:
        hdrs = {"User-Agent": USER_AGENT, "Accept": "application/json", **(headers or {})}
        if auth:
            hdrs["Authorization"] = f"Bearer {self.api_key}"
        url = self.base + path
        last: ServiceError | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(min(2.0, 0.25 * 2 ** attempt))
            req = urllib.request.Request(url, data=body, headers=hdrs, method=method)
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as r:  # noqa: S310 - URL checked in config
                    return r.status, dict(r.headers.items()), _json(r.read(), url)
            except urllib.error.HTTPError as e:
                raw = e.read()
                try:
                    doc = json.loads(raw.decode("utf-8"))
                except (UnicodeDecodeError, ValueError):
                    doc = {}
                kind = str(doc.get("type") or f"http_{e.code}") if isinstance(doc, dict) else f"http_{e.code}"
                msg = str(doc.get("message") or e.reason) if isinstance(doc, dict) else str(e.reason)
                last = ServiceError(f"{method} {url}: HTTP {e.code} {kind}: {msg}", status=e.code, kind=kind)
                if e.code not in RETRY_STATUS:
                    raise last from e
            except (urllib.error.URLError, OSError, TimeoutError, http.client.HTTPException) as e:
                reason = getattr(e, "reason", e)
                last = ServiceError(f"{method} {url}: unreachable: {reason}", kind="unreachable")
        assert last is not None
        raise last

    def health(self) -> dict[str, Any]:
        """``GET /v1/health`` (no key); raises `ServiceError` when the service is down or not ready."""
        _, _, doc = self._request("GET", "/v1/health", auth=False)
        if not isinstance(doc, dict) or doc.get("status") != "ok":
            raise ServiceError(f"{self.base}/v1/health: not ready: {doc!r}"[:300])
        return doc

    def check_key(self) -> None:
        """A cheap authenticated read, so a wrong key or missing scope fails before any trial is sent."""
        self._request("GET", "/v1/scans?limit=1")

    def scan(self, payload: bytes, filename: str, key: str) -> tuple[dict[str, Any], bool]:
        """``POST /v1/scans?mode=sync`` with `Idempotency-Key`; (scan body, replayed?)."""
        boundary = f"voxwarden-{uuid.uuid4().hex}"
        safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in filename)[:200] or "clip.wav"
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{safe}\"\r\n"
                f"Content-Type: application/octet-stream\r\n\r\n").encode() + payload \
            + f"\r\n--{boundary}--\r\n".encode()
        status, headers, doc = self._request(
            "POST", "/v1/scans?mode=sync", body=body,
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}", "Idempotency-Key": key})
        if status not in (200, 201) or not isinstance(doc, dict) or "probability" not in doc:
            raise ServiceError(f"POST /v1/scans: unexpected answer {status}: {str(doc)[:200]}", status=status,
                               kind="unexpected")
        replayed = status == 200 or headers.get("Idempotent-Replayed", "").lower() == "true"
        return doc, replayed


def _json(raw: bytes, url: str) -> Any:
    try:
        return json.loads(raw.decode("utf-8")) if raw else None
    except (UnicodeDecodeError, ValueError) as e:
        raise ServiceError(f"{url}: answer is not JSON", kind="unexpected") from e


def preflight(cfg: ServiceConfig) -> str:
    """Health and key check before a run; the deployed model id. Raises `ServiceError` with a clear message."""
    client = ServiceClient(cfg)
    doc = client.health()
    client.check_key()
    checks = doc.get("checks") if isinstance(doc.get("checks"), dict) else {}
    return str(checks.get("model") or "unknown")


def measure_detection_service(cfg: DetectionConfig, svc: ServiceConfig, out_dir: Path) -> Measured:
    """Score `cfg.protocol` clean and under each degradation through the deployed service (see module doc);
    the same figures as `measure_detection`, with ``measured_via`` = the URL and a ``service`` block."""
    from voxwarden import audio
    from voxwarden.audio.degrade import degrade
    from voxwarden.detect.evaluate import EvalRecord
    from voxwarden.detect.protocol import resolve_audio

    m = Measured()
    client = ServiceClient(svc)
    stats = ServiceStats(url=client.base)
    stats.model_id = preflight(svc)
    rows = read_trials(cfg, m)
    conditions = detection_conditions(cfg)
    by_cond: dict[str, list[Any]] = {c: [] for c in conditions}
    durations: dict[str, float] = {}
    models: set[str] = set()

    def send(payload: bytes, name: str, key: str) -> tuple[float | None, str | None]:
        stats.uploads += 1
        try:
            doc, replayed = client.scan(payload, name, key)
        except ServiceError as e:
            stats.errors += 1
            stats.error_kinds[e.kind] = stats.error_kinds.get(e.kind, 0) + 1
            return None, str(e)
        prob = doc.get("probability")
        if isinstance(prob, bool) or not isinstance(prob, int | float) or not np.isfinite(prob):
            stats.errors += 1
            stats.error_kinds["no_score"] = stats.error_kinds.get("no_score", 0) + 1
            return None, f"service stored the scan without a score: {str(doc.get('error'))[:200]}"
        stats.replayed += int(replayed)
        stats.scored += int(not replayed)
        if doc.get("threshold") is not None:
            stats.thresholds.append(float(doc["threshold"]))
        if doc.get("model"):
            models.add(str(doc["model"]))
        return float(prob), None

    for row in rows:
        path = resolve_audio(row, cfg.audio_dir)
        try:
            original = Path(path).read_bytes()
            clip = audio.load(original, sr=SAMPLE_RATE, max_duration=None)
        except Exception as e:  # noqa: BLE001 - an unreadable trial is a failed record in every condition
            msg = f"{getattr(e, 'code', type(e).__name__)}: {e}"
            for c in conditions:
                by_cond[c].append(EvalRecord(file=row.file, label=row.label, system=row.system, score=None,
                                             error=msg))
            continue
        durations[row.file] = clip.duration
        seed = int.from_bytes(hashlib.sha256(row.file.encode()).digest()[:4], "little")
        base = Path(row.file).name
        for c in conditions:
            if c == "none":
                payload, name = original, base
            else:
                try:
                    y = np.asarray(degrade(clip.samples, clip.sr, c, seed=seed), dtype=np.float32)
                except Exception as e:  # noqa: BLE001 - a codec failure is this trial's error, not the run's
                    by_cond[c].append(EvalRecord(file=row.file, label=row.label, system=row.system, score=None,
                                                 error=f"{type(e).__name__}: {e}"))
                    continue
                payload, name = float_wav(y, clip.sr), f"{base}.{c.replace(':', '-')}.wav"
            score, err = send(payload, name, idempotency_key(stats.model_id or "", row.file, c, payload))
            by_cond[c].append(EvalRecord(file=row.file, label=row.label, system=row.system, score=score, error=err))

    if cfg.model is not None:
        m.errors.append(f"detection.model {cfg.model!r} not used: the service scored with its deployed model")
    thresholds = sorted(set(stats.thresholds))
    if thresholds:
        thr, thr_src = thresholds[0], "service"
        if len(thresholds) > 1:
            m.errors.append(f"service answered with {len(thresholds)} thresholds {thresholds}; used {thr}")
    elif cfg.threshold is not None:
        thr, thr_src = cfg.threshold, "config (the service scored nothing)"
    else:
        thr, thr_src = 0.5, "default (the service scored nothing)"
    if cfg.threshold is not None and thresholds and abs(cfg.threshold - thr) > 1e-9:
        m.errors.append(f"detection.threshold {cfg.threshold} in the config differs from the deployed {thr}; "
                        "the report uses the deployed one")
    model_id = sorted(models)[0] if len(models) == 1 else (stats.model_id or "unknown")
    if len(models) > 1:
        m.errors.append(f"service scored with several models {sorted(models)}")
    if stats.errors:
        m.errors.append(f"service {client.base}: {stats.errors} of {stats.uploads} upload(s) failed "
                        f"({', '.join(f'{k}: {v}' for k, v in sorted(stats.error_kinds.items()))})")
    out = summarize_detection(cfg, out_dir, m, by_cond, durations, model_id=model_id, thr=thr,
                              threshold_source=thr_src, via=client.base,
                              scored_by=f"model {model_id} scored by the service at {client.base}")
    out.figures["service"] = stats.to_dict()
    return out



# ------------------------------------------------------------------------------------------ live via service


def _ws_url(base: str, room: str) -> str:
    u = urllib.parse.urlsplit(base)
    scheme = "wss" if u.scheme == "https" else "ws"
    path = u.path.rstrip("/") + f"/v1/rooms/{urllib.parse.quote(room, safe='')}/stream"
    return urllib.parse.urlunsplit((scheme, u.netloc, path, "", ""))


async def _stream_room(svc: ServiceConfig, room: str, frames: list[bytes], start_delay: float, t0: float,
                       max_queue_s: float, acc: dict[str, Any]) -> None:
    """One speaker: hello, PCM16 frames paced in real time (4-byte big-endian seq + payload), events read
    as they come; alert latency = alert received − send time of the frame that completed its window."""
    import asyncio

    from websockets.asyncio.client import connect

    from voxwarden.assess.live_load import FRAME_MS

    sent_at: list[float] = []
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    frame_s = FRAME_MS / 1000.0

    async def reader(ws: Any) -> None:
        async for msg in ws:
            if not isinstance(msg, str):
                continue
            try:
                ev = json.loads(msg)
            except ValueError:
                continue
            now = loop.time()
            kind = ev.get("type")
            if kind == "window":
                acc["windows"] += 1
                if isinstance(ev.get("latency_ms"), int | float):
                    acc["window_latency_ms"].append(float(ev["latency_ms"]))
            elif kind == "alert":
                acc["alerted"][room] = acc["alerted"].get(room, 0) + 1
                if ev.get("rule"):
                    acc["rules"].add(str(ev["rule"]))
                end = float(ev.get("end") or 0.0)
                k = min(len(sent_at) - 1, max(0, int(round(end / frame_s)) - 1))
                if sent_at:
                    acc["alert_latency_s"].append(now - sent_at[k])
                    acc["first_alert_s"].setdefault(room, now - sent_at[0])
            elif kind == "frame_rejected":
                acc["rejected"] += 1
            elif kind == "windows_skipped":
                acc["skipped"] += int(ev.get("count") or 0)
            elif kind in ("session_ended", "bad_hello", "bad_resume", "session_closed", "capacity", "error"):
                if kind != "session_ended":
                    acc["notes"].append(f"{room}: {kind}: {ev.get('message', '')}"[:200])
                done.set()
                return

    headers = {"Authorization": f"Bearer {svc.api_key}"}
    async with connect(_ws_url(svc.url, room), additional_headers=headers, open_timeout=svc.timeout_s,
                       max_size=2**22, compression=None) as ws:
        await ws.send(json.dumps({"room": room, "speaker": "speaker", "codec": "pcm16", "sample_rate": 16000}))
        first = json.loads(await asyncio.wait_for(ws.recv(), svc.timeout_s))
        if first.get("type") != "session_started":
            raise ServiceError(f"room {room}: hello refused: {first}"[:300], kind=str(first.get("type")))
        task = asyncio.create_task(reader(ws))
        for k, payload in enumerate(frames):
            due = t0 + start_delay + k * frame_s
            now = loop.time()
            if due > now:
                await asyncio.sleep(due - now)
            acc["sent"] += 1
            lag = loop.time() - due
            acc["max_lag_s"] = max(acc["max_lag_s"], lag)
            if lag > max_queue_s:
                acc["dropped"] += 1  # the client fell behind real time by more than the buffer holds
                sent_at.append(loop.time())
                continue
            sent_at.append(loop.time())
            await ws.send(k.to_bytes(4, "big") + payload)
        await ws.send(json.dumps({"type": "end"}))
        try:
            await asyncio.wait_for(done.wait(), timeout=max(30.0, svc.timeout_s))
        finally:
            task.cancel()


def run_live_load_service(svc: ServiceConfig, cfg: Any, synthetic: np.ndarray, bonafide: np.ndarray | None,
                          speech_source: str, model_id: str) -> Any:
    """`run_live_load` against the deployed service's WebSocket ``/v1/rooms/{id}/stream`` (same figures;
    the service's own rules file decides the alerts; processing time is not visible: no capacity figure)."""
    import asyncio

    from voxwarden.assess.live_load import FRAME_MS, LiveLoadResult, _frames, plan_rooms

    n_syn, notes = plan_rooms(cfg, bonafide)
    n_frames = int(round(cfg.seconds * 1000 / FRAME_MS))
    run = uuid.uuid4().hex[:8]
    names = [f"assess-{run}-room{r}" for r in range(cfg.rooms)]
    acc: dict[str, Any] = {"windows": 0, "window_latency_ms": [], "alert_latency_s": [], "first_alert_s": {},
                           "alerted": {}, "rules": set(), "rejected": 0, "skipped": 0, "sent": 0, "dropped": 0,
                           "max_lag_s": 0.0, "notes": notes}

    async def main() -> float:
        loop = asyncio.get_running_loop()
        t0 = loop.time() + 0.2
        jobs = []
        for r in range(cfg.rooms):
            src = synthetic if r < n_syn else bonafide
            assert src is not None
            frames = _frames(src, (r * 7919 * 320) % src.size, n_frames)
            jobs.append(_stream_room(svc, names[r], frames, 0.5 * r / max(1, cfg.rooms), t0, cfg.max_queue_s,
                                     acc))
        results = await asyncio.gather(*jobs, return_exceptions=True)
        for name, res in zip(names, results, strict=True):
            if isinstance(res, BaseException):
                notes.append(f"{name}: {type(res).__name__}: {res}"[:300])
        return loop.time() - t0

    wall = asyncio.run(main())
    # the result's room names are room0..roomN (synthetic first), as the in-process run's
    alerted = {f"room{i}": acc["alerted"].get(n, 0) for i, n in enumerate(names)}
    first = {f"room{i}": acc["first_alert_s"][n] for i, n in enumerate(names) if n in acc["first_alert_s"]}
    return LiveLoadResult(
        rooms=cfg.rooms, synthetic_rooms=n_syn, seconds=cfg.seconds, rules=sorted(acc["rules"]),
        rules_source=f"the service's rules ({svc.url})", model_id=model_id, speech_source=speech_source,
        wall_s=wall, busy_s=0.0, frames_sent=acc["sent"], frames_dropped=acc["dropped"],
        frames_rejected=acc["rejected"], frames_rate_limited=0, windows_scored=acc["windows"], windows_silent=0,
        windows_skipped=acc["skipped"], window_latency_ms=acc["window_latency_ms"],
        alert_latency_s=acc["alert_latency_s"], first_alert_s=first, alerted_rooms=alerted,
        max_lag_s=acc["max_lag_s"], notes=notes)
