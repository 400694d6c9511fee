"""The Redis key layout of ``RedisBroker`` and its Lua scripts (``brokers/lua/*.lua``).

Every key starts with ``pusherd:``. Channel names cannot contain ``:`` (Pusher protocol,
"Channel naming"), so ``{app_id}:{channel}`` suffixes never collide::

    pusherd:s:{app}:{channel}     hash socket -> node        subscribers of a channel
    pusherd:chs:{app}             set of channels            occupied channels of an app
    pusherd:pu:{app}:{channel}    hash user -> member json   presence members
    pusherd:pc:{app}:{channel}    hash user -> sockets       presence sockets per user
    pusherd:ps:{app}:{channel}    hash socket -> user        presence sockets
    pusherd:c:{app}               hash socket -> node        connections of an app
    pusherd:u:{app}:{user}        hash socket -> node        signed-in sockets of a user
    pusherd:cache:{app}:{channel} string with a TTL          last event of a cache channel
    pusherd:mark:{app}:{key}      string with a TTL          marks (``claim``/``release``)
    pusherd:items:{node}          set of items               what a node added (for reaping)
    pusherd:node:{node}           string with a TTL          a node's heartbeat
    pusherd:nodes                 set of node ids            registered nodes
    pusherd:reaper                string with a TTL          the reaper lock

A node item is newline-separated fields: ``s app channel socket``, ``p app channel
socket``, ``c app socket`` or ``u app user socket``. ``reap.lua`` rebuilds keys from
them, so the scripts assume a single Redis (not Redis Cluster).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

__all__ = ["NODES", "REAPER", "Scripts", "item", "key", "node_key"]

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


def node_key(kind: str, node_id: str) -> str:
    """Return a node's ``items`` set or ``node`` heartbeat key."""
    return f"pusherd:{kind}:{node_id}"


def item(kind: str, *fields: str) -> str:
    """Encode a node item (see the module docstring)."""
    return "\n".join((kind, *fields))


@dataclass(frozen=True, slots=True)
class Scripts:
    """The Lua scripts, registered on one client (``EVALSHA``, loaded on demand)."""

    add_connection: AsyncScript
    add_subscriber: AsyncScript
    channels: AsyncScript
    heartbeat: AsyncScript
    join_presence: AsyncScript
    leave_presence: AsyncScript
    reap: AsyncScript
    remove_subscriber: AsyncScript
    sign_in: AsyncScript
    sign_out: AsyncScript

    @classmethod
    def register(cls, client: Redis) -> Scripts:
        source = files("pusherd.brokers") / "lua"
        scripts: dict[str, Any] = {
            name: client.register_script((source / f"{name}.lua").read_text("utf-8"))
            for name in _NAMES
        }
        return cls(**scripts)
