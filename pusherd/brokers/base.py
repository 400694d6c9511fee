"""The broker contract: cluster-wide fan-out plus the shared state behind it.

A broker is the cluster's truth. ``MemoryBroker`` serves one process; ``RedisBroker``
lets several nodes share channels, presence, counts and caches. The server layer
never asks other nodes anything: it asks the broker.

Counting methods return the cluster-wide value *after* the change, and they are
atomic, so exactly one node sees each 0↔1 transition (``channel_occupied``,
``channel_vacated``, ``member_added``, ``member_removed``, watchlist online/offline):
that node, and only it, emits the event and the webhook.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import IntEnum
from typing import Protocol

from pusherd.protocol.history import Retained
from pusherd.protocol.presence import Member
from pusherd.types import JSON

__all__ = [
    "Broker",
    "ChannelState",
    "ChannelStats",
    "DeliverFn",
    "Envelope",
    "EnvelopeKind",
    "Fanout",
    "History",
    "Idempotency",
    "Marks",
    "PresenceJoin",
    "PresenceState",
    "Reaped",
    "ReapedFn",
    "UserState",
]


class EnvelopeKind(IntEnum):
    MESSAGE = 0  # write ``payload`` to every local socket on the channel
    TERMINATE = 1  # close every local socket on the channel with 4009 (terminate_connections)
    # a MESSAGE retained in the channel's history, carrying its sequence number (``seq``):
    # a kind of its own so that the hot path for MESSAGE does not even read ``seq``
    SEQUENCED = 2


@dataclass(frozen=True, slots=True)
class Envelope:
    """One message for one channel of one app, already serialized for clients.

    ``payload`` is the exact JSON text a client receives; it is encoded once by the
    publisher and framed once per node.
    """

    app_id: str
    channel: str
    payload: bytes
    except_socket_id: str | None = None
    kind: EnvelopeKind = EnvelopeKind.MESSAGE
    seq: int = 0  # the history sequence number (SEQUENCED envelopes only)


DeliverFn = Callable[[Envelope], None]


@dataclass(frozen=True, slots=True)
class Reaped:
    """State a dead node left behind and the broker removed (see ``Fanout.start``).

    ``kind`` is ``"member_removed"`` (``user_id`` set) or ``"channel_vacated"``.
    """

    app_id: str
    kind: str
    channel: str
    user_id: str | None = None


ReapedFn = Callable[[Reaped], None]


@dataclass(frozen=True, slots=True)
class ChannelStats:
    subscription_count: int
    user_count: int = 0


@dataclass(frozen=True, slots=True)
class PresenceJoin:
    """Result of ``join_presence``.

    Attributes:
        is_new_user: this socket is the user's first in the channel, cluster-wide.
        member: the member as stored (the first socket's ``user_info`` wins).
        members: every member after the join, ``user_id`` → ``user_info``.
        refused: the channel is full (``max_members`` reached and the user is new).
    """

    is_new_user: bool
    member: Member
    members: dict[str, JSON]
    refused: bool = False


class Fanout(Protocol):
    """Moves envelopes between nodes."""

    @property
    def ready(self) -> bool:
        """Whether the backend is reachable (``/ready`` reports 503 otherwise)."""
        ...

    async def start(self, deliver: DeliverFn, reaped: ReapedFn | None = None) -> None:
        """Connect, and from now on call ``deliver`` for envelopes on subscribed channels.

        ``reaped`` is told about every member and channel a dead node left behind, once
        cluster-wide, so the caller can announce ``member_removed``/``channel_vacated``.
        """
        ...

    async def close(self) -> None:
        """Remove this node's state from the cluster and disconnect."""
        ...

    async def publish(self, envelope: Envelope) -> None:
        """Send ``envelope`` to every node that subscribed to its channel (this one too)."""
        ...

    async def subscribe(self, app_id: str, channel: str) -> None:
        """Receive envelopes for ``channel``; called on the first local subscriber."""
        ...

    async def unsubscribe(self, app_id: str, channel: str) -> None:
        """Stop receiving envelopes for ``channel``; called when the last local one left."""
        ...


class ChannelState(Protocol):
    async def add_subscriber(self, app_id: str, channel: str, socket_id: str) -> int:
        """Count ``socket_id`` on ``channel``; return the cluster-wide count after."""
        ...

    async def remove_subscriber(self, app_id: str, channel: str, socket_id: str) -> int:
        """Uncount ``socket_id``; return the count after (-1 if it was not counted)."""
        ...

    async def channels(self, app_id: str, prefix: str = "") -> dict[str, ChannelStats]:
        """Return every occupied channel whose name starts with ``prefix``."""
        ...

    async def channel_stats(self, app_id: str, channel: str) -> ChannelStats: ...

    async def cache_set(self, app_id: str, channel: str, payload: bytes, ttl: float) -> None:
        """Remember the last event of a cache channel for ``ttl`` seconds."""
        ...

    async def cache_get(self, app_id: str, channel: str) -> tuple[bytes, float] | None:
        """Return the cached event and its remaining ttl in seconds, or None."""
        ...


class PresenceState(Protocol):
    async def join_presence(
        self, app_id: str, channel: str, socket_id: str, member: Member, max_members: int
    ) -> PresenceJoin: ...

    async def leave_presence(self, app_id: str, channel: str, socket_id: str) -> Member | None:
        """Forget ``socket_id``; return its member if that was the user's last socket."""
        ...

    async def members(self, app_id: str, channel: str) -> dict[str, JSON]: ...


class UserState(Protocol):
    async def add_connection(self, app_id: str, socket_id: str, limit: int) -> bool:
        """Count a connection; return False (and count nothing) if ``limit`` > 0 is reached."""
        ...

    async def remove_connection(self, app_id: str, socket_id: str) -> None: ...

    async def connection_count(self, app_id: str) -> int: ...

    async def sign_in(self, app_id: str, user_id: str, socket_id: str) -> bool:
        """Record a signed-in socket; return True if the user just came online."""
        ...

    async def sign_out(self, app_id: str, user_id: str, socket_id: str) -> bool:
        """Forget a signed-in socket; return True if the user just went offline."""
        ...

    async def online(self, app_id: str, user_ids: Iterable[str]) -> set[str]:
        """Return which of ``user_ids`` are signed in somewhere."""
        ...


class Marks(Protocol):
    """Short-lived cluster-wide flags (webhook delays, de-duplication)."""

    async def claim(self, app_id: str, key: str, ttl: float) -> bool:
        """Set ``key`` if it is not set; return whether this call set it."""
        ...

    async def release(self, app_id: str, key: str) -> bool:
        """Delete ``key``; return whether it was set."""
        ...


class History(Protocol):
    """Recent events of history channels, numbered per channel (``[[apps.history]]``)."""

    async def publish_history(
        self, envelope: Envelope, max_events: int, max_age: float, max_bytes: int
    ) -> int:
        """Retain ``envelope`` and publish it as SEQUENCED, atomically; return its number.

        The retained copy is exactly the delivered payload, and sequence numbers reach
        every node in order. ``max_bytes`` is the app's budget where the broker holds
        history in its own memory. Returns 0 when the event could only be delivered
        without being retained (the Redis broker during an outage).
        """
        ...

    async def history(
        self, app_id: str, channel: str, limit: int, max_age: float, since: int = 0
    ) -> list[Retained]:
        """Return up to ``limit`` retained events numbered above ``since``, oldest first.

        Events older than ``max_age`` seconds are left out; with more than ``limit``,
        the newest ones are returned.
        """
        ...


class Idempotency(Protocol):
    """Answers to idempotency keys of REST publishes, cluster-wide."""

    async def idempotency_claim(self, app_id: str, key: str, ttl: float) -> bytes | None:
        """Claim ``key`` atomically: None if this call did, else the answer stored for it.

        ``b""`` means the first caller has not stored its answer yet.
        """
        ...

    async def idempotency_store(self, app_id: str, key: str, answer: bytes, ttl: float) -> None:
        """Store the answer for a key this node claimed."""
        ...

    async def idempotency_release(self, app_id: str, key: str) -> None:
        """Forget a claim whose publish failed, so that a retry publishes."""
        ...


class Broker(Fanout, ChannelState, PresenceState, UserState, Marks, History, Idempotency, Protocol):
    """Everything the server layer needs from the cluster, and what it can count on.

    Capabilities (Centrifuge's optional broker interfaces, as declared attributes):

    - ``never_waits``: no call ever suspends (the memory broker), so the server runs
      session actions at once, without a task each;
    - ``node_subscriptions``: fan-out reaches this node only for channels it subscribed
      to (``subscribe``/``unsubscribe`` on the first/last local subscriber).
    - ``history_in_order``: SEQUENCED envelopes of a channel reach every node in number
      order (numbering and publishing are one step), so a replayed socket may stop
      dropping the overlap at the first live event above the replay.
    """

    never_waits: bool
    node_subscriptions: bool
    history_in_order: bool
