"""History replay on subscribe, over real sockets (the memory broker in process)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from typing import Any

import pusher
import pytest
from pusher.http import GET, Request

from pusherd.brokers.base import Envelope
from pusherd.protocol.history import HistoryRule
from tests.server.conftest import APP, Client, make_config, private_auth, serve

__all__: list[str] = []

HISTORY_APP = replace(
    APP,
    history=(
        HistoryRule(channel_prefix="alerts-", max_events=5),
        HistoryRule(channel_prefix="private-chat-", client_events=True),
        HistoryRule(channel_prefix="private-quiet-"),
    ),
)


async def test_history_subscribe_replays_retained_events_then_live() -> None:
    async with serve(make_config(HISTORY_APP)) as running:
        sdk = running.sdk(HISTORY_APP)
        for n in range(3):
            await asyncio.to_thread(sdk.trigger, "alerts-1", "alert", {"n": n})
        async with Client.open(running.url()) as client:
            await client.established()
            succeeded = await client.subscribe("alerts-1")
            assert succeeded["event"] == "pusher_internal:subscription_succeeded"
            replayed = [await client.recv() for _ in range(3)]
            await asyncio.to_thread(sdk.trigger, "alerts-1", "alert", {"n": 3})
            live = await client.recv()

    assert [m["data"] for m in replayed] == ['{"n": 0}', '{"n": 1}', '{"n": 2}']
    assert all(m["event"] == "alert" and m["channel"] == "alerts-1" for m in replayed)
    assert live["data"] == '{"n": 3}'


async def test_history_keeps_only_max_events_and_nothing_without_a_rule() -> None:
    async with serve(make_config(HISTORY_APP)) as running:
        sdk = running.sdk(HISTORY_APP)
        for n in range(8):
            await asyncio.to_thread(sdk.trigger, ["alerts-2", "news"], "alert", {"n": n})
        async with Client.open(running.url()) as client:
            await client.established()
            await client.subscribe("alerts-2")
            replayed = [json.loads((await client.recv())["data"])["n"] for _ in range(5)]
            await client.subscribe("news")
            await client.nothing()

    assert replayed == [3, 4, 5, 6, 7]


async def test_history_keeps_client_events_only_when_the_rule_says_so() -> None:
    async with serve(make_config(HISTORY_APP)) as running:
        async with Client.open(running.url()) as sender:
            socket_id = await sender.established()
            for channel in ("private-chat-1", "private-quiet-1"):
                await sender.subscribe(channel, private_auth(socket_id, channel))
                await sender.send("client-typing", {"on": channel}, channel=channel)
            async with Client.open(running.url()) as late:
                late_id = await late.established()
                await late.subscribe("private-chat-1", private_auth(late_id, "private-chat-1"))
                replayed = await late.recv()
                await late.subscribe("private-quiet-1", private_auth(late_id, "private-quiet-1"))
                await late.nothing()

    assert replayed["event"] == "client-typing"
    assert replayed["data"] == {"on": "private-chat-1"}


async def test_history_resubscribe_on_same_socket_skips_own_excluded_events() -> None:
    async with serve(make_config(HISTORY_APP)) as running:
        sdk = running.sdk(HISTORY_APP)
        async with Client.open(running.url()) as client:
            socket_id = await client.established()
            await client.subscribe("alerts-3")
            await asyncio.to_thread(sdk.trigger, "alerts-3", "mine", {}, socket_id=socket_id)
            await asyncio.to_thread(sdk.trigger, "alerts-3", "theirs", {})
            assert (await client.recv())["event"] == "theirs"
            await client.send("pusher:unsubscribe", {"channel": "alerts-3"})
            await client.subscribe("alerts-3")
            replayed = await client.recv()
            await client.nothing()

    assert replayed["event"] == "theirs"


def signed_get(sdk: pusher.Pusher, channel: str, params: dict[str, str] | None = None) -> Any:
    """GET the history extension, signed by the Python SDK's own request code."""
    client = sdk._pusher_client
    path = f"/apps/{client.app_id}/channels/{channel}/events"
    return client.http.send_request(Request(client, GET, path, params or {}))


async def test_history_rest_endpoint_lists_retained_events_oldest_first() -> None:
    async with serve(make_config(HISTORY_APP)) as running:
        sdk = running.sdk(HISTORY_APP)
        for n in range(7):
            await asyncio.to_thread(sdk.trigger, "alerts-rest", "alert", {"n": n})
        page = await asyncio.to_thread(signed_get, sdk, "alerts-rest", {"limit": "2"})
        full = await asyncio.to_thread(signed_get, sdk, "alerts-rest")
        with pytest.raises(pusher.errors.PusherError):
            await asyncio.to_thread(signed_get, sdk, "news")
        with pytest.raises(pusher.errors.PusherBadRequest):
            await asyncio.to_thread(signed_get, sdk, "alerts-rest", {"limit": "x"})

    assert [e["data"] for e in page["events"]] == ['{"n": 5}', '{"n": 6}']
    assert [e["seq"] for e in full["events"]] == [3, 4, 5, 6, 7]  # max_events = 5
    assert all(e["event"] == "alert" and e["published_at"] > 1e9 for e in full["events"])


async def test_history_metrics_count_retained_and_replayed_events() -> None:
    async with serve(make_config(HISTORY_APP)) as running:
        sdk = running.sdk(HISTORY_APP)
        for n in range(3):
            await asyncio.to_thread(sdk.trigger, "alerts-m", "alert", {"n": n})
        async with Client.open(running.url()) as client:
            await client.established()
            await client.subscribe("alerts-m")
            for _ in range(3):
                await client.recv()
        rendered = running.parts.metrics.render().decode()

    if running.parts.config.scaling.driver == "memory":  # the memory driver knows exactly
        assert 'pusherd_history_events{app_id="12345"} 3.0' in rendered
    assert 'pusherd_history_appended_total{app_id="12345"} 3.0' in rendered
    assert 'pusherd_history_replays_total{app_id="12345"} 1.0' in rendered
    assert 'pusherd_history_events_replayed_total{app_id="12345"} 3.0' in rendered


async def test_history_replay_fits_in_half_the_write_buffer_and_keeps_the_socket() -> None:
    async with serve(make_config(HISTORY_APP, max_write_buffer_kb=4)) as running:
        sdk = running.sdk(HISTORY_APP)
        for n in range(5):
            await asyncio.to_thread(
                sdk.trigger, "private-quiet-big", "e", {"n": n, "pad": "x" * 900}
            )
        async with Client.open(running.url()) as client:
            socket_id = await client.established()
            await client.subscribe(
                "private-quiet-big", private_auth(socket_id, "private-quiet-big")
            )
            replayed = [json.loads((await client.recv())["data"])["n"] for _ in range(2)]
            await client.nothing()
            await asyncio.to_thread(sdk.trigger, "private-quiet-big", "e", {"n": 5})
            live = json.loads((await client.recv())["data"])["n"]

    assert replayed == [3, 4]  # 2 x ~1 KB fit in 2 KB; the socket was not cut off
    assert live == 5


async def test_history_subscribes_during_full_rate_publishing_have_no_gap_or_repeat() -> None:
    # run over both brokers by the server conftest; Redis is where the race is real
    async with serve(make_config(HISTORY_APP)) as running:
        broker = running.parts.broker
        stop = asyncio.Event()

        async def publish() -> int:
            n = 0
            while not stop.is_set():
                payload = b'{"event":"num","channel":"alerts-race","data":"%d"}' % n
                envelope = Envelope(HISTORY_APP.id, "alerts-race", payload)
                await broker.publish_history(envelope, 5, 120.0, HISTORY_APP.history_max_bytes)
                n += 1
                await asyncio.sleep(0)  # the memory broker never yields by itself
            return n

        publisher = asyncio.create_task(publish())
        runs = []
        try:
            for _ in range(15):
                async with Client.open(running.url()) as client:
                    await client.established()
                    await client.subscribe("alerts-race")
                    runs.append([int((await client.recv())["data"]) for _ in range(40)])
        finally:
            stop.set()
            published = await publisher

    assert published > 15 * 40
    for numbers in runs:
        # the replay (the newest 5) runs straight into the live events
        assert numbers == list(range(numbers[0], numbers[0] + 40)), numbers
