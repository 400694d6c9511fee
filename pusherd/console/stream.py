"""The console's live log: bounded per-app buffers and the Server-Sent Events stream.

``Feed.watch(app)`` follows the app's log topic on the bulletin, sets its watch mark
(refreshed every ``REFRESH`` s while watched) and wakes every node's relay. Lines land
in the app's ``Buffer``: the last ``BUFFER_LINES`` lines with sequence numbers, so
memory stays bounded however many consoles watch and however fast the app is.

``sse`` serves one reader: it sends what is new every ``TICK`` seconds, at most
``rate`` lines a second (the page's speed slider, 1 to ``MAX_RATE``); when more arrived
it sends only the newest and an ``event: skipped`` with how many it left out, so a
busy app never floods a browser. A reader that does not take a write within ``STALL``
seconds is cut off, like a slow WebSocket consumer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import orjson
from starlette.types import Receive, Send

from pusherd.brokers.bulletin import Bulletin
from pusherd.console.lines import Line
from pusherd.console.relay import MAX_RATE, WAKE, WATCH_TTL, Relay, log_topic, watch_key
from pusherd.errors import BrokerError

__all__ = ["BUFFER_LINES", "MAX_RATE", "STALL", "TICK", "Buffer", "Feed", "sse"]

logger = logging.getLogger("pusherd.console")

BUFFER_LINES = 2000
DEFAULT_RATE = 100
TICK = 0.25
STALL = 10.0
HEARTBEAT = 15.0
REFRESH = 5.0
UNWATCH_AFTER = 2.0


class Buffer:
    """The last ``size`` lines of one app, numbered; each reader has an event to wait on."""

    def __init__(self, size: int = BUFFER_LINES) -> None:
        self.lines: deque[tuple[int, Line]] = deque(maxlen=size)
        self.seq = 0
        self.readers: set[asyncio.Event] = set()

    def add(self, lines: list[Line]) -> None:
        for line in lines:
            self.seq += 1
            self.lines.append((self.seq, line))
        if lines:
            for reader in self.readers:
                reader.set()

    def since(self, seq: int) -> tuple[list[Line], int]:
        """Return the lines after ``seq`` and how many of them the buffer already dropped."""
        lines = self.lines
        if not lines or lines[-1][0] <= seq:
            return [], 0
        first = lines[0][0]
        lost = max(0, first - seq - 1)
        start = max(0, seq + 1 - first)
        return [line for _, line in list(lines)[start:]], lost


class Feed:
    """This node's view of the cluster's lines, one buffer per watched app."""

    def __init__(
        self,
        bulletin: Bulletin,
        relay: Relay,
        node_id: str,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._bulletin = bulletin
        self._relay = relay
        self._node = node_id
        self._wall = wall_clock
        self.buffers: dict[str, Buffer] = {}
        self._viewers: dict[str, int] = {}
        self._unwatch: dict[str, asyncio.TimerHandle] = {}
        self._refresher: asyncio.Task[None] | None = None

    async def watch(self, app_id: str) -> Buffer:
        """Count one more viewer of ``app_id``; start following it if it is the first."""
        self._viewers[app_id] = self._viewers.get(app_id, 0) + 1
        pending = self._unwatch.pop(app_id, None)
        if pending is not None:
            pending.cancel()
        buffer = self.buffers.get(app_id)
        if buffer is None:
            buffer = self.buffers[app_id] = Buffer()

            def take(data: bytes) -> None:
                _take(buffer, data)

            await self._bulletin.follow(log_topic(app_id), take)
            await self._mark(app_id, WATCH_TTL)
        if self._refresher is None:
            self._refresher = asyncio.get_running_loop().create_task(self._refresh_forever())
        return buffer

    def unwatch(self, app_id: str) -> None:
        """One viewer fewer; the app stays followed ``UNWATCH_AFTER`` s (a page reload)."""
        left = self._viewers.get(app_id, 0) - 1
        if left > 0:
            self._viewers[app_id] = left
            return
        self._viewers.pop(app_id, None)
        if app_id not in self._unwatch:
            loop = asyncio.get_running_loop()
            self._unwatch[app_id] = loop.call_later(UNWATCH_AFTER, self._drop_later, app_id)

    def viewers(self, app_id: str) -> int:
        return self._viewers.get(app_id, 0)

    def _drop_later(self, app_id: str) -> None:
        self._unwatch.pop(app_id, None)
        if self._viewers.get(app_id):
            return
        self.buffers.pop(app_id, None)
        task = asyncio.get_running_loop().create_task(self._stop_watching(app_id))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def _stop_watching(self, app_id: str) -> None:
        await self._mark(app_id, 0.0)
        with contextlib.suppress(BrokerError):
            await self._bulletin.unfollow(log_topic(app_id))

    async def close(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        for handle in self._unwatch.values():
            handle.cancel()

    async def _mark(self, app_id: str, ttl: float) -> None:
        """Say "this node watches ``app_id`` for ``ttl`` more seconds" and wake the relays."""
        until = self._wall() + ttl if ttl else 0.0
        try:
            await self._bulletin.share(
                watch_key(app_id), self._node, orjson.dumps(until), WATCH_TTL * 2
            )
            await self._bulletin.post(WAKE, app_id.encode())
        except BrokerError as exc:
            logger.warning("console: cannot say who watches: %s", exc)
        await self._relay.refresh()

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(REFRESH)
            for app_id in list(self.buffers):
                await self._mark(app_id, WATCH_TTL)


def _take(buffer: Buffer, data: bytes) -> None:
    try:
        batch = orjson.loads(data)
    except orjson.JSONDecodeError:
        return
    if not isinstance(batch, dict):
        return
    lines = [line for line in batch.get("lines", ()) if isinstance(line, dict)]
    skipped = batch.get("skipped")
    if isinstance(skipped, int) and skipped > 0:
        lines.append({"type": "skipped", "node": batch.get("node"), "count": skipped})
    buffer.add(lines)


def parse_rate(raw: str | None) -> int:
    if raw is None or not raw.isdigit():
        return DEFAULT_RATE
    return max(1, min(MAX_RATE, int(raw)))


async def sse(
    send: Send,
    receive: Receive,
    buffer: Buffer,
    rate: int,
    backlog: int = 200,
    since: int | None = None,
) -> None:
    """Stream ``buffer`` to one reader as ``text/event-stream`` until it goes away.

    Args:
        send, receive: the request's ASGI channels (the response has not started).
        rate: lines per second at most; what is more is skipped (and said so).
        backlog: how many already buffered lines to send first.
        since: the last line the reader has (``Last-Event-ID``): send from there instead,
            if this buffer has it (a reconnect or a new speed shows no line twice).
    """
    wake = asyncio.Event()
    gone = False

    async def watch_disconnect() -> None:
        nonlocal gone
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                gone = True
                wake.set()
                return

    watcher = asyncio.get_running_loop().create_task(watch_disconnect())
    buffer.readers.add(wake)
    try:
        start = since if since is not None and since <= buffer.seq else buffer.seq - backlog
        await _stream(send, buffer, rate, max(0, start), wake, lambda: not gone)
    finally:
        buffer.readers.discard(wake)
        watcher.cancel()


async def _stream(
    send: Send,
    buffer: Buffer,
    rate: int,
    cursor: int,
    wake: asyncio.Event,
    alive: Callable[[], bool],
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"text/event-stream; charset=utf-8"),
                (b"cache-control", b"no-cache, no-store"),
                (b"x-accel-buffering", b"no"),
            ],
        }
    )
    budget = float(rate)
    idle = 0.0
    loop = asyncio.get_running_loop()
    last = loop.time()
    if not await _write(send, b"retry: 2000\n: pusherd console\n\n"):
        return
    while alive():
        wake.clear()
        lines, lost = buffer.since(cursor)
        cursor = buffer.seq
        now = loop.time()
        budget = min(float(rate), budget + (now - last) * rate)
        last = now
        chunk: list[bytes] = []
        if lines:
            take = int(budget)
            skipped = lost + max(0, len(lines) - take)
            lines = lines[-take:] if take else []
            budget -= len(lines)
            if lines:
                chunk.append(b"event: lines\nid: %d\ndata: %s\n\n" % (cursor, orjson.dumps(lines)))
            if skipped:
                chunk.append(b'event: skipped\ndata: {"count":%d}\n\n' % skipped)
            idle = 0.0
        elif idle >= HEARTBEAT:
            chunk.append(b": keep-alive\n\n")
            idle = 0.0
        if chunk and not await _write(send, b"".join(chunk)):
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(HEARTBEAT):
                await wake.wait()
        waited = loop.time() - now
        idle += waited
        if waited < TICK and alive():
            await asyncio.sleep(TICK - waited)  # gather a tick's lines into one write
            idle += TICK - waited


async def _write(send: Send, data: bytes) -> bool:
    """Send one chunk; False if the reader is gone or did not take it within ``STALL``."""
    message: dict[str, Any] = {"type": "http.response.body", "body": data, "more_body": True}
    try:
        async with asyncio.timeout(STALL):
            await send(message)
    except TimeoutError:
        logger.info("console: slow stream reader cut off")
        return False
    except OSError:
        return False
    return True
