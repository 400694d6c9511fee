"""Channel history with stock pusher-js: replay on subscribe, no gap and no repeat.

The server under test (``conftest.SERVER_CONFIG``) keeps history for ``history-*``
(1,000 events, 10 minutes), ``history-short-*`` (3 events, 1 second) and
``presence-history-*``. Publishing is the official Python SDK.
"""

from __future__ import annotations

import asyncio
import threading
import time
import pusher
import pytest

from .conftest import Launch, NodeClient

pytestmark = pytest.mark.node

TOTAL = 2000
CUT_EVERY = 200
RATE = 500  # events per second, at most


def numbers(client: NodeClient, channel: str, event: str = "num") -> list[int]:
    """Every ``data.n`` pusher-js emitted for ``event`` on ``channel``, in order."""
    return [e["data"]["n"] for e in client.seen(t="event", channel=channel, event=event)]


def segments(client: NodeClient, channel: str, event: str = "num") -> list[list[int]]:
    """The numbers each connection delivered (a new list at every WebSocket open)."""
    parts: list[list[int]] = []
    for line in client.events:
        if line.get("t") == "ws_open":
            parts.append([])
        elif (
            line.get("t") == "event"
            and line.get("channel") == channel
            and line.get("event") == event
            and parts
        ):
            parts[-1].append(line["data"]["n"])
    return parts


def publish_numbers(sdk: pusher.Pusher, channel: str, total: int, stop: threading.Event) -> None:
    """Publish ``0 .. total - 1`` back to back, at most ``RATE`` a second.

    pusher-js waits a fixed second before it reconnects after a cut, so the 1,000 events a
    channel may retain cover an outage only below 1,000 events a second: the cap keeps
    the test about the server's guarantee, not about a window it was configured too
    small for.
    """
    started = time.monotonic()
    for n in range(total):
        if stop.is_set():
            return
        ahead = started + n / RATE - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)  # pacing, not waiting for anything
        sdk.trigger(channel, "num", {"n": n})


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
    channel = f"history-{uid}"
    client = await launch()
    await client.subscribe(channel)
    await client.subscribed(channel)
    await client.send("auto_cut", channel=channel, event="num", every=CUT_EVERY, total=TOTAL)
    stop = threading.Event()
    publisher = asyncio.create_task(
        asyncio.to_thread(publish_numbers, sdk, channel, TOTAL, stop)
    )
    try:
        await until_complete(client, channel)
    finally:
        stop.set()
        await publisher

    assert_complete_and_exact(client, channel)


async def until_complete(client: NodeClient, channel: str, timeout: float = 20) -> None:
    """Await the driver's word that it saw ``TOTAL`` distinct numbers."""
    try:
        await client.line("complete", timeout=timeout)
    except AssertionError:
        missing = sorted(set(range(TOTAL)) - set(numbers(client, channel)))

        raise AssertionError(f"missing {len(missing)}: {missing[:50]}; cuts {client.seen(t='cut')}") from None


def assert_complete_and_exact(client: NodeClient, channel: str) -> None:
    cuts = client.seen(t="cut")
    assert len(cuts) >= 3, f"too few network cuts to mean anything: {cuts}"
    # the last cut may still be reconnecting
    assert len(client.seen(t="ws_open")) in (len(cuts), len(cuts) + 1)
    assert set(numbers(client, channel)) == set(range(TOTAL)), "events went missing"
    for part in filter(None, segments(client, channel)):
        # within one connection: the replay then live, with no gap and no repeat
        assert part == list(range(part[0], part[0] + len(part))), part[:20]


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
    aged = f"history-short-{uid}-age"
    sdk.trigger(aged, "num", {"n": 0})
    await asyncio.sleep(1.3)  # max_age is 1 second of wall-clock time
    sdk.trigger(aged, "num", {"n": 1})
    counted = f"history-short-{uid}-count"
    for n in range(5):
        sdk.trigger(counted, "num", {"n": n})

    client = await launch()
    for channel in (counted, aged):
        await client.subscribe(channel)
        await client.subscribed(channel)
        sdk.trigger(channel, "barrier", {})
        await client.event(channel, "barrier")

    assert numbers(client, counted) == [2, 3, 4]
    assert numbers(client, aged) == [1]
