"""The single-process broker: fan-out is a direct call, state lives in dicts."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pusherd.brokers.base import (
    ChannelStats,
    DeliverFn,
    Envelope,
    EnvelopeKind,
    PresenceJoin,
    ReapedFn,
)
from pusherd.protocol.history import HistoryStore, IdempotencyCache, Retained
from pusherd.protocol.presence import Member
from pusherd.types import JSON

if TYPE_CHECKING:
    from pusherd.metrics import Metrics

__all__ = ["MemoryBroker"]


@dataclass(slots=True)
class _Presence:
    # user_id -> member (first socket's info wins); socket_id -> user_id
    members: dict[str, Member] = field(default_factory=dict)
    sockets: dict[str, str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)


class MemoryBroker:
    """Everything in one process. The default; needs no external service."""

    # No method ever waits, so callers may run them without a task (server/eager.py),
    # and there is no node-level subscription to keep.
    #: No call ever waits, so the server runs actions without a task each.
    never_waits = True
    #: One process: every local subscriber gets every envelope without subscribing.
    node_subscriptions = False
    #: Numbering and delivering a history event is one synchronous step.
    history_in_order = True

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        metrics: Metrics | None = None,
        **_: object,
    ) -> None:
        self._clock = clock
        self._metrics = metrics
        self._wall_clock = wall_clock
        self.history_store = HistoryStore()
        self._idempotency = IdempotencyCache()
        self._deliver: DeliverFn | None = None
        self._subscribers: dict[tuple[str, str], set[str]] = {}
        self._presence: dict[tuple[str, str], _Presence] = {}
        self._cache: dict[tuple[str, str], tuple[bytes, float]] = {}
        self._connections: dict[str, set[str]] = {}
        self._users: dict[tuple[str, str], set[str]] = {}
        self._marks: dict[tuple[str, str], float] = {}

    def __repr__(self) -> str:
        return "MemoryBroker()"

    # Fanout -----------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        return True

    async def start(self, deliver: DeliverFn, reaped: ReapedFn | None = None) -> None:
        self._deliver = deliver

    async def close(self) -> None:
        self._deliver = None

    async def publish(self, envelope: Envelope) -> None:
        if self._deliver is not None:
            self._deliver(envelope)

    async def subscribe(self, app_id: str, channel: str) -> None:
        return None

    async def unsubscribe(self, app_id: str, channel: str) -> None:
        return None

    # ChannelState -----------------------------------------------------------------
    async def add_subscriber(self, app_id: str, channel: str, socket_id: str) -> int:
        sockets = self._subscribers.setdefault((app_id, channel), set())
        sockets.add(socket_id)
        return len(sockets)

    async def remove_subscriber(self, app_id: str, channel: str, socket_id: str) -> int:
        key = (app_id, channel)
        sockets = self._subscribers.get(key)
        if sockets is None or socket_id not in sockets:
            return -1
        sockets.discard(socket_id)
        if not sockets:
            del self._subscribers[key]
            return 0
        return len(sockets)

    async def channels(self, app_id: str, prefix: str = "") -> dict[str, ChannelStats]:
        result = {}
        for (app, channel), sockets in self._subscribers.items():
            if app == app_id and channel.startswith(prefix):
                result[channel] = self._stats(app_id, channel, len(sockets))
        return result

    async def channel_stats(self, app_id: str, channel: str) -> ChannelStats:
        sockets = self._subscribers.get((app_id, channel))
        return self._stats(app_id, channel, len(sockets) if sockets else 0)

    def _stats(self, app_id: str, channel: str, count: int) -> ChannelStats:
        presence = self._presence.get((app_id, channel))
        return ChannelStats(count, len(presence.members) if presence else 0)

    async def cache_set(self, app_id: str, channel: str, payload: bytes, ttl: float) -> None:
        self._cache[(app_id, channel)] = (payload, self._clock() + ttl)

    async def cache_get(self, app_id: str, channel: str) -> tuple[bytes, float] | None:
        entry = self._cache.get((app_id, channel))
        if entry is None:
            return None
        remaining = entry[1] - self._clock()
        if remaining <= 0:
            del self._cache[(app_id, channel)]
            return None
        return entry[0], remaining

    # PresenceState ----------------------------------------------------------------
    async def join_presence(
        self, app_id: str, channel: str, socket_id: str, member: Member, max_members: int
    ) -> PresenceJoin:
        presence = self._presence.setdefault((app_id, channel), _Presence())
        user_id = member.user_id
        stored = presence.members.get(user_id)
        if stored is None:
            if max_members and len(presence.members) >= max_members:
                if not presence.members:
                    del self._presence[(app_id, channel)]
                return PresenceJoin(False, member, self._infos(presence), refused=True)
            presence.members[user_id] = stored = member
        previous = presence.sockets.get(socket_id)
        if previous is not None and previous != user_id:
            self._drop_socket(presence, socket_id)
        is_new = presence.counts.get(user_id, 0) == 0
        if previous != user_id:
            presence.sockets[socket_id] = user_id
            presence.counts[user_id] = presence.counts.get(user_id, 0) + 1
        return PresenceJoin(is_new, stored, self._infos(presence))

    async def leave_presence(self, app_id: str, channel: str, socket_id: str) -> Member | None:
        key = (app_id, channel)
        presence = self._presence.get(key)
        if presence is None or socket_id not in presence.sockets:
            return None
        gone = self._drop_socket(presence, socket_id)
        if not presence.members:
            del self._presence[key]
        return gone

    @staticmethod
    def _drop_socket(presence: _Presence, socket_id: str) -> Member | None:
        user_id = presence.sockets.pop(socket_id)
        left = presence.counts[user_id] - 1
        if left:
            presence.counts[user_id] = left
            return None
        del presence.counts[user_id]
        return presence.members.pop(user_id)

    async def members(self, app_id: str, channel: str) -> dict[str, JSON]:
        presence = self._presence.get((app_id, channel))
        return self._infos(presence) if presence else {}

    @staticmethod
    def _infos(presence: _Presence) -> dict[str, JSON]:
        return {user_id: m.user_info for user_id, m in presence.members.items()}

    # UserState --------------------------------------------------------------------
    async def add_connection(self, app_id: str, socket_id: str, limit: int) -> bool:
        sockets = self._connections.setdefault(app_id, set())
        if limit and len(sockets) >= limit and socket_id not in sockets:
            return False
        sockets.add(socket_id)
        return True

    async def remove_connection(self, app_id: str, socket_id: str) -> None:
        sockets = self._connections.get(app_id)
        if sockets is not None:
            sockets.discard(socket_id)

    async def connection_count(self, app_id: str) -> int:
        return len(self._connections.get(app_id, ()))

    async def sign_in(self, app_id: str, user_id: str, socket_id: str) -> bool:
        sockets = self._users.setdefault((app_id, user_id), set())
        was_offline = not sockets
        sockets.add(socket_id)
        return was_offline

    async def sign_out(self, app_id: str, user_id: str, socket_id: str) -> bool:
        key = (app_id, user_id)
        sockets = self._users.get(key)
        if not sockets or socket_id not in sockets:
            return False
        sockets.discard(socket_id)
        if sockets:
            return False
        del self._users[key]
        return True

    async def online(self, app_id: str, user_ids: Iterable[str]) -> set[str]:
        return {user_id for user_id in user_ids if self._users.get((app_id, user_id))}

    # Marks ------------------------------------------------------------------------
    async def claim(self, app_id: str, key: str, ttl: float) -> bool:
        now = self._clock()
        expires = self._marks.get((app_id, key))
        if expires is not None and expires > now:
            return False
        self._marks[(app_id, key)] = now + ttl
        if len(self._marks) > 10_000:
            self._marks = {k: v for k, v in self._marks.items() if v > now}
        return True

    async def release(self, app_id: str, key: str) -> bool:
        expires = self._marks.pop((app_id, key), None)
        return expires is not None and expires > self._clock()

    # History ----------------------------------------------------------------------
    async def publish_history(
        self, envelope: Envelope, max_events: int, max_age: float, max_bytes: int
    ) -> int:
        seq = self.history_store.append(
            envelope.app_id,
            envelope.channel,
            envelope.payload,
            envelope.except_socket_id,
            max_events,
            max_age,
            max_bytes,
            self._wall_clock(),
        )
        if self._metrics is not None:
            self._metrics.history_retained(
                envelope.app_id, *self.history_store.stats(envelope.app_id)
            )
        if self._deliver is not None:
            self._deliver(
                Envelope(
                    envelope.app_id,
                    envelope.channel,
                    envelope.payload,
                    envelope.except_socket_id,
                    EnvelopeKind.SEQUENCED,
                    seq,
                )
            )
        return seq

    async def history(
        self, app_id: str, channel: str, limit: int, max_age: float, since: int = 0
    ) -> list[Retained]:
        now = self._wall_clock()
        events = self.history_store.read(app_id, channel, since, limit, now)
        cutoff = now - max_age
        return [e for e in events if e.published_at >= cutoff]

    # Idempotency ------------------------------------------------------------------
    async def idempotency_claim(self, app_id: str, key: str, ttl: float) -> bytes | None:
        return self._idempotency.claim(app_id, key, ttl, self._clock())

    async def idempotency_store(self, app_id: str, key: str, answer: bytes, ttl: float) -> None:
        self._idempotency.store(app_id, key, answer, ttl, self._clock())

    async def idempotency_release(self, app_id: str, key: str) -> None:
        self._idempotency.release(app_id, key)
