"""``RedisBroker`` fan-out across a Redis outage: local delivery now, replay in order later.

Two brokers on a redis-server of their own; node A publishes a numbered stream while
the server restarts. A's subscriber must see every number once, in order, without a
gap; B must see every number once, in order, after the reconnect.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from pusherd.brokers.base import Envelope, EnvelopeKind
from pusherd.brokers.redis_pubsub import decode_envelope, encode_envelope, envelope_origin
from pusherd.metrics import Metrics
from tests.brokers.conftest import INTERVAL, Inbox, MakeNode, redis_nodes, wait_until
from tests.redis_server import RedisServer

__all__: list[str] = []

pytestmark = pytest.mark.redis

APP = "app-1"


@pytest.fixture
async def make_node(own_redis_server: RedisServer) -> AsyncIterator[MakeNode]:
    async with redis_nodes(own_redis_server.url) as make:
        yield make


def _numbers(source: Inbox | list[Envelope]) -> list[int]:
    envelopes = source.envelopes if isinstance(source, Inbox) else source
    return [int(e.payload) for e in envelopes]


def test_envelope_origin_round_trips() -> None:
    envelope = Envelope(APP, "c", b'{"n":1}', "1.2", EnvelopeKind.TERMINATE)
    data = encode_envelope(envelope, "node-a")
    assert envelope_origin(data) == b"node-a"
    assert decode_envelope(APP, "c", data) == envelope
    assert envelope_origin(encode_envelope(envelope)) == b""


async def test_redis_pubsub_skips_envelopes_marked_with_own_origin(
    own_redis_server: RedisServer, make_node: MakeNode
) -> None:
    a, inbox_a = await make_node("a")
    b, inbox_b = await make_node("b")
    await a.subscribe(APP, "c")
    await b.subscribe(APP, "c")
    async with Redis.from_url(own_redis_server.url) as raw:
        await raw.publish(f"pusherd:{APP}:c", encode_envelope(Envelope(APP, "c", b"1"), "a"))
    await a.publish(Envelope(APP, "c", b"2"))
    assert _numbers(await inbox_b.wait_for(2)) == [1, 2]
    assert _numbers(await inbox_a.wait_for(1)) == [2]


async def test_redis_publish_loses_nothing_across_a_restart(
    own_redis_server: RedisServer, make_node: MakeNode
) -> None:
    a, inbox_a = await make_node("a")
    b, inbox_b = await make_node("b")
    await a.subscribe(APP, "stream")
    await b.subscribe(APP, "stream")
    total, restart_at = 150, 40
    went_down = asyncio.Event()

    async def restart() -> None:
        await asyncio.to_thread(own_redis_server.stop)
        await wait_until(lambda: not a.ready)
        went_down.set()
        await asyncio.sleep(0.3)  # an outage of a few hundred publishes' worth of time
        await asyncio.to_thread(own_redis_server.start)

    restarting = None
    for n in range(total):
        if n == restart_at:
            restarting = asyncio.create_task(restart())
            await asyncio.wait_for(went_down.wait(), 10)
        await a.publish(Envelope(APP, "stream", str(n).encode()))
        await asyncio.sleep(0.004)
    assert restarting is not None
    await asyncio.wait_for(restarting, 15)
    # A's sockets never waited for Redis: every number, once, in order
    await inbox_a.wait_for(total, timeout=10)
    assert _numbers(inbox_a) == list(range(total))
    # B got the numbers published during the outage once A re-published them
    await inbox_b.wait_for(total, timeout=10)
    assert _numbers(inbox_b) == list(range(total))
    await wait_until(lambda: a.replay_pending == 0)
    await a.publish(Envelope(APP, "stream", b"-1"))  # a marker: nothing else is in flight
    await inbox_b.wait_for(total + 1)
    assert _numbers(inbox_a)[total:] == [-1]
    assert _numbers(inbox_b)[total:] == [-1]


async def test_redis_replay_waits_for_a_peer_that_reconnects_late(
    own_redis_server: RedisServer, make_node: MakeNode
) -> None:
    a, inbox_a = await make_node("a")
    b, inbox_b = await make_node("b")
    await a.subscribe(APP, "c")
    await b.subscribe(APP, "c")
    await wait_until(lambda: a._replay.peers == {"b"})
    own_redis_server.stop()
    await wait_until(lambda: not a.ready and not b.ready)
    await a.publish(Envelope(APP, "c", b"1"))
    assert _numbers(inbox_a) == [1]
    # B's subscriber stays away a while after Redis is back; A must hold the replay
    b._pubsub.closed = True
    own_redis_server.start()
    await wait_until(lambda: a.ready)
    await asyncio.sleep(INTERVAL)  # a few heartbeats: B's listening mark is still missing
    assert a.replay_pending == 1
    b._pubsub.closed = False
    b._tasks[0] = asyncio.create_task(b._pubsub.run())
    assert _numbers(await inbox_b.wait_for(1)) == [1]
    assert _numbers(inbox_a) == [1]


async def test_redis_replay_ignores_a_listening_mark_naming_another_server(
    own_redis_server: RedisServer, make_node: MakeNode
) -> None:
    a, inbox_a = await make_node("a")
    b, _ = await make_node("b")
    await a.subscribe(APP, "c")
    await wait_until(lambda: a._replay.peers == {"b"})
    for task in b._tasks:  # B hangs: it will not resubscribe nor refresh its mark
        task.cancel()
    await asyncio.wait(b._tasks)
    own_redis_server.stop()
    await wait_until(lambda: not a.ready)
    await a.publish(Envelope(APP, "c", b"1"))
    own_redis_server.start()
    # after a failover the new master holds B's mark as replicated from the old one
    async with Redis.from_url(own_redis_server.url) as raw:
        await raw.set("pusherd:listen:b", "run-id-of-the-old-master", px=60_000)
        await wait_until(lambda: a.ready)
        await asyncio.sleep(3 * INTERVAL)  # a few heartbeats and replay attempts
        assert a.replay_pending == 1
        assert a._pubsub.server_id  # the run_id A's subscriber saw
        await raw.set("pusherd:listen:b", a._pubsub.server_id, px=60_000)
        await wait_until(lambda: a.replay_pending == 0)
    assert _numbers(inbox_a) == [1]


async def test_redis_replay_buffer_is_bounded_and_counts_drops(
    own_redis_server: RedisServer, make_node: MakeNode
) -> None:
    metrics = Metrics()
    a, inbox_a = await make_node("a", replay_limit=3, metrics=metrics)
    b, inbox_b = await make_node("b")
    await a.subscribe(APP, "c")
    await b.subscribe(APP, "c")
    own_redis_server.stop()
    await wait_until(lambda: not a.ready)
    for n in range(5):
        await a.publish(Envelope(APP, "c", str(n).encode()))
    assert _numbers(inbox_a) == [0, 1, 2, 3, 4]
    assert a.replay_pending == 3
    assert 'pusherd_broker_errors_total{op="publish_dropped"} 2.0' in metrics.render().decode()
    own_redis_server.start()
    assert _numbers(await inbox_b.wait_for(3)) == [0, 1, 2]
    await wait_until(lambda: a.replay_pending == 0)
