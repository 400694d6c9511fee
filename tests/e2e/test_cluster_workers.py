"""``pusherd serve --workers 2``: forked workers on one port behave like one server.

The workers are two Redis nodes (``{node_id}-0``, ``{node_id}-1``), each accepting on
its own SO_REUSEPORT listener on the one port. Sockets are opened until both workers
hold some (read from Redis, where every subscriber is stored with its node), then a
REST publish must reach all of them and presence must list every user whichever worker
answers. A burst of simultaneous connects must be spread over both workers.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from redis.asyncio import Redis

from tests.e2e.cluster import APP, Client, node_config, rest
from tests.redis_server import RedisServer
from tests.server_process import ServerProcess

__all__: list[str] = []

pytestmark = [pytest.mark.redis, pytest.mark.asyncio(loop_scope="module")]

MAX_SOCKETS = 24


@pytest.fixture(scope="module")
def server(redis_server: RedisServer) -> Iterator[ServerProcess]:
    config = node_config(redis_server.url, "workers", [APP])
    process = ServerProcess(config, extra_args=["--workers", "2"])
    try:
        process.start()
        yield process
    finally:
        process.cleanup()


@pytest_asyncio.fixture(loop_scope="module")
async def clients() -> AsyncIterator[list[Client]]:
    opened: list[Client] = []
    yield opened
    await asyncio.gather(*(client.close() for client in opened))


async def test_workers_share_events_and_presence(
    server: ServerProcess, redis_server: RedisServer, clients: list[Client]
) -> None:
    channel = "presence-workers"
    owners: dict[bytes | str, bytes | str] = {}
    async with Redis.from_url(redis_server.url) as raw:
        for _ in range(200):  # /up answered from one worker: wait (bounded) for the other
            if await raw.smembers("pusherd:nodes") == {b"workers-0", b"workers-1"}:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(server.describe("the two workers did not both register"))
        while len(set(owners.values())) < 2:
            if len(clients) >= MAX_SOCKETS:
                raise AssertionError(f"all {len(clients)} sockets landed on one worker")
            client = await Client.open(server)
            clients.append(client)
            await client.subscribe(channel, {"user_id": f"user-{len(clients)}"})
            owners = await raw.hgetall(f"pusherd:s:{APP['id']}:{channel}")
    assert len(owners) == len(clients)
    users = sorted(f"user-{n + 1}" for n in range(len(clients)))
    # the first socket saw every later user join, whichever worker they landed on
    first = clients[0]
    added = [
        json.loads((await first.expect("pusher_internal:member_added", channel))["data"])
        for _ in clients[1:]
    ]
    assert sorted(a["user_id"] for a in added) == users[1:] or len(users) == 1
    with rest(server) as sdk:
        for _ in range(4):  # several requests: both workers answer some
            listed = await asyncio.to_thread(sdk.users_info, channel)
            assert sorted(u["id"] for u in listed["users"]) == users
        await asyncio.to_thread(sdk.trigger, channel, "hello", {"to": "all"})
    for client in clients:
        frame = await client.expect("hello", channel)
        assert json.loads(frame["data"]) == {"to": "all"}


BURST = 40


async def test_a_burst_of_connects_is_spread_over_both_workers(
    server: ServerProcess, redis_server: RedisServer, clients: list[Client]
) -> None:
    # With one listener shared by both processes, whichever wakes first accepts the
    # whole burst; one listener per worker lets the kernel hash connections over both.
    channel = "burst"
    burst = await asyncio.gather(*(Client.open(server) for _ in range(BURST)))
    clients.extend(burst)
    await asyncio.gather(*(client.subscribe(channel) for client in burst))
    async with Redis.from_url(redis_server.url) as raw:
        owners = await raw.hgetall(f"pusherd:s:{APP['id']}:{channel}")
    per_worker = sorted(
        sum(1 for node in owners.values() if node == name) for name in (b"workers-0", b"workers-1")
    )
    assert sum(per_worker) == BURST
    # Binomial(40, 1/2): fewer than 5 on one side happens about once in 10**7 runs.
    assert per_worker[0] >= 5, f"burst split {per_worker}"
