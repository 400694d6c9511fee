"""``Observer``: the one place where what happens is reported — metrics, log, records.

Every observable event of a node (socket opened/closed, subscribed/unsubscribed/
refused, channel occupied/vacated, member added/removed, client event, API message,
cache miss, slow consumer, webhook attempt) is reported by calling one verb here, once,
where it happens. The verb counts it in ``Metrics``, writes the info line where there is
one, and hands a ``lifecycle`` record to the listeners that asked for that kind (the
debug console, history, tests). While nobody listens no record is built: the verbs test
``lifecycle.active`` first, one attribute load.
"""

from __future__ import annotations

import asyncio
import logging

from pusherd.lifecycle import (
    ApiMessage,
    CacheMiss,
    ChannelOccupied,
    ChannelVacated,
    ClientEventSent,
    Lifecycle,
    MemberAdded,
    MemberRemoved,
    SlowConsumer,
    SocketClosed,
    SocketOpened,
    Subscribed,
    SubscriptionRefused,
    Unsubscribed,
    WebhookAttempt,
)
from pusherd.logs import InfoLine
from pusherd.metrics import Metrics
from pusherd.protocol.handshake import Request

__all__ = ["Observer"]

logger = logging.getLogger("pusherd.node")
_info = InfoLine("pusherd.node")


class Observer:
    """Report lifecycle events (see the module docstring)."""

    __slots__ = ("lifecycle", "metrics")

    def __init__(self, metrics: Metrics, lifecycle: Lifecycle) -> None:
        self.metrics = metrics
        self.lifecycle = lifecycle

    # sockets -------------------------------------------------------------------------
    def socket_opened(
        self, app_id: str, socket_id: str, request: Request, transport: asyncio.BaseTransport
    ) -> None:
        self.metrics.connection_opened(app_id)
        if _info.enabled:
            _info(f"connection opened: app {app_id} socket {socket_id}")
        lifecycle = self.lifecycle
        if lifecycle.active and lifecycle.wants(SocketOpened):
            query = request.query
            # The address as the proxy reports it, else the peer's.
            remote = request.forwarded_for
            if remote is None:
                peer = transport.get_extra_info("peername")
                remote = str(peer[0]) if isinstance(peer, tuple) and peer else None
            lifecycle.emit(
                SocketOpened(
                    app_id,
                    socket_id,
                    request.origin,
                    query.get("client"),
                    query.get("version"),
                    remote,
                )
            )

    def socket_closed(
        self, app_id: str, socket_id: str, code: int, reason: str, lived: float
    ) -> None:
        self.metrics.connection_closed(app_id, code)
        if _info.enabled:
            _info(f"connection closed: app {app_id} socket {socket_id} code {code}")
        lifecycle = self.lifecycle
        if lifecycle.active and lifecycle.wants(SocketClosed):
            lifecycle.emit(SocketClosed(app_id, socket_id, code, reason, lived))

    def slow_consumer(self, app_id: str, socket_id: str, unsent: int) -> None:
        logger.info("slow consumer cut off: socket %s had %d unsent bytes", socket_id, unsent)
        self.metrics.slow_consumer(app_id)
        lifecycle = self.lifecycle
        if lifecycle.active and lifecycle.wants(SlowConsumer):
            lifecycle.emit(SlowConsumer(app_id, socket_id, unsent))

    # subscriptions -------------------------------------------------------------------
    def subscribed(self, app_id: str, socket_id: str, channel: str) -> None:
        self.metrics.subscribed(app_id)
        lifecycle = self.lifecycle
        if lifecycle.active and lifecycle.wants(Subscribed):
            lifecycle.emit(Subscribed(app_id, socket_id, channel))

    def unsubscribed(self, app_id: str, socket_id: str, channel: str) -> None:
        self.metrics.subscribed(app_id, -1)
        lifecycle = self.lifecycle
        if lifecycle.active and lifecycle.wants(Unsubscribed):
            lifecycle.emit(Unsubscribed(app_id, socket_id, channel))

    def refused(self, app_id: str, socket_id: str, channel: str, reason: str, status: int) -> None:
        lifecycle = self.lifecycle
        if lifecycle.active and lifecycle.wants(SubscriptionRefused):
            lifecycle.emit(SubscriptionRefused(app_id, socket_id, channel, reason, status))

    def occupied(self, app_id: str, channel: str) -> None:
        lifecycle = self.lifecycle
        if lifecycle.active and lifecycle.wants(ChannelOccupied):
            lifecycle.emit(ChannelOccupied(app_id, channel))

    def vacated(self, app_id: str, channel: str) -> None:
        lifecycle = self.lifecycle
        if lifecycle.active and lifecycle.wants(ChannelVacated):
            lifecycle.emit(ChannelVacated(app_id, channel))

    def member_added(self, app_id: str, channel: str, user_id: str) -> None:
        self.metrics.member_joined(app_id)
        lifecycle = self.lifecycle
        if lifecycle.active and lifecycle.wants(MemberAdded):
            lifecycle.emit(MemberAdded(app_id, channel, user_id))

    def member_removed(self, app_id: str, channel: str, user_id: str, local: bool) -> None:
        """``local``: the member had joined through this node (the gauge counts those)."""
        if local:
            self.metrics.member_joined(app_id, -1)
        lifecycle = self.lifecycle
        if lifecycle.active and lifecycle.wants(MemberRemoved):
            lifecycle.emit(MemberRemoved(app_id, channel, user_id))

    def cache_miss(self, app_id: str, channel: str) -> None:
        lifecycle = self.lifecycle
        if lifecycle.active and lifecycle.wants(CacheMiss):
            lifecycle.emit(CacheMiss(app_id, channel))

    # events --------------------------------------------------------------------------
    def client_event(
        self,
        app_id: str,
        socket_id: str,
        channel: str,
        event: str,
        payload: bytes,
        user_id: str | None,
    ) -> None:
        self.metrics.client_event(app_id)
        lifecycle = self.lifecycle
        if lifecycle.active and lifecycle.wants(ClientEventSent):
            lifecycle.emit(ClientEventSent(app_id, socket_id, channel, event, payload, user_id))

    def api_message(
        self, app_id: str, channel: str, event: str, payload: bytes, socket_id: str | None
    ) -> None:
        lifecycle = self.lifecycle
        if lifecycle.active and lifecycle.wants(ApiMessage):
            lifecycle.emit(ApiMessage(app_id, channel, event, payload, socket_id))

    def webhook_attempt(
        self,
        app_id: str,
        target: str,
        events: tuple[str, ...],
        status: int | None,
        seconds: float,
        attempt: int,
        outcome: str,
    ) -> None:
        lifecycle = self.lifecycle
        if lifecycle.active and lifecycle.wants(WebhookAttempt):
            lifecycle.emit(
                WebhookAttempt(app_id, target, events, status, seconds, attempt, outcome)
            )
