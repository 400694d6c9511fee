"""The first protocol on every accepted socket: route WebSocket upgrades before HTTP.

uvicorn builds an HTTP protocol (parser, scope, keep-alive timer) for every socket and
only then hands upgrades to ``ws=``. Pusher clients connect, subscribe and leave at
high rates, so ``FrontDoor`` looks at the first bytes instead: a complete
``GET …`` head with ``Upgrade: websocket`` goes straight to a ``Connection``; anything
else (REST calls, probes, a head split across packets) goes to uvicorn's HTTP
protocol exactly as if ``FrontDoor`` were not there, and uvicorn's own upgrade path
still reaches ``Connection`` for the rare split head.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pusherd.server.rest_protocol import RestProtocol

if TYPE_CHECKING:
    from pusherd.server.node import Node

__all__ = ["FrontDoor", "front_door_factory"]

_UPGRADE = re.compile(rb"\r\nupgrade:[ \t]*websocket[ \t]*\r\n", re.IGNORECASE)


class FrontDoor(asyncio.Protocol):
    """Hand the socket to the right protocol on its first ``data_received``."""

    __slots__ = ("_http", "_kwargs", "_node", "_rest_starts", "_transport")

    def __init__(
        self,
        node: Node,
        http: Callable[..., asyncio.Protocol],
        rest_starts: tuple[bytes, ...],
        **kwargs: Any,
    ) -> None:
        self._node = node
        self._http = http
        self._kwargs = kwargs
        self._transport: asyncio.Transport | None = None
        self._rest_starts = rest_starts

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        transport = self._transport
        assert transport is not None
        protocol: asyncio.Protocol
        node = self._node
        head_end = data.find(b"\r\n\r\n")
        if data.startswith(b"GET ") and head_end > 0 and _UPGRADE.search(data, 0, head_end + 2):
            protocol = node.ws_protocol(server_state=self._kwargs.get("server_state"))
        elif node.rest is not None and data.startswith(self._rest_starts):
            protocol = RestProtocol(node, node.rest, self._kwargs.get("server_state"))
        else:
            protocol = self._http(**self._kwargs)
        protocol.connection_made(transport)
        transport.set_protocol(protocol)
        protocol.data_received(data)

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        return None


def front_door_factory(node: Node) -> Callable[..., FrontDoor]:
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

    def build(**kwargs: Any) -> FrontDoor:
        return FrontDoor(node, http, rest_starts, **kwargs)

    return build
