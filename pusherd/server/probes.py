"""Cheap, unauthenticated probes: ``/up`` (alive), ``/ready`` (accepting), ``/health``
(status JSON for uptime monitors), ``/metrics``.

One answer for each, whichever way the request came: the keep-alive REST fast path,
Starlette (behind uvicorn's HTTP protocol) or the metrics port.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import orjson
from starlette.requests import Request
from starlette.responses import Response

from pusherd import __version__
from pusherd.metrics import CONTENT_TYPE, Metrics
from pusherd.protocol import probes
from pusherd.protocol.http import JSON, PLAIN
from pusherd.protocol.probes import PATHS

__all__ = ["PATHS", "Answer", "Probes"]

Answer = tuple[int, bytes, bytes]
_UP: Answer = (200, b'{"health":"OK"}', JSON)
_NOT_FOUND: Answer = (404, b"Not found\n", PLAIN)


class Probes:
    """Answers the probe paths.

    Args:
        readiness: (status, body): 200 while the node accepts sockets, else 503 and why.
        metrics: rendered for ``/metrics`` when ``metrics_enabled``.
        node_id, connections: named in ``/health`` (``connections()``: open sockets here).
        clock: monotonic seconds; ``/health``'s uptime counts from construction.
    """

    def __init__(
        self,
        readiness: Callable[[], tuple[int, dict[str, object]]],
        metrics: Metrics,
        metrics_enabled: bool,
        node_id: str = "",
        connections: Callable[[], int] = lambda: 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._readiness = readiness
        self._metrics = metrics
        self._metrics_enabled = metrics_enabled
        self._node_id = node_id
        self._connections = connections
        self._clock = clock
        self._started_at = clock()

    def health(self) -> tuple[int, dict[str, object]]:
        """``{status, timestamp, uptime, version, node_id, connections}``; 503 unless ready."""
        return probes.health(
            self._readiness(),
            datetime.now(UTC),
            self._clock() - self._started_at,
            __version__,
            self._node_id,
            self._connections(),
        )

    def answer(self, path: str) -> Answer:
        """The answer for one of ``PATHS`` (404 for ``/metrics`` when it is disabled)."""
        if path == "/up":
            return _UP
        if path == "/ready":
            status, body = self._readiness()
            return status, orjson.dumps(body), JSON
        if path == "/health":
            status, body = self.health()
            return status, orjson.dumps(body), JSON
        if path == "/metrics" and self._metrics_enabled:
            return 200, self._metrics.render(), CONTENT_TYPE.encode()
        return _NOT_FOUND

    def route(self, path: str) -> Callable[[Request], Awaitable[Response]]:
        """A Starlette endpoint answering ``path``."""

        async def endpoint(request: Request) -> Response:
            status, body, content_type = self.answer(path)
            return Response(body, status_code=status, media_type=content_type.decode())

        return endpoint
