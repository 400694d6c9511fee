"""Fan-out on Redis Cluster: sharded pub/sub, one subscriber connection per master.

Classic ``PUBLISH`` in Redis Cluster is broadcast over the cluster bus to every node, so
every shard carries every message. ``SPUBLISH`` goes only to the master (and replicas)
owning the channel's hash slot, so fan-out grows with the number of shards. A node
subscribes each channel (``SSUBSCRIBE``) on the master owning its slot: one
``RedisPubSub`` reader (``sharded=True``) per master, each holding the channels of its
slots.

When any reader fails (its master died, or Redis dropped a subscription because the slot
moved), every reader is rebuilt from a fresh slot map, with backoff, until all are
subscribed again; ``ok`` is False meanwhile, so the broker buffers publishes for replay.
``server_id`` names every master's ``run_id``: peers agree on it only once they all
listen on the same masters (the replay waits for that).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from redis.asyncio.cluster import RedisCluster

from pusherd.brokers.base import DeliverFn
from pusherd.brokers.redis_connect import RedisTarget
from pusherd.brokers.redis_pubsub import BACKOFF, RedisPubSub, pubsub_name
from pusherd.errors import BrokerError

__all__ = ["ShardedPubSub"]

logger = logging.getLogger(__name__)


class ShardedPubSub:
    """``RedisPubSub``'s interface over every master of a Redis Cluster.

    Args:
        cluster: the broker's command client (its slot map says who owns a channel).
        target: builds a subscriber connection pool per master.
        node_id, idle_timeout, on_ready, prefix: as for ``RedisPubSub``.
    """

    def __init__(
        self,
        cluster: RedisCluster,
        target: RedisTarget,
        node_id: str,
        idle_timeout: float,
        on_ready: Callable[[], None],
        prefix: str = "pusherd",
    ) -> None:
        self._cluster = cluster
        self._target = target
        self._node = node_id
        self._idle = idle_timeout
        self._on_ready = on_ready
        self._prefix = prefix
        self._channels: dict[bytes, tuple[str, str]] = {}
        self._readers: dict[str, RedisPubSub] = {}
        self._deliver: DeliverFn | None = None
        self.failed = False
        self.closed = False
        self._up = False  # every reader of the current build became ready

    @property
    def deliver(self) -> DeliverFn | None:
        return self._deliver

    @deliver.setter
    def deliver(self, deliver: DeliverFn | None) -> None:
        self._deliver = deliver
        for reader in self._readers.values():
            reader.deliver = deliver

    @property
    def ok(self) -> bool:
        return bool(self._readers) and all(reader.ok for reader in self._readers.values())

    @property
    def server_id(self) -> str:
        if not self.ok:
            return ""
        return ",".join(sorted(reader.server_id for reader in self._readers.values()))

    def shard_of(self, app_id: str, channel: str) -> str:
        """The ``host:port`` of the master that owns this channel's slot."""
        name = pubsub_name(app_id, channel, self._prefix)
        slot = self._cluster.keyslot(name)
        return str(self._cluster.nodes_manager.get_node_from_slot(slot).name)

    async def subscribe(self, app_id: str, channel: str) -> None:
        name = pubsub_name(app_id, channel, self._prefix)
        if self.closed:
            raise BrokerError("redis is unreachable")
        reader = self._readers.get(self.shard_of(app_id, channel)) if self._readers else None
        if reader is None:
            raise BrokerError("redis is unreachable")
        fresh = name not in self._channels
        self._channels[name] = (app_id, channel)  # a rebuild meanwhile subscribes it too
        try:
            await reader.subscribe(app_id, channel)
        except BrokerError:
            if fresh:
                self._channels.pop(name, None)
            raise

    async def unsubscribe(self, app_id: str, channel: str) -> None:
        name = pubsub_name(app_id, channel, self._prefix)
        if self._channels.pop(name, None) is None:
            return
        for reader in list(self._readers.values()):
            await reader.unsubscribe(app_id, channel)

    async def ping(self) -> None:
        for reader in list(self._readers.values()):
            await reader.ping()

    def close(self) -> None:
        self.closed = True
        for reader in self._readers.values():
            reader.close()
        self._channels.clear()
        self._deliver = None

    async def disconnect(self) -> None:
        for reader in list(self._readers.values()):
            await reader.disconnect()

    def _reader_ready(self) -> None:
        if self.ok:
            if self.failed:
                logger.info("redis cluster subscribers restored")
            self.failed, self._up = False, True
            self._on_ready()

    async def _build(self) -> dict[str, RedisPubSub]:
        """One reader per master of a freshly read slot map, holding its channels."""
        await self._cluster.nodes_manager.initialize()
        readers: dict[str, RedisPubSub] = {}
        for node in self._cluster.get_primaries():
            reader = RedisPubSub(
                self._target.node_pool(node.host, int(node.port)),
                self._node,
                self._idle,
                self._reader_ready,
                self._prefix,
                sharded=True,
                retry=False,
            )
            reader.deliver = self._deliver
            readers[node.name] = reader
        for name, (app_id, channel) in self._channels.items():
            owner = readers.get(self.shard_of(app_id, channel))
            if owner is None:
                raise BrokerError("the redis cluster slot map has no master for a channel")
            owner.adopt(name, app_id, channel)
        return readers

    async def run(self) -> None:
        """Until ``closed``: build the readers, run them, rebuild when one fails."""
        delay = BACKOFF[0]
        while not self.closed:
            tasks: list[asyncio.Task[None]] = []
            try:
                self._up = False
                self._readers = await self._build()
                tasks = [asyncio.create_task(reader.run()) for reader in self._readers.values()]
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                if self._up:  # had been up: start over quickly
                    delay = BACKOFF[0]
                raise BrokerError("a redis cluster subscriber connection failed")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not self.failed:
                    logger.warning("redis cluster subscribers failed: %s", exc)
                self.failed = True
            finally:
                for task in tasks:
                    task.cancel()
                if tasks:
                    await asyncio.wait(tasks)
                readers, self._readers = self._readers, {}
                for reader in readers.values():
                    reader.retire()
                    with contextlib.suppress(Exception):
                        await reader.disconnect()
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF[1])
