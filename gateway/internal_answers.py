"""What an internal service answered, checked against the model the endpoint documents.

An answer that does not fit is that service's fault, never the caller's: a 502 in
the one error shape (and a log line saying what did not fit), not a 500 from the
response model or a body that contradicts the OpenAPI document.
"""

from __future__ import annotations

import logging
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from shared.errors import BadGateway

log = logging.getLogger("veil.gateway.internal")

M = TypeVar("M", bound=BaseModel)


def answer_as(model: type[M], body: Any) -> M:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        log.warning(
            "internal answer is not a %s: %s",
            model.__name__,
            exc.errors(include_url=False, include_input=False),
        )
        raise BadGateway(
            "An internal service gave an answer of the wrong shape.", code="bad_internal_answer"
        ) from exc
