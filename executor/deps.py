"""FastAPI dependencies of the executor's API: its state and one session per request
(its sessionmaker publishes the route changes a session commits)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from executor.state import ExecutorState
from shared.http.app import ServiceSession, state_of

State = Annotated[ExecutorState, Depends(state_of(ExecutorState))]
Session = ServiceSession
