"""The console across a 2-node Redis cluster: watched on node A, traffic on node B.

Two ``pusherd serve`` processes share one redis-server, both with the console on. A
console logged in on A streams app 12345; a client on B connects, subscribes, joins a
presence channel and whispers, and the backend publishes through B. A must show every
one of B's lines, each naming node B, and answer channel lists, members, stats and
Reverb Pulse's connection count for the whole cluster.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
from pusher.http import Request

from tests.console.sse import open_stream
from tests.e2e.cluster import APP, Client, node_config, rest, start_nodes, stop_nodes
from tests.redis_server import RedisServer
from tests.server_process import ServerProcess

__all__: list[str] = []

pytestmark = [pytest.mark.redis]

PASSWORD = "cluster-console-password"


@pytest.fixture
def nodes(redis_server: RedisServer) -> Iterator[list[ServerProcess]]:
    configs = []
    for name in ("node-a", "node-b"):
        config = node_config(redis_server.url, name, [APP])
        config["console"] = {"enabled": True, "password": PASSWORD}
        configs.append(config)
    started = start_nodes(configs)
    yield started
    stop_nodes(started)


async def _until(check: Callable[[], Awaitable[Any]], timeout: float = 15.0) -> Any:
    """Re-check ``check`` (an HTTP answer that changes on a timer) until truthy, bounded."""
    async with asyncio.timeout(timeout):
        while True:
            value = await check()
            if value:
                return value
            await asyncio.sleep(0.25)


async def test_console_on_node_a_sees_node_b_and_counts_the_cluster(
    nodes: list[ServerProcess],
) -> None:
    node_a, node_b = nodes
    async with httpx.AsyncClient(base_url=node_a.http_url, timeout=5) as http:
        login = await http.post("/console/login", data={"password": PASSWORD})
        assert login.status_code == 303
        async with open_stream(http) as stream:
            here = await Client.open(node_a)
            there = await Client.open(node_b)
            try:
                opened = await stream.expect(
                    lambda x: x["type"] == "socket_opened" and x["socket_id"] == there.socket_id,
                    timeout=10,
                )
                assert opened["node"] == "node-b"
                await there.subscribe("presence-room", {"user_id": "bea", "user_info": {"n": 1}})
                await there.subscribe("private-orders")
                added = await stream.expect(lambda x: x["type"] == "member_added")
                assert (added["user_id"], added["node"]) == ("bea", "node-b")
                await there.send("client-typing", {"who": "bea"}, "private-orders")
                whisper = await stream.expect(lambda x: x["type"] == "client_event")
                assert whisper["node"] == "node-b" and whisper["event"] == "client-typing"
                with rest(node_b) as sdk:
                    await asyncio.to_thread(sdk.trigger, "private-orders", "shipped", {"id": 1})
                api = await stream.expect(lambda x: x["type"] == "api_message")
                assert (api["node"], api["event"], api["channel"]) == (
                    "node-b",
                    "shipped",
                    "private-orders",
                )

                # Channel list and members come from the broker: the whole cluster's.
                await here.subscribe("private-orders")
                channels = (await http.get("/console/api/apps/12345/channels")).json()
                assert channels["channels"] == {
                    "presence-room": {"subscription_count": 1, "user_count": 1},
                    "private-orders": {"subscription_count": 2},
                }
                members = await http.get("/console/api/apps/12345/channels/presence-room/members")
                assert members.json() == {"members": [{"user_id": "bea", "user_info": {"n": 1}}]}

                # Stats: B shares its figures through the bulletin every interval (5 s).
                async def both_counted() -> Any:
                    now = (await http.get("/console/api/apps/12345/stats")).json()["now"]
                    return now if now["connections"] == 2 else None

                now = await _until(both_counted)
                assert now["nodes"] == ["node-a", "node-b"]
                assert now["client_events"] >= 1

                # Reverb Pulse: GET /apps/{id}/connections, signed, answered with the same
                # sum (A's own count, B's share).
                with rest(node_a) as sdk:
                    client = sdk._pusher_client
                    request = Request(client, "GET", f"/apps/{APP['id']}/connections", {})
                    pulse = await asyncio.to_thread(client.http.send_request, request)
                assert pulse == {"connections": 2}
            finally:
                await there.close()
                await here.close()
            closed = await stream.expect(
                lambda x: x["type"] == "socket_closed" and x["node"] == "node-b"
            )
            assert closed["socket_id"] == there.socket_id
