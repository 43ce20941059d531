"""Rules for per-API secrets: write-only named values, encrypted at rest.

An owner sets, replaces and deletes them; nobody reads them back through the
API. The executor decrypts them when it starts a container and puts them into
its environment, from the next deploy or start on. A secret and a plain env
variable (`PUT /settings`) with the same name: the secret wins.

Names follow the env rules of `gateway.apis.service`. No value ever appears
in a response, an error message or a log line.
"""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.apis.service import ENV_NAME, MAX_ENV_VALUE_BYTES, RESERVED_ENV
from gateway.secrets import repository
from gateway.secrets.schemas import SecretList, SecretOut
from shared.crypto import SecretBox
from shared.errors import Conflict, NotFound, Unprocessable
from shared.models import Api, ApiSecret
from shared.settings import CommonSettings

MAX_SECRETS_PER_API = 64


class InvalidSecret(Unprocessable):
    code = "invalid_secret"


def check_name(name: str) -> None:
    if not ENV_NAME.match(name) or name.upper().startswith("VEIL_"):
        raise InvalidSecret(
            "A secret name is 1-64 letters, digits or '_', not starting with a digit or VEIL_."
        )
    if name.upper() in RESERVED_ENV:
        raise InvalidSecret(f"'{name}' is set by the platform.")


def check_value(value: str) -> None:
    # The message states the rule only: it must not echo any part of the value.
    if len(value.encode()) > MAX_ENV_VALUE_BYTES or "\0" in value:
        raise InvalidSecret(
            f"A secret value is at most {MAX_ENV_VALUE_BYTES} bytes of UTF-8, with no NUL byte."
        )


def to_out(secret: ApiSecret) -> SecretOut:
    return SecretOut(name=secret.name, created_at=secret.created_at, updated_at=secret.updated_at)


async def list_secrets(session: AsyncSession, api: Api) -> SecretList:
    return SecretList(items=[to_out(s) for s in await repository.list_for_api(session, api.id)])


async def put_secret(
    session: AsyncSession, api: Api, name: str, value: str, settings: CommonSettings
) -> ApiSecret:
    """Create the secret or replace its value."""
    check_name(name)
    check_value(value)
    ciphertext = SecretBox(settings.secrets_key.get_secret_value()).encrypt(api.id, name, value)
    secret = await repository.get(session, api.id, name)
    if secret is not None:
        secret.ciphertext = ciphertext
    else:
        if await repository.count_for_api(session, api.id) >= MAX_SECRETS_PER_API:
            raise InvalidSecret(
                f"An API has at most {MAX_SECRETS_PER_API} secrets; delete one first.",
                details={"maximum": MAX_SECRETS_PER_API},
            )
        secret = ApiSecret(api_id=api.id, name=name, ciphertext=ciphertext)
        session.add(secret)
    try:
        await session.flush()
    except IntegrityError:  # a concurrent request created the same name first
        raise Conflict(
            f"The secret '{name}' changed concurrently; try again.", code="secret_conflict"
        ) from None
    return secret


async def delete_secret(session: AsyncSession, api: Api, name: str) -> None:
    secret = await repository.get(session, api.id, name)
    if secret is None:
        raise NotFound(f"This API has no secret '{name}'.", code="secret_not_found")
    await session.delete(secret)
