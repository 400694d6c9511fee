"""Channel membership: subscribe, unsubscribe, presence, sign-in, and their events.

Every cluster-wide transition comes back from the broker as a count or a flag, so
exactly one node sees it and emits the client event and the webhook:

- ``add_subscriber`` → 1: ``channel_occupied``; ``remove_subscriber`` → 0:
  ``channel_vacated`` (held for the webhook delay and cancelled by a re-subscribe,
  through a broker mark, so a page refresh sends neither).
- ``join_presence`` new user: ``member_added``; ``leave_presence`` → member:
  ``member_removed`` (also held and cancellable).
- ``sign_in``/``sign_out`` first/last socket: watchlist ``online``/``offline``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson

from pusherd.apps.base import App
from pusherd.brokers.base import Envelope, PresenceJoin, Reaped
from pusherd.errors import BrokerError, CloseCode, SubscriptionError
from pusherd.lifecycle import (
    CacheMiss,
    ChannelOccupied,
    ChannelVacated,
    ClientEventSent,
    MemberAdded,
    MemberRemoved,
    Subscribed,
    Unsubscribed,
)
from pusherd.protocol.actions import Action, ClientEvent, SignIn, Subscribe, Unsubscribe
from pusherd.protocol.channels import SERVER_TO_USER_PREFIX, ChannelKind
from pusherd.protocol.messages import encode_channel_event, encode_event
from pusherd.protocol.presence import presence_payload

if TYPE_CHECKING:
    from pusherd.server.connection import Connection
    from pusherd.server.node import Node

__all__ = ["CACHE_TTL", "WATCHLIST_PREFIX", "Membership"]

logger = logging.getLogger("pusherd.membership")

CACHE_TTL = 30 * 60
WATCHLIST_PREFIX = "#watchlist-"
SUBSCRIPTION_COUNT_THROTTLE = 5.0
NODE_UNSUBSCRIBE_DELAY = 1.0
_EMPTY = "{}"


class Membership:
    """Carries out membership actions for the node's sockets."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.broker = node.broker
        self.hub = node.hub
        self.webhooks = node.webhooks
        self.lifecycle = node.lifecycle
        self._count_sent: dict[tuple[str, str], float] = {}
        # Channels the broker confirmed this node subscribed to.
        self._broker_channels: set[tuple[str, str]] = set()
        # Node-level broker unsubscriptions waiting out NODE_UNSUBSCRIBE_DELAY.
        self._unsubscribe_due: dict[tuple[str, str], asyncio.TimerHandle] = {}
        # What carries out each cluster action a session returns (raises PusherErrors).
        self.apply: dict[type[Action], Callable[[Connection, Any], Awaitable[None]]] = {
            Subscribe: self.subscribe,
            Unsubscribe: self.unsubscribe,
            ClientEvent: self.client_event,
            SignIn: self.sign_in,
        }

    # local index -------------------------------------------------------------------
    async def _add_local(self, conn: Connection, channel: str) -> None:
        if self._index_local(conn, channel):
            await self._subscribe_node(conn, channel)

    def _index_local(self, conn: Connection, channel: str) -> bool:
        """Index ``conn`` on ``channel``; True if the node must subscribe at the broker."""
        app_id = conn.app.id  # type: ignore[union-attr]
        if self.hub.add(app_id, channel, conn):
            self.node.metrics.channel_opened(app_id)
        # The memory broker keeps no node-level subscriptions.
        return not self.node.eager and (app_id, channel) not in self._broker_channels

    async def _subscribe_node(self, conn: Connection, channel: str) -> None:
        app_id = conn.app.id  # type: ignore[union-attr]
        key = (app_id, channel)
        try:
            await self.broker.subscribe(app_id, channel)
        except BrokerError:
            # The broker forgets a failed subscribe; so must we, or no later subscriber
            # would ever ask again.
            if self.hub.remove(app_id, channel, conn):
                self.node.metrics.channel_opened(app_id, -1)
            raise
        self._broker_channels.add(key)

    def drop_local(self, conn: Connection, channel: str) -> None:
        """Unindex ``conn`` now; unsubscribe the node from the broker a little later.

        The node stays subscribed at the broker for ``NODE_UNSUBSCRIBE_DELAY`` after its
        last local subscriber left: a page reload or a reconnect subscribes again within
        that time, and would otherwise cost an UNSUBSCRIBE and a SUBSCRIBE round trip to
        Redis. Events that arrive meanwhile find no local subscriber and go nowhere.
        """
        app_id = conn.app.id  # type: ignore[union-attr]
        if self.hub.remove(app_id, channel, conn):
            self.node.metrics.channel_opened(app_id, -1)
            key = (app_id, channel)
            if key in self._broker_channels and key not in self._unsubscribe_due:
                loop = asyncio.get_running_loop()
                self._unsubscribe_due[key] = loop.call_later(
                    NODE_UNSUBSCRIBE_DELAY, self._unsubscribe_node, key
                )

    def cancel_pending(self) -> None:
        """Drop delayed unsubscriptions (the node is stopping; the broker closes anyway)."""
        for handle in self._unsubscribe_due.values():
            handle.cancel()
        self._unsubscribe_due.clear()

    def _unsubscribe_node(self, key: tuple[str, str]) -> None:
        del self._unsubscribe_due[key]
        if not self.hub.local_count(*key):
            self.node.spawn(self._broker_unsubscribe(*key))

    async def _broker_unsubscribe(self, app_id: str, channel: str) -> None:
        if self.hub.local_count(app_id, channel):
            return  # somebody subscribed again meanwhile
        self._broker_channels.discard((app_id, channel))
        try:
            await self.broker.unsubscribe(app_id, channel)
        except BrokerError as exc:
            logger.warning("broker unsubscribe failed for %s: %s", channel, exc)

    # subscribe ---------------------------------------------------------------------
    async def subscribe(self, conn: Connection, action: Subscribe) -> None:
        app = conn.app
        assert app is not None
        channel, kind, member = action.channel, action.kind, action.member
        app_id, socket_id = app.id, conn.socket_id
        if self.hub.has(app_id, channel, conn):
            await self._succeeded(conn, app, channel, kind)
            return
        if kind is ChannelKind.SERVER_TO_USER:
            conn.send(
                encode_channel_event("pusher_internal:subscription_succeeded", channel, _EMPTY)
            )
            return
        # Listen first: once the client hears subscription_succeeded, anything the app
        # publishes must reach it, so the node's broker subscription comes before that.
        if self._index_local(conn, channel):
            await self._subscribe_node(conn, channel)
        joined = None
        try:
            if member is not None:
                joined = await self.broker.join_presence(
                    app_id, channel, socket_id, member, app.max_presence_members
                )
                if joined.refused:
                    raise SubscriptionError(
                        "Over capacity: presence channel is full "
                        f"({app.max_presence_members} members)",
                        channel,
                        403,
                        CloseCode.OVER_CAPACITY,
                    )
            count = await self.broker.add_subscriber(app_id, channel, socket_id)
        except (BrokerError, SubscriptionError):
            self.drop_local(conn, channel)
            conn.session.forget(channel)  # type: ignore[union-attr]
            if joined is not None and not joined.refused:
                with contextlib.suppress(BrokerError):
                    await self.broker.leave_presence(app_id, channel, socket_id)
            raise
        if conn.closing:
            self.drop_local(conn, channel)
            await self._undo(conn, app, channel, member is not None)
            return
        self.node.metrics.subscribed(app_id)
        data: Any = _EMPTY if joined is None else presence_payload(joined.members)
        conn.send(encode_channel_event("pusher_internal:subscription_succeeded", channel, data))
        if self.lifecycle.active:
            self._report_subscribed(app_id, socket_id, channel, count, joined)
        if joined is not None and joined.is_new_user:
            self.node.metrics.member_joined(app_id)
            await self._publish(
                app_id,
                channel,
                encode_channel_event(
                    "pusher_internal:member_added",
                    channel,
                    {"user_id": joined.member.user_id, "user_info": joined.member.user_info}
                    if joined.member.user_info is not None
                    else {"user_id": joined.member.user_id},
                ),
                except_socket_id=socket_id,
            )
            if app.webhooks:
                await self._transition_webhook(
                    app, "member_added", "member_removed", channel, user_id=joined.member.user_id
                )
        if count == 1 and app.webhooks:
            await self._transition_webhook(app, "channel_occupied", "channel_vacated", channel)
        if kind.is_cache:
            await self._replay_cache(conn, app, channel)
        if not kind.is_presence and (app.subscription_count or app.webhooks):
            await self._subscription_count(app, channel, count)

    def _report_subscribed(
        self, app_id: str, socket_id: str, channel: str, count: int, joined: PresenceJoin | None
    ) -> None:
        lifecycle = self.lifecycle
        if count == 1 and lifecycle.wants(ChannelOccupied):
            lifecycle.emit(ChannelOccupied(app_id, channel))
        if lifecycle.wants(Subscribed):
            lifecycle.emit(Subscribed(app_id, socket_id, channel))
        if joined is not None and joined.is_new_user and lifecycle.wants(MemberAdded):
            lifecycle.emit(MemberAdded(app_id, channel, joined.member.user_id))

    async def _succeeded(self, conn: Connection, app: App, channel: str, kind: ChannelKind) -> None:
        """Answer a repeated subscribe the same way as the first one."""
        data: Any = _EMPTY
        if kind.is_presence:
            data = presence_payload(await self.broker.members(app.id, channel))
        conn.send(encode_channel_event("pusher_internal:subscription_succeeded", channel, data))

    async def _undo(self, conn: Connection, app: App, channel: str, presence: bool) -> None:
        await self.broker.remove_subscriber(app.id, channel, conn.socket_id)
        if presence:
            await self.broker.leave_presence(app.id, channel, conn.socket_id)

    async def _replay_cache(self, conn: Connection, app: App, channel: str) -> None:
        cached = await self.broker.cache_get(app.id, channel)
        if cached is not None:
            conn.send(cached[0])
            return
        conn.send(encode_channel_event("pusher:cache_miss", channel, _EMPTY))
        if self.lifecycle.wants(CacheMiss):
            self.lifecycle.emit(CacheMiss(app.id, channel))
        if self.webhooks.wants(app, "cache_miss") and await self.broker.claim(
            app.id, f"cache_miss:{channel}", 10.0
        ):
            self.webhooks.emit(app, {"name": "cache_miss", "channel": channel})

    async def _subscription_count(self, app: App, channel: str, count: int) -> None:
        if count < 0:
            return
        wants_hook = self.webhooks.wants(app, "subscription_count")
        if not (app.subscription_count or wants_hook):
            return
        if count > 100:
            key = (app.id, channel)
            now = time.monotonic()
            if now - self._count_sent.get(key, 0.0) < SUBSCRIPTION_COUNT_THROTTLE:
                return
            self._count_sent[key] = now
            if len(self._count_sent) > 10_000:
                self._count_sent.clear()
        if app.subscription_count and count > 0:
            await self._publish(
                app.id,
                channel,
                encode_channel_event(
                    "pusher_internal:subscription_count", channel, {"subscription_count": count}
                ),
            )
        if wants_hook:
            self.webhooks.emit(
                app, {"name": "subscription_count", "channel": channel, "subscription_count": count}
            )

    # unsubscribe -------------------------------------------------------------------
    async def unsubscribe(self, conn: Connection, action: Unsubscribe) -> None:
        # The socket already left the local index when the message arrived
        # (Connection._execute), so delivery stopped before this ran.
        app = conn.app
        assert app is not None
        await self._leave(app, conn.socket_id, action)

    async def _leave(self, app: App, socket_id: str, action: Unsubscribe) -> None:
        channel = action.channel
        if action.kind is ChannelKind.SERVER_TO_USER:
            return
        if action.member is not None:
            gone = await self.broker.leave_presence(app.id, channel, socket_id)
            if gone is not None:
                self.node.metrics.member_joined(app.id, -1)
                await self._member_removed(app, channel, gone.user_id)
        count = await self.broker.remove_subscriber(app.id, channel, socket_id)
        if count >= 0:
            self.node.metrics.subscribed(app.id, -1)
            if self.lifecycle.wants(Unsubscribed):
                self.lifecycle.emit(Unsubscribed(app.id, socket_id, channel))
        if count == 0:
            self._vacated(app, channel)
        elif count > 0 and not action.kind.is_presence and (app.subscription_count or app.webhooks):
            await self._subscription_count(app, channel, count)

    async def _member_removed(self, app: App, channel: str, user_id: str) -> None:
        if self.lifecycle.wants(MemberRemoved):
            self.lifecycle.emit(MemberRemoved(app.id, channel, user_id))
        await self._publish(
            app.id,
            channel,
            encode_channel_event("pusher_internal:member_removed", channel, {"user_id": user_id}),
        )
        await self._delayed_webhook(app, "member_removed", channel, user_id=user_id)

    def _vacated(self, app: App, channel: str) -> None:
        if self.lifecycle.wants(ChannelVacated):
            self.lifecycle.emit(ChannelVacated(app.id, channel))
        if self.webhooks.wants(app, "channel_vacated"):
            self.node.spawn(self._delayed_webhook(app, "channel_vacated", channel))

    async def cleanup(self, conn: Connection, leaves: list[Unsubscribe], app: App) -> None:
        """Remove a closed socket's cluster state (after any action it had in flight)."""
        if conn.task is not None:
            try:
                await conn.task
            except Exception:  # the task logs its own failures
                logger.debug("in-flight action failed for closed socket %s", conn.socket_id)
            leaves = leaves + (conn.session.leave_all() if conn.session else [])
        try:
            for action in leaves:
                await self._leave(app, conn.socket_id, action)
            session = conn.session
            if session is not None and session.user_id is not None:
                await self._sign_out(app, session.user_id, conn.socket_id)
            if app.max_connections:
                await self.broker.remove_connection(app.id, conn.socket_id)
        except BrokerError as exc:
            logger.warning("cleanup of socket %s incomplete: %s", conn.socket_id, exc)
        except Exception:
            logger.exception("cleanup of socket %s failed", conn.socket_id)

    async def announce_reaped(self, reaped: Reaped) -> None:
        """Announce what a dead node left behind (the broker already removed it)."""
        app = self.node.apps.by_id(reaped.app_id)
        if app is None:
            return
        try:
            if reaped.kind == "member_removed" and reaped.user_id is not None:
                await self._member_removed(app, reaped.channel, reaped.user_id)
            elif reaped.kind == "channel_vacated":
                if self.lifecycle.wants(ChannelVacated):
                    self.lifecycle.emit(ChannelVacated(app.id, reaped.channel))
                await self._delayed_webhook(app, "channel_vacated", reaped.channel)
        except BrokerError as exc:
            logger.warning("could not announce reaped %s: %s", reaped.kind, exc)

    # webhooks ----------------------------------------------------------------------
    async def _transition_webhook(
        self, app: App, name: str, opposite: str, channel: str, user_id: str | None = None
    ) -> None:
        """Emit ``name`` unless it cancels a pending ``opposite`` (a quick rejoin)."""
        if self.webhooks.wants(app, opposite) and await self.broker.release(
            app.id, _mark(opposite, channel, user_id)
        ):
            return  # the held vacated/removed is cancelled and this one is not news
        if self.webhooks.wants(app, name):
            event = {"name": name, "channel": channel}
            if user_id is not None:
                event["user_id"] = user_id
            self.webhooks.emit(app, event)

    async def _delayed_webhook(
        self, app: App, name: str, channel: str, user_id: str | None = None
    ) -> None:
        if not self.webhooks.wants(app, name):
            return
        delay = self.node.config.webhooks.delay
        key = _mark(name, channel, user_id)
        event = {"name": name, "channel": channel}
        if user_id is not None:
            event["user_id"] = user_id
        if delay <= 0:
            self.webhooks.emit(app, event)
            return
        await self.broker.claim(app.id, key, delay + 30.0)

        async def confirm() -> bool:
            return await self.broker.release(app.id, key)

        self.webhooks.emit_later(app, event, delay, confirm)

    # client events, sign-in ----------------------------------------------------------
    async def client_event(self, conn: Connection, action: ClientEvent) -> None:
        app = conn.app
        assert app is not None
        await self._publish(app.id, action.channel, action.payload, conn.socket_id)
        self.node.metrics.client_event(app.id)
        if self.lifecycle.wants(ClientEventSent):
            self.lifecycle.emit(
                ClientEventSent(
                    app.id,
                    conn.socket_id,
                    action.channel,
                    action.event,
                    action.payload,
                    action.user_id,
                )
            )
        if self.webhooks.wants(app, "client_event"):
            data = action.data
            event: dict[str, Any] = {
                "name": "client_event",
                "channel": action.channel,
                "event": action.event,
                "data": data if isinstance(data, str) else orjson.dumps(data).decode(),
                "socket_id": conn.socket_id,
            }
            if action.user_id is not None:
                event["user_id"] = action.user_id
            self.webhooks.emit(app, event)

    async def sign_in(self, conn: Connection, action: SignIn) -> None:
        app = conn.app
        assert app is not None
        user_channel = SERVER_TO_USER_PREFIX + action.user_id
        internal = conn.internal = [user_channel]
        await self._add_local(conn, user_channel)
        came_online = await self.broker.sign_in(app.id, action.user_id, conn.socket_id)
        if app.watchlist and action.watchlist:
            for user_id in action.watchlist:
                internal.append(WATCHLIST_PREFIX + user_id)
                await self._add_local(conn, WATCHLIST_PREFIX + user_id)
            online = await self.broker.online(app.id, action.watchlist)
            events = []
            if online:
                events.append(
                    {"name": "online", "user_ids": [u for u in action.watchlist if u in online]}
                )
            offline = [u for u in action.watchlist if u not in online]
            if offline:
                events.append({"name": "offline", "user_ids": offline})
            conn.send(encode_event("pusher_internal:watchlist_events", {"events": events}))
        if came_online and app.watchlist:
            await self._watchlist_change(app.id, action.user_id, "online")

    async def _sign_out(self, app: App, user_id: str, socket_id: str) -> None:
        if await self.broker.sign_out(app.id, user_id, socket_id) and app.watchlist:
            await self._watchlist_change(app.id, user_id, "offline")

    async def _watchlist_change(self, app_id: str, user_id: str, name: str) -> None:
        payload = encode_event(
            "pusher_internal:watchlist_events", {"events": [{"name": name, "user_ids": [user_id]}]}
        )
        await self._publish(app_id, WATCHLIST_PREFIX + user_id, payload)

    async def _publish(
        self, app_id: str, channel: str, payload: bytes, except_socket_id: str | None = None
    ) -> None:
        await self.broker.publish(Envelope(app_id, channel, payload, except_socket_id))


def _mark(name: str, channel: str, user_id: str | None) -> str:
    return f"held:{name}:{channel}" if user_id is None else f"held:{name}:{channel}:{user_id}"
