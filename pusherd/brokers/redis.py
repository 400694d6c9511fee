"""The Redis broker: several pusherd nodes share channels, presence and users.

- **Fan-out**: one Redis pub/sub channel per (app, Pusher channel), subscribed on the
  first local subscriber (Centrifuge's ``node.go::addSubscription`` pattern). One reader
  task per node owns a dedicated connection, so messages of a channel keep their order.
  When that connection drops, the reader reconnects with capped backoff and subscribes
  to every channel again (laravel/reverb PR #251 lost them silently).
- **Shared state** lives in Redis and is changed by the Lua scripts of
  ``pusherd.brokers.redis_scripts``. Every entry is listed in the adding node's item set,
  so a dead node's entries can be removed at once.
- **Heartbeat and reaper**: each node refreshes a heartbeat key with a TTL of
  ``node_timeout`` every ``heartbeat_interval``. The node that takes the reaper lock
  removes the entries of nodes whose heartbeat expired and reports the members and
  channels that were left empty, once cluster-wide. A node's first heartbeat does the
  same for entries a previous process with its id left (a restart under a fixed id).
- **Outages**: calls raise ``BrokerError`` (``publish`` too, so the REST API answers 503)
  and ``ready`` is False. A local mirror of what this node added is written back in one
  transaction when the node finds itself unregistered (Redis restarted empty, or this
  node was reaped while cut off) or after a mutation failed. Mutations wait meanwhile, so
  a restore never resurrects an entry removed concurrently.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from pusherd.brokers.base import (
    ChannelStats,
    DeliverFn,
    Envelope,
    EnvelopeKind,
    PresenceJoin,
    Reaped,
    ReapedFn,
)
from pusherd.brokers.redis_scripts import REAPER, Mirror, NodeScripts, key
from pusherd.errors import BrokerError
from pusherd.metrics import Metrics
from pusherd.protocol.presence import Member
from pusherd.types import JSON

__all__ = ["RedisBroker", "decode_envelope", "encode_envelope"]

logger = logging.getLogger(__name__)

_CONNECT_TIMEOUT = 2.0
_COMMAND_TIMEOUT = 5.0
_SUBSCRIBE_TIMEOUT = 5.0
_BACKOFF = (0.05, 2.0)  # reader reconnect delay: first, cap
_FAILURES = (RedisError, OSError, TimeoutError)


def encode_envelope(envelope: Envelope) -> bytes:
    """Encode an envelope for pub/sub: kind, except_socket_id, payload (app and channel
    are the pub/sub channel itself)."""
    except_id = (envelope.except_socket_id or "").encode()
    header = bytes((int(envelope.kind),)) + len(except_id).to_bytes(2, "big")
    return header + except_id + envelope.payload


def decode_envelope(app_id: str, channel: str, data: bytes) -> Envelope:
    """Decode what ``encode_envelope`` produced."""
    size = int.from_bytes(data[1:3], "big")
    except_id = data[3 : 3 + size].decode() or None
    return Envelope(app_id, channel, data[3 + size :], except_id, EnvelopeKind(data[0]))


class RedisBroker:
    """A ``Broker`` that shares state between nodes through one Redis server.

    Args:
        url: ``redis://`` or ``rediss://`` URL, possibly with a password (never logged).
        node_id: this node's unique id (a random one if empty).
        heartbeat_interval: seconds between heartbeats and reaper runs.
        node_timeout: seconds without a heartbeat after which a node is reaped.
        metrics: counts broker calls and failures.
        clock: wall clock (kept for symmetry with ``MemoryBroker``; TTLs live in Redis).
    """

    def __init__(
        self,
        url: str,
        node_id: str = "",
        heartbeat_interval: float = 5.0,
        node_timeout: float = 15.0,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.node_id = node_id or f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"
        self._interval = heartbeat_interval
        self._timeout = node_timeout
        self._metrics = metrics
        self._clock = clock
        common: dict[str, Any] = {"socket_connect_timeout": _CONNECT_TIMEOUT}
        self._client = Redis.from_url(
            url, socket_timeout=_COMMAND_TIMEOUT, retry=Retry(NoBackoff(), 1), **common
        )
        # RESP2 on the subscriber: pub/sub messages are plain replies to read_response()
        self._reader_pool = ConnectionPool.from_url(
            url, socket_timeout=None, retry=Retry(NoBackoff(), 0), protocol=2, **common
        )
        self._scripts = NodeScripts(self._client, self.node_id, _ms(node_timeout))
        self._mirror = Mirror()
        self._deliver: DeliverFn | None = None
        self._reaped: ReapedFn | None = None
        # pub/sub channel name -> (app_id, channel); pending SUBSCRIBE confirmations
        self._channels: dict[bytes, tuple[str, str]] = {}
        self._pending: dict[bytes, asyncio.Future[None]] = {}
        self._reader: AbstractConnection | None = None
        self._reader_failed = False
        self._reader_ok = False
        self._state_ok = False
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
        return f"RedisBroker(node_id={self.node_id!r})"

    # Fanout -----------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        return bool(self._tasks) and not self._closed and self._reader_ok and self._state_ok

    async def start(self, deliver: DeliverFn, reaped: ReapedFn | None = None) -> None:
        self._deliver = deliver
        self._reaped = reaped
        self._tasks = [
            asyncio.create_task(self._read_loop(), name=f"pusherd-redis-reader-{self.node_id}"),
            asyncio.create_task(self._beat_loop(), name=f"pusherd-redis-heartbeat-{self.node_id}"),
        ]
        # give the first connection a moment so ``ready`` is usually True on return
        deadline = asyncio.get_running_loop().time() + _CONNECT_TIMEOUT
        while not self.ready and not self._reader_failed:
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
        for name in list(self._pending):
            self._settle(name)
        self._channels.clear()
        self._deliver = None
        if self._tasks:
            try:
                await self._scripts.reap(self.node_id)
            except _FAILURES as exc:
                logger.warning("could not remove this node's state from redis: %s", exc)
        self._mirror = Mirror()
        await self._client.aclose()
        await self._reader_pool.disconnect()

    async def publish(self, envelope: Envelope) -> None:
        name = _pubsub_name(envelope.app_id, envelope.channel)
        async with self._op("publish"):
            await self._client.publish(name, encode_envelope(envelope))

    async def subscribe(self, app_id: str, channel: str) -> None:
        name = _pubsub_name(app_id, channel)
        future = self._pending.get(name)
        if future is None:
            if name in self._channels:
                return
            if self._closed or (self._reader is None and self._reader_failed):
                raise BrokerError("redis is unreachable")
            future = self._pending[name] = asyncio.get_running_loop().create_future()
            self._channels[name] = (app_id, channel)
            if self._reader is not None:
                with contextlib.suppress(*_FAILURES):  # the reader resubscribes on failure
                    await self._reader.send_command("SUBSCRIBE", name, check_health=False)
        try:
            # confirmed once Redis acknowledged it: later publishes reach this node
            async with asyncio.timeout(_SUBSCRIBE_TIMEOUT):
                await asyncio.shield(future)
        except TimeoutError:
            if self._pending.get(name) is future:
                del self._pending[name]
                self._channels.pop(name, None)
            raise BrokerError("redis did not confirm the subscription") from None

    async def unsubscribe(self, app_id: str, channel: str) -> None:
        name = _pubsub_name(app_id, channel)
        if self._channels.pop(name, None) is None:
            return
        self._settle(name)
        if self._reader is not None:
            with contextlib.suppress(*_FAILURES):  # a new reader connection forgets it anyway
                await self._reader.send_command("UNSUBSCRIBE", name, check_health=False)

    def _settle(self, name: bytes, error: BrokerError | None = None) -> None:
        """Resolve a pending subscription (withdrawn, or failed with ``error``)."""
        future = self._pending.pop(name, None)
        if future is None or future.done():
            return
        if error is None:
            future.set_result(None)
        else:
            self._channels.pop(name, None)
            future.set_exception(error)

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
        async with self._op("channel_stats"), self._client.pipeline(transaction=False) as pipe:
            pipe.hlen(key("s", app_id, channel))
            pipe.hlen(key("pu", app_id, channel))
            subscribers, users = await pipe.execute()
        return ChannelStats(int(subscribers), int(users))

    async def cache_set(self, app_id: str, channel: str, payload: bytes, ttl: float) -> None:
        async with self._op("cache_set"):
            await self._client.set(key("cache", app_id, channel), payload, px=_ms(ttl))

    async def cache_get(self, app_id: str, channel: str) -> tuple[bytes, float] | None:
        async with self._op("cache_get"), self._client.pipeline(transaction=True) as pipe:
            pipe.get(key("cache", app_id, channel))
            pipe.pttl(key("cache", app_id, channel))
            payload, remaining = await pipe.execute()
        if payload is None or remaining <= 0:
            return None
        return bytes(payload), remaining / 1000

    # PresenceState ----------------------------------------------------------------
    async def join_presence(
        self, app_id: str, channel: str, socket_id: str, member: Member, max_members: int
    ) -> PresenceJoin:
        async with self._op("join_presence", mutates=True):
            is_new, stored, flat, refused = await self._scripts.join_presence(
                app_id, channel, socket_id, member, max_members
            )
            if not refused:
                self._mirror.presence[(app_id, channel, socket_id)] = member
        members = _members(flat)
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
            found = await self._client.hgetall(key("pu", app_id, channel))
        return {_text(user): Member.from_json(raw).user_info for user, raw in found.items()}

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
            return int(await self._client.hlen(key("c", app_id)))

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
        async with self._op("online"), self._client.pipeline(transaction=False) as pipe:
            for user_id in users:
                pipe.exists(key("u", app_id, user_id))
            found = await pipe.execute()
        return {user_id for user_id, exists in zip(users, found, strict=True) if exists}

    # Marks ------------------------------------------------------------------------
    async def claim(self, app_id: str, key_: str, ttl: float) -> bool:
        async with self._op("claim"):
            return bool(await self._client.set(key("mark", app_id, key_), 1, nx=True, px=_ms(ttl)))

    async def release(self, app_id: str, key_: str) -> bool:
        async with self._op("release"):
            return bool(await self._client.delete(key("mark", app_id, key_)))

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
            if isinstance(exc, RedisConnectionError | RedisTimeoutError | OSError):
                self._state_ok = False
            if mutates:  # Redis may or may not have applied it: resync from the mirror
                self._restore_needed = True
            raise BrokerError(f"redis {op} failed: {type(exc).__name__}") from exc
        finally:
            if mutates:
                self._mutations -= 1
                if not self._mutations:
                    self._no_mutations.set()

    async def _read_loop(self) -> None:
        """Own the pub/sub connection: (re)connect, (re)subscribe, deliver."""
        delay = _BACKOFF[0]
        idle_timeout = max(self._timeout, 3 * self._interval)
        while not self._closed:
            conn: AbstractConnection = self._reader_pool.make_connection()  # type: ignore[no-untyped-call]
            try:
                await conn.connect()  # type: ignore[no-untyped-call]
                awaiting = set(self._channels)
                if awaiting:
                    await conn.send_command("SUBSCRIBE", *awaiting, check_health=False)
                self._reader = conn
                while awaiting:  # ready only once every channel is subscribed again
                    response = await conn.read_response(timeout=idle_timeout)
                    if isinstance(response, list) and response[0] == b"subscribe":
                        awaiting.discard(response[1])
                    self._on_response(response)
                if self._reader_failed:
                    logger.info("redis subscriber connection restored")
                self._reader_ok, self._reader_failed = True, False
                delay = _BACKOFF[0]
                self._wake.set()  # the heartbeat re-registers state at once if needed
                while True:
                    self._on_response(await conn.read_response(timeout=idle_timeout))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not self._reader_failed:
                    logger.warning("redis subscriber connection failed: %s", exc)
                self._reader_failed = True
                for name in list(self._pending):
                    self._settle(name, BrokerError("redis subscriber connection failed"))
            finally:
                self._reader, self._reader_ok = None, False
                await conn.disconnect(nowait=True)
            await asyncio.sleep(delay)
            delay = min(delay * 2, _BACKOFF[1])

    def _on_response(self, response: Any) -> None:
        if not isinstance(response, list) or len(response) != 3:
            return  # PING replies
        kind, name, data = response
        if kind == b"message":
            target = self._channels.get(name)
            if target is None or self._deliver is None:
                return
            try:
                self._deliver(decode_envelope(target[0], target[1], data))
            except Exception:
                logger.exception("failed to deliver an envelope from redis")
        elif kind == b"subscribe":
            self._settle(name)

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
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await self._wake.wait()

    async def _beat(self) -> None:
        if self._reader is not None:
            # keeps the subscriber connection busy so a dead one is noticed (idle_timeout)
            with contextlib.suppress(*_FAILURES):
                await self._reader.send_command("PING", check_health=False)
        if await self._scripts.heartbeat():
            self._restore_needed = True
        if self._restore_needed:
            await self._restore()
            self._restore_needed = False
        self._state_ok = True
        if await self._client.set(REAPER, self.node_id, nx=True, px=_ms(self._interval * 0.8)):
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


def _pubsub_name(app_id: str, channel: str) -> bytes:
    return f"pusherd:{app_id}:{channel}".encode()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def _members(flat: list[bytes]) -> dict[str, JSON]:
    return {
        flat[i].decode(): Member.from_json(flat[i + 1]).user_info for i in range(0, len(flat), 2)
    }
