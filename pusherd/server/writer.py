"""One writer per socket: the only code that queues, coalesces, flushes, pings and cuts off.

A socket's output is ``out``: ``None`` while nothing waits, else the frames queued for
the next flush (Centrifuge's ``writer.go``: enqueue, flush, overflow). Two paths fill it:

- **fan-out**, through ``broadcast``: one frame appended to every subscriber's queue in
  a plain loop, and ``flush_all`` once per event-loop turn writes each dirty socket's
  queue with a single ``transport.write`` (frames published in the same turn to the same
  socket are coalesced, the way uWebSockets corks). Both are module functions over many
  writers, so the hot path makes no method call per subscriber;
- **the socket's own messages**, through ``send``: written at once, behind anything
  already queued, so a socket always sees its messages in order.

A socket whose unsent bytes pass ``max_buffer`` is cut off as a slow consumer
(``overflow``: 4100) and never slows the others down.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from pusherd.protocol.frames import ping_frame, text_frame
from pusherd.protocol.messages import encode_event
from pusherd.server.ports import Output

__all__ = ["Writer", "broadcast", "flush_all"]

logger = logging.getLogger("pusherd.hub")

_PING_MESSAGE = text_frame(encode_event("pusher:ping", {}))
_PING_FRAME = ping_frame()


class Writer:
    """The output half of a socket; ``Connection`` is one."""

    __slots__ = ("close_code", "closing", "closing_since", "max_buffer", "out", "socket_id")

    transport: asyncio.Transport

    def __init__(self, max_buffer: int) -> None:
        self.max_buffer = max_buffer
        self.out: list[bytes] | None = None
        self.closing = False
        self.closing_since = 0.0
        self.close_code = 0
        self.socket_id = ""

    def send_frame(self, frame: bytes) -> None:
        """Write ``frame`` after the frames already queued (or queue it while corked)."""
        if self.closing:
            return
        out = self.out
        if out is not None:
            out.append(frame)
            return
        transport = self.transport
        transport.write(frame)
        if transport.get_write_buffer_size() > self.max_buffer:
            self.overflow()

    def write_now(self, frame: bytes) -> None:
        """Write the queued frames and ``frame`` in one ``write``, closing or not."""
        out = self.out
        if out is not None:
            self.out = None
            out.append(frame)
            self.transport.write(b"".join(out))
        else:
            self.transport.write(frame)

    def cork(self, first: bytes) -> None:
        """Queue ``first`` and hold what follows until ``uncork`` (one write for a burst)."""
        self.out = [first]

    def uncork(self) -> None:
        out = self.out
        if out is not None:
            self.out = None
            self.transport.write(b"".join(out))

    def ping(self) -> None:
        """Ask an idle socket for a sign of life: ``pusher:ping`` and a protocol ping."""
        self.send_frame(_PING_MESSAGE)
        if not self.closing:
            self.write_now(_PING_FRAME)

    def overflow(self) -> None:
        """Cut the socket off: it stopped reading (``Connection`` says why, with 4100)."""
        self.abort()

    def abort(self) -> None:
        self.closing = True
        self.transport.abort()


def broadcast(
    writers: Iterable[Output], frame: bytes, except_socket_id: str | None, dirty: list[Output]
) -> int:
    """Queue ``frame`` on every writer (but the excluded socket); return how many.

    Writers that had nothing queued are appended to ``dirty``: ``flush_all(dirty)``
    must run before the event loop next waits (``Hub`` schedules it).
    """
    sent = 0
    for writer in writers:
        if except_socket_id is not None and writer.socket_id == except_socket_id:
            continue
        out = writer.out
        if out is None:
            if writer.closing:
                continue
            writer.out = [frame]
            dirty.append(writer)
        else:
            out.append(frame)
        sent += 1
    return sent


def flush_all(dirty: list[Output]) -> None:
    """Write every dirty writer's queue in one ``write`` each."""
    for writer in dirty:
        out = writer.out
        writer.out = None
        if out is None or writer.closing:
            continue
        transport = writer.transport
        try:
            transport.write(out[0] if len(out) == 1 else b"".join(out))
            if transport.get_write_buffer_size() > writer.max_buffer:
                writer.overflow()
        except Exception:  # one broken socket must not stop the others' writes
            logger.exception("skipped write: failed to write to socket %s", writer.socket_id)
            writer.abort()
