"""The network-cut run shared by the single-node and cluster history tests.

A pusher-js client subscribes to a history channel; a thread publishes ``TOTAL``
numbered events with the Python SDK; every time ``CUT_EVERY`` more events were published
while the client was connected, its TCP socket is destroyed (no close frame) and
pusher-js reconnects and resubscribes by itself. Afterwards the client must hold every
number, and each connection must have delivered one gapless, repeat-free run (the replay
followed by the live events).
"""

from __future__ import annotations

import asyncio
import threading
import time

import pusher

from tests.e2e.conftest import NodeClient

__all__ = ["CUT_EVERY", "RATE", "TOTAL", "numbers", "run_with_cuts", "segments"]

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


class _Progress:
    """How many events the publisher thread sent; awaitable from the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.sent = 0
        self.changed = asyncio.Event()

    def bump(self) -> None:  # called in the loop thread
        self.sent += 1
        self.changed.set()

    async def reached(self, count: int) -> None:
        while self.sent < count:
            self.changed.clear()
            await self.changed.wait()


def _publish(sdk: pusher.Pusher, channel: str, progress: _Progress, stop: threading.Event) -> None:
    """Publish ``0 .. TOTAL - 1`` back to back, at most ``RATE`` a second.

    pusher-js waits a fixed second before it reconnects after a cut, so the 1,000 events
    a channel may retain cover an outage only below 1,000 events a second: the cap keeps
    the test about the server's guarantee, not about a window configured too small.
    """
    started = time.monotonic()
    for n in range(TOTAL):
        if stop.is_set():
            return
        ahead = started + n / RATE - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)  # pacing, not waiting for anything
        sdk.trigger(channel, "num", {"n": n})
        progress.loop.call_soon_threadsafe(progress.bump)


async def _cut_while_publishing(client: NodeClient, progress: _Progress) -> None:
    opened, _ = await client.line("ws_open")  # the first connection
    while progress.sent + CUT_EVERY < TOTAL:
        await progress.reached(progress.sent + CUT_EVERY)
        await client.send("cut")
        # pusher-js is back (and resubscribes by itself)
        opened, _ = await client.line("ws_open", opened + 1, timeout=10)


async def run_with_cuts(client: NodeClient, channel: str, sdk: pusher.Pusher) -> None:
    """Run the publisher and the cuts until the client saw every number (60 s at most)."""
    await client.subscribe(channel)
    await client.subscribed(channel)
    await client.send("watch_numbers", channel=channel, event="num", total=TOTAL)
    progress = _Progress(asyncio.get_running_loop())
    stop = threading.Event()
    publisher = asyncio.create_task(asyncio.to_thread(_publish, sdk, channel, progress, stop))
    cutter = asyncio.create_task(_cut_while_publishing(client, progress))
    try:
        try:
            await client.line("complete", timeout=60)
        except AssertionError:
            missing = sorted(set(range(TOTAL)) - set(numbers(client, channel)))
            raise AssertionError(f"{len(missing)} events never arrived: {missing[:40]}") from None
    finally:
        stop.set()
        cutter.cancel()
        results = await asyncio.gather(publisher, cutter, return_exceptions=True)
    for result in results:
        if isinstance(result, Exception) and not isinstance(result, asyncio.CancelledError):
            raise result
    cuts = [line for line in client.seen(t="result", cmd="cut") if line["ok"]]
    assert len(cuts) >= 3, f"too few network cuts to mean anything: {len(cuts)}"
    assert all(line["value"] == 1 for line in cuts), "every cut destroyed one open socket"
    assert len(client.seen(t="ws_close", code=1006)) == len(cuts)
    assert set(numbers(client, channel)) == set(range(TOTAL))
    for part in filter(None, segments(client, channel)):
        # one connection: the replay, then live, with no gap and no repeat in between
        assert part == list(range(part[0], part[0] + len(part))), part[:20]
