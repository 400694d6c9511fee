"""Three ``pusherd serve`` processes with ``driver = "redis"`` behave like one server.

One Redis deployment (``deployment``: a redis-server of the module's own, then TLS,
Sentinel and Redis Cluster), one webhook receiver and three nodes (A, B, C) are shared;
each test uses channels and users of its own. Clients are raw WebSockets, the official
``pusher`` SDK for REST and, in one test, pusher-js. The failure cases (kill -9, Redis
restart, SIGTERM) live in ``test_cluster_failures.py``.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
import pytest_asyncio
from websockets.asyncio.client import connect

from tests.e2e.cluster import (
    APP,
    Client,
    deployment_config,
    launch_js,
    rest,
    start_nodes,
    stop_nodes,
    user_auth,
)
from tests.redis_topology import Topology
from tests.server_process import ServerProcess
from tests.webhook_receiver import WebhookReceiver

__all__: list[str] = []

pytestmark = [pytest.mark.redis, pytest.mark.asyncio(loop_scope="module")]

LIMITED = {"id": "67890", "key": "limited-key", "secret": "limited-secret"}

Open = Callable[..., Awaitable[Client]]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def receiver() -> AsyncIterator[WebhookReceiver]:
    async with WebhookReceiver() as hooks:
        yield hooks


@pytest.fixture(scope="module")
def nodes(deployment: Topology, receiver: WebhookReceiver) -> Iterator[list[ServerProcess]]:
    apps = [
        {**APP, "enable_client_messages": True, "webhooks": [{"url": receiver.url("/hook")}]},
        {**LIMITED, "max_connections": 2},
    ]
    started = start_nodes(deployment_config(deployment, f"node-{n}", apps) for n in "abc")
    yield started
    stop_nodes(started)


@pytest_asyncio.fixture(loop_scope="module")
async def open_client() -> AsyncIterator[Open]:
    """``await open_client(node)``: a connected raw client, closed at teardown."""
    opened: list[Client] = []

    async def open_(node: ServerProcess, app: dict[str, str] = APP) -> Client:
        client = await Client.open(node, app)
        opened.append(client)
        return client

    yield open_
    await asyncio.gather(*(client.close() for client in opened))


@pytest.fixture
def uid() -> str:
    return uuid.uuid4().hex[:8]


def _data(frame: dict[str, Any]) -> Any:
    data = frame["data"]
    return json.loads(data) if isinstance(data, str) else data


def _hooks(receiver: WebhookReceiver, channel: str, name: str) -> list[dict[str, Any]]:
    return [e for e in receiver.events if e.get("channel") == channel and e["name"] == name]


async def _trigger(node: ServerProcess, channel: str, event: str, data: Any, **kw: Any) -> None:
    with rest(node) as client:
        await asyncio.to_thread(client.trigger, channel, event, data, **kw)


async def test_cluster_rest_publish_on_any_node_reaches_every_node(
    nodes: list[ServerProcess], open_client: Open, uid: str
) -> None:
    channel = f"news-{uid}"
    listeners = [await open_client(node) for node in nodes]
    for listener in listeners:
        await listener.subscribe(channel)
    for n, node in enumerate(nodes):
        await _trigger(node, channel, "headline", {"n": n})
    for listener in listeners:
        got = [json.loads((await listener.expect("headline", channel))["data"]) for _ in nodes]
        assert got == [{"n": 0}, {"n": 1}, {"n": 2}]  # one publisher at a time: in order
        await listener.nothing("headline", channel)


async def test_cluster_socket_id_exclusion_works_across_nodes(
    nodes: list[ServerProcess], open_client: Open, uid: str
) -> None:
    a, b, _ = nodes
    channel = f"excl-{uid}"
    sender, other = await open_client(a), await open_client(b)
    await sender.subscribe(channel)
    await other.subscribe(channel)
    await _trigger(b, channel, "echoed", {"n": 1}, socket_id=sender.socket_id)
    await _trigger(b, channel, "marker", {})
    await other.expect("echoed", channel)
    await sender.expect("marker", channel)  # arrives after "echoed" would have
    assert all(frame["event"] != "echoed" for frame in sender.frames)


async def test_cluster_client_events_cross_nodes_once_without_echo(
    nodes: list[ServerProcess], open_client: Open, uid: str
) -> None:
    a, b, c = nodes
    channel = f"private-chat-{uid}"
    sender, peer_b, peer_c = await open_client(a), await open_client(b), await open_client(c)
    for client in (sender, peer_b, peer_c):
        await client.subscribe(channel)
    await sender.send("client-typing", {"n": 1}, channel)
    for peer in (peer_b, peer_c):
        frame = await peer.expect("client-typing", channel)
        assert _data(frame) == {"n": 1}
        await peer.nothing("client-typing", channel)
    await sender.nothing("client-typing", channel, wait=0.1)


async def test_cluster_presence_is_cluster_wide_on_three_nodes(
    nodes: list[ServerProcess], open_client: Open, receiver: WebhookReceiver, uid: str
) -> None:
    a, b, c = nodes
    channel = f"presence-room-{uid}"
    alice_a = await open_client(a)
    first = await alice_a.subscribe(channel, {"user_id": "alice", "user_info": {"on": "a"}})
    assert first["presence"]["ids"] == ["alice"]
    bob_c = await open_client(c)
    second = await bob_c.subscribe(channel, {"user_id": "bob"})
    assert sorted(second["presence"]["ids"]) == ["alice", "bob"]
    assert second["presence"]["hash"]["alice"] == {"on": "a"}
    added = await alice_a.expect("pusher_internal:member_added", channel)
    assert _data(added) == {"user_id": "bob"}
    # alice's second socket, on node B: no member_added anywhere, the first info wins
    alice_b = await open_client(b)
    third = await alice_b.subscribe(channel, {"user_id": "alice", "user_info": {"on": "b"}})
    assert third["presence"]["count"] == 2
    assert third["presence"]["hash"]["alice"] == {"on": "a"}
    await bob_c.nothing("pusher_internal:member_added", channel)
    for node in nodes:
        with rest(node) as client:
            users = await asyncio.to_thread(client.users_info, channel)
            info = await asyncio.to_thread(
                client.channel_info, channel, ["user_count", "subscription_count"]
            )
        assert sorted(user["id"] for user in users["users"]) == ["alice", "bob"]
        assert (info["user_count"], info["subscription_count"]) == (2, 3)
    # alice leaves node A: still present through node B
    await alice_a.close()
    await bob_c.nothing("pusher_internal:member_removed", channel)
    await alice_b.close()
    removed = await bob_c.expect("pusher_internal:member_removed", channel)
    assert _data(removed) == {"user_id": "alice"}
    await receiver.wait_until(lambda: bool(_hooks(receiver, channel, "member_removed")))
    await bob_c.nothing("pusher_internal:member_removed", channel, wait=0.2)
    assert [e["user_id"] for e in _hooks(receiver, channel, "member_added")] == ["alice", "bob"]
    assert [e["user_id"] for e in _hooks(receiver, channel, "member_removed")] == ["alice"]


async def test_cluster_cache_channel_replays_event_published_on_another_node(
    nodes: list[ServerProcess], open_client: Open, uid: str
) -> None:
    a, b, _ = nodes
    channel = f"cache-score-{uid}"
    await _trigger(a, channel, "score", {"home": 2})
    late = await open_client(b)
    await late.subscribe(channel)
    frame = await late.expect("score", channel)
    assert _data(frame) == {"home": 2}


async def test_cluster_rest_queries_agree_on_every_node(
    nodes: list[ServerProcess], open_client: Open, uid: str
) -> None:
    channel, room = f"query-{uid}", f"presence-query-{uid}"
    for n, node in enumerate(nodes):
        client = await open_client(node)
        await client.subscribe(channel)
        await client.subscribe(room, {"user_id": f"user-{n % 2}"})
    answers = []
    for node in nodes:
        with rest(node) as client:
            listed = await asyncio.to_thread(
                client.channels_info, f"presence-query-{uid}", ["user_count"]
            )
            plain = await asyncio.to_thread(client.channel_info, channel, ["subscription_count"])
            users = await asyncio.to_thread(client.users_info, room)
        answers.append((listed, plain, sorted(u["id"] for u in users["users"])))
    assert answers[0] == (
        {"channels": {room: {"user_count": 2}}},
        {"occupied": True, "subscription_count": 3},
        ["user-0", "user-1"],
    )
    assert answers[1] == answers[0] and answers[2] == answers[0]


async def test_cluster_user_channel_subscribe_succeeds_once_the_node_listens_in_redis(
    deployment: Topology, nodes: list[ServerProcess], open_client: Open, uid: str
) -> None:
    # what ``Client.sign_in`` (like pusher-js) relies on before a terminate or
    # send_to_user from another node: signin_success may go out before the node's
    # SUBSCRIBE, the reply to the user channel's subscribe only after it
    user = f"listening-{uid}"
    client = await open_client(nodes[1])
    user_data = json.dumps({"id": user})
    auth = user_auth(client.socket_id, user_data)
    await client.send("pusher:signin", {"auth": auth, "user_data": user_data})
    await client.send("pusher:subscribe", {"channel": f"#server-to-user-{user}", "auth": ""})
    await client.expect("pusher:signin_success")
    await client.expect("pusher_internal:subscription_succeeded", f"#server-to-user-{user}")
    name = f"pusherd:{APP['id']}:#server-to-user-{user}"
    assert await asyncio.to_thread(deployment.listeners, name) == 1


async def test_cluster_terminate_connections_closes_sockets_on_other_nodes(
    nodes: list[ServerProcess], open_client: Open, uid: str
) -> None:
    a, b, c = nodes
    user = f"bad-{uid}"
    on_b, on_c, bystander = await open_client(b), await open_client(c), await open_client(b)
    await on_b.sign_in({"id": user})
    await on_c.sign_in({"id": user})
    with rest(a) as client:
        await asyncio.to_thread(client.terminate_user_connections, user)
    assert await on_b.closed() == 4009
    assert await on_c.closed() == 4009
    await bystander.nothing("pusher:error", wait=0.1)
    assert bystander.ws.close_code is None


async def test_cluster_send_to_user_reaches_sockets_on_other_nodes(
    nodes: list[ServerProcess], open_client: Open, uid: str
) -> None:
    a, b, c = nodes
    user = f"u-{uid}"
    on_b, on_c = await open_client(b), await open_client(c)
    await on_b.sign_in({"id": user})
    await on_c.sign_in({"id": user})
    with rest(a) as client:
        await asyncio.to_thread(client.send_to_user, user, "notice", {"hi": 1})
    for target in (on_b, on_c):
        frame = await target.expect("notice", f"#server-to-user-{user}")
        assert _data(frame) == {"hi": 1}


async def test_cluster_max_connections_is_counted_cluster_wide(
    nodes: list[ServerProcess], open_client: Open
) -> None:
    a, b, _ = nodes
    first = await open_client(a, LIMITED)
    await open_client(b, LIMITED)
    # the third socket of the app, on the second node: over quota (4004)
    url = f"{b.ws_url}/app/{LIMITED['key']}?protocol=7&client=py&version=1"
    async with connect(url, open_timeout=5) as ws:
        client = Client(ws, "", LIMITED["key"])
        assert await client.closed() == 4004
    await first.close()  # a slot frees up cluster-wide

    async def admitted() -> bool:
        async with connect(url, open_timeout=5) as ws:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
            return bool(frame["event"] == "pusher:connection_established")

    for _ in range(50):  # the slot is released in the background: bounded retries
        if await admitted():
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("no slot freed after the first socket closed")


async def test_cluster_watchlist_online_offline_across_nodes(
    nodes: list[ServerProcess], open_client: Open, uid: str
) -> None:
    a, b, _ = nodes
    watcher_id, friend_id = f"w-{uid}", f"f-{uid}"
    watcher = await open_client(a)
    await watcher.sign_in({"id": watcher_id, "watchlist": [friend_id]})
    first = await watcher.expect("pusher_internal:watchlist_events")
    assert _data(first) == {"events": [{"name": "offline", "user_ids": [friend_id]}]}
    friend = await open_client(b)
    await friend.sign_in({"id": friend_id})
    online = await watcher.expect("pusher_internal:watchlist_events")
    assert _data(online) == {"events": [{"name": "online", "user_ids": [friend_id]}]}
    await friend.close()
    offline = await watcher.expect("pusher_internal:watchlist_events")
    assert _data(offline) == {"events": [{"name": "offline", "user_ids": [friend_id]}]}


async def test_cluster_webhooks_occupied_and_vacated_once_cluster_wide(
    nodes: list[ServerProcess],
    open_client: Open,
    receiver: WebhookReceiver,
    deployment: Topology,
    uid: str,
) -> None:
    a, b, c = nodes
    channel = f"hooked-{uid}"
    on_a, on_b, on_c = await open_client(a), await open_client(b), await open_client(c)
    for client in (on_a, on_b, on_c):
        await client.subscribe(channel)
    await receiver.wait_until(lambda: bool(_hooks(receiver, channel, "channel_occupied")))
    await on_a.close()
    await on_b.close()
    await on_c.nothing("pusher:error", wait=0.3)  # time for a wrong vacated to show up
    assert _hooks(receiver, channel, "channel_vacated") == []
    await on_c.close()
    await receiver.wait_until(lambda: bool(_hooks(receiver, channel, "channel_vacated")))
    await asyncio.sleep(0.2)  # a duplicate would arrive within the 10 ms batch window
    assert len(_hooks(receiver, channel, "channel_occupied")) == 1
    assert len(_hooks(receiver, channel, "channel_vacated")) == 1
    # no node keeps a Redis subscription for a channel it no longer serves
    name = f"pusherd:{APP['id']}:{channel}"
    for _ in range(100):
        listeners = await asyncio.to_thread(deployment.listeners, name)
        if listeners == 0:
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError(f"{listeners} nodes still subscribed to {channel}")


async def test_cluster_pusher_js_clients_on_two_nodes_share_presence_and_events(
    nodes: list[ServerProcess], uid: str
) -> None:
    a, b, _ = nodes
    channel = f"presence-js-{uid}"
    ann = await launch_js(a, "ann", user={"id": "ann"})
    ben = await launch_js(b, "ben", user={"id": "ben"})
    try:
        await ann.connected()
        await ben.connected()
        await ann.subscribe(channel)
        await ann.subscribed(channel)
        await ben.subscribe(channel)
        joined = await ben.subscribed(channel)
        assert joined["data"]["count"] == 2
        added = await ann.event(channel, "pusher:member_added")
        assert added["data"]["id"] == "ben"
        await _trigger(a, channel, "greeting", {"text": "hello"})
        for client in (ann, ben):
            got = await client.event(channel, "greeting")
            assert got["data"] == {"text": "hello"}
        await ben.close()
        removed = await ann.event(channel, "pusher:member_removed")
        assert removed["data"]["id"] == "ben"
    finally:
        await asyncio.gather(ann.close(), ben.close())


async def test_cluster_node_keeps_its_redis_subscription_through_a_quick_resubscribe(
    nodes: list[ServerProcess], open_client: Open, deployment: Topology, uid: str
) -> None:
    a = nodes[0]
    channel = f"reload-{uid}"
    name = f"pusherd:{APP['id']}:{channel}"

    async def listeners() -> int:
        return await asyncio.to_thread(deployment.listeners, name)

    async def vacated() -> None:
        with rest(a) as client:
            for _ in range(100):  # bounded: the node handles the close within milliseconds
                info = await asyncio.to_thread(client.channel_info, channel)
                if not info["occupied"]:
                    return
                await asyncio.sleep(0.02)
        raise AssertionError(f"{channel} still occupied")

    first = await open_client(a)
    await first.subscribe(channel)
    assert await listeners() == 1
    await first.close()
    await vacated()
    # a page reload: the channel is empty now, yet the node is still listening
    assert await listeners() == 1
    second = await open_client(a)
    await second.subscribe(channel)
    await _trigger(nodes[1], channel, "after-reload", {"ok": True})
    assert _data(await second.expect("after-reload", channel)) == {"ok": True}
    await second.close()
    await vacated()
    for _ in range(200):  # bounded, 4 s: the delayed unsubscribe is 1 s
        if await listeners() == 0:
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError(f"node still subscribed to {channel}")
