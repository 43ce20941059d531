"""What the executor's internal endpoints answer (the gateway documents and checks the same
shapes)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class LogsOut(BaseModel):
    api_id: str
    deployment_id: str
    logs: str


class ContainerOut(BaseModel):
    container_id: str
    name: str
    api_id: str | None
    deployment_id: str | None
    state: str
    running: bool
    exit_code: int
    oom_killed: bool
    cpu_percent: float | None = None
    memory_bytes: int | None = None
    memory_limit_bytes: int | None = None
    pids: int | None = None


class ContainerList(BaseModel):
    items: list[ContainerOut]
    sampled_at: datetime


class RestartOut(BaseModel):
    api_id: str
    deployment_id: str
    status: str
