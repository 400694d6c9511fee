"""The node's established sockets: admission, greeting, leaving, sweeping, termination.

``Upgrade`` asks ``admit`` (Pusher's rules, ``protocol.handshake.admit``) and then
``open``s the socket here: it gets its id and ``connection_established``. When it goes,
``closed`` forgets it locally at once and in the cluster in the background. The idle
sweep applies ``protocol.idle.idle_verdict`` to every socket.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from pusherd.apps.base import App, AppRegistry
from pusherd.brokers.base import Broker, Envelope, EnvelopeKind
from pusherd.config import ServerConfig
from pusherd.errors import BrokerError, CloseCode
from pusherd.observer import Observer
from pusherd.protocol.handshake import Request, admit
from pusherd.protocol.idle import Verdict, idle_verdict
from pusherd.protocol.ids import SocketIds
from pusherd.protocol.messages import encode_event
from pusherd.server.history import ChannelHistory
from pusherd.server.hub import Hub
from pusherd.server.ports import Spawn

if TYPE_CHECKING:
    from pusherd.server.connection import Connection
    from pusherd.server.membership import Membership

__all__ = ["Sockets"]

logger = logging.getLogger("pusherd.node")


class Sockets:
    """Every established socket of this node, from admission to cleanup."""

    def __init__(
        self,
        server: ServerConfig,
        apps: AppRegistry,
        broker: Broker,
        hub: Hub,
        membership: Membership,
        observer: Observer,
        clock: Callable[[], float],
        spawn: Spawn,
        history: ChannelHistory,
    ) -> None:
        self._prefix = server.path_prefix
        self._max_connections = server.max_connections
        self._activity_timeout = server.activity_timeout
        self._pong_timeout = server.pong_timeout
        self._apps = apps
        self._broker = broker
        self._hub = hub
        self._membership = membership
        self._observer = observer
        self._clock = clock
        self._spawn = spawn
        self._history = history
        #: A fresh socket id (bound here: it is called on every connect).
        self.next_id = SocketIds(os.urandom).next
        # connection_established around the socket id, encoded once: ids are digits and
        # a dot, which JSON never escapes, so splicing one in gives encode_event's bytes.
        self._greeting = encode_event(
            "pusher:connection_established",
            {"socket_id": "@", "activity_timeout": server.activity_timeout},
        ).split(b"@")
        self.connections: set[Connection] = set()
        self.draining = False

    def __len__(self) -> int:
        return len(self.connections)

    # admission -----------------------------------------------------------------------
    def admit(self, request: Request) -> App:
        """Return the app of an upgrade request (raises ``ConnectionError_`` to refuse)."""
        full = 0 < self._max_connections <= len(self.connections)
        return admit(request, self._prefix, self._apps.by_key, self.draining, full)

    def open(self, conn: Connection, request: Request) -> None:
        """Count ``conn`` and greet it (after a cluster-wide count for limited apps)."""
        app = conn.app
        self.connections.add(conn)
        self._observer.socket_opened(app.id, conn.socket_id, request, conn.transport)
        if app.max_connections:
            self._spawn(self._count(conn, app))
        else:
            head, tail = self._greeting
            conn.send(head + conn.socket_id.encode() + tail)

    async def _count(self, conn: Connection, app: App) -> None:
        try:
            admitted = await self._broker.add_connection(
                app.id, conn.socket_id, app.max_connections
            )
        except BrokerError:
            conn.close(CloseCode.OVER_CAPACITY, "Temporarily unavailable, reconnect later")
            return
        if not admitted:
            conn.close(CloseCode.OVER_QUOTA, "Application is over connection quota")
            return
        self._greet(conn)

    def _greet(self, conn: Connection) -> None:
        head, tail = self._greeting
        conn.send(head + conn.socket_id.encode() + tail)

    # leaving -------------------------------------------------------------------------
    def closed(self, conn: Connection) -> None:
        """Forget a closed socket: locally now, in the cluster in the background."""
        if conn not in self.connections:
            return
        self.connections.discard(conn)
        app = conn.app
        code = conn.close_code or 1006
        self._observer.socket_closed(
            app.id, conn.socket_id, code, "", self._clock() - conn.opened_at
        )
        session = conn.session
        leaves = session.leave_all()
        leave = self._hub.leave
        for action in leaves:
            leave(app.id, action.channel, conn)
        for channel in conn.internal or ():
            leave(app.id, channel, conn)
        if leaves or session.user_id is not None or app.max_connections or conn.task:
            self._spawn(self._membership.cleanup(conn, leaves, app))

    def shutdown(self) -> None:
        """Close every socket with 4200 (the node is draining)."""
        self.draining = True
        for conn in list(self.connections):
            conn.shutdown()

    # from the broker -----------------------------------------------------------------
    def deliver(self, envelope: Envelope) -> None:
        """Take an envelope from the broker and write it to local subscribers."""
        if envelope.kind is EnvelopeKind.MESSAGE:
            self._hub.fanout(
                envelope.app_id, envelope.channel, envelope.payload, envelope.except_socket_id
            )
        elif envelope.kind is EnvelopeKind.SEQUENCED:
            self._history.deliver(envelope)
        elif envelope.kind is EnvelopeKind.TERMINATE:
            for conn in self._hub.subscribers(envelope.app_id, envelope.channel):
                conn.close(CloseCode.UNAUTHORIZED, "You got disconnected by the app")

    # sweep ---------------------------------------------------------------------------
    @property
    def sweep_interval(self) -> float:
        return max(0.5, min(self._activity_timeout, self._pong_timeout) / 4)

    def sweep(self, now: float) -> None:
        """Ping idle sockets, close silent ones (4201) and unauthorized ones (4009)."""
        for conn in list(self.connections):
            session = conn.session
            verdict = idle_verdict(
                now,
                last_seen=conn.last_seen,
                pinged_at=conn.pinged_at,
                opened_at=conn.opened_at,
                closing_since=conn.closing_since if conn.closing else None,
                auth_deadline=None
                if session.authorized
                else session.app.user_authentication_timeout,
                activity_timeout=self._activity_timeout,
                pong_timeout=self._pong_timeout,
            )
            if verdict is Verdict.KEEP:
                continue
            if verdict is Verdict.PING:
                conn.pinged_at = now
                conn.ping()
            elif verdict is Verdict.PONG_TIMEOUT:
                conn.close(CloseCode.PONG_TIMEOUT, "Pong reply not received in time")
            elif verdict is Verdict.UNAUTHORIZED:
                conn.close(CloseCode.UNAUTHORIZED, "Connection not authorized within timeout")
            else:  # a close frame stuck behind unread bytes: give up on the handshake
                conn.abort()
