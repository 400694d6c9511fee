"""The console's bulletin: topics reach followers, shares are read back, on both drivers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from pusherd.brokers.bulletin import Bulletin, MemoryBulletin, RedisBulletin, create_bulletin
from pusherd.config import ScalingConfig
from pusherd.errors import BrokerError


@pytest.fixture(params=["memory", "redis"])
async def bulletins(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Bulletin, Bulletin]]:
    """Two bulletins that share a cluster (the same object for memory)."""
    if request.param == "memory":
        shared = MemoryBulletin()
        yield shared, shared
        return
    url = request.getfixturevalue("redis_url")
    one, two = redis_bulletin(url), redis_bulletin(url)
    await one.start()
    await two.start()
    try:
        yield one, two
    finally:
        await one.close()
        await two.close()


async def test_bulletin_post_reaches_the_follower_on_another_node(
    bulletins: tuple[Bulletin, Bulletin],
) -> None:
    writer, reader = bulletins
    got: asyncio.Queue[bytes] = asyncio.Queue()
    await reader.follow("log:1", got.put_nowait)
    await _post_until_received(writer, got)
    await reader.unfollow("log:1")
    while not got.empty():  # extra pings of the loop above
        assert got.get_nowait() == b"ping"
    await writer.post("log:1", b"after")
    await asyncio.sleep(0.2)  # a bounded negative check: nothing may arrive
    assert got.empty()


async def test_bulletin_shares_are_read_back_per_node(
    bulletins: tuple[Bulletin, Bulletin],
) -> None:
    one, two = bulletins
    await one.share("stats:1", "a", b"1", 10)
    await two.share("stats:1", "b", b"2", 10)
    assert await one.shares("stats:1") == {"a": b"1", "b": b"2"}
    assert await two.shares("stats:2") == {}


async def test_memory_bulletin_board_expires_after_its_ttl() -> None:
    now = [100.0]
    bulletin = MemoryBulletin(clock=lambda: now[0])
    await bulletin.share("b", "n", b"x", 5)
    assert await bulletin.shares("b") == {"n": b"x"}
    now[0] += 6
    assert await bulletin.shares("b") == {}


def test_create_bulletin_picks_the_driver() -> None:
    assert isinstance(create_bulletin(ScalingConfig()), MemoryBulletin)
    scaling = ScalingConfig(driver="redis", redis_url="redis://:hunter2@127.0.0.1:1/0")
    redis = create_bulletin(scaling)
    assert isinstance(redis, RedisBulletin)
    assert "hunter2" not in repr(redis)
    cluster = ScalingConfig(driver="redis-cluster", redis_url="redis://127.0.0.1:1/0")
    assert isinstance(create_bulletin(cluster), MemoryBulletin)


def test_redis_bulletin_names_live_under_the_scaling_prefix() -> None:
    bulletin = RedisBulletin(Redis.from_url("redis://127.0.0.1:1/0"), prefix="staging")
    assert bulletin._prefix == "staging:console:"


def redis_bulletin(url: str) -> RedisBulletin:
    return RedisBulletin(Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5))


@pytest.mark.redis
async def test_redis_bulletin_follows_again_after_redis_restarts(own_redis_server: Any) -> None:
    writer, reader = redis_bulletin(own_redis_server.url), redis_bulletin(own_redis_server.url)
    await writer.start()
    await reader.start()
    got: asyncio.Queue[bytes] = asyncio.Queue()
    try:
        await reader.follow("log:1", got.put_nowait)
        await _post_until_received(writer, got)
        own_redis_server.restart()
        await _post_until_received(writer, got, timeout=15)
    finally:
        await writer.close()
        await reader.close()


async def _post_until_received(
    writer: Bulletin, got: asyncio.Queue[bytes], timeout: float = 5
) -> None:
    """Post until the follower has one (its subscription may be on its way back)."""
    async with asyncio.timeout(timeout):
        while True:
            with contextlib.suppress(BrokerError):
                await writer.post("log:1", b"ping")
            try:
                await asyncio.wait_for(got.get(), 0.2)
                return
            except TimeoutError:
                continue
