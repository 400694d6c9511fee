"""A side channel between nodes for the debug console: topics and shares.

The console needs two small things from the cluster, none of them on a hot path:

- **topics**: a node posts a batch of log lines; every node following the topic gets it
  (Redis ``PUBLISH``/``SUBSCRIBE`` on ``<prefix>:console:<topic>``);
- **shares**: each node writes its share of a board under its own field (its connection
  count and counters; "I watch app X until t"); readers judge freshness from the data
  (a Redis hash whose TTL only sweeps away boards nobody writes any more).

``MemoryBulletin`` does this in-process for the memory driver (one node); ``RedisBulletin``
uses the same Redis server as ``RedisBroker`` on connections of its own, so a busy
console never queues behind fan-out traffic. Both are built by ``create_bulletin``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from pusherd.config import ScalingConfig
from pusherd.errors import BrokerError

__all__ = ["Bulletin", "MemoryBulletin", "RedisBulletin", "TopicFn", "create_bulletin"]

logger = logging.getLogger("pusherd.bulletin")

TopicFn = Callable[[bytes], None]
_BACKOFF = (0.1, 2.0)


class Bulletin(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def post(self, topic: str, data: bytes) -> None:
        """Hand ``data`` to every node following ``topic`` (this one too)."""
        ...

    async def follow(self, topic: str, fn: TopicFn) -> None:
        """Call ``fn`` with everything posted to ``topic`` from now on (one follower each)."""
        ...

    async def unfollow(self, topic: str) -> None: ...

    async def share(self, board: str, node: str, data: bytes, ttl: float) -> None:
        """Write this node's share of ``board``; the board expires ``ttl`` s after the last."""
        ...

    async def shares(self, board: str) -> dict[str, bytes]:
        """Return every node's share of ``board`` (readers judge freshness from the data)."""
        ...


class MemoryBulletin:
    """The bulletin of a single process."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._followers: dict[str, TopicFn] = {}
        self._boards: dict[str, tuple[dict[str, bytes], float]] = {}

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self._followers.clear()

    async def post(self, topic: str, data: bytes) -> None:
        fn = self._followers.get(topic)
        if fn is not None:
            fn(data)

    async def follow(self, topic: str, fn: TopicFn) -> None:
        self._followers[topic] = fn

    async def unfollow(self, topic: str) -> None:
        self._followers.pop(topic, None)

    async def share(self, board: str, node: str, data: bytes, ttl: float) -> None:
        fields, _ = self._boards.get(board, ({}, 0.0))
        fields[node] = data
        self._boards[board] = (fields, self._clock() + ttl)

    async def shares(self, board: str) -> dict[str, bytes]:
        fields, expires = self._boards.get(board, ({}, 0.0))
        return dict(fields) if expires > self._clock() else {}


class RedisBulletin:
    """The bulletin on a Redis server: one command connection pool, one pub/sub reader."""

    def __init__(self, client: Any, prefix: str = "pusherd") -> None:
        self._redis: Any = client
        self._prefix = f"{prefix}:console:"
        self._pubsub: Any = None
        self._followers: dict[str, TopicFn] = {}
        self._reader: asyncio.Task[None] | None = None
        self._closed = False
        self._changed = asyncio.Event()

    def __repr__(self) -> str:
        return "RedisBulletin()"  # the URL may carry a password

    async def start(self) -> None:
        self._reader = asyncio.get_running_loop().create_task(self._read_forever())

    async def close(self) -> None:
        self._closed = True
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        with contextlib.suppress(Exception):
            await self._redis.aclose()

    async def post(self, topic: str, data: bytes) -> None:
        await self._call("publish", self._prefix + topic, data)

    async def follow(self, topic: str, fn: TopicFn) -> None:
        self._followers[topic] = fn
        pubsub = self._pubsub
        if pubsub is not None:
            with contextlib.suppress(Exception):
                await pubsub.subscribe(self._prefix + topic)
        self._changed.set()

    async def unfollow(self, topic: str) -> None:
        self._followers.pop(topic, None)
        pubsub = self._pubsub
        if pubsub is not None:
            with contextlib.suppress(Exception):
                await pubsub.unsubscribe(self._prefix + topic)

    async def share(self, board: str, node: str, data: bytes, ttl: float) -> None:
        key = self._prefix + board
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hset(key, node, data)
            pipe.pexpire(key, int(ttl * 1000))
            await self._run(pipe.execute())

    async def shares(self, board: str) -> dict[str, bytes]:
        raw = await self._call("hgetall", self._prefix + board)
        return {k.decode(): v for k, v in raw.items()}

    async def _call(self, command: str, *args: Any, **kwargs: Any) -> Any:
        return await self._run(getattr(self._redis, command)(*args, **kwargs))

    @staticmethod
    async def _run(awaitable: Any) -> Any:
        from redis.exceptions import RedisError

        try:
            return await awaitable
        except (RedisError, OSError, TimeoutError) as exc:
            raise BrokerError(f"console bulletin: {type(exc).__name__}") from None

    async def _read_forever(self) -> None:
        """Own the pub/sub connection: (re)connect, (re)subscribe, hand messages out."""
        delay = _BACKOFF[0]
        while not self._closed:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                if not self._followers:
                    self._changed.clear()
                    await self._changed.wait()
                topics = set(self._followers)
                await pubsub.subscribe(*[self._prefix + topic for topic in topics])
                self._pubsub = pubsub
                missing = set(self._followers) - topics  # followed while subscribing
                if missing:
                    await pubsub.subscribe(*[self._prefix + topic for topic in missing])
                delay = _BACKOFF[0]
                while not self._closed:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is None or message.get("type") != "message":
                        continue
                    topic = message["channel"].decode()[len(self._prefix) :]
                    fn = self._followers.get(topic)
                    if fn is not None:
                        try:
                            fn(message["data"])
                        except Exception:
                            logger.exception("console bulletin follower failed")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("console bulletin: pub/sub connection lost (%s)", type(exc).__name__)
                await asyncio.sleep(delay)
                delay = min(_BACKOFF[1], delay * 2)
            finally:
                self._pubsub = None
                with contextlib.suppress(Exception):
                    await pubsub.aclose()


def create_bulletin(scaling: ScalingConfig) -> Bulletin:
    """Return the bulletin for ``[scaling]``: on the broker's Redis, under its prefix.

    One server and Sentinel share the broker's connection target (TLS, password, failover
    included). On Redis Cluster the bulletin stays in-process: the console then shows
    this node's lines and counts only (classic pub/sub and unslotted hashes would need a
    client of their own there).
    """
    if scaling.driver in ("redis", "redis-sentinel"):
        from pusherd.brokers.redis_connect import RedisTarget

        target = RedisTarget.of(scaling)
        return RedisBulletin(target.command_client(target.sentinel()), scaling.prefix)
    if scaling.driver != "memory":
        logger.warning("the console shows this node only on %s", scaling.driver)
    return MemoryBulletin()
