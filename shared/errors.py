"""One error base for every Veil service.

Raise a subclass of `VeilError` anywhere; `shared.http.errors` renders it as
`{"error": {"code", "message", "request_id"}}` with the class's status.
"""

from __future__ import annotations

from typing import Any, ClassVar


class VeilError(Exception):
    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code  # type: ignore[misc]  # per-instance refinement of the class code
        if status is not None:
            self.status = status  # type: ignore[misc]  # errors relayed from another service
        self.details = details or {}
        self.headers = headers or {}


class BadRequest(VeilError):
    status = 400
    code = "bad_request"


class Unauthorized(VeilError):
    status = 401
    code = "unauthorized"

    def __init__(self, message: str = "Authentication required.", **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"WWW-Authenticate": "Bearer"})
        super().__init__(message, **kwargs)


class Forbidden(VeilError):
    status = 403
    code = "forbidden"


class NotFound(VeilError):
    status = 404
    code = "not_found"


class Conflict(VeilError):
    status = 409
    code = "conflict"


class PayloadTooLarge(VeilError):
    status = 413
    code = "payload_too_large"


class Unprocessable(VeilError):
    status = 422
    code = "unprocessable"


class InvalidUpload(Unprocessable):
    """The uploaded file is not something Veil can build (bad or unsafe archive, no entry point)."""

    code = "invalid_upload"


class TooManyRequests(VeilError):
    status = 429
    code = "rate_limited"


class BadGateway(VeilError):
    status = 502
    code = "bad_gateway"


class ServiceUnavailable(VeilError):
    status = 503
    code = "service_unavailable"


class GatewayTimeout(VeilError):
    status = 504
    code = "gateway_timeout"
