"""Broker fixtures: a real redis-server per session and ``broker`` over every backend:
memory, one redis-server, and (marked ``topology``) TLS, Sentinel and Redis Cluster."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TYPE_CHECKING

import pytest

from pusherd.brokers import Broker, create_broker
from pusherd.brokers.base import Envelope, Reaped
from tests.redis_server import RedisServer, running_redis

# the deployments besides the plain "redis" one that the contract runs against
TOPOLOGIES = ("tls", "sentinel", "cluster")

if TYPE_CHECKING:
    from pusherd.brokers.redis import RedisBroker

__all__ = [
    "INTERVAL",
    "TIMEOUT",
    "Inbox",
    "MakeNode",
    "close_brokers",
    "eventually",
    "redis_nodes",
    "wait_until",
]

# real waits are bounded: every wait gives up after this many seconds
WAIT = 5.0
POLL = 0.02
# short heartbeats so reaping and recovery happen within a test's patience
INTERVAL = 0.2
TIMEOUT = 1.0


class Inbox:
    """Collects what a broker hands to ``deliver`` and ``reaped``."""

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []
        self.reaped: list[Reaped] = []
        self._changed = asyncio.Event()

    def deliver(self, envelope: Envelope) -> None:
        self.envelopes.append(envelope)
        self._changed.set()

    def on_reaped(self, event: Reaped) -> None:
        self.reaped.append(event)
        self._changed.set()

    async def wait_for(self, count: int, timeout: float = WAIT) -> list[Envelope]:
        """Wait until ``count`` envelopes arrived; return them."""
        await self._wait(lambda: len(self.envelopes) >= count, timeout)
        return self.envelopes

    async def wait_reaped(self, count: int, timeout: float = WAIT) -> list[Reaped]:
        await self._wait(lambda: len(self.reaped) >= count, timeout)
        return self.reaped

    async def _wait(self, done: Callable[[], bool], timeout: float) -> None:
        async with asyncio.timeout(timeout):
            while not done():
                self._changed.clear()
                await self._changed.wait()


async def wait_until(condition: Callable[[], object], timeout: float = WAIT) -> None:
    """Poll ``condition`` every 20 ms until it is true; fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(POLL)


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = WAIT) -> None:
    """Await ``check()`` every 20 ms until it returns True; fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"check not true within {timeout} s")
        await asyncio.sleep(POLL)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One redis-server for the session (skips when the binary is missing)."""
    yield from running_redis()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session server's URL, emptied for this test."""
    redis_server.start()  # a no-op unless a test left it stopped
    redis_server.flushall()
    return redis_server.url


@pytest.fixture
def own_redis_server() -> Iterator[RedisServer]:
    """A redis-server for this test alone (it may stop and restart it)."""
    yield from running_redis()


@pytest.fixture
def inbox() -> Inbox:
    return Inbox()


TOPOLOGY_PARAMS = [
    pytest.param(kind, marks=[pytest.mark.redis, pytest.mark.topology]) for kind in TOPOLOGIES
]


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis), *TOPOLOGY_PARAMS])
async def broker(request: pytest.FixtureRequest, inbox: Inbox) -> AsyncIterator[Broker]:
    """A started broker of every backend (and every Redis topology), into ``inbox``."""
    options = {"node_id": "node-a", "heartbeat_interval": INTERVAL, "node_timeout": TIMEOUT}
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        instance = create_broker("redis", url=url, **options)
    elif request.param in TOPOLOGIES:
        topology = request.getfixturevalue("redis_topologies").get(request.param)
        topology.flushall()
        instance = create_broker(topology.driver, target=topology.target(), **options)
    else:
        instance = create_broker("memory")
    await instance.start(inbox.deliver, inbox.on_reaped)
    try:
        yield instance
    finally:
        await instance.close()


MakeNode = Callable[..., Awaitable[tuple["RedisBroker", Inbox]]]


@contextlib.asynccontextmanager
async def redis_nodes(default_url: str) -> AsyncIterator[MakeNode]:
    """Start ``RedisBroker`` nodes with short heartbeats; close them all on exit."""
    from pusherd.brokers.redis import RedisBroker

    nodes: list[RedisBroker] = []

    async def make(
        node_id: str, url: str = default_url, **options: object
    ) -> tuple[RedisBroker, Inbox]:
        inbox = Inbox()
        settings = {"heartbeat_interval": INTERVAL, "node_timeout": TIMEOUT, **options}
        node = RedisBroker(url, node_id, **settings)  # type: ignore[arg-type]
        nodes.append(node)
        await node.start(inbox.deliver, inbox.on_reaped)
        return node, inbox

    try:
        yield make
    finally:
        await close_brokers(nodes)


async def close_brokers(brokers: list[RedisBroker]) -> None:
    """Close ``brokers``, then collect what redis-py left behind, here and not later.

    A connection that redis-py opens and then abandons (a refused password or TLS
    handshake, a connect cut short by ``close``) leaves a socket that only the garbage
    collector closes. Its ResourceWarning, with warnings as errors, would otherwise fail
    whichever later test the collector happens to run in.
    """
    for broker in brokers:
        await broker.close()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
