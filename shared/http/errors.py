"""The one error shape: `{"error": {"code", "message", "request_id"}}`, installed on every app."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from shared.db import DatabaseUnavailable, is_unavailable
from shared.errors import VeilError
from shared.http.context import current_request_id

log = logging.getLogger("veil.errors")
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    502: "bad_gateway",
    503: "service_unavailable",
    504: "gateway_timeout",
}


def error_body(
    code: str, message: str, request_id: str | None = None, details: dict[str, Any] | None = None
) -> bytes:
    error: dict[str, Any] = {
        "code": code,
        "message": message,
        "request_id": request_id or current_request_id.get(),
    }
    if details:
        error["details"] = details
    return orjson.dumps({"error": error})


def error_response(
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
    details: dict[str, Any] | None = None,
) -> Response:
    return Response(
        error_body(code, message, details=details),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


async def _veil_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, VeilError)
    return error_response(exc.status, exc.code, exc.message, exc.headers, exc.details or None)


async def _validation_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return error_response(400, "malformed_json", "The request body is not valid JSON.")
    fields = []
    for err in errors:
        location = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        fields.append({"field": location, "problem": str(err.get("msg", "invalid"))})
    first = fields[0] if fields else {"field": "", "problem": "invalid"}
    message = f"Invalid request: {first['field'] or 'body'}: {first['problem']}."
    return error_response(422, "validation_error", message, details={"fields": fields})


async def _http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "error")
    message = exc.detail if isinstance(exc.detail, str) else "Request failed."
    if exc.status_code == 404 and message == "Not Found":
        message = "No such endpoint."
    return error_response(exc.status_code, code, message, dict(exc.headers or {}))


async def _database_error(_request: Request, exc: Exception) -> Response:
    """An unreachable or unanswering database: a quick 503, not a hang or a 500."""
    if not is_unavailable(exc):
        raise exc  # a real bug: the 500 path, logged with its traceback
    log.warning("database unavailable: %s", exc)
    unavailable = DatabaseUnavailable()
    return error_response(
        unavailable.status, unavailable.code, unavailable.message, unavailable.headers
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(VeilError, _veil_error)
    for unavailable in (SQLAlchemyError, TimeoutError, ConnectionError):
        app.add_exception_handler(unavailable, _database_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
