"""pusher-js 8.6 (the Node build, unchanged) against the server, with the Python SDK as backend.

Every test names the PROTOCOL.md section it holds the server to. Wire shapes are checked on the
frames the client actually received (``recv``), behaviour on what pusher-js emitted (``event``).
Absence ("B never got X") is checked with a barrier: a later event on the same connection,
which the server must deliver after X would have been.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pusher
import pytest

from tests.server_process import ServerProcess

from .conftest import APP, COUNT_APP, DISABLED_APP, SERVER_CONFIG, Launch, NodeClient

pytestmark = pytest.mark.node


async def _subscribed_client(launch: Launch, channel: str, **spec: Any) -> NodeClient:
    client = await launch(**spec)
    await client.subscribe(channel)
    await client.subscribed(channel)
    return client


def _error_data(frame: dict[str, Any]) -> dict[str, Any]:
    data = frame.get("data")
    parsed = json.loads(data) if isinstance(data, str) else data
    assert isinstance(parsed, dict), f"pusher:error data must be an object: {frame}"
    return parsed


async def _barrier(sdk: pusher.Pusher, channel: str, *clients: NodeClient) -> None:
    """Trigger a marker event on ``channel`` and await it on every client."""
    sdk.trigger(channel, "barrier", {"barrier": True})
    for client in clients:
        await client.event(channel, "barrier")


# -- connection (§1.3) -------------------------------------------------------------------------


async def test_pusher_js_connects_with_valid_socket_id(launch: Launch) -> None:
    client = await launch()
    socket_id = await client.connected()
    assert re.fullmatch(r"\d+\.\d+", socket_id), socket_id
    assert (await client.send("state"))["state"] == "connected"
    # §1.3: the first frame is connection_established with double-encoded data.
    first = next(line for line in client.events if line["t"] == "ws_recv")
    msg = first["msg"]
    assert msg["event"] == "pusher:connection_established"
    assert isinstance(msg["data"], str), "connection_established data must be a JSON string"
    data = json.loads(msg["data"])
    assert data["socket_id"] == socket_id
    assert isinstance(data["activity_timeout"], int) and data["activity_timeout"] > 0
    if client.target.server is not None:
        assert data["activity_timeout"] == 120, "the configured [server] activity_timeout"


async def test_pusher_js_socket_ids_are_unique(launch: Launch) -> None:
    first = await launch()
    second = await launch()
    assert await first.connected() != await second.connected()


async def test_pusher_js_ping_gets_pong(launch: Launch) -> None:
    """§1.4: pusher-js pings after activityTimeout of silence; the server must answer."""
    client = await launch(options={"activityTimeout": 300, "pongTimeout": 3000})
    await client.connected()
    await client.expect(lambda e: e["msg"]["event"] == "pusher:ping", t="ws_send")
    await client.recv("pusher:pong")
    # A second round proves the connection stayed up (no pong timeout, no reconnect).
    await client.expect(lambda e: e["msg"]["event"] == "pusher:ping", t="ws_send")
    await client.recv("pusher:pong")
    assert client.seen(t="ws_close") == []
    assert len(client.seen(t="ws_connecting")) == 1


# -- public channels and the REST trigger (§1.2, §1.16) ----------------------------------------


async def test_public_channel_receives_sdk_event_with_object_data(
    launch: Launch, sdk: pusher.Pusher, uid: str
) -> None:
    channel = f"orders-{uid}"
    client = await _subscribed_client(launch, channel)
    payload = {"id": 7, "items": ["a", "b"], "nested": {"price": 1.5, "ok": True}, "name": "é/ü"}
    assert sdk.trigger(channel, "order-shipped", payload) == {}
    line = await client.event(channel, "order-shipped")
    assert line["data"] == payload


async def test_public_channel_relays_data_string_verbatim(
    launch: Launch, sdk: pusher.Pusher, uid: str
) -> None:
    channel = f"verbatim-{uid}"
    client = await _subscribed_client(launch, channel)
    raw = '{"spaced" :  true,   "n": 1.50}'
    sdk.trigger(channel, "raw", raw)
    frame = await client.recv("raw", channel)
    assert frame["data"] == raw, "§1.2: REST event data must be relayed verbatim as a string"
    assert set(frame) <= {"event", "channel", "data"}


async def test_socket_id_exclusion_skips_only_that_client(
    launch: Launch, sdk: pusher.Pusher, uid: str
) -> None:
    channel = f"excl-{uid}"
    sender = await _subscribed_client(launch, channel)
    other = await _subscribed_client(launch, channel)
    sender_id = await sender.connected()
    sdk.trigger(channel, "excluded", {"n": 1}, socket_id=sender_id)
    await other.event(channel, "excluded")
    await _barrier(sdk, channel, sender, other)
    assert sender.seen(t="event", channel=channel, event="excluded") == []


async def test_trigger_to_multiple_channels_reaches_each(
    launch: Launch, sdk: pusher.Pusher, uid: str
) -> None:
    one, two, three = f"multi1-{uid}", f"multi2-{uid}", f"multi3-{uid}"
    client = await launch()
    for channel in (one, two):
        await client.subscribe(channel)
        await client.subscribed(channel)
    sdk.trigger([one, two, three], "fanout", {"k": "v"})
    for channel in (one, two):
        assert (await client.event(channel, "fanout"))["data"] == {"k": "v"}


async def test_trigger_batch_delivers_every_event(
    launch: Launch, sdk: pusher.Pusher, uid: str
) -> None:
    one, two = f"batch1-{uid}", f"batch2-{uid}"
    client = await launch()
    for channel in (one, two):
        await client.subscribe(channel)
        await client.subscribed(channel)
    result = sdk.trigger_batch(
        [
            {"channel": one, "name": "first", "data": {"n": 1}},
            {"channel": two, "name": "second", "data": {"n": 2}},
            {"channel": one, "name": "third", "data": "plain text"},
        ]
    )
    assert result == {}
    assert (await client.event(one, "first"))["data"] == {"n": 1}
    assert (await client.event(two, "second"))["data"] == {"n": 2}
    assert (await client.event(one, "third"))["data"] == "plain text"


async def test_unsubscribed_client_stops_receiving(
    launch: Launch, sdk: pusher.Pusher, uid: str
) -> None:
    gone, kept = f"gone-{uid}", f"kept-{uid}"
    client = await launch()
    for channel in (gone, kept):
        await client.subscribe(channel)
        await client.subscribed(channel)
    await client.send("unsubscribe", channel=gone)
    # Pusher has no unsubscribe acknowledgement; a ping answered on the same socket
    # proves the server has processed the unsubscribe before the backend publishes.
    await client.send("send_event", event="pusher:ping", data={})
    await client.recv("pusher:pong")
    sdk.trigger(gone, "late", {})
    sdk.trigger(kept, "barrier", {})
    await client.event(kept, "barrier")
    assert client.received("late", gone) == []


# -- private channels (§1.7) -------------------------------------------------------------------


async def test_private_channel_subscribes_with_valid_auth(
    launch: Launch, sdk: pusher.Pusher, uid: str
) -> None:
    channel = f"private-acct-{uid}"
    client = await _subscribed_client(launch, channel)
    frame = await client.recv("pusher_internal:subscription_succeeded", channel)
    assert frame["channel"] == channel
    sdk.trigger(channel, "secret", {"s": 1})
    assert (await client.event(channel, "secret"))["data"] == {"s": 1}


async def test_private_channel_bad_auth_gives_subscription_error_and_keeps_socket(
    launch: Launch, sdk: pusher.Pusher, uid: str
) -> None:
    bad, public = f"private-bad-{uid}", f"after-bad-{uid}"
    client = await launch()
    await client.connected()
    await client.subscribe(bad, bad=True)
    # §1.7 recommendation: the server answers on the channel (Echo's .error() hears it).
    frame = await client.recv("pusher:subscription_error", bad)
    data = json.loads(frame["data"]) if isinstance(frame["data"], str) else frame["data"]
    assert data["type"] == "AuthError" and data["status"] == 401 and data["error"], data
    await client.event(bad, "pusher:subscription_error")
    # The socket stays open: a later subscribe works and events flow.
    await client.subscribe(public)
    await client.subscribed(public)
    sdk.trigger(public, "still-alive", {})
    await client.event(public, "still-alive")
    assert client.seen(t="ws_close") == []
    sdk.trigger(bad, "leak", {})
    await _barrier(sdk, public, client)
    assert client.received("leak", bad) == [], "a refused subscription must not receive events"


# -- presence channels (§1.8) ------------------------------------------------------------------


ALICE = {"id": "1", "user_info": {"name": "Alice/Ä"}}
BOB = {"id": "2", "user_info": {"name": "Bob"}}


async def test_presence_members_see_each_other(launch: Launch, uid: str) -> None:
    channel = f"presence-room-{uid}"
    alice = await _subscribed_client(launch, channel, user=ALICE)
    first = await alice.recv("pusher_internal:subscription_succeeded", channel)
    assert isinstance(first["data"], str), "§1.8: presence data is a JSON string"
    presence = json.loads(first["data"])["presence"]
    assert presence == {"ids": ["1"], "hash": {"1": {"name": "Alice/Ä"}}, "count": 1}

    bob = await _subscribed_client(launch, channel, user=BOB)
    members = await bob.send("members", channel=channel)
    assert members["count"] == 2
    assert members["me"] == {"id": "2", "info": {"name": "Bob"}}
    assert members["members"] == {"1": {"name": "Alice/Ä"}, "2": {"name": "Bob"}}

    added = await alice.event(channel, "pusher:member_added")
    assert added["data"] == {"id": "2", "info": {"name": "Bob"}}
    frame = await alice.recv("pusher_internal:member_added", channel)
    assert json.loads(frame["data"]) == {"user_id": "2", "user_info": {"name": "Bob"}}
    assert (await alice.send("members", channel=channel))["count"] == 2

    await bob.close()
    removed = await alice.event(channel, "pusher:member_removed")
    assert removed["data"]["id"] == "2"
    frame = await alice.recv("pusher_internal:member_removed", channel)
    assert json.loads(frame["data"]) == {"user_id": "2"}
    assert (await alice.send("members", channel=channel))["count"] == 1


async def test_presence_member_leaves_on_unsubscribe(launch: Launch, uid: str) -> None:
    channel = f"presence-unsub-{uid}"
    alice = await _subscribed_client(launch, channel, user=ALICE)
    bob = await _subscribed_client(launch, channel, user=BOB)
    await alice.event(channel, "pusher:member_added")
    await bob.send("unsubscribe", channel=channel)
    removed = await alice.event(channel, "pusher:member_removed")
    assert removed["data"]["id"] == "2"


async def test_presence_member_removed_when_client_drops_without_close(
    launch: Launch, uid: str
) -> None:
    channel = f"presence-drop-{uid}"
    alice = await _subscribed_client(launch, channel, user=ALICE)
    bob = await _subscribed_client(launch, channel, user=BOB)
    await alice.event(channel, "pusher:member_added")
    await bob.kill()
    removed = await alice.event(channel, "pusher:member_removed", timeout=10)
    assert removed["data"]["id"] == "2"


async def test_presence_numeric_user_id(launch: Launch, sdk: pusher.Pusher, uid: str) -> None:
    """§1.8: channel_data may carry a numeric user_id; ids are compared as strings."""
    channel = f"presence-numeric-{uid}"
    first = await _subscribed_client(launch, channel, user={"id": 10})
    sent = first.seen(lambda e: e["msg"]["event"] == "pusher:subscribe", t="ws_send")
    assert '"user_id":10' in sent[0]["msg"]["data"]["channel_data"]
    second = await _subscribed_client(launch, channel, user={"id": 10})
    assert (await second.send("members", channel=channel))["count"] == 1
    assert sdk.users_info(channel) == {"users": [{"id": "10"}]}


async def test_presence_user_with_two_connections_is_one_member(
    launch: Launch, sdk: pusher.Pusher, uid: str
) -> None:
    channel = f"presence-multi-{uid}"
    alice = await _subscribed_client(launch, channel, user=ALICE)
    bob1 = await _subscribed_client(launch, channel, user=BOB)
    await alice.recv("pusher_internal:member_added", channel)
    bob2 = await _subscribed_client(launch, channel, user=BOB)
    assert (await bob2.send("members", channel=channel))["count"] == 2
    await _barrier(sdk, channel, alice)
    assert len(alice.received("pusher_internal:member_added", channel)) == 1, (
        "§1.8: member_added only for the user's first connection"
    )

    await bob1.close()
    assert {u["id"] for u in sdk.users_info(channel)["users"]} == {"1", "2"}
    await _barrier(sdk, channel, alice)
    assert alice.received("pusher_internal:member_removed", channel) == [], (
        "§1.8: member_removed only when the user's last connection leaves"
    )

    await bob2.close()
    frame = await alice.recv("pusher_internal:member_removed", channel)
    assert json.loads(frame["data"]) == {"user_id": "2"}
    await _barrier(sdk, channel, alice)
    assert len(alice.received("pusher_internal:member_removed", channel)) == 1


async def test_presence_users_api_and_user_count_agree(
    launch: Launch, sdk: pusher.Pusher, uid: str
) -> None:
    channel = f"presence-count-{uid}"
    await _subscribed_client(launch, channel, user=ALICE)
    await _subscribed_client(launch, channel, user=BOB)
    last = await _subscribed_client(launch, channel, user=BOB)
    assert (await last.send("members", channel=channel))["count"] == 2
    users = sdk.users_info(channel)
    assert sorted(users["users"], key=lambda u: u["id"]) == [{"id": "1"}, {"id": "2"}]
    info = sdk.channel_info(channel, ["user_count"])
    assert info == {"occupied": True, "user_count": 2}
    listing = sdk.channels_info("presence-count-", ["user_count"])
    assert listing["channels"][channel] == {"user_count": 2}


# -- client events (§1.12) ---------------------------------------------------------------------


async def test_client_event_reaches_other_subscriber_not_sender(
    launch: Launch, sdk: pusher.Pusher, uid: str
) -> None:
    channel = f"private-chat-{uid}"
    sender = await _subscribed_client(launch, channel)
    other = await _subscribed_client(launch, channel)
    result = await sender.send("trigger", channel=channel, event="client-typing", data={"on": 1})
    assert result is True
    line = await other.event(channel, "client-typing")
    assert line["data"] == {"on": 1}
    frame = await other.recv("client-typing", channel)
    assert "user_id" not in frame, "user_id is only added on presence channels"
    await _barrier(sdk, channel, sender)
    assert sender.received("client-typing", channel) == [], "§1.12: never echoed to the sender"


async def test_client_event_on_presence_carries_user_id(
    launch: Launch, sdk: pusher.Pusher, uid: str
) -> None:
    channel = f"presence-chat-{uid}"
    alice = await _subscribed_client(launch, channel, user=ALICE)
    bob = await _subscribed_client(launch, channel, user=BOB)
    await alice.send("trigger", channel=channel, event="client-typing", data={"typing": True})
    line = await bob.event(channel, "client-typing")
    assert line["data"] == {"typing": True}
    assert line["metadata"] == {"user_id": "1"}
    frame = await bob.recv("client-typing", channel)
    assert frame["user_id"] == "1"
    await _barrier(sdk, channel, alice)
    assert alice.received("client-typing", channel) == []


async def test_client_event_on_public_channel_is_refused(
    launch: Launch, sdk: pusher.Pusher, uid: str
) -> None:
    channel = f"public-chat-{uid}"
    sender = await _subscribed_client(launch, channel)
    other = await _subscribed_client(launch, channel)
    await sender.send("trigger", channel=channel, event="client-typing", data={"x": 1})
    error = await sender.recv("pusher:error")
    data = _error_data(error)
    assert isinstance(data.get("message"), str) and data["message"]
    await _barrier(sdk, channel, sender, other)
    assert other.received("client-typing", channel) == [], "§1.12 rule 3: private/presence only"
    assert sender.seen(t="ws_close") == [], "a refused client event does not close the socket"


async def test_client_event_on_unsubscribed_channel_is_refused(
    launch: Launch, sdk: pusher.Pusher, uid: str
) -> None:
    channel = f"private-nosub-{uid}"
    listener = await _subscribed_client(launch, channel)
    outsider = await launch()
    await outsider.connected()
    # pusher-js refuses locally to trigger on a channel it has not joined, so send the frame
    # through its public send_event(), exactly as pusher-js would put it on the wire.
    await outsider.send("send_event", event="client-x", data={"sneaky": 1}, channel=channel)
    error = await outsider.recv("pusher:error")
    assert _error_data(error).get("message"), error
    await _barrier(sdk, channel, listener)
    assert listener.received("client-x", channel) == [], "§1.12 rule 4: subscribers only"
    assert outsider.seen(t="ws_close") == []


async def test_client_events_over_rate_limit_get_4301(
    launch: Launch, sdk: pusher.Pusher, uid: str
) -> None:
    """§1.12 rule 6: at most 10 client events per second per connection; excess gets 4301."""
    channel = f"private-flood-{uid}"
    sender = await _subscribed_client(launch, channel)
    listener = await _subscribed_client(launch, channel)
    assert await sender.send("trigger_many", channel=channel, event="client-flood", count=15) == 15
    error = await sender.recv("pusher:error")
    assert _error_data(error).get("code") == 4301, error
    await _barrier(sdk, channel, listener)
    delivered = len(listener.received("client-flood", channel))
    assert 1 <= delivered <= 10, f"{delivered} of 15 client events got through"


# -- channel names (§1.6) ----------------------------------------------------------------------


async def test_invalid_channel_name_is_refused_and_socket_kept(
    launch: Launch, sdk: pusher.Pusher, uid: str
) -> None:
    bad, good = f"bad name!{uid}", f"good-{uid}"
    client = await launch()
    await client.connected()
    await client.subscribe(bad)
    await client.subscribe(good)
    await client.subscribed(good)
    sdk.trigger(good, "barrier", {})
    await client.event(good, "barrier")
    assert client.received("pusher_internal:subscription_succeeded", bad) == []
    errors = client.received("pusher:subscription_error", bad) + client.received("pusher:error")
    assert errors, "§1.6: an invalid name is refused with an error, not ignored"
    assert client.seen(t="ws_close") == []


# -- encrypted channels (§1.9) -----------------------------------------------------------------


async def test_encrypted_channel_relays_ciphertext_that_pusher_js_decrypts(
    launch: Launch, sdk: pusher.Pusher, uid: str
) -> None:
    channel = f"private-encrypted-vault-{uid}"
    client = await _subscribed_client(launch, channel)
    payload = {"card": "4111", "note": "secret ü"}
    sdk.trigger(channel, "sealed", payload)
    frame = await client.recv("sealed", channel)
    sealed = json.loads(frame["data"])
    assert set(sealed) == {"nonce", "ciphertext"}, "the server relays the SDK's ciphertext"
    line = await client.event(channel, "sealed")
    assert line["data"] == payload


# -- cache channels (§1.10) --------------------------------------------------------------------


async def test_cache_channel_delivers_last_event_on_subscribe(
    launch: Launch, sdk: pusher.Pusher, uid: str
) -> None:
    channel = f"cache-price-{uid}"
    sdk.trigger(channel, "price", {"v": 1})
    sdk.trigger(channel, "price", {"v": 2})
    client = await launch()
    await client.subscribe(channel)
    await client.subscribed(channel)
    line = await client.event(channel, "price")
    assert line["data"] == {"v": 2}
    succeeded = client.seen(t="event", channel=channel, event="pusher:subscription_succeeded")
    assert client.events.index(succeeded[0]) < client.events.index(line), (
        "§1.10: the cached event comes right after subscription_succeeded"
    )
    await _barrier(sdk, channel, client)
    assert len(client.received("price", channel)) == 1
    assert client.received("pusher:cache_miss", channel) == []


async def test_cache_channel_empty_sends_cache_miss(launch: Launch, uid: str) -> None:
    channel = f"cache-empty-{uid}"
    client = await launch()
    await client.subscribe(channel)
    await client.subscribed(channel)
    frame = await client.recv("pusher:cache_miss", channel)
    assert frame == {"event": "pusher:cache_miss", "channel": channel, "data": "{}"}, (
        "§1.10/§5: cache_miss carries the channel and data '{}'"
    )
    await client.event(channel, "pusher:cache_miss")


# -- user authentication, server-to-user, terminate (§1.13) ------------------------------------


async def test_signin_succeeds_and_receives_send_to_user(
    launch: Launch, sdk: pusher.Pusher, uid: str
) -> None:
    user = {"id": f"carol-{uid}", "user_info": {"name": "Carol"}}
    client = await launch(user=user)
    await client.connected()
    await client.send("signin")
    sent = await client.expect(lambda e: e["msg"]["event"] == "pusher:signin", t="ws_send")
    success = await client.expect(t="signin_success")
    assert success["user_data"] == sent["msg"]["data"]["user_data"], "§1.13: the exact string"
    server_channel = f"#server-to-user-{user['id']}"
    await client.recv("pusher_internal:subscription_succeeded", server_channel)
    sdk.send_to_user(user["id"], "notice", {"hello": "carol"})
    line = await client.expect(t="user_event", event="notice")
    assert line["data"] == {"hello": "carol"}


async def test_server_to_user_channel_of_another_user_is_refused(
    launch: Launch, sdk: pusher.Pusher, uid: str
) -> None:
    victim, spy_id = f"victim-{uid}", f"spy-{uid}"
    target_user = await launch(user={"id": victim})
    await target_user.connected()
    await target_user.send("signin")
    await target_user.expect(t="signin_success")
    spy = await launch(user={"id": spy_id})
    await spy.connected()
    await spy.send("signin")
    await spy.expect(t="signin_success")
    # pusher-js refuses '#' names in subscribe(); put the frame on the wire directly.
    other = f"#server-to-user-{victim}"
    await spy.send("send_event", event="pusher:subscribe", data={"channel": other, "auth": ""})
    sdk.send_to_user(victim, "private-note", {"for": "victim"})
    await target_user.expect(t="user_event", event="private-note")
    sdk.send_to_user(spy_id, "barrier", {})
    await spy.expect(t="user_event", event="barrier")
    assert spy.received("private-note") == [], "§1.13: reject other users' channels"
    assert spy.received("pusher_internal:subscription_succeeded", other) == []


async def test_signin_with_bad_signature_is_refused(launch: Launch, uid: str) -> None:
    client = await launch(user={"id": f"mallory-{uid}"}, secret="not-the-secret")
    await client.connected()
    await client.send("signin")
    await client.recv("pusher:error")
    assert client.seen(t="signin_success") == []


async def test_terminate_user_connections_closes_with_4009_without_reconnect(
    launch: Launch, sdk: pusher.Pusher, uid: str
) -> None:
    user = {"id": f"dave-{uid}"}
    client = await launch(user=user)
    bystander = await launch(user={"id": f"erin-{uid}"})
    await bystander.connected()
    # Same user id, but only in a presence channel and never signed in: not terminated.
    room = f"presence-term-{uid}"
    presence_only = await _subscribed_client(launch, room, user=user)
    await client.connected()
    await client.send("signin")
    await client.expect(t="signin_success")
    sdk.terminate_user_connections(user["id"])
    close = await client.closed()
    assert close["code"] == 4009, close
    state = await client.expect(lambda e: e["previous"] == "connected", t="state")
    assert state["current"] in ("disconnected", "failed"), "4009 means: do not reconnect"
    assert len(client.seen(t="ws_connecting")) == 1
    await _barrier(sdk, room, presence_only)
    assert presence_only.seen(t="ws_close") == [], "§1.13: only signed-in connections"
    assert bystander.seen(t="ws_close") == []


# -- watchlist (§1.13) -------------------------------------------------------------------------


async def test_watchlist_reports_online_and_offline(launch: Launch, uid: str) -> None:
    a_id, b_id = f"wa-{uid}", f"wb-{uid}"
    watcher = await launch(user={"id": a_id, "watchlist": [b_id]})
    await watcher.connected()
    await watcher.send("signin")
    await watcher.expect(t="signin_success")
    watched = await launch(user={"id": b_id})
    await watched.connected()
    await watched.send("signin")
    await watched.expect(t="signin_success")
    online = await watcher.expect(lambda e: b_id in e["user_ids"], t="watchlist", name="online")
    assert online["user_ids"] == [b_id]
    frame = await watcher.recv("pusher_internal:watchlist_events")
    assert "channel" not in frame and isinstance(frame["data"], str)
    assert "events" in json.loads(frame["data"])
    await watched.close()
    offline = await watcher.expect(lambda e: b_id in e["user_ids"], t="watchlist", name="offline")
    assert offline["user_ids"] == [b_id]


async def test_watchlist_reports_already_online_user_at_signin(launch: Launch, uid: str) -> None:
    a_id, b_id = f"wa2-{uid}", f"wb2-{uid}"
    watched = await launch(user={"id": b_id})
    await watched.connected()
    await watched.send("signin")
    await watched.expect(t="signin_success")
    watcher = await launch(user={"id": a_id, "watchlist": [b_id]})
    await watcher.connected()
    await watcher.send("signin")
    online = await watcher.expect(t="watchlist", name="online")
    assert online["user_ids"] == [b_id]


# -- subscription count (§1.11) ----------------------------------------------------------------


async def test_subscription_count_reaches_subscribers(launch: Launch, uid: str) -> None:
    channel = f"counted-{uid}"
    first = await _subscribed_client(launch, channel, app=COUNT_APP)
    line = await first.event(channel, "pusher:subscription_count")
    assert line["data"] == {"subscription_count": 1}
    second = await _subscribed_client(launch, channel, app=COUNT_APP)
    await first.expect(lambda e: e["data"] == {"subscription_count": 2}, **_count_line(channel))
    await second.expect(lambda e: e["data"] == {"subscription_count": 2}, **_count_line(channel))
    for count in (1, 2):
        frame = await first.recv("pusher_internal:subscription_count", channel)
        assert isinstance(frame["data"], str), "§1.11: data is a JSON string"
        assert json.loads(frame["data"]) == {"subscription_count": count}
    await second.close()
    await first.expect(lambda e: e["data"] == {"subscription_count": 1}, **_count_line(channel))


def _count_line(channel: str) -> dict[str, Any]:
    return {"t": "event", "channel": channel, "event": "pusher:subscription_count"}


async def test_subscription_count_is_off_unless_enabled(
    launch: Launch, sdk: pusher.Pusher, uid: str
) -> None:
    channel = f"uncounted-{uid}"
    first = await _subscribed_client(launch, channel)
    await _subscribed_client(launch, channel)
    await _barrier(sdk, channel, first)
    assert first.received("pusher_internal:subscription_count", channel) == []


# -- fatal handshake errors (§1.5) -------------------------------------------------------------


async def test_unknown_app_key_closes_4001_and_pusher_js_stops(launch: Launch) -> None:
    client = await launch(app={**APP, "key": "no-such-key"})
    close = await client.closed()
    assert close["code"] == 4001, close
    state = await client.expect(lambda e: e["previous"] == "connecting", t="state")
    assert state["current"] in ("disconnected", "failed"), "4001: pusher-js must not retry"
    assert len(client.seen(t="ws_connecting")) == 1
    errors = client.received("pusher:error")
    assert errors and _error_data(errors[0]).get("code") == 4001, "§5: pusher:error first"


async def test_disabled_app_closes_4003_and_pusher_js_stops(launch: Launch) -> None:
    client = await launch(app=DISABLED_APP)
    close = await client.closed()
    assert close["code"] == 4003, close
    state = await client.expect(lambda e: e["previous"] == "connecting", t="state")
    assert state["current"] in ("disconnected", "failed")
    assert len(client.seen(t="ws_connecting")) == 1
    errors = client.received("pusher:error")
    assert errors and _error_data(errors[0]).get("code") == 4003, "§5: pusher:error first"


# -- shutdown and restart (§1.5, §5) -----------------------------------------------------------


async def test_shutdown_closes_4200_and_pusher_js_resubscribes_after_restart(
    launch: Launch, uid: str
) -> None:
    channel = f"private-restart-{uid}"
    first = ServerProcess(SERVER_CONFIG)
    second = ServerProcess(SERVER_CONFIG, port=first.port)
    try:
        await asyncio.to_thread(first.start)
        client = await launch(port=first.port)
        await client.connected()
        await client.subscribe(channel)
        await client.subscribed(channel)
        await asyncio.to_thread(first.stop)
        close = await client.closed()
        assert close["code"] == 4200, f"§5: a graceful shutdown closes with 4200, got {close}"
        state = await client.expect(lambda e: e["previous"] == "connected", t="state")
        assert state["current"] == "connecting", "4200 means: reconnect at once"
        await asyncio.to_thread(second.start)
        # pusher-js's own retry loop waits 15 s after a refused attempt; skip the wait.
        await client.send("disconnect")
        await client.send("connect")
        await client.expect(t="connected")
        # pusher-js re-subscribes its channels (re-authorizing with the new socket id).
        await client.subscribed(channel)
    finally:
        first.cleanup()
        second.cleanup()
