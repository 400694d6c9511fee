"""The server reports every lifecycle record at the place it happens, and none unasked."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
from collections.abc import Callable
from dataclasses import replace

from pusherd.apps.base import WebhookTarget
from pusherd.config import WebhookSettings
from pusherd.lifecycle import (
    ApiMessage,
    CacheMiss,
    ChannelOccupied,
    ChannelVacated,
    ClientEventSent,
    Lifecycle,
    MemberAdded,
    MemberRemoved,
    Record,
    SlowConsumer,
    SocketClosed,
    SocketOpened,
    Subscribed,
    SubscriptionRefused,
    Unsubscribed,
    WebhookAttempt,
)
from tests.server.conftest import APP, Client, make_config, private_auth, serve
from tests.webhook_receiver import WebhookReceiver

ALL = (
    SocketOpened,
    SocketClosed,
    Subscribed,
    Unsubscribed,
    SubscriptionRefused,
    ChannelOccupied,
    ChannelVacated,
    MemberAdded,
    MemberRemoved,
    ClientEventSent,
    ApiMessage,
    WebhookAttempt,
    CacheMiss,
    SlowConsumer,
)


class Recorder:
    def __init__(self, lifecycle: Lifecycle) -> None:
        self.records: list[Record] = []
        self.changed = asyncio.Event()
        self.stop = lifecycle.listen(self._take, *ALL)

    def _take(self, record: Record) -> None:
        self.records.append(record)
        self.changed.set()

    async def expect(self, match: Callable[[Record], bool], timeout: float = 5.0) -> Record:
        async with asyncio.timeout(timeout):
            while True:
                for record in self.records:
                    if match(record):
                        return record
                self.changed.clear()
                await self.changed.wait()

    def of(self, kind: type) -> list[Record]:
        return [r for r in self.records if type(r) is kind]


async def test_lifecycle_is_silent_while_nobody_listens() -> None:
    async with serve(make_config()) as running:
        assert not running.parts.lifecycle.active
        async with Client.open(running.url()) as client:
            await client.established()
            await client.subscribe("news")
        assert not running.parts.lifecycle.active


async def test_lifecycle_reports_a_socket_its_subscriptions_and_events() -> None:
    async with serve(make_config()) as running:
        seen = Recorder(running.parts.lifecycle)
        async with Client.open(running.url(), origin="http://a.test") as client:
            socket_id = await client.established()
            opened = await seen.expect(lambda r: isinstance(r, SocketOpened))
            assert opened == SocketOpened(
                APP.id, socket_id, "http://a.test", "js", "8.4.0", "127.0.0.1"
            )
            channel = "private-a"
            await client.subscribe(channel, private_auth(socket_id, channel))
            assert await seen.expect(lambda r: isinstance(r, Subscribed)) == Subscribed(
                APP.id, socket_id, channel
            )
            assert seen.of(ChannelOccupied) == [ChannelOccupied(APP.id, channel)]
            await client.send("client-hi", {"x": 1}, channel)
            event = await seen.expect(lambda r: isinstance(r, ClientEventSent))
            assert isinstance(event, ClientEventSent)
            assert (event.channel, event.event, event.socket_id) == (
                channel,
                "client-hi",
                socket_id,
            )
            assert json.loads(event.payload)["data"] == {"x": 1}
            await client.send("pusher:subscribe", {"channel": "private-b", "auth": "app-key:00"})
            refused = await seen.expect(lambda r: isinstance(r, SubscriptionRefused))
            assert isinstance(refused, SubscriptionRefused)
            assert (refused.channel, refused.status) == ("private-b", 401)
            await asyncio.to_thread(running.sdk().trigger, [channel, "news"], "ev", {"n": 1})
            await seen.expect(lambda r: isinstance(r, ApiMessage) and r.channel == "news")
            api = [r for r in seen.of(ApiMessage) if isinstance(r, ApiMessage)]
            assert sorted(r.channel for r in api) == ["news", channel]
            assert all(r.event == "ev" for r in api)
            await client.send("pusher:unsubscribe", {"channel": channel})
            await seen.expect(lambda r: isinstance(r, Unsubscribed))
            await seen.expect(lambda r: isinstance(r, ChannelVacated))
        closed = await seen.expect(lambda r: isinstance(r, SocketClosed))
        assert isinstance(closed, SocketClosed)
        assert closed.socket_id == socket_id and closed.lived >= 0
        seen.stop()
        assert not running.parts.lifecycle.active


async def test_lifecycle_reports_presence_members_and_cache_misses() -> None:
    async with serve(make_config()) as running:
        seen = Recorder(running.parts.lifecycle)
        async with Client.open(running.url()) as client:
            socket_id = await client.established()
            data = json.dumps({"user_id": "u1"})
            channel = "presence-room"
            await client.subscribe(channel, private_auth(socket_id, channel, data), data)
            assert await seen.expect(lambda r: isinstance(r, MemberAdded)) == MemberAdded(
                APP.id, channel, "u1"
            )
            await client.subscribe("cache-prices")
            assert await seen.expect(lambda r: isinstance(r, CacheMiss)) == CacheMiss(
                APP.id, "cache-prices"
            )
        assert await seen.expect(lambda r: isinstance(r, MemberRemoved)) == MemberRemoved(
            APP.id, channel, "u1"
        )


async def test_lifecycle_reports_webhook_attempts_with_retries() -> None:
    async with WebhookReceiver() as receiver:
        receiver.fail_next(2, status=503)
        app = replace(
            APP,
            webhooks=(
                WebhookTarget(url=receiver.url(), event_types=frozenset({"channel_occupied"})),
            ),
        )
        config = make_config(app, webhooks=WebhookSettings(delay=0, batch_window_ms=0))
        async with serve(config) as running:
            running.parts.webhooks._backoff_base = 0.01  # retry quickly
            seen = Recorder(running.parts.lifecycle)
            async with Client.open(running.url()) as client:
                await client.established()
                await client.subscribe("news")
                sent = await seen.expect(
                    lambda r: isinstance(r, WebhookAttempt) and r.outcome == "sent"
                )
        attempts = [r for r in seen.of(WebhookAttempt) if isinstance(r, WebhookAttempt)]
        assert [(a.attempt, a.status, a.outcome) for a in attempts] == [
            (1, 503, "retry"),
            (2, 503, "retry"),
            (3, 200, "sent"),
        ]
        assert sent.events == ("channel_occupied",)  # type: ignore[union-attr]
        assert "?" not in sent.target  # type: ignore[union-attr]


def _masked_text(payload: bytes) -> bytes:
    assert len(payload) < 126
    return bytes((0x81, 0x80 | len(payload))) + b"\0\0\0\0" + payload


async def test_lifecycle_reports_a_slow_consumer_cut_off() -> None:
    config = make_config(max_write_buffer_kb=1)
    async with serve(config) as running:
        seen = Recorder(running.parts.lifecycle)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        try:
            await loop.sock_connect(sock, ("127.0.0.1", running.port))
            key = base64.b64encode(os.urandom(16)).decode()
            await loop.sock_sendall(
                sock,
                (
                    "GET /app/app-key?protocol=7 HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\n"
                    f"connection: upgrade\r\nsec-websocket-key: {key}\r\n"
                    "sec-websocket-version: 13\r\n\r\n"
                ).encode(),
            )
            await loop.sock_recv(sock, 1024)  # 101 and connection_established
            subscribe = json.dumps({"event": "pusher:subscribe", "data": {"channel": "news"}})
            await loop.sock_sendall(sock, _masked_text(subscribe.encode()))
            await seen.expect(lambda r: isinstance(r, Subscribed))
            sdk = running.sdk()
            async with asyncio.timeout(20):
                while not seen.of(SlowConsumer):
                    await asyncio.to_thread(sdk.trigger, "news", "big", {"b": "x" * 9000})
            (slow,) = seen.of(SlowConsumer)
            assert isinstance(slow, SlowConsumer) and slow.unsent > 1024
        finally:
            sock.close()
