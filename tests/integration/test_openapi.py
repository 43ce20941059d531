"""The gateway's OpenAPI document says what every endpoint answers, and the endpoints that
relay another service hold to it: an internal answer of the wrong shape is a 502."""

from __future__ import annotations

from typing import Any

import httpx

from tests.integration.conftest import assert_error, signup

# shared/http/app.py answers /readyz with a JSONResponse of its own (200 or 503), no model.
UNDOCUMENTED = {("get", "/readyz")}


def _typed(schema: dict[str, Any]) -> bool:
    if "$ref" in schema or "type" in schema:
        return True
    alternatives = [schema[k] for k in ("anyOf", "oneOf", "allOf") if k in schema]
    return bool(alternatives) and all(_typed(s) for group in alternatives for s in group)


async def test_every_answer_has_a_documented_shape(gateway: httpx.AsyncClient) -> None:
    spec = (await gateway.get("/openapi.json")).json()
    untyped = []
    checked = 0
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if (method, path) in UNDOCUMENTED:
                continue
            for status, response in operation["responses"].items():
                if not status.startswith("2") or status == "204":
                    continue
                content = response.get("content", {})
                if set(content) == {"text/event-stream"}:
                    continue  # a stream of events, not one JSON document
                schema = content.get("application/json", {}).get("schema", {})
                checked += 1
                if not _typed(schema):
                    untyped.append(f"{method.upper()} {path} {status}")
    assert checked > 50  # the whole control plane was read
    assert untyped == []


async def _internal_services_answer(gateway: httpx.AsyncClient, body: Any) -> None:
    """Every internal call of the gateway answers 200 with `body` from now on."""
    transport = gateway._transport
    assert isinstance(transport, httpx.ASGITransport)
    state = transport.app.state.veil  # type: ignore[attr-defined]
    await state.services.aclose()
    state.services = httpx.AsyncClient(
        transport=httpx.MockTransport(lambda _: httpx.Response(200, json=body))
    )


async def test_a_wrong_internal_answer_is_a_502(gateway: httpx.AsyncClient) -> None:
    """Analytics answering something that is not an invoice list: the caller gets the
    one error shape, not a 500 or a body the document does not describe."""
    user = await signup(gateway, role="consumer")
    await _internal_services_answer(gateway, {"items": [{"id": 7}]})
    assert_error(await gateway.get("/api/v1/invoices", headers=user), 502, "bad_internal_answer")
    await _internal_services_answer(gateway, {"items": []})
    answer = await gateway.get("/api/v1/invoices", headers=user)
    assert answer.status_code == 200
    assert answer.json() == {"items": []}
