"""Cheap, unauthenticated probes: ``/up`` (alive), ``/ready`` (accepting), ``/health``
(status JSON for uptime monitors) and ``/metrics``."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pusherd import __version__
from pusherd.metrics import CONTENT_TYPE
from pusherd.server.node import Node

__all__ = ["health", "health_report", "metrics", "readiness", "ready", "up"]

_LOADED_AT = time.monotonic()  # at import, i.e. when the server process started


async def up(request: Request) -> Response:
    """200 while the process serves requests."""
    return JSONResponse({"health": "OK"})


def readiness(node: Node) -> tuple[int, dict[str, object]]:
    """200 when the node accepts sockets; 503 while starting, draining or cut off."""
    if node.ready:
        return 200, {"ready": True}
    reason = "draining" if node.draining else "starting" if not node.started else "broker"
    return 503, {"ready": False, "reason": reason}


def health_report(node: Node) -> tuple[int, dict[str, object]]:
    """``{status, timestamp, uptime, version, node_id, connections}``; 503 unless ready."""
    status, body = readiness(node)
    return status, {
        "status": "ok" if status == 200 else body["reason"],
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "uptime": round(time.monotonic() - _LOADED_AT, 3),
        "version": __version__,
        "node_id": node.config.scaling.node_id,
        "connections": len(node.connections),
    }


async def health(request: Request) -> Response:
    status, body = health_report(request.app.state.node)
    return JSONResponse(body, status_code=status)


async def ready(request: Request) -> Response:
    status, body = readiness(request.app.state.node)
    return JSONResponse(body, status_code=status)


async def metrics(request: Request) -> Response:
    node: Node = request.app.state.node
    return Response(node.metrics.render(), media_type=CONTENT_TYPE)
