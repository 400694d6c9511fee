"""``Node``: one pusherd process's lifecycle, in order.

Start: the broker (delivering into the local sockets), webhooks, the metrics port, the
console, the idle sweep. Stop, in uvicorn's ``Server.shutdown`` order: the console's
streams, then stop admitting and close every socket with 4200, let in-flight work finish,
flush webhooks, leave the cluster.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from pusherd.brokers.base import Broker
from pusherd.console.runtime import ConsoleRuntime
from pusherd.errors import BrokerError
from pusherd.logs import flush_logs
from pusherd.protocol.probes import accepting, readiness
from pusherd.server.eager import Tasks
from pusherd.server.hub import Hub
from pusherd.server.membership import Membership
from pusherd.server.metrics_port import MetricsListener
from pusherd.server.sockets import Sockets
from pusherd.webhooks import WebhookSender

__all__ = ["Node", "Readiness"]

logger = logging.getLogger("pusherd.node")


class Readiness:
    """Whether the node accepts sockets: started, not draining, and the broker reachable."""

    def __init__(self, broker: Broker, sockets: Sockets) -> None:
        self._broker = broker
        self._sockets = sockets
        self.started = False

    @property
    def ready(self) -> bool:
        return accepting(self.started, self._sockets.draining, self._broker.ready)

    def answer(self) -> tuple[int, dict[str, object]]:
        """200 when the node accepts sockets; 503 while starting, draining or cut off."""
        return readiness(self.started, self._sockets.draining, self._broker.ready)


class Node:
    """Starts and stops the node's parts in order."""

    def __init__(
        self,
        broker: Broker,
        webhooks: WebhookSender,
        sockets: Sockets,
        hub: Hub,
        membership: Membership,
        tasks: Tasks,
        readiness: Readiness,
        clock: Callable[[], float],
        metrics_listener: MetricsListener | None = None,
        console: ConsoleRuntime | None = None,
    ) -> None:
        self._broker = broker
        self._webhooks = webhooks
        self._sockets = sockets
        self._hub = hub
        self._membership = membership
        self._tasks = tasks
        self._clock = clock
        self._metrics_listener = metrics_listener
        self._console = console
        self._sweeper: asyncio.Task[None] | None = None
        self.readiness = readiness

    def __repr__(self) -> str:
        return f"Node(connections={len(self._sockets)}, started={self.readiness.started})"

    async def start(self) -> None:
        await self._broker.start(self._sockets.deliver, self._membership.reaped)
        await self._webhooks.start()
        if self._metrics_listener is not None:
            await self._metrics_listener.start()
        if self._console is not None:
            await self._console.start(self._metrics_listener)
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever())
        self.readiness.started = True

    async def stop(self, grace: float) -> None:
        """Close sockets with 4200, flush webhooks, leave the cluster (in that order)."""
        if self._console is not None:
            await self._console.stop()
        self._sockets.shutdown()
        if self._sweeper is not None:
            self._sweeper.cancel()
        await self._tasks.wait(max(0.1, grace / 2))
        await self._webhooks.stop(grace / 2)
        self._hub.cancel_pending()
        if self._metrics_listener is not None:
            await self._metrics_listener.close()
        try:
            await self._broker.close()
        except BrokerError as exc:
            logger.warning("broker close failed: %s", exc)
        flush_logs()

    @property
    def started(self) -> bool:
        return self.readiness.started

    @property
    def ready(self) -> bool:
        return self.readiness.ready

    async def _sweep_forever(self) -> None:
        sockets = self._sockets
        interval = sockets.sweep_interval
        next_sweep = self._clock() + interval
        while True:
            await asyncio.sleep(1.0)
            flush_logs()
            if self._clock() < next_sweep:
                continue
            next_sweep = self._clock() + interval
            try:
                sockets.sweep(self._clock())
            except Exception:  # the sweep must never die
                logger.exception("sweep failed")
