"""The Redis broker: several pusherd nodes share channels, presence and users.

- **Topologies** (``pusherd.brokers.redis_connect.RedisTarget``): one server, a
  Sentinel-managed master, or Redis Cluster; TLS and passwords on each. Every key and
  pub/sub channel starts with the ``prefix``.
- **Fan-out**: one Redis pub/sub channel per (app, Pusher channel), read by
  ``pusherd.brokers.redis_pubsub.RedisPubSub`` (one connection per node, re-subscribed
  after every reconnect); on Redis Cluster sharded pub/sub through
  ``pusherd.brokers.redis_sharded.ShardedPubSub`` (one connection per master).
- **Shared state** lives in Redis and is changed by the Lua scripts of
  ``pusherd.brokers.redis_scripts``. Every entry is listed in the adding node's item set,
  so a dead node's entries can be removed at once.
- **Heartbeat and reaper**: each node refreshes a heartbeat key with a TTL of
  ``node_timeout`` every ``heartbeat_interval``. The node that takes the reaper lock
  removes the entries of nodes whose heartbeat expired and reports the members and
  channels that were left empty, once cluster-wide. A node's first heartbeat does the
  same for entries a previous process with its id left (a restart under a fixed id).
- **Outages**: ``ready`` is False and state calls raise ``BrokerError``. ``publish`` never
  loses an event for this node's sockets: while Redis (or this node's subscriber
  connection) is down, it delivers the envelope locally at once and keeps it in a bounded
  replay buffer. Once the subscriber is back with every channel, the buffer is published
  in order, marked with this node's id so that only the other nodes deliver it; new
  publishes queue behind it until it is empty. The replay waits until every peer's
  listening mark names the server(s) this node's subscriber is on (their ``run_id``), so
  after a failover marks replicated from the old master do not count. The peers are the
  nodes the last heartbeat before the outage saw and every node registered once Redis is
  back: a peer that registered after that heartbeat is only found in the registry (and,
  when Redis lost the registry, once it registered again, within a heartbeat). A node
  back from an outage reaps no peer for one node timeout: their heartbeats lapsed in the
  same outage.
- **Rebuild**: a local mirror of what this node added is written back in one transaction
  when the node finds itself unregistered (Redis restarted empty, or this node was reaped
  while cut off), after a mutation failed, or after a failed heartbeat (a failover may
  have lost the old master's last writes). Mutations wait meanwhile, so a restore never
  resurrects an entry removed concurrently.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import uuid
from collections.abc import AsyncIterator, Iterable
from typing import cast

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ClusterError, RedisError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from pusherd.brokers.base import ChannelStats, DeliverFn, Envelope, PresenceJoin, Reaped, ReapedFn
from pusherd.brokers.redis_connect import RedisTarget
from pusherd.brokers.redis_history import RedisHistory
from pusherd.brokers.redis_pubsub import (
    BACKOFF,
    REPLAY_LIMIT,
    RedisPubSub,
    Replay,
    decode_envelope,
    encode_envelope,
    pubsub_name,
)
from pusherd.brokers.redis_scripts import KeySpace, Mirror, NodeScripts
from pusherd.brokers.redis_sharded import ShardedPubSub
from pusherd.errors import BrokerError
from pusherd.metrics import Metrics
from pusherd.protocol.history import Retained
from pusherd.protocol.presence import Member
from pusherd.types import JSON

__all__ = ["RedisBroker", "decode_envelope", "encode_envelope"]

logger = logging.getLogger(__name__)

_CONNECT_TIMEOUT = 2.0
_COMMAND_TIMEOUT = 5.0
_FAILURES = (RedisError, OSError, TimeoutError)


class RedisBroker:
    """A ``Broker`` that shares state between nodes through Redis.

    Args:
        url: ``redis://`` or ``rediss://`` URL, possibly with a password (never logged);
            used when ``target`` is not given.
        node_id: this node's unique id (a random one if empty).
        heartbeat_interval: seconds between heartbeats and reaper runs.
        node_timeout: seconds without a heartbeat after which a node is reaped.
        metrics: counts broker calls and failures.
        replay_limit: envelopes kept for re-publishing after an outage (more are dropped
            from the replay, still delivered locally, and counted).
        prefix: starts every key and pub/sub channel name (``[scaling] prefix``).
        target: the deployment (one server, Sentinel, Redis Cluster; TLS, password).
    """

    #: State calls are round trips to Redis.
    never_waits = False
    #: Fan-out is Redis pub/sub: the node subscribes per channel it has subscribers on.
    node_subscriptions = True

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        node_id: str = "",
        heartbeat_interval: float = 5.0,
        node_timeout: float = 15.0,
        metrics: Metrics | None = None,
        replay_limit: int = REPLAY_LIMIT,
        prefix: str = "pusherd",
        target: RedisTarget | None = None,
    ) -> None:
        self.node_id = node_id or f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"
        self._interval = heartbeat_interval
        self._timeout = node_timeout
        self._metrics = metrics
        self.target = target if target is not None else RedisTarget(url=url)
        self.prefix = prefix
        self._sentinel = self.target.sentinel()
        self._client = self.target.command_client(self._sentinel)
        self.keys = KeySpace.for_prefix(prefix, cluster=self.target.cluster)
        self._scripts = NodeScripts(
            self._client, self.node_id, _ms(node_timeout), self.keys, self.target.node_client
        )
        self._history = RedisHistory(self._client, self.keys, prefix, self.target.cluster)
        # one script numbers and publishes, except on Redis Cluster (SPUBLISH afterwards)
        self.history_in_order = not self.target.cluster
        self._mirror = Mirror()
        self._reaped: ReapedFn | None = None
        idle = max(node_timeout, 3 * heartbeat_interval)
        self._pubsub: RedisPubSub | ShardedPubSub
        if self.target.cluster:
            self._pubsub = ShardedPubSub(
                cast(RedisCluster, self._client),
                self.target,
                self.node_id,
                idle,
                self._wake_drain,
                prefix,
            )
        else:
            self._pubsub = RedisPubSub(
                self.target.subscriber_pool(self._sentinel),
                self.node_id,
                idle,
                self._wake_drain,
                prefix,
            )
        self._replay = Replay(
            self._send,
            self.node_id,
            replay_limit,
            lambda: self._pubsub.ok,
            # a live peer resubscribes within its reconnect backoff after Redis is back
            node_timeout + 2 * BACKOFF[1],
            self._scripts.listeners,
            lambda: self._pubsub.server_id,
            prefix,
            metrics,
        )
        self._state_ok = False
        self._had_state = False  # a heartbeat succeeded once
        self._reap_after = 0.0  # loop time before which this node does not reap
        self._beat_ok_at = 0.0  # loop time the last heartbeat succeeded
        # the first beat drops whatever a previous process with this node id left
        self._restore_needed = True
        self._tasks: list[asyncio.Task[None]] = []
        self._wake = asyncio.Event()
        self._closed = False
        # mutations run concurrently with each other, never with a restore
        self._mutations = 0
        self._no_mutations = asyncio.Event()
        self._no_mutations.set()
        self._no_restore = asyncio.Event()
        self._no_restore.set()

    def __repr__(self) -> str:
        return f"RedisBroker(node_id={self.node_id!r}, {self.target.describe()})"

    # Fanout -----------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        return bool(self._tasks) and not self._closed and self._pubsub.ok and self._state_ok

    @property
    def replay_pending(self) -> int:
        """Envelopes delivered locally during an outage and not yet re-published."""
        return self._replay.pending

    async def start(self, deliver: DeliverFn, reaped: ReapedFn | None = None) -> None:
        self._pubsub.deliver = self._replay.deliver = deliver
        self._reaped = reaped
        node = self.node_id
        self._tasks = [
            asyncio.create_task(self._pubsub.run(), name=f"pusherd-redis-reader-{node}"),
            asyncio.create_task(self._beat_loop(), name=f"pusherd-redis-heartbeat-{node}"),
            asyncio.create_task(self._replay.run(), name=f"pusherd-redis-replay-{node}"),
        ]
        # give the first connection a moment so ``ready`` is usually True on return
        deadline = asyncio.get_running_loop().time() + _CONNECT_TIMEOUT
        while not self.ready and not self._pubsub.failed:
            if asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.01)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            # the loops also stop on ``_closed``, should a library swallow the cancel
            await asyncio.wait(self._tasks, timeout=_COMMAND_TIMEOUT)
        self._pubsub.close()
        self._replay.close()
        if self._tasks:
            try:
                await self._scripts.reap(self.node_id)
            except _FAILURES as exc:
                logger.warning("could not remove this node's state from redis: %s", exc)
        self._mirror = Mirror()
        await self._scripts.aclose()
        await self._client.aclose()
        await self._pubsub.disconnect()
        if self._sentinel is not None:
            for client in self._sentinel.sentinels:
                await client.aclose()

    async def publish(self, envelope: Envelope) -> None:
        """Publish through Redis; during an outage deliver locally now and replay later."""
        if self._closed:
            raise BrokerError("the redis broker is closed")
        if self._metrics is not None:
            self._metrics.broker_call("publish")
        if not self._replay.pending and self._pubsub.ok:
            name = pubsub_name(envelope.app_id, envelope.channel, self.prefix)
            try:
                await self._send(name, encode_envelope(envelope))
                return
            except _FAILURES as exc:
                if self._metrics is not None:
                    self._metrics.broker_error("publish")
                logger.warning("redis publish failed, delivering locally: %s", exc)
        self._replay.add(envelope)

    async def _send(self, name: bytes, data: bytes) -> None:
        """``PUBLISH``, or ``SPUBLISH`` (to the shard owning the channel) on Redis Cluster."""
        if self.target.cluster:
            await self._client.spublish(name, data)
        else:
            await self._client.publish(name, data)

    def _wake_drain(self) -> None:
        self._wake.set()  # the heartbeat re-registers state at once if needed
        self._replay.wake()

    async def subscribe(self, app_id: str, channel: str) -> None:
        if self._closed:
            raise BrokerError("the redis broker is closed")
        await self._pubsub.subscribe(app_id, channel)

    async def unsubscribe(self, app_id: str, channel: str) -> None:
        await self._pubsub.unsubscribe(app_id, channel)

    # ChannelState -----------------------------------------------------------------
    async def add_subscriber(self, app_id: str, channel: str, socket_id: str) -> int:
        async with self._op("add_subscriber", mutates=True):
            count = await self._scripts.add_subscriber(app_id, channel, socket_id)
            self._mirror.subscribers.add((app_id, channel, socket_id))
        return count

    async def remove_subscriber(self, app_id: str, channel: str, socket_id: str) -> int:
        async with self._op("remove_subscriber", mutates=True):
            self._mirror.subscribers.discard((app_id, channel, socket_id))
            return await self._scripts.remove_subscriber(app_id, channel, socket_id)

    async def channels(self, app_id: str, prefix: str = "") -> dict[str, ChannelStats]:
        async with self._op("channels"):
            found = await self._scripts.channels(app_id, prefix)
        return {name: ChannelStats(count, users) for name, count, users in found}

    async def channel_stats(self, app_id: str, channel: str) -> ChannelStats:
        async with self._op("channel_stats"):
            return ChannelStats(*await self._scripts.channel_stats(app_id, channel))

    async def cache_set(self, app_id: str, channel: str, payload: bytes, ttl: float) -> None:
        async with self._op("cache_set"):
            await self._client.set(
                self.keys.single_key("cache", app_id, channel), payload, px=_ms(ttl)
            )

    async def cache_get(self, app_id: str, channel: str) -> tuple[bytes, float] | None:
        async with self._op("cache_get"):
            return await self._scripts.cache_get(app_id, channel)

    # PresenceState ----------------------------------------------------------------
    async def join_presence(
        self, app_id: str, channel: str, socket_id: str, member: Member, max_members: int
    ) -> PresenceJoin:
        async with self._op("join_presence", mutates=True):
            is_new, stored, members, refused = await self._scripts.join_presence(
                app_id, channel, socket_id, member, max_members
            )
            if not refused:
                self._mirror.presence[(app_id, channel, socket_id)] = member
        if refused:
            return PresenceJoin(False, member, members, refused=True)
        return PresenceJoin(is_new, Member.from_json(stored), members)

    async def leave_presence(self, app_id: str, channel: str, socket_id: str) -> Member | None:
        async with self._op("leave_presence", mutates=True):
            self._mirror.presence.pop((app_id, channel, socket_id), None)
            gone = await self._scripts.leave_presence(app_id, channel, socket_id)
        return None if gone is None else Member.from_json(gone)

    async def members(self, app_id: str, channel: str) -> dict[str, JSON]:
        async with self._op("members"):
            return await self._scripts.members(app_id, channel)

    # UserState --------------------------------------------------------------------
    async def add_connection(self, app_id: str, socket_id: str, limit: int) -> bool:
        async with self._op("add_connection", mutates=True):
            added = await self._scripts.add_connection(app_id, socket_id, limit)
            if added:
                self._mirror.connections.add((app_id, socket_id))
        return added

    async def remove_connection(self, app_id: str, socket_id: str) -> None:
        async with self._op("remove_connection", mutates=True):
            self._mirror.connections.discard((app_id, socket_id))
            await self._scripts.remove_connection(app_id, socket_id)

    async def connection_count(self, app_id: str) -> int:
        async with self._op("connection_count"):
            return int(await self._client.hlen(self.keys.key("c", app_id)))

    async def sign_in(self, app_id: str, user_id: str, socket_id: str) -> bool:
        async with self._op("sign_in", mutates=True):
            came_online = await self._scripts.sign_in(app_id, user_id, socket_id)
            self._mirror.users.add((app_id, user_id, socket_id))
        return came_online

    async def sign_out(self, app_id: str, user_id: str, socket_id: str) -> bool:
        async with self._op("sign_out", mutates=True):
            self._mirror.users.discard((app_id, user_id, socket_id))
            return await self._scripts.sign_out(app_id, user_id, socket_id)

    async def online(self, app_id: str, user_ids: Iterable[str]) -> set[str]:
        users = list(user_ids)
        if not users:
            return set()
        async with self._op("online"):
            return await self._scripts.online(app_id, users)

    # Marks ------------------------------------------------------------------------
    async def claim(self, app_id: str, key_: str, ttl: float) -> bool:
        async with self._op("claim"):
            return bool(
                await self._client.set(
                    self.keys.single_key("mark", app_id, key_), 1, nx=True, px=_ms(ttl)
                )
            )

    async def release(self, app_id: str, key_: str) -> bool:
        async with self._op("release"):
            return bool(await self._client.delete(self.keys.single_key("mark", app_id, key_)))

    # History ----------------------------------------------------------------------
    async def publish_history(
        self, envelope: Envelope, max_events: int, max_age: float, max_bytes: int
    ) -> int:
        """Retain and publish in one script; during an outage deliver like ``publish``.

        ``max_bytes`` does not apply: Redis memory is bounded by count, age and idle
        expiry per channel (and by Redis' own ``maxmemory``).
        """
        if self._closed:
            raise BrokerError("the redis broker is closed")
        if self._metrics is not None:
            self._metrics.broker_call("publish_history")
        if not self._replay.pending and self._pubsub.ok:
            try:
                return await self._history.append(envelope, max_events, max_age)
            except _FAILURES as exc:
                if self._metrics is not None:
                    self._metrics.broker_error("publish_history")
                logger.warning("redis history append failed, delivering locally: %s", exc)
        # not retained: delivered now on this node, re-published to the others later
        self._replay.add(envelope)
        return 0

    async def history(
        self, app_id: str, channel: str, limit: int, max_age: float, since: int = 0
    ) -> list[Retained]:
        async with self._op("history"):
            return await self._history.read(app_id, channel, limit, max_age, since)

    # Idempotency ------------------------------------------------------------------
    async def idempotency_claim(self, app_id: str, key_: str, ttl: float) -> bytes | None:
        async with self._op("idempotency_claim"):
            return await self._history.claim(app_id, key_, ttl)

    async def idempotency_store(self, app_id: str, key_: str, answer: bytes, ttl: float) -> None:
        async with self._op("idempotency_store"):
            await self._history.store(app_id, key_, answer, ttl)

    async def idempotency_release(self, app_id: str, key_: str) -> None:
        async with self._op("idempotency_release"):
            await self._history.release(app_id, key_)

    # internals --------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def _op(self, op: str, mutates: bool = False) -> AsyncIterator[None]:
        """Count the call, turn Redis failures into ``BrokerError``, gate mutations."""
        if self._closed:
            raise BrokerError("the redis broker is closed")
        if self._metrics is not None:
            self._metrics.broker_call(op)
        if mutates:
            while not self._no_restore.is_set():
                await self._no_restore.wait()
            self._mutations += 1
            self._no_mutations.clear()
        try:
            yield
        except _FAILURES as exc:
            if self._metrics is not None:
                self._metrics.broker_error(op)
            if isinstance(exc, RedisConnectionError | RedisTimeoutError | ClusterError | OSError):
                self._state_ok = False
            if mutates:  # Redis may or may not have applied it: resync from the mirror
                self._restore_needed = True
            raise BrokerError(f"redis {op} failed: {type(exc).__name__}") from exc
        finally:
            if mutates:
                self._mutations -= 1
                if not self._mutations:
                    self._no_mutations.set()

    async def _beat_loop(self) -> None:
        while not self._closed:
            self._wake.clear()
            try:
                await self._beat()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._state_ok:
                    logger.warning("redis heartbeat failed: %s", exc)
                self._state_ok = False
                # the server may be another one when it answers again (a failover:
                # the last writes to the old master may not have reached the replica),
                # so this node writes back what it holds once it can
                self._restore_needed = True
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await self._wake.wait()

    async def _beat(self) -> None:
        await self._pubsub.ping()
        if await self._scripts.heartbeat():
            self._restore_needed = True
            if self._had_state:
                # Redis lost the registry (it restarted empty) or reaped this node: the
                # peers register again within a heartbeat (or a failed connect and one),
                # and the replay must not miss one this node had not seen before
                self._replay.expect_rejoins(self._interval + _CONNECT_TIMEOUT)
        if self._restore_needed:
            await self._restore()
            self._restore_needed = False
        loop = asyncio.get_running_loop()
        now = loop.time()
        # a beat that lasted longer than a heartbeat's TTL is an outage too: Redis Cluster's
        # client retries through a failover, so the beat stalls instead of failing
        stalled = now - self._beat_ok_at > self._timeout
        if self._had_state and (not self._state_ok or stalled):
            # back after an outage (a restart, a failover): the peers were most likely cut
            # off too, and their heartbeats may have lapsed meanwhile; give them one node
            # timeout to beat again before reaping anyone
            self._reap_after = now + self._timeout
        self._state_ok = self._had_state = True
        self._beat_ok_at = now
        # peers wait for this node's mark before re-publishing after an outage
        nodes = await self._scripts.listening(self._pubsub.server_id)
        if not self._replay.pending:  # frozen during an outage: Redis may have lost them
            self._replay.peers = nodes - {self.node_id}
        if loop.time() >= self._reap_after and await self._client.set(
            self.keys.reaper, self.node_id, nx=True, px=_ms(self._interval * 0.8)
        ):
            for app, kind, channel, user in await self._scripts.reap():
                self._report(Reaped(app, kind, channel, user))

    def _report(self, event: Reaped) -> None:
        logger.info("reaped %s on %s of app %s", event.kind, event.channel, event.app_id)
        if self._reaped is not None:
            try:
                self._reaped(event)
            except Exception:
                logger.exception("reaped callback failed")

    async def _restore(self) -> None:
        """Make Redis hold exactly this node's mirror, with mutations held back.

        Runs when the node was not registered (Redis restarted empty, or this node was
        reaped while cut off) and after a mutation failed (Redis may or may not have
        applied it).
        """
        self._no_restore.clear()
        try:
            await self._no_mutations.wait()
            left = await self._scripts.reset(self._mirror)
            if self._mirror:
                logger.info("re-registered %d entries of this node in redis", len(self._mirror))
            else:
                # a previous process with this node id left these (restarted under the
                # same id before it was reaped): announce them like a reap would
                for app, kind, channel, user in left:
                    self._report(Reaped(app, kind, channel, user))
        finally:
            self._no_restore.set()


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))
