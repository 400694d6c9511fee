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
import redis

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


async def _start(
    started: list[RedisBroker], cluster: ClusterTopology, node: str, prefix: str = "pusherd"
) -> Inbox:
    inbox = Inbox()
    broker = RedisBroker(
        node_id=node,
        heartbeat_interval=INTERVAL,
        node_timeout=TIMEOUT,
        target=cluster.target(),
        prefix=prefix,
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


def _keys_per_master(cluster: ClusterTopology) -> dict[int, set[str]]:
    """Every key on each master (``SCAN`` on that master alone): port -> names."""
    found = {}
    for server in cluster.masters():
        with redis.Redis(port=server.port) as client:
            found[server.port] = {name.decode() for name in client.scan_iter(count=1000)}
    return found


async def _write_spread_data(broker: RedisBroker, channels: list[str]) -> None:
    """History, an idempotency key, a cache channel's event and a mark per channel."""
    for channel in channels:
        await broker.publish_history(Envelope(APP, f"history-{channel}", b"h"), 50, 60.0, 0)
        assert await broker.idempotency_claim(APP, f"idem-{channel}", 60.0) is None
        await broker.idempotency_store(APP, f"idem-{channel}", b"answer", 60.0)
        await broker.cache_set(APP, f"cache-{channel}", b"c", 60.0)
        assert await broker.claim(APP, f"mark-{channel}", 60.0)


async def test_sharded_history_idempotency_cache_and_marks_spread_over_the_shards(
    cluster: ClusterTopology, started: list[RedisBroker]
) -> None:
    await _start(started, cluster, "a")
    (a,) = started
    channels = [f"room-{n}" for n in range(64)]
    await a.add_subscriber(APP, "presence-r", "a.1")
    await _write_spread_data(a, channels)

    per_master = _keys_per_master(cluster)
    kinds = {
        kind: {
            port
            for port, names in per_master.items()
            if any(n.startswith(f"pusherd:{kind}:") for n in names)
        }
        for kind in ("h", "hs", "idem", "cache", "mark")
    }
    assert all(len(ports) > 1 for ports in kinds.values()), kinds
    state = [port for port, names in per_master.items() if "{pusherd}:nodes" in names]
    assert len(state) == 1  # node-level state stays in one slot, on one master
    with cluster.client() as raw:
        tagged = {raw.keyslot(n) for names in per_master.values() for n in names if n[0] == "{"}
        assert tagged == {raw.keyslot("{pusherd}")}
        for channel in channels:
            stream = f"pusherd:h:{{{APP}:history-{channel}}}"
            counter = f"pusherd:hs:{{{APP}:history-{channel}}}"
            assert raw.keyslot(stream) == raw.keyslot(counter)
            owner = cluster.owner(stream)
            assert {stream, counter} <= per_master[owner], channel
    # every kind still reads back through the broker, whichever shard holds it
    for channel in channels:
        assert [e.payload for e in await a.history(APP, f"history-{channel}", 50, 60.0)] == [b"h"]
        assert await a.idempotency_claim(APP, f"idem-{channel}", 60.0) == b"answer"
        cached = await a.cache_get(APP, f"cache-{channel}")
        assert cached is not None and cached[0] == b"c"
        assert not await a.claim(APP, f"mark-{channel}", 60.0)
    assert await a.channel_stats(APP, "presence-r") == ChannelStats(1, 0)


async def test_sharded_prefixes_keep_two_deployments_apart_on_every_shard(
    cluster: ClusterTopology, started: list[RedisBroker]
) -> None:
    await _start(started, cluster, "same-node", prefix="blue")
    await _start(started, cluster, "same-node", prefix="green")
    blue, green = started
    channels = [f"room-{n}" for n in range(8)]
    await _write_spread_data(blue, channels)

    for channel in channels:
        assert await green.history(APP, f"history-{channel}", 50, 60.0) == []
        assert await green.idempotency_claim(APP, f"idem-{channel}", 60.0) is None
        assert await green.cache_get(APP, f"cache-{channel}") is None
        assert await green.claim(APP, f"mark-{channel}", 60.0)  # its own mark
    seq = await green.publish_history(Envelope(APP, "history-room-0", b"g"), 50, 60.0, 0)
    assert seq == 1  # its own counter
    assert [e.payload for e in await blue.history(APP, "history-room-0", 50, 60.0)] == [b"h"]
    names = set().union(*_keys_per_master(cluster).values())
    starts = ("blue:", "{blue}:", "green:", "{green}:")
    assert all(name.startswith(starts) for name in names), names
    for prefix in ("blue", "green"):
        assert f"{prefix}:h:{{{APP}:history-room-0}}" in names
        assert f"{prefix}:idem:{APP}:idem-room-0" in names


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
