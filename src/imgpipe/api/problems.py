"""RFC 9457 problem details: every error leaves the API as ``application/problem+json`` with a stable code."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from imgpipe.api.upload import BadUpload, UploadTimeout
from imgpipe.domain import errors

__all__ = ["PROBLEM_RESPONSES", "for_domain_error", "install", "problem"]

log = logging.getLogger(__name__)

MEDIA_TYPE = "application/problem+json"

_STATUS: list[tuple[type[errors.ImgpipeError], int]] = [
    (errors.EmptyUpload, 400),
    (BadUpload, 400),
    (UploadTimeout, 408),
    (errors.UploadTooLarge, 413),
    (errors.UnsupportedImage, 415),
    (errors.ImageTooLarge, 422),
    (errors.CorruptImage, 422),
    (errors.JobNotFound, 404),
    (errors.ObjectNotFound, 404),
    (errors.RetryableError, 503),
]


def status_of(exc: errors.ImgpipeError) -> int:
    return next((status for cls, status in _STATUS if isinstance(exc, cls)), 500)


def problem(status: int, code: str, detail: str, instance: str | None = None, **extra: Any) -> JSONResponse:
    body = {
        "type": f"urn:imgpipe:problem:{code}",
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "code": code,
        **({"instance": instance} if instance else {}),
        **extra,
    }
    headers = {"Retry-After": "5"} if status == 503 else None
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


_TITLES = {
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    500: "Internal Server Error",
    503: "Service Unavailable",
}

_PROBLEM_SCHEMA = {
    "type": "object",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string"},
        "instance": {"type": "string"},
    },
    "required": ["type", "title", "status", "detail", "code"],
}

PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"description": _TITLES[status], "content": {MEDIA_TYPE: {"schema": _PROBLEM_SCHEMA}}}
    for status in (400, 404, 408, 413, 415, 422, 503)
}


def for_domain_error(request: Request, exc: errors.ImgpipeError) -> JSONResponse:
    """The problem response for an ImgpipeError, with the status its kind maps to."""
    status = status_of(exc)
    if status >= 500:
        log.warning("request failed", extra={"path": request.url.path, "code": exc.code, "error": exc.message})
    response = problem(status, exc.code, exc.message, request.url.path)
    if status in (400, 408, 413, 415, 503) and request.method == "POST":
        # The rest of the body may not have been read: do not reuse the connection.
        response.headers["Connection"] = "close"
    return response


def install(app: FastAPI) -> None:
    @app.exception_handler(errors.ImgpipeError)
    async def _domain(request: Request, exc: errors.ImgpipeError) -> JSONResponse:
        return for_domain_error(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        issues = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in exc.errors()]
        return problem(422, "invalid_request", "The request is invalid.", request.url.path, errors=issues)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        response = problem(exc.status_code, code, str(exc.detail), request.url.path)
        response.headers.update(exc.headers or {})  # e.g. Allow on a 405
        return response

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error", extra={"path": request.url.path})
        return problem(500, "internal_error", "Something went wrong inside imgpipe.", request.url.path)
