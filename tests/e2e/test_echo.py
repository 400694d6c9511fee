"""Laravel Echo 2.5 (``broadcaster: 'reverb'``, unchanged) against the server.

Echo runs on the Node build of pusher-js. Channel and user auth go through Echo's own
``authEndpoint`` / ``userAuthentication.endpoint`` options to a real HTTP backend on 127.0.0.1
that signs with the Python SDK, as a Laravel app's ``/broadcasting/auth`` route would.
"""

from __future__ import annotations

from typing import Any

import pusher
import pytest

from .conftest import AuthEndpoint, Launch, NodeClient

pytestmark = pytest.mark.node


async def _echo(launch: Launch, auth: AuthEndpoint, user_id: str, **info: Any) -> NodeClient:
    auth.add_user(user_id, info or None)
    client = await launch(
        f"echo-{user_id}",
        kind="echo",
        auth="endpoint",
        auth_endpoint=auth.url(user_id),
        user_auth_endpoint=auth.user_url(user_id),
    )
    await client.connected()
    return client


async def test_echo_listen_receives_backend_event_by_name(
    launch: Launch, sdk: pusher.Pusher, auth_endpoint: AuthEndpoint, uid: str
) -> None:
    channel = f"orders-{uid}"
    echo = await _echo(launch, auth_endpoint, "1")
    await echo.send("echo_channel", name=channel, listen=[".OrderShipped", "OrderShipped"])
    await echo.expect(t="echo_subscribed", channel=channel)
    # A ShouldBroadcast event with broadcastAs() = 'OrderShipped': Echo listens with a dot.
    sdk.trigger(channel, "OrderShipped", {"order": {"id": 42}})
    line = await echo.expect(t="echo_event", channel=channel, listen=".OrderShipped")
    assert line["data"] == {"order": {"id": 42}}
    # The default event name is the class name; Echo's namespace App.Events resolves it.
    sdk.trigger(channel, "App\\Events\\OrderShipped", {"order": {"id": 43}})
    line = await echo.expect(t="echo_event", channel=channel, listen="OrderShipped")
    assert line["data"] == {"order": {"id": 43}}
    assert len(echo.seen(t="echo_event")) == 2, "each name reaches only its own listener"


async def test_echo_private_channel_authorizes_through_auth_endpoint(
    launch: Launch, sdk: pusher.Pusher, auth_endpoint: AuthEndpoint, uid: str
) -> None:
    echo = await _echo(launch, auth_endpoint, "1")
    await echo.send("echo_channel", name=f"orders.{uid}", type="private", listen=[".Paid"])
    channel = f"private-orders.{uid}"
    await echo.expect(t="echo_subscribed", channel=channel)
    assert any(r["form"].get("channel_name") == channel for r in auth_endpoint.requests)
    sdk.trigger(channel, "Paid", {"amount": 10})
    line = await echo.expect(t="echo_event", channel=channel, listen=".Paid")
    assert line["data"] == {"amount": 10}


async def test_echo_private_channel_bad_signature_calls_error_callback(
    launch: Launch, uid: str
) -> None:
    echo = await launch(kind="echo", secret="wrong-secret")
    await echo.connected()
    await echo.send("echo_channel", name=f"denied.{uid}", type="private")
    channel = f"private-denied.{uid}"
    line = await echo.expect(t="echo_error", channel=channel)
    assert line["error"]["type"] == "AuthError" and line["error"]["status"] == 401, line
    await echo.recv("pusher:subscription_error", channel)
    assert echo.seen(t="echo_subscribed") == []


async def test_echo_presence_here_joining_leaving(
    launch: Launch, auth_endpoint: AuthEndpoint, uid: str
) -> None:
    name = f"chat.{uid}"
    channel = f"presence-{name}"
    alice = await _echo(launch, auth_endpoint, "1", name="Alice")
    await alice.send("echo_channel", name=name, type="presence")
    here = await alice.expect(t="echo_here", channel=channel)
    assert here["members"] == [{"name": "Alice"}]

    bob = await _echo(launch, auth_endpoint, "2", name="Bob")
    await bob.send("echo_channel", name=name, type="presence")
    here = await bob.expect(t="echo_here", channel=channel)
    assert sorted(m["name"] for m in here["members"]) == ["Alice", "Bob"]
    joining = await alice.expect(t="echo_joining", channel=channel)
    assert joining["member"] == {"name": "Bob"}

    await bob.send("echo_leave", name=name)
    leaving = await alice.expect(t="echo_leaving", channel=channel)
    assert leaving["member"] == {"name": "Bob"}


async def test_echo_whisper_reaches_listen_for_whisper(
    launch: Launch, sdk: pusher.Pusher, auth_endpoint: AuthEndpoint, uid: str
) -> None:
    name = f"typing.{uid}"
    channel = f"private-{name}"
    alice = await _echo(launch, auth_endpoint, "1")
    bob = await _echo(launch, auth_endpoint, "2")
    for client in (alice, bob):
        await client.send("echo_channel", name=name, type="private", whispers=["typing"])
        await client.expect(t="echo_subscribed", channel=channel)
    await alice.send("echo_whisper", name=name, type="private", event="typing", data={"who": "a"})
    line = await bob.expect(t="echo_whisper", channel=channel, name="typing")
    assert line["data"] == {"who": "a"}
    sdk.trigger(channel, "barrier", {})
    await alice.recv("barrier", channel)
    assert alice.seen(t="echo_whisper") == [], "a whisper is not echoed to its sender"


async def test_echo_presence_whisper_carries_user_id(
    launch: Launch, auth_endpoint: AuthEndpoint, uid: str
) -> None:
    name = f"room.{uid}"
    channel = f"presence-{name}"
    alice = await _echo(launch, auth_endpoint, "1", name="Alice")
    bob = await _echo(launch, auth_endpoint, "2", name="Bob")
    for client in (alice, bob):
        await client.send("echo_channel", name=name, type="presence", whispers=["typing"])
        await client.expect(t="echo_here", channel=channel)
    await bob.send("echo_whisper", name=name, type="presence", event="typing", data={"t": 1})
    line = await alice.expect(t="echo_whisper", channel=channel, name="typing")
    assert line["data"] == {"t": 1}
    frame = await alice.recv("client-typing", channel)
    assert frame["user_id"] == "2"


async def test_echo_encrypted_private_channel_decrypts(
    launch: Launch, sdk: pusher.Pusher, auth_endpoint: AuthEndpoint, uid: str
) -> None:
    name = f"vault.{uid}"
    channel = f"private-encrypted-{name}"
    echo = await _echo(launch, auth_endpoint, "1")
    await echo.send("echo_channel", name=name, type="encrypted", listen=[".Sealed"])
    await echo.expect(t="echo_subscribed", channel=channel)
    sdk.trigger(channel, "Sealed", {"pin": "1234"})
    line = await echo.expect(t="echo_event", channel=channel, listen=".Sealed")
    assert line["data"] == {"pin": "1234"}


async def test_echo_signin_receives_user_events(
    launch: Launch, sdk: pusher.Pusher, auth_endpoint: AuthEndpoint, uid: str
) -> None:
    user_id = f"u-{uid}"
    echo = await _echo(launch, auth_endpoint, user_id)
    await echo.send("echo_signin")
    await echo.expect(t="signin_success")
    await echo.recv("pusher_internal:subscription_succeeded", f"#server-to-user-{user_id}")
    sdk.send_to_user(user_id, "Notified", {"n": 1})
    line = await echo.expect(t="user_event", event="Notified")
    assert line["data"] == {"n": 1}


async def test_echo_notification_on_user_private_channel(
    launch: Launch, sdk: pusher.Pusher, auth_endpoint: AuthEndpoint, uid: str
) -> None:
    name = f"App.Models.User.{uid}"
    channel = f"private-{name}"
    echo = await _echo(launch, auth_endpoint, "1")
    await echo.send("echo_channel", name=name, type="private", notification=True)
    await echo.expect(t="echo_subscribed", channel=channel)
    payload = {"id": "9b1c", "type": "App\\Notifications\\InvoicePaid", "amount": 5}
    sdk.trigger(channel, "Illuminate\\Notifications\\Events\\BroadcastNotificationCreated", payload)
    line = await echo.expect(t="echo_notification", channel=channel)
    assert line["data"] == payload
