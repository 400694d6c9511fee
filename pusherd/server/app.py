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
from pusherd.brokers.bulletin import Bulletin, create_bulletin
from pusherd.config import Config
from pusherd.console import Console
from pusherd.console.bridge import serve_asgi
from pusherd.console.stats import Stats
from pusherd.lifecycle import Lifecycle
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
    lifecycle = Lifecycle()
    webhooks = WebhookSender(config.webhooks, metrics, lifecycle=lifecycle)
    return Node(
        config, StaticAppRegistry(config.apps), broker, metrics, webhooks, lifecycle=lifecycle
    )


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
    console = extras = None
    if config.console.enabled or config.scaling.driver == "redis":
        extras = _console_parts(config, node, rest)
        console = extras[2]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await node.start()
        if extras is not None:
            await _start_console(config, node, *extras)
        try:
            yield
        finally:
            if extras is not None:
                await _stop_console(*extras)
            await node.stop(config.server.shutdown_grace)

    routes = [
        Route(prefix + "/up", health.up),
        Route(prefix + "/ready", health.ready),
        Mount(prefix + "/apps", app=rest),
        Mount(prefix + "/users", app=rest),
    ]
    if prefix:
        routes += [Route("/up", health.up), Route("/ready", health.ready)]
    if config.metrics.enabled:
        routes.append(Route(prefix + "/metrics", health.metrics))
        if prefix:
            routes.append(Route("/metrics", health.metrics))
    if console is not None and config.console.listen == "main":
        routes += console.api.routes(prefix + config.console.path)
    starlette = Starlette(routes=routes, lifespan=lifespan)
    starlette.state.node = node
    starlette.state.console = console
    return PusherdApp(starlette, rest, prefix)


def uvicorn_protocols(node: Node) -> dict[str, Any]:
    """Return uvicorn's ``http=`` and ``ws=`` options that route sockets to ``node``."""
    return {"http": front_door_factory(node), "ws": node.ws_protocol}


def _console_parts(
    config: Config, node: Node, rest: RestApi
) -> tuple[Bulletin, Stats, Console | None]:
    """The bulletin and cluster figures (Pulse's connection count), and the console if on."""
    scaling = config.scaling
    bulletin = create_bulletin(scaling.driver, scaling.redis_url)
    stats = Stats(bulletin, node.metrics, scaling.node_id, lambda: [a.id for a in node.apps.all()])
    rest.connection_count = stats.connections
    console = None
    if config.console.enabled:
        console = Console(
            config.console,
            lifecycle=node.lifecycle,
            bulletin=bulletin,
            stats=stats,
            apps=node.apps,
            broker=node.broker,
            rest=rest.handle,
            rest_prefix=config.server.path_prefix,
            node_id=scaling.node_id,
            driver=scaling.driver,
        )
    return bulletin, stats, console


async def _start_console(
    config: Config, node: Node, bulletin: Bulletin, stats: Stats, console: Console | None
) -> None:
    await bulletin.start()
    await stats.start()
    if console is None:
        return
    await console.start()
    if config.console.listen == "metrics" and node.metrics_listener is not None:
        asgi = Starlette(routes=console.api.routes(config.console.path))
        node.metrics_listener.mount(
            config.console.path, lambda r, w, head: serve_asgi(asgi, r, w, head)
        )


async def _stop_console(bulletin: Bulletin, stats: Stats, console: Console | None) -> None:
    if console is not None:
        await console.close()
    await stats.close()
    await bulletin.close()
