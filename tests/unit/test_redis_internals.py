"""What Veil's hand-packed Redis paths assume of redis-py's low-level connection API.

gateway/dataplane/resp.py (`KeptConnection`, the data plane's limit checks and
execution events) and analytics/ingest/consumer.py (`_command`) bypass redis-py's
command layer: they take a connection out of the pool, send pre-packed bytes and
read raw replies. Those methods are not underscored, but they are not redis-py's
documented contract either: 8.1 alone changed the defaults around them (5 s socket
timeouts, a bounded pool) and made `timeout=math.inf` an explicit "no timeout".
pyproject.toml keeps redis below its next major; an upgrade that breaks one of
these assumptions fails here, naming what changed, not as a hung data plane.
"""

from __future__ import annotations

import asyncio
import inspect
import math
from collections.abc import AsyncIterator, Callable
from importlib.metadata import version
from typing import Any

import pytest
from redis.asyncio import BlockingConnectionPool, Connection, ConnectionPool, Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.utils import HIREDIS_AVAILABLE

from gateway.dataplane.resp import KeptConnection
from shared.resp import pack

USERS = (
    "KeptConnection (gateway/dataplane/resp.py), "
    "EventConsumer._command (analytics/ingest/consumer.py)"
)
# Each low-level call they make, as they make it: (owner, method, positional
# arguments after self, keyword arguments).
CALLS: list[tuple[type[Any], str, tuple[Any, ...], dict[str, Any]]] = [
    (ConnectionPool, "get_connection", (), {}),
    (BlockingConnectionPool, "get_connection", (), {}),
    (ConnectionPool, "release", (object(),), {}),
    (BlockingConnectionPool, "release", (object(),), {}),
    (Connection, "send_packed_command", (b"",), {"check_health": False}),
    (Connection, "read_response", (), {"timeout": math.inf}),
    (Connection, "read_response", (), {}),
    (Connection, "disconnect", (), {}),
]


def changed(what: str) -> str:
    return f"redis-py changed: {what} (relied on by {USERS})"


@pytest.mark.parametrize(
    ("owner", "name", "args", "kwargs"), CALLS, ids=[f"{c[0].__name__}.{c[1]}" for c in CALLS]
)
def test_the_low_level_calls_keep_their_signatures(
    owner: type[Any], name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    method = getattr(owner, name, None)
    assert callable(method), changed(f"{owner.__name__}.{name} is gone")
    assert inspect.iscoroutinefunction(inspect.unwrap(method)), changed(
        f"{owner.__name__}.{name} is no longer a coroutine function"
    )
    signature = inspect.signature(method)
    try:
        signature.bind(None, *args, **kwargs)
    except TypeError as exc:
        call = ", ".join([*map(repr, args), *(f"{k}={v!r}" for k, v in kwargs.items())])
        raise AssertionError(
            changed(f"{owner.__name__}.{name}{signature} no longer takes ({call}): {exc}")
        ) from exc


def test_read_response_still_disconnects_on_errors_by_default() -> None:
    parameter = inspect.signature(Connection.read_response).parameters.get("disconnect_on_error")
    assert parameter is not None, changed("Connection.read_response lost disconnect_on_error")
    assert parameter.default is True, changed(
        "Connection.read_response no longer disconnects on an error by default"
    )


def test_replies_are_parsed_by_hiredis() -> None:
    """hiredis is a dependency for its reply parser; redis-py silently falls back to
    its pure-Python one when it rejects the installed hiredis (as 8.x does below 3.2)."""
    assert HIREDIS_AVAILABLE, (
        f"redis-py {version('redis')} does not use hiredis {version('hiredis')}: "
        "raise the floor the redis[hiredis] extra brings"
    )


def test_a_client_exposes_its_pool() -> None:
    pool = BlockingConnectionPool.from_url("redis://127.0.0.1:1/0", max_connections=1)
    client = Redis.from_pool(pool)
    assert client.connection_pool is pool, changed("Redis.connection_pool is not its pool")


@pytest.fixture
async def make_client(redis_url: str) -> AsyncIterator[Callable[..., Redis]]:
    """Clients over their own blocking pools (as the data plane builds them) on the test Redis."""
    clients: list[Redis] = []

    def make(max_connections: int = 4, **options: Any) -> Redis:
        pool = BlockingConnectionPool.from_url(
            redis_url, max_connections=max_connections, timeout=0.5, **options
        )
        clients.append(Redis.from_pool(pool))
        return clients[-1]

    yield make
    for client in clients:
        await client.aclose()


async def client_id(kept: KeptConnection) -> int:
    (answer,) = await kept.exchange(pack("CLIENT", "ID"), 1)
    return int(answer)


async def test_replies_come_in_order_with_error_replies_in_place(
    make_client: Callable[..., Redis],
) -> None:
    kept = KeptConnection(make_client())
    try:
        packed = pack("SET", "veil:ri", "v") + pack("INCR", "veil:ri") + pack("GET", "veil:ri")
        ok, error, value = await kept.exchange(packed, 3)
        assert (ok, value) == (b"OK", b"v"), changed(f"raw replies read as {ok!r}, {value!r}")
        assert isinstance(error, ResponseError), changed(
            f"an error reply from read_response is {error!r}, not a raised ResponseError"
        )
        first = await client_id(kept)  # an error reply leaves the connection usable ...
        assert await client_id(kept) == first, changed(  # ... and it is the same one
            "a connection taken from the pool did not stay the same between exchanges"
        )
    finally:
        await kept.close()


async def test_math_inf_means_no_timeout_per_reply(make_client: Callable[..., Redis]) -> None:
    client = make_client(socket_timeout=0.2)
    pool = client.connection_pool
    connection = await pool.get_connection()  # type: ignore[no-untyped-call]
    try:
        await connection.send_packed_command(pack("BLPOP", "veil:ri-empty", "0.5"))
        with pytest.raises(RedisTimeoutError):  # the socket timeout applies by default ...
            await connection.read_response()
    finally:
        await pool.release(connection)
    kept = KeptConnection(client)
    try:
        # ... not to a kept connection's reads: the caller bounds the whole batch.
        answers = await kept.exchange(pack("BLPOP", "veil:ri-empty", "0.5"), 1)
    except RedisTimeoutError as exc:
        raise AssertionError(
            changed("read_response(timeout=math.inf) applies the socket timeout")
        ) from exc
    finally:
        await kept.close()
    assert answers == [None]


async def test_an_interrupted_exchange_gives_back_a_closed_connection(
    make_client: Callable[..., Redis],
) -> None:
    client = make_client(max_connections=1)  # a leaked connection would starve the pool
    kept = KeptConnection(client)
    first = await client_id(kept)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await kept.exchange(pack("BLPOP", "veil:ri-empty", "5"), 1)
    pool = client.connection_pool
    try:
        async with asyncio.timeout(2):
            connection = await pool.get_connection()  # type: ignore[no-untyped-call]
    except (TimeoutError, RedisConnectionError) as exc:
        raise AssertionError(changed("disconnect() and release() leaked the connection")) from exc
    try:
        # A fresh session: the abandoned BLPOP's reply can never be read as this one's.
        await connection.send_packed_command(pack("CLIENT", "ID"))
        assert int(await connection.read_response()) != first, changed(
            "a disconnected connection released to the pool is handed out unreconnected"
        )
    finally:
        await pool.release(connection)
    assert await client_id(kept) != first  # the kept connection took a new one
    await kept.close()


async def test_close_gives_the_connection_back(make_client: Callable[..., Redis]) -> None:
    client = make_client(max_connections=1)
    kept = KeptConnection(client)
    await client_id(kept)
    await kept.close()
    pool = client.connection_pool
    async with asyncio.timeout(2):
        connection = await pool.get_connection()  # type: ignore[no-untyped-call]
    await pool.release(connection)


async def test_read_response_disconnects_when_cancelled(make_client: Callable[..., Redis]) -> None:
    """The analytics consumer releases a connection whose read was cancelled: only
    safe because read_response disconnected it first."""
    pool = make_client().connection_pool
    connection = await pool.get_connection()  # type: ignore[no-untyped-call]
    try:
        await connection.send_packed_command(pack("BLPOP", "veil:ri-empty", "5"))
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await connection.read_response()
        assert not connection.is_connected, changed(
            "a cancelled read_response leaves the connection connected, its reply unread"
        )
    finally:
        await pool.release(connection)


async def test_replies_are_the_parsers_not_the_clients(make_client: Callable[..., Redis]) -> None:
    """No reply callbacks on this path: stream entries come as nested lists."""
    client = make_client()
    entry_id = await client.xadd("veil:ri-stream", {"f": "v"})
    kept = KeptConnection(client)
    try:
        (entries,) = await kept.exchange(pack("XRANGE", "veil:ri-stream", "-", "+"), 1)
    finally:
        await kept.close()
        await client.delete("veil:ri-stream")
    assert entries == [[entry_id, [b"f", b"v"]]], changed(f"raw XRANGE reply is {entries!r}")
