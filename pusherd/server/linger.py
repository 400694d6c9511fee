"""Lingering close: how a closing socket keeps reading what the client still sends.

Closing a TCP socket with unread input makes the kernel answer with a reset, and a reset
can destroy the last thing the server wrote before the client reads it: a WebSocket
close frame (the client sees 1006 instead of 1009 or 4xxx) or an HTTP 413/408 response.
So after its last write the server keeps reading and dropping input until the client's
close frame or EOF, bounded in time and bytes (RFC 6455 §7.1.1; nginx's
``lingering_close``, ``lingering_time`` and ``lingering_timeout``). Nothing is built for
this until a socket closes.
"""

from __future__ import annotations

import asyncio

from pusherd.protocol.frames import FrameParser

__all__ = ["LINGER_BYTES", "LINGER_SECONDS", "Lingering"]

LINGER_SECONDS = 5.0
LINGER_BYTES = 16 * 1024 * 1024


class Lingering:
    """Drop input on ``transport`` until the peer is done, then close it.

    Args:
        parser: for a WebSocket, the socket's frame parser: the client's close frame
            ends the wait. ``None`` for HTTP, where the wait ends at EOF.
    """

    __slots__ = ("_parser", "_read", "_timer", "_transport")

    def __init__(self, transport: asyncio.Transport, parser: FrameParser | None) -> None:
        self._transport = transport
        self._parser = parser
        self._read = 0
        self._timer = asyncio.get_running_loop().call_later(LINGER_SECONDS, self.end)

    def feed(self, data: bytes) -> None:
        """Drop ``data``; close once the peer's close frame arrived or the bound is passed."""
        self._read += len(data)
        parser = self._parser
        if self._read > LINGER_BYTES or (parser is not None and parser.discard_until_close(data)):
            self.end()

    def end(self) -> None:
        """Close the transport now (its unsent output is still flushed first)."""
        self._timer.cancel()
        self._transport.close()

    def cancel(self) -> None:
        """The connection is gone: stop the timer."""
        self._timer.cancel()
