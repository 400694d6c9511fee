"""Lifecycle records: every observable thing that happens, reported once, at one place.

Sockets opening and closing, subscriptions, channel and member transitions, client
events, API messages, webhook attempts and cache misses are each described by a small
frozen record. Whoever wants to see them (the debug console, history, tests) registers
a listener with ``Lifecycle.listen``; the code where the thing happens asks
``lifecycle.wants(Kind)`` first, so **no record is built while nobody listens** — a
single attribute test on the hot path (``if lifecycle.active:`` guards the rest).

Metrics and the info log are not listeners: they are counted where the record would be
made, as plain numbers, because a record per connect would cost the churn path more
than the counters it feeds (measured in ``bench/``).

Listeners must not raise and must not block: they run inline, in the event loop. A
listener that needs I/O queues the record and does it later (the console does).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "ApiMessage",
    "CacheMiss",
    "ChannelOccupied",
    "ChannelVacated",
    "ClientEventSent",
    "Lifecycle",
    "Listener",
    "MemberAdded",
    "MemberRemoved",
    "Record",
    "SlowConsumer",
    "SocketClosed",
    "SocketOpened",
    "Subscribed",
    "SubscriptionRefused",
    "Unsubscribed",
    "WebhookAttempt",
]

logger = logging.getLogger("pusherd.lifecycle")


@dataclass(frozen=True, slots=True)
class SocketOpened:
    app_id: str
    socket_id: str
    origin: str | None
    client: str | None
    version: str | None
    remote: str | None


@dataclass(frozen=True, slots=True)
class SocketClosed:
    app_id: str
    socket_id: str
    code: int
    reason: str
    lived: float


@dataclass(frozen=True, slots=True)
class Subscribed:
    app_id: str
    socket_id: str
    channel: str


@dataclass(frozen=True, slots=True)
class Unsubscribed:
    app_id: str
    socket_id: str
    channel: str


@dataclass(frozen=True, slots=True)
class SubscriptionRefused:
    app_id: str
    socket_id: str
    channel: str
    reason: str
    status: int


@dataclass(frozen=True, slots=True)
class ChannelOccupied:
    app_id: str
    channel: str


@dataclass(frozen=True, slots=True)
class ChannelVacated:
    app_id: str
    channel: str


@dataclass(frozen=True, slots=True)
class MemberAdded:
    app_id: str
    channel: str
    user_id: str


@dataclass(frozen=True, slots=True)
class MemberRemoved:
    app_id: str
    channel: str
    user_id: str


@dataclass(frozen=True, slots=True)
class ClientEventSent:
    app_id: str
    socket_id: str
    channel: str
    event: str
    payload: bytes
    user_id: str | None


@dataclass(frozen=True, slots=True)
class ApiMessage:
    """One event published through the REST API (one record per channel it went to)."""

    app_id: str
    channel: str
    event: str
    payload: bytes
    socket_id: str | None


@dataclass(frozen=True, slots=True)
class WebhookAttempt:
    """One POST of a webhook batch: ``outcome`` is ``sent``, ``retry`` or ``failed``."""

    app_id: str
    target: str
    events: tuple[str, ...]
    status: int | None
    seconds: float
    attempt: int
    outcome: str


@dataclass(frozen=True, slots=True)
class CacheMiss:
    app_id: str
    channel: str


@dataclass(frozen=True, slots=True)
class SlowConsumer:
    app_id: str
    socket_id: str
    unsent: int


Record = (
    SocketOpened
    | SocketClosed
    | Subscribed
    | Unsubscribed
    | SubscriptionRefused
    | ChannelOccupied
    | ChannelVacated
    | MemberAdded
    | MemberRemoved
    | ClientEventSent
    | ApiMessage
    | WebhookAttempt
    | CacheMiss
    | SlowConsumer
)
Listener = Callable[[Record], None]


class Lifecycle:
    """The one place records are reported; listeners subscribe by record type."""

    __slots__ = ("_by_kind", "active")

    def __init__(self) -> None:
        self._by_kind: dict[type[Record], tuple[Listener, ...]] = {}
        #: True while any listener is registered: the hot paths test only this.
        self.active = False

    def listen(self, listener: Listener, *kinds: type[Record]) -> Callable[[], None]:
        """Call ``listener`` with every record of ``kinds``; return a function that stops it."""
        for kind in kinds:
            self._by_kind[kind] = (*self._by_kind.get(kind, ()), listener)
        self.active = bool(self._by_kind)

        def stop() -> None:
            for kind in kinds:
                rest = tuple(fn for fn in self._by_kind.get(kind, ()) if fn is not listener)
                if rest:
                    self._by_kind[kind] = rest
                else:
                    self._by_kind.pop(kind, None)
            self.active = bool(self._by_kind)

        return stop

    def wants(self, kind: type[Record]) -> bool:
        """True if a record of ``kind`` would reach anyone (build it only then)."""
        return kind in self._by_kind

    def emit(self, record: Record) -> None:
        """Hand ``record`` to its listeners; a failing listener is logged, never raised."""
        for listener in self._by_kind.get(type(record), ()):
            try:
                listener(record)
            except Exception:
                logger.exception("lifecycle listener failed on %s", type(record).__name__)
