"""``Stats``: this node's figures from ``Metrics``, fresh shares of others added, history."""

from __future__ import annotations

import orjson

from pusherd.brokers.bulletin import MemoryBulletin
from pusherd.console.stats import FRESH, Stats
from pusherd.metrics import Metrics


async def test_stats_sum_this_node_and_fresh_shares_of_others() -> None:
    now = [1000.0]
    metrics = Metrics()
    bulletin = MemoryBulletin()
    stats = Stats(bulletin, metrics, "a", lambda: ["1"], wall_clock=lambda: now[0])
    metrics.connection_opened("1")
    metrics.connection_opened("1")
    metrics.messages_sent("1", 5, 500)
    metrics.client_event("1")
    metrics.webhook_failed("1")
    metrics.http_request("events", 200, 0.001)
    metrics.http_request("events", 400, 0.001)  # refused: not a publish
    share = {"t": now[0], "connections": 3, "delivered": 10, "client_events": 0}
    await bulletin.share("stats:1", "b", orjson.dumps(share), 60)
    stale = {"t": now[0] - FRESH - 1, "connections": 100}
    await bulletin.share("stats:1", "c", orjson.dumps(stale), 60)

    total = await stats.cluster("1")

    assert total["nodes"] == ["a", "b"]
    assert total["connections"] == 5
    assert total["delivered"] == 15
    assert (total["client_events"], total["api_messages"], total["webhook_failures"]) == (1, 1, 1)
    assert await stats.connections("1") == 5


async def test_stats_sample_shares_this_node_and_appends_history() -> None:
    now = [1000.0]
    metrics = Metrics()
    bulletin = MemoryBulletin()
    stats = Stats(bulletin, metrics, "a", lambda: ["1"], wall_clock=lambda: now[0])
    metrics.connection_opened("1")
    await stats.sample()
    now[0] += 5
    metrics.connection_opened("1")
    await stats.sample()

    shared = orjson.loads((await bulletin.shares("stats:1"))["a"])
    assert shared["connections"] == 2 and shared["t"] == 1005.0
    assert [point["connections"] for point in stats.history["1"]] == [1, 2]
    assert [point["t"] for point in stats.history["1"]] == [1_000_000, 1_005_000]
