"""Presence, cache channels, client events, sign-in, watchlist and their webhooks."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from typing import Any

from pusherd.apps.base import WebhookTarget
from pusherd.config import WebhookSettings
from tests.server.conftest import (
    APP,
    Client,
    Running,
    make_config,
    private_auth,
    serve,
    user_auth,
)
from tests.webhook_receiver import WebhookReceiver


async def join(
    client: Client, channel: str, user_id: object, info: object = None
) -> dict[str, Any]:
    socket_id = client.socket_id or await client.established()
    member: dict[str, object] = {"user_id": user_id}
    if info is not None:
        member["user_info"] = info
    data = json.dumps(member)
    return await client.subscribe(channel, private_auth(socket_id, channel, data), data)


async def signin(client: Client, user: dict[str, Any]) -> None:
    socket_id = client.socket_id or await client.established()
    user_data = json.dumps(user)
    await client.send(
        "pusher:signin", {"auth": user_auth(socket_id, user_data), "user_data": user_data}
    )
    message = await client.recv()
    assert message == {"event": "pusher:signin_success", "data": {"user_data": user_data}}


async def test_presence_subscription_includes_self_and_existing_members(running: Running) -> None:
    async with Client.open(running.url()) as a, Client.open(running.url()) as b:
        first = await join(a, "presence-room", 1, {"name": "Ann"})
        assert first["event"] == "pusher_internal:subscription_succeeded"
        assert json.loads(first["data"]) == {
            "presence": {"ids": ["1"], "hash": {"1": {"name": "Ann"}}, "count": 1}
        }
        second = await join(b, "presence-room", "2", {"name": "Bob"})
        presence = json.loads(second["data"])["presence"]
        assert presence["count"] == 2
        assert presence["hash"] == {"1": {"name": "Ann"}, "2": {"name": "Bob"}}
        added = await a.recv()
        assert added == {
            "event": "pusher_internal:member_added",
            "channel": "presence-room",
            "data": json.dumps(
                {"user_id": "2", "user_info": {"name": "Bob"}}, separators=(",", ":")
            ),
        }
        await b.nothing()


async def test_presence_member_events_fire_on_first_and_last_socket_only(
    running: Running,
) -> None:
    async with Client.open(running.url()) as watcher:
        await join(watcher, "presence-tabs", "w")
        async with Client.open(running.url()) as tab1:
            await join(tab1, "presence-tabs", "u")
            assert (await watcher.recv())["event"] == "pusher_internal:member_added"
            async with Client.open(running.url()) as tab2:
                await join(tab2, "presence-tabs", "u")
                await tab1.nothing()
                await watcher.nothing()
            await watcher.nothing()
        removed = await watcher.recv()
        assert removed == {
            "event": "pusher_internal:member_removed",
            "channel": "presence-tabs",
            "data": '{"user_id":"u"}',
        }


async def test_presence_unsubscribe_removes_member(running: Running) -> None:
    async with Client.open(running.url()) as a, Client.open(running.url()) as b:
        await join(a, "presence-u", "a")
        await join(b, "presence-u", "b")
        await a.recv()  # member_added b
        await b.send("pusher:unsubscribe", {"channel": "presence-u"})
        assert (await a.recv())["event"] == "pusher_internal:member_removed"
        assert await running.parts.broker.members(APP.id, "presence-u") == {"a": None}


async def test_presence_channel_full_refuses_new_users_but_not_known_ones() -> None:
    async with serve(make_config(replace(APP, max_presence_members=1))) as r:
        async with Client.open(r.url()) as a, Client.open(r.url()) as b, Client.open(r.url()) as a2:
            await join(a, "presence-full", "a")
            refused = await join(b, "presence-full", "b")
            assert refused["event"] == "pusher:subscription_error"
            assert refused["data"]["status"] == 403
            assert (await b.recv())["data"]["code"] == 4100
            same_user = await join(a2, "presence-full", "a")
            assert same_user["event"] == "pusher_internal:subscription_succeeded"


async def test_presence_with_signed_in_user_needs_no_channel_data(running: Running) -> None:
    async with Client.open(running.url()) as client:
        await signin(client, {"id": "55", "user_info": {"name": "Sig"}})
        auth = private_auth(client.socket_id, "presence-s")
        message = await client.subscribe("presence-s", auth)
        assert json.loads(message["data"])["presence"]["hash"] == {"55": {"name": "Sig"}}


async def test_private_subscription_with_bad_auth_keeps_the_socket(running: Running) -> None:
    async with Client.open(running.url()) as client:
        socket_id = await client.established()
        error = await client.subscribe("private-x", "app-key:deadbeef")
        assert error["event"] == "pusher:subscription_error"
        assert error["channel"] == "private-x"
        assert error["data"]["type"] == "AuthError"
        assert error["data"]["status"] == 401
        detail = await client.recv()
        assert detail["event"] == "pusher:error"
        assert detail["data"]["message"].startswith("Invalid signature")
        ok = await client.subscribe("private-x", private_auth(socket_id, "private-x"))
        assert ok["event"] == "pusher_internal:subscription_succeeded"


async def test_cache_channel_replays_last_event_or_sends_cache_miss(running: Running) -> None:
    async with Client.open(running.url()) as client:
        await client.established()
        await client.subscribe("cache-empty")
        assert await client.recv() == {
            "event": "pusher:cache_miss",
            "channel": "cache-empty",
            "data": "{}",
        }
        await asyncio.to_thread(running.sdk().trigger, "cache-full", "price", {"v": 1})
        await asyncio.to_thread(running.sdk().trigger, "cache-full", "price", {"v": 2})
        await client.subscribe("cache-full")
        assert await client.recv() == {
            "event": "price",
            "channel": "cache-full",
            "data": '{"v": 2}',
        }


async def test_a_joining_member_hears_nobody_join_before_its_own_member_list(
    running: Running,
) -> None:
    # On Redis, alice's member_added is still in pub/sub when bob subscribes right after
    # her: it used to reach bob first, and pusher-js (and Echo's joining) took alice for
    # someone new before the list that already had her.
    for round_ in range(20):
        channel = f"presence-back-to-back-{round_}"
        async with Client.open(running.url()) as a, Client.open(running.url()) as b:
            await join(a, channel, "alice")
            ok = await join(b, channel, "bob")
            assert ok["event"] == "pusher_internal:subscription_succeeded"
            assert json.loads(ok["data"])["presence"]["ids"] == ["alice", "bob"]
            assert await a.recv() == {
                "event": "pusher_internal:member_added",
                "channel": channel,
                "data": '{"user_id":"bob"}',
            }
            await a.send("client-ping", {}, channel=channel)  # bob's next message
            assert (await b.recv())["event"] == "client-ping"


async def test_client_events_reach_others_with_user_id_and_are_not_echoed(
    running: Running,
) -> None:
    async with Client.open(running.url()) as a, Client.open(running.url()) as b:
        await join(a, "presence-chat", "alice")
        await join(b, "presence-chat", "bob")
        await a.recv()  # member_added bob
        await a.send("client-typing", {"who": "alice"}, channel="presence-chat")
        assert await b.recv() == {
            "event": "client-typing",
            "channel": "presence-chat",
            "data": {"who": "alice"},
            "user_id": "alice",
        }
        await a.nothing()


async def test_client_events_refused_on_public_channels_and_when_not_subscribed(
    running: Running,
) -> None:
    async with Client.open(running.url()) as a:
        await a.established()
        await a.subscribe("public")
        await a.send("client-x", {}, channel="public")
        assert "private and presence" in (await a.recv())["data"]["message"]
        await a.send("client-x", {}, channel="private-other")
        assert (await a.recv())["data"]["message"] == (
            "Cannot broadcast client event (connection not subscribed to channel private-other)"
        )


async def test_client_event_rate_limit_answers_4301_and_keeps_socket(running: Running) -> None:
    async with Client.open(running.url()) as a, Client.open(running.url()) as b:
        socket_a = await a.established()
        socket_b = await b.established()
        await a.subscribe("private-r", private_auth(socket_a, "private-r"))
        await b.subscribe("private-r", private_auth(socket_b, "private-r"))
        for index in range(12):
            await a.send("client-n", {"i": index}, channel="private-r")
        received = [await b.recv() for _ in range(10)]
        assert [m["data"]["i"] for m in received] == list(range(10))
        errors = [await a.recv() for _ in range(2)]
        assert all(e["data"]["code"] == 4301 for e in errors)
        await b.nothing()


async def test_subscription_count_is_sent_to_subscribers_when_enabled() -> None:
    async with serve(make_config(replace(APP, subscription_count=True))) as r:
        async with Client.open(r.url()) as a, Client.open(r.url()) as b:
            await a.established()
            await b.established()
            await a.subscribe("counted")
            assert json.loads((await a.recv())["data"]) == {"subscription_count": 1}
            await b.subscribe("counted")
            for client in (a, b):
                message = await client.recv()
                assert message["event"] == "pusher_internal:subscription_count"
                assert json.loads(message["data"]) == {"subscription_count": 2}


async def test_server_to_user_channel_only_for_the_signed_in_user(running: Running) -> None:
    async with Client.open(running.url()) as client:
        await client.established()
        refused = await client.subscribe("#server-to-user-9")
        assert refused["event"] == "pusher:subscription_error"
        await client.recv()
        await signin(client, {"id": "9"})
        ok = await client.subscribe("#server-to-user-9")
        assert ok["event"] == "pusher_internal:subscription_succeeded"


async def test_watchlist_reports_online_and_offline_changes(running: Running) -> None:
    async with Client.open(running.url()) as watcher:
        await signin(watcher, {"id": "w", "watchlist": ["friend", "other"]})
        initial = await watcher.recv()
        assert initial == {
            "event": "pusher_internal:watchlist_events",
            "data": json.dumps(
                {"events": [{"name": "offline", "user_ids": ["friend", "other"]}]},
                separators=(",", ":"),
            ),
        }
        async with Client.open(running.url()) as friend:
            await signin(friend, {"id": "friend"})
            online = json.loads((await watcher.recv())["data"])
            assert online == {"events": [{"name": "online", "user_ids": ["friend"]}]}
        offline = json.loads((await watcher.recv())["data"])
        assert offline == {"events": [{"name": "offline", "user_ids": ["friend"]}]}


async def test_user_authentication_required_closes_unauthorized_sockets_with_4009() -> None:
    app = replace(APP, enable_user_authentication=True, user_authentication_timeout=0.0)
    async with serve(make_config(app)) as r, Client.open(r.url()) as client:
        await client.established()
        r.parts.sockets.sweep(r.parts.clock() + 1)
        assert (await client.recv())["data"]["code"] == 4009
        assert (await client.closed())[0] == 4009


async def test_webhooks_page_refresh_sends_neither_vacated_nor_occupied() -> None:
    async with WebhookReceiver() as receiver:
        app = replace(APP, webhooks=(WebhookTarget(url=receiver.url("/hook")),))
        config = make_config(app, webhooks=WebhookSettings(delay=0.5))
        async with serve(config) as r:
            async with Client.open(r.url()) as first:
                await join(first, "presence-page", "u1")
                events = await receiver.wait_for_events(2)
                assert sorted(e["name"] for e in events) == ["channel_occupied", "member_added"]
            async with Client.open(r.url()) as again:  # the refresh: gone and back quickly
                await join(again, "presence-page", "u1")
                await asyncio.sleep(0.8)  # past the webhook delay: nothing may arrive
                assert len(receiver.events) == 2
            gone = await receiver.wait_for_events(4)
            assert sorted(e["name"] for e in gone[2:]) == ["channel_vacated", "member_removed"]


async def test_webhooks_client_event_carries_socket_and_user(running: Running) -> None:
    async with WebhookReceiver() as receiver:
        app = replace(
            APP,
            webhooks=(
                WebhookTarget(url=receiver.url("/h"), event_types=frozenset({"client_event"})),
            ),
        )
        async with serve(make_config(app)) as r:
            async with Client.open(r.url()) as a, Client.open(r.url()) as b:
                await join(a, "presence-w", "a")
                await join(b, "presence-w", "b")
                await a.send("client-hi", {"x": 1}, channel="presence-w")
                (event,) = await receiver.wait_for_events(1)
                assert event["name"] == "client_event"
                assert event["event"] == "client-hi"
                assert json.loads(event["data"]) == {"x": 1}
                assert event["socket_id"] == a.socket_id
                assert event["user_id"] == "a"


async def test_webhooks_a_failing_receiver_does_not_delay_websocket_delivery() -> None:
    async with WebhookReceiver() as receiver:
        receiver.delay = 3.0  # every webhook POST hangs for 3 s
        app = replace(
            APP,
            max_client_events_per_second=100,
            webhooks=(WebhookTarget(url=receiver.url("/slow")),),
        )
        async with serve(make_config(app)) as r:
            async with Client.open(r.url()) as a, Client.open(r.url()) as b:
                await join(a, "presence-busy", "a")
                await join(b, "presence-busy", "b")
                await a.recv()  # member_added b
                for index in range(20):
                    await a.send("client-n", {"i": index}, channel="presence-busy")
                    await asyncio.to_thread(r.sdk().trigger, "presence-busy", "rest", index)
                    # both arrive long before the first webhook POST has been answered
                    assert (await b.recv(timeout=1.0))["data"] == {"i": index}
                    assert (await b.recv(timeout=1.0))["event"] == "rest"
                    await a.recv(timeout=1.0)
                assert not [q for q in receiver.requests if q.ok]
