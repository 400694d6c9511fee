"""An optional second listener that serves only ``GET /metrics`` (``[metrics] port``).

Kept off the public port when operators want Prometheus on an internal interface; a
dozen lines of HTTP/1.0 are enough for a scraper, so no second ASGI server is needed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from pusherd.protocol.http import response
from pusherd.protocol.probes import metrics_port_mount, scrapes
from pusherd.server.probes import Probes

__all__ = ["Handler", "MetricsListener"]

#: Serves one request on the metrics port: (reader, writer, the request head).
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, bytes], Awaitable[None]]

logger = logging.getLogger("pusherd.metrics")


class MetricsListener:
    """Serve ``/metrics`` on ``host:port`` from ``start()`` until ``close()``."""

    def __init__(self, probes: Probes, host: str, port: int) -> None:
        self.probes = probes
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
            mount = metrics_port_mount(head, [prefix for prefix, _ in self._mounts])
            if mount is not None:
                return await self._mounts[mount][1](reader, writer, head)
            answer = self.probes.answer("/metrics") if scrapes(head) else None
            status, body, kind = answer or (404, b"Not found\n", b"text/plain")
            writer.write(response(status, body, kind, close=True))
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
