"""Cluster-wide figures for the console's charts and for ``GET /apps/{id}/connections``.

Every ``INTERVAL`` seconds each node writes its share per app to the bulletin board
``stats:<app>`` (its open connections and its running totals of messages delivered,
client events, REST publish calls and failed webhook attempts, stamped with the wall
clock), then reads the board back, sums the shares no older than ``FRESH`` seconds
(a dead node drops out) and appends the sum to the app's history: the last hour, one
point per interval. Rates are differences between points (the page computes them).

Figures come from ``Metrics`` (plain numbers read on a timer), never from the hot
path. REST publish calls are counted per node, not per app (the REST metrics carry no
app label), so with several apps every app's chart shows all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import orjson

from pusherd.brokers.bulletin import Bulletin
from pusherd.errors import BrokerError
from pusherd.metrics import Metrics

__all__ = ["FRESH", "HISTORY", "INTERVAL", "Stats"]

logger = logging.getLogger("pusherd.console")

INTERVAL = 5.0
FRESH = 3 * INTERVAL
HISTORY = int(3600 / INTERVAL)
FIGURES = ("connections", "delivered", "client_events", "api_messages", "webhook_failures")
_PUBLISH_ENDPOINTS = ("events", "batch_events")


class Stats:
    """Samples this node's share, shares it, and keeps the cluster's history per app."""

    def __init__(
        self,
        bulletin: Bulletin,
        metrics: Metrics,
        node_id: str,
        app_ids: Callable[[], list[str]],
        wall_clock: Callable[[], float] = time.time,
        interval: float = INTERVAL,
    ) -> None:
        self._bulletin = bulletin
        self._metrics = metrics
        self._node = node_id
        self._app_ids = app_ids
        self._wall = wall_clock
        self.interval = interval
        self.history: dict[str, deque[dict[str, Any]]] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run_forever())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def local(self, app_id: str) -> dict[str, float]:
        """This node's share of ``app_id`` right now."""
        m = self._metrics
        key = (app_id,)
        api = sum(
            value
            for (endpoint, status), value in m.read("http_calls_received").items()
            if endpoint in _PUBLISH_ENDPOINTS and status == "200"
        )
        return {
            "connections": m.read("connected").get(key, 0),
            "delivered": m.read("ws_messages_sent").get(key, 0),
            "client_events": m.read("client_events").get(key, 0),
            "api_messages": api,
            "webhook_failures": m.read("webhooks").get((app_id, "failed"), 0),
        }

    async def cluster(self, app_id: str) -> dict[str, Any]:
        """Sum the fresh shares of ``app_id`` (this node's own share read live)."""
        now = self._wall()
        total: dict[str, Any] = dict.fromkeys(FIGURES, 0.0)
        nodes = {self._node: self.local(app_id)}
        try:
            shares = await self._bulletin.shares(f"stats:{app_id}")
        except BrokerError as exc:
            logger.warning("console: cannot read stats shares: %s", exc)
            shares = {}
        for node, raw in shares.items():
            if node == self._node:
                continue
            try:
                share = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            if isinstance(share, dict) and now - float(share.get("t", 0)) <= FRESH:
                nodes[node] = share
        for share in nodes.values():
            for figure in FIGURES:
                value = share.get(figure, 0)
                total[figure] += value if isinstance(value, int | float) else 0
        total["t"] = int(now * 1000)
        total["nodes"] = sorted(nodes)
        return total

    async def connections(self, app_id: str) -> int:
        """Open connections of ``app_id`` across the cluster (Reverb Pulse's card)."""
        return int((await self.cluster(app_id))["connections"])

    async def sample(self) -> None:
        """Share this node's figures and append the cluster's sums to the history."""
        now = self._wall()
        for app_id in self._app_ids():
            share = {"t": now, **self.local(app_id)}
            try:
                await self._bulletin.share(
                    f"stats:{app_id}", self._node, orjson.dumps(share), FRESH * 2
                )
            except BrokerError as exc:
                logger.warning("console: cannot share stats: %s", exc)
            point = await self.cluster(app_id)
            point.pop("nodes", None)
            history = self.history.get(app_id)
            if history is None:
                history = self.history[app_id] = deque(maxlen=HISTORY)
            history.append(point)

    async def _run_forever(self) -> None:
        while True:
            try:
                await self.sample()
            except Exception:  # the sampler must never die
                logger.exception("console: stats sample failed")
            await asyncio.sleep(self.interval)
