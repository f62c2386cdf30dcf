"""Every failure leaves the service as JSON ``{"type": ..., "message": ...}`` with a fitting status.

Typed errors from the store and the audio layer are mapped here once, so routes just raise them.
Unexpected exceptions become a 500 with a generic message (details go to the log, not the client).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from voxwarden.audio.errors import AudioError
from voxwarden.store.errors import (
    AuthError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    SchemaError,
    StoreError,
    StoreUnavailableError,
)

log = logging.getLogger("voxwarden.api")


class ApiError(Exception):
    """An error with an HTTP status, a stable machine-readable `type` and a human message."""

    def __init__(self, status: int, type_: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.type = type_
        self.message = message
        self.headers = headers

    def to_dict(self) -> dict[str, str]:
        return {"type": self.type, "message": self.message}


_STORE_STATUS: list[tuple[type[StoreError], int]] = [
    (NotFoundError, 404),
    (ConflictError, 409),
    (InvalidInputError, 422),
    (AuthError, 401),
    (StoreUnavailableError, 503),
    (SchemaError, 503),
]

_HTTP_TYPES = {401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
               413: "too_large", 415: "unsupported_media_type"}


def error_response(status: int, type_: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"type": type_, "message": message}, status_code=status, headers=headers)


def store_status(e: StoreError) -> int:
    for cls, status in _STORE_STATUS:
        if isinstance(e, cls):
            return status
    return 500


def install_handlers(app: FastAPI) -> None:
    """Register the JSON error handlers on the app."""

    @app.exception_handler(ApiError)
    async def _api(_: Request, e: ApiError) -> JSONResponse:
        return error_response(e.status, e.type, e.message, e.headers)

    @app.exception_handler(AudioError)
    async def _audio(_: Request, e: AudioError) -> JSONResponse:
        return error_response(422, e.code, str(e))

    @app.exception_handler(StoreError)
    async def _store(_: Request, e: StoreError) -> JSONResponse:
        status = store_status(e)
        if status >= 500:
            log.error("store error: %s", e)
        return error_response(status, e.code, str(e))

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, e: RequestValidationError) -> JSONResponse:
        parts = []
        for err in e.errors()[:5]:
            loc = ".".join(str(x) for x in err.get("loc", ()) if x != "body")
            parts.append(f"{loc}: {err.get('msg', 'invalid')}")
        return error_response(422, "invalid_request", "; ".join(parts) or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, e: StarletteHTTPException) -> JSONResponse:
        msg = e.detail if isinstance(e.detail, str) else "request failed"
        return error_response(e.status_code, _HTTP_TYPES.get(e.status_code, "http_error"), msg,
                              getattr(e, "headers", None))

    @app.exception_handler(Exception)
    async def _internal(_: Request, e: Exception) -> JSONResponse:
        log.exception("unhandled error: %s", type(e).__name__)
        return error_response(500, "internal", "internal server error")
