"""The local index of sockets by channel, and the fan-out hot path.

A published message is framed once here and the same ``bytes`` object is queued on
every local subscriber. Nothing is awaited per subscriber and no task is woken:
frames go into the connection's pending list, and one ``call_soon`` callback per
event-loop turn writes each dirty connection's pending frames with a single
``transport.write`` (frames published in the same turn to the same socket are
coalesced, the way uWebSockets corks). A socket whose unsent bytes pass the bound is
cut off (``Connection.overflow``) and never slows the others down.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from pusherd.protocol.frames import text_frame

if TYPE_CHECKING:
    from pusherd.metrics import Metrics
    from pusherd.server.connection import Connection

__all__ = ["Hub"]

logger = logging.getLogger("pusherd.hub")

ChannelKey = tuple[str, str]


class Hub:
    """Local subscribers per ``(app_id, channel)`` and frame-once fan-out.

    Args:
        metrics: counts deliveries, one call per fan-out.
        max_buffer: unsent bytes per socket before it is cut off as a slow consumer.
    """

    def __init__(self, metrics: Metrics, max_buffer: int) -> None:
        self._channels: dict[ChannelKey, set[Connection]] = {}
        self._dirty: list[Connection] = []
        self._flush_scheduled = False
        self._queued_at = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self.metrics = metrics
        self.max_buffer = max_buffer

    def add(self, app_id: str, channel: str, conn: Connection) -> bool:
        """Index ``conn`` on ``channel``; return True if it is the first local subscriber."""
        key = (app_id, channel)
        conns = self._channels.get(key)
        if conns is None:
            self._channels[key] = {conn}
            return True
        conns.add(conn)
        return False

    def remove(self, app_id: str, channel: str, conn: Connection) -> bool:
        """Unindex ``conn``; return True if the channel has no local subscriber left."""
        key = (app_id, channel)
        conns = self._channels.get(key)
        if conns is None:
            return False
        conns.discard(conn)
        if conns:
            return False
        del self._channels[key]
        return True

    def local_count(self, app_id: str, channel: str) -> int:
        conns = self._channels.get((app_id, channel))
        return len(conns) if conns else 0

    def channels(self) -> Iterator[ChannelKey]:
        return iter(list(self._channels))

    def has(self, app_id: str, channel: str, conn: Connection) -> bool:
        conns = self._channels.get((app_id, channel))
        return conns is not None and conn in conns

    def subscribers(self, app_id: str, channel: str) -> list[Connection]:
        return list(self._channels.get((app_id, channel), ()))

    def fanout(
        self, app_id: str, channel: str, payload: bytes, except_socket_id: str | None
    ) -> int:
        """Queue ``payload`` for every local subscriber of ``channel``; return how many.

        This is the hot path: one frame, one plain loop, no await.
        """
        conns = self._channels.get((app_id, channel))
        if not conns:
            return 0
        frame = text_frame(payload)
        dirty = self._dirty
        sent = 0
        for conn in conns:
            if except_socket_id is not None and conn.socket_id == except_socket_id:
                continue
            out = conn.out
            if out is None:
                if conn.closing:
                    continue
                conn.out = [frame]
                dirty.append(conn)
            else:
                out.append(frame)
            sent += 1
        if sent:
            self.metrics.messages_sent(app_id, sent, sent * len(frame))
            if not self._queued_at:
                self._queued_at = time.perf_counter()
            if not self._flush_scheduled:
                self._schedule_flush()
        return sent

    def _schedule_flush(self) -> None:
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        self._flush_scheduled = True
        loop.call_soon(self.flush)

    def flush(self) -> None:
        """Write every dirty socket's pending frames in one ``write`` each."""
        dirty = self._dirty
        self._dirty = []
        self._flush_scheduled = False
        limit = self.max_buffer
        for conn in dirty:
            out = conn.out
            conn.out = None
            if out is None or conn.closing:
                continue
            transport = conn.transport
            try:
                transport.write(out[0] if len(out) == 1 else b"".join(out))
                if transport.get_write_buffer_size() > limit:
                    conn.overflow()
            except Exception:  # one broken socket must not stop the others' writes
                logger.exception("skipped write: failed to write to socket %s", conn.socket_id)
                conn.abort()
        if self._queued_at:
            self.metrics.publish_latency(time.perf_counter() - self._queued_at)
            self._queued_at = 0.0
