"""Cheap, unauthenticated probes: ``/up`` (alive), ``/ready`` (accepting), ``/metrics``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pusherd.metrics import CONTENT_TYPE
from pusherd.server.node import Node

__all__ = ["metrics", "readiness", "ready", "up"]


async def up(request: Request) -> Response:
    """200 while the process serves requests."""
    return JSONResponse({"health": "OK"})


def readiness(node: Node) -> tuple[int, dict[str, object]]:
    """200 when the node accepts sockets; 503 while starting, draining or cut off."""
    if node.ready:
        return 200, {"ready": True}
    reason = "draining" if node.draining else "starting" if not node.started else "broker"
    return 503, {"ready": False, "reason": reason}


async def ready(request: Request) -> Response:
    status, body = readiness(request.app.state.node)
    return JSONResponse(body, status_code=status)


async def metrics(request: Request) -> Response:
    node: Node = request.app.state.node
    return Response(node.metrics.render(), media_type=CONTENT_TYPE)
