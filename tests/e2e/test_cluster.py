"""Two ``pusherd serve`` processes with ``driver = "redis"`` on one redis-server.

Clients are raw WebSockets (the ``websockets`` library) and the official ``pusher`` SDK for
REST. An event published on node A reaches a subscriber on node B, presence members are
cluster-wide, and a node killed with SIGKILL is reaped: its members are removed on the
other node within ``node_timeout + heartbeat_interval``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pusher
import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.redis_server import RedisServer
from tests.server_process import ServerProcess

from .conftest import close_sdk

__all__: list[str] = []

pytestmark = pytest.mark.redis

APP = {"id": "12345", "key": "app-key", "secret": "app-secret"}
INTERVAL = 0.2
TIMEOUT = 1.0
WAIT = 5.0


class Client:
    """A raw Pusher protocol client: frames in arrival order, awaited by event name."""

    def __init__(self, ws: ClientConnection, socket_id: str) -> None:
        self.ws = ws
        self.socket_id = socket_id
        self.frames: list[dict[str, Any]] = []

    @classmethod
    async def open(cls, server: ServerProcess) -> Client:
        ws = await connect(f"{server.ws_url}/app/{APP['key']}?protocol=7&client=py&version=1")
        first = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
        assert first["event"] == "pusher:connection_established", first
        return cls(ws, json.loads(first["data"])["socket_id"])

    async def send(self, event: str, data: dict[str, Any]) -> None:
        await self.ws.send(json.dumps({"event": event, "data": data}))

    async def expect(self, event: str, channel: str, timeout: float = WAIT) -> dict[str, Any]:
        """Return the first frame not returned before with this event and channel."""
        async with asyncio.timeout(timeout):
            while True:
                for frame in self.frames:
                    if frame["event"] == event and frame.get("channel") == channel:
                        self.frames.remove(frame)
                        return frame
                self.frames.append(json.loads(await self.ws.recv()))

    async def subscribe(self, channel: str, **auth: Any) -> dict[str, Any]:
        await self.send("pusher:subscribe", {"channel": channel, **auth})
        return await self.expect("pusher_internal:subscription_succeeded", channel)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    if not RedisServer.available():
        pytest.skip("redis-server is not installed")
    with RedisServer() as server:
        yield server


def _node(redis_url: str, node_id: str) -> ServerProcess:
    scaling = {
        "driver": "redis",
        "redis_url": redis_url,
        "node_id": node_id,
        "heartbeat_interval": INTERVAL,
        "node_timeout": TIMEOUT,
    }
    return ServerProcess({"scaling": scaling, "apps": [APP]})


@pytest.fixture
def nodes(redis_server: RedisServer) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    a, b = _node(redis_server.url, "node-a"), _node(redis_server.url, "node-b")
    try:
        a.start()
        b.start()
        yield a, b
    finally:
        a.cleanup()
        b.cleanup()


@pytest.fixture
async def clients() -> AsyncIterator[list[Client]]:
    opened: list[Client] = []
    yield opened
    for client in opened:
        await client.ws.close()


def _sdk(server: ServerProcess) -> pusher.Pusher:
    return pusher.Pusher(
        app_id=APP["id"],
        key=APP["key"],
        secret=APP["secret"],
        host=server.host,
        port=server.port,
        ssl=False,
    )


async def _presence(
    server: ServerProcess, clients: list[Client], channel: str, user_id: str
) -> tuple[Client, dict[str, Any]]:
    client = await Client.open(server)
    clients.append(client)
    signer = _sdk(server)
    try:
        auth = signer.authenticate(channel, client.socket_id, {"user_id": user_id})
    finally:
        close_sdk(signer)
    joined = await client.subscribe(channel, **auth)
    return client, json.loads(joined["data"])["presence"]


async def test_cluster_event_published_on_one_node_reaches_the_other(
    nodes: tuple[ServerProcess, ServerProcess], clients: list[Client]
) -> None:
    a, b = nodes
    listener = await Client.open(b)
    clients.append(listener)
    await listener.subscribe("cluster-news")
    sdk = _sdk(a)
    try:
        await asyncio.to_thread(sdk.trigger, "cluster-news", "headline", {"n": 1})
        channels = await asyncio.to_thread(sdk.channels_info)
    finally:
        close_sdk(sdk)
    frame = await listener.expect("headline", "cluster-news")
    assert json.loads(frame["data"]) == {"n": 1}
    assert "cluster-news" in channels["channels"]


async def test_cluster_presence_members_are_cluster_wide(
    nodes: tuple[ServerProcess, ServerProcess], clients: list[Client]
) -> None:
    a, b = nodes
    alice, first = await _presence(a, clients, "presence-room", "alice")
    assert first["ids"] == ["alice"]
    _, second = await _presence(b, clients, "presence-room", "bob")
    assert sorted(second["ids"]) == ["alice", "bob"]
    added = await alice.expect("pusher_internal:member_added", "presence-room")
    assert json.loads(added["data"])["user_id"] == "bob"
    sdk = _sdk(a)
    try:
        users = await asyncio.to_thread(sdk.users_info, "presence-room")
    finally:
        close_sdk(sdk)
    assert sorted(user["id"] for user in users["users"]) == ["alice", "bob"]


async def test_cluster_killed_node_members_are_removed(
    nodes: tuple[ServerProcess, ServerProcess], clients: list[Client]
) -> None:
    a, b = nodes
    alice, _ = await _presence(a, clients, "presence-room", "alice")
    await _presence(b, clients, "presence-room", "bob")
    await alice.expect("pusher_internal:member_added", "presence-room")
    b.kill()
    loop = asyncio.get_running_loop()
    killed = loop.time()
    removed = await alice.expect(
        "pusher_internal:member_removed", "presence-room", timeout=TIMEOUT + INTERVAL + 3
    )
    assert json.loads(removed["data"]) == {"user_id": "bob"}
    assert loop.time() - killed < TIMEOUT + INTERVAL + 1.0  # 1 s of slack for a busy CI
