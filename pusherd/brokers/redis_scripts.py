"""The Redis key layout of ``RedisBroker``, and its Lua scripts (``brokers/lua/*.lua``)
bound to one node as typed calls.

Every key starts with ``pusherd:``. Channel names cannot contain ``:`` (Pusher protocol,
"Channel naming"), so ``{app_id}:{channel}`` suffixes never collide::

    pusherd:s:{app}:{channel}     hash socket -> node        subscribers of a channel
    pusherd:chs:{app}             set of channels            occupied channels of an app
    pusherd:pu:{app}:{channel}    hash user -> member json   presence members
    pusherd:pc:{app}:{channel}    hash user -> sockets       presence sockets per user
    pusherd:ps:{app}:{channel}    hash socket -> user        presence sockets
    pusherd:c:{app}               hash socket -> node        connections of an app
    pusherd:u:{app}:{user}        hash socket -> node        signed-in sockets of a user
    pusherd:on:{app}              hash user -> refs          users online: 1 if signed in, +1
                                                             per presence channel joined
    pusherd:cache:{app}:{channel} string with a TTL          last event of a cache channel
    pusherd:mark:{app}:{key}      string with a TTL          marks (``claim``/``release``)
    pusherd:items:{node}          set of items               what a node added (for reaping)
    pusherd:node:{node}           string with a TTL          a node's heartbeat
    pusherd:listen:{node}         string with a TTL          a node's subscriber is up
    pusherd:nodes                 set of node ids            registered nodes
    pusherd:reaper                string with a TTL          the reaper lock

A node item is newline-separated fields: ``s app channel socket``, ``p app channel
socket``, ``c app socket`` or ``u app socket user`` (the user id last, since it may hold
any character, newlines included). ``reap.lua`` rebuilds keys from them, so the scripts
assume a single Redis (not Redis Cluster).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.resources import files
from typing import Any, TypeAlias

from redis.asyncio import Redis

from pusherd.protocol.presence import Member
from pusherd.types import JSON

__all__ = ["NODES", "REAPER", "Mirror", "NodeScripts", "key"]

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
    """Return the key ``pusherd:{kind}:{part}:{part}…``."""
    return ":".join(("pusherd", kind, *parts))


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

    def __init__(self, client: Redis, node_id: str, node_timeout_ms: int) -> None:
        source = files("pusherd.brokers") / "lua"
        self._scripts = {
            name: client.register_script((source / f"{name}.lua").read_text("utf-8"))
            for name in _NAMES
        }
        self._client = client
        self._node = node_id
        self._ttl = node_timeout_ms
        self._items = f"pusherd:items:{node_id}"
        self._beat = [f"pusherd:node:{node_id}", NODES]
        self._listen = f"pusherd:listen:{node_id}"

    async def _run(self, call: _Call) -> Any:
        name, keys, args = call
        return await self._scripts[name](keys=keys, args=args)

    # channels -----------------------------------------------------------------------
    def _add_subscriber(self, app: str, channel: str, socket: str) -> _Call:
        keys = [key("s", app, channel), key("chs", app), self._items]
        return (
            "add_subscriber",
            keys,
            [socket, self._node, channel, _item("s", app, channel, socket)],
        )

    async def add_subscriber(self, app: str, channel: str, socket: str) -> int:
        return int(await self._run(self._add_subscriber(app, channel, socket)))

    async def remove_subscriber(self, app: str, channel: str, socket: str) -> int:
        keys = [key("s", app, channel), key("chs", app), self._items]
        args = [socket, _item("s", app, channel, socket), channel]
        return int(await self._run(("remove_subscriber", keys, args)))

    async def channels(self, app: str, prefix: str) -> list[tuple[str, int, int]]:
        flat = await self._run(("channels", [key("chs", app)], [app, prefix]))
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
        found = await self._client.hgetall(key("pu", app, channel))
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
        keys = [key(kind, app, channel) for kind in ("pu", "pc", "ps")]
        return [*keys, self._items, key("on", app)]

    # users --------------------------------------------------------------------------
    def _add_connection(self, app: str, socket: str, limit: int) -> _Call:
        keys = [key("c", app), self._items]
        return "add_connection", keys, [socket, self._node, limit, _item("c", app, socket)]

    async def add_connection(self, app: str, socket: str, limit: int) -> bool:
        return bool(await self._run(self._add_connection(app, socket, limit)))

    async def remove_connection(self, app: str, socket: str) -> None:
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.hdel(key("c", app), socket)
            pipe.srem(self._items, _item("c", app, socket))
            await pipe.execute()

    def _sign_in(self, app: str, user: str, socket: str) -> _Call:
        keys = [key("u", app, user), self._items, key("on", app)]
        return "sign_in", keys, [socket, self._node, _item("u", app, socket, user), user]

    async def sign_in(self, app: str, user: str, socket: str) -> bool:
        return bool(await self._run(self._sign_in(app, user, socket)))

    async def sign_out(self, app: str, user: str, socket: str) -> bool:
        keys = [key("u", app, user), self._items, key("on", app)]
        args = [socket, _item("u", app, socket, user), user]
        return bool(await self._run(("sign_out", keys, args)))

    async def channel_stats(self, app: str, channel: str) -> tuple[int, int]:
        """Return (subscription count, presence user count)."""
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.hlen(key("s", app, channel))
            pipe.hlen(key("pu", app, channel))
            subscribers, users = await pipe.execute()
        return int(subscribers), int(users)

    async def cache_get(self, app: str, channel: str) -> tuple[bytes, float] | None:
        """Return the cached event and its remaining ttl in seconds, or None."""
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.get(key("cache", app, channel))
            pipe.pttl(key("cache", app, channel))
            payload, remaining = await pipe.execute()
        if payload is None or remaining <= 0:
            return None
        return bytes(payload), remaining / 1000

    async def online(self, app: str, users: list[str]) -> set[str]:
        async with self._client.pipeline(transaction=False) as pipe:
            for user in users:
                pipe.exists(key("u", app, user))
            found = await pipe.execute()
        return {user for user, exists in zip(users, found, strict=True) if exists}

    async def users_online(self, apps: list[str]) -> dict[str, int]:
        """Distinct users signed in or in a presence channel, cluster-wide, per app."""
        async with self._client.pipeline(transaction=False) as pipe:
            for app in apps:
                pipe.hlen(key("on", app))
            counts = await pipe.execute()
        return {app: int(count) for app, count in zip(apps, counts, strict=True)}

    # nodes --------------------------------------------------------------------------
    def _heartbeat(self) -> _Call:
        return "heartbeat", self._beat, [self._node, self._ttl]

    async def heartbeat(self) -> bool:
        """Refresh this node's heartbeat; return True if it was not registered."""
        return bool(await self._run(self._heartbeat()))

    async def listening(self, ok: bool) -> set[str]:
        """Set (``ok``) or clear this node's listening mark; return every registered node."""
        async with self._client.pipeline(transaction=False) as pipe:
            if ok:
                pipe.set(self._listen, 1, px=self._ttl)
            else:
                pipe.delete(self._listen)
            pipe.smembers(NODES)
            *_, nodes = await pipe.execute()
        return {node.decode() for node in nodes}

    async def reap(self, node: str = "") -> list[tuple[str, str, str, str | None]]:
        """Drop ``node``'s entries (every dead node's if empty); return what emptied:
        ``(app_id, kind, channel, user_id)`` per member removed or channel vacated."""
        return _events(await self._run(("reap", [], [node])))

    async def reset(self, mirror: Mirror) -> list[tuple[str, str, str, str | None]]:
        """Make Redis hold exactly ``mirror`` for this node, in one transaction.

        Returns what dropping this node's previous entries emptied (as ``reap``); that is
        only what really left when ``mirror`` is empty (e.g. a restart under the same id).
        """
        calls = [("reap", [], [self._node]), self._heartbeat()]
        calls += [self._add_subscriber(*entry) for entry in mirror.subscribers]
        calls += [
            self._join_presence(app, channel, socket, member, 0)
            for (app, channel, socket), member in mirror.presence.items()
        ]
        calls += [self._add_connection(app, socket, 0) for app, socket in mirror.connections]
        calls += [self._sign_in(*entry) for entry in mirror.users]
        async with self._client.pipeline(transaction=True) as pipe:
            for name, keys, args in calls:
                await self._scripts[name](keys=keys, args=args, client=pipe)
            results = await pipe.execute()
        return _events(results[0])


def _events(flat: list[bytes]) -> list[tuple[str, str, str, str | None]]:
    events = []
    for i in range(0, len(flat), 4):
        app, kind, channel, user = (part.decode() for part in flat[i : i + 4])
        events.append((app, kind, channel, user or None))
    return events
