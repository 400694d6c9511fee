"""The fan-out half of ``RedisBroker``: one pub/sub reader connection per node.

One Redis pub/sub channel per (app, Pusher channel), subscribed on the first local
subscriber (Centrifuge's ``node.go::addSubscription`` pattern), so a node never decodes
traffic it does not serve. One reader task owns a dedicated connection, so messages of a
channel keep their order. When that connection drops, the reader reconnects with capped
backoff and subscribes to every channel again before it reports itself ready (laravel/
reverb PR #251 lost them silently); ``on_ready`` then lets the broker re-publish what it
buffered meanwhile.

Wire format of a message (app and channel are the pub/sub channel name itself)::

    byte 0            kind (EnvelopeKind), | 0x80 when an origin node id follows
    [1 byte n][n]     origin node id (only with 0x80): receivers with that id skip it
    [1 byte n][n]     sequence number in ASCII digits (only for SEQUENCED, written by
                      ``lua/history_append.lua``)
    2 bytes n, [n]    except_socket_id (big endian length, UTF-8)
    rest              payload
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import ConnectionPool
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import RedisError, ResponseError

from pusherd.brokers.base import DeliverFn, Envelope, EnvelopeKind
from pusherd.errors import BrokerError
from pusherd.metrics import Metrics

__all__ = [
    "BACKOFF",
    "REPLAY_LIMIT",
    "RedisPubSub",
    "Replay",
    "decode_envelope",
    "encode_envelope",
    "envelope_rest",
    "pubsub_name",
]

logger = logging.getLogger(__name__)

_SUBSCRIBE_TIMEOUT = 5.0
BACKOFF = (0.05, 2.0)  # reconnect delay: first, cap
_FAILURES = (RedisError, OSError, TimeoutError)
_ORIGIN = 0x80
REPLAY_LIMIT = 10_000  # envelopes kept for re-publishing after an outage


def encode_envelope(envelope: Envelope, origin: str = "") -> bytes:
    """Encode an envelope for pub/sub; ``origin`` marks it as already delivered there."""
    except_id = (envelope.except_socket_id or "").encode()
    if origin:
        node = origin.encode()[:255]
        head = bytes((int(envelope.kind) | _ORIGIN, len(node))) + node
    else:
        head = bytes((int(envelope.kind),))
    if envelope.kind is EnvelopeKind.SEQUENCED:
        digits = str(envelope.seq).encode()
        head += bytes((len(digits),)) + digits
    return head + len(except_id).to_bytes(2, "big") + except_id + envelope.payload


def envelope_rest(envelope: Envelope) -> bytes:
    """Return what follows the head of an encoded envelope (for the history script)."""
    except_id = (envelope.except_socket_id or "").encode()
    return len(except_id).to_bytes(2, "big") + except_id + envelope.payload


def envelope_origin(data: bytes) -> bytes:
    """Return the origin node id of an encoded envelope (empty if none)."""
    if not data[0] & _ORIGIN:
        return b""
    return data[2 : 2 + data[1]]


def decode_envelope(app_id: str, channel: str, data: bytes) -> Envelope:
    """Decode what ``encode_envelope`` produced."""
    start = 1
    if data[0] & _ORIGIN:
        start = 2 + data[1]
    kind = EnvelopeKind(data[0] & ~_ORIGIN)
    seq = 0
    if kind is EnvelopeKind.SEQUENCED:
        seq = int(data[start + 1 : start + 1 + data[start]])
        start += 1 + data[start]
    size = int.from_bytes(data[start : start + 2], "big")
    body = start + 2
    except_id = data[body : body + size].decode() or None
    return Envelope(app_id, channel, data[body + size :], except_id, kind, seq)


def pubsub_name(app_id: str, channel: str, prefix: str = "pusherd") -> bytes:
    """The pub/sub channel of (app, channel): ``{prefix}:{app_id}:{channel}``.

    No hash tag: on Redis Cluster, sharded pub/sub spreads the channels over the shards.
    """
    return f"{prefix}:{app_id}:{channel}".encode()


def _run_id(info: Any) -> str:
    """The ``run_id`` field of an ``INFO server`` reply (changes on restart and differs
    between a master and the replica that replaces it)."""
    text = info.decode() if isinstance(info, bytes) else str(info)
    for line in text.splitlines():
        if line.startswith("run_id:"):
            return line[len("run_id:") :].strip()
    return "?"


class RedisPubSub:
    """Owns the subscriber connection: (re)connect, (re)subscribe, read, deliver.

    Args:
        pool: connections to the Redis server (RESP2, no socket timeout).
        node_id: envelopes marked with this origin are skipped (delivered already).
        idle_timeout: seconds without any reply before the connection counts as dead;
            the broker's heartbeat sends a PING more often than that.
        on_ready: called each time the connection is up with every channel subscribed.
        prefix: the ``[scaling] prefix`` of the pub/sub channel names.
        sharded: use sharded pub/sub (``SSUBSCRIBE``, Redis Cluster); the server then
            owns only some channels, and ``ShardedPubSub`` hands it those.
        retry: reconnect after a failure (else ``run`` returns and the caller decides).
    """

    def __init__(
        self,
        pool: ConnectionPool,
        node_id: str,
        idle_timeout: float,
        on_ready: Callable[[], None],
        prefix: str = "pusherd",
        sharded: bool = False,
        retry: bool = True,
    ) -> None:
        self._pool = pool
        self._prefix = prefix
        self._retry = retry
        if sharded:
            self._sub, self._unsub = "SSUBSCRIBE", "SUNSUBSCRIBE"
            self._confirm, self._message, self._dropped = (
                b"ssubscribe",
                b"smessage",
                b"sunsubscribe",
            )
        else:
            self._sub, self._unsub = "SUBSCRIBE", "UNSUBSCRIBE"
            self._confirm, self._message, self._dropped = b"subscribe", b"message", b""
        # the run_id of the server the connection is subscribed on ("" while down)
        self.server_id = ""
        self._origin = node_id.encode()[:255]
        self._idle = idle_timeout
        self._on_ready = on_ready
        self.deliver: DeliverFn | None = None
        # pub/sub channel name -> (app_id, channel); pending SUBSCRIBE confirmations
        self._channels: dict[bytes, tuple[str, str]] = {}
        self._pending: dict[bytes, asyncio.Future[None]] = {}
        self._conn: AbstractConnection | None = None
        self.failed = False  # the last connection attempt or connection failed
        self.ok = False  # connected and every channel subscribed
        self.closed = False

    async def subscribe(self, app_id: str, channel: str) -> None:
        """Subscribe and wait until Redis confirmed it (later publishes reach this node)."""
        name = pubsub_name(app_id, channel, self._prefix)
        future = self._pending.get(name)
        if future is None:
            if name in self._channels:
                return
            if self.closed or (self._conn is None and self.failed):
                raise BrokerError("redis is unreachable")
            future = self._pending[name] = asyncio.get_running_loop().create_future()
            self._channels[name] = (app_id, channel)
            if self._conn is not None:
                with contextlib.suppress(*_FAILURES):  # the reader resubscribes on failure
                    await self._conn.send_command(self._sub, name, check_health=False)
        try:
            async with asyncio.timeout(_SUBSCRIBE_TIMEOUT):
                await asyncio.shield(future)
        except TimeoutError:
            if self._pending.get(name) is future:
                del self._pending[name]
                self._channels.pop(name, None)
            raise BrokerError("redis did not confirm the subscription") from None

    async def unsubscribe(self, app_id: str, channel: str) -> None:
        name = pubsub_name(app_id, channel, self._prefix)
        if self._channels.pop(name, None) is None:
            return
        self._settle(name)
        if self._conn is not None:
            with contextlib.suppress(*_FAILURES):  # a new connection forgets it anyway
                await self._conn.send_command(self._unsub, name, check_health=False)

    async def ping(self) -> None:
        """Keep the connection busy so a dead one is noticed within ``idle_timeout``."""
        if self._conn is not None:
            with contextlib.suppress(*_FAILURES):
                await self._conn.send_command("PING", check_health=False)

    def close(self) -> None:
        """Forget every channel and fail pending subscriptions (cancel ``run`` too)."""
        self.closed = True
        for name in list(self._pending):
            self._settle(name)
        self._channels.clear()
        self.deliver = None

    def adopt(self, name: bytes, app_id: str, channel: str) -> None:
        """Add a channel to subscribe on the next connection (before ``run``)."""
        self._channels[name] = (app_id, channel)

    def retire(self) -> None:
        """Stop for good, failing pending subscriptions (``ShardedPubSub`` rebuilds)."""
        self.closed = True
        for name in list(self._pending):
            self._settle(name, BrokerError("redis subscriber connection replaced"))
        self.deliver = None

    async def disconnect(self) -> None:
        await self._pool.disconnect()

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

    async def run(self) -> None:
        """The reader task: until ``closed``, keep one connection subscribed and read it."""
        delay = BACKOFF[0]
        while not self.closed:
            conn: AbstractConnection = self._pool.make_connection()  # type: ignore[no-untyped-call]
            try:
                await conn.connect()  # type: ignore[no-untyped-call]
                await conn.send_command("INFO", "server", check_health=False)
                try:
                    server_id = _run_id(await conn.read_response(timeout=self._idle))
                except ResponseError:  # INFO refused (an ACL, a proxy): marks cannot tell
                    server_id = "?"  # servers apart, any mark counts (as before failovers)
                awaiting = set(self._channels)
                if awaiting:
                    await conn.send_command(self._sub, *awaiting, check_health=False)
                self._conn = conn
                while awaiting:  # ready only once every channel is subscribed again
                    response = await conn.read_response(timeout=self._idle)
                    if isinstance(response, list) and response[0] == self._confirm:
                        awaiting.discard(response[1])
                    self._on_response(response)
                self.server_id = server_id
                if self.failed:
                    logger.info("redis subscriber connection restored")
                self.ok, self.failed = True, False
                delay = BACKOFF[0]
                self._on_ready()
                while True:
                    self._on_response(await conn.read_response(timeout=self._idle))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not self.failed and self._retry:  # else its owner reports it
                    logger.warning("redis subscriber connection failed: %s", exc)
                self.failed = True
                for name in list(self._pending):
                    self._settle(name, BrokerError("redis subscriber connection failed"))
            finally:
                self._conn, self.ok, self.server_id = None, False, ""
                await conn.disconnect(nowait=True)
            if not self._retry:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF[1])

    def _on_response(self, response: Any) -> None:
        if not isinstance(response, list) or len(response) != 3:
            return  # PING replies
        kind, name, data = response
        if kind == self._message:
            target = self._channels.get(name)
            if target is None or self.deliver is None:
                return
            if data[0] & _ORIGIN and envelope_origin(data) == self._origin:
                return  # re-published after an outage: this node delivered it already
            try:
                self.deliver(decode_envelope(target[0], target[1], data))
            except Exception:
                logger.exception("failed to deliver an envelope from redis")
        elif kind == self._confirm:
            self._settle(name)
        elif kind == self._dropped and name in self._channels:
            # Redis Cluster dropped a sharded subscription (its slot moved): resubscribe
            # wherever the slot lives now
            raise BrokerError("redis dropped a sharded subscription (slot moved)")


class Replay:
    """Publishes made while Redis was unreachable: delivered locally, re-published later.

    Args:
        publish: ``await publish(pubsub channel name, data)`` (``PUBLISH``, or
            ``SPUBLISH`` on Redis Cluster); the replay is marked with ``node_id``, so
            this node skips it.
        node_id: the origin mark.
        limit: envelopes kept; more are still delivered locally, but counted as dropped.
        can_send: whether the subscriber is up with every channel (safe to re-publish).
        peer_wait: seconds to wait, before re-publishing, for every peer to be listening
            again: after Redis restarted, a peer whose subscriber reconnects later would
            miss the replay. The peers are those the heartbeat last saw before the outage
            (``peers``: Redis may have lost some since) and every node registered now (a
            peer that registered after this node's last heartbeat before the outage is
            only found there). A peer that does not come back within ``peer_wait`` (the
            node timeout, plus two reconnect delays for a peer whose backoff grew during a
            failover) is dead. A peer is listening again when its mark (``listeners``)
            names the same Redis servers as this node's subscriber (``server_id``): after
            a failover the new master holds marks replicated from the old one, which do
            not count.
        listeners: ``await listeners(peers)``: the listening mark of each of ``peers`` and
            of each node registered now, or None while this node is not registered (Redis
            lost the registry: the replay waits until the heartbeat registered it again).
        server_id: the servers this node's subscriber listens on now.
        prefix: the ``[scaling] prefix`` of the pub/sub channel names.
        metrics: counts drops as ``broker_error("publish_dropped")``.
    """

    def __init__(
        self,
        publish: Callable[[bytes, bytes], Awaitable[Any]],
        node_id: str,
        limit: int,
        can_send: Callable[[], bool],
        peer_wait: float,
        listeners: Callable[[set[str]], Awaitable[dict[str, str] | None]],
        server_id: Callable[[], str],
        prefix: str = "pusherd",
        metrics: Metrics | None = None,
    ) -> None:
        self.peers: set[str] = set()
        self._peer_wait = peer_wait
        self._publish = publish
        self._listeners = listeners
        self._server_id = server_id
        self._prefix = prefix
        self._metrics = metrics
        self._node = node_id
        self._limit = limit
        self._can_send = can_send
        self._queue: deque[Envelope] = deque()
        self._wake = asyncio.Event()
        self.deliver: DeliverFn | None = None
        self.dropped = 0  # since the buffer last emptied
        self._rejoin_until = 0.0  # loop time until which peers may still register again

    @property
    def pending(self) -> int:
        return len(self._queue)

    def add(self, envelope: Envelope) -> None:
        """Deliver ``envelope`` to this node's sockets now; queue it for the others."""
        if self.deliver is not None:
            try:
                self.deliver(envelope)
            except Exception:
                logger.exception("failed to deliver an envelope locally")
        if len(self._queue) >= self._limit:
            self.dropped += 1
            if self._metrics is not None:
                self._metrics.broker_error("publish_dropped")
            if self.dropped == 1:
                logger.warning("replay buffer full (%d): dropping envelopes", self._limit)
            return
        self._queue.append(envelope)
        self.wake()  # a no-op until the subscriber is back

    def wake(self) -> None:
        if self._queue and self._can_send():
            self._wake.set()

    def close(self) -> None:
        if self._queue:
            logger.warning("closing with %d envelopes not re-published", len(self._queue))
            self._queue.clear()
        self.deliver = None

    def expect_rejoins(self, seconds: float) -> None:
        """Redis lost the node registry (this node found itself unregistered): for
        ``seconds`` more, the peers may still be registering again, so the replay waits
        that long to see them all before it checks that they listen."""
        self._rejoin_until = asyncio.get_running_loop().time() + seconds

    async def _await_peers(self) -> None:
        """Wait (bounded) until every peer's subscriber is listening again."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._peer_wait
        while loop.time() < deadline and self._can_send():
            try:
                marks = await self._listeners(self.peers)
            except _FAILURES:
                marks = None
            here = self._server_id()
            if (
                marks is not None
                and here
                and loop.time() >= self._rejoin_until
                and all(mark == here for mark in marks.values())
            ):
                return
            await asyncio.sleep(0.05)

    async def run(self) -> None:
        """The replay task: drain the queue in order each time ``wake`` is called."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._await_peers()
            sent = 0
            while self._queue and self._can_send():
                envelope = self._queue[0]
                name = pubsub_name(envelope.app_id, envelope.channel, self._prefix)
                try:
                    await self._publish(name, encode_envelope(envelope, self._node))
                except _FAILURES as exc:
                    logger.warning("redis replay paused: %s", exc)
                    await asyncio.sleep(0.1)
                    break
                self._queue.popleft()
                sent += 1
            if sent:
                logger.info("re-published %d envelopes after a redis outage", sent)
            if self.dropped and not self._queue:
                logger.warning("%d envelopes were not re-published (buffer full)", self.dropped)
                self.dropped = 0
            self.wake()
