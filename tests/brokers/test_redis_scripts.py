"""The Lua scripts of ``pusherd.brokers.redis_scripts``, called through ``NodeScripts``.

Each test talks to the session's real redis-server (``redis_url`` empties it first) as
one or more nodes with unique ids, on an app id of its own, and removes what it wrote.
A node "dies" by deleting its heartbeat key, which is what its expiry would do: no test
waits for a TTL to run out. Concurrent calls go through ``asyncio.gather`` on separate
connections, so each script's atomicity is what makes exactly one caller see a change.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from redis.asyncio import Redis
from redis.crc import key_slot

from pusherd.brokers.redis_scripts import NODES, KeySpace, Mirror, NodeScripts, key
from pusherd.protocol.presence import Member
from tests.brokers.conftest import redis_nodes

__all__: list[str] = []

pytestmark = pytest.mark.redis

NODE_TTL_MS = 30_000
# concurrent calls per burst; each may take a connection of its own
BURST = 30


@dataclass
class Cluster:
    """Nodes sharing one Redis, on app ids unique to the test."""

    client: Redis
    tag: str
    nodes: dict[str, NodeScripts] = field(default_factory=dict)
    apps: list[str] = field(default_factory=list)

    def node(self, name: str) -> NodeScripts:
        """The scripts of node ``{tag}-{name}`` (created on first use)."""
        node_id = self.node_id(name)
        if node_id not in self.nodes:
            self.nodes[node_id] = NodeScripts(self.client, node_id, NODE_TTL_MS)
        return self.nodes[node_id]

    def node_id(self, name: str) -> str:
        return f"{self.tag}-{name}"

    def app(self, name: str = "app") -> str:
        app_id = f"{name}-{self.tag}"
        if app_id not in self.apps:
            self.apps.append(app_id)
        return app_id

    async def kill(self, name: str) -> None:
        """Let node ``name``'s heartbeat lapse (as its TTL would)."""
        await self.client.delete(key("node", self.node_id(name)))

    async def items(self, name: str) -> set[bytes | str]:
        found: set[bytes | str] = await self.client.smembers(key("items", self.node_id(name)))
        return found


@pytest.fixture
async def cluster(redis_url: str) -> AsyncIterator[Cluster]:
    client = Redis.from_url(redis_url)
    state = Cluster(client, uuid.uuid4().hex[:10])
    try:
        yield state
    finally:
        for node_id, scripts in state.nodes.items():
            await scripts.reap(node_id)
        for app in state.apps:
            async for name in client.scan_iter(match=f"pusherd:*:{app}*", count=500):
                await client.delete(name)
        await client.aclose()


def item(*fields: str) -> bytes:
    """A node item as ``redis_scripts`` documents it: newline-separated fields."""
    return "\n".join(fields).encode()


# subscribers ----------------------------------------------------------------------------
async def test_only_one_concurrent_subscriber_sees_the_channel_become_occupied(
    cluster: Cluster,
) -> None:
    app = cluster.app()
    a, b = cluster.node("a"), cluster.node("b")
    counts = await asyncio.gather(
        *((a if n % 2 else b).add_subscriber(app, "busy", f"{n}.1") for n in range(BURST))
    )
    assert sorted(counts) == list(range(1, BURST + 1))
    assert counts.count(1) == 1
    assert await cluster.client.smembers(key("chs", app)) == {b"busy"}
    assert await cluster.client.hlen(key("s", app, "busy")) == BURST


async def test_only_one_concurrent_unsubscriber_sees_the_channel_become_vacant(
    cluster: Cluster,
) -> None:
    app = cluster.app()
    a, b = cluster.node("a"), cluster.node("b")
    for n in range(BURST):
        await (a if n % 2 else b).add_subscriber(app, "busy", f"{n}.1")
    counts = await asyncio.gather(
        *((a if n % 2 else b).remove_subscriber(app, "busy", f"{n}.1") for n in range(BURST))
    )
    assert sorted(counts) == list(range(BURST))
    assert counts.count(0) == 1
    assert await cluster.client.smembers(key("chs", app)) == set()
    assert await cluster.client.exists(key("s", app, "busy")) == 0
    assert await cluster.items("a") == set()
    assert await cluster.items("b") == set()


async def test_subscriber_is_tagged_with_its_node_and_counted_once(cluster: Cluster) -> None:
    app = cluster.app()
    a = cluster.node("a")
    assert await a.add_subscriber(app, "c", "1.1") == 1
    assert await a.add_subscriber(app, "c", "1.1") == 1
    assert await cluster.client.hgetall(key("s", app, "c")) == {
        b"1.1": cluster.node_id("a").encode()
    }
    assert await cluster.items("a") == {item("s", app, "c", "1.1")}
    # removing a socket that is not counted leaves the node's items alone
    assert await a.remove_subscriber(app, "c", "9.9") == -1
    assert await cluster.items("a") == {item("s", app, "c", "1.1")}


async def test_channels_skips_stale_index_entries_and_matches_the_prefix_literally(
    cluster: Cluster,
) -> None:
    app = cluster.app()
    a = cluster.node("a")
    await a.add_subscriber(app, "private-a.b", "1.1")
    await a.add_subscriber(app, "private-aXb", "1.2")  # "." would match "X" as a Lua pattern
    await cluster.client.sadd(key("chs", app), "private-a.stale")  # indexed, nobody in it
    assert await a.channels(app, "private-a.") == [("private-a.b", 1, 0)]
    assert sorted(await a.channels(app, "")) == [("private-a.b", 1, 0), ("private-aXb", 1, 0)]


# presence -------------------------------------------------------------------------------
async def test_concurrent_joins_of_one_user_report_the_user_new_exactly_once(
    cluster: Cluster,
) -> None:
    app = cluster.app()
    a, b = cluster.node("a"), cluster.node("b")
    joins = await asyncio.gather(
        *(
            (a if n % 2 else b).join_presence(
                app, "presence-r", f"{n}.1", Member("u1", {"n": n}), 0
            )
            for n in range(BURST)
        )
    )
    assert [is_new for is_new, _, _, _ in joins].count(True) == 1
    assert not any(refused for _, _, _, refused in joins)
    # whoever was first wrote the member json; everyone gets that one back
    assert len({stored for _, stored, _, _ in joins}) == 1
    assert await cluster.client.hgetall(key("pc", app, "presence-r")) == {
        b"u1": str(BURST).encode()
    }


async def test_concurrent_joins_admit_exactly_max_members_and_refused_ones_leave_no_trace(
    cluster: Cluster,
) -> None:
    app = cluster.app()
    a, b = cluster.node("a"), cluster.node("b")
    limit = 5
    joins = await asyncio.gather(
        *(
            (a if n % 2 else b).join_presence(app, "presence-r", f"{n}.1", Member(f"u{n}"), limit)
            for n in range(BURST)
        )
    )
    admitted = [n for n, (_, _, _, refused) in enumerate(joins) if not refused]
    assert len(admitted) == limit
    assert all(joins[n][0] for n in admitted)  # every admitted user is a new one
    assert set(await a.members(app, "presence-r")) == {f"u{n}" for n in admitted}
    assert await cluster.client.hlen(key("ps", app, "presence-r")) == limit
    assert len(await cluster.items("a") | await cluster.items("b")) == limit
    refused = next(n for n in range(BURST) if n not in admitted)
    assert await (a if refused % 2 else b).leave_presence(app, "presence-r", f"{refused}.1") is None


async def test_leave_reports_the_user_gone_only_when_their_last_socket_leaves(
    cluster: Cluster,
) -> None:
    app = cluster.app()
    a, b = cluster.node("a"), cluster.node("b")
    first = Member("u1", {"first": True})
    await b.join_presence(app, "presence-r", "0.1", first, 0)  # socket n is on a if n is odd
    for n in range(1, BURST):
        await (a if n % 2 else b).join_presence(app, "presence-r", f"{n}.1", Member("u1"), 0)
    gone = await asyncio.gather(
        *((a if n % 2 else b).leave_presence(app, "presence-r", f"{n}.1") for n in range(BURST))
    )
    assert [g for g in gone if g is not None] == [first.to_json()]
    for kind in ("pu", "pc", "ps"):
        assert await cluster.client.exists(key(kind, app, "presence-r")) == 0
    assert await cluster.items("a") == set()
    assert await cluster.items("b") == set()


async def test_rejoining_a_socket_as_another_user_silently_ends_the_previous_membership(
    cluster: Cluster,
) -> None:
    app = cluster.app()
    a = cluster.node("a")
    await a.join_presence(app, "presence-r", "1.1", Member("u1", "one"), 0)
    is_new, stored, members, refused = await a.join_presence(
        app, "presence-r", "1.1", Member("u2", "two"), 0
    )
    assert (is_new, refused) == (True, False)
    assert stored == Member("u2", "two").to_json()
    assert members == {"u2": "two"}
    assert await cluster.client.hgetall(key("pc", app, "presence-r")) == {b"u2": b"1"}
    assert await cluster.items("a") == {item("p", app, "presence-r", "1.1")}
    assert await a.leave_presence(app, "presence-r", "1.1") == Member("u2", "two").to_json()


# connections and users ------------------------------------------------------------------
async def test_concurrent_connections_never_exceed_the_app_limit(cluster: Cluster) -> None:
    app = cluster.app()
    a, b = cluster.node("a"), cluster.node("b")
    limit = 7
    added = await asyncio.gather(
        *((a if n % 2 else b).add_connection(app, f"{n}.1", limit) for n in range(BURST))
    )
    assert added.count(True) == limit
    assert await cluster.client.hlen(key("c", app)) == limit
    assert len(await cluster.items("a") | await cluster.items("b")) == limit


async def test_concurrent_sign_ins_and_outs_report_online_and_offline_exactly_once(
    cluster: Cluster,
) -> None:
    app = cluster.app()
    a, b = cluster.node("a"), cluster.node("b")
    came_online = await asyncio.gather(
        *((a if n % 2 else b).sign_in(app, "u1", f"{n}.1") for n in range(BURST))
    )
    assert came_online.count(True) == 1
    assert await a.online(app, ["u1", "u2"]) == {"u1"}
    went_offline = await asyncio.gather(
        *((a if n % 2 else b).sign_out(app, "u1", f"{n}.1") for n in range(BURST))
    )
    assert went_offline.count(True) == 1
    assert await b.online(app, ["u1"]) == set()
    assert await cluster.items("a") == set()
    assert await cluster.items("b") == set()


# heartbeat and reaper -------------------------------------------------------------------
async def test_heartbeat_reports_registration_and_sets_the_node_ttl(cluster: Cluster) -> None:
    a = cluster.node("a")
    node_key = key("node", cluster.node_id("a"))
    assert await a.heartbeat() is True
    assert await a.heartbeat() is False
    assert 0 < await cluster.client.pttl(node_key) <= NODE_TTL_MS
    assert cluster.node_id("a").encode() in await cluster.client.smembers(NODES)
    # reaped while alive: the next beat says the node must register its state again
    await a.reap(cluster.node_id("a"))
    assert await cluster.client.exists(node_key) == 0
    assert await a.heartbeat() is True


async def _populate(cluster: Cluster, app: str) -> None:
    """Node a and b share "presence-shared" (u-both on both); b alone has the rest."""
    a, b = cluster.node("a"), cluster.node("b")
    await a.heartbeat()
    await b.heartbeat()
    for node, socket in ((a, "a.1"), (b, "b.1")):
        await node.add_subscriber(app, "presence-shared", socket)
        await node.join_presence(app, "presence-shared", socket, Member("u-both"), 0)
        await node.add_connection(app, socket, 0)
        await node.sign_in(app, "u-both", socket)
    await b.add_subscriber(app, "presence-shared", "b.2")
    await b.join_presence(app, "presence-shared", "b.2", Member("u-b"), 0)
    await b.add_subscriber(app, "solo-b", "b.1")
    await b.sign_in(app, "u-b", "b.2")


async def test_reaper_removes_only_the_dead_nodes_entries(cluster: Cluster) -> None:
    app = cluster.app()
    await _populate(cluster, app)
    a = cluster.node("a")
    a_items = await cluster.items("a")
    await cluster.kill("b")
    events = await a.reap()
    assert sorted(events) == [
        (app, "channel_vacated", "solo-b", None),
        (app, "member_removed", "presence-shared", "u-b"),
    ]
    assert await a.channels(app, "") == [("presence-shared", 1, 1)]
    assert await a.members(app, "presence-shared") == {"u-both": None}
    assert await cluster.client.hgetall(key("pc", app, "presence-shared")) == {b"u-both": b"1"}
    assert await cluster.client.hkeys(key("c", app)) == [b"a.1"]
    assert await a.online(app, ["u-both", "u-b"]) == {"u-both"}
    assert await cluster.client.hkeys(key("u", app, "u-both")) == [b"a.1"]
    # the live node keeps everything, the dead one is forgotten entirely
    assert await cluster.items("a") == a_items
    assert await cluster.items("b") == set()
    assert await cluster.client.smembers(NODES) == {cluster.node_id("a").encode()}


async def test_reaper_reports_what_it_removed_only_once(cluster: Cluster) -> None:
    app = cluster.app()
    await _populate(cluster, app)
    a = cluster.node("a")
    await cluster.kill("b")
    assert len(await a.reap()) == 2
    assert await a.reap() == []
    assert await a.reap(cluster.node_id("b")) == []
    assert await a.members(app, "presence-shared") == {"u-both": None}


async def test_reaper_spares_live_nodes_and_drops_a_named_one_at_once(cluster: Cluster) -> None:
    app = cluster.app()
    await _populate(cluster, app)
    a, b = cluster.node("a"), cluster.node("b")
    await b.listening("server-1")
    assert await a.reap() == []  # every heartbeat is alive
    assert sorted(await a.channels(app, "")) == [("presence-shared", 3, 2), ("solo-b", 1, 0)]
    # a graceful close drops the node although its heartbeat has not expired
    assert len(await a.reap(cluster.node_id("b"))) == 2
    for name in ("node", "listen", "items"):
        assert await cluster.client.exists(key(name, cluster.node_id("b"))) == 0
    assert await cluster.client.smembers(NODES) == {cluster.node_id("a").encode()}


async def test_reaper_reports_members_leaving_before_their_channel_is_vacated(
    cluster: Cluster,
) -> None:
    app = cluster.app()
    b = cluster.node("b")
    await b.heartbeat()
    for n in range(5):
        channel = f"presence-{n}"
        await b.add_subscriber(app, channel, f"b.{n}")
        await b.join_presence(app, channel, f"b.{n}", Member(f"u{n}"), 0)
    await cluster.kill("b")
    events = await cluster.node("a").reap()
    kinds = [kind for _, kind, _, _ in events]
    assert kinds == ["member_removed"] * 5 + ["channel_vacated"] * 5
    assert {channel for _, _, channel, _ in events} == {f"presence-{n}" for n in range(5)}


# reset ----------------------------------------------------------------------------------
async def test_reset_makes_redis_hold_exactly_the_mirror(cluster: Cluster) -> None:
    app = cluster.app()
    a = cluster.node("a")
    await a.heartbeat()
    await a.add_subscriber(app, "kept", "a.1")
    await a.add_subscriber(app, "dropped", "a.2")
    await a.join_presence(app, "presence-r", "a.2", Member("u-gone"), 0)
    await a.sign_in(app, "u-gone", "a.2")
    await cluster.client.delete(NODES)  # as if Redis had lost the registration
    mirror = Mirror(
        subscribers={(app, "kept", "a.1"), (app, "presence-r", "a.1")},
        presence={(app, "presence-r", "a.1"): Member("u-new", "info")},
        connections={(app, "a.1")},
        users={(app, "u-new", "a.1")},
    )
    events = await a.reset(mirror)
    # what dropping the previous entries emptied, including what the mirror puts back
    assert sorted(events) == [
        (app, "channel_vacated", "dropped", None),
        (app, "channel_vacated", "kept", None),
        (app, "member_removed", "presence-r", "u-gone"),
    ]
    assert sorted(await a.channels(app, "")) == [("kept", 1, 0), ("presence-r", 1, 1)]
    assert await a.members(app, "presence-r") == {"u-new": "info"}
    assert await a.online(app, ["u-gone", "u-new"]) == {"u-new"}
    assert await cluster.client.hkeys(key("c", app)) == [b"a.1"]
    assert await cluster.items("a") == {
        item("s", app, "kept", "a.1"),
        item("s", app, "presence-r", "a.1"),
        item("p", app, "presence-r", "a.1"),
        item("c", app, "a.1"),
        item("u", app, "a.1", "u-new"),
    }
    assert await a.heartbeat() is False  # reset registered the node again


async def test_reset_restores_the_mirror_past_member_and_connection_limits(
    cluster: Cluster,
) -> None:
    app = cluster.app()
    a, b = cluster.node("a"), cluster.node("b")
    assert not (await b.join_presence(app, "presence-r", "b.1", Member("u-b"), 1))[3]
    assert await b.add_connection(app, "b.1", 1)
    mirror = Mirror(
        presence={(app, "presence-r", "a.1"): Member("u-a")}, connections={(app, "a.1")}
    )
    assert await a.reset(mirror) == []
    assert set(await a.members(app, "presence-r")) == {"u-a", "u-b"}
    assert await cluster.client.hlen(key("c", app)) == 2


# marks and key layout -------------------------------------------------------------------
async def test_marks_are_set_if_absent_with_an_expiry_and_one_claimer_wins(
    redis_url: str, cluster: Cluster
) -> None:
    app = cluster.app()
    mark = key("mark", app, "webhook:1")
    async with redis_nodes(redis_url) as make:
        node, _ = await make(cluster.node_id("marks"))
        won = await asyncio.gather(*(node.claim(app, "webhook:1", 30.0) for _ in range(BURST)))
        assert won.count(True) == 1
        assert 0 < await cluster.client.pttl(mark) <= 30_000
        # a failed claim neither replaces nor extends the mark
        await cluster.client.pexpire(mark, 10_000)
        assert not await node.claim(app, "webhook:1", 600.0)
        assert 0 < await cluster.client.pttl(mark) <= 10_000
        assert await node.release(app, "webhook:1")
        assert await cluster.client.exists(mark) == 0


async def test_keys_are_namespaced_per_app(cluster: Cluster) -> None:
    one, two = cluster.app("one"), cluster.app("two")
    a = cluster.node("a")
    for app, count in ((one, 1), (two, 2)):
        for n in range(count):
            socket = f"{n}.1"
            assert await a.add_subscriber(app, "presence-r", socket) == n + 1
            assert (await a.join_presence(app, "presence-r", socket, Member("u1"), 1))[0] == (
                n == 0
            )
            assert await a.add_connection(app, socket, 1) is (n == 0)
            assert await a.sign_in(app, "u1", socket) is (n == 0)
    assert await a.channels(one, "") == [("presence-r", 1, 1)]
    assert await a.channels(two, "") == [("presence-r", 2, 1)]
    for app in (one, two):
        expected = {key(kind, app, "presence-r") for kind in ("s", "pu", "pc", "ps")} | {
            key("chs", app),
            key("c", app),
            key("u", app, "u1"),
        }
        found = {name.decode() async for name in cluster.client.scan_iter(match=f"*{app}*")}
        assert found == expected
    assert await a.leave_presence(one, "presence-r", "0.1") is not None
    assert await a.members(two, "presence-r") == {"u1": None}


# user ids with newlines ----------------------------------------------------------------
async def test_reaper_signs_out_a_user_whose_id_contains_a_newline(cluster: Cluster) -> None:
    app = cluster.app()
    b = cluster.node("b")
    await b.heartbeat()
    user = "alice\nadmin"  # pusher:signin accepts any non-empty string id
    assert await b.sign_in(app, user, "b.1")
    await cluster.kill("b")
    await cluster.node("a").reap()
    assert await cluster.node("a").online(app, [user]) == set()


def test_keyspace_prefixes_every_key_and_tags_it_on_redis_cluster() -> None:
    plain = KeySpace.for_prefix("staging")
    tagged = KeySpace.for_prefix("staging", cluster=True)
    assert plain.key("s", "app", "chan") == "staging:s:app:chan"
    assert (plain.nodes, plain.reaper) == ("staging:nodes", "staging:reaper")
    # one hash tag for every key: Redis Cluster puts them all in the slot of "staging"
    assert tagged.key("pu", "app", "presence-r") == "{staging}:pu:app:presence-r"
    assert tagged.nodes == "{staging}:nodes"
    assert KeySpace().key("c", "app") == key("c", "app") == "pusherd:c:app"


def test_keyspace_spreads_history_and_single_keys_on_redis_cluster_only() -> None:
    plain = KeySpace.for_prefix("staging")
    tagged = KeySpace.for_prefix("staging", cluster=True)
    # one server or Sentinel: the names of every earlier release
    assert plain.channel_key("h", "app", "history-r") == "staging:h:app:history-r"
    assert plain.channel_key("hs", "app", "history-r") == "staging:hs:app:history-r"
    assert plain.single_key("idem", "app", "k:1") == "staging:idem:app:k:1"
    assert plain.single_key("cache", "app", "cache-r") == "staging:cache:app:cache-r"
    # Redis Cluster: one channel's history keys share the channel's tag, single keys have none
    assert tagged.channel_key("h", "app", "history-r") == "staging:h:{app:history-r}"
    assert tagged.channel_key("hs", "app", "history-r") == "staging:hs:{app:history-r}"
    assert tagged.single_key("mark", "app", "webhook:1") == "staging:mark:app:webhook:1"
    assert tagged.single_key("idem", "app", "k:1") == plain.single_key("idem", "app", "k:1")
    assert (tagged.prefix, tagged.base) == ("staging", "{staging}")


@pytest.mark.parametrize("channel", ["history-r", "#server-to-user-a}b", "#server-to-user-{a"])
def test_keyspace_puts_one_channels_history_keys_in_one_slot_on_redis_cluster(
    channel: str,
) -> None:
    # a user channel's id may hold braces; the tag still covers the same tail for both
    keys = KeySpace.for_prefix("staging", cluster=True)
    stream, counter = (keys.channel_key(kind, "app", channel).encode() for kind in ("h", "hs"))
    assert key_slot(stream) == key_slot(counter)
    others = {key_slot(keys.channel_key("h", "app", f"history-{n}").encode()) for n in range(8)}
    assert len(others) > 1  # different channels, different slots
