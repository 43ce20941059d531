from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, SecretStr


class SecretIn(BaseModel):
    """The value to store. SecretStr keeps it out of reprs, tracebacks and logs."""

    model_config = ConfigDict(extra="forbid")

    value: SecretStr


class SecretOut(BaseModel):
    """What anyone gets to see of a secret: its name and when it changed, never the value."""

    name: str
    created_at: datetime
    updated_at: datetime


class SecretList(BaseModel):
    items: list[SecretOut]
