"""``RedisBroker`` fan-out across a Redis outage: local delivery now, replay in order later.

Two brokers on a redis-server of their own; node A publishes a numbered stream while
the server restarts. A's subscriber must see every number once, in order, without a
gap; B must see every number once, in order, after the reconnect.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest
from redis.asyncio import Redis

from pusherd.brokers.base import Envelope, EnvelopeKind
from pusherd.brokers.redis_pubsub import (
    RedisPubSub,
    decode_envelope,
    encode_envelope,
    envelope_origin,
)
from pusherd.metrics import Metrics
from tests.brokers.conftest import (
    INTERVAL,
    WAIT,
    Inbox,
    MakeNode,
    eventually,
    redis_nodes,
    wait_until,
)
from tests.redis_server import RedisServer

if TYPE_CHECKING:
    from pusherd.brokers.redis import RedisBroker

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


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel ``tasks`` and wait until they ended; a redis-py call may swallow one cancel
    (``RedisBroker.close`` knows that too), so cancel again, a bounded number of times."""
    for _ in range(20):
        for task in tasks:
            task.cancel()
        _, pending = await asyncio.wait(tasks, timeout=WAIT / 20)
        if not pending:
            return
    raise AssertionError("a broker task did not stop")


async def _pause_heartbeat(node: RedisBroker) -> None:
    """Stop ``node``'s heartbeat: its peers stay what its last beat saw."""
    await _cancel([node._tasks[1]])


def _resume_heartbeat(node: RedisBroker) -> None:
    node._tasks[1] = asyncio.create_task(node._beat_loop())


def _stop_reader(node: RedisBroker) -> None:
    """Make ``node``'s subscriber stop after its connection fails (it stays away)."""
    node._pubsub.closed = True


async def _reader_stopped(node: RedisBroker) -> None:
    await wait_until(lambda: node._tasks[0].done())


def _restart_reader(node: RedisBroker) -> None:
    assert isinstance(node._pubsub, RedisPubSub)
    node._pubsub.closed = False
    node._tasks[0] = asyncio.create_task(node._pubsub.run())


async def _b_registered_after_a_last_beat(
    make_node: MakeNode,
) -> tuple[RedisBroker, Inbox, RedisBroker, Inbox]:
    """Nodes A and B on channel c, where A's last heartbeat ran before B registered: A
    knows no peer."""
    a, inbox_a = await make_node("a", node_timeout=30.0)
    await a.subscribe(APP, "c")
    await _pause_heartbeat(a)
    b, inbox_b = await make_node("b")
    await b.subscribe(APP, "c")
    return a, inbox_a, b, inbox_b


async def test_redis_replay_waits_for_a_peer_registered_after_the_last_heartbeat(
    own_redis_server: RedisServer, make_node: MakeNode
) -> None:
    a, inbox_a, b, inbox_b = await _b_registered_after_a_last_beat(make_node)
    assert a._replay.peers == set()
    # both subscriber connections drop, the registry stays (as on a failover); A's
    # subscriber comes back first, B's stays away a while
    _stop_reader(a)
    _stop_reader(b)
    async with Redis.from_url(own_redis_server.url, socket_timeout=WAIT) as raw:
        await raw.client_kill_filter(_type="pubsub")
        await _reader_stopped(a)
        await _reader_stopped(b)

        async def b_mark_gone() -> bool:  # B's heartbeat dropped its listening mark
            return not await raw.exists("pusherd:listen:b")

        await eventually(b_mark_gone)
    await a.publish(Envelope(APP, "c", b"1"))
    assert _numbers(inbox_a) == [1]
    _restart_reader(a)
    await wait_until(lambda: a._pubsub.ok)
    await asyncio.sleep(3 * INTERVAL)  # a few replay attempts: B is registered, not listening
    assert a.replay_pending == 1
    _restart_reader(b)
    assert _numbers(await inbox_b.wait_for(1)) == [1]
    await wait_until(lambda: a.replay_pending == 0)
    assert _numbers(inbox_a) == [1]


async def test_redis_replay_waits_for_peers_to_register_again_after_redis_lost_them(
    own_redis_server: RedisServer, make_node: MakeNode
) -> None:
    a, inbox_a, b, inbox_b = await _b_registered_after_a_last_beat(make_node)
    # Redis restarts empty; B's heartbeat and subscriber come back a while after A's
    await _pause_heartbeat(b)
    _stop_reader(b)
    own_redis_server.stop()
    await wait_until(lambda: not a._pubsub.ok)
    await _reader_stopped(b)
    await a.publish(Envelope(APP, "c", b"1"))
    own_redis_server.start()
    _resume_heartbeat(a)
    async with Redis.from_url(own_redis_server.url, socket_timeout=WAIT) as raw:

        async def a_registered() -> bool:
            return bool(await raw.sismember("pusherd:nodes", "a"))

        await eventually(a_registered)
        await wait_until(lambda: a._pubsub.ok)
        await asyncio.sleep(3 * INTERVAL)  # within a heartbeat and a connect: B is still away
        assert not await raw.sismember("pusherd:nodes", "b")
    assert a.replay_pending == 1
    _resume_heartbeat(b)
    _restart_reader(b)
    assert _numbers(await inbox_b.wait_for(1)) == [1]
    await wait_until(lambda: a.replay_pending == 0)
    assert _numbers(inbox_a) == [1]


async def test_redis_replay_ignores_a_listening_mark_naming_another_server(
    own_redis_server: RedisServer, make_node: MakeNode
) -> None:
    a, inbox_a = await make_node("a")
    b, _ = await make_node("b")
    await a.subscribe(APP, "c")
    await wait_until(lambda: a._replay.peers == {"b"})
    await _cancel(b._tasks)  # B hangs: it will not resubscribe nor refresh its mark
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
