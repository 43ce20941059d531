"""What every Veil FastAPI app has: the error shape, request ids, a health check."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.responses import Response

from shared.db import database_ready
from shared.http.errors import install_error_handlers
from shared.http.request_id import RequestIdMiddleware


def create_service_app(
    title: str,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]],
    description: str = "",
) -> FastAPI:
    app = FastAPI(title=title, description=description, lifespan=lifespan, version="0.1.0")
    install_error_handlers(app)
    app.add_middleware(RequestIdMiddleware)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """Alive: the process answers (for a supervisor's liveness check)."""
        return {"status": "ok", "service": title}

    @app.get("/readyz", tags=["health"])
    async def readyz(request: Request) -> Response:
        """Ready to serve: the database answers within 2 s (503 when it does not),
        for a load balancer's readiness check."""
        engine = getattr(request.app.state, "database_engine", None)
        ready = engine is None or await database_ready(engine)
        body = {"status": "ok" if ready else "unavailable", "service": title, "database": ready}
        return JSONResponse(body, status_code=200 if ready else 503)

    return app
