"""The local index of sockets by channel, the fan-out hot path, and node subscriptions.

A published message is framed once here and the same ``bytes`` object is queued on
every local subscriber by ``writer.broadcast``; one ``call_soon`` callback per
event-loop turn writes each dirty socket (``writer.flush_all``). Nothing is awaited per
subscriber and no task is woken.

The hub is also where a channel's first local subscriber arrives and its last one
leaves, so it keeps the node's broker subscriptions (Centrifuge's ``addSubscription``):
with a broker that fans out through node-level subscriptions (Redis pub/sub), the first
local subscriber subscribes the node, and the node unsubscribes ``UNSUBSCRIBE_DELAY``
after the last one left — a page reload or a reconnect subscribes again within that
time, and would otherwise cost an UNSUBSCRIBE and a SUBSCRIBE round trip.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Iterator

from pusherd.brokers.base import Broker
from pusherd.errors import BrokerError
from pusherd.metrics import Metrics
from pusherd.protocol.frames import text_frame
from pusherd.protocol.presence import MEMBER_EVENT_PREFIX
from pusherd.server.ports import Output, Socket, Spawn
from pusherd.server.writer import broadcast, flush_all

__all__ = ["UNSUBSCRIBE_DELAY", "Hub"]

logger = logging.getLogger("pusherd.hub")

UNSUBSCRIBE_DELAY = 1.0
ChannelKey = tuple[str, str]


class Hub:
    """Local subscribers per ``(app_id, channel)`` and frame-once fan-out.

    Args:
        metrics: counts deliveries (one call per fan-out) and local channels.
        broker: subscribed per channel when it declares ``node_subscriptions``.
        spawn: runs the delayed broker unsubscriptions.
    """

    def __init__(self, metrics: Metrics, broker: Broker, spawn: Spawn) -> None:
        self._channels: dict[ChannelKey, set[Socket]] = {}
        self._dirty: list[Output] = []
        self._flush_scheduled = False
        self._queued_at = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self.metrics = metrics
        self._broker = broker
        self._spawn = spawn
        self._node_subscriptions = broker.node_subscriptions
        # Presence sockets waiting for their subscription_succeeded, with the member
        # events that came for them meanwhile (see ``hold_members``).
        self._holding: dict[ChannelKey, dict[Socket, list[bytes]]] = {}
        # Channels the broker confirmed this node subscribed to.
        self._subscribed: set[ChannelKey] = set()
        self._unsubscribe_due: dict[ChannelKey, asyncio.TimerHandle] = {}

    # index -------------------------------------------------------------------------
    def add(self, app_id: str, channel: str, conn: Socket) -> bool:
        """Index ``conn`` on ``channel``; return True if it is the first local subscriber."""
        key = (app_id, channel)
        conns = self._channels.get(key)
        if conns is None:
            self._channels[key] = {conn}
            return True
        conns.add(conn)
        return False

    def remove(self, app_id: str, channel: str, conn: Socket) -> bool:
        """Unindex ``conn``; return True if the channel has no local subscriber left."""
        key = (app_id, channel)
        conns = self._channels.get(key)
        if conns is None:
            return False
        conns.discard(conn)
        if conns:
            return False
        del self._channels[key]
        return True

    def join(self, app_id: str, channel: str, conn: Socket) -> Awaitable[None] | None:
        """Deliver ``channel`` to ``conn`` from now on.

        Returns None, or, when the node must first subscribe at the broker, what to await
        before telling the client it is subscribed (no coroutine is made otherwise: this
        runs on every subscribe).

        Raises (from the awaitable):
            BrokerError: the broker forgot the failed subscribe, so ``conn`` is unindexed
                too: otherwise no later subscriber would ever ask again.
        """
        if self.add(app_id, channel, conn):
            self.metrics.channel_opened(app_id)
        if not self._node_subscriptions or (app_id, channel) in self._subscribed:
            return None
        return self._subscribe_node(app_id, channel, conn)

    async def _subscribe_node(self, app_id: str, channel: str, conn: Socket) -> None:
        try:
            await self._broker.subscribe(app_id, channel)
        except BrokerError:
            self.leave(app_id, channel, conn)
            raise
        self._subscribed.add((app_id, channel))

    def leave(self, app_id: str, channel: str, conn: Socket) -> None:
        """Stop delivering ``channel`` to ``conn``; the node unsubscribes a little later."""
        if not self.remove(app_id, channel, conn):
            return
        self.metrics.channel_opened(app_id, -1)
        key = (app_id, channel)
        if key in self._subscribed and key not in self._unsubscribe_due:
            loop = self._loop or asyncio.get_running_loop()
            self._unsubscribe_due[key] = loop.call_later(
                UNSUBSCRIBE_DELAY, self._unsubscribe_later, key
            )

    def _unsubscribe_later(self, key: ChannelKey) -> None:
        del self._unsubscribe_due[key]
        if key not in self._channels:
            self._spawn(self._unsubscribe_node(*key))

    async def _unsubscribe_node(self, app_id: str, channel: str) -> None:
        if (app_id, channel) in self._channels:
            return  # somebody subscribed again meanwhile
        self._subscribed.discard((app_id, channel))
        try:
            await self._broker.unsubscribe(app_id, channel)
        except BrokerError as exc:
            logger.warning("broker unsubscribe failed for %s: %s", channel, exc)

    def cancel_pending(self) -> None:
        """Drop delayed unsubscriptions (the node is stopping; the broker closes anyway)."""
        for handle in self._unsubscribe_due.values():
            handle.cancel()
        self._unsubscribe_due.clear()

    def local_count(self, app_id: str, channel: str) -> int:
        conns = self._channels.get((app_id, channel))
        return len(conns) if conns else 0

    def channels(self) -> Iterator[ChannelKey]:
        return iter(list(self._channels))

    def has(self, app_id: str, channel: str, conn: Socket) -> bool:
        conns = self._channels.get((app_id, channel))
        return conns is not None and conn in conns

    def subscribers(self, app_id: str, channel: str) -> list[Socket]:
        return list(self._channels.get((app_id, channel), ()))

    # fan-out -----------------------------------------------------------------------
    def fanout(
        self, app_id: str, channel: str, payload: bytes, except_socket_id: str | None
    ) -> int:
        """Queue ``payload`` for every local subscriber of ``channel``; return how many.

        This is the hot path: one frame, one plain loop, no await.
        """
        conns = self._channels.get((app_id, channel))
        if not conns:
            return 0
        if self._holding and payload.startswith(MEMBER_EVENT_PREFIX):
            conns = self._hold((app_id, channel), conns, payload, except_socket_id)
        frame = text_frame(payload)
        sent = broadcast(conns, frame, except_socket_id, self._dirty)
        if sent:
            self.metrics.messages_sent(app_id, sent, sent * len(frame))
            if not self._queued_at:
                self._queued_at = time.perf_counter()
            if not self._flush_scheduled:
                loop = self._loop
                if loop is None:
                    loop = self._loop = asyncio.get_running_loop()
                self._flush_scheduled = True
                loop.call_soon(self.flush)
        return sent

    def hold_members(self, app_id: str, channel: str, conn: Socket) -> None:
        """Keep member events from ``conn`` (indexed, still waiting for its
        ``subscription_succeeded``) until ``release_members`` returns them."""
        self._holding.setdefault((app_id, channel), {})[conn] = []

    def release_members(self, app_id: str, channel: str, conn: Socket) -> list[bytes]:
        held = self._holding.get((app_id, channel), {})
        payloads = held.pop(conn, [])
        if not held:
            self._holding.pop((app_id, channel), None)
        return payloads

    def _hold(
        self, key: ChannelKey, conns: set[Socket], payload: bytes, except_id: str | None
    ) -> set[Socket]:
        held = self._holding.get(key)
        if not held:
            return conns
        for conn, payloads in held.items():
            if conn.socket_id != except_id:
                payloads.append(payload)
        return {conn for conn in conns if conn not in held}

    def flush(self) -> None:
        """Write every dirty socket's pending frames in one ``write`` each."""
        dirty = self._dirty
        self._dirty = []
        self._flush_scheduled = False
        flush_all(dirty)
        if self._queued_at:
            self.metrics.publish_latency(time.perf_counter() - self._queued_at)
            self._queued_at = 0.0
