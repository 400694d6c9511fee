"""Every node's half of the console: publish lifecycle lines while somebody watches.

A node whose console watches app X keeps its share of the board ``watch:X`` on the
bulletin ("watching until <wall time>", refreshed well before it runs out), clears it
when its last viewer leaves, and posts ``wake`` on both. The relay of every node
follows ``wake`` and re-reads the boards then and every ``POLL`` seconds. While at least one
app is marked it listens to the lifecycle; records of marked apps are turned into lines
in batches (every ``FLUSH`` seconds, at most ``MAX_PER_FLUSH`` per app, and ``MAX_RATE``
a second with bursts of as many: the most a viewer's stream ever sends on) and posted to
topic ``log:X``, each batch naming this node; the rest is counted as skipped, so an app
busier than a browser can show costs no line building. While nothing is marked the relay
does not listen at all, so the lifecycle builds no record.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

import orjson

from pusherd.brokers.bulletin import Bulletin
from pusherd.console.lines import KINDS, describe
from pusherd.errors import BrokerError
from pusherd.lifecycle import Lifecycle, Record
from pusherd.protocol.ratelimit import TokenBucket

__all__ = [
    "FLUSH",
    "MAX_PER_FLUSH",
    "MAX_RATE",
    "POLL",
    "WATCH_TTL",
    "Relay",
    "log_topic",
    "watch_key",
]

logger = logging.getLogger("pusherd.console")

FLUSH = 0.05
MAX_PER_FLUSH = 250
# Lines a second a viewer is ever sent (the page's speed slider at its maximum).
MAX_RATE = 1000
POLL = 5.0
WATCH_TTL = 15.0
MAX_IN_FLIGHT = 8
WAKE = "wake"


def log_topic(app_id: str) -> str:
    return f"log:{app_id}"


def watch_key(app_id: str) -> str:
    return f"watch:{app_id}"


class Relay:
    """Publishes this node's records of watched apps to the bulletin (see module doc)."""

    def __init__(
        self,
        lifecycle: Lifecycle,
        bulletin: Bulletin,
        node_id: str,
        app_ids: Callable[[], list[str]],
        wall_clock: Callable[[], float] = time.time,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lifecycle = lifecycle
        self._bulletin = bulletin
        self._node = node_id
        self._app_ids = app_ids
        self._wall = wall_clock
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}
        self.watched: frozenset[str] = frozenset()
        self._stop_listening: Callable[[], None] | None = None
        self._pending: list[tuple[Record, int]] = []
        self._counts: dict[str, int] = {}
        self._skipped: dict[str, int] = {}
        self._flush_handle: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._poller: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._bulletin.follow(WAKE, self._woken)
        self._poller = asyncio.get_running_loop().create_task(self._poll_forever())

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        self._set_watched(frozenset())
        if self._flush_handle is not None:
            self._flush_handle.cancel()
        for task in list(self._tasks):
            task.cancel()

    async def refresh(self) -> None:
        """Re-read which apps are watched anywhere in the cluster."""
        now = self._wall()
        watched = set()
        try:
            for app_id in self._app_ids():
                shares = await self._bulletin.shares(watch_key(app_id))
                if any(_until(raw) > now for raw in shares.values()):
                    watched.add(app_id)
        except BrokerError as exc:
            logger.warning("console: cannot read who watches: %s", exc)
            return
        self._set_watched(frozenset(watched))

    def _woken(self, _: bytes) -> None:
        self._spawn(self.refresh())

    async def _poll_forever(self) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(POLL)

    def _set_watched(self, apps: frozenset[str]) -> None:
        self.watched = apps
        if apps and self._stop_listening is None:
            self._stop_listening = self._lifecycle.listen(self._on_record, *KINDS)
        elif not apps and self._stop_listening is not None:
            self._stop_listening()
            self._stop_listening = None

    def _on_record(self, record: Record) -> None:
        app_id = record.app_id
        if app_id not in self.watched:
            return
        count = self._counts.get(app_id, 0)
        bucket = self._buckets.get(app_id)
        if bucket is None:
            bucket = self._buckets[app_id] = TokenBucket(MAX_RATE, self._clock())
        if (
            count >= MAX_PER_FLUSH
            or len(self._tasks) >= MAX_IN_FLIGHT
            or not bucket.take(1, self._clock())
        ):
            self._skipped[app_id] = self._skipped.get(app_id, 0) + 1
        else:
            self._counts[app_id] = count + 1
            self._pending.append((record, int(self._wall() * 1000)))
        if self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_later(FLUSH, self._flush)

    def _flush(self) -> None:
        self._flush_handle = None
        pending, self._pending = self._pending, []
        skipped, self._skipped = self._skipped, {}
        self._counts.clear()
        batches: dict[str, list[dict[str, object]]] = {}
        for record, stamp in pending:
            batches.setdefault(record.app_id, []).append(describe(record, self._node, stamp))
        for app_id in set(batches) | set(skipped):
            body: dict[str, object] = {"node": self._node, "lines": batches.get(app_id, [])}
            if skipped.get(app_id):
                body["skipped"] = skipped[app_id]
            self._spawn(self._post(app_id, orjson.dumps(body)))

    async def _post(self, app_id: str, data: bytes) -> None:
        try:
            await self._bulletin.post(log_topic(app_id), data)
        except BrokerError as exc:
            logger.warning("console: cannot post log lines: %s", exc)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _until(raw: bytes) -> float:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return 0.0
    return float(value) if isinstance(value, int | float) else 0.0
