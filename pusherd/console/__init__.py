"""The live debug console: a page and JSON API over the node's lifecycle records.

``Console`` wires the parts (see ``docs`` in each module): ``Auth`` (login, cookie,
CSRF), ``Relay`` (this node's records to the bulletin while somebody watches),
``Feed`` (the watched apps' lines, from every node), ``Stats`` (cluster-wide figures)
and ``ConsoleApi`` (the routes). It is built by ``pusherd.server.app.create_app`` when
``[console] enabled`` and started/stopped in the app's lifespan.
"""

from __future__ import annotations

from pusherd.brokers.bulletin import Bulletin
from pusherd.config import ConsoleConfig
from pusherd.console.api import AppList, ConsoleApi, RestHandle, _Broker
from pusherd.console.auth import Auth
from pusherd.console.relay import Relay
from pusherd.console.stats import Stats
from pusherd.console.stream import Feed
from pusherd.lifecycle import Lifecycle

__all__ = ["Console"]


class Console:
    """Everything the console runs on one node."""

    def __init__(
        self,
        config: ConsoleConfig,
        *,
        lifecycle: Lifecycle,
        bulletin: Bulletin,
        stats: Stats,
        apps: AppList,
        broker: _Broker,
        rest: RestHandle,
        rest_prefix: str,
        node_id: str,
        driver: str,
    ) -> None:
        self.config = config
        self.bulletin = bulletin
        self.auth = Auth(config.password, config.session_hours)
        self.relay = Relay(lifecycle, bulletin, node_id, lambda: [a.id for a in apps.all()])
        self.feed = Feed(bulletin, self.relay, node_id)
        self.stats = stats
        self.api = ConsoleApi(
            self.auth, apps, broker, self.feed, stats, rest, rest_prefix, node_id, driver
        )

    def __repr__(self) -> str:
        return f"Console(path={self.config.path!r}, listen={self.config.listen!r})"

    async def start(self) -> None:
        await self.relay.start()

    async def close(self) -> None:
        await self.feed.close()
        await self.relay.close()
