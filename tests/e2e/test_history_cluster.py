"""History and idempotency keys across a 2-node cluster, on one redis-server and on Redis
Cluster (where each channel's history and each idempotency key lives on its own shard).

History lives in Redis streams, so a pusher-js client on node A replays what the Python
SDK published through node B, and the sequence numbers that drop the replay/live overlap
come from Redis itself. Idempotency keys are claimed with one ``SET NX`` in Redis, so the
same retry reaching both nodes at the same moment is published once.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator

import pytest

from tests.e2e.cluster import APP, deployment_config, launch_js, rest, start_nodes, stop_nodes
from tests.e2e.history_run import numbers, run_with_cuts
from tests.e2e.idempotent_publish import python_sdk_publish
from tests.redis_topology import Topology
from tests.server_process import ServerProcess

__all__: list[str] = []

pytestmark = [
    pytest.mark.redis,
    pytest.mark.node,
    # the deployments whose key layouts differ (TLS and Sentinel name keys as one server)
    pytest.mark.parametrize(
        "deployment",
        ["single", pytest.param("cluster", marks=pytest.mark.topology)],
        indirect=True,
        scope="module",
    ),
]

HISTORY_APP = {
    **APP,
    "history": [{"channel_prefix": "history-", "max_events": 1000, "max_age": 600.0}],
}


@pytest.fixture(scope="module")
def nodes(deployment: Topology) -> Iterator[list[ServerProcess]]:
    started = start_nodes(deployment_config(deployment, f"node-{n}", [HISTORY_APP]) for n in "ab")
    yield started
    stop_nodes(started)


async def test_history_cluster_replays_what_another_node_published(
    nodes: list[ServerProcess],
) -> None:
    channel = f"history-{uuid.uuid4().hex[:10]}"
    a, b = nodes
    with rest(b) as sdk:
        for n in range(10):
            sdk.trigger(channel, "num", {"n": n})
        client = await launch_js(a, "late")
        try:
            await client.subscribe(channel)
            await client.subscribed(channel)
            await client.expect(
                lambda e: e["data"]["n"] == 9, t="event", channel=channel, event="num"
            )
            sdk.trigger(channel, "num", {"n": 10})
            await client.expect(
                lambda e: e["data"]["n"] == 10, t="event", channel=channel, event="num"
            )
        finally:
            await client.close()

    assert numbers(client, channel) == list(range(11))


async def test_history_cluster_cut_every_200_events_misses_none(
    nodes: list[ServerProcess],
) -> None:
    channel = f"history-{uuid.uuid4().hex[:10]}"
    a, b = nodes
    client = await launch_js(a, "cutter")
    try:
        with rest(b) as sdk:
            await run_with_cuts(client, channel, sdk)
    finally:
        await client.close()


async def test_idempotency_cluster_same_key_on_two_nodes_at_once_publishes_once(
    nodes: list[ServerProcess],
) -> None:
    channel = f"idem-{uuid.uuid4().hex[:10]}"
    keys = [str(uuid.uuid4()) for _ in range(20)]
    a, b = nodes
    client = await launch_js(a, "listener")
    answers: list[object] = []
    try:
        await client.subscribe(channel)
        await client.subscribed(channel)
        with rest(a) as on_a, rest(b) as on_b:
            start = threading.Barrier(2, timeout=10)

            def fire(sdk: object) -> None:
                for n, key in enumerate(keys):
                    start.wait()  # both nodes get this key at the same moment
                    answers.append(python_sdk_publish(sdk, channel, "job", {"n": n}, key))

            await asyncio.gather(asyncio.to_thread(fire, on_a), asyncio.to_thread(fire, on_b))
            on_b.trigger(channel, "barrier", {})
            await client.event(channel, "barrier")
    finally:
        await client.close()

    assert answers == [{}] * 2 * len(keys)
    assert numbers(client, channel, "job") == list(range(len(keys)))
