"""``ShardedPubSub`` and ``RedisBroker`` on a real 3-master Redis Cluster with replicas.

Sharded pub/sub must put each channel's subscription on the one master that owns its
slot (``PUBSUB SHARDNUMSUB`` per master), and a failover of a master (SIGKILL; its
replica is promoted after the 1 s node timeout) must lose no published event and leave
the state exact.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from pusherd.brokers.base import ChannelStats, Envelope
from pusherd.brokers.redis import RedisBroker
from pusherd.protocol.presence import Member
from tests.brokers.conftest import INTERVAL, TIMEOUT, Inbox, close_brokers, wait_until
from tests.redis_topology import ClusterTopology, Topologies

__all__: list[str] = []

pytestmark = [pytest.mark.redis, pytest.mark.topology]

APP = "app-1"
FAILOVER = 20.0  # the replica takes over 1-3 s after the master died; slack for busy CI


@pytest.fixture
def cluster(redis_topologies: Topologies) -> ClusterTopology:
    topology = redis_topologies.get("cluster")
    assert isinstance(topology, ClusterTopology)
    topology.heal()
    topology.flushall()
    return topology


@pytest.fixture
async def started() -> AsyncIterator[list[RedisBroker]]:
    brokers: list[RedisBroker] = []
    yield brokers
    await close_brokers(brokers)


async def _start(started: list[RedisBroker], cluster: ClusterTopology, node: str) -> Inbox:
    inbox = Inbox()
    broker = RedisBroker(
        node_id=node, heartbeat_interval=INTERVAL, node_timeout=TIMEOUT, target=cluster.target()
    )
    started.append(broker)
    await broker.start(inbox.deliver, inbox.on_reaped)
    return inbox


async def test_sharded_pubsub_subscribes_each_channel_on_its_owning_master_only(
    cluster: ClusterTopology, started: list[RedisBroker]
) -> None:
    inbox_a = await _start(started, cluster, "a")
    inbox_b = await _start(started, cluster, "b")
    a, b = started
    channels = [f"room-{n}" for n in range(12)]
    for channel in channels:
        await b.subscribe(APP, channel)
    used: set[int] = set()
    with cluster.client() as raw:
        for channel in channels:
            name = f"pusherd:{APP}:{channel}"
            owner = int(raw.get_node_from_key(name).port)
            counts = cluster.shard_listeners(name)
            assert counts == {port: int(port == owner) for port in counts}, (channel, counts)
            used.add(owner)
    assert len(used) >= 2  # the channels are spread over the shards
    for n, channel in enumerate(channels):
        await a.publish(Envelope(APP, channel, b"%d" % n))
    got = await inbox_b.wait_for(len(channels))
    assert sorted(int(e.payload) for e in got) == list(range(len(channels)))
    assert inbox_a.envelopes == []  # a subscribed to nothing
    await b.unsubscribe(APP, channels[0])
    assert cluster.listeners(f"pusherd:{APP}:{channels[0]}") == 0


async def test_sharded_state_keys_share_one_slot(
    cluster: ClusterTopology, started: list[RedisBroker]
) -> None:
    await _start(started, cluster, "a")
    (a,) = started
    await a.add_subscriber(APP, "presence-r", "a.1")
    await a.join_presence(APP, "presence-r", "a.1", Member("u1"), 0)
    await a.add_connection(APP, "a.1", 0)
    await a.sign_in(APP, "u1", "a.1")
    with cluster.client() as raw:
        names = list(raw.scan_iter(match="{pusherd}:*", count=1000, target_nodes=raw.PRIMARIES))
        slots = {raw.keyslot(name) for name in names}
    assert len(names) >= 8 and slots == {raw.keyslot("{pusherd}")}


@pytest.mark.parametrize("victim", ["state and channel", "channel only"])
async def test_sharded_master_failover_loses_no_event_and_keeps_presence(
    cluster: ClusterTopology, started: list[RedisBroker], victim: str
) -> None:
    inbox_a = await _start(started, cluster, "a")
    inbox_b = await _start(started, cluster, "b")
    a, b = started
    state_port = cluster.owner("{pusherd}")
    # "state and channel": the master holding pusherd's keys and the channel, so both
    # halves fail over at once; "channel only": another master, only fan-out fails over
    channel = next(
        f"flow-{n}"
        for n in range(1000)
        if (cluster.owner(f"pusherd:{APP}:flow-{n}") == state_port)
        == (victim == "state and channel")
    )
    victim_port = cluster.owner(f"pusherd:{APP}:{channel}")
    for broker in (a, b):
        await broker.subscribe(APP, channel)
    for broker, user in ((a, "u-a"), (b, "u-b")):
        socket_id = f"{broker.node_id}.1"
        await broker.add_subscriber(APP, "presence-r", socket_id)
        await broker.join_presence(APP, "presence-r", socket_id, Member(user), 0)
    doomed = next(server for server in cluster.servers if server.port == victim_port)
    sent = 0

    async def publish_some(count: int) -> None:
        nonlocal sent
        for _ in range(count):
            await a.publish(Envelope(APP, channel, b"%d" % sent))
            sent += 1
            await asyncio.sleep(0.01)

    await publish_some(10)
    await asyncio.to_thread(doomed.kill)
    await wait_until(lambda: not a.ready and not b.ready, FAILOVER)
    await publish_some(20)
    await wait_until(lambda: a.ready and b.ready, FAILOVER)
    assert cluster.owner(f"pusherd:{APP}:{channel}") != victim_port  # a replica took over
    await publish_some(10)
    await inbox_b.wait_for(sent, FAILOVER)
    await inbox_a.wait_for(sent)
    for inbox in (inbox_a, inbox_b):
        assert [int(e.payload) for e in inbox.envelopes] == list(range(sent))
    for broker in (a, b):
        assert await broker.members(APP, "presence-r") == {"u-a": None, "u-b": None}
        assert await broker.channels(APP) == {"presence-r": ChannelStats(2, 2)}
    assert inbox_a.reaped == inbox_b.reaped == []
