"""Cheap, unauthenticated probes: ``/up`` (alive), ``/ready`` (accepting), ``/metrics``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pusherd.metrics import CONTENT_TYPE
from pusherd.server.node import Node

__all__ = ["metrics", "ready", "up"]


async def up(request: Request) -> Response:
    """200 while the process serves requests."""
    return JSONResponse({"health": "OK"})


async def ready(request: Request) -> Response:
    """200 when the node accepts sockets; 503 while starting, draining or cut off."""
    node: Node = request.app.state.node
    if node.ready:
        return JSONResponse({"ready": True})
    reason = "draining" if node.draining else "starting" if not node.started else "broker"
    return JSONResponse({"ready": False, "reason": reason}, status_code=503)


async def metrics(request: Request) -> Response:
    node: Node = request.app.state.node
    return Response(node.metrics.render(), media_type=CONTENT_TYPE)
