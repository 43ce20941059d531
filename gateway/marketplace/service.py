"""Rules for the marketplace: who sees which API, and what a listing shows.

Public APIs are listed for everyone, signed in or not. A private API is never
listed, and its detail answers 404 to anyone but its owner (and admins),
exactly like an id that does not exist. A suspended API is treated like a
private one, and nobody can subscribe to it.
"""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.apis.service import public_url
from gateway.marketplace import repository
from gateway.marketplace.schemas import MarketplaceDetail, MarketplaceItem, MarketplacePage, Price
from gateway.plans import repository as plans_repository
from gateway.plans.service import to_out as plan_out
from gateway.subscriptions.service import display_name
from shared.errors import Conflict, NotFound
from shared.models import Api, Plan, User


def can_see(api: Api, viewer: User | None) -> bool:
    if api.visibility == "public" and not api.is_suspended:
        return True
    return viewer is not None and (viewer.id == api.owner_id or viewer.role == "admin")


def example_request(url: str) -> str:
    return f"curl -H 'X-API-Key: <your key>' '{url}'"


def _item(listing: repository.Listing, plans: list[Plan], base_url: str) -> MarketplaceItem:
    api, email, deployment_status = listing
    cheapest = plans[0] if plans else None  # plans come cheapest first
    return MarketplaceItem(
        id=api.id,
        slug=api.slug,
        name=api.name,
        description=api.description,
        owner=display_name(email),
        url=public_url(api, base_url),
        running=deployment_status == "running",
        plan_count=len(plans),
        has_free_plan=any(p.is_free for p in plans),
        lowest_price=(
            Price(price_per_1000_minor=cheapest.price_per_1000_minor, currency=cheapest.currency)
            if cheapest is not None
            else None
        ),
    )


async def search(
    session: AsyncSession, query: str | None, limit: int, offset: int, base_url: str
) -> MarketplacePage:
    """Public APIs whose name, slug or description contains `query`, by name.

    `lowest_price` compares amounts only: an API whose plans mix currencies shows
    the smallest number, whatever its currency.
    """
    listings, total = await repository.search_public(session, query, limit, offset)
    plans_by_api: dict[str, list[Plan]] = defaultdict(list)
    for plan in await plans_repository.active_for_apis(session, [row[0].id for row in listings]):
        plans_by_api[plan.api_id].append(plan)
    return MarketplacePage(
        items=[_item(row, plans_by_api[row[0].id], base_url) for row in listings],
        total=total,
        limit=limit,
        offset=offset,
    )


async def _visible_or_404(
    session: AsyncSession, api_id: str, viewer: User | None
) -> repository.Listing:
    listing = await repository.get_listing(session, api_id)
    if listing is None or not can_see(listing[0], viewer):
        raise NotFound("No API with this id.", code="api_not_found")
    return listing


async def get_visible_or_404(session: AsyncSession, api_id: str, viewer: User | None) -> Api:
    return (await _visible_or_404(session, api_id, viewer))[0]


async def get_subscribable_or_404(session: AsyncSession, api_id: str, viewer: User) -> Api:
    """The API, if `viewer` may subscribe to it: visible (404) and not suspended (409)."""
    api = await get_visible_or_404(session, api_id, viewer)
    if api.is_suspended:  # only its owner or an admin gets this far
        raise Conflict(
            "This API is suspended by the platform's admins: nobody can subscribe to it.",
            code="api_suspended",
        )
    return api


async def detail(
    session: AsyncSession, api_id: str, viewer: User | None, base_url: str
) -> MarketplaceDetail:
    api, email, deployment_status = await _visible_or_404(session, api_id, viewer)
    url = public_url(api, base_url)
    plans = await plans_repository.active_for_apis(session, [api.id])
    return MarketplaceDetail(
        id=api.id,
        slug=api.slug,
        name=api.name,
        description=api.description,
        owner=display_name(email),
        visibility=api.visibility,
        url=url,
        running=deployment_status == "running",
        example_request=example_request(url),
        plans=[plan_out(p) for p in plans],
        created_at=api.created_at,
        suspended=api.is_suspended,
    )
