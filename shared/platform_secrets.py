"""Platform secrets for a local install: generated once, kept in data/secrets.env (0600).

The file is a dotenv file, read by pydantic-settings (python-dotenv's parser), so a
hand edit (quotes, comments, `export`) means what it means to every dotenv reader.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict


class PlatformSecrets(BaseSettings):
    """The secrets the file holds; one it lacks is None."""

    model_config = SettingsConfigDict(env_prefix="VEIL_", extra="ignore", hide_input_in_errors=True)

    jwt_secret: str | None = None
    service_token: str | None = None
    secrets_key: str | None = None
    redis_password: str | None = None  # for the Redis `make run` starts (launcher/redis_conf.py)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (dotenv_settings,)  # the file alone: the caller's environment is merged after


_PREFIX = PlatformSecrets.model_config["env_prefix"]
SECRET_NAMES = tuple(_PREFIX + field.upper() for field in PlatformSecrets.model_fields)


def load_or_create_secrets(path: Path, env: dict[str, str]) -> dict[str, str]:
    """Values from the environment win; missing ones come from (or are added to) the file."""
    in_file = PlatformSecrets(_env_file=path).model_dump(exclude_none=True)
    stored = {_PREFIX + field.upper(): value for field, value in in_file.items()}
    changed = False
    for name in SECRET_NAMES:
        if name not in stored:
            stored[name] = secrets.token_urlsafe(48)
            changed = True
    if changed:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.writelines(f"{k}={v}\n" for k, v in stored.items())
    return {name: env.get(name) or stored[name] for name in SECRET_NAMES}
