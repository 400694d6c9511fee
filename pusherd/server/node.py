"""One pusherd node: admits sockets, carries out session actions, and sweeps idle ones.

The node wires the pieces together: the app registry, the broker (cluster truth),
the hub (local sockets), the webhook sender and metrics, each passed in. Channel
membership changes live in ``pusherd.server.membership``; this module owns the
socket lifecycle and the periodic sweep.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pusherd.apps.base import App, AppRegistry
from pusherd.brokers.base import Broker, Envelope, EnvelopeKind, Reaped
from pusherd.config import Config
from pusherd.errors import BrokerError, CloseCode, ConnectionError_
from pusherd.logs import InfoLine, flush_logs
from pusherd.metrics import Metrics
from pusherd.protocol.frames import ping_frame
from pusherd.protocol.messages import encode_event
from pusherd.protocol.origins import origin_allowed
from pusherd.protocol.session import Session, distinct_users
from pusherd.server.connection import Connection
from pusherd.server.eager import start_eagerly
from pusherd.server.handshake import Request
from pusherd.server.hub import Hub
from pusherd.server.membership import Membership
from pusherd.server.metrics_port import MetricsListener
from pusherd.webhooks import WebhookSender

if TYPE_CHECKING:
    from pusherd.server.front_door import FrontDoor
    from pusherd.server.http_api import RestApi

__all__ = ["Node"]

logger = logging.getLogger("pusherd.node")
_info = InfoLine("pusherd.node")

_APP_PATH = re.compile(r"/app/([^/]+)/?")
_PING = encode_event("pusher:ping", {})
CLOSE_GRACE = 10.0


class Node:
    """The running state of one pusherd process."""

    def __init__(
        self,
        config: Config,
        apps: AppRegistry,
        broker: Broker,
        metrics: Metrics,
        webhooks: WebhookSender,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        server = config.server
        self.config = config
        self.apps = apps
        self.broker = broker
        self.metrics = metrics
        self.webhooks = webhooks
        self.clock = clock
        self.debug = config.debug
        self.prefix = server.path_prefix
        self.activity_timeout = server.activity_timeout
        # connection_established around the socket id, encoded once: ids are digits and
        # a dot, which JSON never escapes, so splicing one in gives encode_event's bytes.
        self._greeting = encode_event(
            "pusher:connection_established",
            {"socket_id": "@", "activity_timeout": self.activity_timeout},
        ).split(b"@")
        self.pong_timeout = server.pong_timeout
        self.max_connections = server.max_connections
        self.max_message_size = server.max_message_size_kb * 1024
        self.hub = Hub(metrics, server.max_write_buffer_kb * 1024)
        # The memory broker never waits: run session actions without tasks.
        self.eager = bool(getattr(broker, "synchronous", False))
        self.membership = Membership(self)
        self.connections: set[Connection] = set()
        self.draining = False
        self.started = False
        self._tasks: set[asyncio.Future[Any]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self.metrics_listener: MetricsListener | None = None
        self.rest: RestApi | None = None  # set by create_app
        self._socket_ids = SocketIds()
        metrics.count_users_with(lambda: distinct_users(c.session for c in self.connections))

    def __repr__(self) -> str:
        return f"Node(id={self.config.scaling.node_id!r}, connections={len(self.connections)})"

    # lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        await self.broker.start(self.deliver, self._reaped)
        await self.webhooks.start()
        if self.config.metrics.enabled and self.config.metrics.port:
            self.metrics_listener = MetricsListener(
                self.metrics,
                self.config.metrics.host or self.config.server.host,
                self.config.metrics.port,
            )
            await self.metrics_listener.start()
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever())
        self.started = True

    async def stop(self, grace: float) -> None:
        """Close sockets with 4200, flush webhooks, leave the cluster (in that order)."""
        self.draining = True
        for conn in list(self.connections):
            conn.shutdown()
        if self._sweeper is not None:
            self._sweeper.cancel()
        pending = [t for t in self._tasks if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=max(0.1, grace / 2))
        await self.webhooks.stop(grace / 2)
        self.membership.cancel_pending()
        if self.metrics_listener is not None:
            await self.metrics_listener.close()
        try:
            await self.broker.close()
        except BrokerError as exc:
            logger.warning("broker close failed: %s", exc)
        flush_logs()

    @property
    def ready(self) -> bool:
        return self.started and not self.draining and self.broker.ready

    def ws_protocol(self, door: FrontDoor | None = None, **kwargs: Any) -> Connection:
        """Build the protocol uvicorn uses for a WebSocket upgrade (its ``ws=`` option).

        With ``door``, the protocol for a new socket (uvicorn's ``http=``): it keeps the
        socket if the first read is an upgrade, else hands it to HTTP with ``kwargs``.
        """
        return Connection(
            self, kwargs.get("server_state"), None if door is None else (door, kwargs)
        )

    def spawn(self, coro: Any) -> None:
        """Run ``coro`` in the background, keeping a reference until it finishes."""
        if self.eager:
            pending = start_eagerly(coro)
            if pending is not None:
                self._tasks.add(pending)
                pending.add_done_callback(self._tasks.discard)
            return
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # admission ---------------------------------------------------------------------
    def admit(self, conn: Connection, request: Request) -> App:
        """Check a new socket's path, app, protocol, origin and limits.

        Raises:
            ConnectionError_: with the Pusher close code for the first failed check.
        """
        path = request.path
        if self.prefix:
            if not path.startswith(self.prefix + "/"):
                raise ConnectionError_(f"Path not found: {path[:100]}", CloseCode.PATH_NOT_FOUND)
            path = path[len(self.prefix) :]
        match = _APP_PATH.fullmatch(path)
        if match is None:
            raise ConnectionError_(f"Path not found: {path[:100]}", CloseCode.PATH_NOT_FOUND)
        app = self.apps.by_key(match.group(1))
        if app is None:
            raise ConnectionError_(
                f"Application does not exist: {match.group(1)[:64]}", CloseCode.APP_NOT_FOUND
            )
        if not app.enabled:
            raise ConnectionError_("Application disabled", CloseCode.APP_DISABLED)
        _check_protocol(request.query)
        if not origin_allowed(request.origin, app.allowed_origins):
            raise ConnectionError_(
                f"Origin not allowed: {str(request.origin)[:100]}", CloseCode.UNAUTHORIZED
            )
        if self.draining:
            raise ConnectionError_("Server is shutting down, reconnect", CloseCode.RECONNECT)
        if self.max_connections and len(self.connections) >= self.max_connections:
            raise ConnectionError_("Over capacity", CloseCode.OVER_CAPACITY)
        return app

    def established(self, conn: Connection) -> None:
        """Send ``connection_established``; count the socket (cluster-wide if limited)."""
        app = conn.app
        assert app is not None
        socket_id = self._socket_ids.next()
        conn.socket_id = socket_id
        conn.session = Session(app, socket_id, self.clock())
        self.connections.add(conn)
        self.metrics.connection_opened(app.id)
        if app.max_connections:
            self.spawn(self._count_connection(conn, app))
        else:
            self._greet(conn)
        if _info.enabled:
            _info(f"connection opened: app {app.id} socket {socket_id}")

    async def _count_connection(self, conn: Connection, app: App) -> None:
        try:
            admitted = await self.broker.add_connection(app.id, conn.socket_id, app.max_connections)
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

    # sockets -----------------------------------------------------------------------
    def disconnected(self, conn: Connection) -> None:
        """Forget a closed socket: locally now, in the cluster in the background."""
        if conn not in self.connections:
            return
        self.connections.discard(conn)
        app = conn.app
        assert app is not None and conn.session is not None
        self.metrics.connection_closed(app.id, conn.close_code or 1006)
        if _info.enabled:
            _info(
                f"connection closed: app {app.id} socket {conn.socket_id} "
                f"code {conn.close_code or 1006}"
            )
        leaves = conn.session.leave_all()
        for action in leaves:
            self.membership.drop_local(conn, action.channel)
        internal = conn.internal or []
        for channel in internal:
            self.membership.drop_local(conn, channel)
        if leaves or conn.session.user_id is not None or app.max_connections or conn.task:
            self.spawn(self.membership.cleanup(conn, leaves, app))

    # fan-out -----------------------------------------------------------------------
    def deliver(self, envelope: Envelope) -> None:
        """Take an envelope from the broker and write it to local subscribers."""
        if envelope.kind is EnvelopeKind.MESSAGE:
            self.hub.fanout(
                envelope.app_id, envelope.channel, envelope.payload, envelope.except_socket_id
            )
        elif envelope.kind is EnvelopeKind.TERMINATE:
            for conn in self.hub.subscribers(envelope.app_id, envelope.channel):
                conn.close(CloseCode.UNAUTHORIZED, "You got disconnected by the app")

    def _reaped(self, reaped: Reaped) -> None:
        self.spawn(self.membership.announce_reaped(reaped))

    # sweep -------------------------------------------------------------------------
    async def _sweep_forever(self) -> None:
        interval = max(0.5, min(self.activity_timeout, self.pong_timeout) / 4)
        next_sweep = self.clock() + interval
        while True:
            await asyncio.sleep(1.0)
            flush_logs()
            if self.clock() < next_sweep:
                continue
            next_sweep = self.clock() + interval
            try:
                self.sweep(self.clock())
            except Exception:  # the sweep must never die
                logger.exception("sweep failed")

    def sweep(self, now: float) -> None:
        """Ping idle sockets, close silent ones (4201), unauthorized ones (4009)."""
        idle = self.activity_timeout
        for conn in list(self.connections):
            if conn.closing:
                # A close frame stuck behind unread bytes: give up on the handshake.
                if now - conn.closing_since > CLOSE_GRACE:
                    conn.abort()
                continue
            session = conn.session
            if session is not None and not session.authorized:
                timeout = session.app.user_authentication_timeout
                if now - conn.opened_at > timeout:
                    conn.close(CloseCode.UNAUTHORIZED, "Connection not authorized within timeout")
                    continue
            if conn.pinged_at:
                if now - conn.pinged_at > self.pong_timeout:
                    conn.close(CloseCode.PONG_TIMEOUT, "Pong reply not received in time")
            elif now - conn.last_seen > idle:
                conn.pinged_at = now
                conn.send(_PING)
                conn.transport.write(ping_frame())


class SocketIds:
    """Socket ids ``\\d+\\.\\d+`` from the OS CSPRNG, made 256 at a time.

    They are signed into channel auth strings, so they must not be guessable; one
    ``getrandom`` per 256 connections keeps that cheap under connection churn.
    """

    def __init__(self) -> None:
        self._ready: list[str] = []

    def next(self) -> str:
        ready = self._ready
        if not ready:
            pool = os.urandom(8 * 256)
            for start in range(0, len(pool), 8):
                high = int.from_bytes(pool[start : start + 4], "big")
                low = int.from_bytes(pool[start + 4 : start + 8], "big")
                ready.append(f"{high}.{low}")
        return ready.pop()


def _check_protocol(query: dict[str, str]) -> None:
    raw = query.get("protocol")
    if raw is None:
        if "version" in query:
            return  # the protocol is inferred from the library version (Pusher docs)
        raise ConnectionError_("No protocol version supplied", CloseCode.NO_PROTOCOL)
    if not raw.isdigit():
        raise ConnectionError_("Invalid version string format", CloseCode.INVALID_VERSION)
    if not 5 <= int(raw) <= 7:
        raise ConnectionError_(
            f"Unsupported protocol version {raw[:8]}", CloseCode.UNSUPPORTED_PROTOCOL
        )
