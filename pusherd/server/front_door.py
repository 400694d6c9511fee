"""Route every accepted socket by its first bytes: WebSocket upgrades before HTTP.

uvicorn builds an HTTP protocol (parser, scope, keep-alive timer) for every socket and
only then hands upgrades to ``ws=``. Pusher clients connect, subscribe and leave at
high rates, so the protocol uvicorn builds for a new socket (its ``http=`` factory) is
a ``Connection`` that knows the ``FrontDoor``. On the first read, a complete
``GET …`` head with ``Upgrade: websocket`` stays in that ``Connection``; anything
else (REST calls, probes, a head split across packets) is handed to uvicorn's HTTP
protocol, or to ``RestProtocol`` for ``/apps/…``, exactly as if the ``Connection``
had never been there, and uvicorn's own upgrade path still reaches ``Connection`` for
the rare split head.

Why the WebSocket is not handed on as well: uvloop's ``transport.set_protocol()``
stops and restarts reading, which costs an epoll change (a system call) on every
connect; the socket that stays in its first protocol pays none.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pusherd.server.rest_protocol import RestProtocol

if TYPE_CHECKING:
    from pusherd.server.connection import Connection
    from pusherd.server.node import Node

__all__ = ["FrontDoor", "front_door_factory"]

_UPGRADE = re.compile(rb"\r\nupgrade:[ \t]*websocket[ \t]*\r\n", re.IGNORECASE)


class FrontDoor:
    """One per node: tells an upgrade from HTTP and hands HTTP sockets over."""

    __slots__ = ("_http", "_node", "_rest_starts")

    def __init__(
        self, node: Node, http: Callable[..., asyncio.Protocol], rest_starts: tuple[bytes, ...]
    ) -> None:
        self._node = node
        self._http = http
        self._rest_starts = rest_starts

    @staticmethod
    def is_upgrade(data: bytes) -> bool:
        """True if ``data`` holds a whole ``GET`` head asking for ``Upgrade: websocket``."""
        head_end = data.find(b"\r\n\r\n")
        return (
            data.startswith(b"GET ")
            and head_end > 0
            and _UPGRADE.search(data, 0, head_end + 2) is not None
        )

    def hand_off(self, conn: Connection, data: bytes, kwargs: dict[str, Any]) -> None:
        """Give ``conn``'s socket to the REST or HTTP protocol, starting with ``data``."""
        transport = conn.transport
        server_state = kwargs.get("server_state")
        if server_state is not None:
            server_state.connections.discard(conn)
        conn.closing = True  # this Connection never served a WebSocket; it is dropped
        node = self._node
        protocol: asyncio.Protocol
        if node.rest is not None and data.startswith(self._rest_starts):
            protocol = RestProtocol(node, node.rest, server_state)
        else:
            protocol = self._http(**kwargs)
        protocol.connection_made(transport)
        transport.set_protocol(protocol)
        protocol.data_received(data)


def front_door_factory(node: Node) -> Callable[..., Connection]:
    """Return the ``http=`` protocol factory for uvicorn."""
    http: Callable[..., asyncio.Protocol]
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

        http = HttpToolsProtocol
    except ImportError:  # pragma: no cover - uvicorn[standard] brings httptools
        from uvicorn.protocols.http.h11_impl import H11Protocol

        http = H11Protocol

    prefix = node.prefix.encode()
    rest_starts = tuple(
        method + b" " + prefix + path
        for method in (b"POST", b"GET")
        for path in (b"/apps/", b"/users/")
    )
    door = FrontDoor(node, http, rest_starts)

    def build(**kwargs: Any) -> Connection:
        return node.ws_protocol(door=door, **kwargs)

    return build
