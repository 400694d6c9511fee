"""``RedisBroker`` across nodes: several brokers (node ids) on one real redis-server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator, Awaitable

import pytest
from redis.asyncio import Redis

from pusherd.brokers.base import ChannelStats, Envelope, EnvelopeKind, Reaped
from pusherd.brokers.redis import RedisBroker, decode_envelope, encode_envelope
from pusherd.errors import BrokerError
from pusherd.metrics import Metrics
from pusherd.protocol.presence import Member
from tests.brokers.conftest import (
    INTERVAL,
    TIMEOUT,
    Inbox,
    MakeNode,
    eventually,
    redis_nodes,
    wait_until,
)
from tests.redis_server import RedisServer, free_port

__all__: list[str] = []

pytestmark = pytest.mark.redis

APP = "app-1"


# A node in its own process, killed with SIGKILL: nothing of it runs close().
DOOMED_NODE = """
import asyncio, sys
from pusherd.brokers.redis import RedisBroker
from pusherd.protocol.presence import Member

async def main():
    node = RedisBroker(sys.argv[1], sys.argv[2], heartbeat_interval=0.2, node_timeout=1.0)
    await node.start(lambda envelope: None)
    await node.add_connection("app-1", "d.1", 0)
    await node.sign_in("app-1", "u-doomed", "d.1")
    for user, socket_id in (("u1", "d.1"), ("u2", "d.2")):
        await node.add_subscriber("app-1", "presence-room", socket_id)
        await node.join_presence("app-1", "presence-room", socket_id, Member(user), 0)
    await node.add_subscriber("app-1", "solo", "d.1")
    print("ready", flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


@pytest.fixture
async def make_node(redis_url: str) -> AsyncIterator[MakeNode]:
    async with redis_nodes(redis_url) as make:
        yield make


def test_envelope_encoding_round_trips() -> None:
    envelope = Envelope(APP, "c", b'{"event":"e"}', "12.34")
    assert decode_envelope(APP, "c", encode_envelope(envelope)) == envelope
    bare = Envelope(APP, "c", b"")
    assert decode_envelope(APP, "c", encode_envelope(bare)) == bare


async def test_redis_delivers_only_to_subscribed_nodes(make_node: MakeNode) -> None:
    a, inbox_a = await make_node("a")
    b, inbox_b = await make_node("b")
    await b.subscribe(APP, "only-b")
    await a.subscribe(APP, "both")
    await b.subscribe(APP, "both")
    await a.publish(Envelope(APP, "only-b", b"1", "a.1"))
    await a.publish(Envelope(APP, "both", b"2"))
    # one reader connection per node: "both" arrives after anything sent before it
    assert [e.payload for e in await inbox_b.wait_for(2)] == [b"1", b"2"]
    assert inbox_b.envelopes[0] == Envelope(APP, "only-b", b"1", "a.1")
    assert [e.payload for e in await inbox_a.wait_for(1)] == [b"2"]


async def test_redis_unsubscribe_stops_delivery(make_node: MakeNode) -> None:
    a, inbox = await make_node("a")
    await a.subscribe(APP, "gone")
    await a.subscribe(APP, "marker")
    await a.unsubscribe(APP, "gone")
    await a.unsubscribe(APP, "gone")
    await a.publish(Envelope(APP, "gone", b"lost"))
    await a.publish(Envelope(APP, "marker", b"seen"))
    assert [e.payload for e in await inbox.wait_for(1)] == [b"seen"]


async def test_redis_presence_is_counted_cluster_wide(make_node: MakeNode) -> None:
    a, _ = await make_node("a")
    b, _ = await make_node("b")
    assert await a.add_subscriber(APP, "presence-r", "a.1") == 1
    assert await b.add_subscriber(APP, "presence-r", "b.1") == 2
    first = await a.join_presence(APP, "presence-r", "a.1", Member("u1", "from-a"), 0)
    second = await b.join_presence(APP, "presence-r", "b.1", Member("u1", "from-b"), 0)
    assert first.is_new_user
    assert not second.is_new_user
    assert second.member == Member("u1", "from-a")
    assert await b.channel_stats(APP, "presence-r") == ChannelStats(2, 1)
    assert await a.leave_presence(APP, "presence-r", "a.1") is None
    assert await b.members(APP, "presence-r") == {"u1": "from-a"}
    assert await b.leave_presence(APP, "presence-r", "b.1") == Member("u1", "from-a")
    assert await a.members(APP, "presence-r") == {}


async def test_redis_limits_are_cluster_wide(make_node: MakeNode) -> None:
    a, _ = await make_node("a")
    b, _ = await make_node("b")
    assert await a.join_presence(APP, "presence-r", "a.1", Member("u1"), 1)
    assert (await b.join_presence(APP, "presence-r", "b.1", Member("u2"), 1)).refused
    assert await a.add_connection(APP, "a.1", 2)
    assert await b.add_connection(APP, "b.1", 2)
    assert not await a.add_connection(APP, "a.2", 2)
    assert await b.connection_count(APP) == 2
    assert await a.sign_in(APP, "u1", "a.1")
    assert not await b.sign_in(APP, "u1", "b.1")
    assert not await a.sign_out(APP, "u1", "a.1")
    assert await b.sign_out(APP, "u1", "b.1")


async def test_redis_reaps_killed_node_once(redis_url: str, make_node: MakeNode) -> None:
    b, inbox_b = await make_node("b")
    c, inbox_c = await make_node("c")
    await b.add_subscriber(APP, "presence-room", "b.1")
    await b.join_presence(APP, "presence-room", "b.1", Member("u2"), 0)
    doomed = await asyncio.create_subprocess_exec(
        sys.executable, "-c", DOOMED_NODE, redis_url, "doomed", stdout=asyncio.subprocess.PIPE
    )
    try:
        assert doomed.stdout is not None
        assert await asyncio.wait_for(doomed.stdout.readline(), 10) == b"ready\n"
        assert await c.members(APP, "presence-room") == {"u1": None, "u2": None}
        assert await c.online(APP, ["u-doomed"]) == {"u-doomed"}
    finally:
        doomed.kill()
        await doomed.wait()
    loop = asyncio.get_running_loop()
    killed = loop.time()
    reaped = inbox_b.reaped + inbox_c.reaped

    def both_reported() -> bool:
        reaped[:] = inbox_b.reaped + inbox_c.reaped
        return len(reaped) >= 2

    await wait_until(both_reported, TIMEOUT + INTERVAL + 3)
    assert loop.time() - killed < TIMEOUT + INTERVAL + 1.0  # 1 s of slack for a busy CI
    assert sorted(reaped, key=lambda event: event.kind) == [
        Reaped(APP, "channel_vacated", "solo"),
        Reaped(APP, "member_removed", "presence-room", "u1"),
    ]
    assert await c.members(APP, "presence-room") == {"u2": None}
    assert await c.channels(APP) == {"presence-room": ChannelStats(1, 1)}
    assert await c.online(APP, ["u-doomed"]) == set()
    assert await c.connection_count(APP) == 0
    # the dead node is gone from Redis, so no later reaper run can report it again
    async with Redis.from_url(redis_url) as raw:
        assert await raw.smembers("pusherd:nodes") == {b"b", b"c"}
        assert not await raw.exists("pusherd:items:doomed")


async def test_redis_close_removes_node_state_at_once(make_node: MakeNode) -> None:
    a, _ = await make_node("a")
    b, inbox_b = await make_node("b")
    await a.add_subscriber(APP, "presence-r", "a.1")
    await a.join_presence(APP, "presence-r", "a.1", Member("u1"), 0)
    await a.add_connection(APP, "a.1", 0)
    await a.sign_in(APP, "u1", "a.1")
    assert await b.channels(APP) == {"presence-r": ChannelStats(1, 1)}
    await a.close()
    assert not a.ready
    assert await b.channels(APP) == {}
    assert await b.members(APP, "presence-r") == {}
    assert await b.online(APP, ["u1"]) == set()
    assert await b.connection_count(APP) == 0
    assert inbox_b.reaped == []


async def test_redis_resubscribes_after_subscriber_connection_is_killed(
    redis_url: str, make_node: MakeNode
) -> None:
    a, inbox = await make_node("a")
    await a.subscribe(APP, "kept")
    async with Redis.from_url(redis_url) as raw:
        assert await raw.client_kill_filter(_type="pubsub") == 1
    await wait_until(lambda: not a.ready)
    await wait_until(lambda: a.ready)
    await a.publish(Envelope(APP, "kept", b"after"))
    assert [e.payload for e in await inbox.wait_for(1)] == [b"after"]


async def test_redis_restart_resumes_subscriptions_and_rebuilds_state(
    own_redis_server: RedisServer, make_node: MakeNode
) -> None:
    url = own_redis_server.url
    a, inbox_a = await make_node("a", url)
    b, inbox_b = await make_node("b", url)
    await a.subscribe(APP, "c")
    await b.subscribe(APP, "c")
    await a.add_subscriber(APP, "presence-r", "a.1")
    await a.join_presence(APP, "presence-r", "a.1", Member("u1", "info"), 0)
    await a.add_connection(APP, "a.1", 0)
    await a.sign_in(APP, "u1", "a.1")

    own_redis_server.stop()
    await wait_until(lambda: not a.ready and not b.ready)
    outage: list[Awaitable[object]] = [
        a.add_subscriber(APP, "x", "a.2"),
        a.remove_subscriber(APP, "presence-r", "a.9"),
        a.join_presence(APP, "presence-r", "a.2", Member("u2"), 0),
        b.members(APP, "presence-r"),
        b.channels(APP),
        a.subscribe(APP, "new"),
        b.add_connection(APP, "b.1", 0),
        b.sign_in(APP, "u3", "b.1"),
        b.online(APP, ["u1"]),
        b.cache_get(APP, "cache-x"),
        b.claim(APP, "k", 1.0),
    ]
    for call in outage:
        with pytest.raises(BrokerError):
            await asyncio.wait_for(call, 5)
    await a.publish(Envelope(APP, "c", b"during"))  # delivered locally at once
    assert [e.payload for e in inbox_a.envelopes] == [b"during"]

    own_redis_server.start()  # empty: no persistence
    await wait_until(lambda: a.ready and b.ready)

    async def rebuilt() -> bool:
        return await b.channels(APP) == {"presence-r": ChannelStats(1, 1)}

    await eventually(rebuilt)
    assert await b.members(APP, "presence-r") == {"u1": "info"}
    assert await b.online(APP, ["u1", "u3"]) == {"u1"}
    assert await b.connection_count(APP) == 1
    await b.publish(Envelope(APP, "c", b"after"))
    assert sorted(e.payload for e in await inbox_a.wait_for(2)) == [b"after", b"during"]
    assert sorted(e.payload for e in await inbox_b.wait_for(2)) == [b"after", b"during"]


async def test_redis_calls_raise_broker_error_when_unreachable() -> None:
    node = RedisBroker(f"redis://127.0.0.1:{free_port()}/0", "lonely", INTERVAL, TIMEOUT)
    inbox = Inbox()
    await node.start(inbox.deliver)
    try:
        assert not node.ready
        with pytest.raises(BrokerError):
            await node.add_subscriber(APP, "c", "1.1")
        with pytest.raises(BrokerError):
            await node.subscribe(APP, "c")
        await node.publish(Envelope(APP, "c", b"x"))  # local delivery, kept for replay
        assert [e.payload for e in inbox.envelopes] == [b"x"]
        assert node.replay_pending == 1
    finally:
        await node.close()


async def test_redis_hides_password_in_repr_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    if not RedisServer.available():
        pytest.skip("redis-server is not installed")
    caplog.set_level(logging.DEBUG)
    secret = "s3cret-pw"
    with RedisServer(extra_args=["--requirepass", secret]) as server:
        node = RedisBroker(f"redis://:{secret}@127.0.0.1:{server.port}/0", "a", INTERVAL, TIMEOUT)
        await node.start(Inbox().deliver)
        try:
            assert node.ready
            assert await node.add_subscriber(APP, "c", "1.1") == 1
            assert secret not in repr(node)
            server.stop()
            await wait_until(lambda: not node.ready)
            with pytest.raises(BrokerError) as failure:
                await node.members(APP, "presence-r")
            assert secret not in str(failure.value)
        finally:
            await node.close()
    assert secret not in caplog.text


async def test_redis_counts_calls_and_errors_in_metrics(make_node: MakeNode) -> None:
    metrics = Metrics()
    a, _ = await make_node("a", metrics=metrics)
    await a.add_subscriber(APP, "c", "1.1")
    rendered = metrics.render().decode()
    assert 'pusherd_broker_calls_total{op="add_subscriber"} 1.0' in rendered


async def test_redis_calls_after_close_raise_broker_error(make_node: MakeNode) -> None:
    a, _ = await make_node("a")
    await a.close()
    await a.close()
    with pytest.raises(BrokerError):
        await a.add_subscriber(APP, "c", "1.1")
    with pytest.raises(BrokerError):
        await a.subscribe(APP, "c")


async def test_redis_state_converges_after_restart_under_load(
    own_redis_server: RedisServer, make_node: MakeNode
) -> None:
    nodes = [(await make_node(name, own_redis_server.url))[0] for name in ("a", "b")]
    expected: set[tuple[str, str]] = set()  # (channel, socket) that must stay counted
    failures = 0

    async def churn(node: RedisBroker, prefix: str) -> None:
        nonlocal failures
        for n in range(120):
            socket_id, channel = f"{prefix}.{n}", f"c{n % 4}"
            try:
                await node.add_subscriber(APP, channel, socket_id)
                expected.add((channel, socket_id))
            except BrokerError:
                failures += 1
            if n % 3 == 0:
                # a failed removal is still a removal: the node resyncs Redis later
                expected.discard((channel, socket_id))
                with contextlib.suppress(BrokerError):
                    await node.remove_subscriber(APP, channel, socket_id)
            await asyncio.sleep(0.002)

    async def restart() -> None:
        await asyncio.sleep(0.08)
        await asyncio.to_thread(own_redis_server.restart)

    await asyncio.gather(churn(nodes[0], "a"), churn(nodes[1], "b"), restart())
    assert failures, "the restart should have happened while the nodes were busy"

    def counts() -> dict[str, ChannelStats]:
        totals: dict[str, int] = {}
        for channel, _ in expected:
            totals[channel] = totals.get(channel, 0) + 1
        return {channel: ChannelStats(count, 0) for channel, count in totals.items()}

    async def converged() -> bool:
        try:
            return await nodes[0].channels(APP) == counts()
        except BrokerError:
            return False

    await eventually(converged)


async def test_redis_restart_under_same_node_id_announces_what_was_left(
    redis_url: str, make_node: MakeNode
) -> None:
    doomed = await asyncio.create_subprocess_exec(
        sys.executable, "-c", DOOMED_NODE, redis_url, "phoenix", stdout=asyncio.subprocess.PIPE
    )
    try:
        assert doomed.stdout is not None
        assert await asyncio.wait_for(doomed.stdout.readline(), 10) == b"ready\n"
    finally:
        doomed.kill()
        await doomed.wait()
    reborn, inbox = await make_node("phoenix")  # well before node_timeout
    reaped = await inbox.wait_reaped(4)
    assert sorted(reaped, key=lambda event: (event.kind, event.channel, event.user_id or "")) == [
        Reaped(APP, "channel_vacated", "presence-room"),
        Reaped(APP, "channel_vacated", "solo"),
        Reaped(APP, "member_removed", "presence-room", "u1"),
        Reaped(APP, "member_removed", "presence-room", "u2"),
    ]
    assert await reborn.channels(APP) == {}
    assert await reborn.online(APP, ["u-doomed"]) == set()


async def test_redis_burst_of_calls_shares_a_bounded_pool(
    redis_url: str, make_node: MakeNode
) -> None:
    a, _ = await make_node("a")
    counts = await asyncio.gather(*(a.add_subscriber(APP, "burst", f"s.{n}") for n in range(300)))
    assert sorted(counts) == list(range(1, 301))
    async with Redis.from_url(redis_url) as raw:
        clients = await raw.client_list()
    assert len(clients) <= 40  # the pool (32), the subscriber, this connection


async def test_redis_prefixes_keep_two_deployments_apart_on_one_server(redis_url: str) -> None:
    async with redis_nodes(redis_url) as make:
        blue, blue_inbox = await make("same-node", prefix="blue")
        green, green_inbox = await make("same-node", prefix="green")
        for node in (blue, green):
            await node.subscribe(APP, "presence-r")
        await blue.add_subscriber(APP, "presence-r", "1.1")
        await blue.join_presence(APP, "presence-r", "1.1", Member("u-blue"), 0)
        await blue.add_connection(APP, "1.1", 0)
        await blue.sign_in(APP, "u-blue", "1.1")
        assert await blue.claim(APP, "webhook:1", 10)

        assert await green.channels(APP) == {}
        assert await green.members(APP, "presence-r") == {}
        assert await green.connection_count(APP) == 0
        assert await green.online(APP, ["u-blue"]) == set()
        assert await green.claim(APP, "webhook:1", 10)  # its own mark
        assert await green.add_subscriber(APP, "presence-r", "2.1") == 1
        await green.publish(Envelope(APP, "presence-r", b"green"))
        await blue.publish(Envelope(APP, "presence-r", b"blue"))
        assert [e.payload for e in await green_inbox.wait_for(1)] == [b"green"]
        assert [e.payload for e in await blue_inbox.wait_for(1)] == [b"blue"]
        assert await green.release(APP, "webhook:1")
        await green.close()  # closing one deployment's node leaves the other's state
        assert await blue.members(APP, "presence-r") == {"u-blue": None}
        assert await blue.channels(APP) == {"presence-r": ChannelStats(1, 1)}
        async with Redis.from_url(redis_url) as raw:
            names = [name async for name in raw.scan_iter(count=1000)]
            assert b"blue:node:same-node" in names
            # of green only the reaper lock may be left, until its TTL runs out
            assert {name for name in names if not name.startswith(b"blue:")} <= {b"green:reaper"}

            async def only_blue_listens() -> bool:
                return await raw.pubsub_channels() == [f"blue:{APP}:presence-r".encode()]

            await eventually(only_blue_listens)
        assert len(blue_inbox.envelopes) == 1 and green_inbox.reaped == []


# history ---------------------------------------------------------------------------------
def test_envelope_encoding_round_trips_sequenced() -> None:
    envelope = Envelope(APP, "c", b'{"event":"e"}', "12.34", EnvelopeKind.SEQUENCED, 123456789)
    assert decode_envelope(APP, "c", encode_envelope(envelope)) == envelope
    origin = decode_envelope(APP, "c", encode_envelope(envelope, origin="node-a"))
    assert origin == envelope


async def test_redis_history_is_shared_and_outlives_the_node_that_wrote_it(
    make_node: MakeNode,
) -> None:
    a, _ = await make_node("a")
    b, inbox_b = await make_node("b")
    await b.subscribe(APP, "history-x")
    for n in range(3):
        await a.publish_history(Envelope(APP, "history-x", b"%d" % n), 50, 120.0, 0)
    live = await inbox_b.wait_for(3)
    await a.close()

    assert [(e.seq, e.payload) for e in live] == [(1, b"0"), (2, b"1"), (3, b"2")]
    assert [e.payload for e in await b.history(APP, "history-x", 50, 120.0)] == [
        b"0",
        b"1",
        b"2",
    ]


async def test_redis_history_stream_expires_when_the_channel_is_idle(
    make_node: MakeNode, redis_url: str
) -> None:
    a, _ = await make_node("a")
    await a.publish_history(Envelope(APP, "history-idle", b"x"), 50, 30.0, 0)
    client = Redis.from_url(redis_url)
    try:
        stream_ttl = await client.pttl(f"pusherd:h:{APP}:history-idle")
        counter_ttl = await client.pttl(f"pusherd:hs:{APP}:history-idle")
        length = await client.xlen(f"pusherd:h:{APP}:history-idle")
    finally:
        await client.aclose()

    assert 29_000 < stream_ttl <= 30_000
    assert counter_ttl > stream_ttl  # a number is never reused while it may be held
    assert length == 1


async def test_redis_single_server_key_names_are_unchanged(
    make_node: MakeNode, redis_url: str
) -> None:
    a, _ = await make_node("a")
    await a.publish_history(Envelope(APP, "history-r", b"x"), 50, 30.0, 0)
    assert await a.idempotency_claim(APP, "retry:1", 30.0) is None
    await a.cache_set(APP, "cache-r", b"c", 30.0)
    assert await a.claim(APP, "webhook:1", 30.0)
    await a.add_subscriber(APP, "presence-r", "a.1")
    async with Redis.from_url(redis_url) as raw:
        names = {name.decode() async for name in raw.scan_iter(match=f"*{APP}*", count=1000)}
    assert names == {
        f"pusherd:h:{APP}:history-r",
        f"pusherd:hs:{APP}:history-r",
        f"pusherd:idem:{APP}:retry:1",
        f"pusherd:cache:{APP}:cache-r",
        f"pusherd:mark:{APP}:webhook:1",
        f"pusherd:s:{APP}:presence-r",
        f"pusherd:chs:{APP}",
    }


async def test_redis_history_during_an_outage_delivers_without_retaining(
    own_redis_server: RedisServer, make_node: MakeNode
) -> None:
    a, inbox = await make_node("a", own_redis_server.url)
    await a.subscribe(APP, "history-o")
    own_redis_server.stop()
    await wait_until(lambda: not a.ready)

    seq = await a.publish_history(Envelope(APP, "history-o", b"during"), 50, 120.0, 0)

    assert seq == 0
    assert [(e.kind, e.payload) for e in inbox.envelopes] == [(EnvelopeKind.MESSAGE, b"during")]
    with pytest.raises(BrokerError):
        await a.history(APP, "history-o", 50, 120.0)
