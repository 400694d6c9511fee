"""Carries out membership actions: subscribe, unsubscribe, client events, sign-in.

Every cluster-wide transition comes back from the broker as a count or a flag, so
exactly one node sees it; what follows (client events, webhooks, their payloads) is
decided in ``protocol.transitions``. This module awaits the broker, writes to the
socket and reports through the ``Observer``.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pusherd.apps.base import App, AppRegistry
from pusherd.brokers.base import Broker, Envelope, Reaped
from pusherd.errors import BrokerError, CloseCode, SubscriptionError
from pusherd.observer import Observer
from pusherd.protocol import transitions
from pusherd.protocol.actions import Action, ClientEvent, SignIn, Subscribe, Unsubscribe
from pusherd.protocol.channels import SERVER_TO_USER_PREFIX, ChannelKind
from pusherd.protocol.presence import member_news
from pusherd.server.history import ChannelHistory
from pusherd.server.hub import Hub
from pusherd.server.ports import Socket, Spawn
from pusherd.webhooks import WebhookSender

__all__ = ["WATCHLIST_PREFIX", "Membership"]

logger = logging.getLogger("pusherd.membership")

WATCHLIST_PREFIX = "#watchlist-"


class Membership:
    """Carries out membership actions for the node's sockets.

    Args:
        webhook_delay: seconds ``channel_vacated``/``member_removed`` are held.
    """

    def __init__(
        self,
        broker: Broker,
        hub: Hub,
        webhooks: WebhookSender,
        observer: Observer,
        apps: AppRegistry,
        spawn: Spawn,
        webhook_delay: float,
        history: ChannelHistory,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.broker = broker
        self.hub = hub
        self.history = history
        self.webhooks = webhooks
        self.observer = observer
        self.apps = apps
        self.spawn = spawn
        self.webhook_delay = webhook_delay
        self.clock = clock
        self._counts = transitions.CountThrottle()
        # What carries out each cluster action a session returns (raises PusherErrors).
        self.apply: dict[type[Action], Callable[[Any, Any], Awaitable[None]]] = {
            Subscribe: self.subscribe,
            Unsubscribe: self.unsubscribe,
            ClientEvent: self.client_event,
            SignIn: self.sign_in,
        }

    # local index -------------------------------------------------------------------
    def drop_local(self, conn: Socket, channel: str) -> None:
        """Stop delivering ``channel`` to ``conn`` now (the cluster state follows later)."""
        self.hub.leave(conn.app.id, channel, conn)

    # subscribe ---------------------------------------------------------------------
    async def subscribe(self, conn: Socket, action: Subscribe) -> None:
        app = conn.app
        channel, kind, member = action.channel, action.kind, action.member
        app_id, socket_id = app.id, conn.socket_id
        if self.hub.has(app_id, channel, conn):
            members = await self.broker.members(app_id, channel) if kind.is_presence else None
            conn.send(transitions.subscription_succeeded(channel, members))
            return
        if kind is ChannelKind.SERVER_TO_USER:
            conn.send(transitions.subscription_succeeded(channel))
            return
        # Listen first: once the client hears subscription_succeeded, anything the app
        # publishes must reach it, so the node's broker subscription comes before that.
        # History channels: hold live events for this socket from the moment it is
        # indexed, until the replay (after subscription_succeeded) has gone out. Presence:
        # member events meanwhile wait too, and only the news among them follows it.
        holding = member is not None
        if holding:
            self.hub.hold_members(app_id, channel, conn)
        joined = None
        try:
            catchup = self.history.begin(conn, app, channel) if app.history else None
            try:
                subscribing = self.hub.join(app_id, channel, conn)
                if subscribing is not None:
                    await subscribing
            except BrokerError:
                if catchup is not None:
                    self.history.cancel(conn, app_id, channel)
                raise
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
                if catchup is not None:
                    self.history.cancel(conn, app_id, channel)
                self.drop_local(conn, channel)
                conn.session.forget(channel)
                if joined is not None and not joined.refused:
                    with contextlib.suppress(BrokerError):
                        await self.broker.leave_presence(app_id, channel, socket_id)
                raise
            if conn.closing:
                if catchup is not None:
                    self.history.cancel(conn, app_id, channel)
                self.drop_local(conn, channel)
                await self.broker.remove_subscriber(app_id, channel, socket_id)
                if member is not None:
                    await self.broker.leave_presence(app_id, channel, socket_id)
                return
            self.observer.subscribed(app_id, socket_id, channel)
            conn.send(
                transitions.subscription_succeeded(
                    channel, None if joined is None else joined.members
                )
            )
        finally:
            held = self.hub.release_members(app_id, channel, conn) if holding else []
        if held and joined is not None:
            for payload in member_news(held, joined.members):
                conn.send(payload)
        if catchup is not None:
            await self.history.replay(conn, app, channel, catchup)
        if joined is not None and joined.is_new_user:
            self.observer.member_added(app_id, channel, joined.member.user_id)
            await self._publish(
                app_id, channel, transitions.member_added(channel, joined.member), socket_id
            )
            if app.webhooks:
                await self._transition_webhook(
                    app, "member_added", "member_removed", channel, joined.member.user_id
                )
        if count == 1:
            self.observer.occupied(app_id, channel)
            if app.webhooks:
                await self._transition_webhook(app, "channel_occupied", "channel_vacated", channel)
        if kind.is_cache:
            await self._replay_cache(conn, app, channel)
        if not kind.is_presence and (app.subscription_count or app.webhooks):
            await self._subscription_count(app, channel, count)

    async def _replay_cache(self, conn: Socket, app: App, channel: str) -> None:
        cached = await self.broker.cache_get(app.id, channel)
        if cached is not None:
            conn.send(cached[0])
            return
        self.observer.cache_miss(app.id, channel)
        conn.send(transitions.cache_miss(channel))
        if self.webhooks.wants(app, "cache_miss") and await self.broker.claim(
            app.id, f"cache_miss:{channel}", 10.0
        ):
            self.webhooks.emit(app, {"name": "cache_miss", "channel": channel})

    async def _subscription_count(self, app: App, channel: str, count: int) -> None:
        wants_hook = self.webhooks.wants(app, "subscription_count")
        if not (app.subscription_count or wants_hook):
            return
        if not self._counts.due(app.id, channel, count, self.clock()):
            return
        if app.subscription_count and count > 0:
            await self._publish(app.id, channel, transitions.subscription_count(channel, count))
        if wants_hook:
            self.webhooks.emit(
                app, {"name": "subscription_count", "channel": channel, "subscription_count": count}
            )

    # unsubscribe -------------------------------------------------------------------
    async def unsubscribe(self, conn: Socket, action: Unsubscribe) -> None:
        # The socket already left the local index when the message arrived
        # (Connection._execute), so delivery stopped before this ran.
        await self._leave(conn.app, conn.socket_id, action)

    async def _leave(self, app: App, socket_id: str, action: Unsubscribe) -> None:
        channel = action.channel
        if action.kind is ChannelKind.SERVER_TO_USER:
            return
        if action.member is not None:
            gone = await self.broker.leave_presence(app.id, channel, socket_id)
            if gone is not None:
                await self._member_removed(app, channel, gone.user_id, local=True)
        count = await self.broker.remove_subscriber(app.id, channel, socket_id)
        if count >= 0:
            self.observer.unsubscribed(app.id, socket_id, channel)
        if count == 0:
            self._vacated(app, channel)
        elif count > 0 and not action.kind.is_presence and (app.subscription_count or app.webhooks):
            await self._subscription_count(app, channel, count)

    async def _member_removed(self, app: App, channel: str, user_id: str, local: bool) -> None:
        self.observer.member_removed(app.id, channel, user_id, local)
        await self._publish(app.id, channel, transitions.member_removed(channel, user_id))
        await self._delayed_webhook(app, "member_removed", channel, user_id)

    def _vacated(self, app: App, channel: str) -> None:
        self.observer.vacated(app.id, channel)
        if self.webhooks.wants(app, "channel_vacated"):
            self.spawn(self._delayed_webhook(app, "channel_vacated", channel))

    async def cleanup(self, conn: Socket, leaves: list[Unsubscribe], app: App) -> None:
        """Remove a closed socket's cluster state (after any action it had in flight)."""
        if conn.task is not None:
            try:
                await conn.task
            except Exception:  # the task logs its own failures
                logger.debug("in-flight action failed for closed socket %s", conn.socket_id)
            leaves = leaves + conn.session.leave_all()
        try:
            for action in leaves:
                await self._leave(app, conn.socket_id, action)
            user_id = conn.session.user_id
            if user_id is not None:
                await self._sign_out(app, user_id, conn.socket_id)
            if app.max_connections:
                await self.broker.remove_connection(app.id, conn.socket_id)
        except BrokerError as exc:
            logger.warning("cleanup of socket %s incomplete: %s", conn.socket_id, exc)
        except Exception:
            logger.exception("cleanup of socket %s failed", conn.socket_id)

    def reaped(self, reaped: Reaped) -> None:
        """The broker's callback for what a dead node left behind (already removed)."""
        self.spawn(self._announce_reaped(reaped))

    async def _announce_reaped(self, reaped: Reaped) -> None:
        app = self.apps.by_id(reaped.app_id)
        if app is None:
            return
        try:
            if reaped.kind == "member_removed" and reaped.user_id is not None:
                await self._member_removed(app, reaped.channel, reaped.user_id, local=False)
            elif reaped.kind == "channel_vacated":
                self.observer.vacated(app.id, reaped.channel)
                await self._delayed_webhook(app, "channel_vacated", reaped.channel)
        except BrokerError as exc:
            logger.warning("could not announce reaped %s: %s", reaped.kind, exc)

    # webhooks ----------------------------------------------------------------------
    async def _transition_webhook(
        self, app: App, name: str, opposite: str, channel: str, user_id: str | None = None
    ) -> None:
        """Emit ``name`` unless it cancels a pending ``opposite`` (a quick rejoin)."""
        if self.webhooks.wants(app, opposite) and await self.broker.release(
            app.id, transitions.held_mark(opposite, channel, user_id)
        ):
            return  # the held vacated/removed is cancelled and this one is not news
        if self.webhooks.wants(app, name):
            self.webhooks.emit(app, transitions.webhook_event(name, channel, user_id))

    async def _delayed_webhook(
        self, app: App, name: str, channel: str, user_id: str | None = None
    ) -> None:
        if not self.webhooks.wants(app, name):
            return
        event = transitions.webhook_event(name, channel, user_id)
        delay = self.webhook_delay
        if delay <= 0:
            self.webhooks.emit(app, event)
            return
        key = transitions.held_mark(name, channel, user_id)
        await self.broker.claim(app.id, key, delay + 30.0)

        async def confirm() -> bool:
            return await self.broker.release(app.id, key)

        self.webhooks.emit_later(app, event, delay, confirm)

    # client events, sign-in ----------------------------------------------------------
    async def client_event(self, conn: Socket, action: ClientEvent) -> None:
        app = conn.app
        if app.history:
            envelope = Envelope(app.id, action.channel, action.payload, conn.socket_id)
            await self.history.publish(app, envelope, client_event=True)
        else:
            await self._publish(app.id, action.channel, action.payload, conn.socket_id)
        self.observer.client_event(
            app.id, conn.socket_id, action.channel, action.event, action.payload, action.user_id
        )
        if self.webhooks.wants(app, "client_event"):
            self.webhooks.emit(app, transitions.client_event_webhook(action, conn.socket_id))

    async def sign_in(self, conn: Socket, action: SignIn) -> None:
        app = conn.app
        user_channel = SERVER_TO_USER_PREFIX + action.user_id
        internal = conn.internal = [user_channel]
        await self._join(app.id, user_channel, conn)
        came_online = await self.broker.sign_in(app.id, action.user_id, conn.socket_id)
        if app.watchlist and action.watchlist:
            for user_id in action.watchlist:
                internal.append(WATCHLIST_PREFIX + user_id)
                await self._join(app.id, WATCHLIST_PREFIX + user_id, conn)
            online = await self.broker.online(app.id, action.watchlist)
            conn.send(transitions.watchlist_events(action.watchlist, online))
        if came_online and app.watchlist:
            await self._watchlist_change(app.id, action.user_id, "online")

    async def _join(self, app_id: str, channel: str, conn: Socket) -> None:
        subscribing = self.hub.join(app_id, channel, conn)
        if subscribing is not None:
            await subscribing

    async def _sign_out(self, app: App, user_id: str, socket_id: str) -> None:
        if await self.broker.sign_out(app.id, user_id, socket_id) and app.watchlist:
            await self._watchlist_change(app.id, user_id, "offline")

    async def _watchlist_change(self, app_id: str, user_id: str, name: str) -> None:
        payload = transitions.watchlist_change(user_id, name)
        await self._publish(app_id, WATCHLIST_PREFIX + user_id, payload)

    async def _publish(
        self, app_id: str, channel: str, payload: bytes, except_socket_id: str | None = None
    ) -> None:
        await self.broker.publish(Envelope(app_id, channel, payload, except_socket_id))
