"""``RedisTarget``: TLS, passwords and ACL users, Sentinel; brokers on real deployments.

The TLS server (``tests/redis_topology.py``) takes TLS clients with a certificate from
the test CA only, and a password. The Sentinel deployment is one master, one replica and
one Sentinel; the failover test kills the master with SIGKILL and starts it again after,
when Sentinel makes it a replica of the new master.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from pusherd.brokers.base import ChannelStats, Envelope
from pusherd.brokers.redis import RedisBroker
from pusherd.brokers.redis_connect import RedisTarget, RedisTls
from pusherd.errors import BrokerError
from pusherd.protocol.presence import Member
from tests.brokers.conftest import INTERVAL, TIMEOUT, Inbox, close_brokers, wait_until
from tests.redis_server import RedisServer
from tests.redis_topology import SentinelTopology, TlsTopology, Topologies

__all__: list[str] = []

pytestmark = [pytest.mark.redis, pytest.mark.topology]

APP = "app-1"
# Sentinel notices a dead master after 1 s, then elects and promotes the replica
FAILOVER = 15.0


@pytest.fixture
def tls(redis_topologies: Topologies) -> TlsTopology:
    topology = redis_topologies.get("tls")
    assert isinstance(topology, TlsTopology)
    topology.flushall()
    return topology


@pytest.fixture
def sentinel(redis_topologies: Topologies) -> SentinelTopology:
    topology = redis_topologies.get("sentinel")
    assert isinstance(topology, SentinelTopology)
    topology.heal()
    topology.flushall()
    return topology


@pytest.fixture
async def started() -> AsyncIterator[list[RedisBroker]]:
    """Brokers a test starts; closed at teardown."""
    brokers: list[RedisBroker] = []
    yield brokers
    await close_brokers(brokers)


async def _start(started: list[RedisBroker], target: RedisTarget, node: str) -> Inbox:
    inbox = Inbox()
    broker = RedisBroker(
        node_id=node, heartbeat_interval=INTERVAL, node_timeout=TIMEOUT, target=target
    )
    started.append(broker)
    await broker.start(inbox.deliver, inbox.on_reaped)
    return inbox


async def test_redis_tls_with_client_certificate_and_password_carries_everything(
    tls: TlsTopology, started: list[RedisBroker]
) -> None:
    inbox = await _start(started, tls.target(), "a")
    (broker,) = started
    assert broker.ready
    await broker.subscribe(APP, "secure")
    assert await broker.add_subscriber(APP, "secure", "1.1") == 1
    await broker.publish(Envelope(APP, "secure", b"over tls"))
    assert [e.payload for e in await inbox.wait_for(1)] == [b"over tls"]
    assert tls.listeners(f"pusherd:{APP}:secure") == 1


@pytest.mark.parametrize(
    "change",
    ["plain text to the tls port", "no client certificate", "wrong ca", "wrong password"],
)
async def test_redis_tls_refuses_what_the_server_or_the_client_must_not_accept(
    tls: TlsTopology, started: list[RedisBroker], change: str
) -> None:
    files = tls.files
    good = tls.target()
    target = {
        "plain text to the tls port": RedisTarget(
            url=good.url.replace("rediss://", "redis://"), password=tls.PASSWORD
        ),
        "no client certificate": RedisTarget(
            url=good.url, password=tls.PASSWORD, tls=RedisTls(ca=str(files.ca))
        ),
        # the client certificate is no CA: the server's chain cannot be verified
        "wrong ca": RedisTarget(
            url=good.url,
            password=tls.PASSWORD,
            tls=RedisTls(**{**tls.tls(), "ca": str(files.client_cert)}),
        ),
        "wrong password": RedisTarget(url=good.url, password="nope", tls=good.tls),
    }[change]
    await _start(started, target, "refused")
    (broker,) = started
    assert not broker.ready
    with pytest.raises(BrokerError):
        await broker.add_subscriber(APP, "c", "1.1")


async def test_redis_tls_without_verification_accepts_an_unknown_server(
    tls: TlsTopology, started: list[RedisBroker]
) -> None:
    options = {**tls.tls(), "ca": "", "verify": False}
    await _start(
        started, RedisTarget(url=tls.url, password=tls.PASSWORD, tls=RedisTls(**options)), "a"
    )
    assert started[0].ready


async def test_redis_acl_user_from_url_and_password_override_never_logged(
    started: list[RedisBroker], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "acl-secret-pw"
    with RedisServer() as server:
        rule = f"ACL SETUSER pusher on >{secret} ~* &* +@all".encode()
        assert server.command(rule) == b"+OK"
        assert server.command(b"ACL SETUSER default off") == b"+OK"
        url = f"redis://pusher:{secret}@127.0.0.1:{server.port}/0"
        await _start(started, RedisTarget(url=url), "from-url")
        # the password from PUSHERD_REDIS_PASSWORD replaces the URL's (here: a wrong one)
        wrong = f"redis://pusher:stale@127.0.0.1:{server.port}/0"
        await _start(started, RedisTarget(url=wrong, password=secret), "overridden")
        await _start(started, RedisTarget(url=url, password="stale-too"), "bad-override")
        good, overridden, bad = started
        # readiness follows the subscriber connection: await it (a loaded machine is slow)
        await wait_until(lambda: good.ready and overridden.ready)
        assert not bad.ready
        assert await good.add_subscriber(APP, "c", "1.1") == 1
        assert await overridden.channels(APP) == {"c": ChannelStats(1, 0)}
        for broker in started:
            assert secret not in repr(broker) and "stale" not in repr(broker)
            await broker.close()
    assert secret not in caplog.text


async def test_redis_sentinel_skips_a_dead_sentinel_and_finds_the_master(
    sentinel: SentinelTopology, started: list[RedisBroker]
) -> None:
    assert sentinel.sentinels()[0].endswith(f":{sentinel.nowhere}")  # listed first
    inbox = await _start(started, sentinel.target(), "a")
    (broker,) = started
    assert broker.ready
    await broker.subscribe(APP, "s")
    await broker.publish(Envelope(APP, "s", b"via sentinel"))
    assert [e.payload for e in await inbox.wait_for(1)] == [b"via sentinel"]
    assert sentinel.listeners(f"pusherd:{APP}:s") == 1


async def test_redis_sentinel_failover_loses_no_event_and_keeps_presence(
    sentinel: SentinelTopology, started: list[RedisBroker]
) -> None:
    inbox_a = await _start(started, sentinel.target(), "a")
    inbox_b = await _start(started, sentinel.target(), "b")
    a, b = started
    for broker in (a, b):
        await broker.subscribe(APP, "flow")
    await a.add_subscriber(APP, "presence-r", "a.1")
    await a.join_presence(APP, "presence-r", "a.1", Member("u-a"), 0)
    await b.add_subscriber(APP, "presence-r", "b.1")
    await b.join_presence(APP, "presence-r", "b.1", Member("u-b"), 0)
    old = sentinel.master()
    sent = 0

    async def publish_some(count: int) -> None:
        nonlocal sent
        for _ in range(count):
            await a.publish(Envelope(APP, "flow", b"%d" % sent))
            sent += 1
            await asyncio.sleep(0.01)

    await publish_some(10)
    await asyncio.to_thread(old.kill)
    await wait_until(lambda: not a.ready and not b.ready, FAILOVER)
    await publish_some(20)  # during the outage: delivered on a at once, replayed for b
    await wait_until(lambda: a.ready and b.ready, FAILOVER)
    assert sentinel.master() is not old
    await publish_some(10)
    await inbox_b.wait_for(sent, FAILOVER)
    await inbox_a.wait_for(sent)
    for inbox in (inbox_a, inbox_b):
        assert [int(e.payload) for e in inbox.envelopes] == list(range(sent))
    # each node wrote back what it holds: presence is exact on the new master
    for broker in (a, b):
        assert await broker.members(APP, "presence-r") == {"u-a": None, "u-b": None}
        assert await broker.channels(APP) == {"presence-r": ChannelStats(2, 2)}
    assert inbox_a.reaped == inbox_b.reaped == []


async def test_redis_works_for_an_acl_user_who_may_not_run_info(
    started: list[RedisBroker],
) -> None:
    with RedisServer() as server:
        rule = b"ACL SETUSER limited on >limited-pw ~* &* +@all -info"
        assert server.command(rule) == b"+OK"
        url = f"redis://limited:limited-pw@127.0.0.1:{server.port}/0"
        inbox = await _start(started, RedisTarget(url=url), "a")
        (broker,) = started
        assert broker.ready
        await broker.subscribe(APP, "c")
        await broker.publish(Envelope(APP, "c", b"no info needed"))
        assert [e.payload for e in await inbox.wait_for(1)] == [b"no info needed"]
        await broker.close()
