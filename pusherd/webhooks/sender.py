"""``WebhookSender``: per-target workers, retries with backoff, delayed events, bounds.

See the package docstring for the guarantees; this module holds the moving parts.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from pusherd import __version__
from pusherd.apps.base import App, WebhookTarget
from pusherd.config import WebhookSettings
from pusherd.lifecycle import Lifecycle, WebhookAttempt
from pusherd.metrics import Metrics
from pusherd.webhooks.queue import Item, SlotState, TargetQueue, describe_target
from pusherd.webhooks.request import build_request

__all__ = ["WebhookSender"]

log = logging.getLogger("pusherd.webhooks")

_DROP_LOG_INTERVAL = 10.0
# An empty queue whose worker waited this long is dropped (a later event makes a new
# one): queues of targets removed or changed by a reload do not pile up.
IDLE_QUEUE_SECONDS = 300.0


class WebhookSender:
    """Delivers webhook events for every app; one instance per server process.

    Args:
        settings: delays, retry budget, timeouts, batching and queue bounds.
        metrics: where to count deliveries, failures, retries and drops.
        clock: wall clock for ``time_ms`` (unix seconds).
        client: a shared ``httpx.AsyncClient``; one is created (and closed) if omitted.
        backoff_base: first retry delay in seconds; doubles per attempt.
        backoff_cap: largest retry delay in seconds.
        lifecycle: told about every POST attempt (``WebhookAttempt``) when someone listens.
    """

    def __init__(
        self,
        settings: WebhookSettings,
        metrics: Metrics | None = None,
        *,
        clock: Callable[[], float] = time.time,
        client: httpx.AsyncClient | None = None,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        lifecycle: Lifecycle | None = None,
    ) -> None:
        self._lifecycle = lifecycle or Lifecycle()
        self._settings = settings
        self._metrics = metrics
        self._clock = clock
        self._client = client
        self._owns_client = client is None
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._random = random.Random()
        self._prefix = secrets.token_hex(6)
        self._event_ids = itertools.count(1)
        self._delivery_ids = itertools.count(1)
        self._queues: dict[tuple[str, int, WebhookTarget], TargetQueue] = {}
        self._timers: set[asyncio.Task[None]] = set()
        self._depth = 0
        self._drained = asyncio.Event()
        self._stopping = asyncio.Event()  # interrupts batch windows and backoff sleeps
        self._hurry = asyncio.Event()  # makes delayed events confirm early during stop()
        self._started = False
        self._stopped = False
        self._dropped_unlogged = 0
        self._last_drop_log = float("-inf")

    # public API ------------------------------------------------------------------
    async def start(self) -> None:
        """Create the HTTP client and start the workers of queues filled before start."""
        if self._started:
            return
        self._started = True
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self._settings.timeout,
                follow_redirects=False,
                limits=httpx.Limits(max_connections=1000, max_keepalive_connections=100),
                headers={"User-Agent": f"pusherd-webhooks/{__version__}"},
            )
        for queue in self._queues.values():
            self._ensure_worker(queue)

    async def stop(self, grace: float) -> None:
        """Deliver what is pending within ``grace`` seconds, then drop the rest.

        Delayed events are confirmed no later than half-way through ``grace`` so they can
        still be delivered; anything left at the end is counted as dropped.
        """
        if self._stopped:
            return
        loop = asyncio.get_running_loop()
        hurry = loop.call_later(max(grace, 0.0) / 2, self._hurry.set)
        self._stopping.set()
        for queue in self._queues.values():
            queue.wake.set()
        if self._started:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(grace, 0.0)):
                    while self._depth:
                        self._drained.clear()
                        await self._drained.wait()
        hurry.cancel()
        self._stopped = True
        tasks = list(self._timers)
        for queue in self._queues.values():
            left = len(queue)
            if left:
                log.warning(
                    "webhooks: shutdown: dropping %d undelivered event(s) for target %s of app %s",
                    left,
                    queue.where,
                    queue.app.id,
                )
                self._count_dropped(queue.app, left)
            if queue.worker is not None:
                tasks.append(queue.worker)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._queues.clear()
        self._depth = 0
        self._report_depth()
        if self._owns_client and self._client is not None:
            await self._client.aclose()

    def wants(self, app: App, name: str) -> bool:
        """Return whether any target of ``app`` takes events named ``name``."""
        if not app.webhooks:  # the common case, on every subscribe and unsubscribe
            return False
        return any(name in target.event_types for target in app.webhooks)

    def emit(self, app: App, event: dict[str, Any]) -> None:
        """Queue ``event`` (e.g. ``{"name": "channel_occupied", "channel": "x"}``) now."""
        self._queue_event(app, event, SlotState.READY)

    def emit_later(
        self,
        app: App,
        event: dict[str, Any],
        delay: float,
        confirm: Callable[[], Awaitable[bool]],
    ) -> None:
        """Queue ``event`` after ``delay`` seconds if ``await confirm()`` is then true.

        The event keeps its place: later events for the same channel and target wait for it.
        """
        slots = self._queue_event(app, event, SlotState.PENDING)
        if slots:
            task = asyncio.get_running_loop().create_task(self._resolve(slots, delay, confirm))
            self._timers.add(task)
            task.add_done_callback(self._timers.discard)

    # queueing --------------------------------------------------------------------
    def _queue_event(
        self, app: App, event: dict[str, Any], state: SlotState
    ) -> list[tuple[TargetQueue, Item]]:
        """Stamp ``event`` and queue it on every target of ``app`` that takes it."""
        if not app.webhooks:
            return []
        queues = self._targets(app, event)
        if not queues:
            return []
        item_event, time_ms = self._stamp(event)
        channel = event.get("channel")
        slots = []
        for queue in queues:
            item = Item(channel, item_event, time_ms, state)
            if self._enqueue(queue, item):
                slots.append((queue, item))
        return slots

    def _targets(self, app: App, event: dict[str, Any]) -> list[TargetQueue]:
        name = event.get("name", "")
        channel = event.get("channel")
        out = []
        for index, target in enumerate(app.webhooks):
            if target.wants(name, channel):
                # Keyed by the target itself too: a reconfigured target gets a fresh queue
                # while the old one drains.
                key = (app.id, index, target)
                queue = self._queues.get(key)
                if queue is None:
                    where = describe_target(index, target.url)
                    queue = self._queues[key] = TargetQueue(app, target, where)
                    if self._started and not self._stopped:
                        self._ensure_worker(queue)
                queue.app = app
                out.append(queue)
        return out

    def _stamp(self, event: dict[str, Any]) -> tuple[dict[str, Any], int]:
        stamped = dict(event)
        stamped["id"] = f"{self._prefix}-{next(self._event_ids)}"
        return stamped, int(self._clock() * 1000)

    def _enqueue(self, queue: TargetQueue, item: Item) -> bool:
        if self._stopped:
            self._count_dropped(queue.app, 1)
            log.debug("webhooks: stopped, dropped %s", item.event.get("name"))
            return False
        if self._depth >= self._settings.max_queue:
            self._count_dropped(queue.app, 1)
            self._log_drop()
            return False
        queue.items.append(item)
        self._depth += 1
        self._report_depth()
        queue.wake.set()
        return True

    def _done(self, count: int) -> None:
        self._depth -= count
        self._report_depth()
        if self._depth <= 0:
            self._drained.set()

    def _log_drop(self) -> None:
        self._dropped_unlogged += 1
        now = time.monotonic()
        if now - self._last_drop_log >= _DROP_LOG_INTERVAL:
            log.warning(
                "webhooks: queue full (%d events), dropped %d new event(s)",
                self._settings.max_queue,
                self._dropped_unlogged,
            )
            self._last_drop_log = now
            self._dropped_unlogged = 0

    async def _resolve(
        self,
        slots: list[tuple[TargetQueue, Item]],
        delay: float,
        confirm: Callable[[], Awaitable[bool]],
    ) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self._hurry.wait()
        try:
            async with asyncio.timeout(self._settings.timeout):
                send = bool(await confirm())
        except Exception:
            # Unknown is treated as "still true": at-least-once beats silently losing it.
            log.exception("webhooks: confirm() of a delayed %s failed", slots[0][1].event["name"])
            send = True
        for queue, item in slots:
            if send:
                item.state = SlotState.READY
            else:
                with contextlib.suppress(ValueError):
                    queue.items.remove(item)
                    self._done(1)
            queue.wake.set()

    # delivery --------------------------------------------------------------------
    def _ensure_worker(self, queue: TargetQueue) -> None:
        if queue.worker is None:
            queue.worker = asyncio.get_running_loop().create_task(self._work(queue))

    async def _work(self, queue: TargetQueue) -> None:
        while True:
            items = await self._next_batch(queue)
            if items is None:  # idle: forget the queue, end the worker
                for key, known in list(self._queues.items()):
                    if known is queue:
                        del self._queues[key]
                queue.worker = None
                return
            try:
                await self._deliver(queue, items)
            finally:
                queue.inflight -= len(items)
                self._done(len(items))

    async def _next_batch(self, queue: TargetQueue) -> list[Item] | None:
        """The next items to send, or None once the queue has been empty for a while."""
        limit = max(1, self._settings.max_batch_size) if queue.target.batch else 1
        while True:
            queue.wake.clear()
            items = queue.eligible(limit)
            if items:
                break
            try:
                async with asyncio.timeout(IDLE_QUEUE_SECONDS):
                    await queue.wake.wait()
            except TimeoutError:
                if not len(queue) and not self._stopping.is_set():
                    return None
        if queue.target.batch and len(items) < limit and not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._settings.batch_window_ms / 1000):
                    while len(items) < limit and not self._stopping.is_set():
                        queue.wake.clear()
                        await queue.wake.wait()
                        items = queue.eligible(limit)
        queue.take(items)
        return items

    def _request(self, queue: TargetQueue, items: list[Item]) -> tuple[bytes, dict[str, str]]:
        return build_request(
            key=queue.app.key,
            secret=queue.app.secret,
            time_ms=items[0].time_ms,
            events=[item.event for item in items],
            extra_headers=queue.target.headers,
            delivery_id=f"{self._prefix}-d{next(self._delivery_ids)}",
        )

    async def _deliver(self, queue: TargetQueue, items: list[Item]) -> None:
        body, headers = self._request(queue, items)
        loop = asyncio.get_running_loop()
        first = loop.time()
        attempt = 0
        while True:
            started = loop.time()
            problem, status = await self._post(queue, body, headers)
            if self._lifecycle.wants(WebhookAttempt):
                self._report(queue, items, status, loop.time() - started, attempt, problem, first)
            if problem is None:
                if queue.failing:
                    queue.failing = False
                    log.info("webhooks: target %s of app %s recovered", queue.where, queue.app.id)
                now_ms = self._clock() * 1000
                for item in items:
                    self._count_sent(queue.app, max(0.0, (now_ms - item.time_ms) / 1000))
                return
            if self._metrics is not None:
                self._metrics.webhook_failed(queue.app.id)
            elapsed = loop.time() - first
            if elapsed >= self._settings.retry_for:
                log.warning(
                    "webhooks: giving up on %d event(s) for target %s of app %s "
                    "after %d attempt(s) in %.0fs (last: %s)",
                    len(items),
                    queue.where,
                    queue.app.id,
                    attempt + 1,
                    elapsed,
                    problem,
                )
                self._count_dropped(queue.app, len(items))
                return
            log.log(
                logging.DEBUG if queue.failing else logging.WARNING,
                "webhooks: POST to target %s of app %s failed (%s); retrying",
                queue.where,
                queue.app.id,
                problem,
            )
            queue.failing = True
            pause = min(self._backoff_cap, self._backoff_base * 2**attempt)
            if self._stopping.is_set():
                pause = min(pause, self._backoff_base)
            pause *= 0.5 + self._random.random() / 2
            pause = min(pause, self._settings.retry_for - elapsed)
            attempt += 1
            if not self._stopping.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(pause):
                        await self._stopping.wait()
            else:
                await asyncio.sleep(pause)
            if self._metrics is not None:
                self._metrics.webhook_retried(queue.app.id)

    async def _post(
        self, queue: TargetQueue, body: bytes, headers: dict[str, str]
    ) -> tuple[str | None, int | None]:
        """POST once; return (``None`` on 2xx, else a short log-safe reason; the status)."""
        assert self._client is not None
        try:
            response = await self._client.post(queue.target.url, content=body, headers=headers)
        except Exception as exc:  # httpx.HTTPError, but a bad URL must not kill the worker either
            return type(exc).__name__, None
        if 200 <= response.status_code < 300:
            return None, response.status_code
        return f"HTTP {response.status_code}", response.status_code

    def _report(
        self,
        queue: TargetQueue,
        items: list[Item],
        status: int | None,
        seconds: float,
        attempt: int,
        problem: str | None,
        first: float,
    ) -> None:
        if problem is None:
            outcome = "sent"
        elif asyncio.get_running_loop().time() - first >= self._settings.retry_for:
            outcome = "failed"
        else:
            outcome = "retry"
        names = tuple(str(item.event.get("name", "")) for item in items)
        self._lifecycle.emit(
            WebhookAttempt(queue.app.id, queue.where, names, status, seconds, attempt + 1, outcome)
        )

    # metrics ---------------------------------------------------------------------
    def _count_sent(self, app: App, seconds: float) -> None:
        if self._metrics is not None:
            self._metrics.webhook_sent(app.id, seconds)

    def _count_dropped(self, app: App, count: int) -> None:
        if self._metrics is not None:
            self._metrics.webhook_dropped(app.id, count)

    def _report_depth(self) -> None:
        if self._metrics is not None:
            self._metrics.webhook_queue(self._depth)
