"""Lifecycle records as console log lines: plain dicts, JSON-ready, payloads bounded.

A line is what the page shows and what the JSON stream carries::

    {"type": "api_message", "app_id": "1", "node": "a1", "t": 1767225600123,
     "channel": "orders", "event": "shipped", "socket_id": null, "size": 52,
     "data": "{\\"id\\":7}", "detail": "..."}

``type`` is one of ``TYPES``; every other field but ``app_id``, ``node`` and ``t`` is
optional. Event data is cut to ``MAX_DATA`` characters (``truncated`` is then true), so
one line never costs the stream more than a few KiB.
"""

from __future__ import annotations

from typing import Any

import orjson

from pusherd.errors import CloseCode
from pusherd.lifecycle import (
    ApiMessage,
    CacheMiss,
    ChannelOccupied,
    ChannelVacated,
    ClientEventSent,
    MemberAdded,
    MemberRemoved,
    Record,
    SlowConsumer,
    SocketClosed,
    SocketOpened,
    Subscribed,
    SubscriptionRefused,
    Unsubscribed,
    WebhookAttempt,
)

__all__ = ["KINDS", "MAX_DATA", "TYPES", "Line", "describe"]

Line = dict[str, Any]
MAX_DATA = 2000

_TYPE_OF: dict[type[Any], str] = {
    SocketOpened: "socket_opened",
    SocketClosed: "socket_closed",
    Subscribed: "subscribed",
    Unsubscribed: "unsubscribed",
    SubscriptionRefused: "refused",
    ChannelOccupied: "occupied",
    ChannelVacated: "vacated",
    MemberAdded: "member_added",
    MemberRemoved: "member_removed",
    ClientEventSent: "client_event",
    ApiMessage: "api_message",
    WebhookAttempt: "webhook",
    CacheMiss: "cache_miss",
    SlowConsumer: "slow_consumer",
}
#: Every record kind the console shows (what it listens to while somebody watches).
KINDS: tuple[type[Any], ...] = tuple(_TYPE_OF)
TYPES: tuple[str, ...] = tuple(_TYPE_OF.values())


def _close_reason(code: int) -> str:
    try:
        return CloseCode(code).name.lower().replace("_", " ")
    except ValueError:
        return {1000: "normal", 1001: "going away", 1006: "dropped", 1009: "too big"}.get(code, "")


def _event_data(payload: bytes) -> tuple[str, bool]:
    """Return the ``data`` of an encoded channel event (cut to ``MAX_DATA``)."""
    try:
        data = orjson.loads(payload).get("data", "")
    except (orjson.JSONDecodeError, AttributeError):
        data = payload.decode("utf-8", "replace")
    if not isinstance(data, str):
        data = orjson.dumps(data).decode()
    if len(data) > MAX_DATA:
        return data[:MAX_DATA], True
    return data, False


def describe(record: Record, node: str, now_ms: int) -> Line:
    """Turn ``record`` into a line stamped with ``node`` and ``now_ms`` (unix ms)."""
    line: Line = {"type": _TYPE_OF[type(record)], "app_id": record.app_id, "node": node}
    line["t"] = now_ms
    if isinstance(record, SocketOpened):
        line.update(
            socket_id=record.socket_id,
            origin=record.origin,
            client=record.client,
            version=record.version,
            remote=record.remote,
        )
    elif isinstance(record, SocketClosed):
        line.update(
            socket_id=record.socket_id,
            code=record.code,
            reason=record.reason or _close_reason(record.code),
            lived=round(record.lived, 3),
        )
    elif isinstance(record, Subscribed | Unsubscribed):
        line.update(socket_id=record.socket_id, channel=record.channel)
    elif isinstance(record, SubscriptionRefused):
        line.update(
            socket_id=record.socket_id,
            channel=record.channel,
            reason=record.reason,
            status=record.status,
        )
    elif isinstance(record, ChannelOccupied | ChannelVacated | CacheMiss):
        line["channel"] = record.channel
    elif isinstance(record, MemberAdded | MemberRemoved):
        line.update(channel=record.channel, user_id=record.user_id)
    elif isinstance(record, ClientEventSent | ApiMessage):
        data, cut = _event_data(record.payload)
        line.update(
            channel=record.channel,
            event=record.event,
            socket_id=record.socket_id,
            size=len(record.payload),
            data=data,
        )
        if cut:
            line["truncated"] = True
        if isinstance(record, ClientEventSent):
            line["user_id"] = record.user_id
    elif isinstance(record, WebhookAttempt):
        line.update(
            target=record.target,
            events=list(record.events),
            status=record.status,
            ms=round(record.seconds * 1000, 1),
            attempt=record.attempt,
            outcome=record.outcome,
        )
    elif isinstance(record, SlowConsumer):
        line.update(socket_id=record.socket_id, unsent=record.unsent)
    return line
