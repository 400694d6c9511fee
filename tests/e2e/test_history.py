"""Channel history with stock pusher-js: replay on subscribe, no gap and no repeat.

The server under test (``conftest.SERVER_CONFIG``) keeps history for ``history-*``
(1,000 events, 10 minutes), ``history-short-*`` (3 events, 2 seconds) and
``presence-history-*``. Publishing is the official Python SDK.
"""

from __future__ import annotations

import asyncio

import pusher
import pytest

from .conftest import Launch
from .history_run import numbers, run_with_cuts

pytestmark = pytest.mark.node


async def test_history_pusher_js_subscriber_gets_earlier_events_in_order_then_live(
    launch: Launch, sdk: pusher.Pusher, uid: str
) -> None:
    channel = f"history-{uid}"
    for n in range(10):
        sdk.trigger(channel, "num", {"n": n})
    client = await launch()
    await client.subscribe(channel)
    await client.subscribed(channel)
    await client.expect(lambda e: e["data"]["n"] == 9, t="event", channel=channel, event="num")
    sdk.trigger(channel, "num", {"n": 10})
    await client.expect(lambda e: e["data"]["n"] == 10, t="event", channel=channel, event="num")

    emitted = [e["event"] for e in client.seen(t="event", channel=channel)]
    assert emitted[0] == "pusher:subscription_succeeded"
    assert numbers(client, channel) == list(range(11))
    # exactly as delivered live: the same event, channel and data frame
    first = client.received("num", channel)[0]
    assert first == {"event": "num", "channel": channel, "data": '{"n": 0}'}


async def test_history_pusher_js_cut_every_200_events_misses_none(
    launch: Launch, sdk: pusher.Pusher, uid: str
) -> None:
    client = await launch()
    await run_with_cuts(client, f"history-{uid}", sdk)


async def test_history_pusher_js_replayed_presence_channel_still_announces_members(
    launch: Launch, sdk: pusher.Pusher, uid: str
) -> None:
    channel = f"presence-history-{uid}"
    ann = await launch("ann", user={"id": "ann"})
    await ann.subscribe(channel)
    await ann.subscribed(channel)
    for n in range(3):
        sdk.trigger(channel, "num", {"n": n})
    await ann.expect(lambda e: e["data"]["n"] == 2, t="event", channel=channel, event="num")
    ben = await launch("ben", user={"id": "ben", "user_info": {"name": "Ben"}})
    await ben.subscribe(channel)
    joined = await ben.subscribed(channel)
    await ben.expect(lambda e: e["data"]["n"] == 2, t="event", channel=channel, event="num")

    added = await ann.event(channel, "pusher:member_added")
    assert added["data"] == {"id": "ben", "info": {"name": "Ben"}}
    assert joined["data"]["count"] == 2
    assert numbers(ben, channel) == [0, 1, 2]
    assert (await ben.send("members", channel=channel))["count"] == 2
    await ben.close()
    removed = await ann.event(channel, "pusher:member_removed")
    assert removed["data"]["id"] == "ben"


async def test_history_pusher_js_does_not_replay_beyond_max_events_or_max_age(
    launch: Launch, sdk: pusher.Pusher, uid: str
) -> None:
    client = await launch()
    await client.connected()
    aged = f"history-short-{uid}-age"
    sdk.trigger(aged, "num", {"n": 0})
    await asyncio.sleep(2.2)  # max_age is 2 seconds of wall-clock time
    sdk.trigger(aged, "num", {"n": 1})
    counted = f"history-short-{uid}-count"
    for n in range(5):
        sdk.trigger(counted, "num", {"n": n})

    for channel in (counted, aged):
        await client.subscribe(channel)
        await client.subscribed(channel)
        sdk.trigger(channel, "barrier", {})
        await client.event(channel, "barrier")

    assert numbers(client, counted) == [2, 3, 4]
    assert numbers(client, aged) == [1]
