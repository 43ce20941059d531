"""FastAPI dependencies of the analytics service: its state and one session per request."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from analytics.state import AnalyticsState
from shared.http.app import ServiceSession, state_of

State = Annotated[AnalyticsState, Depends(state_of(AnalyticsState))]
Session = ServiceSession
