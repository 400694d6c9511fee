"""An optional second listener that serves only ``GET /metrics`` (``[metrics] port``).

Kept off the public port when operators want Prometheus on an internal interface; a
dozen lines of HTTP/1.0 are enough for a scraper, so no second ASGI server is needed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from pusherd.metrics import CONTENT_TYPE, Metrics

__all__ = ["Handler", "MetricsListener"]

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, bytes], Awaitable[None]]

logger = logging.getLogger("pusherd.metrics")


class MetricsListener:
    """Serve ``metrics.render()`` on ``host:port`` until ``close()``."""

    def __init__(self, metrics: Metrics, host: str, port: int) -> None:
        self.metrics = metrics
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None
        self._mounts: list[tuple[bytes, Handler]] = []

    def mount(self, prefix: str, handler: Handler) -> None:
        """Hand requests for ``prefix`` and below to ``handler`` (the console)."""
        self._mounts.append((prefix.encode(), handler))

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        logger.info("metrics listening on http://%s:%d/metrics", self.host, self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(10):
                head = await reader.readuntil(b"\r\n\r\n")
            target = head.split(b" ", 2)[1] if head.count(b" ") >= 2 else b""
            for prefix, handler in self._mounts:
                if target == prefix or target.startswith((prefix + b"/", prefix + b"?")):
                    return await handler(reader, writer, head)
            if head.startswith(b"GET ") and target.split(b"?")[0] == b"/metrics":
                status, body, kind = b"200 OK", self.metrics.render(), CONTENT_TYPE.encode()
            else:
                status, body, kind = b"404 Not Found", b"Not found\n", b"text/plain"
            writer.write(
                b"HTTP/1.1 %s\r\ncontent-type: %s\r\ncontent-length: %d\r\n"
                b"connection: close\r\n\r\n%s" % (status, kind, len(body), body)
            )
            await writer.drain()
        except (
            TimeoutError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            ConnectionError,
        ):
            pass
        finally:
            writer.close()
