"""A cluster survives a node crash (kill -9), a Redis restart and a graceful shutdown.

Every test starts its own two ``pusherd serve`` nodes on the module's redis-server (the
Redis test restarts it), with ``heartbeat_interval = 0.5`` and ``node_timeout = 2``.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio

from tests.e2e.cluster import (
    APP,
    INTERVAL,
    TIMEOUT,
    Client,
    http_get,
    node_config,
    rest,
    start_nodes,
    stop_nodes,
)
from tests.redis_server import RedisServer
from tests.server_process import ServerProcess
from tests.webhook_receiver import WebhookReceiver

__all__: list[str] = []

pytestmark = [pytest.mark.redis, pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def receiver() -> AsyncIterator[WebhookReceiver]:
    async with WebhookReceiver() as hooks:
        yield hooks


@pytest.fixture
def nodes(redis_server: RedisServer, receiver: WebhookReceiver) -> Iterator[list[ServerProcess]]:
    redis_server.start()
    redis_server.flushall()
    apps = [{**APP, "webhooks": [{"url": receiver.url("/hook")}]}]
    started = start_nodes(node_config(redis_server.url, f"node-{n}", apps) for n in "ab")
    yield started
    stop_nodes(started)


@pytest_asyncio.fixture(loop_scope="module")
async def clients() -> AsyncIterator[list[Client]]:
    opened: list[Client] = []
    yield opened
    await asyncio.gather(*(client.close() for client in opened))


async def _join(node: ServerProcess, clients: list[Client], channel: str, user: str) -> Client:
    client = await Client.open(node)
    clients.append(client)
    await client.subscribe(channel, {"user_id": user})
    return client


def _data(frame: dict[str, Any]) -> Any:
    return json.loads(frame["data"])


async def test_cluster_killed_node_members_are_removed_within_node_timeout(
    nodes: list[ServerProcess], clients: list[Client], receiver: WebhookReceiver
) -> None:
    a, b = nodes
    channel = "presence-crash"
    alice = await _join(a, clients, channel, "alice")
    await _join(b, clients, channel, "bob")
    await alice.expect("pusher_internal:member_added", channel)
    loop = asyncio.get_running_loop()
    killed = loop.time()
    b.kill()
    removed = await alice.expect(
        "pusher_internal:member_removed", channel, timeout=TIMEOUT + INTERVAL + 3
    )
    assert _data(removed) == {"user_id": "bob"}
    assert loop.time() - killed < TIMEOUT + INTERVAL + 1.0  # 1 s of slack for a busy CI

    def bob_removed() -> list[dict[str, Any]]:
        return [
            e
            for e in receiver.events
            if e["name"] == "member_removed" and e.get("channel") == channel
        ]

    await receiver.wait_until(lambda: bool(bob_removed()))
    await alice.nothing("pusher_internal:member_removed", channel, wait=INTERVAL)
    assert [e["user_id"] for e in bob_removed()] == ["bob"]
    with rest(a) as client:
        info = await asyncio.to_thread(
            client.channel_info, channel, ["user_count", "subscription_count"]
        )
    assert (info["user_count"], info["subscription_count"]) == (1, 1)


async def test_cluster_redis_restart_loses_no_event_and_reports_not_ready(
    nodes: list[ServerProcess], clients: list[Client], redis_server: RedisServer
) -> None:
    a, b = nodes
    channel, total, restart_at = "stream", 60, 20
    listeners = [await Client.open(node) for node in nodes]
    clients.extend(listeners)
    for listener in listeners:
        await listener.subscribe(channel)
    down = asyncio.Event()
    not_ready: list[int] = []

    async def outage() -> None:
        await asyncio.to_thread(redis_server.stop)
        for node in nodes:  # every node notices within a heartbeat or two
            for _ in range(100):
                if await asyncio.to_thread(http_get, node, "/ready") == 503:
                    not_ready.append(1)
                    break
                await asyncio.sleep(0.05)
        down.set()
        await asyncio.sleep(0.5)
        await asyncio.to_thread(redis_server.start)

    with rest(a) as via_a, rest(b) as via_b:
        restarting = None
        for n in range(total):
            if n == restart_at:
                restarting = asyncio.create_task(outage())
                await asyncio.wait_for(down.wait(), 15)
            for name, sdk in (("a", via_a), ("b", via_b)):
                await asyncio.to_thread(sdk.trigger, channel, "tick", {"from": name, "n": n})
        assert restarting is not None
        await asyncio.wait_for(restarting, 15)
    assert not_ready == [1, 1]
    for node in nodes:
        for _ in range(100):
            if await asyncio.to_thread(http_get, node, "/ready") == 200:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(node.describe("/ready did not come back after redis restarted"))
    for node in nodes:  # each node wrote its share of the state back into the empty Redis
        with rest(node) as client:
            for _ in range(100):
                info = await asyncio.to_thread(client.channel_info, channel, ["subscription_count"])
                if info.get("subscription_count") == 2:
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError(f"state not rebuilt after the restart: {info}")
    for listener in listeners:
        got = [_data(await listener.expect("tick", channel, timeout=10)) for _ in range(2 * total)]
        for name in "ab":  # every event once, each publisher's in order
            assert [tick["n"] for tick in got if tick["from"] == name] == list(range(total))
        await listener.nothing("tick", channel, wait=0.2)


async def test_cluster_sigterm_removes_members_at_once_and_closes_with_4200(
    nodes: list[ServerProcess], clients: list[Client]
) -> None:
    a, b = nodes
    channel = "presence-graceful"
    alice = await _join(a, clients, channel, "alice")
    bob = await _join(b, clients, channel, "bob")
    await alice.expect("pusher_internal:member_added", channel)
    loop = asyncio.get_running_loop()
    started = loop.time()
    stopping = asyncio.create_task(asyncio.to_thread(b.stop))
    assert await bob.closed() == 4200
    removed = await alice.expect("pusher_internal:member_removed", channel, timeout=TIMEOUT)
    assert _data(removed) == {"user_id": "bob"}
    assert loop.time() - started < TIMEOUT / 2  # not through the reaper
    # uvicorn re-raises SIGTERM after its graceful shutdown; -SIGKILL would mean it hung
    assert await asyncio.wait_for(stopping, 15) in (0, -signal.SIGTERM)
