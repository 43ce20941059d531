"""Rules for APIs: ownership, slugs, updates, deletion."""

from __future__ import annotations

import re

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.apis import repository, slugs
from gateway.apis.schemas import (
    ApiCreate,
    ApiOut,
    ApiUpdate,
    RuntimeSettings,
    RuntimeSettingsOut,
)
from shared.crypto import gateway_secret
from shared.errors import Conflict, NotFound, Unprocessable
from shared.invalidation import invalidate, route
from shared.models import Api, User
from shared.settings import GatewaySettings


def public_url(api: Api, public_api_url: str) -> str:
    """Where callers reach the API on the data plane (GatewaySettings.public_api_url)."""
    return public_api_url.replace("{slug}", api.slug)


def to_out(api: Api, public_api_url: str) -> ApiOut:
    url = public_url(api, public_api_url)
    return ApiOut(
        id=api.id,
        slug=api.slug,
        name=api.name,
        description=api.description,
        visibility=api.visibility,
        owner_id=api.owner_id,
        active_deployment_id=api.active_deployment_id,
        url=url,
        created_at=api.created_at,
        updated_at=api.updated_at,
        suspended=api.is_suspended,
        suspended_at=api.suspended_at,
        suspension_reason=api.suspension_reason,
    )


def ensure_not_suspended(api: Api) -> None:
    """Deploy, rollback, start and restart are refused while an admin's suspension holds."""
    if api.is_suspended:
        because = f" ({api.suspension_reason})" if api.suspension_reason else ""
        raise Conflict(
            f"This API is suspended by the platform's admins{because}: it cannot be deployed,"
            " started or restarted until they lift the suspension.",
            code="api_suspended",
        )


async def get_owned_or_404(session: AsyncSession, api_id: str, user: User) -> Api:
    """Another user's API answers exactly like a missing one: ids must not leak."""
    api = await repository.get_owned(session, api_id, user.id)
    if api is None:
        raise NotFound("No API with this id.", code="api_not_found")
    return api


async def create(session: AsyncSession, owner: User, body: ApiCreate) -> Api:
    if body.slug is not None:
        if not slugs.is_valid_slug(body.slug):
            raise Unprocessable(
                "A slug is 1-48 lowercase letters, digits or '-', starting and ending with a"
                " letter or digit, and not a reserved word.",
                code="invalid_slug",
            )
        if await repository.slug_taken(session, body.slug):
            raise Conflict(f"The slug '{body.slug}' is taken.", code="slug_taken")
        slug = body.slug
    else:
        slug = slugs.slugify(body.name)
        while not slugs.is_valid_slug(slug) or await repository.slug_taken(session, slug):
            slug = slugs.with_suffix(slugs.slugify(body.name))
    api = Api(
        owner_id=owner.id,
        name=body.name.strip(),
        slug=slug,
        description=body.description,
        visibility=body.visibility,
    )
    session.add(api)
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict(f"The slug '{slug}' is taken.", code="slug_taken") from None
    return api


async def update(session: AsyncSession, api: Api, body: ApiUpdate) -> Api:
    for field, value in body.model_dump(exclude_unset=True).items():
        if value is None:
            raise Unprocessable(f"'{field}' cannot be null.", code="validation_error")
        setattr(api, field, value.strip() if field == "name" else value)
    await session.flush()
    return api


ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
MAX_ENV_VALUE_BYTES = 4096
# Set by the platform inside every container; an API may not override them.
RESERVED_ENV = frozenset({"PORT", "HOME", "PATH"})


def maximums(settings: GatewaySettings) -> dict[str, float]:
    return {
        "memory_mb": settings.max_memory_limit_mb,
        "cpus": settings.max_cpu_limit,
        "timeout_seconds": settings.max_timeout_seconds,
        "max_concurrency": settings.max_concurrency_limit,
        "max_response_mb": settings.max_response_mb,
    }


def runtime_settings_out(api: Api, settings: GatewaySettings) -> RuntimeSettingsOut:
    return RuntimeSettingsOut(
        memory_mb=api.memory_mb,
        cpus=api.cpus,
        timeout_seconds=api.timeout_seconds,
        max_concurrency=api.max_concurrency,
        max_response_mb=api.max_response_mb,
        env=dict(api.env or {}),
        maximums=maximums(settings),
        gateway_secret=gateway_secret(settings.secrets_key.get_secret_value(), api.id),
    )


def set_runtime_settings(
    session: AsyncSession, api: Api, body: RuntimeSettings, settings: GatewaySettings
) -> None:
    for field, ceiling in maximums(settings).items():
        value = getattr(body, field)
        if value is not None and value > ceiling:
            raise Unprocessable(
                f"'{field}' is {value:g}; the most this platform allows is {ceiling:g}.",
                code="limit_exceeds_maximum",
                details={"field": field, "maximum": ceiling},
            )
    for name, value in body.env.items():
        if not ENV_NAME.match(name) or name.upper().startswith("VEIL_"):
            raise Unprocessable(
                f"'{name}' is not a valid variable name (letters, digits, _; not VEIL_*).",
                code="invalid_env",
            )
        if name.upper() in RESERVED_ENV:
            raise Unprocessable(f"'{name}' is set by the platform.", code="invalid_env")
        if len(value.encode()) > MAX_ENV_VALUE_BYTES or "\0" in value:
            raise Unprocessable(
                f"The value of '{name}' is too long or has a NUL byte.", code="invalid_env"
            )
    api.memory_mb = body.memory_mb
    api.cpus = body.cpus
    api.timeout_seconds = body.timeout_seconds
    api.max_concurrency = body.max_concurrency
    api.max_response_mb = body.max_response_mb
    api.env = dict(body.env)
    # The data plane reads the timeout and concurrency limit from its route cache.
    invalidate(session, route(api.slug))
