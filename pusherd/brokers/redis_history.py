"""History and idempotency keys for ``RedisBroker``, shared by every node.

Keys (see ``redis_scripts`` for the rest of the layout)::

    pusherd:h:{app}:{channel}     stream of retained events     fields s, t, p, x
    pusherd:hs:{app}:{channel}    integer                      the channel's last number
    pusherd:idem:{app}:{key}      string with a TTL            "" while in flight, then
                                                               the first answer's body

On Redis Cluster these are spread over the shards rather than kept in the slot of the
node-level state (no other script touches them, the reaper included): a channel's
stream and counter, which ``history_append.lua`` uses together, carry the hash tag of
the channel (``pusherd:h:{app-1:history-room}``, ``pusherd:hs:{app-1:history-room}``),
so they share one slot and different channels' history lands on different shards;
idempotency keys are single-key commands and carry no tag. On one server or Sentinel
the names are as listed above.

``lua/history_append.lua`` numbers, stores and publishes an event in one script, so
the stream and the pub/sub stream agree on every number and its order. On Redis
Cluster the script numbers and stores (its keys share the channel's hash slot) and the
numbered envelope is then sent with ``SPUBLISH`` to the channel's own shard: two
publishers' events may then arrive out of number order, which the broker declares
(``history_in_order``) so that subscribers keep dropping the overlap for longer. The stream is
trimmed by count (``MAXLEN ~``) and age (``MINID ~``) on every append and expires when
the channel stays idle for ``max_age``; reads filter exactly by both.
"""

from __future__ import annotations

from importlib.resources import files

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from pusherd.brokers.base import Envelope, EnvelopeKind
from pusherd.brokers.redis_pubsub import encode_envelope, envelope_rest, pubsub_name
from pusherd.brokers.redis_scripts import KeySpace
from pusherd.protocol.history import Retained

__all__ = ["RedisHistory"]

_SEQUENCED = bytes((int(EnvelopeKind.SEQUENCED),))


class RedisHistory:
    """History streams and idempotency keys on one Redis client."""

    def __init__(
        self,
        client: Redis | RedisCluster,
        keys: KeySpace,
        prefix: str,
        cluster: bool,
    ) -> None:
        self._keys = keys
        self._prefix = prefix
        self._cluster = cluster
        source = files("pusherd.brokers") / "lua"
        self._append = client.register_script((source / "history_append.lua").read_text("utf-8"))
        self._read = client.register_script((source / "history_read.lua").read_text("utf-8"))
        self._client = client

    async def append(self, envelope: Envelope, max_events: int, max_age: float) -> int:
        app, channel = envelope.app_id, envelope.channel
        name = pubsub_name(app, channel, self._prefix)
        seq = int(
            await self._append(
                keys=[
                    self._keys.channel_key("h", app, channel),
                    self._keys.channel_key("hs", app, channel),
                ],
                args=[
                    max_events,
                    _ms(max_age),
                    name,
                    _SEQUENCED,
                    envelope_rest(envelope),
                    envelope.payload,
                    envelope.except_socket_id or "",
                    "0" if self._cluster else "1",
                ],
            )
        )
        if self._cluster:
            numbered = Envelope(
                app,
                channel,
                envelope.payload,
                envelope.except_socket_id,
                EnvelopeKind.SEQUENCED,
                seq,
            )
            await self._client.spublish(name, encode_envelope(numbered))
        return seq

    async def read(
        self, app: str, channel: str, limit: int, max_age: float, since: int
    ) -> list[Retained]:
        flat = await self._read(
            keys=[self._keys.channel_key("h", app, channel)], args=[limit, _ms(max_age), since]
        )
        events = [
            Retained(
                int(flat[i]),
                bytes(flat[i + 2]),
                int(flat[i + 1]) / 1000,
                flat[i + 3].decode() or None,
            )
            for i in range(0, len(flat), 4)
        ]
        events.reverse()
        return events

    async def claim(self, app: str, idem: str, ttl: float) -> bytes | None:
        name = self._keys.single_key("idem", app, idem)
        if await self._client.set(name, b"", nx=True, px=_ms(ttl)):
            return None
        found = await self._client.get(name)
        # gone between the two calls (expired): treat it as in flight, the caller waits
        if found is None:
            return b""
        return found if isinstance(found, bytes) else str(found).encode()

    async def store(self, app: str, idem: str, answer: bytes, ttl: float) -> None:
        await self._client.set(
            self._keys.single_key("idem", app, idem), answer, xx=True, px=_ms(ttl)
        )

    async def release(self, app: str, idem: str) -> None:
        await self._client.delete(self._keys.single_key("idem", app, idem))


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))
