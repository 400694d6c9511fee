"""The shapes the I/O layer's parts share, so none of them imports another's class.

``Hub``, ``Membership`` and ``Sockets`` need "something I can send bytes to and
close", not ``Connection``: they depend on ``Socket``; ``Connection`` is one. The same
way websockets' ``broadcast()`` only needs ``send_text()``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from pusherd.apps.base import App
from pusherd.protocol.session import Session

__all__ = ["Output", "Socket", "Spawn"]

#: Run a coroutine in the background, keeping a reference until it ends.
Spawn = Callable[[Coroutine[Any, Any, None]], None]


class Output(Protocol):
    """A socket's output queue, as ``writer.broadcast`` and ``writer.flush_all`` use it."""

    socket_id: str
    out: list[bytes] | None
    closing: bool
    max_buffer: int
    transport: asyncio.Transport

    def overflow(self) -> None: ...

    def abort(self) -> None: ...


class Socket(Output, Protocol):
    """An established WebSocket: its app, its session, and how to talk to it."""

    app: App
    session: Session
    internal: list[str] | None
    task: asyncio.Future[None] | None

    def send(self, payload: bytes) -> None:
        """Send one JSON text message after those already queued."""
        ...

    def close(self, code: int, message: str) -> None:
        """Send ``pusher:error`` (4xxx) and a close frame, then close."""
        ...
