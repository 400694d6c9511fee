"""What the composition root adds for the console: one object to build, start and stop.

``ConsoleRuntime.build`` returns ``None`` when nothing is needed (console off, memory
driver). With the Redis driver it exists even with the console off: its ``stats`` give
``GET /apps/{id}/connections`` (Reverb Pulse) the cluster-wide count, from each node's
share on the bulletin (a 5 s timer, nothing on a hot path).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.routing import BaseRoute

from pusherd.brokers.bulletin import Bulletin, create_bulletin
from pusherd.config import Config
from pusherd.console import Console
from pusherd.console.api import AppList, RestHandle, _Broker
from pusherd.console.bridge import serve_asgi
from pusherd.console.stats import Stats
from pusherd.lifecycle import Lifecycle
from pusherd.metrics import Metrics

if TYPE_CHECKING:
    from pusherd.server.metrics_port import MetricsListener

__all__ = ["ConsoleRuntime"]


class ConsoleRuntime:
    """The bulletin, the cluster stats and (when enabled) the console of one node."""

    def __init__(self, config: Config, bulletin: Bulletin, stats: Stats, console: Console | None):
        self.config = config
        self.bulletin = bulletin
        self.stats = stats
        self.console = console

    @staticmethod
    def shared(config: Config, metrics: Metrics, apps: AppList) -> tuple[Bulletin, Stats] | None:
        """The bulletin and cluster stats, when anything needs them (console on, or Redis).

        Built first: the REST API's Pulse endpoint counts connections through ``stats``.
        """
        scaling = config.scaling
        if not (config.console.enabled or scaling.driver != "memory"):
            return None
        bulletin = create_bulletin(scaling)
        return bulletin, Stats(
            bulletin, metrics, scaling.node_id, lambda: [a.id for a in apps.all()]
        )

    @classmethod
    def build(
        cls,
        config: Config,
        shared: tuple[Bulletin, Stats],
        *,
        lifecycle: Lifecycle,
        apps: AppList,
        broker: _Broker,
        rest: RestHandle,
    ) -> ConsoleRuntime:
        scaling = config.scaling
        bulletin, stats = shared
        console = None
        if config.console.enabled:
            console = Console(
                config.console,
                lifecycle=lifecycle,
                bulletin=bulletin,
                stats=stats,
                apps=apps,
                broker=broker,
                rest=rest,
                rest_prefix=config.server.path_prefix,
                node_id=scaling.node_id,
                driver=scaling.driver,
            )
        return cls(config, bulletin, stats, console)

    def routes(self) -> list[BaseRoute]:
        """The console's routes for the main port (none with ``listen = "metrics"``)."""
        if self.console is None or self.config.console.listen != "main":
            return []
        return self.console.api.routes(self.config.server.path_prefix + self.config.console.path)

    async def start(self, metrics_listener: MetricsListener | None) -> None:
        await self.bulletin.start()
        await self.stats.start()
        if self.console is None:
            return
        await self.console.start()
        path = self.config.console.path
        if self.config.console.listen == "metrics" and metrics_listener is not None:
            asgi = Starlette(routes=self.console.api.routes(path))
            metrics_listener.mount(path, lambda r, w, head: serve_asgi(asgi, r, w, head))

    async def stop(self) -> None:
        if self.console is not None:
            await self.console.close()
        await self.stats.close()
        await self.bulletin.close()
