"""A cluster survives a node crash (kill -9), a Redis restart or failover, and a graceful
shutdown, on every Redis deployment (``deployment``: the module's own redis-server, TLS,
Sentinel, Redis Cluster).

Every test starts its own two ``pusherd serve`` nodes, with ``heartbeat_interval = 0.5``
and ``node_timeout = 2``. The restart test needs the module's own server (it restarts it
empty); the failover test kills the Sentinel master, or the Redis Cluster master holding
pusherd's keys, with SIGKILL.
"""

from __future__ import annotations

import asyncio
import json
import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio

from tests.e2e.cluster import (
    APP,
    INTERVAL,
    TIMEOUT,
    Client,
    deployment_config,
    http_get,
    rest,
    start_nodes,
    stop_nodes,
)
from tests.redis_server import RedisServer
from tests.redis_topology import ClusterTopology, SentinelTopology, SingleTopology, Topology
from tests.server_process import ServerProcess
from tests.webhook_receiver import WebhookReceiver

__all__: list[str] = []

pytestmark = [pytest.mark.redis, pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def receiver() -> AsyncIterator[WebhookReceiver]:
    async with WebhookReceiver() as hooks:
        yield hooks


@pytest.fixture
def nodes(deployment: Topology, receiver: WebhookReceiver) -> Iterator[list[ServerProcess]]:
    if isinstance(deployment, SingleTopology):
        deployment.server.start()  # a no-op unless the restart test left it stopped
    else:
        heal = getattr(deployment, "heal", None)
        if heal is not None:
            heal()  # the failover test killed a master
    deployment.flushall()
    apps = [{**APP, "webhooks": [{"url": receiver.url("/hook")}]}]
    started = start_nodes(deployment_config(deployment, f"node-{n}", apps) for n in "ab")
    yield started
    stop_nodes(started)


@pytest.fixture
def uid() -> str:
    """Channels of their own per test: the webhook receiver is shared by the module."""
    return uuid.uuid4().hex[:8]


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
    nodes: list[ServerProcess], clients: list[Client], receiver: WebhookReceiver, uid: str
) -> None:
    a, b = nodes
    channel = f"presence-crash-{uid}"
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


@pytest.fixture
def own_server(deployment: Topology) -> RedisServer:
    """The module's own redis-server (skips on the shared deployments; before ``nodes``)."""
    if not isinstance(deployment, SingleTopology) or deployment.servers:
        pytest.skip("restarts the module's own redis-server (failovers are tested below)")
    return deployment.server


@pytest.fixture
def victim(deployment: Topology) -> RedisServer:
    """The master a failover test kills: Sentinel's, or the Redis Cluster master holding
    pusherd's keys (skips elsewhere; before ``nodes``)."""
    if isinstance(deployment, SentinelTopology):
        deployment.heal()
        return deployment.master()
    if isinstance(deployment, ClusterTopology):
        deployment.heal()
        state = deployment.owner("{pusherd}")
        return next(server for server in deployment.servers if server.port == state)
    pytest.skip("a failover needs Sentinel or Redis Cluster")


async def test_cluster_redis_restart_loses_no_event_and_reports_not_ready(
    own_server: RedisServer, nodes: list[ServerProcess], clients: list[Client]
) -> None:
    redis_server = own_server
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
    nodes: list[ServerProcess], clients: list[Client], uid: str
) -> None:
    a, b = nodes
    channel = f"presence-graceful-{uid}"
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


async def _ready_is(node: ServerProcess, status: int, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while await asyncio.to_thread(http_get, node, "/ready") != status:
        if loop.time() > deadline:
            raise AssertionError(node.describe(f"/ready is not {status} within {timeout} s"))
        await asyncio.sleep(0.05)


async def test_cluster_redis_failover_loses_no_event_and_keeps_presence(
    victim: RedisServer, nodes: list[ServerProcess], clients: list[Client]
) -> None:
    a, b = nodes
    channel, room, total, kill_at = "stream", "presence-kept", 60, 20
    listeners = [await Client.open(node) for node in nodes]
    clients.extend(listeners)
    for listener in listeners:
        await listener.subscribe(channel)
    await _join(a, clients, room, "alice")
    await _join(b, clients, room, "bob")
    down = asyncio.Event()

    async def failover() -> None:
        await asyncio.to_thread(victim.kill)
        for node in nodes:  # every node notices the dead master at once
            await _ready_is(node, 503, 10)
        down.set()
        for node in nodes:  # and follows the promoted replica
            await _ready_is(node, 200, 20)

    with rest(a) as via_a, rest(b) as via_b:
        failing = None
        for n in range(total):
            if n == kill_at:
                failing = asyncio.create_task(failover())
                await asyncio.wait_for(down.wait(), 15)
            for name, sdk in (("a", via_a), ("b", via_b)):
                await asyncio.to_thread(sdk.trigger, channel, "tick", {"from": name, "n": n})
        assert failing is not None
        await asyncio.wait_for(failing, 30)
    for listener in listeners:
        got = [_data(await listener.expect("tick", channel, timeout=10)) for _ in range(2 * total)]
        for name in "ab":  # every event once, each publisher's in order
            assert [tick["n"] for tick in got if tick["from"] == name] == list(range(total))
        await listener.nothing("tick", channel, wait=0.2)
    for node in nodes:  # nobody was reaped: both members are still there, on every node
        with rest(node) as client:
            users = await asyncio.to_thread(client.users_info, room)
        assert sorted(user["id"] for user in users["users"]) == ["alice", "bob"]
    for client in clients[2:]:
        await client.nothing("pusher_internal:member_removed", room, wait=0.1)
