"""Long uploads as jobs: spool the bytes, enqueue, score in background threads, store the scan once.

Why: a 20-minute recording takes longer to score than an HTTP client should wait, and a request that dies
half-way must not lose the upload. So ``POST /v1/scans`` writes the bytes to ``<data_dir>/spool``
(temp file, fsync, rename: the file is complete or absent), enqueues a `Job` row and answers 202.

`JobWorkers` runs N threads (``Settings.job_workers``). Each claims the oldest queued job with a lease
(``job_lease_seconds``), heartbeats a third of the way through each lease, scores the spool file with
the app's detector and, in one transaction, stores the scan (its idempotency key is the client's key or
``job:<id>``, so a job that finishes twice still makes one scan), writes the audit entry and marks the
job done; only then is the spool file deleted. A worker killed mid-job (``kill -9``) stops heartbeating;
the next process (or a sibling thread) requeues the job once its lease has run out (`store.jobs.
requeue_expired`) and finishes it. Bad audio fails the job at once (scoring again cannot help);
anything else is retried until ``job_max_attempts`` tries, then the job is ``failed`` with the error.
``POST /v1/verify`` uses the same machinery for long uploads (kind ``verify``): the worker runs the
tenant's verifier on the spool file and keeps the verdict as the job's ``result`` (in its payload, beside
the input; the job table has no result column) in the same transaction as the ``verify`` audit entry.
The ``/v1/mark`` routes do too (``mark_detect``, ``mark_embed``, ``mark_label``, with the tenant's keys);
embed and label write their output as ``spool/<job id>.result.<ext>``, kept ``job_result_hours``.

Limit: the spool lives in ``data_dir``, so processes sharing one database must share that directory.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from voxwarden.api.scan_evidence import attach_scan_evidence, evidence_store_of, scan_evidence
from voxwarden.audio.errors import AudioError
from voxwarden.store import AuditContext, ConflictError, Store, StoreError, audit
from voxwarden.store import jobs as job_repo
from voxwarden.store import scans as scan_repo
from voxwarden.store.models import Job, Scan

log = logging.getLogger("voxwarden.api.jobs")

SCAN_KIND = "scan"
VERIFY_KIND = "verify"  # POST /v1/verify: the verdict is kept as the job's `result`
MARK_DETECT, MARK_EMBED, MARK_LABEL = "mark_detect", "mark_embed", "mark_label"  # POST /v1/mark/...
MARK_KINDS = (MARK_DETECT, MARK_EMBED, MARK_LABEL)
KINDS = (SCAN_KIND, VERIFY_KIND, *MARK_KINDS)
_RESULT_NAME = re.compile(r"^[0-9a-f]{32}\.result\.[a-z0-9]{2,5}$")
SPOOL_SUFFIX = ".upload"
_SPOOL_NAME = re.compile(r"^[0-9a-f]{32}\.upload$")
ORPHAN_AGE_S = 600.0  # a spool file no live job names, older than this, is left over from a crash
SWEEP_EVERY_S = 600.0


# -- helpers used by the routes --------------------------------------------------------------------


def probe_duration(data: bytes) -> float | None:
    """The duration a media file declares in its header (seconds), without decoding it; None if unknown.

    Used only to route an upload (sync or job): a lying header at worst sends a short file to a job.
    """
    import av

    try:
        with av.open(io.BytesIO(data), mode="r", metadata_errors="replace") as c:
            streams = list(c.streams.audio)
            if not streams:
                return None
            s = streams[0]
            if s.duration is not None and s.time_base is not None and s.duration > 0:
                return float(s.duration * s.time_base)
            if c.duration is not None and c.duration > 0:
                return float(c.duration) / 1_000_000.0
    except Exception:  # noqa: BLE001 - not media / damaged: the sync path gives the proper 422
        return None
    return None


def wants_job(data: bytes, max_seconds: float, max_bytes: int) -> tuple[bool, float | None]:
    """(should this upload be a job, its declared duration): longer than `max_seconds` or larger than
    `max_bytes`."""
    if len(data) > max_bytes:
        return True, probe_duration(data)
    d = probe_duration(data)
    return (d is not None and d > max_seconds), d


def write_spool(spool_dir: Path, data: bytes) -> str:
    """Write `data` to a new spool file atomically (temp, fsync, rename); returns its file name."""
    spool_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    name = uuid.uuid4().hex + SPOOL_SUFFIX
    tmp = spool_dir / f".{name}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, spool_dir / name)
        dfd = os.open(spool_dir, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return name


def result_path(spool_dir: Path, payload: dict[str, Any]) -> Path | None:
    """The output file (marked / labelled audio) a finished mark job names, or None."""
    name = payload.get("result_file")
    if not isinstance(name, str) or not _RESULT_NAME.match(name):
        return None
    return spool_dir / name


def spool_path(spool_dir: Path, payload: dict[str, Any]) -> Path | None:
    """The spool file a job's payload names, or None if the name is not one we would have written."""
    name = payload.get("spool")
    if not isinstance(name, str) or not _SPOOL_NAME.match(name):
        return None
    return spool_dir / name


def audit_fields(ctx: AuditContext) -> dict[str, Any]:
    """The request's audit context as JSON (kept in the job so the worker's entries say who and whence)."""
    return {"actor": ctx.actor, "source_ip": ctx.source_ip, "source_port": ctx.source_port,
            "dest_ip": ctx.dest_ip, "dest_port": ctx.dest_port, "user_agent": ctx.user_agent}


def _ctx(tenant_id: str, payload: dict[str, Any]) -> AuditContext:
    a = payload.get("audit") if isinstance(payload.get("audit"), dict) else {}
    return AuditContext(actor=str(a.get("actor") or "system"), tenant_id=tenant_id,
                        source_ip=a.get("source_ip"), source_port=a.get("source_port"),
                        dest_ip=a.get("dest_ip"), dest_port=a.get("dest_port"), user_agent=a.get("user_agent"))


def job_to_dict(job: Job, scan: Scan | None = None) -> dict[str, Any]:
    """The JSON form of a job; `scan` (the stored result, with segments) once it is done."""
    from voxwarden.api.routes_scan import scan_to_dict

    p = job.payload or {}

    def ts(t: Any) -> str | None:
        return t.isoformat().replace("+00:00", "Z") if t is not None else None

    return {
        "id": job.id,
        "kind": job.kind,
        "status": job.status,
        "progress": round(float(job.progress or 0.0), 3),
        "attempts": job.attempts,
        "created_at": ts(job.created_at),
        "started_at": ts(job.started_at),
        "finished_at": ts(job.finished_at),
        "idempotency_key": job.idempotency_key,
        "name": p.get("name"),
        "sha256": p.get("sha256"),
        "size": p.get("size"),
        "declared_duration": p.get("declared_duration"),
        "scan_id": job.scan_id,
        "scan": scan_to_dict(scan) if scan is not None else None,
        "result": job.result if job.result is not None else p.get("result"),  # payload: rows before 0007
        "error": job.error,
    }


def load_job(store: Store, tenant_id: str, job_id: str) -> dict[str, Any]:
    """One job of the tenant as JSON (`NotFoundError` for another tenant's or a missing id)."""
    with store.session() as s:
        job = job_repo.get_job(s, tenant_id, job_id)
        scan = s.get(Scan, job.scan_id) if job.scan_id else None
        return job_to_dict(job, scan if scan is not None and scan.tenant_id == tenant_id else None)


def _check_same(job: Job, sha: str, kind: str) -> None:
    if job.kind != kind:
        raise ConflictError(f"idempotency key already used for a {job.kind} job")
    if (job.payload or {}).get("sha256") != sha:
        raise ConflictError("idempotency key already used for a different upload")


def find_job_by_key(store: Store, ctx: AuditContext, key: str, sha: str, *,
                    kind: str = SCAN_KIND) -> dict[str, Any] | None:
    """The tenant's job for this idempotency key (audited as a replay), None if none; 409 on other bytes
    or another kind of job."""
    with store.session() as s:
        job = s.scalars(select(Job).where(Job.tenant_id == ctx.tenant_id, Job.idempotency_key == key)).first()
        if job is None:
            return None
        _check_same(job, sha, kind)
        audit.record(s, ctx, "job.replay", target_type="job", target_id=job.id,
                     details={"sha256": sha, "idempotency_key": key})
        scan = s.get(Scan, job.scan_id) if job.scan_id else None
        return job_to_dict(job, scan)


def enqueue_upload(store: Store, spool_dir: Path, ctx: AuditContext, data: bytes, *, sha: str,
                   name: str | None, key: str | None, declared_duration: float | None,
                   kind: str = SCAN_KIND, params: dict[str, Any] | None = None) -> tuple[dict[str, Any], bool]:
    """Spool the upload and queue a scan or verify job (same key → the existing job); (job JSON, created)."""
    if kind not in KINDS:
        raise ValueError(f"unknown job kind {kind!r}")
    spool = write_spool(spool_dir, data)
    payload = {"spool": spool, "sha256": sha, "size": len(data), "name": name,
               "declared_duration": declared_duration, "audit": audit_fields(ctx), "params": params or {}}
    try:
        with store.session() as s:
            saved = job_repo.enqueue(s, ctx.tenant_id or "", kind, payload, idempotency_key=key)
            job = saved.row
            if not saved.created:
                _check_same(job, sha, kind)
            audit.record(s, ctx, "job.create" if saved.created else "job.replay", target_type="job",
                         target_id=job.id, details={"sha256": sha, "size": len(data), "kind": kind,
                                                    "idempotency_key": key})
            scan = s.get(Scan, job.scan_id) if job.scan_id else None
            body, created = job_to_dict(job, scan), saved.created
    except BaseException:
        (spool_dir / spool).unlink(missing_ok=True)
        raise
    if not created:
        (spool_dir / spool).unlink(missing_ok=True)  # the first request's spool file serves
    return body, created


# -- the workers -------------------------------------------------------------------------------------


@dataclass
class JobOutcome:
    """What one `run_once` did: the job id and how it ended (done, failed, requeued, skipped)."""

    job_id: str
    outcome: str


class _Heartbeat(threading.Thread):
    """Extends a running job's lease every `interval` seconds until stopped or the lease is lost."""

    def __init__(self, workers: JobWorkers, job_id: str, worker: str) -> None:
        super().__init__(name=f"voxwarden-job-heartbeat-{job_id[:8]}", daemon=True)
        self.workers, self.job_id, self.worker = workers, job_id, worker
        self.halt = threading.Event()
        self.lost = False

    def run(self) -> None:
        w = self.workers
        while not self.halt.wait(w.lease.total_seconds() / 3.0):
            try:
                with w.store.session() as s:
                    job = w._locked(s, self.job_id)  # row lock: never extend a lease the finisher just cleared
                    if job is None or job.status != "running" or job.worker != self.worker:
                        self.lost = True
                        return
                    job_repo.heartbeat(s, job, lease=w.lease)
            except StoreError as e:  # the database blinked: try again next beat (the lease has slack)
                log.warning("job %s: heartbeat failed: %s", self.job_id, e)


class JobWorkers:
    """N background threads that claim, score and finish queued scan jobs (see the module docstring)."""

    def __init__(self, store: Store, detector: Any, spool_dir: Path, *, workers: int = 1,
                 lease_seconds: float = 60.0, max_attempts: int = 3, poll_seconds: float = 1.0,
                 metrics: Any = None, verifier_for: Callable[[str], Any] | None = None,
                 tenant_keys: Any = None, result_hours: float = 24.0) -> None:
        self.store = store
        self.detector = detector
        self.spool_dir = Path(spool_dir)
        self.n_workers = workers
        self.lease = timedelta(seconds=lease_seconds)
        self.max_attempts = max_attempts
        self.poll_seconds = poll_seconds
        self.metrics = metrics
        self.verifier_for = verifier_for  # tenant id -> Verifier (verify jobs); None: this process has none
        self.tenant_keys = tenant_keys  # `TenantKeys` (mark jobs); None: this process runs none
        self.result_ttl = timedelta(hours=result_hours)  # how long a mark job's output file is kept
        self.name = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"[:180]
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- lifecycle --
    def start(self) -> None:
        """Requeue jobs whose worker died, clear leftover spool files, start the threads."""
        if self._threads or self.n_workers <= 0:
            return
        self._stop.clear()
        try:
            self.requeue_expired()
            self.sweep_spool()
        except StoreError as e:
            log.error("jobs: start-up recovery failed (will retry): %s", e)
        for i in range(self.n_workers):
            t = threading.Thread(target=self._loop, args=(i,), name=f"voxwarden-jobs-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the threads to stop and wait; a job still being scored is finished by the next start."""
        self._stop.set()
        self._wake.set()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        self._threads = [t for t in self._threads if t.is_alive()]

    def wake(self) -> None:
        """A job was queued: do not wait for the next poll."""
        self._wake.set()

    def _loop(self, index: int) -> None:
        worker = f"{self.name}:{index}"
        last_requeue = last_sweep = time.monotonic()
        while not self._stop.is_set():
            done = None
            try:
                if index == 0 and time.monotonic() - last_requeue > self.lease.total_seconds() / 3.0:
                    last_requeue = time.monotonic()
                    self.requeue_expired()
                if index == 0 and time.monotonic() - last_sweep > SWEEP_EVERY_S:
                    last_sweep = time.monotonic()
                    self.sweep_spool()
                done = self.run_once(worker)
            except StoreError as e:
                log.warning("jobs: store error in worker %s: %s", worker, e)
            except Exception:  # noqa: BLE001 - a worker thread must outlive any one bug
                log.exception("jobs: unexpected error in worker %s", worker)
            if done is None:
                self._wake.wait(self.poll_seconds)
                self._wake.clear()

    # -- recovery --
    def requeue_expired(self) -> int:
        """Put jobs whose lease ran out back in the queue (failing those out of attempts)."""
        with self.store.session() as s:
            n = job_repo.requeue_expired(s, max_attempts=self.max_attempts)
        if n:
            log.warning("jobs: %d job(s) with an expired lease requeued or failed", n)
            self._count("requeued", n)
        return n

    def sweep_spool(self, min_age_s: float = ORPHAN_AGE_S) -> int:
        """Delete spool files no live job names: uploads left by a crash before enqueue or after commit,
        half-written temp files, and mark jobs' output files older than `result_ttl`."""
        if not self.spool_dir.is_dir():
            return 0
        cutoff = datetime.now(UTC) - self.result_ttl
        with self.store.session() as s:
            live = {(p or {}).get("spool") for p in s.scalars(
                select(Job.payload).where(Job.status.in_(("queued", "running"))))}
            live |= {(p or {}).get("result_file") for p in s.scalars(
                select(Job.payload).where(Job.status == "done", Job.kind.in_(MARK_KINDS),
                                          Job.finished_at >= cutoff))}
        n = 0
        now = time.time()
        for f in self.spool_dir.iterdir():
            ours = (f.name.endswith((SPOOL_SUFFIX, ".tmp", ".label-tmp")) or f.name.startswith(".vwm-")
                    or _RESULT_NAME.match(f.name) is not None)
            if f.name in live or not ours:
                continue
            try:
                if now - f.stat().st_mtime >= min_age_s:
                    f.unlink()
                    n += 1
            except OSError:
                continue
        return n

    # -- one job --
    def run_once(self, worker: str | None = None) -> JobOutcome | None:
        """Claim and process one queued job in this thread; None when the queue is empty."""
        worker = worker or f"{self.name}:x"
        with self.store.session() as s:
            job = job_repo.claim(s, worker, lease=self.lease)
            if job is None:
                return None
            job.progress = 0.05
            job_id, tenant, kind, payload = job.id, job.tenant_id, job.kind, dict(job.payload or {})
        if kind not in KINDS or (kind == VERIFY_KIND and self.verifier_for is None) or (
                kind in MARK_KINDS and self.tenant_keys is None):
            return JobOutcome(job_id, self._fail(job_id, worker, payload, {
                "type": "internal", "message": f"this worker cannot run {kind!r} jobs"}))
        hb = _Heartbeat(self, job_id, worker)
        hb.start()
        try:
            if kind == VERIFY_KIND:
                return JobOutcome(job_id, self._process_verify(job_id, tenant, payload, worker))
            if kind in MARK_KINDS:
                return JobOutcome(job_id, self._process_mark(kind, job_id, tenant, payload, worker))
            return JobOutcome(job_id, self._process(job_id, tenant, payload, worker))
        except Exception as e:  # noqa: BLE001 - store down, out of memory, a decoder bug: retry later
            log.exception("job %s: attempt failed", job_id)
            return JobOutcome(job_id, self._retry_or_fail(job_id, worker, payload, e))
        finally:
            hb.halt.set()
            hb.join(5.0)

    def _process(self, job_id: str, tenant: str, payload: dict[str, Any], worker: str) -> str:
        path = spool_path(self.spool_dir, payload)
        if path is None or not path.is_file():
            return self._fail(job_id, worker, payload, {
                "type": "spool_missing",
                "message": "the upload's spool file is gone (was data_dir shared with this worker?)"})
        shown = payload.get("name") or "upload"
        try:
            clip = self.detector.decode(str(path))
            result = self.detector.score_decoded(clip)
        except AudioError as e:
            err = {"type": e.code, "message": str(e).replace(str(path), shown)}
            return self._fail(job_id, worker, payload, err, rejected=True)
        result.path = None  # the spool path is ours, not the client's
        clips = scan_evidence(result, clip)  # a flagged upload keeps its audio ([] otherwise)
        return self._complete(job_id, tenant, payload, worker, result, clips)

    def _process_verify(self, job_id: str, tenant: str, payload: dict[str, Any], worker: str) -> str:
        from voxwarden.api.routes_scan import rejected_file, verify_path

        path = spool_path(self.spool_dir, payload)
        if path is None or not path.is_file():
            return self._fail(job_id, worker, payload, {
                "type": "spool_missing",
                "message": "the upload's spool file is gone (was data_dir shared with this worker?)"})
        assert self.verifier_for is not None
        verdict = verify_path(self.verifier_for(tenant), path, payload.get("name") or "upload")
        err = rejected_file(verdict)
        if err is not None:
            return self._fail(job_id, worker, payload, err, rejected=True, rejected_action="verify.rejected")
        verdict["sha256"] = payload.get("sha256")
        ctx = _ctx(tenant, payload)
        with self.store.session() as s:
            job = self._locked(s, job_id)
            if job is None or job.status in ("done", "failed"):
                return "skipped"
            job.result = verdict
            audit.record(s, ctx, "verify", target_type="upload", target_id=str(payload.get("sha256")),
                         details={"sha256": payload.get("sha256"), "size": payload.get("size"),
                                  "verdict": verdict["verdict"], "name": payload.get("name"), "job_id": job.id})
            job.status, job.worker, job.error = "running", worker, None
            job_repo.complete(s, job)
        self._drop_spool(payload)
        self._count("done")
        if self.metrics is not None:
            self.metrics.verifications.labels(verdict["verdict"]).inc()
        return "done"

    def _process_mark(self, kind: str, job_id: str, tenant: str, payload: dict[str, Any], worker: str) -> str:
        """Detect, embed or label with the tenant's keys; a file output goes to ``spool/<job id>.result.<ext>``."""
        from voxwarden.api import routes_mark as rm
        from voxwarden.api.errors import ApiError

        path = spool_path(self.spool_dir, payload)
        if path is None or not path.is_file():
            return self._fail(job_id, worker, payload, {
                "type": "spool_missing",
                "message": "the upload's spool file is gone (was data_dir shared with this worker?)"})
        params = payload.get("params") or {}
        shown = payload.get("name") or "upload"
        stem = f"{job_id}.result"
        details: dict[str, Any] = {"sha256": payload.get("sha256"), "size": payload.get("size")}
        out: dict[str, Any] | None = None
        try:
            if kind == MARK_DETECT:
                result = rm.detect_path(self.tenant_keys.marker(tenant), path, shown)
                result["sha256"] = payload.get("sha256")
                details.update(present=result["present"], payload=result["payload"])
            elif kind == MARK_EMBED:
                raw = bytes.fromhex(str(params.get("payload")))
                out = rm.embed_path(self.tenant_keys.marker(tenant), path, self.spool_dir, stem,
                                    params.get("format"), raw, shown)
                result = {"payload": raw.hex(), "confidence": round(out["confidence"], 6)}
                details.update(payload=raw.hex())
            else:
                key = self.tenant_keys.label_key(tenant)
                out = rm.label_path(key, path, self.spool_dir, stem, dict(params.get("fields") or {}),
                                    str(params.get("role") or "producer"), shown)
                result = {"key_id": key.key_id, "role": params.get("role")}
                details.update(key_id=key.key_id, role=params.get("role"))
        except ApiError as e:  # bad audio, or a mark the output cannot carry: trying again cannot help
            return self._fail(job_id, worker, payload, e.to_dict(), rejected=True, rejected_action="mark.rejected")
        extra: dict[str, Any] = {}
        if out is not None:
            f: Path = out["path"]
            digest = hashlib.sha256(f.read_bytes()).hexdigest()
            tag = "marked" if kind == MARK_EMBED else "labelled"
            result["file"] = {"media_type": out["media"], "sha256": digest, "size": f.stat().st_size,
                              "filename": rm._download_name(shown, out["suffix"], tag),
                              "url": f"/v1/jobs/{job_id}/file"}
            details[f"{tag}_sha256"] = digest
            extra["result_file"] = f.name
        with self.store.session() as s:
            job = self._locked(s, job_id)
            if job is None or job.status in ("done", "failed"):
                # the output's name is the job's own: a worker that finished first wrote (and names) the same
                # file, so it stays; for a failed job the spool sweep removes it
                return "skipped"
            job.result = result
            if extra:
                job.payload = {**(job.payload or {}), **extra}  # a new dict: the ORM sees the change
            audit.record(s, _ctx(tenant, payload), kind.replace("_", "."), target_type="upload",
                         target_id=str(payload.get("sha256")), details={**details, "job_id": job.id})
            job.status, job.worker, job.error = "running", worker, None
            job_repo.complete(s, job)
        self._drop_spool(payload)
        self._count("done")
        if self.metrics is not None:
            self.metrics.marks.labels(kind.split("_", 1)[1]).inc()
        return "done"

    def _locked(self, s: Any, job_id: str) -> Job | None:
        q = select(Job).where(Job.id == job_id)
        if s.get_bind().dialect.name == "postgresql":
            q = q.with_for_update()
        return s.scalars(q).first()

    def _complete(self, job_id: str, tenant: str, payload: dict[str, Any], worker: str, result: Any,
                  evidence: list[Any] | None = None) -> str:
        ctx = _ctx(tenant, payload)
        try:
            with self.store.session() as s:
                job = self._locked(s, job_id)
                if job is None or job.status in ("done", "failed"):
                    return "skipped"  # finished by another worker after our lease lapsed (or deleted)
                key = job.idempotency_key or f"job:{job.id}"
                saved = scan_repo.record_scan(s, tenant, result, sha256=str(payload.get("sha256")),
                                              size=payload.get("size"), name=payload.get("name"),
                                              idempotency_key=key, submitted_by=ctx.actor)
                if saved.created and evidence:
                    attach_scan_evidence(s, evidence_store_of(self.store), tenant, saved.row.id, evidence)
                audit.record(s, ctx, "scan.create" if saved.created else "scan.replay", target_type="scan",
                             target_id=saved.row.id,
                             details={"sha256": payload.get("sha256"), "size": payload.get("size"),
                                      "decision": saved.row.decision, "idempotency_key": job.idempotency_key,
                                      "job_id": job.id})
                # we hold a result: finish the job even if our lease lapsed and it was requeued meanwhile
                job.status, job.worker, job.error = "running", worker, None
                job_repo.complete(s, job, scan_id=saved.row.id)
                decision = saved.row.decision
        except ConflictError as e:  # the client's key already names a scan of other bytes
            return self._fail(job_id, worker, payload, e.to_dict())
        self._drop_spool(payload)
        if saved.created:
            self._count("done")
            if self.metrics is not None:
                self.metrics.scans.labels(str(decision)).inc()
        return "done"

    def _fail(self, job_id: str, worker: str, payload: dict[str, Any], err: dict[str, str], *,
              rejected: bool = False, rejected_action: str = "scan.rejected") -> str:
        with self.store.session() as s:
            job = self._locked(s, job_id)
            if job is None or job.status in ("done", "failed"):
                return "skipped"
            job.status, job.worker = "running", worker
            job_repo.fail(s, job, err)
            audit.record(s, _ctx(job.tenant_id, payload), rejected_action if rejected else "job.failed",
                         target_type="job", target_id=job.id,
                         details={"sha256": payload.get("sha256"), "size": payload.get("size"), "error": err})
        self._drop_spool(payload)
        self._count("failed")
        if rejected and rejected_action == "scan.rejected" and self.metrics is not None:
            self.metrics.rejected.labels(err["type"]).inc()
        return "failed"

    def _retry_or_fail(self, job_id: str, worker: str, payload: dict[str, Any], e: BaseException) -> str:
        err = {"type": "internal", "message": f"scoring failed ({type(e).__name__}); see the server log"}
        with self.store.session() as s:
            job = self._locked(s, job_id)
            if job is None or job.status != "running" or job.worker != worker:
                return "skipped"
            if job.attempts < self.max_attempts:
                job.status, job.worker, job.lease_until, job.error = "queued", None, None, err
                self._count("requeued")
                return "requeued"
        return self._fail(job_id, worker, payload, err)

    def _drop_spool(self, payload: dict[str, Any]) -> None:
        p = spool_path(self.spool_dir, payload)
        if p is not None:
            p.unlink(missing_ok=True)

    def _count(self, outcome: str, n: int = 1) -> None:
        c = getattr(self.metrics, "jobs", None)
        if c is not None:
            c.labels(outcome).inc(n)
