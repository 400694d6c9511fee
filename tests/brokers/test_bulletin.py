"""The console's bulletin: topics reach followers, shares are read back, on both drivers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from pusherd.brokers.bulletin import Bulletin, MemoryBulletin, RedisBulletin, create_bulletin


@pytest.fixture(params=["memory", "redis"])
async def bulletins(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Bulletin, Bulletin]]:
    """Two bulletins that share a cluster (the same object for memory)."""
    if request.param == "memory":
        one = MemoryBulletin()
        yield one, one
        return
    url = request.getfixturevalue("redis_url")
    one, two = RedisBulletin(url), RedisBulletin(url)
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
    async with asyncio.timeout(5):
        while got.empty():  # the subscription is live once a post gets through
            await writer.post("log:1", b"hello")
            with_item = asyncio.ensure_future(got.get())
            done, _ = await asyncio.wait({with_item}, timeout=0.2)
            if done:
                assert with_item.result() == b"hello"
                break
            with_item.cancel()
    await reader.unfollow("log:1")
    await writer.post("log:1", b"after")
    await asyncio.sleep(0.2)
    assert all(item == b"hello" for item in [got.get_nowait() for _ in range(got.qsize())])


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
    assert isinstance(create_bulletin("memory", ""), MemoryBulletin)
    redis = create_bulletin("redis", "redis://:hunter2@127.0.0.1:1/0")
    assert isinstance(redis, RedisBulletin)
    assert "hunter2" not in repr(redis)
