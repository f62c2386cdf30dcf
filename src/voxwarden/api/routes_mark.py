"""``/v1/mark``: embed and detect the keyed watermark, write signed GB 45438-2025 metadata labels.

All three take a multipart upload and use the caller tenant's own keys (`TenantKeys`: a watermark key
and an Ed25519 label key per tenant, made on first use, never returned). They reuse `voxwarden.mark`:
`Marker.embed_file` / `detect_file` and `metadata.write_label`; nothing here re-implements marking.

- ``POST /v1/mark/embed`` (file + ``payload`` hex, or ``provider`` + ``content_id``) → the marked file,
  same format family (WAV → WAV, MP3 → MP3, M4A/MP4 → M4A, FLAC, Ogg Vorbis, Opus; anything else → WAV),
  after a self-check that the mark is detectable in the written file (422 ``mark_not_detectable`` if not:
  too short, silent, or destroyed by the output codec).
- ``POST /v1/mark/detect`` (file) → ``{present, payload, confidence, spans, sha256}``.
- ``POST /v1/mark/label`` (file + label fields) → the same file with an ``AIGC`` label signed by the
  tenant's key (audio untouched); ``GET /v1/mark/label-key`` gives the public half so others can verify.

Uploads are written under their sha256 in a fresh temp directory; the client's file name is never a path,
and temp paths are scrubbed from every message. Every call is audit-logged. Long uploads become jobs like
scans (``?mode=``, `Settings.sync_max_seconds`): the job workers run the same `embed_path` / `detect_path`
/ `label_path` on the spool file, and the output file is fetched from ``GET /v1/jobs/{id}/file``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, Header, Query, Request, UploadFile
from fastapi.responses import JSONResponse, Response

from voxwarden.api.auth import Principal, audit_context, require
from voxwarden.api.errors import ApiError
from voxwarden.api.jobs_worker import MARK_DETECT, MARK_EMBED, MARK_LABEL
from voxwarden.api.responses import JobBody
from voxwarden.api.routes_scan import display_name, maybe_job, read_upload
from voxwarden.audio.errors import AudioError, NotMediaError
from voxwarden.store import AuditContext, Store, audit

router = APIRouter(prefix="/v1/mark", tags=["mark"])
ModeQuery = Annotated[Literal["auto", "sync", "async"], Query(
    description="auto: a job (202, result file at /v1/jobs/{id}/file) for long or large uploads; sync / "
                "async: always one way")]
KeyHeader = Annotated[str | None, Header(alias="Idempotency-Key",
                                         description="For jobs: the same key again returns the same job")]
log = logging.getLogger("voxwarden.api")

#: output suffix and media type per input container (`metadata.sniff_container`'s names)
_OUT = {"wav": (".wav", "audio/wav"), "flac": (".flac", "audio/flac"), "ogg": (".ogg", "audio/ogg"),
        "opus": (".opus", "audio/ogg"), "mp3": (".mp3", "audio/mpeg"), "mp4": (".m4a", "audio/mp4")}
_FORMATS = {"wav": "wav", "flac": "flac", "ogg": "ogg", "opus": "opus", "mp3": "mp3", "m4a": "mp4"}
MEDIA_TYPES = sorted({m for _, m in _OUT.values()})
_AUDIO_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"description": "The file, marked or labelled", "content": {
        m: {"schema": {"type": "string", "format": "binary"}} for m in MEDIA_TYPES}},
    202: {"description": "A long upload became a job: poll its Location; the file is at /v1/jobs/{id}/file",
          "model": JobBody}}
_HEX8 = re.compile(r"^(0x)?[0-9a-fA-F]{8}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
CHECK_ERRORS = (AudioError, ValueError)  # WatermarkError, LabelKeyError and codec failures are ValueErrors


def _scrub(x: Any, text: str, shown: str) -> Any:
    if isinstance(x, str):
        return x.replace(text, shown)
    if isinstance(x, dict):
        return {k: _scrub(v, text, shown) for k, v in x.items()}
    if isinstance(x, list):
        return [_scrub(v, text, shown) for v in x]
    return x


def _fail(e: Exception, tmp: str, shown: str) -> ApiError:
    """A 422 for bad input, its message free of our temp paths."""
    code = e.code if isinstance(e, AudioError) else "invalid_audio"
    return ApiError(422, code, _scrub(str(e), tmp, shown))


def _field(value: str | None, what: str, *, required: bool = False, max_len: int = 200) -> str:
    v = (value or "").strip()
    if required and not v:
        raise ApiError(422, "invalid_request", f"{what} is required")
    if len(v) > max_len or _CONTROL.search(v):
        raise ApiError(422, "invalid_request", f"{what} must be at most {max_len} printable characters")
    return v


def parse_payload(payload: str | None, provider: str | None, content_id: str | None) -> bytes:
    """``payload`` (8 hex digits) or ``provider`` + ``content_id`` (→ `payload_from_ids`) as 4 bytes."""
    from voxwarden.mark.keys import payload_from_ids

    p = (payload or "").strip()
    ids = _field(provider, "provider"), _field(content_id, "content_id")
    if p and any(ids):
        raise ApiError(422, "invalid_request", "give either payload or provider + content_id, not both")
    if p:
        if not _HEX8.match(p):
            raise ApiError(422, "invalid_request", "payload must be 8 hex digits (32 bits)")
        return bytes.fromhex(p[-8:])
    if not all(ids):
        raise ApiError(422, "invalid_request", "give payload (8 hex digits), or both provider and content_id")
    return payload_from_ids(*ids)


def _download_name(shown: str, suffix: str, tag: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", shown.rsplit(".", 1)[0])[:100].strip("._") or "audio"
    return f"{stem}.{tag}{suffix}"


def _record(store: Store, ctx: AuditContext, action: str, sha: str, details: dict[str, Any]) -> None:
    with store.session() as s:
        audit.record(s, ctx, action, target_type="upload", target_id=sha, details={"sha256": sha, **details})


async def _tenant_key(request: Request, kind: str, tenant_id: str) -> Any:
    """The tenant's marker or label key (made on first use); 503 if the key directory is unusable."""
    keys = request.app.state.tenant_keys
    try:
        return await asyncio.to_thread(keys.marker if kind == "watermark" else keys.label_key, tenant_id)
    except (OSError, ValueError) as e:  # unwritable directory, or a damaged key file (KeyFileError...)
        log.error("tenant %s: cannot read or create the %s key: %s", tenant_id, kind, e)
        raise ApiError(503, "key_store_unavailable", f"the {kind} key cannot be read right now") from e


async def _upload(request: Request, file: UploadFile) -> tuple[bytes, str, str]:
    data = await read_upload(file, request.app.state.settings.max_upload_bytes)
    return data, hashlib.sha256(data).hexdigest(), display_name(file.filename) or "upload"


# -- work (sync; in threads; shared with the job workers) ------------------------------------------------


def embed_path(marker: Any, src: Path, out_dir: Path, out_stem: str, fmt: str | None, payload: bytes,
               shown: str) -> dict[str, Any]:
    """Mark `src` into ``out_dir/<out_stem><suffix>`` and check the mark is found there (422 if not)."""
    from voxwarden.mark.metadata import UnsupportedContainerError, sniff_container

    try:
        if fmt is None:
            try:
                fmt = sniff_container(src)
            except (UnsupportedContainerError, NotMediaError):
                fmt = "wav"  # a format we cannot write back (AMR, WebM, ADTS...): marked audio as WAV
        suffix, media = _OUT[fmt]
        out = out_dir / f"{out_stem}{suffix}"
        check = marker.embed_file(src, out, payload, publish_only_if_found=True)
    except CHECK_ERRORS as e:
        raise _fail(e, str(src), shown) from None
    if not check.present or check.payload != payload:
        lossy = suffix not in (".wav", ".flac")
        raise ApiError(422, "mark_not_detectable",
                       "the mark could not be verified in the written file: the audio is too short or "
                       "silent to carry it" + (f", or the {suffix[1:]} encoding destroyed it (try format=wav)"
                                               if lossy else ""))
    return {"path": out, "media": media, "suffix": suffix, "confidence": float(check.confidence)}


def detect_path(marker: Any, src: Path, shown: str) -> dict[str, Any]:
    """The tenant's mark in `src`: ``{present, payload, confidence, spans}``."""
    try:
        return marker.detect_file(src).to_dict()
    except CHECK_ERRORS as e:
        raise _fail(e, str(src), shown) from None


def label_path(key: Any, src: Path, out_dir: Path, out_stem: str, fields: dict[str, str], role: str,
               shown: str) -> dict[str, Any]:
    """Copy `src` to ``out_dir/<out_stem><suffix>`` and write the signed AIGC label into the copy (audio
    untouched)."""
    from voxwarden.mark.metadata import AigcLabel, sniff_container, write_label

    out: Path | None = None
    try:
        fmt = sniff_container(src)
        suffix, media = _OUT[fmt]
        out = out_dir / f"{out_stem}{suffix}"
        shutil.copyfile(src, out)
        write_label(out, AigcLabel(**fields), key=key, role=role)  # type: ignore[arg-type]
    except CHECK_ERRORS as e:
        if out is not None:
            out.unlink(missing_ok=True)
        raise _fail(e, str(src), shown) from None
    return {"path": out, "media": media, "suffix": suffix}


def _in_temp(data: bytes, sha: str, work: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
    """Run `work` on the upload written under its hash in a fresh temp dir; the output's bytes come back."""
    with tempfile.TemporaryDirectory(prefix="voxwarden-mark-") as tmp:
        src = Path(tmp) / f"{sha}.upload"
        src.write_bytes(data)
        out = work(src)
        if isinstance(out.get("path"), Path):
            out["body"] = out.pop("path").read_bytes()
        return out


def _embed(marker: Any, data: bytes, sha: str, shown: str, fmt: str | None, payload: bytes) -> dict[str, Any]:
    return _in_temp(data, sha, lambda src: embed_path(marker, src, src.parent, "marked", fmt, payload, shown))


def _detect(marker: Any, data: bytes, sha: str, shown: str) -> dict[str, Any]:
    return _in_temp(data, sha, lambda src: detect_path(marker, src, shown))


def _label(key: Any, data: bytes, sha: str, shown: str, fields: dict[str, str], role: str) -> dict[str, Any]:
    return _in_temp(data, sha, lambda src: label_path(key, src, src.parent, "labelled", fields, role, shown))


# -- routes --------------------------------------------------------------------------------------------


@router.post("/embed", summary="Embed the tenant's watermark with a 32-bit payload; returns the marked file",
             response_class=Response, responses=_AUDIO_RESPONSE)
async def mark_embed(
    request: Request,
    file: Annotated[UploadFile, File(description="Audio file to mark")],
    principal: Annotated[Principal, Depends(require("mark"))],
    payload: Annotated[str | None, Form(description="32-bit payload as 8 hex digits")] = None,
    provider: Annotated[str | None, Form(description="Provider id (with content_id, instead of payload)")] = None,
    content_id: Annotated[str | None, Form(description="Content id (with provider)")] = None,
    format: Annotated[str | None, Form(description="Output: wav, flac, ogg, opus, mp3 or m4a "
                                                   "(default: the input's own format family)")] = None,
    mode: ModeQuery = "auto",
    idempotency_key: KeyHeader = None,
) -> Response:
    state = request.app.state
    raw = parse_payload(payload, provider, content_id)
    fmt = None
    if format is not None and format.strip():
        fmt = _FORMATS.get(format.strip().lower())
        if fmt is None:
            raise ApiError(422, "invalid_request", f"format must be one of {', '.join(_FORMATS)}")
    data, sha, shown = await _upload(request, file)
    ctx = audit_context(request, principal)
    job = await maybe_job(request, ctx, data, sha=sha, name=shown, key=idempotency_key, mode=mode,
                          kind=MARK_EMBED, params={"payload": raw.hex(), "format": fmt})
    if job is not None:
        return job
    marker = await _tenant_key(request, "watermark", principal.tenant_id)
    try:
        async with state.scan_slots:
            out = await asyncio.to_thread(_embed, marker, data, sha, shown, fmt, raw)
    except ApiError as e:
        await asyncio.to_thread(_record, state.store, ctx, "mark.rejected", sha,
                                {"size": len(data), "op": "embed", "error": e.to_dict()})
        raise
    out_sha = hashlib.sha256(out["body"]).hexdigest()
    await asyncio.to_thread(_record, state.store, ctx, "mark.embed", sha,
                            {"size": len(data), "payload": raw.hex(), "marked_sha256": out_sha,
                             "format": out["suffix"][1:]})
    state.metrics.marks.labels("embed").inc()
    name = _download_name(shown, out["suffix"], "marked")
    return Response(out["body"], media_type=out["media"], headers={
        "Content-Disposition": f'attachment; filename="{name}"', "X-Voxwarden-Payload": raw.hex(),
        "X-Voxwarden-Mark-Confidence": f"{out['confidence']:.6f}", "X-Voxwarden-Sha256": out_sha})


@router.post("/detect", summary="Look for the tenant's watermark: present, payload, confidence, spans",
             responses={202: {"description": "A long upload became a job: its result is the answer",
                              "model": JobBody}})
async def mark_detect(
    request: Request,
    file: Annotated[UploadFile, File(description="Audio file to check")],
    principal: Annotated[Principal, Depends(require("mark"))],
    mode: ModeQuery = "auto",
    idempotency_key: KeyHeader = None,
) -> JSONResponse:
    state = request.app.state
    data, sha, shown = await _upload(request, file)
    ctx = audit_context(request, principal)
    job = await maybe_job(request, ctx, data, sha=sha, name=shown, key=idempotency_key, mode=mode,
                          kind=MARK_DETECT, params={})
    if job is not None:
        return job
    marker = await _tenant_key(request, "watermark", principal.tenant_id)
    try:
        async with state.scan_slots:
            result = await asyncio.to_thread(_detect, marker, data, sha, shown)
    except ApiError as e:
        await asyncio.to_thread(_record, state.store, ctx, "mark.rejected", sha,
                                {"size": len(data), "op": "detect", "error": e.to_dict()})
        raise
    await asyncio.to_thread(_record, state.store, ctx, "mark.detect", sha,
                            {"size": len(data), "present": result["present"], "payload": result["payload"]})
    state.metrics.marks.labels("detect").inc()
    return JSONResponse({**result, "sha256": sha})


@router.post("/label", summary="Write a GB 45438-2025 AIGC metadata label signed with the tenant's key",
             response_class=Response, responses=_AUDIO_RESPONSE)
async def mark_label(
    request: Request,
    file: Annotated[UploadFile, File(description="WAV, MP3, FLAC, Ogg Vorbis/Opus or MP4/M4A file")],
    principal: Annotated[Principal, Depends(require("mark"))],
    producer: Annotated[str, Form(description="ContentProducer (who generated the content)")],
    produce_id: Annotated[str, Form(description="ProduceID (the producer's id for this content)")],
    label: Annotated[str, Form(description="Label: 1 AI-generated, 2 possibly, 3 suspected")] = "1",
    propagator: Annotated[str | None, Form(description="ContentPropagator (platform), optional")] = None,
    propagate_id: Annotated[str | None, Form(description="PropagateID, optional")] = None,
    role: Annotated[str, Form(description="Sign as 'producer' (ReservedCode1) or 'propagator' "
                                          "(ReservedCode2)")] = "producer",
    mode: ModeQuery = "auto",
    idempotency_key: KeyHeader = None,
) -> Response:
    state = request.app.state
    if label.strip() not in ("1", "2", "3"):
        raise ApiError(422, "invalid_request", "label must be 1 (AI-generated), 2 (possibly) or 3 (suspected)")
    if role not in ("producer", "propagator"):
        raise ApiError(422, "invalid_request", "role must be 'producer' or 'propagator'")
    fields = {"label": label.strip(), "content_producer": _field(producer, "producer", required=True),
              "produce_id": _field(produce_id, "produce_id", required=True),
              "content_propagator": _field(propagator, "propagator"),
              "propagate_id": _field(propagate_id, "propagate_id")}
    if role == "propagator" and not (fields["content_propagator"] and fields["propagate_id"]):
        raise ApiError(422, "invalid_request", "role 'propagator' needs propagator and propagate_id")
    data, sha, shown = await _upload(request, file)
    ctx = audit_context(request, principal)
    job = await maybe_job(request, ctx, data, sha=sha, name=shown, key=idempotency_key, mode=mode,
                          kind=MARK_LABEL, params={"fields": fields, "role": role})
    if job is not None:
        return job
    key = await _tenant_key(request, "label", principal.tenant_id)
    try:
        async with state.scan_slots:  # hashing the decoded audio for the signature is CPU work too
            out = await asyncio.to_thread(_label, key, data, sha, shown, fields, role)
    except ApiError as e:
        await asyncio.to_thread(_record, state.store, ctx, "mark.rejected", sha,
                                {"size": len(data), "op": "label", "error": e.to_dict()})
        raise
    out_sha = hashlib.sha256(out["body"]).hexdigest()
    await asyncio.to_thread(_record, state.store, ctx, "mark.label", sha,
                            {"size": len(data), "labelled_sha256": out_sha, "key_id": key.key_id, "role": role,
                             "label": fields["label"], "producer": fields["content_producer"],
                             "produce_id": fields["produce_id"]})
    state.metrics.marks.labels("label").inc()
    name = _download_name(shown, out["suffix"], "labelled")
    return Response(out["body"], media_type=out["media"], headers={
        "Content-Disposition": f'attachment; filename="{name}"', "X-Voxwarden-Label-Key-Id": key.key_id,
        "X-Voxwarden-Sha256": out_sha})


@router.get("/label-key", summary="The public half of the tenant's label-signing key (PEM)")
async def label_public_key(
    request: Request, principal: Annotated[Principal, Depends(require("mark"))]
) -> dict[str, str]:
    key = await _tenant_key(request, "label", principal.tenant_id)
    return {"alg": key.alg, "key_id": key.key_id, "public_key_pem": key.to_pem(private=False).decode("ascii")}
