"""``create_app(config)``: the Starlette app and the node behind it.

The REST API is mounted at ``{path_prefix}/apps``; WebSocket upgrades never reach
Starlette: uvicorn hands them to ``node.ws_protocol`` (see ``pusherd.server.connection``).
The lifespan starts the node (broker, webhooks, sweep) and stops it in uvicorn's
order: sockets closed with 4200, webhooks flushed, then the broker.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.routing import Mount, Route
from starlette.types import Receive, Scope, Send

from pusherd.apps.static import StaticAppRegistry
from pusherd.brokers import create_broker
from pusherd.config import Config
from pusherd.metrics import Metrics
from pusherd.server import health
from pusherd.server.front_door import front_door_factory
from pusherd.server.http_api import RestApi
from pusherd.server.node import Node
from pusherd.webhooks import WebhookSender

__all__ = ["PusherdApp", "create_app", "create_node", "uvicorn_protocols"]


def create_node(config: Config) -> Node:
    """Build a node and its collaborators from ``config`` (nothing is started)."""
    scaling = config.scaling
    metrics = Metrics(prefix=config.metrics.prefix, node_id=scaling.node_id)
    broker = create_broker(
        scaling.driver,
        url=scaling.redis_url,
        node_id=scaling.node_id,
        heartbeat_interval=scaling.heartbeat_interval,
        node_timeout=scaling.node_timeout,
        metrics=metrics,
    )
    webhooks = WebhookSender(config.webhooks, metrics)
    return Node(config, StaticAppRegistry(config.apps), broker, metrics, webhooks)


class PusherdApp:
    """The ASGI entry point: REST calls go straight to ``RestApi``, the rest to Starlette.

    The REST API is the publish hot path; skipping Starlette's middleware and router
    there saves a third of each request's CPU time (measured with py-spy).
    """

    def __init__(self, starlette: Starlette, rest: RestApi, prefix: str) -> None:
        self.starlette = starlette
        self.state = starlette.state
        self._rest = rest
        self._rest_prefixes = (prefix + "/apps/", prefix + "/users/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(self._rest_prefixes):
            await self._rest(scope, receive, send)
        else:
            await self.starlette(scope, receive, send)


def create_app(config: Config, node: Node | None = None) -> PusherdApp:
    """Return the ASGI app; ``app.state.node`` is the node (pass it to uvicorn as ``ws=``)."""
    node = node or create_node(config)
    prefix = config.server.path_prefix
    rest = node.rest = RestApi(node)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await node.start()
        try:
            yield
        finally:
            await node.stop(config.server.shutdown_grace)

    routes = [
        Route(prefix + "/up", health.up),
        Route(prefix + "/ready", health.ready),
        Route(prefix + "/health", health.health),
        Mount(prefix + "/apps", app=rest),
        Mount(prefix + "/users", app=rest),
    ]
    if prefix:
        routes += [
            Route("/up", health.up),
            Route("/ready", health.ready),
            Route("/health", health.health),
        ]
    if config.metrics.enabled:
        routes.append(Route(prefix + "/metrics", health.metrics))
        if prefix:
            routes.append(Route("/metrics", health.metrics))
    starlette = Starlette(routes=routes, lifespan=lifespan)
    starlette.state.node = node
    return PusherdApp(starlette, rest, prefix)


def uvicorn_protocols(node: Node) -> dict[str, Any]:
    """Return uvicorn's ``http=`` and ``ws=`` options that route sockets to ``node``."""
    return {"http": front_door_factory(node), "ws": node.ws_protocol}
