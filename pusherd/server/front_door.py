"""Every accepted socket's first protocol: WebSocket upgrades stay, HTTP is handed over.

uvicorn builds an HTTP protocol (parser, scope, keep-alive timer) for every socket and
only then hands upgrades to ``ws=``. Pusher clients connect, subscribe and leave at
high rates, so the protocol uvicorn builds for a new socket (its ``http=`` factory) is
an ``Upgrade``. On the first read, a complete ``GET …`` head with ``Upgrade: websocket``
stays: the upgrade is checked and admitted, and the socket's ``Connection`` is built
whole and gets every later read. Anything else (REST calls, probes, a head split across
packets) is handed to ``RestProtocol`` for ``/apps/…`` or to uvicorn's HTTP protocol,
exactly as if the ``Upgrade`` had never been there; uvicorn's own upgrade path (the rare
split head) and a REST keep-alive connection that upgrades reach an ``Upgrade`` too.

Why the WebSocket is not handed on as well: uvloop's ``transport.set_protocol()``
stops and restarts reading, which costs an epoll change (a system call) on every
connect; the socket that stays in its first protocol pays none.
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from pusherd.errors import ConnectionError_
from pusherd.protocol.frames import FrameParser
from pusherd.protocol.handshake import (
    HandshakeError,
    accept_response,
    is_upgrade,
    parse_request,
    refusal,
)
from pusherd.server.connection import Connection, ConnectionServices
from pusherd.server.linger import Lingering
from pusherd.server.rest_protocol import RestProtocol, RestServices
from pusherd.server.sockets import Sockets

__all__ = ["FrontDoor", "Upgrade", "Upgrades"]

_MAX_HEAD = 65536


class Upgrades:
    """Builds the protocol of a socket known to be a WebSocket upgrade.

    uvicorn's ``ws=`` option, and what a REST keep-alive connection that upgrades
    becomes. ``FrontDoor`` builds the first protocol of every other socket.
    """

    __slots__ = ("services", "sockets")

    def __init__(self, sockets: Sockets, services: ConnectionServices) -> None:
        self.sockets = sockets
        self.services = services

    def __call__(self, **kwargs: Any) -> Upgrade:
        return Upgrade(self, kwargs.get("server_state"))


class FrontDoor:
    """One per node: builds first protocols and routes what is not a WebSocket.

    Args:
        rest: the keep-alive REST protocol's services (``RestProtocol``).
        rest_starts: request-line prefixes that go to ``rest`` (``POST /apps/``, …).
    """

    __slots__ = ("_rest", "_rest_starts", "upgrades")

    def __init__(
        self, upgrades: Upgrades, rest: RestServices, rest_starts: tuple[bytes, ...]
    ) -> None:
        self.upgrades = upgrades
        self._rest = rest
        self._rest_starts = rest_starts

    def __call__(self, **kwargs: Any) -> Upgrade:
        """uvicorn's ``http=`` factory: the protocol of every new socket."""
        return Upgrade(self.upgrades, kwargs.get("server_state"), self, kwargs)

    def hand_off(self, upgrade: Upgrade, data: bytes, kwargs: dict[str, Any]) -> None:
        """Give the socket to the REST or HTTP protocol, starting with ``data``."""
        transport = upgrade.transport
        server_state = kwargs.get("server_state")
        if server_state is not None:
            server_state.connections.discard(upgrade)
        protocol: asyncio.Protocol
        if data.startswith(self._rest_starts):
            protocol = RestProtocol(self._rest, server_state, partial(HttpToolsProtocol, **kwargs))
        else:
            protocol = HttpToolsProtocol(**kwargs)
        protocol.connection_made(transport)
        transport.set_protocol(protocol)
        protocol.data_received(data)


class Upgrade(asyncio.Protocol):
    """A socket's asyncio protocol, from its first byte to ``connection_lost``."""

    __slots__ = (
        "_door",
        "_head",
        "_http",
        "_upgrades",
        "conn",
        "lingering",
        "server_state",
        "transport",
    )

    def __init__(
        self,
        upgrades: Upgrades,
        server_state: Any,
        door: FrontDoor | None = None,
        http: dict[str, Any] | None = None,
    ) -> None:
        self._upgrades = upgrades
        self._door = door
        self.server_state = server_state
        # uvicorn's HTTP protocol options while the first read may still be plain HTTP.
        self._http = http
        self._head = b""
        self.conn: Connection | None = None
        self.lingering: Lingering | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        if self.server_state is not None:
            self.server_state.connections.add(self)

    def data_received(self, data: bytes) -> None:
        conn = self.conn
        if conn is not None:
            conn.data_received(data)
        elif self.lingering is not None:
            self.lingering.feed(data)
        else:
            http, door = self._http, self._door
            if http is not None and door is not None:
                self._http = None
                if not is_upgrade(data):
                    door.hand_off(self, data, http)
                    return
            self._handshake(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.server_state is not None:
            self.server_state.connections.discard(self)
        if self.conn is not None:
            self.conn.connection_lost()
        elif self.lingering is not None:
            self.lingering.cancel()

    def shutdown(self) -> None:
        """uvicorn's graceful shutdown: 4200 for a WebSocket; drop anything else."""
        if self.conn is not None:
            self.conn.shutdown()
        else:
            self.transport.abort()

    def _handshake(self, data: bytes) -> None:
        head = self._head + data if self._head else data
        end = head.find(b"\r\n\r\n")
        if end < 0:
            if len(head) > _MAX_HEAD:
                self.transport.abort()
            self._head = head
            return
        self._head = b""
        transport = self.transport
        try:
            request = parse_request(head)
        except HandshakeError as exc:
            transport.write(exc.response())
            transport.close()
            return
        upgrades = self._upgrades
        sockets = upgrades.sockets
        accept = accept_response(request.key)
        try:
            app = sockets.admit(request)
        except ConnectionError_ as exc:
            # Then a lingering close: a client still sending must not reset them away.
            transport.write(refusal(accept, exc))
            self.lingering = Lingering(transport, FrameParser(upgrades.services.max_message_size))
            return
        services = upgrades.services
        conn = self.conn = Connection(
            services, transport, app, sockets.next_id(), services.clock(), accept
        )
        sockets.open(conn, request)
        conn.uncork()  # the 101 and connection_established leave in one write
        if len(head) > end + 4 and not conn.closing:
            # Frames sent right behind the head, before our 101 arrived (RFC 6455 says a
            # client waits; a lenient server still reads them rather than drop them).
            conn.data_received(head[end + 4 :])
