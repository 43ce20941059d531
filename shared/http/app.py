"""What every Veil FastAPI app has: the error shape, request ids, a health check,
and its state, created by its lifespan and held on `app.state.veil`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Annotated, Protocol, TypeVar, runtime_checkable

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.responses import Response

from shared.db import database_ready, session_scope
from shared.http.errors import install_error_handlers
from shared.http.request_id import RequestIdMiddleware
from shared.invalidation import AsyncPublisher
from shared.settings import CommonSettings


@runtime_checkable
class ServiceState(Protocol):
    """What every service's state provides: its settings (the service token checks
    internal calls: shared/http/service_auth.py), its engine (for /readyz), its
    sessions, and the publisher of what a request's session invalidated (None where
    nobody publishes after the request: see `service_session`)."""

    @property
    def settings(self) -> CommonSettings: ...

    @property
    def engine(self) -> AsyncEngine: ...

    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]: ...

    @property
    def publisher(self) -> AsyncPublisher | None: ...


S = TypeVar("S", bound=ServiceState)


def service_state(app: FastAPI) -> ServiceState:
    """The state the app's lifespan made (create_service_app checked it at startup)."""
    state: ServiceState = app.state.veil
    return state


def state_of(kind: type[S]) -> Callable[[Request], S]:
    """A dependency for the app's state as the service's own type:
    `State = Annotated[ExecutorState, Depends(state_of(ExecutorState))]`."""

    def get_state(request: Request) -> S:
        state = request.app.state.veil
        if not isinstance(state, kind):
            raise TypeError(f"app.state.veil is a {type(state).__name__}, not a {kind.__name__}")
        return state

    return get_state


async def service_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request that commits, or rolls back on an error. What it
    invalidates is published after the commit by the state's publisher (the
    gateway's), from the commit by the sessionmaker (the executor's), or by nobody
    (analytics changes nothing the data plane caches)."""
    state = service_state(request.app)
    async with session_scope(state.sessions, state.publisher) as session:
        yield session


# scope="function": committed before the response goes out, so a client never sees
# success for a write that did not land, and a streaming response does not hold a
# database connection while it streams.
ServiceSession = Annotated[AsyncSession, Depends(service_session, scope="function")]


Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[ServiceState | None]]


def create_service_app(title: str, lifespan: Lifespan, description: str = "") -> FastAPI:
    """`lifespan` yields the service's state, which goes on `app.state.veil` (or sets
    it there itself and yields None); a start-up without one fails."""

    @asynccontextmanager
    async def with_state(app: FastAPI) -> AsyncIterator[None]:
        async with lifespan(app) as state:
            if state is not None:
                app.state.veil = state
            if not isinstance(getattr(app.state, "veil", None), ServiceState):
                raise RuntimeError(f"{title}: its lifespan made no state (settings, engine…)")
            yield

    app = FastAPI(title=title, description=description, lifespan=with_state, version="0.1.0")
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
        ready = await database_ready(service_state(request.app).engine)
        body = {"status": "ok" if ready else "unavailable", "service": title, "database": ready}
        return JSONResponse(body, status_code=200 if ready else 503)

    return app
