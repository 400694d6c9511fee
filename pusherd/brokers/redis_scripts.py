"""The Redis key layout of ``RedisBroker``, and its Lua scripts (``brokers/lua/*.lua``)
bound to one node as typed calls.

Every key starts with the ``[scaling] prefix`` (``pusherd`` by default; shown as
``pusherd:`` below), so deployments with different prefixes share one Redis without
seeing each other. Channel names cannot contain ``:`` (Pusher protocol, "Channel
naming"; user channels aside, whose id comes last) and prefixes and app ids cannot
either, so ``{app_id}:{channel}`` suffixes never collide. The node-level state below
(``KeySpace.key``) is changed by multi-key scripts together with the node's item set,
and ``reap.lua`` removes a dead node's entries from all of it atomically; on Redis
Cluster its prefix is therefore written as a hash tag (``{pusherd}:s:…``), so every
such key lives in one hash slot and each script (and the one-transaction ``reset``)
runs on one shard::

    pusherd:s:{app}:{channel}     hash socket -> node        subscribers of a channel
    pusherd:chs:{app}             set of channels            occupied channels of an app
    pusherd:pu:{app}:{channel}    hash user -> member json   presence members
    pusherd:pc:{app}:{channel}    hash user -> sockets       presence sockets per user
    pusherd:ps:{app}:{channel}    hash socket -> user        presence sockets
    pusherd:c:{app}               hash socket -> node        connections of an app
    pusherd:u:{app}:{user}        hash socket -> node        signed-in sockets of a user
    pusherd:items:{node}          set of items               what a node added (for reaping)
    pusherd:node:{node}           string with a TTL          a node's heartbeat
    pusherd:listen:{node}         string with a TTL          a node's subscriber is up
    pusherd:nodes                 set of node ids            registered nodes
    pusherd:reaper                string with a TTL          the reaper lock

The rest is never touched by those scripts, so on Redis Cluster it spreads over the
shards; its names are the same on every topology except for the history tag::

    pusherd:cache:{app}:{channel} string with a TTL          last event of a cache channel
    pusherd:mark:{app}:{key}      string with a TTL          marks (``claim``/``release``)
    pusherd:idem:{app}:{key}      see ``redis_history``      idempotency keys
    pusherd:h:{app}:{channel}     see ``redis_history``      history stream
    pusherd:hs:{app}:{channel}    see ``redis_history``      history counter

``KeySpace.single_key`` names the keys a command uses alone (cache, marks, idempotency):
untagged, each lands in its own slot. ``KeySpace.channel_key`` names one channel's history
keys, which one script uses together: on Redis Cluster their ``app:channel`` tail is the
hash tag, e.g. ``pusherd:h:{app-1:history-room}`` and ``pusherd:hs:{app-1:history-room}``
share a slot, while other channels' history lands elsewhere.

A node item is newline-separated fields: ``s app channel socket``, ``p app channel
socket``, ``c app socket`` or ``u app socket user`` (the user id last, since it may hold
any character, newlines included). ``reap.lua`` and ``channels.lua`` rebuild keys from
them and the prefix; that is why all node-level keys share one slot on Redis Cluster.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.resources import files
from typing import Any, TypeAlias

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisClusterException

from pusherd.protocol.presence import Member
from pusherd.types import JSON

__all__ = ["NODES", "REAPER", "KeySpace", "Mirror", "NodeScripts", "key"]

NODES = "pusherd:nodes"
REAPER = "pusherd:reaper"

_NAMES = (
    "add_connection",
    "add_subscriber",
    "channels",
    "heartbeat",
    "join_presence",
    "leave_presence",
    "reap",
    "remove_subscriber",
    "sign_in",
    "sign_out",
)


def key(kind: str, *parts: str) -> str:
    """Return the key ``pusherd:{kind}:{part}:{part}…`` (the default prefix)."""
    return ":".join(("pusherd", kind, *parts))


@dataclass(frozen=True, slots=True)
class KeySpace:
    """The keys of one deployment, all starting with ``prefix`` (see the module docstring).

    * ``key``: state that multi-key scripts (and the reaper) change together,
      ``{base}:{kind}:{part}…``; on Redis Cluster the base is the hash tag ``{prefix}``,
      so all of it is in one slot.
    * ``channel_key``: keys of one channel that one script uses together (history),
      ``{prefix}:{kind}:{app}:{channel}``; on Redis Cluster the ``app:channel`` tail is
      the hash tag, so one channel's keys share a slot and different channels spread.
    * ``single_key``: keys only ever used alone (idempotency, cache channels, marks),
      ``{prefix}:{kind}:{part}…`` on every topology: no tag, so they spread.

    Args:
        prefix: the ``[scaling] prefix`` (no ``:``, brace or space: config checks it).
        cluster: Redis Cluster; single Redis and Sentinel keep untagged names.
    """

    prefix: str = "pusherd"
    cluster: bool = False

    @classmethod
    def for_prefix(cls, prefix: str, cluster: bool = False) -> KeySpace:
        return cls(prefix, cluster)

    @property
    def base(self) -> str:
        """The start of ``key`` names: ``prefix``, or ``{prefix}`` on Redis Cluster."""
        return "{" + self.prefix + "}" if self.cluster else self.prefix

    def key(self, kind: str, *parts: str) -> str:
        return ":".join((self.base, kind, *parts))

    def channel_key(self, kind: str, app: str, channel: str) -> str:
        # the tag opens at this brace (prefix and kind hold none) and closes at the first
        # "}" after it: the same for every kind of one channel, even for a user channel
        # whose id holds braces; app ids and other channel names hold none at all
        tail = "{" + app + ":" + channel + "}" if self.cluster else app + ":" + channel
        return f"{self.prefix}:{kind}:{tail}"

    def single_key(self, kind: str, *parts: str) -> str:
        return ":".join((self.prefix, kind, *parts))

    @property
    def nodes(self) -> str:
        return f"{self.base}:nodes"

    @property
    def reaper(self) -> str:
        return f"{self.base}:reaper"


def _item(kind: str, *fields: str) -> str:
    return "\n".join((kind, *fields))


_Call: TypeAlias = tuple[str, list[str], list[Any]]


@dataclass(slots=True)
class Mirror:
    """What one node added, kept locally to be re-applied after Redis lost it."""

    subscribers: set[tuple[str, str, str]] = field(default_factory=set)
    presence: dict[tuple[str, str, str], Member] = field(default_factory=dict)
    connections: set[tuple[str, str]] = field(default_factory=set)
    users: set[tuple[str, str, str]] = field(default_factory=set)

    def __len__(self) -> int:
        return len(self.subscribers) + len(self.presence) + len(self.connections) + len(self.users)


class NodeScripts:
    """The scripts as calls on behalf of one node (``EVALSHA``, loaded on demand).

    Each script call is built by a ``_<name>`` method returning ``(script, keys, args)``,
    so ``reset`` can queue the same calls in one transaction.
    """

    def __init__(
        self,
        client: Redis | RedisCluster,
        node_id: str,
        node_timeout_ms: int,
        keys: KeySpace = KeySpace(),
        node_client: Callable[[str, int], Redis] | None = None,
    ) -> None:
        source = files("pusherd.brokers") / "lua"
        self._scripts = {
            name: client.register_script((source / f"{name}.lua").read_text("utf-8"))
            for name in _NAMES
        }
        self._client = client
        self._node = node_id
        self._ttl = node_timeout_ms
        self.keys = keys
        # Redis Cluster: a plain client per master, for the one-transaction ``reset``
        # (a cluster pipeline refuses EVALSHA); every key is in one slot, so one master
        self._node_client = node_client
        self._node_clients: dict[tuple[str, int], Redis] = {}
        self._items = keys.key("items", node_id)
        self._beat = [keys.key("node", node_id), keys.nodes]
        self._listen = keys.key("listen", node_id)

    async def _run(self, call: _Call) -> Any:
        name, keys, args = call
        return await self._scripts[name](keys=keys, args=args)

    # channels -----------------------------------------------------------------------
    def _add_subscriber(self, app: str, channel: str, socket: str) -> _Call:
        keys = [self.keys.key("s", app, channel), self.keys.key("chs", app), self._items]
        return (
            "add_subscriber",
            keys,
            [socket, self._node, channel, _item("s", app, channel, socket)],
        )

    async def add_subscriber(self, app: str, channel: str, socket: str) -> int:
        return int(await self._run(self._add_subscriber(app, channel, socket)))

    async def remove_subscriber(self, app: str, channel: str, socket: str) -> int:
        keys = [self.keys.key("s", app, channel), self.keys.key("chs", app), self._items]
        args = [socket, _item("s", app, channel, socket), channel]
        return int(await self._run(("remove_subscriber", keys, args)))

    async def channels(self, app: str, prefix: str) -> list[tuple[str, int, int]]:
        flat = await self._run(
            ("channels", [self.keys.key("chs", app)], [app, prefix, self.keys.base])
        )
        return [
            (flat[i].decode(), int(flat[i + 1]), int(flat[i + 2])) for i in range(0, len(flat), 3)
        ]

    # presence -----------------------------------------------------------------------
    def _join_presence(
        self, app: str, channel: str, socket: str, member: Member, max_members: int
    ) -> _Call:
        args = [socket, member.user_id, member.to_json(), max_members]
        args.append(_item("p", app, channel, socket))
        return "join_presence", self._presence_keys(app, channel), args

    async def join_presence(
        self, app: str, channel: str, socket: str, member: Member, max_members: int
    ) -> tuple[bool, bytes, dict[str, JSON], bool]:
        """Return (is new user, stored member json, members, refused)."""
        call = self._join_presence(app, channel, socket, member, max_members)
        is_new, stored, flat, refused = await self._run(call)
        members = {
            flat[i].decode(): Member.from_json(flat[i + 1]).user_info
            for i in range(0, len(flat), 2)
        }
        return bool(is_new), stored, members, bool(refused)

    async def members(self, app: str, channel: str) -> dict[str, JSON]:
        found = await self._client.hgetall(self.keys.key("pu", app, channel))
        return {
            user.decode() if isinstance(user, bytes) else user: Member.from_json(raw).user_info
            for user, raw in found.items()
        }

    async def leave_presence(self, app: str, channel: str, socket: str) -> bytes | None:
        args = [socket, _item("p", app, channel, socket)]
        gone: bytes | None = await self._run(
            ("leave_presence", self._presence_keys(app, channel), args)
        )
        return gone

    def _presence_keys(self, app: str, channel: str) -> list[str]:
        return [*(self.keys.key(kind, app, channel) for kind in ("pu", "pc", "ps")), self._items]

    # users --------------------------------------------------------------------------
    def _add_connection(self, app: str, socket: str, limit: int) -> _Call:
        keys = [self.keys.key("c", app), self._items]
        return "add_connection", keys, [socket, self._node, limit, _item("c", app, socket)]

    async def add_connection(self, app: str, socket: str, limit: int) -> bool:
        return bool(await self._run(self._add_connection(app, socket, limit)))

    async def remove_connection(self, app: str, socket: str) -> None:
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.hdel(self.keys.key("c", app), socket)
            pipe.srem(self._items, _item("c", app, socket))
            await pipe.execute()

    def _sign_in(self, app: str, user: str, socket: str) -> _Call:
        keys = [self.keys.key("u", app, user), self._items]
        return "sign_in", keys, [socket, self._node, _item("u", app, socket, user)]

    async def sign_in(self, app: str, user: str, socket: str) -> bool:
        return bool(await self._run(self._sign_in(app, user, socket)))

    async def sign_out(self, app: str, user: str, socket: str) -> bool:
        keys = [self.keys.key("u", app, user), self._items]
        return bool(await self._run(("sign_out", keys, [socket, _item("u", app, socket, user)])))

    async def channel_stats(self, app: str, channel: str) -> tuple[int, int]:
        """Return (subscription count, presence user count)."""
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.hlen(self.keys.key("s", app, channel))
            pipe.hlen(self.keys.key("pu", app, channel))
            subscribers, users = await pipe.execute()
        return int(subscribers), int(users)

    async def cache_get(self, app: str, channel: str) -> tuple[bytes, float] | None:
        """Return the cached event and its remaining ttl in seconds, or None."""
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.get(self.keys.single_key("cache", app, channel))
            pipe.pttl(self.keys.single_key("cache", app, channel))
            payload, remaining = await pipe.execute()
        if payload is None or remaining <= 0:
            return None
        return bytes(payload), remaining / 1000

    async def online(self, app: str, users: list[str]) -> set[str]:
        async with self._client.pipeline(transaction=False) as pipe:
            for user in users:
                pipe.exists(self.keys.key("u", app, user))
            found = await pipe.execute()
        return {user for user, exists in zip(users, found, strict=True) if exists}

    # nodes --------------------------------------------------------------------------
    def _heartbeat(self) -> _Call:
        return "heartbeat", self._beat, [self._node, self._ttl]

    async def heartbeat(self) -> bool:
        """Refresh this node's heartbeat; return True if it was not registered."""
        return bool(await self._run(self._heartbeat()))

    async def listening(self, mark: str) -> set[str]:
        """Set this node's listening mark to ``mark`` (the id of the Redis servers its
        subscriber listens on) or clear it (``""``); return every registered node."""
        async with self._client.pipeline(transaction=False) as pipe:
            if mark:
                pipe.set(self._listen, mark, px=self._ttl)
            else:
                pipe.delete(self._listen)
            pipe.smembers(self.keys.nodes)
            *_, nodes = await pipe.execute()
        return {node.decode() for node in nodes}

    async def listeners(self, known: Iterable[str]) -> dict[str, str] | None:
        """Return the listening mark of every peer (``""`` where there is none): each node
        of ``known`` and each node registered now, but this one.

        None while this node is not registered itself: Redis lost the registry (it
        restarted empty) or reaped this node, so peers may be missing from it too.
        """
        members: set[Any] = await self._client.smembers(self.keys.nodes)
        registered = {node.decode() for node in members}
        if self._node not in registered:
            return None
        peers = sorted((registered | set(known)) - {self._node})
        if not peers:
            return {}
        found = await self._client.mget([self.keys.key("listen", node) for node in peers])
        return {
            node: mark.decode() if isinstance(mark, bytes) else (mark or "")
            for node, mark in zip(peers, found, strict=True)
        }

    async def reap(self, node: str = "") -> list[tuple[str, str, str, str | None]]:
        """Drop ``node``'s entries (every dead node's if empty); return what emptied:
        ``(app_id, kind, channel, user_id)`` per member removed or channel vacated."""
        return _events(await self._run(self._reap(node)))

    def _reap(self, node: str) -> _Call:
        return "reap", [self.keys.nodes], [node, self.keys.base]

    async def reset(self, mirror: Mirror) -> list[tuple[str, str, str, str | None]]:
        """Make Redis hold exactly ``mirror`` for this node, in one transaction.

        Returns what dropping this node's previous entries emptied (as ``reap``); that is
        only what really left when ``mirror`` is empty (e.g. a restart under the same id).
        """
        calls = [self._reap(self._node), self._heartbeat()]
        calls += [self._add_subscriber(*entry) for entry in mirror.subscribers]
        calls += [
            self._join_presence(app, channel, socket, member, 0)
            for (app, channel, socket), member in mirror.presence.items()
        ]
        calls += [self._add_connection(app, socket, 0) for app, socket in mirror.connections]
        calls += [self._sign_in(*entry) for entry in mirror.users]
        async with self._transaction_client().pipeline(transaction=True) as pipe:
            for name, keys, args in calls:
                await self._scripts[name](keys=keys, args=args, client=pipe)
            results = await pipe.execute()
        return _events(results[0])

    def _transaction_client(self) -> Redis:
        """The client a multi-script transaction runs on (the slot's master on a cluster)."""
        if not isinstance(self._client, RedisCluster):
            return self._client
        if self._node_client is None:
            raise RuntimeError("NodeScripts on Redis Cluster needs node_client")
        node = self._client.get_node_from_key(self.keys.nodes)
        if node is None:
            raise RedisClusterException("no master serves the slot of pusherd's keys")
        address = (node.host, int(node.port))
        client = self._node_clients.get(address)
        if client is None:
            client = self._node_clients[address] = self._node_client(*address)
        return client

    async def aclose(self) -> None:
        """Close the per-master clients ``reset`` opened (Redis Cluster)."""
        clients, self._node_clients = self._node_clients, {}
        for client in clients.values():
            await client.aclose()


def _events(flat: list[bytes]) -> list[tuple[str, str, str, str | None]]:
    events = []
    for i in range(0, len(flat), 4):
        app, kind, channel, user = (part.decode() for part in flat[i : i + 4])
        events.append((app, kind, channel, user or None))
    return events
