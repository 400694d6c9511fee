"""Two pusherd clusters with different ``[scaling] prefix`` share one redis-server.

Both clusters (blue: nodes A and B, green: nodes C and D) serve the same app ids, keys and
channel names; nothing of one must reach the other: events, presence, counts, webhooks.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio
from redis.asyncio import Redis

from tests.e2e.cluster import APP, Client, node_config, rest, start_nodes, stop_nodes
from tests.redis_server import RedisServer
from tests.server_process import ServerProcess
from tests.webhook_receiver import WebhookReceiver

__all__: list[str] = []

pytestmark = [pytest.mark.redis, pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def receivers() -> AsyncIterator[dict[str, WebhookReceiver]]:
    async with WebhookReceiver() as blue, WebhookReceiver() as green:
        yield {"blue": blue, "green": green}


@pytest.fixture(scope="module")
def clusters(
    redis_server: RedisServer, receivers: dict[str, WebhookReceiver]
) -> Iterator[dict[str, list[ServerProcess]]]:
    configs = []
    for prefix in ("blue", "green"):
        apps = [{**APP, "webhooks": [{"url": receivers[prefix].url("/hook")}]}]
        # the same node ids in both clusters too: only the prefix tells them apart
        configs += [node_config(redis_server.url, f"node-{n}", apps, prefix=prefix) for n in "12"]
    started = start_nodes(configs)
    yield {"blue": started[:2], "green": started[2:]}
    stop_nodes(started)


def _hooks(receiver: WebhookReceiver, channel: str) -> list[tuple[str, str]]:
    return [
        (event["name"], event.get("user_id", ""))
        for event in receiver.events
        if event.get("channel") == channel
    ]


async def test_cluster_prefixes_share_one_redis_without_crosstalk(
    clusters: dict[str, list[ServerProcess]],
    receivers: dict[str, WebhookReceiver],
    redis_server: RedisServer,
) -> None:
    blue_a, blue_b = clusters["blue"]
    green_c, green_d = clusters["green"]
    room = f"presence-room-{uuid.uuid4().hex[:8]}"
    clients: list[Client] = []
    try:
        for node in (blue_a, blue_b, green_c, green_d):
            clients.append(await Client.open(node))
        blue_1, blue_2, green_1, green_2 = clients
        joined = await blue_1.subscribe(room, {"user_id": "blue-user"})
        assert joined["presence"]["ids"] == ["blue-user"]
        joined = await green_1.subscribe(room, {"user_id": "green-user"})
        assert joined["presence"]["ids"] == ["green-user"]  # not blue's member
        joined = await blue_2.subscribe(room, {"user_id": "blue-user-2"})
        assert sorted(joined["presence"]["ids"]) == ["blue-user", "blue-user-2"]
        joined = await green_2.subscribe(room, {"user_id": "green-user"})
        assert joined["presence"]["ids"] == ["green-user"]
        await blue_1.expect("pusher_internal:member_added", room)
        await green_1.nothing("pusher_internal:member_added", room)

        with rest(blue_a) as client:
            await asyncio.to_thread(client.trigger, room, "news", {"for": "blue"})
        with rest(green_d) as client:
            await asyncio.to_thread(client.trigger, room, "news", {"for": "green"})
        for client, colour in zip(clients, ("blue", "blue", "green", "green"), strict=True):
            frame = await client.expect("news", room)
            assert json.loads(frame["data"]) == {"for": colour}
        for client in clients:
            await client.nothing("news", room)

        for node, users, subs in ((blue_b, 2, 2), (green_c, 1, 2)):
            with rest(node) as client:
                info = await asyncio.to_thread(
                    client.channel_info, room, ["user_count", "subscription_count"]
                )
            assert (info["user_count"], info["subscription_count"]) == (users, subs)
    finally:
        await asyncio.gather(*(client.close() for client in clients))
    await receivers["blue"].wait_until(
        lambda: ("channel_vacated", "") in _hooks(receivers["blue"], room)
    )
    await receivers["green"].wait_until(
        lambda: ("channel_vacated", "") in _hooks(receivers["green"], room)
    )
    expected: dict[str, list[tuple[str, str]]] = {
        "blue": [
            ("channel_occupied", ""),
            ("member_added", "blue-user"),
            ("member_added", "blue-user-2"),
            ("channel_vacated", ""),
            ("member_removed", "blue-user"),
            ("member_removed", "blue-user-2"),
        ],
        "green": [
            ("channel_occupied", ""),
            ("member_added", "green-user"),
            ("channel_vacated", ""),
            ("member_removed", "green-user"),
        ],
    }
    await asyncio.sleep(0.2)  # a stray or duplicate webhook would arrive within this
    for colour, want in expected.items():
        assert sorted(_hooks(receivers[colour], room)) == sorted(want), colour
    async with Redis.from_url(redis_server.url) as raw:
        names: list[Any] = [name async for name in raw.scan_iter(count=1000)]
    assert names and all(name.split(b":", 1)[0] in {b"blue", b"green"} for name in names)
