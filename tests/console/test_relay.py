"""``Relay`` and ``Feed``: nothing listens until a console watches; batches name their node."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import orjson

from pusherd.brokers.bulletin import MemoryBulletin
from pusherd.console import relay as relay_module
from pusherd.console.relay import Relay, log_topic, watch_key
from pusherd.console.stream import Buffer, Feed
from pusherd.lifecycle import ApiMessage, ChannelOccupied, Lifecycle


async def test_relay_listens_only_while_an_app_is_watched() -> None:
    lifecycle = Lifecycle()
    bulletin = MemoryBulletin()
    relay = Relay(lifecycle, bulletin, "n1", lambda: ["1", "2"])
    await relay.start()
    try:
        assert not lifecycle.active
        await bulletin.share(watch_key("2"), "n9", orjson.dumps(2e12), 30)
        await relay.refresh()
        assert relay.watched == {"2"} and lifecycle.active
        await bulletin.share(watch_key("2"), "n9", orjson.dumps(0.0), 30)
        await relay.refresh()
        assert not relay.watched and not lifecycle.active
    finally:
        await relay.close()


async def test_relay_posts_batches_of_watched_apps_only() -> None:
    lifecycle = Lifecycle()
    bulletin = MemoryBulletin()
    relay = Relay(lifecycle, bulletin, "n1", lambda: ["1", "2"], wall_clock=lambda: 5.0)
    got: asyncio.Queue[bytes] = asyncio.Queue()
    await bulletin.follow(log_topic("1"), got.put_nowait)
    await bulletin.follow(log_topic("2"), lambda data: got.put_nowait(b"wrong app " + data))
    await relay.start()
    try:
        await bulletin.share(watch_key("1"), "n9", orjson.dumps(2e12), 30)
        await relay.refresh()
        lifecycle.emit(ChannelOccupied("1", "news"))
        lifecycle.emit(ChannelOccupied("2", "news"))
        batch = orjson.loads(await asyncio.wait_for(got.get(), 2))
        assert batch == {
            "node": "n1",
            "lines": [
                {"type": "occupied", "app_id": "1", "node": "n1", "t": 5000, "channel": "news"}
            ],
        }
        await asyncio.sleep(relay_module.FLUSH * 2)
        assert got.empty()
    finally:
        await relay.close()


async def test_relay_caps_each_flush_and_counts_the_rest_as_skipped() -> None:
    lifecycle = Lifecycle()
    bulletin = MemoryBulletin()
    relay = Relay(lifecycle, bulletin, "n1", lambda: ["1"])
    async with _watched(relay, bulletin) as got:
        extra = 40
        for i in range(relay_module.MAX_PER_FLUSH + extra):
            lifecycle.emit(ApiMessage("1", "c", f"e{i}", b'{"data":"1"}', None))
        batch = orjson.loads(await asyncio.wait_for(got.get(), 2))
        assert len(batch["lines"]) == relay_module.MAX_PER_FLUSH
        assert batch["skipped"] == extra


async def test_relay_builds_no_more_lines_a_second_than_a_viewer_is_sent() -> None:
    lifecycle = Lifecycle()
    bulletin = MemoryBulletin()
    # a clock that stands still: the bucket gets no new tokens during the test
    relay = Relay(lifecycle, bulletin, "n1", lambda: ["1"], clock=lambda: 100.0)
    async with _watched(relay, bulletin) as got:
        per_batch = relay_module.MAX_PER_FLUSH
        batches = relay_module.MAX_RATE // per_batch + 1
        lines = skipped = 0
        for b in range(batches):
            for i in range(per_batch):
                lifecycle.emit(ApiMessage("1", "c", f"e{b}-{i}", b'{"data":"1"}', None))
            batch = orjson.loads(await asyncio.wait_for(got.get(), 2))
            lines += len(batch["lines"])
            skipped += batch.get("skipped", 0)
        assert lines == relay_module.MAX_RATE
        assert skipped == batches * per_batch - relay_module.MAX_RATE


@contextlib.asynccontextmanager
async def _watched(relay: Relay, bulletin: MemoryBulletin) -> AsyncIterator[asyncio.Queue[bytes]]:
    """Start ``relay`` with app "1" watched from node n9; yield the batches it posts."""
    got: asyncio.Queue[bytes] = asyncio.Queue()
    await bulletin.follow(log_topic("1"), got.put_nowait)
    await relay.start()
    try:
        await bulletin.share(watch_key("1"), "n9", orjson.dumps(2e12), 30)
        await relay.refresh()
        yield got
    finally:
        await relay.close()


async def test_feed_watch_wakes_the_relay_and_fills_the_buffer() -> None:
    lifecycle = Lifecycle()
    bulletin = MemoryBulletin()
    relay = Relay(lifecycle, bulletin, "n1", lambda: ["1"])
    feed = Feed(bulletin, relay, "n1")
    await relay.start()
    try:
        buffer = await feed.watch("1")
        assert lifecycle.active
        lifecycle.emit(ChannelOccupied("1", "news"))
        wake = asyncio.Event()
        buffer.readers.add(wake)
        await asyncio.wait_for(wake.wait(), 2)
        assert [line["type"] for _, line in buffer.lines] == ["occupied"]
        feed.unwatch("1")
        assert feed.viewers("1") == 0
    finally:
        await feed.close()
        await relay.close()


def test_buffer_since_reports_lines_it_already_dropped() -> None:
    buffer = Buffer(size=3)
    buffer.add([{"n": i} for i in range(5)])
    lines, lost = buffer.since(0)
    assert lines == [{"n": 2}, {"n": 3}, {"n": 4}] and lost == 2
    assert buffer.since(4) == ([{"n": 4}], 0)
    assert buffer.since(5) == ([], 0)
